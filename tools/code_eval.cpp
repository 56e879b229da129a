// llmforge code-eval --problems HumanEval.jsonl(.gz)|mbpp.jsonl (--samples FILE | --canonical |
// -m MODEL --n-samples N) [--language python|cpp|js] [--rank] [--jobs J] [--timeout S]
// [--limit N] [--out RESULTS.jsonl]: functional correctness of code completions, run in the
// sandbox (src/apps/codegen/sandbox.h), reported as pass@k with the unbiased estimator of the
// HumanEval paper. Samples come from a file in human-eval's format ({"task_id", "completion"}),
// from the problems' reference solutions, or from a model (N completions per problem, cut at the
// problem's stop sequences). --language cpp|js translates HumanEval MultiPL-E style first.
// --rank (CodeT) also samples tests from the model, runs every candidate against every generated
// test, and reports pass@1 of the top-ranked candidate beside the unranked pass@1.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "apps/codegen/evaluate.h"
#include "apps/codegen/multipl_e.h"
#include "apps/codegen/pass_at_k.h"
#include "apps/codegen/problems.h"
#include "apps/codegen/rank.h"
#include "apps/codegen/sampling.h"
#include "apps/codegen/sandbox.h"
#include "commands.h"
#include "core/error.h"
#include "progress.h"

namespace llmforge::cli {

namespace {

using namespace llmforge::codegen;

struct CodeEvalArgs {
    std::string problems, samples, model, tokenizer, language = "python", out;
    bool canonical = false, rank = false, no_sandbox = false, all_tasks = false;
    std::vector<int64_t> ks;
    int n_samples = 1, jobs = 0, threads = 0, slots = 4, rank_samples = 1, rank_max_tests = 10;
    int64_t max_tokens = 300, limit = 0, memory_mb = 2048;
    double timeout = 10.0;
    SamplerParams sp;
};

// Stops for the test-writing continuation: the asserts end where code of another kind begins.
std::vector<std::string> test_generation_stops(const Problem& p) {
    if (p.language == "python") return {"\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n```", "\n\n\n"};
    if (p.language == "cpp") return {"\nint main", "\n}", "\n```", "\n\n\n"};
    return {"\nfunction ", "\n}", "\n```", "\n\n\n"};
}

EvalOptions eval_options(const CodeEvalArgs& a) {
    EvalOptions o;
    o.jobs = a.jobs;
    o.limits.timeout_s = a.timeout;
    o.limits.memory_bytes = a.memory_mb << 20;
    o.limits.unsandboxed = a.no_sandbox;
    return o;
}

// Runs programs with a progress line; `what` labels it.
std::vector<RunResult> run_with_progress(const std::vector<SandboxProgram>& programs, EvalOptions o,
                                         const char* what) {
    Progress prog(what, static_cast<double>(programs.size()), "programs");
    o.progress = [&](size_t done, size_t total) {
        prog.update(static_cast<double>(done), std::to_string(done) + "/" + std::to_string(total));
    };
    return run_programs(programs, o);
}

SampleOptions sample_options(const CodeEvalArgs& a, int n) {
    SampleOptions so;
    so.model = a.model;
    so.tokenizer = a.tokenizer;
    so.sampling = a.sp;
    so.n_samples = n;
    so.max_tokens = a.max_tokens;
    so.threads = a.threads;
    so.slots = a.slots;
    return so;
}

std::vector<std::vector<std::string>> sample_with_progress(SampleOptions so, const std::vector<std::string>& prompts,
                                                           const std::vector<std::vector<std::string>>& stops,
                                                           const char* what) {
    Progress prog(what, static_cast<double>(prompts.size() * static_cast<size_t>(so.n_samples)), "samples");
    so.progress = [&](size_t done, size_t total) {
        prog.update(static_cast<double>(done), std::to_string(done) + "/" + std::to_string(total));
    };
    return sample_completions(so, prompts, stops);
}

// CodeT: pass@1 of the top-ranked candidate of each problem (problems without samples skipped).
double ranked_pass_at_1(const CodeEvalArgs& a, const std::vector<Problem>& problems, const std::vector<Sample>& samples,
                        const std::vector<RunResult>& results, size_t* n_tests_total) {
    std::vector<std::string> prompts;
    std::vector<std::vector<std::string>> stops;
    for (const Problem& p : problems) {
        prompts.push_back(test_generation_prompt(p));
        stops.push_back(test_generation_stops(p));
    }
    auto gens = sample_with_progress(sample_options(a, a.rank_samples), prompts, stops, "code-eval tests");
    std::vector<std::vector<std::string>> tests(problems.size());
    for (size_t i = 0; i < problems.size(); ++i) {
        for (const std::string& g : gens[i]) {
            for (std::string& t : extract_generated_tests(problems[i], test_generation_prefix(problems[i]) + g)) {
                if (tests[i].size() >= static_cast<size_t>(a.rank_max_tests)) break;
                if (std::find(tests[i].begin(), tests[i].end(), t) == tests[i].end()) tests[i].push_back(std::move(t));
            }
        }
    }
    for (const auto& t : tests) *n_tests_total += t.size();
    size_t planned = 0;
    for (const Sample& s : samples) planned += tests[s.problem].size();
    EvalOptions o = eval_options(a);
    Progress prog("code-eval rank", static_cast<double>(planned), "programs");
    size_t runs = 0;
    o.progress = [&](size_t done, size_t total) {
        prog.update(static_cast<double>(done), std::to_string(done) + "/" + std::to_string(total));
    };
    const std::vector<size_t> chosen = codet_choose(problems, samples, tests, o, &runs);
    std::fprintf(stderr, "code-eval: %zu generated tests, %zu candidate x test runs\n", *n_tests_total, runs);
    double sum = 0;
    size_t n = 0;
    for (size_t i = 0; i < problems.size(); ++i) {
        if (chosen[i] == SIZE_MAX) continue;
        sum += results[chosen[i]].passed() ? 1.0 : 0.0;
        ++n;
    }
    return n ? sum / static_cast<double>(n) : 0.0;
}

int run_code_eval(CodeEvalArgs& a) {
    const int modes = !a.samples.empty() + a.canonical + !a.model.empty();
    if (modes != 1)
        fail("code-eval: give exactly one of --samples FILE, --canonical or -m MODEL (found %d)", modes);
    if (a.rank && a.model.empty())
        fail("code-eval: --rank needs -m MODEL (the model writes the tests; hint: add -m)");
    if (a.n_samples < 1) fail("code-eval: --n-samples %d, expected at least 1", a.n_samples);
    if (!(a.timeout > 0)) fail("code-eval: --timeout %g, expected seconds > 0", a.timeout);
    for (int64_t k : a.ks)
        if (k < 1) fail("code-eval: -k %lld, expected k >= 1", static_cast<long long>(k));

    LoadOptions lo;
    lo.mbpp_test_split = !a.all_tasks;
    std::vector<Problem> problems = load_problems(a.problems, lo);
    if (a.language != "python") {
        if (problems.front().completion_includes_prompt)
            fail("code-eval: --language %s translates HumanEval problems, and %s holds MBPP ones (hint: use HumanEval.jsonl)",
                 a.language.c_str(), a.problems.c_str());
        std::vector<std::string> skipped;
        problems = translate_problems(problems, a.language, &skipped);
        std::fprintf(stderr, "code-eval: %zu problems translated to %s, %zu skipped\n", problems.size(), a.language.c_str(),
                     skipped.size());
        if (problems.empty()) fail("code-eval: no problem translates to %s", a.language.c_str());
    }
    if (a.limit > 0 && static_cast<size_t>(a.limit) < problems.size()) problems.resize(static_cast<size_t>(a.limit));

    std::vector<Sample> samples;
    if (!a.samples.empty()) {
        // Matched against every problem, so that --limit keeps the samples of the first N only.
        LoadOptions all = lo;
        std::vector<Problem> every = load_problems(a.problems, all);
        if (a.language != "python") every = translate_problems(every, a.language, nullptr);
        std::vector<Sample> loaded = load_samples(a.samples, every);
        for (Sample& s : loaded)
            if (s.problem < problems.size()) samples.push_back(std::move(s));
        if (samples.empty()) fail("code-eval: no sample in %s is for the first %zu problems", a.samples.c_str(), problems.size());
    } else if (a.canonical) {
        samples = canonical_samples(problems);
        if (samples.empty())
            fail("code-eval: the %s problems have no reference solutions (translations have none; hint: --samples or -m)",
                 a.language.c_str());
    }

    if (a.no_sandbox) std::fprintf(stderr, "code-eval: WARNING: --no-sandbox runs untrusted code with your rights, no "
                                           "namespaces (debugging only)\n");
    else sandbox_check_available();  // before any sampling: fail fast with the kernel's answer

    if (!a.model.empty()) {
        std::vector<std::string> prompts;
        std::vector<std::vector<std::string>> stops;
        for (const Problem& p : problems) prompts.push_back(p.prompt), stops.push_back(p.stop);
        auto comps = sample_with_progress(sample_options(a, a.n_samples), prompts, stops, "code-eval sampling");
        for (size_t i = 0; i < problems.size(); ++i)
            for (std::string& c : comps[i]) {
                Sample s;
                s.task_id = problems[i].task_id;
                s.completion = std::move(c);
                s.problem = i;
                samples.push_back(std::move(s));
            }
    }

    std::vector<SandboxProgram> programs;
    for (const Sample& s : samples) {
        const Problem& p = problems[s.problem];
        programs.push_back(sandbox_program(p.language, program_source(p, s.completion)));
    }
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<RunResult> results = run_with_progress(programs, eval_options(a), "code-eval");
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

    if (!a.out.empty()) {
        std::ofstream f(a.out, std::ios::binary | std::ios::trunc);
        if (!f) fail_kind(ErrorKind::kNotFound, "code-eval: cannot write --out %s (hint: check the folder)", a.out.c_str());
        for (size_t i = 0; i < samples.size(); ++i) {
            nlohmann::ordered_json j = {{"task_id", samples[i].task_id},     {"completion", samples[i].completion},
                                {"passed", results[i].passed()},      {"result", results[i].reason},
                                {"status", run_status_name(results[i].status)}, {"seconds", results[i].seconds}};
            f << j.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) << "\n";
        }
        f.close();
        if (!f) fail_kind(ErrorKind::kResource, "code-eval: writing %s failed (disk full?)", a.out.c_str());
    }

    EvalSummary sum = summarize(problems, samples, results);
    std::map<std::string, size_t> by_status;
    for (const RunResult& r : results) ++by_status[run_status_name(r.status)];
    std::string counts;
    for (const auto& [k, v] : by_status) counts += (counts.empty() ? "" : ", ") + k + " " + std::to_string(v);
    std::fprintf(stderr, "code-eval: %zu programs in %.1f s (%.1f/s): %s\n", results.size(), secs,
                 static_cast<double>(results.size()) / std::max(secs, 1e-9), counts.c_str());
    std::printf("problems: %zu  samples: %zu  passed: %zu\n", sum.n_problems, sum.n_samples, sum.n_passed);
    std::vector<int64_t> ks = a.ks.empty() ? std::vector<int64_t>{1, 10, 100} : a.ks;
    std::vector<int64_t> n, c;
    {
        std::vector<int64_t> nn(problems.size(), 0), cc(problems.size(), 0);
        for (size_t i = 0; i < samples.size(); ++i) ++nn[samples[i].problem], cc[samples[i].problem] += results[i].passed();
        for (size_t i = 0; i < problems.size(); ++i)
            if (nn[i] > 0) n.push_back(nn[i]), c.push_back(cc[i]);
    }
    const int64_t fewest = n.empty() ? 0 : *std::min_element(n.begin(), n.end());
    double unranked1 = -1;
    for (int64_t k : ks) {
        if (k > fewest) continue;  // pass@k needs k samples of every problem
        const double v = mean_pass_at_k(n, c, k);
        if (k == 1) unranked1 = v;
        std::printf("pass@%lld: %.4f\n", static_cast<long long>(k), v);
    }
    if (a.rank) {
        if (unranked1 < 0) unranked1 = mean_pass_at_k(n, c, 1);
        size_t n_tests = 0;
        const double ranked = ranked_pass_at_1(a, problems, samples, results, &n_tests);
        std::printf("pass@1 ranked (CodeT, %zu generated tests): %.4f  unranked: %.4f\n", n_tests, ranked, unranked1);
    }
    return 0;
}

}  // namespace

void add_code_eval(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("code-eval",
                                   "Functional correctness of code completions (HumanEval, MBPP, MultiPL-E C++/JS) "
                                   "run in a sandbox: pass@k");
    static CodeEvalArgs a;
    sub->add_option("--problems", a.problems, "HumanEval.jsonl(.gz) or mbpp.jsonl")->required();
    auto* s = sub->add_option("--samples", a.samples, "completions, one {\"task_id\", \"completion\"} per line");
    auto* c = sub->add_flag("--canonical", a.canonical, "evaluate the problems' reference solutions");
    auto* m = sub->add_option("-m,--model", a.model, "sample completions from this model (GGUF, HF folder, llama2.c)");
    s->excludes(c)->excludes(m);
    c->excludes(m);
    sub->add_option("--tokenizer", a.tokenizer, "tokenizer for -m (llama2.c tok*.bin or GGUF)");
    sub->add_option("-k", a.ks, "pass@k values to report (repeatable; default 1, 10, 100 where k <= samples)")
        ->delimiter(',');
    sub->add_option("--n-samples", a.n_samples, "completions per problem with -m")->capture_default_str();
    sub->add_option("--temp", a.sp.temperature, "temperature (0 = greedy)")->capture_default_str();
    sub->add_option("--top-p", a.sp.top_p, "top-p (1 = off)")->capture_default_str();
    sub->add_option("--top-k", a.sp.top_k, "top-k (0 = off)")->capture_default_str();
    sub->add_option("--min-p", a.sp.min_p, "min-p (0 = off)")->capture_default_str();
    sub->add_option("-s,--seed", a.sp.seed, "random seed (sample j uses seed + j)")->capture_default_str();
    sub->add_option("--max-tokens", a.max_tokens, "tokens per completion")->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
    sub->add_option("-t,--threads", a.threads, "model threads (0 = all cores)");
    sub->add_option("--slots", a.slots, "sequences sampled together")->capture_default_str();
    sub->add_option("--language", a.language, "python, or cpp / js (HumanEval translated MultiPL-E style)")
        ->capture_default_str()->check(CLI::IsMember({"python", "cpp", "js"}));
    sub->add_flag("--rank", a.rank, "CodeT: rank the samples by model-written tests; report ranked pass@1");
    sub->add_option("--rank-samples", a.rank_samples, "test-writing samples per problem for --rank")->capture_default_str();
    sub->add_option("--rank-max-tests", a.rank_max_tests, "generated tests kept per problem")->capture_default_str();
    sub->add_option("-j,--jobs", a.jobs, "programs run in parallel (0 = number of cores)");
    sub->add_option("--timeout", a.timeout, "seconds per program (wall clock; compiling C++ gets 60)")->capture_default_str();
    sub->add_option("--memory-mb", a.memory_mb, "address-space limit per program, MiB")->capture_default_str()
        ->check(CLI::Range(int64_t{64}, int64_t{1} << 20));
    sub->add_option("--limit", a.limit, "only the first N problems")->check(CLI::NonNegativeNumber);
    sub->add_flag("--all-tasks", a.all_tasks, "MBPP: every task, not only the test split 11..510");
    sub->add_option("--out", a.out, "results, one JSON line per sample {task_id, completion, passed, result}");
    sub->add_flag("--no-sandbox", a.no_sandbox, "debugging only: run programs without namespaces (prints a warning)");
    run = [] { return run_code_eval(a); };
}

}  // namespace llmforge::cli
