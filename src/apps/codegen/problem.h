// A code-generation problem (HumanEval, MBPP, or a MultiPL-E-style translation of one) and how a
// candidate program for it is assembled and run.
#pragma once

#include <string>
#include <vector>

namespace llmforge::codegen {

struct Problem {
    std::string task_id;      // "HumanEval/0", "Mbpp/11", "HumanEval_cpp/0"...
    std::string language;     // "python", "cpp", "js"
    std::string prompt;       // what the model continues (signature + docstring, or MBPP's text)
    std::string entry_point;  // the function under test
    std::string canonical_solution;  // may be empty (translations have none)
    std::string test;         // the test code, in `language`
    std::vector<std::string> stop;  // stop sequences for sampling (HumanEval protocol per language)
    // MBPP: the program is `completion` alone (the prompt is prose); HumanEval: prompt + completion.
    bool completion_includes_prompt = false;
};

}  // namespace llmforge::codegen
