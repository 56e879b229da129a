// llmforge prune: the reported sparsity is the count of zeros in the written file; N:M leaves the
// pattern in every group; Wanda (importance matrix or a calibration text) chooses other weights
// than magnitude; structured pruning changes the config and every command loads the result (info,
// generate, perplexity, train — whose loss goes down on it); bad input is one line each.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <regex>
#include <sstream>

#include "cli_run.h"
#include "kernels/cpu/kernels.h"
#include "model/model.h"

namespace llmforge::test {
namespace {

const char* kStories = "llama2c-stories260K/stories260K.bin";
const char* kTok = "llama2c-stories260K/tok512.bin";
const char* kGreedy = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt";

std::string tiny() { return src_path("tests/data/quant/tiny-f32.gguf"); }

struct Reported {
    double sparsity = -1;
    long long zeros = -1, weights = -1;
};

Reported reported(const std::string& out) {
    const std::regex re(R"(prune: sparsity ([0-9.]+) \(([0-9]+) zeros of ([0-9]+) weights)");
    std::smatch m;
    Reported r;
    if (std::regex_search(out, m, re)) {
        r.sparsity = std::stod(m[1]);
        r.zeros = std::stoll(m[2]);
        r.weights = std::stoll(m[3]);
    }
    return r;
}

// Zeros and elements of the per-layer matrices of a written model, and each as f32.
struct Counted {
    long long zeros = 0, weights = 0;
    std::map<std::string, std::vector<float>> values;
};

Counted count(const std::string& path) {
    const ModelFiles f = open_model_files(path);
    Counted c;
    for (const auto& [name, t] : f.tensors) {
        if (name.rfind("blk.", 0) != 0 || t.ndim() != 2) continue;
        const int64_t cols = t.shape().back();
        std::vector<float> v(static_cast<size_t>(t.numel()));
        const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
        for (int64_t r = 0; r < t.nrows(); ++r) deq(t.row(r), v.data() + r * cols, cols);
        c.zeros += std::count(v.begin(), v.end(), 0.0f);
        c.weights += t.numel();
        c.values[name] = std::move(v);
    }
    return c;
}

TEST(PruneCli, ReportedSparsityIsTheFilesZeros) {
    const std::string d = temp_dir();
    const CliRun r = run_cli("prune -m " + q(tiny()) + " -o " + q(d + "/m.gguf") + " --sparsity 0.4 -t 2");
    ASSERT_EQ(r.rc, 0) << r.err;
    const Reported rep = reported(r.out);
    const Counted c = count(d + "/m.gguf");
    EXPECT_EQ(rep.zeros, c.zeros) << r.out;
    EXPECT_EQ(rep.weights, c.weights) << r.out;
    EXPECT_NEAR(rep.sparsity, double(c.zeros) / double(c.weights), 1e-4);
    EXPECT_NEAR(rep.sparsity, 0.4, 0.01);
    const Counted dense = count(tiny());
    EXPECT_LT(dense.zeros, dense.weights / 100);  // the zeros are the pruning's, not the fixture's
    EXPECT_EQ(run_cli("info -m " + q(d + "/m.gguf")).rc, 0);
    // q4_k blocks have a minimum: the zeros do not survive, and the report says what the file holds.
    const CliRun k = run_cli("prune -m " + q(tiny()) + " -o " + q(d + "/k.gguf") + " --sparsity 0.4 --type q4_k -t 2");
    ASSERT_EQ(k.rc, 0) << k.err;
    EXPECT_EQ(reported(k.out).zeros, count(d + "/k.gguf").zeros) << k.out;
    EXPECT_LT(reported(k.out).sparsity, 0.1) << k.out;
    EXPECT_NE(k.err.find("does not keep every zero"), std::string::npos) << k.err;
}

TEST(PruneCli, TwoFourWandaFromAnImatrixKeepsThePatternAndDiffersFromMagnitude) {
    const std::string d = temp_dir();
    const std::string base = "prune -m " + q(tiny()) + " --pattern 2:4 -t 2";
    const CliRun w = run_cli(base + " --method wanda --imatrix " + q(src_path("tests/data/quant/tiny.imatrix.dat")) +
                             " -o " + q(d + "/w.gguf"));
    ASSERT_EQ(w.rc, 0) << w.err;
    const CliRun m = run_cli(base + " -o " + q(d + "/m.gguf"));
    ASSERT_EQ(m.rc, 0) << m.err;
    EXPECT_NE(w.out.find("2:4 wanda"), std::string::npos) << w.out;
    const Counted cw = count(d + "/w.gguf"), cm = count(d + "/m.gguf");
    EXPECT_EQ(reported(w.out).zeros, cw.zeros);
    EXPECT_EQ(reported(w.out).sparsity, 0.5);
    EXPECT_EQ(cw.zeros * 2, cw.weights);
    for (const auto& [name, v] : cw.values)
        for (size_t g = 0; g < v.size(); g += 4)
            ASSERT_EQ(std::count(v.begin() + g, v.begin() + g + 4, 0.0f), 2) << name << " group " << g;
    long long differ = 0;  // weights one method keeps and the other prunes
    for (const auto& [name, v] : cw.values)
        for (size_t i = 0; i < v.size(); ++i) differ += (v[i] == 0.0f) != (cm.values.at(name)[i] == 0.0f);
    EXPECT_GT(differ, cw.weights / 20) << "Wanda's activation weighting chose the same weights as magnitude";
}

TEST(PruneCli, StructuredResultLoadsEverywhereAndTrains) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(f, kGreedy);
    const std::string d = temp_dir();
    const std::string out = d + "/s.gguf";
    // Wanda-calibrated by a text collected here, on top of the structured pruning.
    const CliRun r = run_cli("prune -m " + q(m) + " --tokenizer " + q(t) + " -o " + q(out) +
                             " --heads 2 --ffn-fraction 0.25 --method wanda --sparsity 0.2 -f " + q(f) +
                             " --chunk 128 -t 2");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(reported(r.out).zeros, count(out).zeros);

    const CliRun info = run_cli("info -m " + q(out));
    ASSERT_EQ(info.rc, 0) << info.err;
    EXPECT_NE(info.out.find("heads:           6 (kv 3, head dim 8)"), std::string::npos) << info.out;  // 8/4 -> 6/3
    EXPECT_NE(info.out.find("ffn:             129"), std::string::npos) << info.out;                  // 172 - 43
    const CliRun gen = run_cli("generate -m " + q(out) + " -p 'Once upon a time' -n 12 --temp 0 -t 2");
    ASSERT_EQ(gen.rc, 0) << gen.err;
    EXPECT_GT(gen.out.size(), std::string("Once upon a time").size()) << gen.out;
    const CliRun ppl = run_cli("perplexity -m " + q(out) + " -f " + q(f) + " -t 2");
    ASSERT_EQ(ppl.rc, 0) << ppl.err;
    EXPECT_NE(ppl.out.find("perplexity: "), std::string::npos);

    // Recovery fine-tuning: train loads the pruned model; the loss on a small repeated text falls.
    write_file(d + "/text.txt", read_file(f));
    ASSERT_EQ(run_cli("prepare --tokenizer " + q(t) + " --input " + q(d + "/text.txt") + " -o " + q(d + "/data") +
                      " --val-fraction 0").rc, 0);
    const CliRun tr = run_cli("train --model " + q(out) + " --data " + q(d + "/data") +
                              " --seq-len 32 --batch 4 --steps 12 --lr 3e-3 --no-shuffle -q -t 2 --log-jsonl " +
                              q(d + "/log.jsonl") + " --save " + q(d + "/ft"));
    ASSERT_EQ(tr.rc, 0) << tr.err;
    std::istringstream log(read_file(d + "/log.jsonl"));
    std::vector<double> loss;
    const std::regex lre(R"("loss":([0-9.eE+-]+))");
    for (std::string line; std::getline(log, line);) {
        std::smatch mt;
        if (std::regex_search(line, mt, lre)) loss.push_back(std::stod(mt[1]));
    }
    ASSERT_EQ(loss.size(), 12u);
    EXPECT_LT((loss[10] + loss[11]) / 2, (loss[0] + loss[1]) / 2 - 0.2) << read_file(d + "/log.jsonl");
    const CliRun ft = run_cli("info -m " + q(d + "/ft"));  // the fine-tuned folder keeps the smaller shape
    ASSERT_EQ(ft.rc, 0) << ft.err;
    EXPECT_NE(ft.out.find("heads:           6 (kv 3, head dim 8)"), std::string::npos) << ft.out;
}

TEST(PruneCli, BadInputIsOneLine) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    const std::string d = temp_dir();
    const std::string s = "prune -m " + q(m) + " --tokenizer " + q(t) + " -o " + q(d + "/x.gguf");
    expect_one_line_error(run_cli(s + " --sparsity 1"), "outside [0, 1)");
    expect_one_line_error(run_cli(s + " --sparsity -0.25"), "outside [0, 1)");
    expect_one_line_error(run_cli(s + " --heads 8"), "at most 6");
    expect_one_line_error(run_cli(s + " --heads 3"), "not a multiple of 2");
    expect_one_line_error(run_cli(s + " --pattern 4:2"), "N:M");
    expect_one_line_error(run_cli(s + " --pattern 2:2"), "N:M");
    expect_one_line_error(run_cli(s + " --pattern 2x4"), "N:M");
    expect_one_line_error(run_cli(s + " --method wanda --sparsity 0.5"), "calibration");
    expect_one_line_error(run_cli(s + " --method random --sparsity 0.5"), "--method");
    expect_one_line_error(run_cli(s + " --ffn-fraction 1"), "--ffn-fraction");
    expect_one_line_error(run_cli(s), "nothing to do");
    expect_one_line_error(run_cli("prune -m " + q(m) + " --tokenizer " + q(t) + " -o " + q(d + "/x.bin") +
                                  " --sparsity 0.5"), ".gguf");
    expect_one_line_error(run_cli(s + " --method wanda --sparsity 0.5 --imatrix " +
                                  q(src_path("tests/data/quant/tiny.imatrix.dat"))), "another model");
    EXPECT_FALSE(std::ifstream(d + "/x.gguf").good()) << "no output after an error";
}

}  // namespace
}  // namespace llmforge::test
