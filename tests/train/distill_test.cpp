// Knowledge distillation (src/train/distill.h): the loss op's gradient against central finite
// differences (in double, so the tolerance can be tight), alpha = 0 is cross_entropy bit for bit,
// a teacher equal to the student has KL 0, masks, the value against an independent double
// computation, the teacher's vocabulary check and the CLI's one-line errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <vector>

#include "core/error.h"
#include "test_util.h"
#include "train/distill.h"
#include "train/ops.h"
#include "train/train_model.h"

namespace llmforge::train {
namespace {

std::vector<float> randn(int64_t n, uint32_t seed, float scale) { return test::randn(static_cast<size_t>(n), seed, scale); }

std::unique_ptr<Param> param_from(const std::vector<float>& v, int64_t rows, int64_t V) {
    auto p = std::make_unique<Param>();
    p->name = "student";
    p->shape = {rows, V};
    p->value = FloatBuffer(rows * V);
    p->grad = FloatBuffer(rows * V);
    std::copy(v.begin(), v.end(), p->value.data());
    return p;
}

// An independent value in double: Σ over counted rows of A·T²·KL + (1 − A)·CE, / counted.
double reference_loss(const std::vector<double>& s, const std::vector<float>& t, const int32_t* targets, int64_t n,
                      int64_t V, double T, double A) {
    auto log_softmax = [&](auto get, std::vector<double>& out) {
        double mx = -1e300;
        for (int64_t j = 0; j < V; ++j) mx = std::max(mx, get(j));
        double z = 0;
        for (int64_t j = 0; j < V; ++j) z += std::exp(get(j) - mx);
        for (int64_t j = 0; j < V; ++j) out[j] = get(j) - mx - std::log(z);
    };
    std::vector<double> ls(V), lt(V), l1(V);
    double total = 0;
    int64_t counted = 0;
    for (int64_t r = 0; r < n; ++r) {
        if (targets[r] < 0) continue;
        ++counted;
        log_softmax([&](int64_t j) { return s[r * V + j] / T; }, ls);
        log_softmax([&](int64_t j) { return static_cast<double>(t[r * V + j]) / T; }, lt);
        log_softmax([&](int64_t j) { return s[r * V + j]; }, l1);
        double kl = 0;
        for (int64_t j = 0; j < V; ++j) kl += std::exp(lt[j]) * (lt[j] - ls[j]);
        total += A * T * T * kl + (1 - A) * -l1[targets[r]];
    }
    return counted ? total / counted : 0.0;
}

struct Case {
    float T, A;
};

// The analytic gradient against central differences of an independent double reference: the
// op's f32 rounding is then the only error, so a 1e-3 relative tolerance is a real check.
TEST(Distill, GradientMatchesFiniteDifferences) {
    const int64_t n = 5, V = 17;
    const int32_t targets[] = {3, -1, 16, 0, 7};  // row 1 masked
    const std::vector<float> teacher = randn(n * V, 2, 2.0f);
    for (Case c : {Case{2.0f, 0.5f}, Case{1.0f, 1.0f}, Case{0.5f, 0.3f}, Case{4.0f, 0.9f}, Case{3.0f, 0.0f}}) {
        SCOPED_TRACE("T " + std::to_string(c.T) + " alpha " + std::to_string(c.A));
        const std::vector<float> s0 = randn(n * V, 1, 1.5f);
        auto p = param_from(s0, n, V);
        ThreadPool pool(2);
        Tape tape(pool);
        DistillParts parts;
        Var loss = distill_loss(tape, tape.param(*p), teacher.data(), targets, n, c.T, c.A, &parts);
        EXPECT_EQ(parts.counted, 4);
        std::vector<double> sd(s0.begin(), s0.end());
        const double want = reference_loss(sd, teacher, targets, n, V, c.T, c.A);
        EXPECT_NEAR(loss->data[0], want, 1e-5 * std::max(1.0, std::abs(want)));
        tape.backward(loss);
        const double h = 1e-4;
        double max_diff = 0, max_ref = 0;
        for (int64_t i = 0; i < n * V; ++i) {
            std::vector<double> sp = sd, sm = sd;
            sp[i] += h, sm[i] -= h;
            const double fd = (reference_loss(sp, teacher, targets, n, V, c.T, c.A) -
                               reference_loss(sm, teacher, targets, n, V, c.T, c.A)) / (2 * h);
            max_diff = std::max(max_diff, std::abs(fd - p->grad[i]));
            max_ref = std::max(max_ref, std::abs(fd));
            if (i / V == 1) {
                EXPECT_EQ(p->grad[i], 0.0f) << "masked row " << i;
            }
        }
        EXPECT_GT(max_ref, 1e-3);
        EXPECT_LT(max_diff / max_ref, 1e-4) << "max |fd - analytic| = " << max_diff;
    }
}

// The op on the tape's own finite differences too (its f32 forward), as ops_grad_test checks the
// other ops; also through the in-place gradient the training loop uses (free_in_backward on a
// logits node that nothing else reads).
class DistillOwnForward : public ::testing::TestWithParam<bool> {};

TEST_P(DistillOwnForward, GradientMatches) {
    const int64_t n = 3, V = 11;
    const int32_t targets[] = {0, 10, 4};
    const std::vector<float> teacher = randn(n * V, 5, 1.0f);
    auto p = param_from(randn(n * V, 6, 1.0f), n, V);
    ThreadPool pool(1);
    Tape tape(pool);
    tape.free_in_backward = GetParam();
    Var s = tape.param(*p);
    if (GetParam()) s = reshape(tape, s, {n, V});
    Var loss = distill_loss(tape, s, teacher.data(), targets, n, 2.0f, 0.5f);
    tape.backward(loss);
    const float h = 1e-2f;
    double max_diff = 0, max_ref = 0;
    for (int64_t i = 0; i < n * V; ++i) {
        const float orig = p->value[i];
        auto eval = [&](float v) {
            p->value[i] = v;
            Tape t2(pool);
            t2.grad_enabled = false;
            return static_cast<double>(distill_loss(t2, t2.param(*p), teacher.data(), targets, n, 2.0f, 0.5f)->data[0]);
        };
        const double fd = (eval(orig + h) - eval(orig - h)) / (2.0 * h);
        p->value[i] = orig;
        max_diff = std::max(max_diff, std::abs(fd - p->grad[i]));
        max_ref = std::max(max_ref, std::abs(fd));
    }
    EXPECT_GT(max_ref, 0.0);
    EXPECT_LT(max_diff / max_ref, 2e-3);
}

INSTANTIATE_TEST_SUITE_P(InPlace, DistillOwnForward, ::testing::Bool());

// alpha = 0 is the plain label loss: value and gradient equal cross_entropy's bit for bit, both
// in the accumulating path and in the in-place path the training loop uses.
TEST(Distill, AlphaZeroIsCrossEntropyBitForBit) {
    const int64_t n = 9, V = 37;
    const int32_t targets[] = {1, -1, 36, 5, 5, -100, 0, 20, 9};
    const std::vector<float> s0 = randn(n * V, 7, 3.0f), teacher = randn(n * V, 8, 3.0f);
    for (bool in_place : {false, true}) {
        SCOPED_TRACE(in_place ? "in place" : "accumulating");
        std::vector<float> grads[2];
        float values[2];
        for (int k = 0; k < 2; ++k) {
            ThreadPool pool(2);
            Tape tape(pool);
            tape.free_in_backward = in_place;
            auto p = param_from(s0, n, V);
            Var x = tape.param(*p);
            // A copy node (not a param leaf) so the in-place path can take its buffer.
            Var s = reshape(tape, x, {n, V});
            Var loss = k == 0 ? cross_entropy(tape, s, targets, n)
                              : distill_loss(tape, s, teacher.data(), targets, n, 2.0f, 0.0f);
            values[k] = loss->data[0];
            tape.backward(loss);
            grads[k].assign(p->grad.data(), p->grad.data() + n * V);
        }
        EXPECT_EQ(values[0], values[1]);
        bool any = false;
        for (int64_t i = 0; i < n * V; ++i) {
            ASSERT_EQ(grads[0][i], grads[1][i]) << "element " << i;
            any = any || grads[0][i] != 0.0f;
        }
        EXPECT_TRUE(any);
    }
}

// A teacher equal to the student: KL is exactly 0 at any temperature, the loss is (1 − A)·CE, and
// at alpha = 1 the gradient is 0.
TEST(Distill, TeacherEqualToStudentHasZeroKl) {
    const int64_t n = 6, V = 29;
    const int32_t targets[] = {0, 1, 2, -1, 28, 7};
    const std::vector<float> s0 = randn(n * V, 9, 4.0f);
    for (float T : {0.5f, 1.0f, 2.0f, 7.0f}) {
        ThreadPool pool(2);
        Tape tape(pool);
        auto p = param_from(s0, n, V);
        DistillParts parts;
        Var loss = distill_loss(tape, tape.param(*p), s0.data(), targets, n, T, 0.6f, &parts);
        EXPECT_EQ(parts.kl, 0.0) << "T " << T;
        EXPECT_GT(parts.ce, 0.0);
        EXPECT_FLOAT_EQ(loss->data[0], static_cast<float>(0.4 * parts.ce));
        Tape t1(pool);
        auto q = param_from(s0, n, V);
        Var l1 = distill_loss(t1, t1.param(*q), s0.data(), targets, n, T, 1.0f);
        EXPECT_EQ(l1->data[0], 0.0f);
        t1.backward(l1);
        for (int64_t i = 0; i < n * V; ++i) ASSERT_NEAR(q->grad[i], 0.0f, 1e-7f) << "T " << T << " element " << i;
    }
    // A different teacher gives a positive KL (the test above is not vacuous).
    ThreadPool pool(1);
    Tape tape(pool);
    auto p = param_from(s0, n, V);
    const std::vector<float> other = randn(n * V, 10, 4.0f);
    DistillParts parts;
    (void)distill_loss(tape, tape.param(*p), other.data(), targets, n, 2.0f, 0.5f, &parts);
    EXPECT_GT(parts.kl, 0.1);
}

// No counted row: loss 0, zero gradient; a huge logit gap stays finite.
TEST(Distill, NoCountedRowAndExtremeLogits) {
    const int64_t n = 2, V = 5;
    ThreadPool pool(1);
    {
        Tape tape(pool);
        auto p = param_from(randn(n * V, 11, 1.0f), n, V);
        const int32_t none[] = {-1, -1};
        const std::vector<float> teacher = randn(n * V, 12, 1.0f);
        Var l = distill_loss(tape, tape.param(*p), teacher.data(), none, n, 2.0f, 0.5f);
        EXPECT_EQ(l->data[0], 0.0f);
        tape.backward(l);
        for (int64_t i = 0; i < n * V; ++i) EXPECT_EQ(p->grad[i], 0.0f);
    }
    Tape tape(pool);
    std::vector<float> s = {200, -200, 0, 0, 0, -300, 300, 0, 1, 2};
    std::vector<float> t = {-200, 200, 0, 0, 0, 300, -300, 0, 1, 2};
    auto p = param_from(s, n, V);
    const int32_t targets[] = {1, 0};
    DistillParts parts;
    Var l = distill_loss(tape, tape.param(*p), t.data(), targets, n, 1.0f, 0.5f, &parts);
    EXPECT_TRUE(std::isfinite(l->data[0]));
    EXPECT_NEAR(parts.kl, 500.0, 1e-3);  // row 0: KL = 400, row 1: 600 (the teacher's one-hot against e^-400, e^-600)
    tape.backward(l);
    for (int64_t i = 0; i < n * V; ++i) EXPECT_TRUE(std::isfinite(p->grad[i]));
}

TEST(Distill, VocabularyMismatchIsOneClearLine) {
    Vocab a, b;
    a.tokens = {"<unk>", "<s>", "</s>", "a", "b"};
    b = a;
    EXPECT_NO_THROW(check_same_vocab(a, 5, "teacher.gguf", b, 5, "student"));
    EXPECT_NO_THROW(check_same_vocab(Vocab{}, 5, "teacher.bin", b, 5, "student"));  // texts unknown: sizes agree
    auto message = [](const std::function<void()>& fn) {
        try {
            fn();
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string size = message([&] { check_same_vocab(a, 6, "teacher.gguf", b, 5, "student"); });
    EXPECT_NE(size.find("6 tokens"), std::string::npos) << size;
    EXPECT_NE(size.find("has 5"), std::string::npos) << size;
    EXPECT_EQ(size.find('\n'), std::string::npos);
    b.tokens[3] = "x";
    const std::string text = message([&] { check_same_vocab(a, 5, "teacher.gguf", b, 5, "student"); });
    EXPECT_NE(text.find("token 3 is 'a' in the teacher but 'x' in the student"), std::string::npos) << text;
    EXPECT_EQ(text.find('\n'), std::string::npos);
}

// The teacher's inference-mode logits are the training model's own for the same weights, with
// packed rows split at their document starts (each document from position 0, alone).
TEST(Distill, TeacherLogitsMatchTheTapeForwardOnPackedRows) {
    LF_REQUIRE_ASSET(path, "llama2c-stories260K/stories260K.bin");
    auto student = TrainModel::from_files(open_model_files(path));
    student->to_rotate_half();  // the trainer's convention; the teacher keeps the file's
    const int64_t B = 3, T = 24, V = student->config().n_vocab;
    std::vector<int32_t> tokens(B * T), docs(B * T);
    for (int64_t i = 0; i < B * T; ++i) tokens[i] = static_cast<int32_t>((i * 131 + 7) % (V - 3) + 3);
    const std::vector<std::vector<int64_t>> starts = {{0, 7, 15}, {0}, {0, 1, 2, 23}};
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < T; ++i) {
            int64_t s = 0;
            for (int64_t st : starts[b])
                if (st <= i) s = st;
            docs[b * T + i] = static_cast<int32_t>(s);
        }
    ThreadPool pool(2);
    auto teacher = Teacher::open(path, student->inference(), path, "");
    for (bool packed : {false, true}) {
        SCOPED_TRACE(packed ? "packed rows" : "plain rows");
        Tape tape(pool);
        tape.grad_enabled = false;
        Var lg = student->logits(tape, tokens.data(), B, T, 0.0f, 0, nullptr, packed ? docs.data() : nullptr);
        teacher->run(tokens.data(), B, T, packed ? docs.data() : nullptr, pool);
        ASSERT_EQ(lg->numel, B * T * V);
        EXPECT_LT(test::rel_err(teacher->logits(), lg->data, static_cast<size_t>(B * T * V)), 1e-4);
        // KL of the two is ~0, and CE of the teacher's logits is the student's.
        std::vector<int32_t> targets(tokens.begin() + 1, tokens.end());
        targets.push_back(-1);
        DistillParts parts;
        (void)distill_loss(tape, lg, teacher->logits(), targets.data(), B * T, 2.0f, 0.5f, &parts);
        EXPECT_LT(parts.kl, 1e-6);
    }
    // Packing changes the logits (the test above compares something).
    std::vector<float> plain;
    teacher->run(tokens.data(), B, T, nullptr, pool);
    plain.assign(teacher->logits(), teacher->logits() + B * T * V);
    teacher->run(tokens.data(), B, T, docs.data(), pool);
    EXPECT_GT(test::rel_err(teacher->logits() + 8 * V, plain.data() + 8 * V, static_cast<size_t>(V)), 1e-3);
}

// The CLI: each bad input is one line naming the flag; nothing is trained.
TEST(Distill, CliRejectsBadInputInOneLine) {
    const std::string bin = test::cli_path();
    if (bin.empty()) GTEST_SKIP() << "LLMFORGE_BIN not set";
    LF_REQUIRE_ASSET(model, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");
    const std::string dir = test::temp_dir();
    // 600 tokens of ids < 512 as a .u16 file.
    std::string data;
    for (int i = 0; i < 600; ++i) {
        const uint16_t id = static_cast<uint16_t>((i * 37) % 500 + 3);
        data.append(reinterpret_cast<const char*>(&id), 2);
    }
    test::write_file(dir + "/d.u16", data);
    // A teacher with another vocabulary: the 32,000-token tiny Llama-2 GGUF.
    const std::string other = test::asset("gguf-fixtures/llama-2-tiny-random.gguf");
    const std::string base = bin + " train --model " + model + " --data " + dir + "/d.u16 --seq-len 16 --batch 2 --steps 1 -q";
    struct Bad {
        std::string flags, expect;
    };
    std::vector<Bad> bad = {{"--teacher " + model + " --distill-alpha 1.5", "--distill-alpha is 1.5, expected"},
                            {"--teacher " + model + " --distill-alpha -0.1", "--distill-alpha is -0.1"},
                            {"--teacher " + model + " --distill-temp 0", "--distill-temp is 0, expected > 0"},
                            {"--teacher " + model + " --distill-temp -2", "--distill-temp is -2"},
                            {"--teacher " + dir + "/missing.gguf", "missing.gguf"}};
    if (!other.empty()) bad.push_back({"--teacher " + other, "vocabulary of 32000 tokens, but the student"});
    for (const Bad& b : bad) {
        std::string out;
        const int rc = test::run_command(base + " " + b.flags + " 2>&1", &out);
        EXPECT_NE(rc, 0) << b.flags;
        EXPECT_NE(out.find(b.expect), std::string::npos) << b.flags << ": " << out;
        EXPECT_LE(std::count(out.begin(), out.end(), '\n'), 1) << b.flags << ": " << out;
    }
}

std::vector<double> losses(const std::string& jsonl) {
    std::vector<double> v;
    size_t p = 0;
    while ((p = jsonl.find("\"loss\":", p)) != std::string::npos) v.push_back(std::stod(jsonl.substr(p += 7)));
    return v;
}

// The model as its own teacher: step 0's loss is (1 - alpha) times the plain run's (KL 0 at the
// start); the flags are stored with the checkpoint, so --resume continues bit for bit.
TEST(Distill, CliSelfTeacherAndExactResume) {
    const std::string bin = test::cli_path();
    if (bin.empty()) GTEST_SKIP() << "LLMFORGE_BIN not set";
    LF_REQUIRE_ASSET(model, "llama2c-stories260K/stories260K.bin");
    const std::string dir = test::temp_dir();
    std::string data;
    for (int i = 0; i < 2000; ++i) {
        const uint16_t id = static_cast<uint16_t>((i * 37 + i / 7) % 500 + 3);
        data.append(reinterpret_cast<const char*>(&id), 2);
    }
    test::write_file(dir + "/d.u16", data);
    const std::string base = bin + " train --model " + model + " --data " + dir + "/d.u16 --seq-len 32 --batch 2 --steps 4 -q -t 2";
    const std::string kd = " --teacher " + model + " --distill-alpha 0.25 --distill-temp 3";
    std::string out;
    ASSERT_EQ(test::run_command(base + " --log-jsonl " + dir + "/plain.jsonl 2>&1", &out), 0) << out;
    ASSERT_EQ(test::run_command(base + kd + " --save " + dir + "/a --log-jsonl " + dir + "/a.jsonl 2>&1", &out), 0) << out;
    const std::vector<double> plain = losses(test::read_file(dir + "/plain.jsonl"));
    const std::vector<double> a = losses(test::read_file(dir + "/a.jsonl"));
    ASSERT_EQ(plain.size(), 4u);
    ASSERT_EQ(a.size(), 4u);
    EXPECT_NEAR(a[0], 0.75 * plain[0], 1e-4 * plain[0]);
    EXPECT_NE(a[1], 0.75 * plain[1]);  // the KL term is live once the student moves
    ASSERT_EQ(test::run_command(base + kd + " --stop-after 2 --save " + dir + "/b --log-jsonl " + dir + "/b.jsonl 2>&1", &out), 0)
        << out;
    ASSERT_EQ(test::run_command(bin + " train --resume " + dir + "/b -q --log-jsonl " + dir + "/b.jsonl 2>&1", &out), 0) << out;
    EXPECT_EQ(losses(test::read_file(dir + "/b.jsonl")), a);
}

}  // namespace
}  // namespace llmforge::train
