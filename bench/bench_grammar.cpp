// Per-token cost of the grammar constraint (mask + accept of the grammar sampler stage) over a
// real 32k vocabulary, against the decode step of a model, 1 thread.
//
//   build/bin/bench_grammar --vocab ../shared/assets/llama.cpp-vocab/ggml-vocab-llama-spm.gguf
//       --model /work/models/110m-q8_0.gguf [--grammars grammars] [--decode-steps 32]
//
// For each grammar (json.gbnf, person_schema.gbnf, c.gbnf) a built-in document the grammar
// accepts is cut into tokens (longest vocabulary piece first, as a model's output would be), and
// the stage is driven through it: before each token, apply() on all V candidates (the mask),
// then accept(). "cold" is a new stage (empty caches: a new request); "warm" is the same stage
// after reset() (caches kept: the steady state of a long generation). Times per token: mean,
// p50, p99, max. The decode step is Context::decode of one token after a 16-token prompt.
#include <chrono>
#include <cstdio>
#include <string>
#include <utility>
#include <vector>

#include "core/error.h"
#include "grammar_bench.h"
#include "model/vocab_source.h"
#include "runtime/grammar.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;
using namespace llmforge::bench;

namespace {

const char* kJsonDoc = R"({"id": "chatcmpl-8f3a", "object": "chat.completion", "created": 1733472000,
 "model": "llmforge-110m", "choices": [{"index": 0, "message": {"role": "assistant",
 "content": "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs. \"Quoted\" text, a tab\t and a unicode escape \u00e9 in the middle of a long string that a model would write token by token."},
 "logprobs": null, "finish_reason": "stop"}], "usage": {"prompt_tokens": 17, "completion_tokens": 55,
 "total_tokens": 72}, "tags": ["alpha", "beta", "gamma", "delta"], "matrix": [[1, 2, 3], [4.5, -6e-3, 7E+2]],
 "nested": {"a": {"b": {"c": {"d": [true, false, null, {"e": "deep"}]}}}}, "empty": {}, "list": []})";

const char* kPersonDoc = R"({"name": "Ada Lovelace", "age": 36, "email": "ada@example.org", "address": {"street": "12 St James's Square", "city": "London", "zip": "12345-6789"}, "tags": ["mathematician", "writer", "analyst of the engine", "first programmer"], "scores": [9.5, 10, 8.75, 1e3, -2.5E-2]})";

const char* kCDoc =
    "int main(){int x = 1;float y = 2;char c = 3;x = x+y*2-c/4;while(x<100){x = x*2;if(x==64){print (x, y);}else{y = y+1;}}"
    "for(i = 0; i<10; i = i+1){total = total+i;}// a comment line\n/* a block comment */return x;}"
    "float area(float r){return 3*r*r;}int fib(int n){if(n<2){return n;}return fib(n-1)+fib(n-2);}";

// One pass through the document: per-token microseconds of apply (mask) + accept.
std::vector<double> drive(SamplerStage& stage, const Tokenizer& tok, const std::vector<int32_t>& ids,
                          const Candidates& all) {
    SamplerContext ctx{&tok};
    std::vector<double> us;
    Candidates c;
    for (int32_t t : ids) {
        c = all;
        const auto t0 = Clock::now();
        stage.apply(c, ctx);
        stage.accept(t, ctx);
        us.push_back(us_since(t0));
        bool found = false;
        for (const Candidate& x : c.items) found |= x.id == t;
        if (!found) fail("bench_grammar: the stage masked out token %d of the document", t);
    }
    return us;
}

}  // namespace

int main(int argc, char** argv) {
    try {
        std::string vocab_path, model_path, dir = "grammars";
        int decode_steps = 32;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto next = [&]() -> std::string {
                if (i + 1 >= argc) fail("bench_grammar: %s needs a value", a.c_str());
                return argv[++i];
            };
            if (a == "--vocab") vocab_path = next();
            else if (a == "--model") model_path = next();
            else if (a == "--grammars") dir = next();
            else if (a == "--decode-steps") decode_steps = std::stoi(next());
            else fail("bench_grammar: unknown option '%s' (see the comment at the top of bench/bench_grammar.cpp)", a.c_str());
        }
        if (vocab_path.empty()) fail("bench_grammar: --vocab FILE.gguf is required");
        auto tok = Tokenizer::create(load_vocab(vocab_path));
        const int32_t V = tok->n_vocab();
        auto t0 = Clock::now();
        auto vocab = GrammarVocab::build(*tok);
        std::printf("vocabulary: %s, %d tokens, GrammarVocab::build %.1f ms\n", vocab_path.c_str(), V,
                    std::chrono::duration<double, std::milli>(Clock::now() - t0).count());

        const Candidates all = all_candidates(V);

        const double decode_ms = model_path.empty() ? 0 : decode_step_ms(model_path, decode_steps);

        std::printf("%-20s %6s | %-36s | %-36s | %s\n", "grammar", "tokens", "cold us/token: mean p50 p99 max",
                    "warm us/token: mean p50 p99 max", "cold mean / decode p50");
        const std::vector<std::pair<std::string, std::string>> docs = {
            {"json.gbnf", kJsonDoc}, {"person_schema.gbnf", kPersonDoc}, {"c.gbnf", kCDoc}};
        for (const auto& [name, doc] : docs) {
            auto g = Grammar::parse(read_text(dir + "/" + name, "bench_grammar"), "root", name);
            const GrammarCheck chk = grammar_check(*g, doc);
            if (!chk.accepted) fail("bench_grammar: the %s document is not accepted: %s", name.c_str(), chk.reason.c_str());
            const std::vector<int32_t> ids = cut(*tok, doc, "bench_grammar");
            auto stage = make_grammar_stage(g, vocab);
            const Stats cold = stats(drive(*stage, *tok, ids, all));
            std::vector<double> warm_us;
            for (int r = 0; r < 3; ++r) {
                stage->reset();
                auto w = drive(*stage, *tok, ids, all);
                warm_us.insert(warm_us.end(), w.begin(), w.end());
            }
            const Stats warm = stats(warm_us);
            std::printf("%-20s %6zu | %8.1f %8.1f %8.1f %8.1f | %8.1f %8.1f %8.1f %8.1f | %s\n", name.c_str(), ids.size(),
                        cold.mean, cold.p50, cold.p99, cold.max, warm.mean, warm.p50, warm.p99, warm.max,
                        decode_ms > 0 ? strfmt("%.2f%%", 100.0 * cold.mean / 1000.0 / decode_ms).c_str() : "-");
        }
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
