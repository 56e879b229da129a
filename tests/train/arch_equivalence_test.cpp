// One definition per architecture (model/arch): for every registered architecture the trainer's
// forward (TapeOps on the autograd tape) and the engine's (EagerOps on the fused kernels with a
// KV memory) must compute the same logits — short and long prompts (the per-position attention
// kernel and the blocked BLAS path), several sequences in one batch, batch-invariant mode, and
// cached decode (Mistral's window past its length) — and the tape's backward through the shared
// definition must match finite differences. Needs no shared asset: the models are random.
//
// Also: a frozen q8_0 base with one trainable tensor trains (issue 13).
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>

#include "core/random.h"
#include "kernels/cpu/kernels.h"
#include "train/ops.h"
#include "train/optimizer.h"
#include "train/train_model.h"
#include "test_util.h"

namespace llmforge::train {
namespace {

using test::rel_err;

struct Case {
    std::string name, arch;
    bool tied = false;
    int64_t window = 0;
    int64_t head_dim = 0;  // 0: dim / heads
    int64_t head_dim_v = 0;  // 0: head_dim
    std::vector<int64_t> layer_n_ff;  // per-layer FFN widths (empty: n_ff everywhere)
    // DeepSeek (MLA + MoE): 1 V2-Lite-like (queries straight from the hidden state, softmax
    // routing, no norm), 2 V3-like (q_a/q_b, sigmoid routing with the selection bias, groups,
    // normalised and scaled weights).
    int deepseek = 0;
    bool lsh = false;  // LSH attention (issue 18): 4 buckets x 2 rounds, window 3
};

std::string case_name(const testing::TestParamInfo<Case>& i) { return i.param.name; }

ModelConfig tiny_config(const Case& k) {
    ModelConfig c;
    c.arch = k.arch;
    c.name = k.name;
    c.n_vocab = 53;
    c.n_embd = 32;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = k.head_dim ? k.head_dim : 8;
    c.head_dim_v = k.head_dim_v;
    c.layer_n_ff = k.layer_n_ff;
    c.n_ff = 40;
    c.n_ctx_train = 64;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.tied_embeddings = k.tied;
    c.sliding_window = k.window;
    if (k.lsh) {
        c.attention_lsh = true;
        c.lsh.n_buckets = 4;
        c.lsh.n_hashes = 2;
        c.lsh.window = 3;
        c.lsh.seed = 19;
    }
    if (k.deepseek) {
        DeepSeekConfig& d = c.ds;
        d.kv_lora_rank = 12;
        d.qk_rope_head_dim = 4;
        d.qk_nope_head_dim = 6;
        c.head_dim = 10;
        c.head_dim_v = 7;
        c.n_rot = 4;
        c.n_head_kv = c.n_head;
        c.rope_interleaved = true;
        d.n_routed_experts = 8;
        d.n_experts_used = 2;
        d.n_shared_experts = 1;
        d.moe_ff = 10;
        d.first_k_dense = 1;  // layer 0 dense, layer 1 MoE
        if (k.deepseek == 2) {
            d.q_lora_rank = 16;
            d.gating = MoeGating::kSigmoid;
            d.n_group = 4;
            d.topk_group = 2;
            d.norm_topk_prob = true;
            d.routed_scaling = 2.5f;
        }
    }
    return c;
}

// A random model with weights large enough that attention is far from uniform and the logits
// spread: matrices N(0, 0.3²)-ish, norm gains 1 ± 0.2, biases ± 0.1.
std::unique_ptr<TrainModel> random_model(const Case& k) {
    auto m = TrainModel::init_random(tiny_config(k), 7);
    uint64_t s = 11;
    for (auto& p : m->params()) {
        const bool vec = p->shape.size() == 1;
        for (int64_t i = 0; i < p->numel(); ++i) {
            const float u = static_cast<float>(uniform53(splitmix64(s)) * 2 - 1);
            p->value[i] = vec ? (p->name.find("norm") != std::string::npos ? 1.0f + 0.2f * u : 0.1f * u)
                              : p->value[i] * 15.0f;
        }
    }
    return m;
}

std::vector<int32_t> tokens(int64_t n, uint64_t seed, int64_t V) {
    std::vector<int32_t> t(static_cast<size_t>(n));
    for (auto& x : t) x = static_cast<int32_t>(splitmix64(seed) % static_cast<uint64_t>(V));
    return t;
}

// The trainer's logits (B·T, V) for B sequences of T tokens.
std::vector<float> train_logits(TrainModel& m, const std::vector<int32_t>& ids, int64_t B, int64_t T, ThreadPool& pool) {
    Tape tape(pool);
    tape.grad_enabled = false;
    Var y = m.logits(tape, ids.data(), B, T);
    return std::vector<float>(y->data, y->data + y->numel);
}

// The engine's logits of every token of each sequence, all sequences in one forward_batch.
std::vector<std::vector<float>> engine_logits(const Model& m, const std::vector<std::vector<int32_t>>& seqs,
                                              bool invariant, ThreadPool& pool, bool last_only = false) {
    const int64_t V = m.config().n_vocab;
    std::vector<std::unique_ptr<KvMemory>> mem;
    std::vector<std::vector<float>> out(seqs.size());
    std::vector<SeqBatch> batch;
    for (size_t j = 0; j < seqs.size(); ++j) {
        mem.push_back(m.new_memory(64));
        const int64_t n = static_cast<int64_t>(seqs[j].size()), n_out = last_only ? 1 : n;
        out[j].resize(n_out * V);
        batch.push_back(SeqBatch{mem[j].get(), seqs[j].data(), n, 0, out[j].data(), n_out});
    }
    ForwardScratch s;
    s.batch_invariant = invariant;
    m.forward_batch(batch.data(), static_cast<int64_t>(batch.size()), pool, s);
    return out;
}

class ArchEquivalence : public testing::TestWithParam<Case> {};

TEST_P(ArchEquivalence, TrainingLogitsEqualInferenceLogits) {
    ThreadPool pool(2);
    auto m = random_model(GetParam());
    const Model& inf = m->inference();
    const int64_t V = inf.config().n_vocab;
    for (bool invariant : {false, true}) {
        SCOPED_TRACE(invariant ? "batch-invariant" : "default");
        // T < 16 (one-position attention kernel) and T >= 16 (blocked BLAS attention), alone.
        for (int64_t T : {7, 37}) {
            const auto ids = tokens(T, 100 + T, V);
            const auto ref = train_logits(*m, ids, 1, T, pool);
            const auto got = engine_logits(inf, {ids}, invariant, pool);
            EXPECT_LT(rel_err(got[0].data(), ref.data(), ref.size()), 1e-5) << "T = " << T;
        }
        // Several sequences of different lengths in one engine batch, each against the trainer.
        const std::vector<std::vector<int32_t>> seqs = {tokens(5, 1, V), tokens(21, 2, V), tokens(1, 3, V), tokens(12, 4, V)};
        const auto got = engine_logits(inf, seqs, invariant, pool);
        for (size_t j = 0; j < seqs.size(); ++j) {
            const auto ref = train_logits(*m, seqs[j], 1, static_cast<int64_t>(seqs[j].size()), pool);
            EXPECT_LT(rel_err(got[j].data(), ref.data(), ref.size()), 1e-5) << "sequence " << j;
        }
        // Batches asking only each sequence's last logits (the output rows are gathered; two rows
        // is also the size of a doubled lone row).
        for (size_t k : {seqs.size(), size_t{2}}) {
            const std::vector<std::vector<int32_t>> some(seqs.begin(), seqs.begin() + k);
            const auto last = engine_logits(inf, some, invariant, pool, true);
            for (size_t j = 0; j < k; ++j)
                EXPECT_LT(rel_err(last[j].data(), got[j].data() + (seqs[j].size() - 1) * V, V), 1e-5)
                    << "last row of " << j << " of " << k;
        }
    }
    // Several sequences in one training batch (B = 3) against the engine one by one.
    const int64_t T = 17;
    const auto ids = tokens(3 * T, 9, V);
    const auto ref = train_logits(*m, ids, 3, T, pool);
    for (int64_t b = 0; b < 3; ++b) {
        const std::vector<int32_t> one(ids.begin() + b * T, ids.begin() + (b + 1) * T);
        const auto got = engine_logits(inf, {one}, false, pool);
        EXPECT_LT(rel_err(got[0].data(), ref.data() + b * T * V, T * V), 1e-5) << "batch row " << b;
    }
}

// Cached decode (a prompt, then one token at a time through the KV memory) equals the trainer's
// full-sequence logits; for Mistral this runs well past the window.
TEST_P(ArchEquivalence, CachedDecodeEqualsFullSequence) {
    ThreadPool pool(2);
    auto m = random_model(GetParam());
    const Model& inf = m->inference();
    const int64_t V = inf.config().n_vocab, T = 30, prompt = 19;
    const auto ids = tokens(T, 77, V);
    const auto ref = train_logits(*m, ids, 1, T, pool);
    auto mem = inf.new_memory(64);
    ForwardScratch s;
    std::vector<float> out(static_cast<size_t>(prompt * V));
    inf.forward(ids.data(), prompt, 0, *mem, out.data(), prompt, pool, s);
    EXPECT_LT(rel_err(out.data(), ref.data(), prompt * V), 1e-5) << "prompt";
    for (int64_t p = prompt; p < T; ++p) {
        inf.forward(ids.data() + p, 1, p, *mem, out.data(), 1, pool, s);
        EXPECT_LT(rel_err(out.data(), ref.data() + p * V, V), 1e-5) << "position " << p;
    }
}

// The tape's gradient of L = Σ logits · r with respect to entries of every parameter kind,
// against central differences through the same (shared) forward definition.
TEST_P(ArchEquivalence, BackwardMatchesFiniteDifferences) {
    ThreadPool pool(2);
    auto m = random_model(GetParam());
    const int64_t V = m->config().n_vocab, B = 2, T = 9;
    const auto ids = tokens(B * T, 5, V);
    std::vector<float> r(static_cast<size_t>(B * T * V));
    uint64_t s = 3;
    for (float& x : r) x = static_cast<float>(uniform53(splitmix64(s)) * 2 - 1);
    Tape tape(pool);
    auto loss = [&](bool grad) {
        tape.reset();
        tape.grad_enabled = grad;
        m->moe_stats.clear();
        Var y = m->logits(tape, ids.data(), B, T);
        double l = 0;
        for (int64_t i = 0; i < y->numel; ++i) l += static_cast<double>(y->data[i]) * r[i];
        return std::make_pair(l, y);
    };
    for (auto& p : m->params()) p->grad.zero();
    auto [l0, y] = loss(true);
    // MoE: a step of h may change which experts a token is routed to (a jump, not a derivative):
    // such samples are skipped (the forwards run with gradients on, untaped, to count the load).
    const auto load0 = m->moe_stats.load;
    const uint64_t lsh0 = m->lsh_fingerprint;
    int skipped = 0, samples = 0;
    auto fd_loss = [&]() {
        if (load0.empty() && !m->config().attention_lsh) return loss(false).first;
        const double l = loss(true).first;
        tape.reset();
        return l;
    };
    std::copy(r.begin(), r.end(), tape.grad(y));
    tape.backward(tape.make({1}, false));
    int checked = 0;
    for (auto& p : m->params()) {
        uint64_t pick = std::hash<std::string>()(p->name);
        double max_diff = 0, max_ref = 0;
        for (int k = 0; k < 4; ++k) {
            const int64_t i = static_cast<int64_t>(splitmix64(pick) % static_cast<uint64_t>(p->numel()));
            const float orig = p->value[i], h = 2e-3f;
            p->value[i] = orig + h;
            const double lp = fd_loss();
            const bool moved_p = m->moe_stats.load != load0 || m->lsh_fingerprint != lsh0;
            p->value[i] = orig - h;
            const double lm = fd_loss();
            const bool moved_m = m->moe_stats.load != load0 || m->lsh_fingerprint != lsh0;
            p->value[i] = orig;
            ++samples;
            if (moved_p || moved_m) {
                ++skipped;
                continue;
            }
            const double fd = (lp - lm) / (2.0 * h);
            max_diff = std::max(max_diff, std::abs(fd - p->grad[i]));
            max_ref = std::max(max_ref, std::abs(fd));
        }
        if (max_ref < 1e-3) continue;  // entries with a negligible effect: nothing to compare
        // 2% of the largest, plus the f32 rounding of a 1000-term weighted sum over 2h (~1e-3).
        EXPECT_LT(max_diff, 2e-2 * max_ref + 1e-3) << p->name << ": max |fd - analytic| = " << max_diff
                                                   << " (largest fd " << max_ref << ")";
        ++checked;
    }
    EXPECT_GT(checked, static_cast<int>(m->params().size()) / 2);
    EXPECT_LT(skipped, samples / 4) << "too many samples changed the routing or the buckets";
}

INSTANTIATE_TEST_SUITE_P(Archs, ArchEquivalence,
                         testing::Values(Case{"llama_untied", "llama"}, Case{"llama_tied", "llama", true},
                                         Case{"qwen2", "qwen2", true}, Case{"qwen3", "qwen3", false, 0, 12},
                                         Case{"mistral_window", "mistral", false, 5},
                                         // Values with their own head size (as MLA's): (N, H·Dv) out.
                                         Case{"llama_value_dim", "llama", false, 3, 8, 6},
                                         // Each layer its own FFN width.
                                         Case{"qwen2_layer_ffn", "qwen2", false, 0, 8, 0, {40, 24}},
                                         // MLA (plain form on the tape, absorbed in the engine) and MoE.
                                         Case{"deepseek_v2_lite", "deepseek2", false, 0, 0, 0, {}, 1},
                                         Case{"deepseek_v3", "deepseek2", true, 0, 0, 0, {}, 2},
                                         // LSH attention (issue 18), also with a sliding window and
                                         // values of their own size.
                                         Case{"llama_lsh", "llama", false, 0, 0, 0, {}, 0, true},
                                         Case{"mistral_window_lsh", "mistral", false, 5, 8, 6, {}, 0, true}),
                         case_name);

// ---- a frozen quantised base ------------------------------------------------------------------

// Every matrix of a random llama quantised to q8_0 (1-D tensors stay f32), as a loader hands it.
ModelFiles q8_files(const TrainModel& m) {
    ModelFiles f;
    f.path = "q8-base";
    f.format = "gguf";
    f.config = m.config();
    const auto& kt = kernels::kernels();
    for (const auto& p : m.params()) {
        if (p->shape.size() == 1) {
            Tensor t = Tensor::empty(DType::F32, p->shape, p->name);
            std::memcpy(t.data(), p->value.data(), static_cast<size_t>(p->numel()) * sizeof(float));
            f.tensors[p->name] = t;
            continue;
        }
        Tensor t = Tensor::empty(DType::Q8_0, p->shape, p->name);
        const int64_t cols = p->shape[1];
        for (int64_t r = 0; r < p->shape[0]; ++r)
            kt.quantize_row[static_cast<int>(DType::Q8_0)](p->value.data() + r * cols, t.row(r), cols);
        f.tensors[p->name] = t;
    }
    return f;
}

TEST(FrozenBase, Q8BaseWithOneTrainableTensorTrains) {
    ModelConfig c = tiny_config(Case{"q8", "llama"});
    c.n_embd = 64;
    c.n_ff = 96;
    c.n_vocab = 70;
    c.head_dim = 16;
    ThreadPool pool(2);
    const ModelFiles files = q8_files(*TrainModel::init_random(c, 3));
    const std::string target = "blk.1.ffn_down.weight";
    auto m = TrainModel::from_files(files, [&](const std::string& n) { return n == target; });
    ASSERT_EQ(m->params().size(), 1u);
    EXPECT_EQ(m->params()[0]->name, target);
    EXPECT_EQ(m->params()[0]->numel(), c.n_embd * c.n_ff);
    // The frozen base is the file's bytes: same memory, its dtype, no master copy or gradient.
    size_t frozen_bytes = 0, file_bytes = 0;
    for (const auto& p : m->frozen()) {
        EXPECT_FALSE(p->trainable);
        EXPECT_EQ(p->value.size(), 0) << p->name;
        EXPECT_EQ(p->grad.size(), 0) << p->name;
        const Tensor& src = files.tensors.at(p->name);
        EXPECT_EQ(p->frozen.data(), src.data()) << p->name << " was copied";
        EXPECT_EQ(p->frozen.dtype(), src.dtype());
        frozen_bytes += p->frozen.nbytes();
    }
    for (const auto& [name, t] : files.tensors)
        if (name != target) file_bytes += t.nbytes();
    EXPECT_EQ(frozen_bytes, file_bytes);
    EXPECT_EQ(m->frozen().size() + 1, files.tensors.size());

    // Training: the gradient reaches the trainable tensor only, and the loss goes down.
    AdamWConfig ac;
    ac.weight_decay = 0.0f;
    AdamW opt({m->params()[0].get()}, ac);
    Tape tape(pool);
    const int64_t B = 2, T = 12;
    const auto ids = tokens(B * T + 1, 21, c.n_vocab);
    std::vector<int32_t> in(ids.begin(), ids.end() - 1), tgt(ids.begin() + 1, ids.end());
    std::vector<float> before(m->params()[0]->value.data(), m->params()[0]->value.data() + m->params()[0]->numel());
    double first = 0, last = 0;
    for (int step = 0; step < 8; ++step) {
        tape.reset();
        m->params()[0]->grad.zero();
        Var loss = m->forward(tape, in.data(), tgt.data(), B, T);
        tape.backward(loss);
        double gsum = 0;
        for (int64_t i = 0; i < m->params()[0]->numel(); ++i) {
            ASSERT_TRUE(std::isfinite(m->params()[0]->grad[i]));
            gsum += std::abs(m->params()[0]->grad[i]);
        }
        EXPECT_GT(gsum, 0.0) << "no gradient reached " << target;
        opt.step(3e-2f, pool);
        (step == 0 ? first : last) = loss->data[0];
    }
    EXPECT_LT(last, first);
    EXPECT_NE(std::memcmp(before.data(), m->params()[0]->value.data(), before.size() * sizeof(float)), 0);
    // The frozen tensors' bytes are untouched (they are the file's).
    for (const auto& p : m->frozen()) EXPECT_EQ(p->frozen.data(), files.tensors.at(p->name).data());
}

}  // namespace
}  // namespace llmforge::train
