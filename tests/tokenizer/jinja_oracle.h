// Test-only: runs tests/tokenizer/jinja_oracle.py (Debian's python3-jinja2 set up the way
// Hugging Face's apply_chat_template sets it up) on a list of render requests, one JSON result
// line per request. Shared by jinja_test and chat_template_test.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "test_util.h"

namespace llmforge::test {

// Runs the oracle on `requests`; false (and the caller skips) when python3 or jinja2 is missing.
inline bool run_oracle(const nlohmann::ordered_json& requests, std::vector<nlohmann::json>* results) {
    const char* src = std::getenv("LLMFORGE_SRC");
    const std::string oracle = std::string(src ? src : ".") + "/tests/tokenizer/jinja_oracle.py";
    if (!std::filesystem::exists(oracle)) return false;
    if (run_command("python3 -c 'import jinja2' 2>/dev/null") != 0) return false;
    const std::string in = temp_dir() + "/requests.json";
    std::ofstream(in) << requests.dump();
    std::string out;
    EXPECT_EQ(run_command("python3 '" + oracle + "' < '" + in + "'", &out), 0) << out;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);)
        results->push_back(nlohmann::json::parse(line));
    return true;
}

}  // namespace llmforge::test
