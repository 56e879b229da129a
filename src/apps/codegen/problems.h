// Code-generation problem sets and samples: loading HumanEval (.jsonl or .jsonl.gz) and MBPP
// (.jsonl) into Problems, HumanEval-format sample files, and the program each (problem,
// completion) pair becomes, per language, as the reference harnesses build it:
//  * HumanEval (human_eval/execution.py): prompt + completion + "\n" + test + "\n" +
//    "check(" + entry_point + ")";
//  * MBPP (bigcode-evaluation-harness, tasks/mbpp.py): the completion is the whole program; the
//    tests are test_setup_code + the test_list asserts; the model's prompt is
//    '"""\n' + text + "\n" + test_list[0] + '\n"""\n'. The test split is task_id 11..510;
//  * C++ / JavaScript (MultiPL-E, see multipl_e.h): prompt + completion + "\n" + test.
// Bad input (unreadable file, invalid JSON line, missing key, unknown task_id) throws
// llmforge::Error with one line naming the file, the line and what was expected.
//
// Thread safety: stateless functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "apps/codegen/problem.h"
#include "apps/codegen/sandbox.h"

namespace llmforge::codegen {

struct LoadOptions {
    bool mbpp_test_split = true;  // MBPP: only task_id 11..510 (the paper's test split)
};

// Reads a whole file, gunzipping it when it is gzip data (zlib). Throws Error (kNotFound) when
// it cannot be read; `what` names the file's role in the message ("problems", "samples").
std::string read_text_file(const std::string& path, const char* what);

// HumanEval or MBPP, told apart by the first line's keys. Task ids: HumanEval's own
// ("HumanEval/0"); MBPP "Mbpp/<task_id>".
std::vector<Problem> load_problems(const std::string& path, const LoadOptions& opt = {});

// The HumanEval stop sequences for Python: "\nclass", "\ndef", "\n#", "\nif", "\nprint".
std::vector<std::string> humaneval_python_stops();
// bigcode-evaluation-harness's MBPP stop sequences.
std::vector<std::string> mbpp_stops();

// One completion to evaluate. `line` is its line in the samples file (0 when not from a file).
struct Sample {
    std::string task_id;
    std::string completion;
    size_t line = 0;
    size_t problem = 0;  // index into the problems it was matched to
};

// HumanEval's sample format: one {"task_id", "completion"} per line, several lines per task for
// several samples. MBPP task ids may be given as 11, "11" or "Mbpp/11". A sample whose task is not
// among `problems` is an error naming the line and the id.
std::vector<Sample> load_samples(const std::string& path, const std::vector<Problem>& problems);

// The problems' own reference solutions as samples (HumanEval canonical_solution, MBPP code).
std::vector<Sample> canonical_samples(const std::vector<Problem>& problems);

// The source text of the program that tests `completion` on `problem` (see the file comment).
std::string program_source(const Problem& problem, const std::string& completion);
// The source text of `completion` followed by one extra test snippet (CodeT's generated tests)
// instead of the problem's own test.
std::string program_source_with_test(const Problem& problem, const std::string& completion,
                                     const std::string& test_snippet);

// The files and commands that run `source` in `language`: python (python3 -I prog.py), cpp
// (g++ -std=c++17 -O0, then ./prog), js (node prog.js). Throws Error for another language.
SandboxProgram sandbox_program(const std::string& language, const std::string& source);

}  // namespace llmforge::codegen
