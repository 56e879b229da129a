// Per-token cost of the Python constraint (grammars/python.gbnf behind runtime/indent_lexer.h)
// over a real 32k vocabulary, against the decode step of a model, 1 thread.
//
//   build/bin/bench_python_grammar --vocab ../shared/assets/llama.cpp-vocab/ggml-vocab-llama-spm.gguf
//       [--model /work/models/110m-q8_0.gguf] [--grammar grammars/python.gbnf] [--doc FILE.py]...
//       [--decode-steps 32] [--reps 3]
//
// A realistic program (built in, or --doc files) is cut into tokens (longest vocabulary piece
// first, as in bench/bench_grammar.cpp) and the grammar stage is driven through it: before each
// token apply() on all V candidates (the mask), then accept(). Reported per token (mean, p50,
// p99, max, microseconds):
//   * "new stage": a fresh stage per document (empty caches: a new request);
//   * "reused stage": the same stage after reset() (caches kept: later requests / a long
//     generation that revisits states), --reps passes;
//   * "uncached walk": the lexer-aware trie walk alone (compute_indented_mask from the whole
//     state), what a mask costs with no cache at all;
//   * "accept": the lexer + matcher advance of the stage.
// The decode step is Context::decode of one token after a 16-token prompt (as bench_grammar).
#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "core/error.h"
#include "grammar_bench.h"
#include "model/vocab_source.h"
#include "runtime/grammar.h"
#include "runtime/grammar_internal.h"
#include "runtime/indent_lexer.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;
using namespace llmforge::bench;

namespace {

const char* kDoc = R"(import math
from collections import defaultdict


class Graph:
    def __init__(self, n):
        self.n = n
        self.adj = defaultdict(list)

    def add_edge(self, u, v, w=1):
        self.adj[u].append((v, w))
        self.adj[v].append((u, w))

    def shortest(self, src):
        dist = [math.inf] * self.n
        dist[src] = 0
        todo = [src]
        while todo:
            u = min(todo, key=lambda x: dist[x])
            todo.remove(u)
            for v, w in self.adj[u]:
                if dist[u] + w < dist[v]:
                    if dist[v] == math.inf:
                        todo.append(v)
                    dist[v] = dist[u] + w
        return dist


def fib(n):
    # the n-th Fibonacci number
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b
    return a


def parse(text):
    out = {}
    for line in text.split('\n'):
        if not line or line.startswith('#'):
            continue
        try:
            key, value = line.split('=', 1)
        except ValueError as e:
            raise ValueError(f'bad line {line!r}') from e
        out[key.strip()] = value.strip()
    return out
)";


// One pass: per token, microseconds of apply (mask) and of accept.
void drive(SamplerStage& stage, const Tokenizer& tok, const std::vector<int32_t>& ids, const Candidates& all,
           std::vector<double>& mask_us, std::vector<double>& accept_us, size_t& allowed) {
    SamplerContext ctx{&tok};
    Candidates c;
    for (int32_t t : ids) {
        c = all;
        auto t0 = Clock::now();
        stage.apply(c, ctx);
        mask_us.push_back(us_since(t0));
        allowed += c.items.size();
        bool found = false;
        for (const Candidate& x : c.items) found |= x.id == t;
        if (!found) fail("bench_python_grammar: the stage masked out token %d ('%s')", t, tok.token_to_piece(t).c_str());
        t0 = Clock::now();
        stage.accept(t, ctx);
        accept_us.push_back(us_since(t0));
    }
}

}  // namespace

int main(int argc, char** argv) {
    try {
        std::string vocab_path, model_path, grammar_path = "grammars/python.gbnf";
        std::vector<std::string> docs;
        int decode_steps = 32, reps = 3;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (i + 1 >= argc) fail("bench_python_grammar: %s needs a value", a.c_str());
            if (a == "--vocab") vocab_path = argv[++i];
            else if (a == "--model") model_path = argv[++i];
            else if (a == "--grammar") grammar_path = argv[++i];
            else if (a == "--doc") docs.push_back(read_text(argv[++i], "bench_python_grammar"));
            else if (a == "--decode-steps") decode_steps = std::stoi(argv[++i]);
            else if (a == "--reps") reps = std::max(1, std::stoi(argv[++i]));
            else fail("bench_python_grammar: unknown option '%s' (see the comment at the top of the file)", a.c_str());
        }
        if (vocab_path.empty()) fail("bench_python_grammar: --vocab FILE.gguf is required");
        if (docs.empty()) docs.push_back(kDoc);
        auto tok = Tokenizer::create(load_vocab(vocab_path));
        const int32_t V = tok->n_vocab();
        auto vocab = GrammarVocab::build(*tok);
        auto g = Grammar::parse(read_text(grammar_path, "bench_python_grammar"), "root", grammar_path);
        if (!g->uses_indent_lexer()) fail("bench_python_grammar: '%s' does not use the indentation lexer", grammar_path.c_str());

        const Candidates all = all_candidates(V);

        const double decode_ms = model_path.empty() ? 0 : decode_step_ms(model_path, decode_steps);

        std::vector<double> new_mask, new_accept, re_mask, re_accept, walk_us;
        size_t n_tok = 0, allowed = 0, dummy = 0;
        for (const std::string& doc : docs) {
            const GrammarCheck chk = grammar_check(*g, doc);
            if (!chk.accepted) fail("bench_python_grammar: the grammar rejects a document: %s", chk.reason.c_str());
            const std::vector<int32_t> ids = cut(*tok, doc, "bench_python_grammar");
            n_tok += ids.size();
            auto stage = make_grammar_stage(g, vocab);
            drive(*stage, *tok, ids, all, new_mask, new_accept, allowed);
            for (int r = 0; r < reps; ++r) {
                stage->reset();
                drive(*stage, *tok, ids, all, re_mask, re_accept, dummy);
            }
            // The uncached walk from each state of the document.
            StackPool pool(&g->impl());
            LexMatchState s;
            s.st.stacks = pool.initial();
            std::vector<uint64_t> mask;
            std::vector<LexMatchState> states;
            std::vector<uint32_t> scratch;
            std::string out;
            for (int32_t t : ids) {
                const auto t0 = Clock::now();
                compute_indented_mask(pool, vocab->impl(), s, mask, states, scratch);
                walk_us.push_back(us_since(t0));
                if (!advance_lexed(pool, s, tok->token_to_piece(t), out, scratch))
                    fail("bench_python_grammar: token %d rejected", t);
            }
        }
        std::vector<double> new_total(new_mask.size()), re_total(re_mask.size());
        for (size_t i = 0; i < new_mask.size(); ++i) new_total[i] = new_mask[i] + new_accept[i];
        for (size_t i = 0; i < re_mask.size(); ++i) re_total[i] = re_mask[i] + re_accept[i];
        std::printf("grammar %s, vocabulary %s (%d tokens), %zu document(s), %zu tokens, mean allowed per step %.0f\n",
                    grammar_path.c_str(), vocab_path.c_str(), V, docs.size(), n_tok,
                    static_cast<double>(allowed) / static_cast<double>(n_tok));
        std::printf("%-34s %9s %9s %9s %9s | %s\n", "us per token", "mean", "p50", "p99", "max", "mean / decode p50");
        auto row = [&](const char* what, const std::vector<double>& us) {
            const Stats s = stats(us);
            std::printf("%-34s %9.1f %9.1f %9.1f %9.1f | %s\n", what, s.mean, s.p50, s.p99, s.max,
                        decode_ms > 0 ? strfmt("%.1f%%", 100.0 * s.mean / 1000.0 / decode_ms).c_str() : "-");
        };
        row("new stage: mask + accept", new_total);
        row("new stage: mask (apply)", new_mask);
        row("new stage: accept", new_accept);
        row("reused stage: mask + accept", re_total);
        row("reused stage: mask (apply)", re_mask);
        row("uncached walk (no cache at all)", walk_us);
        return 0;
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
}
