// Test-only: runs the llmforge executable and checks its error contract (exit code 1, exactly
// one "llmforge: ..." line on stderr).
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "test_util.h"

namespace llmforge::test {

struct CliRun {
    int rc;
    std::string out, err;
};

// `args` is pasted into a shell command line after the executable; quote paths with q().
inline CliRun run_cli(const std::string& args) {
    static const std::string dir = temp_dir();
    const std::string err_path = dir + "/stderr.txt";
    CliRun r;
    r.rc = run_command(cli_path() + " " + args + " 2>" + err_path, &r.out);
    r.err = read_file(err_path);
    return r;
}

inline std::string q(const std::string& s) { return "'" + s + "'"; }

// The same with `input` on stdin.
inline CliRun run_cli_input(const std::string& args, const std::string& input) {
    static const std::string dir = temp_dir();
    const std::string in_path = dir + "/stdin.txt";
    {
        std::ofstream f(in_path, std::ios::binary | std::ios::trunc);
        f << input;
    }
    return run_cli(args + " < " + q(in_path));
}

// Each bad input ends with exit code 1 and exactly one line on stderr naming the problem.
inline void expect_one_line_error(const CliRun& r, const std::string& must_contain) {
    EXPECT_EQ(r.rc, 1) << r.err;
    // Progress/log lines start with "generate:"/"info:"; the error line starts with "llmforge:".
    std::istringstream ss(r.err);
    std::string line, error_line;
    int n_err = 0;
    while (std::getline(ss, line))
        if (line.rfind("llmforge:", 0) == 0) ++n_err, error_line = line;
    EXPECT_EQ(n_err, 1) << r.err;
    EXPECT_NE(error_line.find(must_contain), std::string::npos) << error_line;
}

}  // namespace llmforge::test
