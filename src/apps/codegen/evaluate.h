// Runs many sandboxed programs in parallel and turns sample results into pass@k.
//
// run_programs keeps `jobs` workers busy (default: the number of cores), each with its own
// sandbox slot (so each worker's programs run as their own user); results come back in input
// order. A failure of the sandbox itself (the kernel refusing namespaces) stops the workers and
// is rethrown once all have stopped; a misbehaving program is only ever a RunResult.
//
// Thread safety: the progress callback is called from worker threads, one call at a time.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "apps/codegen/problem.h"
#include "apps/codegen/problems.h"
#include "apps/codegen/sandbox.h"

namespace llmforge::codegen {

struct EvalOptions {
    int jobs = 0;  // <= 0: the number of cores
    SandboxLimits limits;
    // After each finished program (serialised): done so far, total.
    std::function<void(size_t done, size_t total)> progress;
};

std::vector<RunResult> run_programs(const std::vector<SandboxProgram>& programs, const EvalOptions& opt);

// One run per sample: program_source(problem, completion) in the problem's language.
std::vector<RunResult> evaluate_samples(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                                        const EvalOptions& opt);

// pass@k over the problems that have samples (the unbiased estimator, pass_at_k.h).
struct PassAtK {
    int64_t k;
    double value;  // -1 when some problem has fewer than k samples
};
struct EvalSummary {
    size_t n_problems = 0;     // problems with at least one sample
    size_t n_samples = 0;
    size_t n_passed = 0;
    std::vector<PassAtK> pass_at;  // k = 1, 10, 100 where k <= the fewest samples of any problem
};
// CodeT ranking given the generated tests (tests[problem]: extract_generated_tests' output): every
// sample runs every generated test of its problem (generated_test_snippet, rank.h) in the
// sandbox; codet_rank orders each problem's samples. Result: per problem, the index into `samples`
// of its top-ranked sample, or SIZE_MAX when it has none. *runs (optional) gets the run count.
std::vector<size_t> codet_choose(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                                 const std::vector<std::vector<std::string>>& tests, const EvalOptions& opt,
                                 size_t* runs = nullptr);

EvalSummary summarize(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                      const std::vector<RunResult>& results);

}  // namespace llmforge::codegen
