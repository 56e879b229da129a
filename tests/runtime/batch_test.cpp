// Model::forward_batch (continuous batching) against one-sequence forward on the real
// TinyStories 260K checkpoint: several sequences at different positions, one mid-prefill, go
// through the weights together, and each sequence's logits must be what it gets alone. With
// q8_0 weights the kernels are row-independent, so the results must be bit-identical; with f32
// weights they must agree to rounding.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
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

struct Seq {
    std::vector<int32_t> prompt;  // already in the cache before the batched step
    std::vector<int32_t> step;    // tokens of the batched step
    int64_t n_out;
};

// Logits of each seq's step, computed alone (forward) and together (forward_batch).
void run_both(const Model& m, const std::vector<Seq>& seqs, int threads, bool invariant,
              std::vector<std::vector<float>>& alone, std::vector<std::vector<float>>& together) {
    const int64_t V = m.config().n_vocab;
    ThreadPool pool(threads);
    ForwardScratch s;
    s.batch_invariant = invariant;
    std::vector<std::unique_ptr<KvCache>> caches;
    std::vector<float> scratch_logits(V);
    for (const Seq& q : seqs) {
        caches.push_back(std::make_unique<KvCache>(m.config(), 128));
        m.forward(q.prompt.data(), q.prompt.size(), 0, *caches.back(), scratch_logits.data(), 1, pool, s);
        alone.emplace_back(q.n_out * V);
        if (q.n_out > 0) {
            KvCache c2(m.config(), 128);
            m.forward(q.prompt.data(), q.prompt.size(), 0, c2, scratch_logits.data(), 1, pool, s);
            m.forward(q.step.data(), q.step.size(), q.prompt.size(), c2, alone.back().data(), q.n_out, pool, s);
        }
    }
    std::vector<SeqBatch> batch;
    for (size_t j = 0; j < seqs.size(); ++j) {
        together.emplace_back(seqs[j].n_out * V);
        batch.push_back({caches[j].get(), seqs[j].step.data(), static_cast<int64_t>(seqs[j].step.size()),
                         static_cast<int64_t>(seqs[j].prompt.size()),
                         seqs[j].n_out ? together.back().data() : nullptr, seqs[j].n_out});
    }
    m.forward_batch(batch.data(), batch.size(), pool, s);
}

std::vector<Seq> test_seqs() {
    // Ids of the 512-token vocabulary: decode steps at positions 3, 9 and 17, a prefill chunk
    // with no logits and a prompt tail scored in full.
    return {
        {{1, 400, 261}, {302}, 1},
        {{1, 22, 33, 44, 55, 66, 77, 88, 99}, {111}, 1},
        {{1, 5, 6}, {70, 71, 72, 73, 74}, 0},
        {{1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311, 312, 313, 314, 315}, {200}, 1},
        {{1, 9}, {10, 11, 12}, 3},
    };
}

void expect_bit_identical(const Model& m) {
    for (int threads : {1, 2}) {
        std::vector<std::vector<float>> alone, together;
        run_both(m, test_seqs(), threads, true, alone, together);
        for (size_t j = 0; j < alone.size(); ++j) {
            ASSERT_EQ(alone[j].size(), together[j].size());
            EXPECT_EQ(std::memcmp(alone[j].data(), together[j].data(), alone[j].size() * sizeof(float)), 0)
                << "seq " << j << " threads " << threads;
        }
    }
}

TEST(ForwardBatch, BatchInvariantQ8_0RowsAreBitIdenticalToAlone) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ModelFiles files = open_model_files(dir + "/stories260K.bin", dir + "/tok512.bin");
    quantize_matrices(files);
    auto m = Model::from_files(std::move(files));
    ASSERT_EQ(m->tok_embd().dtype(), DType::Q8_0);
    EXPECT_FALSE(m->rows_batch_invariant());  // ffn_down (K = 172) stays f32: lone rows doubled
    expect_bit_identical(*m);
}

// The stories260K shape with ffn 192 (whole q8_0 blocks) and random q8_0 weights: every matrix
// has a row-invariant gemm, so no row is doubled, and rows must still be bit-identical.
TEST(ForwardBatch, AllQ8_0ModelIsBatchInvariantWithoutDoubling) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ModelFiles files = open_model_files(dir + "/stories260K.bin", dir + "/tok512.bin");
    files.config.n_ff = 192;
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 0.08f);
    for (int64_t l = 0; l < files.config.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        const int64_t C = files.config.n_embd;
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
    EXPECT_TRUE(m->rows_batch_invariant());
    expect_bit_identical(*m);
}

TEST(ForwardBatch, BatchInvariantF32RowsAreBitIdenticalToAlone) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    expect_bit_identical(*Model::load(dir + "/stories260K.bin", dir + "/tok512.bin"));
}

TEST(ForwardBatch, F32RowsMatchAloneToRounding) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    auto m = Model::load(dir + "/stories260K.bin", dir + "/tok512.bin");
    std::vector<std::vector<float>> alone, together;
    run_both(*m, test_seqs(), 2, false, alone, together);
    for (size_t j = 0; j < alone.size(); ++j) {
        ASSERT_EQ(alone[j].size(), together[j].size());
        double worst = 0;
        for (size_t i = 0; i < alone[j].size(); ++i) {
            worst = std::max(worst, std::abs(static_cast<double>(alone[j][i]) - together[j][i]) /
                                        std::max(1e-3, std::abs(static_cast<double>(alone[j][i]))));
        }
        EXPECT_LT(worst, 1e-4) << "seq " << j;
    }
}

// Long prompt chunks take the blocked (BLAS) attention: 64-row blocks, the later ones starting
// past position 0, and a chunk that starts after cached rows. Their logits must equal, to
// rounding, the per-position kernel's (batch-invariant mode uses only that one), with two
// sequences of different lengths in one batch.
TEST(ForwardBatch, BlockedPromptAttentionMatchesPerPositionAttention) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    auto m = Model::load(dir + "/stories260K.bin", dir + "/tok512.bin");
    const int64_t V = m->config().n_vocab;
    std::vector<int32_t> a(150), b(70);
    for (size_t i = 0; i < a.size(); ++i) a[i] = static_cast<int32_t>((i * 37 + 11) % 500 + 5);
    for (size_t i = 0; i < b.size(); ++i) b[i] = static_cast<int32_t>((i * 53 + 3) % 500 + 5);
    std::vector<float> logits[2][2];  // [invariant][seq]
    for (int invariant = 0; invariant < 2; ++invariant) {
        ThreadPool pool(2);
        ForwardScratch s;
        s.batch_invariant = invariant != 0;
        KvCache ca(m->config(), 256), cb(m->config(), 256);
        std::vector<float> head(V);
        m->forward(b.data(), 30, 0, cb, head.data(), 1, pool, s);  // b's first 30 rows cached
        logits[invariant][0].resize(static_cast<size_t>(a.size() * V));
        logits[invariant][1].resize(static_cast<size_t>(40 * V));
        const SeqBatch batch[] = {{&ca, a.data(), static_cast<int64_t>(a.size()), 0, logits[invariant][0].data(),
                                   static_cast<int64_t>(a.size())},
                                  {&cb, b.data() + 30, 40, 30, logits[invariant][1].data(), 40}};
        m->forward_batch(batch, 2, pool, s);
    }
    for (int j = 0; j < 2; ++j) {
        const auto& want = logits[1][j];
        const auto& got = logits[0][j];
        double max_abs = 0, max_diff = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            max_abs = std::max(max_abs, std::abs(static_cast<double>(want[i])));
            max_diff = std::max(max_diff, std::abs(static_cast<double>(got[i]) - want[i]));
        }
        // Measured: 2.0e-5 and 8.6e-6 against logits up to 21 and 16 (~1e-6 of the scale).
        EXPECT_LT(max_diff, 1e-5 * max_abs) << "seq " << j;
        EXPECT_GT(max_diff, 0.0) << "seq " << j << ": identical bits, so the blocked path did not run";
    }
}

TEST(ForwardBatch, BadSeqIsRejectedBeforeAnythingRuns) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    auto m = Model::load(dir + "/stories260K.bin", dir + "/tok512.bin");
    ThreadPool pool(1);
    ForwardScratch s;
    KvCache a(m->config(), 8), b(m->config(), 8);
    std::vector<float> la(m->config().n_vocab);
    const int32_t good[] = {1}, bad[] = {100000};
    const SeqBatch batch[] = {{&a, good, 1, 0, la.data(), 1}, {&b, bad, 1, 0, nullptr, 0}};
    try {
        m->forward_batch(batch, 2, pool, s);
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("token id 100000"), std::string::npos) << e.what();
    }
    const SeqBatch full[] = {{&a, good, 1, 8, la.data(), 1}};
    EXPECT_THROW(m->forward_batch(full, 1, pool, s), Error);
}

}  // namespace
}  // namespace llmforge
