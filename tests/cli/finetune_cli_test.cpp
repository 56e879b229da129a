// llmforge train --peft lora|prompt on the project's default model (models/default): a LoRA run
// learns a fact the base does not know (validation loss and greedy output, before and after),
// an interrupted and resumed run is bit-identical to an uninterrupted one, the saved folder is a
// PEFT adapter (files, keys, trainable-parameter line), and bad set-ups are one line each with
// nothing written.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"

using namespace llmforge::test;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string default_model() {
    const char* src = std::getenv("LLMFORGE_SRC");
    return std::string(src ? src : ".") + "/models/default";
}

// A fact the shop-assistant base has never seen, in 200 short documents (20% held out).
struct Fixture {
    std::string dir, data;
};

const Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        x.dir = temp_dir();
        const char* names[] = {"Mia", "Leo", "Ava", "Sam", "Zoe", "Max"};
        std::string text;
        for (int i = 0; i < 200; ++i) {
            if (i) text += "\n\n";
            text += std::string(names[(i * 7) % 6]) +
                    " asked about the new store. The new store opens on Friday at the harbour, next to the blue "
                    "lighthouse.";
        }
        write_file(x.dir + "/fact.txt", text);
        x.data = x.dir + "/fact";
        const CliRun r = run_cli("prepare --tokenizer " + q(default_model()) + " --input " + q(x.dir + "/fact.txt") +
                                 " -o " + q(x.data) + " --val-fraction 0.2");
        EXPECT_EQ(r.rc, 0) << r.err;
        return x;
    }();
    return f;
}

const std::string kTrain = " --seq-len 64 --batch 4 --lr 3e-3 --threads 2 -q";
// Learning the fact: the default model was trained on the shop assistant's replies only (SFT), not
// on plain text like this, so its adapter needs 80 steps at 1e-2 to state the fact (40 at 3e-3
// got as far as "Friore at the harbour").
const std::string kLearn = " --steps 80 --seq-len 64 --batch 4 --lr 1e-2 --threads 2 -q";

double eval_loss(const std::string& extra) {
    const CliRun r = run_cli("train --eval-only --model " + q(default_model()) + " --data " + q(fixture().data) +
                             " --seq-len 64 --batch 4 --eval-batches 4 --threads 2" + extra);
    EXPECT_EQ(r.rc, 0) << r.err;
    return json::parse(r.out).at("val_loss").get<double>();
}

std::string greedy(const std::string& extra) {
    const CliRun r = run_cli("generate -m " + q(default_model()) + extra +
                             " -p 'Mia asked about the new store. The new store opens on' -n 12 --temp 0 --threads 2");
    EXPECT_EQ(r.rc, 0) << r.err;
    return r.out;
}

std::string file_bytes(const std::string& p) { return read_file(p); }

}  // namespace

TEST(FinetuneCli, LoraLearnsANewFactAndResumesBitIdentically) {
    const Fixture& f = fixture();
    const std::string base_out = greedy("");
    const double before = eval_loss("");
    const std::string common = "train --model " + q(default_model()) + " --peft lora --lora-r 8 --lora-alpha 16 "
                               "--lora-targets all-linear --lora-dropout 0.1 --data " + q(f.data) + kLearn;
    const std::string full = f.dir + "/full", split = f.dir + "/split";
    CliRun r = run_cli(common + " --save " + q(full) + " --log-jsonl " + q(f.dir + "/full.jsonl"));
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run_cli(common + " --save " + q(split) + " --stop-after 17 --log-jsonl " + q(f.dir + "/split.jsonl"));
    ASSERT_EQ(r.rc, 0) << r.err;
    r = run_cli("train --resume " + q(split) + " -q --threads 2 --log-jsonl " + q(f.dir + "/split.jsonl"));
    ASSERT_EQ(r.rc, 0) << r.err;
    // Bit-identical: the adapter's bytes and every step's loss.
    EXPECT_EQ(file_bytes(full + "/adapter_model.safetensors"), file_bytes(split + "/adapter_model.safetensors"));
    std::vector<double> a, b;
    for (auto [path, v] : {std::pair{f.dir + "/full.jsonl", &a}, {f.dir + "/split.jsonl", &b}}) {
        std::ifstream in(path);
        for (std::string line; std::getline(in, line);) v->push_back(json::parse(line).at("loss").get<double>());
    }
    EXPECT_EQ(a.size(), 80u);
    EXPECT_EQ(a, b);

    // Learned: held-out loss falls by several nats, and greedy text states the fact.
    const double after = eval_loss(" --peft lora --init-adapter " + q(full));
    EXPECT_GT(before - after, 4.0) << "before " << before << " after " << after;
    const std::string tuned_out = greedy(" --adapter " + q(full));
    EXPECT_EQ(base_out.find("Friday at the harbour"), std::string::npos) << base_out;
    EXPECT_NE(tuned_out.find("Friday at the harbour"), std::string::npos) << tuned_out;

    // The folder is a PEFT adapter.
    const json cfg = json::parse(read_file(full + "/adapter_config.json"));
    EXPECT_EQ(cfg.at("peft_type"), "LORA");
    EXPECT_EQ(cfg.at("task_type"), "CAUSAL_LM");
    EXPECT_EQ(cfg.at("r"), 8);
    EXPECT_EQ(cfg.at("lora_alpha"), 16);
    EXPECT_EQ(cfg.at("lora_dropout"), 0.1);
    EXPECT_EQ(cfg.at("target_modules"), json::array({"all-linear"}));
    EXPECT_FALSE(fs::exists(full + "/model.safetensors"));  // the base is not copied
}

TEST(FinetuneCli, PromptTuningTrainsOnlyTheVirtualTokens) {
    const Fixture& f = fixture();
    const std::string out = f.dir + "/prompt";
    const CliRun r = run_cli("train --model " + q(default_model()) + " --peft prompt --virtual-tokens 8 "
                             "--prompt-init-text 'The new store' --data " + q(f.data) + " --steps 30 --lr 3e-2 "
                             "--seq-len 64 --batch 4 --threads 2 --save " + q(out));
    ASSERT_EQ(r.rc, 0) << r.err;
    // PEFT's print_trainable_parameters() line: 8 x 256 trainable values.
    EXPECT_NE(r.err.find("trainable params: 2,048 || all params: "), std::string::npos) << r.err;
    const json cfg = json::parse(read_file(out + "/adapter_config.json"));
    EXPECT_EQ(cfg.at("peft_type"), "PROMPT_TUNING");
    EXPECT_EQ(cfg.at("num_virtual_tokens"), 8);
    EXPECT_EQ(cfg.at("token_dim"), 256);
    EXPECT_EQ(cfg.at("prompt_tuning_init"), "TEXT");
    EXPECT_LT(eval_loss(" --peft prompt --init-adapter " + q(out)), eval_loss("") - 1.0);
}

TEST(FinetuneCli, BadSetUpsAreOneLineAndWriteNothing) {
    const Fixture& f = fixture();
    const std::string base = "train --model " + q(default_model()) + " --data " + q(f.data) + " --steps 2" + kTrain;
    const std::string out = f.dir + "/never";
    expect_one_line_error(run_cli(base + " --peft lora --lora-r 0 --save " + q(out)), "--lora-r is 0");
    expect_one_line_error(run_cli(base + " --peft lora --lora-targets q_proj,c_attn --save " + q(out)),
                          "target module 'c_attn' matches no linear module");
    expect_one_line_error(run_cli(base + " --peft prompt --save " + q(out)), "--virtual-tokens");
    expect_one_line_error(run_cli("train --peft lora --data " + q(f.data) + kTrain), "needs --model BASE");
    EXPECT_FALSE(fs::exists(out));

    // --resume with other --peft flags.
    const std::string run = f.dir + "/short";
    ASSERT_EQ(run_cli(base + " --peft lora --save " + q(run)).rc, 0);
    const std::string before = read_file(run + "/adapter_model.safetensors");
    expect_one_line_error(run_cli("train --resume " + q(run) + " --lora-r 16 --steps 4 -q"),
                          "started with --lora-r 8, found --lora-r 16");
    expect_one_line_error(run_cli("train --resume " + q(run) + " --peft prompt --steps 4 -q"),
                          "started with --peft \"lora\", found --peft \"prompt\"");
    EXPECT_EQ(read_file(run + "/adapter_model.safetensors"), before);

    // An adapter made for another base: names the tensor and both shapes.
    const char* src = std::getenv("LLMFORGE_SRC");
    const std::string other = std::string(src ? src : ".") + "/tests/train/ref/peft/base";  // a dim-32 Llama
    const CliRun bad = run_cli("train --model " + q(other) + " --peft lora --init-adapter " + q(run) + " --data " +
                               q(f.data) + " --steps 2" + kTrain);
    EXPECT_EQ(bad.rc, 1) << bad.err;
    expect_one_line_error(bad, "lora_A.weight' has shape 8x256 but the base's model.layers.0.self_attn.q_proj takes 32 inputs");
}

// FGM, rehearsal and EWC together: an interrupted run resumes bit-identically, each changes the
// trajectory, and replay ratio 0 is exactly no replay.
TEST(FinetuneCli, FgmReplayAndEwcAreSeededAndResumable) {
    const Fixture& f = fixture();
    const std::string d = f.dir + "/robust";
    fs::create_directories(d);
    // Task A: the base's own kind of text (a shop dialogue corpus); its Fisher file.
    ASSERT_EQ(run_cli("gen-dialogues --n 60 --seed 3 -o " + q(d + "/a.jsonl")).rc, 0);
    ASSERT_EQ(run_cli("prepare --tokenizer " + q(default_model()) + " --input " + q(d + "/a.jsonl") + " -o " +
                      q(d + "/a") + " --val-fraction 0")
                  .rc,
              0);
    CliRun r = run_cli("fisher -m " + q(default_model()) + " --data " + q(d + "/a") + " --samples 4 --seq-len 64 -t 2 -o " +
                       q(d + "/a.fisher"));
    ASSERT_EQ(r.rc, 0) << r.err;
    const std::string common = "train --model " + q(default_model()) + " --data " + q(f.data) + " --steps 12" + kTrain;
    auto losses = [&](const std::string& log) {
        std::vector<double> v;
        std::ifstream in(log);
        for (std::string line; std::getline(in, line);) v.push_back(json::parse(line).at("loss").get<double>());
        return v;
    };
    auto run = [&](const std::string& name, const std::string& extra, int stop = -1) {
        const std::string save = d + "/" + name, log = d + "/" + name + ".jsonl";
        CliRun x = run_cli(common + extra + " --save " + q(save) + " --log-jsonl " + q(log) +
                           (stop > 0 ? " --stop-after " + std::to_string(stop) : ""));
        EXPECT_EQ(x.rc, 0) << x.err;
        if (stop > 0) {
            x = run_cli("train --resume " + q(save) + " -q --threads 2 --log-jsonl " + q(log));
            EXPECT_EQ(x.rc, 0) << x.err;
        }
        return losses(log);
    };
    const std::string all = " --fgm 0.5 --replay " + q(d + "/a") + " --replay-ratio 0.5 --ewc-lambda 1e6 --ewc-fisher " +
                            q(d + "/a.fisher");
    const auto whole = run("all", all), split = run("all-split", all, 5);
    ASSERT_EQ(whole.size(), 12u);
    EXPECT_EQ(whole, split);
    const auto plain = run("plain", "");
    const auto fgm = run("fgm", " --fgm 0.5");
    const auto replay0 = run("replay0", " --replay " + q(d + "/a") + " --replay-ratio 0");
    const auto replay = run("replay", " --replay " + q(d + "/a") + " --replay-ratio 0.5");
    EXPECT_EQ(plain, replay0);
    EXPECT_NE(plain, fgm);
    EXPECT_NE(plain, replay);
    // The same data loss at step 0 (FGM and EWC change the update, not the first forward).
    EXPECT_EQ(plain[0], fgm[0]);
    // Bad set-ups.
    expect_one_line_error(run_cli(common + " --ewc-lambda 10"), "--ewc-lambda needs --ewc-fisher");
    expect_one_line_error(run_cli(common + " --replay-ratio 0.5"), "--replay-ratio needs --replay");
    expect_one_line_error(run_cli(common + " --peft lora --ewc-lambda 10 --ewc-fisher " + q(d + "/a.fisher")),
                          "no 'fisher.base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'");
}

// QLoRA-style: the frozen base is a quantised GGUF (interleaved RoPE rows, matrices never
// dequantised into masters). The adapter is stored in PEFT's (Hugging Face) row order, so a q8_0
// base's adapter also runs on the f32 Hugging Face folder of the same model; q4_0's learns on
// itself (on the f32 weights it is partly tuned to q4_0's rounding, so only its own base is checked).
TEST(FinetuneCli, LoraOnAQuantisedGgufBase) {
    const Fixture& f = fixture();
    for (const std::string type : {"q8_0", "q4_0"}) {
        const std::string gguf = f.dir + "/base-" + type + ".gguf", out = f.dir + "/qlora-" + type;
        ASSERT_EQ(run_cli("convert -m " + q(default_model()) + " -o " + q(gguf) + " --type " + type).rc, 0);
        const CliRun r = run_cli("train --model " + q(gguf) + " --peft lora --lora-targets all-linear --data " +
                                 q(f.data) + kLearn + " --save " + q(out));
        ASSERT_EQ(r.rc, 0) << r.err;
        std::vector<std::string> bases = {gguf};
        if (type == "q8_0") bases.push_back(default_model());
        for (const std::string& base : bases) {
            const CliRun g = run_cli("generate -m " + q(base) + " --adapter " + q(out) +
                                     " -p 'Mia asked about the new store. The new store opens on' -n 12 --temp 0 --threads 2");
            EXPECT_EQ(g.rc, 0) << g.err;
            EXPECT_NE(g.out.find("Friday at the harbour"), std::string::npos) << base << ": " << g.out;
        }
    }
}

// Crash safety as for full training: killed mid-save (the checkpoint in place but `latest` not yet
// replaced, or `latest` replaced but the top-level adapter files not yet re-linked), --resume
// repairs the folder and ends with the uninterrupted run's adapter, linked at the top level.
TEST(FinetuneCli, KilledMidSaveResumesToTheSameAdapter) {
    const Fixture& f = fixture();
    const std::string common = "train --model " + q(default_model()) + " --peft lora --data " + q(f.data) +
                               " --steps 6 --save-every 2 --keep 1" + kTrain;
    const std::string ref = f.dir + "/kill-ref";
    ASSERT_EQ(run_cli(common + " --save " + q(ref)).rc, 0);
    const std::string want = read_file(ref + "/adapter_model.safetensors");
    for (const char* kill : {"3@2", "4@4", "5@4"}) {
        const std::string save = f.dir + "/kill-" + std::string(kill).substr(0, 1);
        const int st = run_command(std::string("LLMFORGE_TEST_KILL_IN_SAVE=") + kill + " " + cli_path() + " " + common +
                                   " --save " + q(save) + " 2>/dev/null");
        ASSERT_EQ(st, 137) << kill;
        const CliRun r = run_cli("train --resume " + q(save) + " -q --threads 2");
        ASSERT_EQ(r.rc, 0) << kill << ": " << r.err;
        EXPECT_TRUE(read_file(save + "/adapter_model.safetensors") == want) << kill;
        EXPECT_TRUE(read_file(save + "/adapter_config.json") == read_file(ref + "/adapter_config.json")) << kill;
        for (const auto& e : fs::directory_iterator(save))
            EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << kill << ": " << e.path();
    }
}
