// train-tokenizer, prepare and gen-dialogues from the command line: the shards decode back to the
// documents, the split and meta.json are right, and bad input is one clear error.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "model/vocab_source.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;
using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

std::vector<int32_t> read_u16(const std::string& path) {
    const std::string b = read_file(path);
    std::vector<int32_t> out(b.size() / 2);
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = static_cast<uint8_t>(b[2 * i]) | (static_cast<uint8_t>(b[2 * i + 1]) << 8);
    return out;
}

TEST(PrepareCli, TextAndChatDocumentsRoundTripThroughTheShards) {
    const std::string d = temp_dir();
    ASSERT_EQ(run_cli("gen-dialogues --n 300 --seed 3 --out " + q(d + "/dlg.jsonl")).rc, 0);
    std::string text;
    for (int i = 0; i < 200; ++i) text += "Paragraph " + std::to_string(i) + " says hello.\nIt has two lines.\n\n";
    write_file(d + "/text.txt", text);
    auto t = run_cli("train-tokenizer --input " + q(d + "/dlg.jsonl") + " " + q(d + "/text.txt") +
                     " --vocab-size 700 --eos '<|endoftext|>' --out " + q(d + "/tok/tokenizer.json"));
    ASSERT_EQ(t.rc, 0) << t.err;
    ASSERT_TRUE(fs::exists(d + "/tok/tokenizer_config.json"));
    auto p = run_cli("prepare --tokenizer " + q(d + "/tok/tokenizer.json") + " --input " + q(d + "/text.txt") + " " +
                     q(d + "/dlg.jsonl") + " --out " + q(d + "/data") + " --val-fraction 0.1 --shard-tokens 5000");
    ASSERT_EQ(p.rc, 0) << p.err;
    auto meta = nlohmann::json::parse(read_file(d + "/data/meta.json"));
    EXPECT_EQ(meta["format"], "llmforge-tokens-v1");
    EXPECT_EQ(meta["dtype"], "u16");
    EXPECT_EQ(meta["documents"], 200 + 300);
    EXPECT_EQ(meta["vocab_size"], 700);
    const int64_t tr = meta["train_tokens"], va = meta["val_tokens"];
    EXPECT_NEAR(static_cast<double>(va) / (tr + va), 0.1, 0.05);
    EXPECT_GT(meta["train_shards"].size(), 1u);  // 5000-token shards
    // Concatenated shards, cut at EOS, decode to the documents (train and val interleave by index).
    std::vector<int32_t> all;
    for (const char* split : {"train_shards", "val_shards"})
        for (const auto& s : meta[split]) {
            auto v = read_u16(d + "/data/" + s.get<std::string>());
            EXPECT_LE(static_cast<int64_t>(v.size()), 5000);
            all.insert(all.end(), v.begin(), v.end());
        }
    EXPECT_EQ(static_cast<int64_t>(all.size()), tr + va);
    auto tok = Tokenizer::create(load_vocab(d + "/tok/tokenizer.json"));
    const int32_t eos = meta["eos_id"];
    EXPECT_EQ(eos, tok->eos());
    std::vector<std::string> docs;
    std::vector<int32_t> cur;
    for (int32_t id : all) {
        if (id == eos) {
            docs.push_back(tok->decode(cur, true));
            cur.clear();
        } else {
            cur.push_back(id);
        }
    }
    ASSERT_EQ(docs.size(), 500u);
    int paragraphs = 0, chats = 0;
    for (const std::string& doc : docs) {
        if (doc.rfind("Paragraph ", 0) == 0) {
            ++paragraphs;
            EXPECT_NE(doc.find(" says hello.\nIt has two lines."), std::string::npos) << doc;
        } else {
            ++chats;
            EXPECT_EQ(doc.rfind("<|im_start|>system\n", 0), 0u) << doc;  // rendered with the ChatML template
        }
    }
    EXPECT_EQ(paragraphs, 200);
    EXPECT_EQ(chats, 300);
}

TEST(PrepareCli, BadInputIsOneClearError) {
    const std::string d = temp_dir();
    write_file(d + "/a.txt", "some text to learn from, some text to learn from\n");
    ASSERT_EQ(run_cli("train-tokenizer --input " + q(d + "/a.txt") + " --vocab-size 300 --out " + q(d + "/tok/tokenizer.json")).rc, 0);
    expect_one_line_error(run_cli("train-tokenizer --input " + q(d + "/missing.txt") + " --out " + q(d + "/t2.json")),
                          "missing.txt");
    expect_one_line_error(run_cli("train-tokenizer --input " + q(d + "/a.txt") + " --vocab-size 100 --out " + q(d + "/t3.json")),
                          "at least 259");
    write_file(d + "/empty.txt", "");
    expect_one_line_error(run_cli("train-tokenizer --input " + q(d + "/empty.txt") + " --out " + q(d + "/t4.json")),
                          "empty corpus");
    write_file(d + "/bad.jsonl", "{\"text\": \"fine\"}\n{not json\n");
    expect_one_line_error(run_cli("prepare --tokenizer " + q(d + "/tok/tokenizer.json") + " --input " + q(d + "/bad.jsonl") +
                                  " --out " + q(d + "/o1")),
                          "bad.jsonl:2");
    EXPECT_FALSE(fs::exists(d + "/o1/meta.json"));  // no half-finished folder claims to be complete
    expect_one_line_error(run_cli("prepare --tokenizer " + q(d + "/nope.json") + " --input " + q(d + "/a.txt") + " --out " +
                                  q(d + "/o2")),
                          "nope.json");
    expect_one_line_error(run_cli("prepare --tokenizer " + q(d + "/tok/tokenizer.json") + " --input " + q(d + "/none.txt") +
                                  " --out " + q(d + "/o3")),
                          "none.txt");
}

}  // namespace
