// Quantisation-aware training (train/qat.h): which tensors take which type; the fake quantiser is
// exactly `quantize`'s rounding read back; the forward reads the quantised weights; the gradient
// is straight-through (dL/dw = dL/dq(w), checked bit for bit against the plain model at q(w) and
// by finite differences in q; perturbing w inside a rounding cell leaves the loss unchanged);
// per-token int8 activations (on the grid, identity backward); and a QAT run resumed from a
// checkpoint ends with the same bytes as the uninterrupted run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quantize.h"
#include "train/ops.h"
#include "train/qat.h"
#include "train/train_model.h"
#include "train/trainer.h"
#include "test_util.h"

namespace llmforge::train {
namespace {

ModelConfig small_config(bool tied, int64_t width = 64) {
    ModelConfig c;
    c.arch = "llama";
    c.n_vocab = 64;
    c.n_embd = width;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = width / 4;
    c.n_ff = width == 64 ? 96 : width;
    c.n_ctx_train = 32;
    c.tied_embeddings = tied;
    return c;
}

std::vector<float> randn(int64_t n, uint32_t seed, float scale) { return test::randn(static_cast<size_t>(n), seed, scale); }

// A fixed batch: B=2 sequences of T=12 tokens and their next-token targets.
struct Batch {
    std::vector<int32_t> in, tg;
    int64_t B = 2, T = 12;
    Batch() {
        std::mt19937 rng(3);
        for (int64_t i = 0; i < B * T; ++i) in.push_back(static_cast<int32_t>(rng() % 64));
        for (int64_t i = 0; i < B * T; ++i) tg.push_back(static_cast<int32_t>((in[i] * 5 + 1) % 64));
    }
};

// Loss (and, with grads, every master's gradient) of one forward on the batch.
double loss_of(TrainModel& m, Tape& t, const Batch& b, bool grads) {
    t.reset();
    t.grad_enabled = grads;
    if (grads)
        for (auto& p : m.params()) p->grad.zero();
    Var l = m.forward(t, b.in.data(), b.tg.data(), b.B, b.T);
    const double v = l->data[0];
    if (grads) t.backward(l);
    t.reset();
    t.grad_enabled = true;
    return v;
}

TEST(Qat, FlagsAndTensorTypes) {
    EXPECT_EQ(qat_config("q4_0", "none").weights, DType::Q4_0);
    EXPECT_EQ(qat_config("q4_k", "int8").weights, DType::Q4_K);
    EXPECT_TRUE(qat_config("none", "int8").act_int8);
    EXPECT_FALSE(qat_config("none", "none").enabled());
    EXPECT_THROW(qat_config("q5_0", "none"), Error);
    EXPECT_THROW(qat_config("q4_0", "fp8"), Error);

    const std::vector<int64_t> m256{512, 256}, m64{64, 64}, vec{256};
    // Block linears take the type; vectors stay f32.
    EXPECT_EQ(qat_tensor_type("blk.0.attn_q.weight", m256, true, false, DType::Q4_0), DType::Q4_0);
    EXPECT_EQ(qat_tensor_type("blk.3.ffn_down.weight", m256, true, false, DType::Q4_K), DType::Q4_K);
    EXPECT_EQ(qat_tensor_type("blk.0.attn_norm.weight", vec, true, false, DType::Q4_0), DType::F32);
    // The head: q6_k for the 4-bit types (q8_0 when its rows do not fit 256-blocks), q8_0 for q8_0.
    EXPECT_EQ(qat_tensor_type("output.weight", m256, false, false, DType::Q4_0), DType::Q6_K);
    EXPECT_EQ(qat_tensor_type("output.weight", m64, false, false, DType::Q4_0), DType::Q8_0);
    EXPECT_EQ(qat_tensor_type("output.weight", m256, false, false, DType::Q8_0), DType::Q8_0);
    // The embedding: the type when untied; the head's type when it is the head too.
    EXPECT_EQ(qat_tensor_type("token_embd.weight", m256, false, false, DType::Q4_0), DType::Q4_0);
    EXPECT_EQ(qat_tensor_type("token_embd.weight", m256, false, true, DType::Q4_0), DType::Q6_K);
    EXPECT_EQ(qat_tensor_type("blk.0.attn_q.weight", m256, true, false, DType::F32), DType::F32);
    // Rows that cannot take the type: one line naming the tensor.
    try {
        qat_tensor_type("blk.1.attn_v.weight", m64, true, false, DType::Q4_K);
        FAIL() << "no error for 64-value rows under q4_k";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("blk.1.attn_v.weight"), std::string::npos) << msg;
        EXPECT_NE(msg.find("256"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

// fake_quantize is the quantiser's bytes read back: the values a quantised file holds.
TEST(Qat, FakeQuantizeIsQuantizeReadBack) {
    const int64_t rows = 5, cols = 512;
    const std::vector<float> w = randn(rows * cols, 1, 0.05f);
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K}) {
        std::vector<float> fq(w.size()), ref(w.size());
        ThreadPool pool(2);
        fake_quantize(t, w.data(), fq.data(), rows, cols, &pool);
        std::vector<uint8_t> bytes(row_bytes(t, cols) * rows);
        kernels::quantize_weights(t, w.data(), bytes.data(), rows, cols, nullptr);
        for (int64_t r = 0; r < rows; ++r)
            kernels::kernels().dequantize_row[static_cast<int>(t)](bytes.data() + r * row_bytes(t, cols),
                                                                  ref.data() + r * cols, cols);
        EXPECT_EQ(std::memcmp(fq.data(), ref.data(), fq.size() * sizeof(float)), 0) << dtype_name(t);
        double max_err = 0;
        int changed = 0;
        for (size_t i = 0; i < w.size(); ++i) {
            max_err = std::max(max_err, static_cast<double>(std::fabs(fq[i] - w[i])));
            changed += fq[i] != w[i];
        }
        EXPECT_GT(changed, static_cast<int>(w.size()) / 2) << dtype_name(t) << ": values not quantised";
        EXPECT_LT(max_err, t == DType::Q8_0 ? 0.002 : 0.03) << dtype_name(t);
    }
}

// The forward with --qat reads q(w): its logits equal, bit for bit, those of a plain model whose
// masters were replaced by q(w) for exactly the tensors qat_tensor_type names.
TEST(Qat, ForwardReadsTheQuantisedWeights) {
    struct Case {
        const char* type;
        bool tied;
        int64_t width;
    };
    for (const Case k : {Case{"q4_0", false, 64}, Case{"q4_0", true, 64}, Case{"q8_0", false, 64}, Case{"q4_k", false, 256},
                         Case{"q4_k", true, 256}}) {
        const bool tied = k.tied;
        SCOPED_TRACE(std::string(k.type) + (tied ? " tied" : " untied"));
        auto qm = TrainModel::init_random(small_config(tied, k.width), 11);
        auto pm = TrainModel::init_random(small_config(tied, k.width), 11);
        ThreadPool pool(2);
        Qat qat(*qm, qat_config(k.type, "none"));
        qat.refresh(pool);
        int quantised = 0;
        for (size_t i = 0; i < qm->params().size(); ++i) {
            Param& p = *qm->params()[i];
            if (const float* q = qat.values(p)) {
                std::memcpy(pm->params()[i]->value.data(), q, p.numel() * sizeof(float));
                ++quantised;
            }
        }
        // 7 linears per block, the embedding and (untied) the head.
        EXPECT_EQ(quantised, 7 * 2 + (tied ? 1 : 2));
        // The head: q6_k at width 256 under the 4-bit types, else q8_0.
        const Param* head = qm->find(tied ? "token_embd.weight" : "output.weight");
        EXPECT_EQ(qat.type_of(*head), k.width == 256 ? DType::Q6_K : DType::Q8_0);
        EXPECT_EQ(qat.type_of(*qm->find("blk.1.ffn_down.weight")), qat_config(k.type, "none").weights);
        Batch b;
        Tape t1(pool), t2(pool);
        t1.grad_enabled = t2.grad_enabled = false;
        Var a = qm->logits(t1, b.in.data(), b.B, b.T);
        Var c = pm->logits(t2, b.in.data(), b.B, b.T);
        ASSERT_EQ(a->numel, c->numel);
        EXPECT_EQ(std::memcmp(a->data, c->data, a->numel * sizeof(float)), 0) << "tied " << tied;
        // ... and differ from the unquantised model's.
        auto um = TrainModel::init_random(small_config(tied, k.width), 11);
        Tape t3(pool);
        t3.grad_enabled = false;
        Var u = um->logits(t3, b.in.data(), b.B, b.T);
        EXPECT_NE(std::memcmp(a->data, u->data, a->numel * sizeof(float)), 0);
    }
}

// Straight-through: the masters' gradient is the gradient at q(w) — the plain model's at q(w),
// bit for bit, and central differences in the quantised values; moving w within its rounding
// cell (away from a boundary) changes nothing in the forward.
TEST(Qat, StraightThroughGradients) {
    auto qm = TrainModel::init_random(small_config(false), 21);
    auto pm = TrainModel::init_random(small_config(false), 21);
    ThreadPool pool(2);
    Qat qat(*qm, qat_config("q4_0", "none"));
    qat.refresh(pool);
    for (size_t i = 0; i < qm->params().size(); ++i)
        if (const float* q = qat.values(*qm->params()[i]))
            std::memcpy(pm->params()[i]->value.data(), q, qm->params()[i]->numel() * sizeof(float));
    Batch b;
    Tape tape(pool);
    const double l0 = loss_of(*qm, tape, b, true);
    EXPECT_EQ(l0, loss_of(*pm, tape, b, true));
    for (size_t i = 0; i < qm->params().size(); ++i) {
        const Param& p = *qm->params()[i];
        EXPECT_EQ(std::memcmp(p.grad.data(), pm->params()[i]->grad.data(), p.numel() * sizeof(float)), 0) << p.name;
    }

    for (const char* name : {"blk.0.attn_q.weight", "blk.1.ffn_down.weight", "blk.0.ffn_gate.weight", "token_embd.weight",
                             "output.weight"}) {
        Param* p = qm->find(name);
        ASSERT_NE(p, nullptr) << name;
        float* q = qat.values(*p);
        ASSERT_NE(q, nullptr) << name;
        const DType type = qat.type_of(*p);
        const int64_t cols = p->shape.back();
        // The entries with the largest gradients (a clear signal over f32 rounding noise).
        std::vector<int64_t> idx(static_cast<size_t>(p->numel()));
        for (int64_t k = 0; k < p->numel(); ++k) idx[k] = k;
        std::partial_sort(idx.begin(), idx.begin() + 40, idx.end(),
                          [&](int64_t x, int64_t y) { return std::fabs(p->grad[x]) > std::fabs(p->grad[y]); });
        idx.resize(40);
        const std::vector<float> grad(p->grad.data(), p->grad.data() + p->numel());
        // (a) central differences in q at the master's gradient.
        const float h = 1e-2f;
        double max_diff = 0, max_ref = 0;
        for (int64_t k : std::vector<int64_t>(idx.begin(), idx.begin() + 12)) {
            const float orig = q[k];
            q[k] = orig + h;
            const double lp = loss_of(*qm, tape, b, false);
            q[k] = orig - h;
            const double lm = loss_of(*qm, tape, b, false);
            q[k] = orig;
            const double fd = (lp - lm) / (2.0 * h);
            max_diff = std::max(max_diff, std::fabs(fd - grad[k]));
            max_ref = std::max(max_ref, std::fabs(fd));
        }
        EXPECT_GT(max_ref, 1e-4) << name;
        EXPECT_LT(max_diff / max_ref, 0.03) << name << ": max |fd - grad| " << max_diff;
        // (b) w moved inside its rounding cell (checked: the row's q(w) unchanged bit for bit):
        // the loss does not move, though the straight-through gradient is not zero.
        int tried = 0;
        for (int64_t k : idx) {
            if (tried == 6) break;
            const int64_t r = k / cols;
            float* w = p->value.data() + r * cols;
            const float orig = p->value[k];
            std::vector<float> before(q + r * cols, q + (r + 1) * cols), after(static_cast<size_t>(cols));
            // The largest of a few steps that stays inside the cell both ways.
            float step = 0;
            for (float rel : {0.02f, 0.005f, 0.001f}) {
                const float s = std::max(std::fabs(orig) * rel, 1e-6f);
                bool inside = true;
                for (float sg : {s, -s}) {
                    p->value[k] = orig + sg;
                    fake_quantize(type, w, after.data(), 1, cols);
                    inside = inside && std::memcmp(before.data(), after.data(), cols * sizeof(float)) == 0;
                }
                p->value[k] = orig;
                if (inside) {
                    step = s;
                    break;
                }
            }
            if (step == 0) continue;
            ++tried;
            p->value[k] = orig + step;
            qat.refresh(pool);
            const double lp = loss_of(*qm, tape, b, false);
            p->value[k] = orig - step;
            qat.refresh(pool);
            const double lm = loss_of(*qm, tape, b, false);
            p->value[k] = orig;
            qat.refresh(pool);
            EXPECT_EQ(lp, l0) << name << "[" << k << "]";
            EXPECT_EQ(lm, l0) << name << "[" << k << "]";
            EXPECT_NE(grad[k], 0.0f);
        }
        EXPECT_GE(tried, 3) << name << ": too few entries away from a rounding boundary";
    }
}

TEST(Qat, Int8ActivationsOnTheGridWithIdentityBackward) {
    const int64_t rows = 7, cols = 40;
    std::vector<float> x = randn(rows * cols, 5, 1.0f);
    std::fill(x.begin() + 3 * cols, x.begin() + 4 * cols, 0.0f);  // an all-zero row stays zero
    std::vector<float> y(x.size());
    fake_quantize_rows_int8(x.data(), y.data(), rows, cols);
    for (int64_t r = 0; r < rows; ++r) {
        float amax = 0;
        for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(x[r * cols + j]));
        const float d = amax / 127;
        for (int64_t j = 0; j < cols; ++j) {
            const float v = x[r * cols + j], q = y[r * cols + j];
            if (amax == 0) {
                EXPECT_EQ(q, 0.0f);
                continue;
            }
            EXPECT_LE(std::fabs(q - v), d * 0.5f + 1e-6f) << r << "," << j;
            const float level = q / d;
            EXPECT_NEAR(level, std::round(level), 1e-3) << r << "," << j;
            EXPECT_LE(std::fabs(std::round(level)), 127.0f);
        }
    }
    // Identity backward: L = Σ y·g gives dL/dx = g exactly.
    ThreadPool pool(2);
    Tape t(pool);
    Param p;
    p.name = "x";
    p.shape = {rows, cols};
    p.value = FloatBuffer(rows * cols);
    p.grad = FloatBuffer(rows * cols);
    std::memcpy(p.value.data(), x.data(), x.size() * sizeof(float));
    Var out = fake_quant_act_int8(t, t.param(p));
    EXPECT_EQ(std::memcmp(out->data, y.data(), y.size() * sizeof(float)), 0);
    const std::vector<float> g = randn(rows * cols, 6, 1.0f);
    std::memcpy(t.grad(out), g.data(), g.size() * sizeof(float));
    Var seed = t.make({1}, false);
    t.backward(seed);
    EXPECT_EQ(std::memcmp(p.grad.data(), g.data(), g.size() * sizeof(float)), 0);

    // A model with --qat-act int8: differs from the plain forward, same with both seams unplugged.
    auto m = TrainModel::init_random(small_config(false), 31);
    Batch b;
    Tape tp(pool);
    const double plain = loss_of(*m, tp, b, false);
    double with_act = 0;
    {
        Qat qat(*m, qat_config("none", "int8"));
        qat.refresh(pool);
        with_act = loss_of(*m, tp, b, false);
    }
    EXPECT_NE(with_act, plain);
    EXPECT_NEAR(with_act, plain, 0.05 * plain);
    EXPECT_EQ(loss_of(*m, tp, b, false), plain) << "the destructor unplugs the seams";
}

// train --qat q4_0 --qat-act int8: a run interrupted after 3 steps and resumed ends with the
// uninterrupted run's bytes; and QAT changes the result (the test is not vacuous).
TEST(Qat, ResumedRunIsBitIdentical) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", R"({"model_type":"llama","hidden_size":64,"intermediate_size":128,
"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"vocab_size":256,"max_position_embeddings":64,
"rms_norm_eps":1e-5,"tie_word_embeddings":false})");
    std::mt19937 rng(1);
    std::vector<uint16_t> tok;
    for (int i = 0; i < 4000; ++i) {
        const uint16_t a = static_cast<uint16_t>(rng() % 60);
        for (uint16_t v : {a, static_cast<uint16_t>(a + 60), static_cast<uint16_t>((a * 7) % 256)}) tok.push_back(v);
    }
    std::ofstream(d + "/train.u16", std::ios::binary)
        .write(reinterpret_cast<const char*>(tok.data()), static_cast<std::streamsize>(tok.size() * 2));
    auto args = [&](const std::string& save, const std::string& qat) {
        TrainArgs a;
        a.config = d + "/cfg.json";
        a.data = d + "/train.u16";
        a.seq_len = 32;
        a.batch = 4;
        a.grad_accum = 2;
        a.steps = 6;
        a.lr = 3e-3;
        a.warmup_steps = 2;
        a.threads = 2;
        a.quiet = true;
        a.save = save;
        a.qat = qat;
        a.qat_act = qat == "none" ? "none" : "int8";
        return a;
    };
    run_training(args(d + "/full", "q4_0"));
    TrainArgs first = args(d + "/part", "q4_0");
    first.stop_after = 3;
    run_training(first);
    TrainArgs again;
    again.resume = d + "/part";
    again.quiet = true;
    const TrainResult r = run_training(again, {});
    EXPECT_EQ(r.steps_done, 6);
    const std::string full = test::read_file(d + "/full/model.safetensors");
    ASSERT_FALSE(full.empty());
    EXPECT_TRUE(full == test::read_file(d + "/part/model.safetensors")) << "resumed QAT run differs";
    run_training(args(d + "/plain", "none"));
    EXPECT_FALSE(full == test::read_file(d + "/plain/model.safetensors")) << "--qat changed nothing";
    // --qat with rows q4_k cannot take: one line, before any training.
    TrainArgs bad = args(d + "/bad", "q4_k");
    EXPECT_THROW(run_training(bad), Error);
    EXPECT_FALSE(std::filesystem::exists(d + "/bad")) << "the bad run wrote its folder";
}

// `convert --type q8_0|q4_0` quantises with the kernel table's quantize_row: it must write the
// bytes quantize_weights (what QAT reads back) writes, on every ISA's table, ties included.
TEST(Qat, ConvertQuantiserWritesTheSameBytes) {
    const int64_t rows = 64, cols = 512;
    std::vector<float> w = randn(rows * cols, 9, 0.05f);
    for (int k = 0; k < 400; ++k) w[k * 7] = std::round(w[k * 7] * 100) / 100;  // values on ties of a coarse grid
    for (DType t : {DType::Q8_0, DType::Q4_0}) {
        const size_t rb = row_bytes(t, cols);
        std::vector<uint8_t> a(rb * rows), b(a.size());
        kernels::quantize_weights(t, w.data(), a.data(), rows, cols, nullptr);
        for (int64_t r = 0; r < rows; ++r)
            kernels::kernels().quantize_row[static_cast<int>(t)](w.data() + r * cols, b.data() + r * rb, cols);
        EXPECT_TRUE(a == b) << dtype_name(t);
    }
}

}  // namespace
}  // namespace llmforge::train
