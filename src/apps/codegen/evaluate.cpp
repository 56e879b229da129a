#include "apps/codegen/evaluate.h"

#include <algorithm>
#include <cstdint>
#include <atomic>
#include <exception>
#include <mutex>
#include <thread>

#include "apps/codegen/pass_at_k.h"
#include "apps/codegen/rank.h"
#include "core/error.h"

namespace llmforge::codegen {

std::vector<RunResult> run_programs(const std::vector<SandboxProgram>& programs, const EvalOptions& opt) {
    std::vector<RunResult> results(programs.size());
    if (programs.empty()) return results;
    int jobs = opt.jobs > 0 ? opt.jobs : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
    jobs = std::min<int>(jobs, static_cast<int>(std::min<size_t>(programs.size(), 64)));
    std::atomic<size_t> next{0};
    std::atomic<bool> stop{false};
    std::mutex mu;  // guards done, first_error and the progress callback
    size_t done = 0;
    std::exception_ptr first_error;
    auto worker = [&](int slot) {
        for (;;) {
            if (stop.load()) return;
            const size_t i = next.fetch_add(1);
            if (i >= programs.size()) return;
            try {
                results[i] = sandbox_run(programs[i], opt.limits, slot);
            } catch (...) {
                std::lock_guard<std::mutex> lock(mu);
                if (!first_error) first_error = std::current_exception();
                stop.store(true);
                return;
            }
            std::lock_guard<std::mutex> lock(mu);
            ++done;
            if (opt.progress) opt.progress(done, programs.size());
        }
    };
    std::vector<std::thread> threads;
    for (int s = 1; s < jobs; ++s) threads.emplace_back(worker, s);
    worker(0);
    for (auto& t : threads) t.join();
    if (first_error) std::rethrow_exception(first_error);
    return results;
}

std::vector<RunResult> evaluate_samples(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                                        const EvalOptions& opt) {
    std::vector<SandboxProgram> programs;
    programs.reserve(samples.size());
    for (const Sample& s : samples) {
        LF_ASSERT(s.problem < problems.size());
        const Problem& p = problems[s.problem];
        programs.push_back(sandbox_program(p.language, program_source(p, s.completion)));
    }
    return run_programs(programs, opt);
}

std::vector<size_t> codet_choose(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                                 const std::vector<std::vector<std::string>>& tests, const EvalOptions& opt,
                                 size_t* runs) {
    LF_ASSERT(tests.size() == problems.size());
    std::vector<std::vector<size_t>> cands(problems.size());
    for (size_t s = 0; s < samples.size(); ++s) {
        LF_ASSERT(samples[s].problem < problems.size());
        cands[samples[s].problem].push_back(s);
    }
    std::vector<SandboxProgram> programs;
    std::vector<std::pair<size_t, size_t>> where;  // (sample, test)
    for (size_t i = 0; i < problems.size(); ++i) {
        const Problem& p = problems[i];
        for (size_t s : cands[i])
            for (size_t t = 0; t < tests[i].size(); ++t) {
                programs.push_back(sandbox_program(
                    p.language, program_source_with_test(p, samples[s].completion, generated_test_snippet(p, tests[i][t]))));
                where.emplace_back(s, t);
            }
    }
    if (runs) *runs = programs.size();
    const std::vector<RunResult> rr = run_programs(programs, opt);
    std::vector<std::vector<bool>> row(samples.size());
    for (size_t s = 0; s < samples.size(); ++s) row[s].assign(tests[samples[s].problem].size(), false);
    for (size_t r = 0; r < rr.size(); ++r) row[where[r].first][where[r].second] = rr[r].passed();
    std::vector<size_t> chosen(problems.size(), SIZE_MAX);
    for (size_t i = 0; i < problems.size(); ++i) {
        if (cands[i].empty()) continue;
        std::vector<std::vector<bool>> passes;
        for (size_t s : cands[i]) passes.push_back(row[s]);
        chosen[i] = cands[i][codet_rank(passes).front()];
    }
    return chosen;
}

EvalSummary summarize(const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                      const std::vector<RunResult>& results) {
    LF_ASSERT(samples.size() == results.size());
    std::vector<int64_t> n(problems.size(), 0), c(problems.size(), 0);
    EvalSummary s;
    for (size_t i = 0; i < samples.size(); ++i) {
        ++n[samples[i].problem];
        if (results[i].passed()) ++c[samples[i].problem], ++s.n_passed;
    }
    std::vector<int64_t> nn, cc;
    for (size_t i = 0; i < problems.size(); ++i)
        if (n[i] > 0) nn.push_back(n[i]), cc.push_back(c[i]);
    s.n_problems = nn.size();
    s.n_samples = samples.size();
    if (nn.empty()) return s;
    const int64_t fewest = *std::min_element(nn.begin(), nn.end());
    for (int64_t k : {1, 10, 100})
        if (k <= fewest) s.pass_at.push_back({k, mean_pass_at_k(nn, cc, k)});
    return s;
}

}  // namespace llmforge::codegen
