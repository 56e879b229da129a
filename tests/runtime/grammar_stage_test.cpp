// The grammar sampler stage: its masks (trie walk + per-stack and per-state caches) against a
// brute-force reference (every token's text fed to a fresh copy of the matcher), over real
// vocabularies (llama2.c's 512-token one and llama.cpp's 32k llama-spm one, with byte tokens),
// along random walks; end-of-generation handling; prompt tokens; errors.
#include <gtest/gtest.h>

#include <map>
#include <random>

#include "core/error.h"
#include "model/vocab_source.h"
#include "runtime/grammar.h"
#include "runtime/grammar_internal.h"
#include "runtime/indent_lexer.h"
#include "runtime/sampler.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;
using test::src_path;

namespace {

std::shared_ptr<const Grammar> shipped(const std::string& name) {
    return Grammar::parse(test::read_file(src_path("grammars/" + name)), "root", name);
}

Candidates all_tokens(int32_t V, std::mt19937& rng) {
    Candidates c;
    std::uniform_real_distribution<float> u(-5, 5);
    c.items.resize(static_cast<size_t>(V));
    for (int32_t i = 0; i < V; ++i) c.items[static_cast<size_t>(i)] = {i, u(rng), 0};
    return c;
}

// Walks `steps` tokens: at each step the stage's survivors must equal the brute-force set.
void random_walk(const Tokenizer& tok, const std::shared_ptr<const GrammarVocab>& vocab,
                 const std::shared_ptr<const Grammar>& g, int steps, uint32_t seed, bool prefer_bytes = false) {
    auto stage = make_grammar_stage(g, vocab);
    GrammarMatcher ref(g);
    std::mt19937 rng(seed);
    SamplerContext ctx{&tok};
    const int32_t V = tok.n_vocab();
    for (int step = 0; step < steps; ++step) {
        Candidates c = all_tokens(V, rng);
        stage->apply(c, ctx);
        std::vector<int32_t> got;
        for (const Candidate& x : c.items) got.push_back(x.id);
        std::sort(got.begin(), got.end());
        std::vector<int32_t> want;
        for (int32_t id = 0; id < V; ++id) {
            if (tok.is_eog(id)) {
                if (ref.can_end()) want.push_back(id);
                continue;
            }
            if (tok.is_hidden(id)) continue;
            const std::string piece = tok.token_to_piece(id);
            if (piece.empty()) continue;
            GrammarMatcher m = ref;
            if (m.accept(piece)) want.push_back(id);
        }
        ASSERT_EQ(got, want) << g->source() << " seed " << seed << " step " << step;
        // Next token: a random survivor that is not EOG (byte tokens first when asked).
        std::vector<int32_t> pool;
        for (int32_t id : got)
            if (!tok.is_eog(id)) pool.push_back(id);
        if (prefer_bytes) {
            std::vector<int32_t> bytes;
            for (int32_t id : pool)
                if (tok.token_to_piece(id).size() == 1 && static_cast<uint8_t>(tok.token_to_piece(id)[0]) >= 0x80)
                    bytes.push_back(id);
            if (!bytes.empty() && rng() % 2) pool = bytes;
        }
        if (pool.empty()) break;
        const int32_t t = pool[rng() % pool.size()];
        stage->accept(t, ctx);
        ASSERT_TRUE(ref.accept(tok.token_to_piece(t)));
    }
}

}  // namespace

TEST(GrammarStage, MasksEqualBruteForceSmallVocab) {
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    auto tok = Tokenizer::create(load_vocab(tokp, 512));
    auto vocab = GrammarVocab::build(*tok);
    for (const char* name : {"json.gbnf", "arithmetic.gbnf", "list.gbnf", "c.gbnf", "chess.gbnf", "japanese.gbnf"})
        for (uint32_t seed = 1; seed <= 3; ++seed) random_walk(*tok, vocab, shipped(name), 40, seed, seed == 3);
}

TEST(GrammarStage, MasksEqualBruteForceLlamaSpm32k) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    auto tok = Tokenizer::create(load_vocab(gguf));
    ASSERT_EQ(tok->n_vocab(), 32000);
    auto vocab = GrammarVocab::build(*tok);
    random_walk(*tok, vocab, shipped("json.gbnf"), 8, 7);
    random_walk(*tok, vocab, shipped("japanese.gbnf"), 6, 8, true);  // byte tokens: partial UTF-8
}

TEST(GrammarStage, EndOfGenerationOnlyWhenComplete) {
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    auto tok = Tokenizer::create(load_vocab(tokp, 512));
    auto vocab = GrammarVocab::build(*tok);
    const int32_t eos = tok->eos();
    ASSERT_GE(eos, 0);
    ASSERT_TRUE(tok->is_eog(eos));
    SamplerContext ctx{tok.get()};
    std::mt19937 rng(1);
    auto stage = make_grammar_stage(Grammar::parse("root ::= \"a\" \"b\"?"), vocab);
    // Prompt tokens (accepted before the first apply) do not move the grammar.
    for (int32_t t : tok->encode("xyz zzz", true, false)) stage->accept(t, ctx);
    Candidates c = all_tokens(tok->n_vocab(), rng);
    stage->apply(c, ctx);
    for (const Candidate& x : c.items) {
        EXPECT_NE(x.id, eos);
        EXPECT_EQ(tok->token_to_piece(x.id).substr(0, 1), "a") << x.id;
    }
    stage->accept(tok->token_id("a"), ctx);
    c = all_tokens(tok->n_vocab(), rng);
    stage->apply(c, ctx);
    bool has_eos = false, has_b = false;
    for (const Candidate& x : c.items) {
        has_eos |= x.id == eos;
        has_b |= tok->token_to_piece(x.id) == "b";
        EXPECT_TRUE(x.id == eos || tok->token_to_piece(x.id) == "b") << x.id;
    }
    EXPECT_TRUE(has_eos);
    EXPECT_TRUE(has_b);
    stage->accept(tok->token_id("b"), ctx);
    c = all_tokens(tok->n_vocab(), rng);
    stage->apply(c, ctx);
    ASSERT_EQ(c.items.size(), 1u);  // complete and cannot continue: only EOG
    EXPECT_EQ(c.items[0].id, eos);
    // A token the grammar rejects cannot be accepted.
    EXPECT_THROW(stage->accept(tok->token_id("a"), ctx), Error);
    stage->reset();
    c = all_tokens(tok->n_vocab(), rng);
    stage->apply(c, ctx);
    EXPECT_GT(c.items.size(), 0u);
    for (const Candidate& x : c.items) EXPECT_NE(x.id, eos);
}

TEST(GrammarStage, NothingValidThrows) {
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    auto tok = Tokenizer::create(load_vocab(tokp, 512));
    auto vocab = GrammarVocab::build(*tok);
    SamplerContext ctx{tok.get()};
    std::mt19937 rng(1);
    // U+110000 is beyond Unicode: no UTF-8 text spells it.
    auto stage = make_grammar_stage(Grammar::parse("root ::= [\\U00110000]"), vocab);
    Candidates c = all_tokens(tok->n_vocab(), rng);
    try {
        stage->apply(c, ctx);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("no token can continue"), std::string::npos) << e.what();
    }
}

TEST(GrammarStage, WorksInTheSamplerChainWithFilters) {
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    auto tok = Tokenizer::create(load_vocab(tokp, 512));
    auto vocab = GrammarVocab::build(*tok);
    auto g = Grammar::parse("root ::= [0-9]+ \"!\"");
    SamplerParams sp;
    sp.temperature = 1.0f;
    sp.seed = 3;
    Sampler s(sp, tok.get());
    s.add_stage(make_grammar_stage(g, vocab), StageSlot::kFirst);
    s.accept(tok->bos());  // a prompt token
    std::vector<float> logits(static_cast<size_t>(tok->n_vocab()), 0.0f);
    const int32_t fav = tok->token_id("a");
    ASSERT_GE(fav, 0);
    logits[static_cast<size_t>(fav)] = 50;  // the model's favourite is not allowed
    std::string text;
    for (int i = 0; i < 64; ++i) {
        const int32_t t = s.sample(logits.data(), tok->n_vocab());
        if (tok->is_eog(t)) break;
        s.accept(t);
        text += tok->token_to_piece(t);
    }
    EXPECT_FALSE(text.empty());
    EXPECT_EQ(text.find('a'), std::string::npos);
    const GrammarCheck r = grammar_check(*g, text);
    EXPECT_TRUE(r.accepted || r.fail_offset == static_cast<int64_t>(text.size())) << text << ": " << r.reason;
}

// ------------------------------------------ grammars behind the indentation lexer (python.gbnf)

namespace {

// The reference for a lexer grammar: every token's text fed on its own through the lexer and a
// matcher (runtime/indent_lexer.h's indent_feed, then advance_bytes over one shared stack pool;
// no trie, no cache), and a sample of the tokens through a copy of an IndentedMatcher, the
// public API (a copy per token over all 32k tokens would take minutes: each copy starts with a
// cold stack pool).
class IndentedReference {
public:
    IndentedReference(std::shared_ptr<const Grammar> g) : g_(g), pool_(&g->impl()), ref_(g) {
        st_.st.stacks = pool_.initial();
    }
    bool accept(const std::string& piece) {
        std::string out;
        return ref_.accept(piece) && advance_lexed(pool_, st_, piece, out, scratch_);
    }
    bool can_end() const { return ref_.can_end(); }
    std::vector<int32_t> allowed(const Tokenizer& tok, std::mt19937& rng) {
        std::vector<int32_t> want;
        std::vector<std::pair<int32_t, bool>> sample;
        std::string out;
        for (int32_t id = 0; id < tok.n_vocab(); ++id) {
            if (tok.is_eog(id)) {
                if (ref_.can_end()) want.push_back(id);
                EXPECT_EQ(ref_.can_end(), lexed_can_end(pool_, st_, scratch_));
                continue;
            }
            if (tok.is_hidden(id)) continue;
            const std::string piece = tok.token_to_piece(id);
            if (piece.empty()) continue;
            LexMatchState s = st_;
            const bool ok = advance_lexed(pool_, s, piece, out, scratch_);
            if (ok) want.push_back(id);
            if (rng() % 1024 == 0 || (ok && rng() % 256 == 0)) sample.push_back({id, ok});
        }
        for (const auto& [id, ok] : sample) {
            IndentedMatcher m = ref_;
            EXPECT_EQ(m.accept(tok.token_to_piece(id)), ok) << "IndentedMatcher disagrees on token " << id;
        }
        return want;
    }

private:
    std::shared_ptr<const Grammar> g_;
    StackPool pool_;
    LexMatchState st_;
    std::vector<uint32_t> scratch_;
    IndentedMatcher ref_;
};

std::vector<int32_t> stage_survivors(SamplerStage& stage, const Tokenizer& tok, std::mt19937& rng) {
    Candidates c = all_tokens(tok.n_vocab(), rng);
    stage.apply(c, SamplerContext{&tok});
    std::vector<int32_t> got;
    for (const Candidate& x : c.items) got.push_back(x.id);
    std::sort(got.begin(), got.end());
    return got;
}

// Cuts a text into vocabulary tokens, longest piece first (as a model's output would be), with
// some non-ASCII characters spelled as byte tokens (partial UTF-8 states).
std::vector<int32_t> cut_text(const Tokenizer& tok, const std::string& text, bool bytes_for_non_ascii) {
    std::map<std::string, int32_t> by_piece;
    size_t max_len = 0;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
        if (tok.is_hidden(id) || tok.is_eog(id)) continue;
        const std::string p = tok.token_to_piece(id);
        if (p.empty()) continue;
        by_piece.emplace(p, id);
        max_len = std::max(max_len, p.size());
    }
    std::vector<int32_t> out;
    for (size_t i = 0; i < text.size();) {
        size_t len = std::min(max_len, text.size() - i);
        if (bytes_for_non_ascii && static_cast<uint8_t>(text[i]) >= 0x80) len = 1;
        for (; len > 0; --len) {
            auto it = by_piece.find(text.substr(i, len));
            if (it != by_piece.end()) {
                out.push_back(it->second);
                break;
            }
        }
        if (len == 0) return {};
        i += len;
    }
    return out;
}

const char* kPythonDoc = "import os\n"
                         "\n"
                         "class Stack:\n"
                         "    def __init__(self):\n"
                         "        self.items = []  # storage\n"
                         "\n"
                         "    def push(self, x):\n"
                         "        if x is None:\n"
                         "            raise ValueError('caf\xc3\xa9 \xe2\x82\xac')\n"
                         "        # a comment line\n"
                         "        self.items.append(x)\n"
                         "\n"
                         "\n"
                         "def main(n=3):\n"
                         "    s = Stack()\n"
                         "    for i in range(n):\n"
                         "        while i > 0:\n"
                         "            i -= 1\n"
                         "            s.push(i)\n"
                         "    return s\n";

}  // namespace

TEST(GrammarStage, IndentLexerMasksEqualBruteForceLlamaSpm32k) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    auto tok = Tokenizer::create(load_vocab(gguf));
    ASSERT_EQ(tok->n_vocab(), 32000);
    auto vocab = GrammarVocab::build(*tok);
    const auto g = shipped("python.gbnf");
    ASSERT_TRUE(g->uses_indent_lexer());
    SamplerContext ctx{tok.get()};
    std::mt19937 rng(11);
    int steps = 0, eog_allowed = 0;
    // 1. Along a program (and again with its non-ASCII characters as byte tokens): every step's
    //    mask equals the brute force, and end-of-generation is allowed at the end.
    for (bool bytes : {false, true}) {
        const std::vector<int32_t> toks = cut_text(*tok, kPythonDoc, bytes);
        ASSERT_FALSE(toks.empty());
        auto stage = make_grammar_stage(g, vocab);
        IndentedReference ref(g);
        for (size_t k = 0; k <= toks.size(); ++k) {
            const std::vector<int32_t> got = stage_survivors(*stage, *tok, rng);
            if (!bytes || k % 4 == 0 || static_cast<uint8_t>(tok->token_to_piece(toks[std::min(k, toks.size() - 1)])[0]) >= 0x80) {
                // (the second pass: every 4th step and the byte tokens, for time)
                ASSERT_EQ(got, ref.allowed(*tok, rng)) << "program step " << k << " bytes " << bytes;
                ++steps;
            }
            const bool eog = std::binary_search(got.begin(), got.end(), tok->eos());
            EXPECT_EQ(eog, ref.can_end()) << "step " << k;
            eog_allowed += eog;
            if (k == toks.size()) {
                EXPECT_TRUE(eog) << "the whole program must allow end-of-generation";
                break;
            }
            ASSERT_TRUE(std::binary_search(got.begin(), got.end(), toks[k])) << "program token " << k;
            stage->accept(toks[k], ctx);
            ASSERT_TRUE(ref.accept(tok->token_to_piece(toks[k])));
        }
    }
    // 2. Random walks over the survivors, preferring tokens with whitespace, newlines and
    //    punctuation (the indentation states), from a fresh stage and from a reused one.
    auto reused = make_grammar_stage(g, vocab);
    for (uint32_t seed = 1; seed <= 4; ++seed) {
        std::mt19937 r2(seed);
        std::unique_ptr<SamplerStage> fresh;
        SamplerStage* stage = reused.get();
        if (seed % 2) {
            fresh = make_grammar_stage(g, vocab);
            stage = fresh.get();
        } else {
            reused->reset();
            reused->accept(tok->bos(), ctx);  // a prompt token: does not move the grammar
        }
        IndentedReference ref(g);
        for (int step = 0; step < 10; ++step) {
            const std::vector<int32_t> got = stage_survivors(*stage, *tok, r2);
            ASSERT_EQ(got, ref.allowed(*tok, r2)) << "seed " << seed << " step " << step;
            ++steps;
            std::vector<int32_t> pool, shaped;
            for (int32_t id : got) {
                if (tok->is_eog(id)) continue;
                pool.push_back(id);
                const std::string p = tok->token_to_piece(id);
                if (p.find_first_of("\n :()'#") != std::string::npos) shaped.push_back(id);
            }
            if (pool.empty()) break;
            const std::vector<int32_t>& from = !shaped.empty() && r2() % 4 != 0 ? shaped : pool;
            const int32_t t = from[r2() % from.size()];
            stage->accept(t, ctx);
            ASSERT_TRUE(ref.accept(tok->token_to_piece(t)));
        }
    }
    std::printf("%d masks compared, end-of-generation allowed at %d program steps\n", steps, eog_allowed);
    // A token the lexer rejects (a tab in the indentation) is masked out and cannot be accepted.
    auto stage = make_grammar_stage(g, vocab);
    const std::vector<int32_t> first = stage_survivors(*stage, *tok, rng);
    int32_t tab = -1;
    for (int32_t id = 0; id < tok->n_vocab() && tab < 0; ++id)
        if (!tok->is_hidden(id) && tok->token_to_piece(id) == "\t") tab = id;
    ASSERT_GE(tab, 0);
    EXPECT_FALSE(std::binary_search(first.begin(), first.end(), tab));
    EXPECT_THROW(stage->accept(tab, ctx), Error);
}
