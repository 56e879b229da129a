// MultiPL-E-style translation of Python code-generation problems (HumanEval) into C++ and
// JavaScript (Cassano et al. 2022, "MultiPL-E: A Scalable and Extensible Approach to
// Benchmarking Neural Code Generation"; github.com/nuprl/MultiPL-E, dataset_builder/).
//
// What is translated, as MultiPL-E does it:
//  * the prompt: the docstring becomes a `//` comment block (C++: "// " on every line; JS: "//"
//    then "// ", MultiPL-E's exact spelling), its doctests (`>>> f(args)` + the output line) are
//    rewritten in the target language ("transform"; left as they are when they do not
//    translate), then the signature: C++ `#include<assert.h>\n#include<bits/stdc++.h>\n` +
//    `RET f(T1 a, T2 b) {\n`, JS `function f(a, b){\n`;
//  * the test: every `assert candidate(ARGS) == EXPECTED` of `def check(candidate):` becomes
//    C++ `assert(candidate(ARGS) == (EXPECTED));` inside `int main()`, JS
//    `assert.deepEqual(candidate(ARGS),EXPECTED);` inside `function test()`;
//  * types: Python hints map int→long, float→float, str→std::string, bool→bool,
//    List[T]→std::vector<T>, Tuple[...]→std::tuple<...> (Tuple[T, ...]→std::vector<T>),
//    Dict[K,V]→std::map<K,V>, Optional[T]→std::optional<T>, Any→std::any; C++ parameter names
//    `operator` and `strlen` become `op` and `string_length`.
//  * stop sequences: C++ {"\n}"}, JS {"\nfunction ", "\n/*", "\n//", "\nconsole.log"}.
//  * C++ convention: the completion is cut at "\n}" and so lacks the function's closing brace; the
//    test starts with "}\n" and closes it (MultiPL-E's test_suite_prefix_lines). The program is
//    prompt + completion + "\n" + test in both languages.
//
// Where this differs from MultiPL-E, and why: MultiPL-E translates hand-cleaned, fully annotated
// copies of HumanEval (datasets/originals); we translate the original HumanEval.jsonl, so
//  * missing or bare hints (`def add(x: int, y: int):` has no return hint; `xs: list`) are
//    inferred from the literal values in the tests (int and float unify to float, None and T to
//    Optional[T], an empty list's element type defaults to long, as MultiPL-E's empty list does);
//  * beside `==` asserts we translate the other literal forms HumanEval uses:
//    `assert candidate(..)` / `assert not candidate(..)` / `... is True|False` (== true/false),
//    `tuple(candidate(..)) == tuple([..])` (list equality), and
//    `abs(candidate(..) - E) < T` (C++: std::abs with T raised to at least 1e-4, because C++
//    `float` arguments carry ~7 significant digits and a correct answer such as
//    truncate_number(123.456f) is 1.3e-6 off; JS keeps T);
//  * an assert whose values are not literals (calls to other functions, variables, random
//    numbers) is dropped, and statements other than asserts (loops, imports, assignments) are
//    skipped with their bodies, where MultiPL-E's cleaned originals had them removed by hand;
//    constant arithmetic (2.0/3.0, -5) is folded;
//  * when a parameter or the result gets values of different types (hex_key is passed strings
//    and once a list; rounded_avg returns strings and -1), the most common type is used and the
//    asserts whose values do not fit it are dropped; a Union hint other than Optional is not
//    translated (MultiPL-E generates C++ union types instead);
//  * the prompt's doc text is not "reworded" (MultiPL-E's terms.csv replaces words like "list");
//  * a docstring after `import` lines in the body counts (HumanEval/115).
// Problems skipped (with the reason in `skipped`): prompts that define helper functions (HumanEval
// 10, 32, 38, 50, as MultiPL-E), and problems with no translatable assert. On HumanEval.jsonl:
// 160 of 164 translate to C++ and 160 of 164 to JS (all 160 C++ programs compile with g++
// -std=c++17 given a `return {};` body; the unit tests check the counts).
//
// Thread safety: stateless functions.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "apps/codegen/problem.h"

namespace llmforge::codegen {

// How many of HumanEval's 164 problems translate (checked by tests/apps/multipl_e_test.cpp).
// MultiPL-E's published sets have 161 for both, from its hand-edited originals.
constexpr int kHumanEvalTranslatedCpp = 160;
constexpr int kHumanEvalTranslatedJs = 160;

// Translates Python problems to `language` ("cpp" or "js"; anything else throws Error). Each
// problem that cannot be translated is left out and "task_id: why" appended to *skipped (when
// not null). Task ids become "HumanEval_cpp/N" / "HumanEval_js/N" ("<prefix>_<lang>/<rest>").
std::vector<Problem> translate_problems(const std::vector<Problem>& python, const std::string& language,
                                        std::vector<std::string>* skipped);

// One problem; nullopt with *why set when it does not translate.
std::optional<Problem> translate_problem(const Problem& python, const std::string& language, std::string* why);

// The MultiPL-E stop sequences of a language ("cpp", "js").
std::vector<std::string> multipl_e_stops(const std::string& language);

}  // namespace llmforge::codegen
