// CodeT ranking (Chen et al. 2022, "CodeT: Code Generation with Generated Tests"): the model
// writes test cases for a problem as well as candidate solutions; every candidate runs every
// generated test, and candidates are ranked by "dual execution agreement":
//   * candidates that pass exactly the same set of tests form one consensus set;
//   * a set's score is (#candidates in it) x (#tests they pass);
//   * candidates are ordered by their set's score, highest first; ties by candidate index.
// A candidate that passes no test scores 0, so with no tests (or all failing) the order is the
// sampling order.
//
// The test-generation prompt follows the paper (Python): the problem's prompt, `pass` as the
// body, then `# check the correctness of ENTRY` and `assert ENTRY(` for the model to continue.
// C++ and JS use the same comment and their own assert spelling, after the function is closed.
//
// Thread safety: stateless functions.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

#include "apps/codegen/problem.h"

namespace llmforge::codegen {

// The prompt that makes a model write tests for `p` (p.language: python, cpp or js; another
// language throws Error). It ends with the start of the first assert (see test_generation_prefix).
std::string test_generation_prompt(const Problem& p);
// The start of an assert that the prompt ends with: "assert ENTRY(" (python),
// "assert(ENTRY(" (cpp), "assert.deepEqual(ENTRY(" (js).
std::string test_generation_prefix(const Problem& p);

// The standalone assert statements in a model's continuation of test_generation_prompt().
// `generated` may or may not repeat the prefix. Statements are split at line ends, at top-level
// ';' and before every top-level `assert` (several asserts on one line). Kept are the statements
// that are whole (brackets and strings closed: a line cut by the token limit is dropped; Python
// ones must parse), call the entry point, and call nothing else but a few builtins (Python: abs,
// len, sorted, set, list, tuple, round, str, int, float, bool, sum, min, max, dict, math.isclose;
// C++: std::..., abs, fabs; JS: assert.*, Math.*, JSON.stringify) — a call to a function the
// program does not define would fail every candidate alike. Duplicates (same statement up to
// spacing; for Python the same parsed expression) are dropped; order of first appearance kept.
std::vector<std::string> extract_generated_tests(const Problem& p, std::string_view generated);

// The test snippet to run one extracted test against a candidate, in p's program convention
// (prompt + completion + "\n" + snippet): python the assert itself; cpp "}\nint main() {\n    "
// + assert + "\n}\n" (the completion lacks the function's closing brace, as in MultiPL-E); js
// "const assert = require('node:assert');\n" + assert.
std::string generated_test_snippet(const Problem& p, const std::string& test);

// The consensus score of each candidate: passes[candidate][test]. Every row must have the same
// length (else Error).
std::vector<double> codet_scores(const std::vector<std::vector<bool>>& passes);

// Candidate indices, best first (score descending, ties by index).
std::vector<size_t> codet_rank(const std::vector<std::vector<bool>>& passes);

}  // namespace llmforge::codegen
