// llmforge train --keep-sparsity (train/sparsity_mask.h): a pruned model fine-tuned with the flag
// keeps exactly its zeros (same positions) while its loss falls; without it the same run fills
// them (so the check is not vacuous); a run resumed from a checkpoint ends with the uninterrupted
// run's weights bit for bit; the flag is recorded in the run's args; flags it cannot work with
// fail in one line.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli/cli_run.h"
#include "token_pattern.h"
#include "model/model.h"
#include "train/train_model.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

const char* const kConfig = kPatternLlamaConfig;

struct Fixture {
    std::string dir, cfg, data, pruned;
};

// Random weights trained one step, then 50% magnitude-pruned by llmforge prune (a GGUF).
const Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        x.dir = temp_dir();
        x.cfg = x.dir + "/cfg.json";
        write_file(x.cfg, kConfig);
        x.data = x.dir + "/train.u16";
        write_pattern(x.data, 5000, 1);
        const CliRun base = run_cli("train --config " + q(x.cfg) + " --data " + q(x.data) +
                                    " --seq-len 32 --batch 4 --steps 1 -t 2 -q --save " + q(x.dir + "/base"));
        EXPECT_EQ(base.rc, 0) << base.err;
        x.pruned = x.dir + "/pruned.gguf";
        const CliRun pr = run_cli("prune -m " + q(x.dir + "/base") + " -o " + q(x.pruned) + " --sparsity 0.5 -t 2");
        EXPECT_EQ(pr.rc, 0) << pr.err;
        return x;
    }();
    return f;
}

std::string train_flags(const std::string& extra) {
    const Fixture& f = fixture();
    return "train --model " + q(f.pruned) + " --data " + q(f.data) +
           " --seq-len 32 --batch 4 --lr 3e-3 --warmup-steps 2 --weight-decay 0.1 -t 2 -q " + extra;
}

// Per matrix (2+ dims): the positions of its exact zeros, in the training layout.
std::map<std::string, std::vector<int64_t>> zeros_of(const std::string& path) {
    auto m = train::TrainModel::from_files(open_model_files(path));
    m->to_rotate_half();
    std::map<std::string, std::vector<int64_t>> z;
    for (const auto& p : m->params()) {
        if (!p->trainable || p->shape.size() < 2) continue;
        auto& v = z[p->name];
        for (int64_t i = 0; i < p->numel(); ++i)
            if (p->value.data()[i] == 0.0f) v.push_back(i);
    }
    return z;
}

int64_t count(const std::map<std::string, std::vector<int64_t>>& z) {
    int64_t n = 0;
    for (const auto& [name, v] : z) n += static_cast<int64_t>(v.size());
    return n;
}

// The saved args of the run in DIR (its `latest` checkpoint's trainer_state.json).
nlohmann::json saved_args(const std::string& dir) {
    std::string name = read_file(dir + "/latest");
    while (!name.empty() && (name.back() == '\n' || name.back() == ' ')) name.pop_back();
    return nlohmann::json::parse(read_file(dir + "/" + name + "/trainer_state.json")).at("args");
}

std::vector<double> losses(const std::string& jsonl) {
    std::vector<double> out;
    std::istringstream ss(read_file(jsonl));
    std::string line;
    while (std::getline(ss, line))
        if (!line.empty()) out.push_back(nlohmann::json::parse(line).at("loss").get<double>());
    return out;
}

TEST(KeepSparsity, ZerosStayAndLossFalls) {
    const Fixture& f = fixture();
    const auto z0 = zeros_of(f.pruned);
    const int64_t n0 = count(z0);
    ASSERT_GT(n0, 10000) << "the pruned fixture has too few zeros";

    const std::string d = temp_dir();
    const CliRun r = run_cli(train_flags("--steps 12 --keep-sparsity --log-jsonl " + q(d + "/ks.jsonl") + " --save " +
                                         q(d + "/ks")));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("keeping sparsity"), std::string::npos) << r.err;
    EXPECT_EQ(zeros_of(d + "/ks"), z0);  // the same positions, no more, no fewer
    const std::vector<double> l = losses(d + "/ks.jsonl");
    ASSERT_EQ(l.size(), 12u);
    EXPECT_LT(l.back(), l.front() - 0.1) << "loss did not fall with the zeros kept";
    // The flag is in the run's saved args.
    EXPECT_TRUE(saved_args(d + "/ks").at("keep-sparsity").get<bool>());

    // The same run without the flag fills the zeros: the check above is not vacuous.
    const CliRun plain = run_cli(train_flags("--steps 12 --save " + q(d + "/plain")));
    ASSERT_EQ(plain.rc, 0) << plain.err;
    EXPECT_LT(count(zeros_of(d + "/plain")), n0 / 100);
    EXPECT_FALSE(saved_args(d + "/plain").at("keep-sparsity").get<bool>());
}

TEST(KeepSparsity, ResumeIsBitIdentical) {
    const Fixture& f = fixture();
    const std::string d = temp_dir();
    ASSERT_EQ(run_cli(train_flags("--steps 6 --keep-sparsity --save " + q(d + "/ref"))).rc, 0);
    const CliRun first = run_cli(train_flags("--steps 6 --keep-sparsity --stop-after 3 --save " + q(d + "/r")));
    ASSERT_EQ(first.rc, 0) << first.err;
    // Bare --resume: --keep-sparsity and --model come from the saved args.
    const CliRun rest = run_cli("train --resume " + q(d + "/r") + " -q");
    ASSERT_EQ(rest.rc, 0) << rest.err;
    EXPECT_NE(rest.err.find("resuming at step 3"), std::string::npos) << rest.err;
    EXPECT_NE(rest.err.find("keeping sparsity"), std::string::npos) << rest.err;
    EXPECT_TRUE(read_file(d + "/r/model.safetensors") == read_file(d + "/ref/model.safetensors"))
        << "resumed run differs from the uninterrupted one";
    EXPECT_EQ(zeros_of(d + "/r"), zeros_of(f.pruned));

    // The mask comes from the initial --model file, not from the resumed masters: a file changed
    // since the run started (other zeros) is caught in one line.
    const std::string own = d + "/own.gguf";
    write_file(own, read_file(f.pruned));
    const std::string flags = train_flags("--steps 6 --keep-sparsity --stop-after 3 --save " + q(d + "/m"));
    ASSERT_EQ(run_cli(flags.substr(0, flags.find("--model")) + "--model " + q(own) + " " +
                      flags.substr(flags.find(" --data"))).rc, 0);
    ASSERT_EQ(run_cli("prune -m " + q(f.dir + "/base") + " -o " + q(own) + " --sparsity 0.7 -t 2").rc, 0);
    expect_one_line_error(run_cli("train --resume " + q(d + "/m") + " -q"), "expected 0");

    // The mask cannot change mid-run.
    const CliRun r2 = run_cli(train_flags("--steps 6 --stop-after 3 --save " + q(d + "/off")));
    ASSERT_EQ(r2.rc, 0) << r2.err;
    expect_one_line_error(run_cli("train --resume " + q(d + "/off") + " --keep-sparsity -q"), "--keep-sparsity");
}

TEST(KeepSparsity, RefusedWhereMeaningless) {
    const Fixture& f = fixture();
    const std::string d = temp_dir();
    expect_one_line_error(run_cli(train_flags("--steps 2 --keep-sparsity --peft lora --save " + q(d + "/lora"))),
                          "--keep-sparsity with --peft lora");
    expect_one_line_error(run_cli("train --config " + q(f.cfg) + " --data " + q(f.data) +
                                  " --seq-len 32 --batch 4 --steps 2 -q --keep-sparsity"),
                          "--keep-sparsity needs --model");
}

}  // namespace
