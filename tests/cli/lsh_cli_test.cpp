// LSH attention from the command line (issue 18): with one bucket and a window longer than the
// text, `generate --attention lsh` on the real TinyStories 260K checkpoint reproduces llama2.c's
// greedy text exactly (LSH reduces to dense attention); real buckets change it; `perplexity
// --lsh-probe` reports scores per layer and head and the error probe; `train` learns with an LSH
// config, saves the setting, and every command reads it back (info, convert to GGUF, perplexity);
// the server runs an LSH model and its prefix cache restores the buckets; bad settings are one
// line each.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "cli_run.h"
#include "serve_process.h"
#include "token_pattern.h"

namespace llmforge::test {
namespace {

const char* kStories = "llama2c-stories260K/stories260K.bin";
const char* kTok = "llama2c-stories260K/tok512.bin";
const char* kGreedy = "llama2c-stories260K/expected/greedy_t0_prompt-empty_steps256.txt";
const std::string kLsh = " --attention lsh --lsh-buckets 8 --lsh-hashes 2 --lsh-window 16 --lsh-local 8";

TEST(LshCli, OneBucketReproducesTheDenseGreedyText) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(g, kGreedy);
    const std::string base = "generate -m " + q(m) + " --tokenizer " + q(t) + " -n 256 --temp 0 -t 2";
    const CliRun one = run_cli(base + " --attention lsh --lsh-buckets 1 --lsh-hashes 1 --lsh-window 100000");
    ASSERT_EQ(one.rc, 0) << one.err;
    EXPECT_EQ(one.out, read_file(g));
    const CliRun lsh = run_cli(base + kLsh);
    ASSERT_EQ(lsh.rc, 0) << lsh.err;
    EXPECT_NE(lsh.out, read_file(g)) << "8 buckets, window 16: the text must change somewhere in 256 tokens";
    EXPECT_GT(lsh.out.size(), 100u);
}

TEST(LshCli, PerplexityProbeReportsScoresAndError) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    LF_REQUIRE_ASSET(g, kGreedy);
    const std::string base = "perplexity -m " + q(m) + " --tokenizer " + q(t) + " -f " + q(g) + " -t 2";
    const CliRun dense = run_cli(base), lsh = run_cli(base + kLsh + " --lsh-probe 8");
    ASSERT_EQ(dense.rc, 0) << dense.err;
    ASSERT_EQ(lsh.rc, 0) << lsh.err;
    std::smatch md, ml;
    const std::regex ppl("perplexity: ([0-9.]+)");
    ASSERT_TRUE(std::regex_search(dense.out, md, ppl)) << dense.out;
    ASSERT_TRUE(std::regex_search(lsh.out, ml, ppl)) << lsh.out;
    EXPECT_GT(std::stod(ml[1]), std::stod(md[1]));  // sparse attention costs this dense-trained model
    EXPECT_NE(lsh.err.find("attention lsh 8 buckets x 2 rounds, window 16, local 8"), std::string::npos) << lsh.err;
    for (const char* line : {"lsh attention: ", "  layer 0: ", "  layer 4: ", "lsh probe: "})
        EXPECT_NE(lsh.out.find(line), std::string::npos) << line << "\n" << lsh.out;
    std::smatch s;
    ASSERT_TRUE(std::regex_search(lsh.out, s, std::regex("scores \\(([0-9.]+)% of dense")));
    EXPECT_LT(std::stod(s[1]), 60.0);
    ASSERT_TRUE(std::regex_search(lsh.out, s, std::regex("mass kept mean ([0-9.]+)")));
    EXPECT_GT(std::stod(s[1]), 0.2);
    EXPECT_LT(std::stod(s[1]), 1.0);
}

TEST(LshCli, TrainSavesTheSettingAndEveryCommandReadsIt) {
    const std::string dir = temp_dir(), cfg = dir + "/lsh.json", data = dir + "/train.u16", val = dir + "/val.u16";
    std::string c = kPatternLlamaConfig;
    c.replace(c.rfind('}'), 1,
              R"(,"llmforge_attention":"lsh","lsh_n_buckets":4,"lsh_n_hashes":2,"lsh_window":4,"lsh_local":4})");
    write_file(cfg, c);
    write_pattern(data, 20000, 1);
    write_pattern(val, 2000, 2);
    const std::string save = dir + "/run", log = dir + "/log.jsonl";
    const CliRun r = run_cli("train --config " + q(cfg) + " --data " + q(data) + " --val-data " + q(val) +
                             " --seq-len 64 --batch 8 --lr 3e-3 --warmup-steps 4 -t 2 -q --steps 200 --eval-every 200"
                             " --save " + q(save) + " --log-jsonl " + q(log));
    ASSERT_EQ(r.rc, 0) << r.err;
    // The corpus' next token depends on the previous ones only: `local` 4 is enough to learn it.
    double val_loss = 0;
    for (const std::string& line : {read_file(log)})
        for (size_t p = line.find("\"val_loss\":"); p != std::string::npos; p = line.find("\"val_loss\":", p + 1))
            val_loss = std::stod(line.substr(p + 11));
    EXPECT_GT(val_loss, 0.9);
    EXPECT_LT(val_loss, 1.2) << "the optimum is 0.978 nats";
    const auto saved = nlohmann::json::parse(read_file(save + "/config.json"));
    EXPECT_EQ(saved.value("llmforge_attention", ""), "lsh");
    EXPECT_EQ(saved.value("lsh_window", 0), 4);
    const CliRun info = run_cli("info -m " + q(save));
    ASSERT_EQ(info.rc, 0) << info.err;
    EXPECT_NE(info.out.find("attention:       lsh 4 buckets x 2 rounds, window 4, local 4"), std::string::npos) << info.out;
    const std::string gguf = dir + "/lsh.gguf";
    ASSERT_EQ(run_cli("convert -m " + q(save) + " -o " + q(gguf) + " --type f32").rc, 0);
    const CliRun gi = run_cli("info -m " + q(gguf));
    EXPECT_NE(gi.out.find("attention:       lsh 4 buckets x 2 rounds, window 4, local 4"), std::string::npos) << gi.out;
}

TEST(LshCli, TrainSwitchesADenseModelToLsh) {
    // `train --attention lsh` on a dense config (or a dense --model): the run trains LSH attention
    // and saves the choice; --lsh-* alone on a dense model is one line.
    const std::string dir = temp_dir(), cfg = dir + "/dense.json", data = dir + "/train.u16";
    write_file(cfg, kPatternLlamaConfig);
    write_pattern(data, 4000, 1);
    const std::string base = "train --config " + q(cfg) + " --data " + q(data) + " --seq-len 64 --batch 2 -t 1 -q --steps 3";
    const CliRun r = run_cli(base + " --attention lsh --lsh-buckets 4 --lsh-window 8 --save " + q(dir + "/run"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("train: attention lsh 4 buckets x 2 rounds, window 8"), std::string::npos) << r.err;
    const auto saved = nlohmann::json::parse(read_file(dir + "/run/config.json"));
    EXPECT_EQ(saved.value("llmforge_attention", ""), "lsh");
    EXPECT_EQ(saved.value("lsh_n_buckets", 0), 4);
    EXPECT_EQ(saved.value("lsh_window", 0), 8);
    expect_one_line_error(run_cli(base + " --lsh-window 8"), "--lsh-* settings, but the model trains dense attention");
    // And back: a dense run from the LSH model's weights.
    const CliRun d = run_cli("train --model " + q(dir + "/run") + " --data " + q(data) +
                             " --seq-len 64 --batch 2 -t 1 -q --steps 2 --attention dense --save " + q(dir + "/back"));
    ASSERT_EQ(d.rc, 0) << d.err;
    EXPECT_EQ(d.err.find("train: attention lsh"), std::string::npos) << d.err;
    EXPECT_EQ(nlohmann::json::parse(read_file(dir + "/back/config.json")).value("llmforge_attention", "dense"), "dense");
}

TEST(LshCli, ServerRunsLshAndItsPrefixCacheKeepsTheBuckets) {
    LF_REQUIRE_ASSET(m, kStories);
    const std::string dir = m.substr(0, m.rfind('/'));
    ServerProcess srv(stories_args(dir, {"--attention", "lsh", "--lsh-buckets", "8", "--lsh-window", "16",
                                         "--lsh-local", "8", "--parallel", "2"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    std::string prompt = "Once upon a time there was a little girl named Lily. She liked to play in the park with "
                         "her friends. One day she saw a big red ball under a tree and she ran to get it.";
    const nlohmann::json req = {{"prompt", prompt + " " + prompt}, {"max_tokens", 24}, {"temperature", 0},
                                {"stream", true}};
    const StreamResult a = stream_completion(srv.port(), req);
    ASSERT_EQ(a.status, 200) << a.body;
    ASSERT_TRUE(a.done);
    EXPECT_FALSE(a.text.empty());
    // The same prompt again: its first 64-token blocks come from the prefix cache, buckets included.
    const StreamResult b = stream_completion(srv.port(), req);
    ASSERT_EQ(b.status, 200) << b.body;
    EXPECT_EQ(b.text, a.text);
    EXPECT_GE(metric(srv, "llmforge_prefix_cache_hit_tokens_total"), 64);
}

TEST(LshCli, BadSettingsAreOneLine) {
    LF_REQUIRE_ASSET(m, kStories);
    LF_REQUIRE_ASSET(t, kTok);
    const std::string gen = "generate -m " + q(m) + " --tokenizer " + q(t) + " -n 4";
    expect_one_line_error(run_cli(gen + " --attention lsh --lsh-buckets 7"), "lsh n_buckets is 7, expected 1 or an even number");
    expect_one_line_error(run_cli(gen + " --attention lsh --lsh-hashes 0"), "lsh n_hashes is 0");
    expect_one_line_error(run_cli(gen + " --attention sparse"), "--attention 'sparse': expected dense or lsh");
    expect_one_line_error(run_cli(gen + " --lsh-window 8"), "add --attention lsh");
    expect_one_line_error(run_cli("perplexity -m " + q(m) + " --tokenizer " + q(t) + " -f " + q(m) + " --lsh-probe 4"),
                          "--lsh-probe 4 on a model that runs dense attention");
    expect_one_line_error(run_cli("serve -m " + q(m) + " --tokenizer " + q(t) + " --attention lsh --lsh-window 0"),
                          "lsh window is 0");
}

}  // namespace
}  // namespace llmforge::test
