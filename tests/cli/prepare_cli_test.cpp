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

// prepare --chat with the default model's tokenizer (its tokenizer_config.json carries a ChatML
// template): SFT data with a mask beside every shard that counts only the assistant replies.
TEST(PrepareCli, ChatWritesSftDataWithLossMasks) {
    const std::string model = std::string(std::getenv("LLMFORGE_SRC") ? std::getenv("LLMFORGE_SRC") : ".") + "/models/default";
    if (!fs::exists(model + "/tokenizer.json")) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << model;
    const std::string d = temp_dir();
    std::string lines;
    for (int i = 0; i < 20; ++i)
        lines += R"({"messages": [{"role": "system", "content": "You help shoppers."}, {"role": "user", "content": "Order )" +
                 std::to_string(i) + R"(?"}, {"role": "assistant", "content": "Shipped."}, {"role": "user", "content": "When?"}, {"role": "assistant", "content": "Today."}]})" +
                 "\n";
    write_file(d + "/chats.jsonl", lines);
    auto p = run_cli("prepare --chat --tokenizer " + q(model) + " --input " + q(d + "/chats.jsonl") + " --out " +
                     q(d + "/sft") + " --val-fraction 0.2 --shard-tokens 300");
    ASSERT_EQ(p.rc, 0) << p.err;
    EXPECT_NE(p.err.find("20 dialogues"), std::string::npos) << p.err;
    auto meta = nlohmann::json::parse(read_file(d + "/sft/meta.json"));
    EXPECT_EQ(meta["sft"], true);
    EXPECT_EQ(meta["documents"], 20);
    auto tok = Tokenizer::create(load_vocab(model));
    int64_t counted = 0;
    std::string replies;
    int dialogues = 0;
    for (const char* split : {"train", "val"}) {
        const auto& shards = meta[std::string(split) + "_shards"];
        const auto& masks = meta[std::string(split) + "_masks"];
        ASSERT_EQ(shards.size(), masks.size());
        for (size_t i = 0; i < shards.size(); ++i) {
            auto ids = read_u16(d + "/sft/" + shards[i].get<std::string>());
            const std::string m = read_file(d + "/sft/" + masks[i].get<std::string>());
            ASSERT_EQ(m.size(), ids.size());
            for (size_t j = 0; j < ids.size(); ++j) {
                if (m[j] & 1) ++counted, replies += tok->decode({ids[j]}, true);
                if (m[j] & 2) ++dialogues;
            }
        }
    }
    EXPECT_EQ(dialogues, 20);
    EXPECT_EQ(counted, meta["train_counted"].get<int64_t>() + meta["val_counted"].get<int64_t>());
    std::string want;
    for (int i = 0; i < 20; ++i) want += "Shipped.<|im_end|>Today.<|im_end|>";
    // Train and val interleave by dialogue index, but every dialogue's replies are the same.
    EXPECT_EQ(replies, want);
    // --chat-template chatml renders the same text here (the model's template is ChatML).
    auto c = run_cli("prepare --chat --chat-template chatml --tokenizer " + q(model) + " --input " +
                     q(d + "/chats.jsonl") + " --out " + q(d + "/sft2") + " --val-fraction 0.2 --shard-tokens 300");
    ASSERT_EQ(c.rc, 0) << c.err;
    EXPECT_EQ(read_file(d + "/sft2/train-00000.u16"), read_file(d + "/sft/train-00000.u16"));
    EXPECT_EQ(read_file(d + "/sft2/train-00000.mask"), read_file(d + "/sft/train-00000.mask"));
}

TEST(PrepareCli, ChatWithoutAnAssistantTurnIsOneErrorAndWritesNothing) {
    const std::string model = std::string(std::getenv("LLMFORGE_SRC") ? std::getenv("LLMFORGE_SRC") : ".") + "/models/default";
    if (!fs::exists(model + "/tokenizer.json")) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << model;
    const std::string d = temp_dir();
    write_file(d + "/chats.jsonl",
               R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}]})"
               "\n\n"
               R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]})"
               "\n");
    auto r = run_cli("prepare --chat --tokenizer " + q(model) + " --input " + q(d + "/chats.jsonl") + " --out " +
                     q(d + "/out"));
    expect_one_line_error(r, "chats.jsonl:3: the chat has no assistant turn (roles: system, user)");
    EXPECT_NE(r.err.find("hint:"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(d + "/out"));  // nothing written, not even the folder
    // Other bad --chat input: a text file, a "text" line, no template.
    write_file(d + "/plain.txt", "hello\n");
    expect_one_line_error(run_cli("prepare --chat --tokenizer " + q(model) + " --input " + q(d + "/plain.txt") +
                                  " --out " + q(d + "/o2")),
                          "--chat reads .jsonl files");
    write_file(d + "/text.jsonl", "{\"text\": \"hello\"}\n");
    expect_one_line_error(run_cli("prepare --chat --tokenizer " + q(model) + " --input " + q(d + "/text.jsonl") +
                                  " --out " + q(d + "/o3")),
                          "text.jsonl:1: expected an object with a \"messages\" list");
    expect_one_line_error(run_cli("prepare --chat --chat-template " + q(d + "/none.jinja") + " --tokenizer " + q(model) +
                                  " --input " + q(d + "/chats.jsonl") + " --out " + q(d + "/o4")),
                          "none.jinja");
    EXPECT_FALSE(fs::exists(d + "/o2"));
    EXPECT_FALSE(fs::exists(d + "/o3"));
    EXPECT_FALSE(fs::exists(d + "/o4"));
}

}  // namespace
