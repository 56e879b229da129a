// Speculative decoding (runtime/speculative.h) gives exactly the output of plain decoding —
// tokens, text, streamed pieces, finish reason — whatever the draft proposes: the real TinyStories
// 260K model drafting for itself (almost everything accepted), a random model with the same
// vocabulary (almost nothing accepted), drafts that propose nothing or ids outside the vocabulary;
// with stop strings, BOS ending the story, max tokens, a full context, cancellation, penalties
// and seeded sampling. Plus the vocabulary check, the MTP refusal and the hidden-state rows a
// draft such as DeepSeek's MTP head reads.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "runtime/speculative.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

// Every matrix whose rows are whole q8_0 blocks becomes q8_0 (others stay f32), in memory.
void quantize_matrices(ModelFiles& files) {
    const auto& kt = kernels::kernels();
    for (auto& [name, t] : files.tensors) {
        if (t.ndim() != 2 || t.dtype() != DType::F32 || t.shape()[1] % 32 != 0) continue;
        Tensor q = Tensor::empty(DType::Q8_0, t.shape(), t.name());
        for (int64_t r = 0; r < t.shape()[0]; ++r)
            kt.quantize_row[static_cast<int>(DType::Q8_0)](reinterpret_cast<const float*>(t.row(r)), q.row(r),
                                                           t.shape()[1]);
        t = q;
    }
}

// Every 2-D weight replaced by N(0, sd²) values (norms kept): another model, same vocabulary.
void randomize_matrices(ModelFiles& files, uint32_t seed, float sd) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> nd(0.0f, sd);
    for (auto& [name, t] : files.tensors) {
        if (t.ndim() != 2) continue;
        Tensor r = Tensor::empty(DType::F32, t.shape(), t.name());
        for (int64_t i = 0; i < r.numel(); ++i) r.ptr<float>()[i] = nd(rng);
        t = r;
    }
}

ContextParams cparams(int64_t n_ctx, int threads) {
    ContextParams cp;
    cp.n_ctx = n_ctx;
    cp.n_threads = threads;
    return cp;
}

struct Stories {
    std::string bin, tok;
    bool ok() const { return !bin.empty() && !tok.empty(); }
    ModelFiles files() const { return open_model_files(bin, tok); }
};

Stories stories() { return {asset("llama2c-stories260K/stories260K.bin"), asset("llama2c-stories260K/tok512.bin")}; }

#define REQUIRE_STORIES(s)                                                                            \
    const Stories s = stories();                                                                      \
    if (!s.ok()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K (set LLMFORGE_ASSETS)"

struct Out {
    GenerateResult r;
    std::vector<std::string> pieces;  // as streamed
    SpeculativeStats st;
};

struct Opts {
    GenerateParams gp;
    SamplerParams sp;
    int64_t n_ctx = 512;
    bool invariant = false;  // plain decoding in batch-invariant mode
    int cancel_after = -1;   // pieces
    int64_t n_draft = 5;
    Opts() {
        sp.temperature = 0;
        gp.max_tokens = 120;
        gp.stop_on_bos = true;
    }
};

std::vector<int32_t> prompt_of(const Tokenizer& tok, const std::string& text) {
    return tok.encode(text, true, false);
}

TextCallback collect(Out& run, const Opts& o) {
    return [&run, &o](std::string_view p) {
        run.pieces.emplace_back(p);
        return static_cast<int>(run.pieces.size()) != o.cancel_after;
    };
}

Out plain(const Model& m, const Tokenizer& tok, const std::vector<int32_t>& prompt, const Opts& o) {
    Context ctx(m, cparams(o.n_ctx, 1));
    ctx.scratch().batch_invariant = o.invariant;
    Sampler s(o.sp, &tok);
    Out run;
    run.r = generate(ctx, tok, s, prompt, o.gp, collect(run, o));
    return run;
}

Out run_spec(Context& ctx, DraftSource& draft, const Tokenizer& tok, const std::vector<int32_t>& prompt,
             const Opts& o) {
    Sampler s(o.sp, &tok);
    Out run;
    SpeculativeParams sp;
    sp.n_draft = o.n_draft;
    run.r = generate_speculative(ctx, draft, tok, s, prompt, o.gp, sp, &run.st, collect(run, o));
    return run;
}

Out speculative(const Model& m, DraftSource& draft, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                const Opts& o) {
    Context ctx(m, cparams(o.n_ctx, 1));
    return run_spec(ctx, draft, tok, prompt, o);
}

Out with_model_draft(const Model& m, const Model& d, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                     const Opts& o) {
    Context ctx(m, cparams(o.n_ctx, 1));
    ModelDraft draft(d, ctx, "draft");
    return run_spec(ctx, draft, tok, prompt, o);
}

void expect_same(const Out& a, const Out& b, const std::string& what) {
    ASSERT_FALSE(a.r.tokens.empty()) << what;  // never vacuous
    EXPECT_EQ(a.r.tokens, b.r.tokens) << what;
    EXPECT_EQ(a.r.text, b.r.text) << what;
    EXPECT_EQ(a.pieces, b.pieces) << what;
    EXPECT_EQ(a.r.finish_reason, b.r.finish_reason) << what;
}

// The proposal's bookkeeping adds up.
void expect_consistent(const Out& s) {
    EXPECT_LE(s.st.accepted, s.st.proposed);
    EXPECT_GE(s.st.rounds, 1);
    // Each round emits its accepted drafts plus at most one token of its own.
    EXPECT_LE(s.st.round_tokens, s.st.accepted + s.st.rounds);
    EXPECT_GE(s.st.round_tokens + 1, static_cast<int64_t>(s.r.tokens.size()));
}

TEST(Speculative, SelfDraftF32EqualsPlainGreedy) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    auto tok = Tokenizer::create(m->vocab());
    for (const std::string p : {"", "Tom had a dog", "The sun was"}) {
        Opts o;
        o.gp.max_tokens = 400;  // the stories end with BOS before that
        const Out s = with_model_draft(*m, *m, *tok, prompt_of(*tok, p), o);
        Opts oi = o;
        oi.invariant = true;
        expect_same(s, plain(*m, *tok, prompt_of(*tok, p), oi), "invariant plain, prompt '" + p + "'");
        // This real model's logits have no rounding ties: plain decoding agrees too.
        expect_same(s, plain(*m, *tok, prompt_of(*tok, p), o), "plain, prompt '" + p + "'");
        EXPECT_EQ(s.r.finish_reason, "stop") << p;  // BOS ended the story
        expect_consistent(s);
        EXPECT_GT(s.st.acceptance(), 0.95) << p;
        EXPECT_GT(s.st.tokens_per_forward(), 4.0) << p;
    }
}

// All matrices q8_0 with whole blocks (ffn 192, random FFN): every gemm is row-invariant, so a
// verification row is bit-identical to plain decoding's one-row step, and a model drafting for
// itself has every token accepted.
TEST(Speculative, RowInvariantModelDraftingForItselfAcceptsEverything) {
    REQUIRE_STORIES(st);
    ModelFiles files = st.files();
    files.config.n_ff = 192;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.08f);
    const int64_t C = files.config.n_embd;
    for (int64_t l = 0; l < files.config.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        for (auto [name, shape] : {std::pair<std::string, std::vector<int64_t>>{"ffn_gate.weight", {192, C}},
                                   {"ffn_up.weight", {192, C}},
                                   {"ffn_down.weight", {C, 192}}}) {
            Tensor t = Tensor::empty(DType::F32, shape, p + name);
            for (int64_t i = 0; i < t.numel(); ++i) t.ptr<float>()[i] = nd(rng);
            files.tensors[p + name] = t;
        }
    }
    quantize_matrices(files);
    auto m = Model::from_files(std::move(files));
    ASSERT_TRUE(m->rows_batch_invariant());
    auto tok = Tokenizer::create(m->vocab());
    Opts o;
    o.gp.max_tokens = 150;
    o.gp.stop_on_bos = false;
    for (int64_t k : {1, 4, 8}) {
        o.n_draft = k;
        const Out s = with_model_draft(*m, *m, *tok, prompt_of(*tok, "Once upon a time"), o);
        expect_same(s, plain(*m, *tok, prompt_of(*tok, "Once upon a time"), o), "k=" + std::to_string(k));
        EXPECT_EQ(s.r.tokens.size(), 150u);
        EXPECT_EQ(s.st.accepted, s.st.proposed) << k;
        EXPECT_GT(s.st.proposed, 0) << k;
        expect_consistent(s);
    }
}

TEST(Speculative, RandomDraftWithTheSameVocabularyStillGivesThePlainOutput) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    ModelFiles df = st.files();
    randomize_matrices(df, 7, 0.1f);
    auto d = Model::from_files(std::move(df));
    auto tok = Tokenizer::create(m->vocab());
    Opts o;
    o.gp.max_tokens = 300;
    for (int64_t k : {1, 3, 8}) {
        o.n_draft = k;
        const Out s = with_model_draft(*m, *d, *tok, prompt_of(*tok, "Lily"), o);
        expect_same(s, plain(*m, *tok, prompt_of(*tok, "Lily"), o), "k=" + std::to_string(k));
        EXPECT_LT(s.st.acceptance(), 0.3) << k;
        EXPECT_GT(s.st.proposed, 100) << k;
        expect_consistent(s);
    }
}

// Stop strings (also across a round's tokens), max tokens at every offset inside a round, a
// context that fills up, cancellation: the ends and the streamed pieces are plain decoding's.
TEST(Speculative, EndingsAreThoseOfPlainDecoding) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    ModelFiles df = st.files();
    randomize_matrices(df, 11, 0.05f);
    auto rnd = Model::from_files(std::move(df));
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> prompt = prompt_of(*tok, "Once upon a time");
    for (const Model* d : {m.get(), rnd.get()}) {
        const std::string who = d == m.get() ? "self draft" : "random draft";
        for (int64_t k : {2, 5}) {
            Opts o;
            o.n_draft = k;
            for (const char* stop : {"park", "named Lily", ". She", "\n"}) {
                Opts os = o;
                os.gp.stop = {stop, "zzzz"};
                const Out s = with_model_draft(*m, *d, *tok, prompt, os);
                expect_same(s, plain(*m, *tok, prompt, os), who + " stop '" + stop + "'");
                EXPECT_EQ(s.r.finish_reason, "stop") << stop;
            }
            for (int64_t n : {1, 2, 3, 4, 5, 6, 7, 13}) {
                Opts on = o;
                on.gp.max_tokens = n;
                const Out s = with_model_draft(*m, *d, *tok, prompt, on);
                expect_same(s, plain(*m, *tok, prompt, on), who + " max " + std::to_string(n));
                EXPECT_EQ(s.r.tokens.size(), static_cast<size_t>(n));
            }
            Opts oc = o;
            oc.n_ctx = 40;  // fills up before max tokens
            oc.gp.max_tokens = 100;
            const Out full = with_model_draft(*m, *d, *tok, prompt, oc);
            expect_same(full, plain(*m, *tok, prompt, oc), who + " full context");
            EXPECT_EQ(full.r.finish_reason, "length");
            Opts ox = o;
            ox.cancel_after = 7;
            const Out c = with_model_draft(*m, *d, *tok, prompt, ox);
            expect_same(c, plain(*m, *tok, prompt, ox), who + " cancelled");
            EXPECT_EQ(c.r.finish_reason, "cancelled");
        }
    }
}

// The sampler chain sees every accepted token: penalties under greedy, and the seeded draw
// (temperature > 0) takes one number per step as in plain decoding — same seed, same text.
TEST(Speculative, PenaltiesAndSeededSamplingMatchPlainDecoding) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> prompt = prompt_of(*tok, "Tom");
    Opts o;
    o.gp.max_tokens = 300;
    o.sp.repeat_penalty = 1.3f;
    o.sp.presence_penalty = 0.2f;
    const Out pen = with_model_draft(*m, *m, *tok, prompt, o);
    expect_same(pen, plain(*m, *tok, prompt, o), "penalties");
    for (uint64_t seed : {1u, 2u, 3u}) {
        Opts os;
        os.gp.max_tokens = 300;
        os.sp = SamplerParams{};
        os.sp.temperature = 0.8f;
        os.sp.seed = seed;
        const Out s = with_model_draft(*m, *m, *tok, prompt, os);
        expect_same(s, plain(*m, *tok, prompt, os), "seed " + std::to_string(seed));
        EXPECT_GT(s.st.accepted, 0) << seed;
        EXPECT_LT(s.st.accepted, s.st.proposed) << seed;  // draws that differ from the draft's argmax
    }
}

// Drafts that propose nothing, or ids outside the vocabulary.
class FixedDraft final : public DraftSource {
public:
    explicit FixedDraft(std::vector<int32_t> ids) : ids_(std::move(ids)) {}
    std::string name() const override { return "fixed"; }
    void start(const std::vector<int32_t>&, const float*) override {}
    std::vector<int32_t> propose(const std::vector<int32_t>&, int64_t n) override {
        std::vector<int32_t> out = ids_;
        if (static_cast<int64_t>(out.size()) > n + 3) out.resize(n + 3);  // more than asked: cut
        return out;
    }
    void verified(int64_t, int64_t, const float*) override {}

private:
    std::vector<int32_t> ids_;
};

TEST(Speculative, EmptyAndInvalidProposalsAreHarmless) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> prompt = prompt_of(*tok, "A cat");
    Opts o;
    o.gp.max_tokens = 60;
    const Out ref = plain(*m, *tok, prompt, o);
    Opts oi = o;
    oi.invariant = true;
    const Out ref_inv = plain(*m, *tok, prompt, oi);
    FixedDraft none({});
    const Out a = speculative(*m, none, *tok, prompt, o);
    expect_same(a, ref_inv, "no proposals");
    EXPECT_EQ(a.st.proposed, 0);
    EXPECT_EQ(a.st.rounds, 59);  // one forward per token after the prefill's
    FixedDraft bad({5, 600, -1, 7, 8, 9, 10, 11, 12});
    const Out b = speculative(*m, bad, *tok, prompt, o);
    expect_same(b, ref, "ids out of range");
    EXPECT_LE(b.st.proposed, b.st.rounds);  // only the first id is ever checked
}

TEST(Speculative, DraftVocabularyMustMatch) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    ModelFiles df = st.files();
    df.vocab.tokens[300] = "zzz";
    auto d = Model::from_files(std::move(df));
    Context ctx(*m, cparams(64, 1));
    try {
        ModelDraft draft(*d, ctx, "d.gguf");
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("d.gguf"), std::string::npos) << msg;
        EXPECT_NE(msg.find("token 300"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
    ModelFiles ef = st.files();
    ef.vocab.eos_id = 5;
    auto e = Model::from_files(std::move(ef));
    EXPECT_THROW(check_draft_vocab(*m, *e, "e.gguf"), Error);
    EXPECT_NO_THROW(check_draft_vocab(*m, *m, "same"));
}

TEST(Speculative, MtpOnAModelWithoutMtpWeightsIsOneClearError) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    Context ctx(*m, cparams(64, 1));
    try {
        make_mtp_draft(*m, ctx, "stories.bin");
        FAIL() << "no error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("no multi-token-prediction (MTP) weights"), std::string::npos) << msg;
        EXPECT_NE(msg.find("stories.bin"), std::string::npos) << msg;
    }
}

// A draft reading the main model's hidden states (as an MTP head does) gets the prompt's rows,
// then each round's accepted rows, at the right positions: compared with one forward over the
// whole final sequence.
class HiddenDraft final : public DraftSource {
public:
    explicit HiddenDraft(int64_t C) : C_(C) {}
    std::string name() const override { return "hidden"; }
    bool needs_hidden() const override { return true; }
    void start(const std::vector<int32_t>& prompt, const float* hidden) override {
        EXPECT_NE(hidden, nullptr);
        rows_.assign(hidden, hidden + prompt.size() * C_);
    }
    std::vector<int32_t> propose(const std::vector<int32_t>& seq, int64_t n) override {
        // Alternate good and bad guesses: a few tokens of a known continuation, when it matches.
        std::vector<int32_t> out;
        const size_t at = seq.size();
        for (int64_t i = 0; i < n && at + i < truth.size(); ++i)
            out.push_back(i == 2 ? 0 : truth[at + i]);
        return out;
    }
    void verified(int64_t pos0, int64_t n_accepted, const float* hidden) override {
        EXPECT_EQ(pos0 * C_, static_cast<int64_t>(rows_.size()));
        rows_.insert(rows_.end(), hidden, hidden + (n_accepted + 1) * C_);
    }
    std::vector<int32_t> truth;  // the plain output's whole sequence
    std::vector<float> rows_;

private:
    int64_t C_;
};

TEST(Speculative, HiddenRowsReachTheDraftAtTheirPositions) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> prompt = prompt_of(*tok, "Once upon a time");
    Opts o;
    o.gp.max_tokens = 40;
    o.gp.stop_on_bos = false;
    const Out ref = plain(*m, *tok, prompt, o);
    const int64_t C = m->config().n_embd;
    HiddenDraft d(C);
    d.truth = prompt;
    d.truth.insert(d.truth.end(), ref.r.tokens.begin(), ref.r.tokens.end());
    const Out s = speculative(*m, d, *tok, prompt, o);
    expect_same(s, ref, "hidden draft");
    EXPECT_GT(s.st.accepted, 10);
    EXPECT_LT(s.st.accepted, s.st.proposed);
    // Rows for every position but the last token's (run by the main model only when it was an
    // accepted draft).
    const int64_t n = static_cast<int64_t>(d.rows_.size()) / C;
    const int64_t all = static_cast<int64_t>(d.truth.size());
    ASSERT_TRUE(n == all - 1 || n == all) << n << " rows for " << all << " tokens";
    Context ctx(*m, cparams(512, 1));
    ctx.scratch().keep_hidden = true;
    ctx.decode(std::vector<int32_t>(d.truth.begin(), d.truth.begin() + n));
    EXPECT_LT(rel_err(d.rows_.data(), ctx.scratch().hidden.data(), static_cast<size_t>(n * C)), 1e-4);
}

// DeepSeek-V3's MTP module as the draft (a random V3-shaped model with one MTP block, made with
// init-model): the output is plain decoding's, one guess per round, and every guess is what the
// module gives for that position run over the whole final sequence at once (its KV rows were
// written right, from the right hidden rows and tokens).
const char* kMtpConfig = R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":320,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"num_experts_per_tok":2,"first_k_dense_replace":1,
"routed_scaling_factor":2.5,"norm_topk_prob":true,"scoring_func":"sigmoid","topk_method":"noaux_tc","n_group":2,
"topk_group":1,"kv_lora_rank":32,"q_lora_rank":24,"qk_rope_head_dim":8,"qk_nope_head_dim":16,"v_head_dim":16,
"num_nextn_predict_layers":1,"max_position_embeddings":256,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";

TEST(Speculative, MtpDraftGuessesWhatTheModuleGivesOverTheWholeSequence) {
    const std::string dir = temp_dir();
    write_file(dir + "/v3.json", kMtpConfig);
    const std::string path = dir + "/v3-mtp.gguf";
    ASSERT_EQ(run_command(cli_path() + " init-model --hf-config '" + dir + "/v3.json' --seed 5 -o '" + path +
                          "' 2>/dev/null"),
              0);
    auto m = Model::load(path);
    ASSERT_TRUE(m->has_mtp());
    auto tok = Tokenizer::create(m->vocab());
    const std::vector<int32_t> prompt{1, 40, 77, 100, 200, 31, 90};
    Opts o;
    o.gp.max_tokens = 40;
    o.gp.stop_on_bos = false;
    o.n_draft = 4;  // the module guesses one token per round anyway
    Opts oi = o;
    oi.invariant = true;
    const Out ref = plain(*m, *tok, prompt, oi);
    ASSERT_EQ(ref.r.tokens.size(), 40u);

    Context ctx(*m, cparams(o.n_ctx, 1));
    MtpDraft draft(ctx, path);
    const int64_t V = m->config().n_vocab;
    std::vector<std::pair<int64_t, std::vector<float>>> guesses;
    draft.on_propose = [&](int64_t pos, const float* l) { guesses.push_back({pos, std::vector<float>(l, l + V)}); };
    const Out s = run_spec(ctx, draft, *tok, prompt, o);
    expect_same(s, ref, "mtp draft");
    // One guess per round (none in the last, with one token left to go).
    EXPECT_EQ(s.st.proposed, s.st.rounds - 1);
    ASSERT_EQ(static_cast<int64_t>(guesses.size()), s.st.proposed);
    ASSERT_GT(s.st.proposed, 20);

    // The module over the final sequence: row i (hidden i, token i+1) guesses token i+2.
    std::vector<int32_t> all = prompt;
    all.insert(all.end(), s.r.tokens.begin(), s.r.tokens.end());
    const int64_t n = static_cast<int64_t>(all.size());
    ThreadPool pool(1);
    ForwardScratch fs;
    fs.keep_hidden = true;
    auto mem = m->new_memory(256);
    std::vector<float> last(V);
    m->forward(all.data(), n, 0, *mem, last.data(), 1, pool, fs);
    const std::vector<float> hidden = fs.hidden;
    std::vector<float> full(static_cast<size_t>((n - 1) * V));
    m->forward_mtp(hidden.data(), all.data() + 1, n - 1, 0, *mem, full.data(), n - 1, pool, fs);
    for (const auto& [pos, logits] : guesses) {
        ASSERT_GE(pos, 2);
        ASSERT_LT(pos, n);
        EXPECT_LT(rel_err(logits.data(), full.data() + (pos - 2) * V, static_cast<size_t>(V)), 1e-3) << pos;
    }
}

TEST(Speculative, MtpDraftRefusesPromptAdapters) {
    REQUIRE_STORIES(st);
    auto m = Model::from_files(st.files());
    Context ctx(*m, cparams(64, 1));
    EXPECT_THROW(MtpDraft(ctx, "x"), Error);  // stories260K: no MTP weights
}

}  // namespace
