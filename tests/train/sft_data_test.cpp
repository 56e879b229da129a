// SFT data (prepare --chat, TokenData, fill_batch): the loss mask covers exactly the assistant
// replies and their end-of-turn tokens for every shared chat template, and packed rows keep
// dialogues apart (doc_start, targets -1 at boundaries, padding and prompts), deterministically.
#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/vocab_source.h"
#include "runtime/chat.h"
#include "test_util.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"
#include "train/data.h"
#include "train/prepare_data.h"

namespace llmforge::train {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::ordered_json;
using test::read_file;
using test::temp_dir;
using test::write_file;

std::string src_dir() {
    const char* s = std::getenv("LLMFORGE_SRC");
    return s ? s : ".";
}

const Tokenizer& cached_tokenizer(const std::string& path) {
    static std::map<std::string, std::unique_ptr<Tokenizer>> cache;
    auto& t = cache[path];
    if (!t) t = Tokenizer::create(load_vocab(path));
    return *t;
}

// The runs of consecutive masked tokens, each decoded with special tokens rendered.
std::vector<std::string> masked_runs(const Tokenizer& tok, const SftExample& ex) {
    std::vector<std::string> runs;
    std::vector<int32_t> cur;
    for (size_t i = 0; i <= ex.tokens.size(); ++i) {
        if (i < ex.tokens.size() && ex.mask[i]) {
            cur.push_back(ex.tokens[i]);
        } else if (!cur.empty()) {
            runs.push_back(tok.decode(cur, true));
            cur.clear();
        }
    }
    return runs;
}

const json kWithSystem = json::parse(R"([
  {"role": "system", "content": "You are a terse geography tutor."},
  {"role": "user", "content": "What is the capital of France?"},
  {"role": "assistant", "content": "Paris is the capital of France."},
  {"role": "user", "content": "And of Italy?"},
  {"role": "assistant", "content": "Rome, since 1871."}
])");

const json kNoSystem = json::parse(R"([
  {"role": "user", "content": "Hello"},
  {"role": "assistant", "content": "Hi! How can I help you today?"},
  {"role": "user", "content": "Count to three."},
  {"role": "assistant", "content": "One, two, three."},
  {"role": "user", "content": "Thanks"},
  {"role": "assistant", "content": "You are welcome."}
])");

// The end-of-turn token text each template family closes a reply with, written by hand.
struct Family {
    const char* prefix;     // template file name prefix
    const char* tokenizer;  // hf-tokenizers/<name>
    const char* eot;
};
const Family kFamilies[] = {
    {"meta-llama-", "llama3", "<|eot_id|>"},
    {"Qwen", "qwen3", "<|im_end|>"},  // Qwen-Qwen2.5-7B-Instruct, Qwen-Qwen3-0.6B, Qwen3-Coder
    {"deepseek-ai-", "deepseek-v3", "<｜end▁of▁sentence｜>"},
};

void expect_exact_assistant_spans(const Tokenizer& tok, const ChatTemplate& tmpl, const std::string& name,
                                  const std::string& eot) {
    for (const json* conv : {&kWithSystem, &kNoSystem}) {
        SftExample ex = render_sft_example(tok, tmpl, *conv, name);
        ASSERT_EQ(ex.mask.size(), ex.tokens.size());
        std::vector<std::string> want;
        for (const auto& m : *conv)
            if (m["role"] == "assistant") want.push_back(m["content"].get<std::string>() + eot);
        EXPECT_EQ(masked_runs(tok, ex), want) << name << "\n" << ex.text;
        // Nothing of the prompt side is counted: the first token (BOS or the first header) is not.
        EXPECT_EQ(ex.mask[0], 0) << name;
    }
}

TEST(SftMask, CoversExactlyTheAssistantRepliesForEverySharedTemplate) {
    LF_REQUIRE_ASSET(dir, "chat-templates");
    int checked = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".jinja") continue;
        const std::string file = e.path().filename().string();
        const Family* fam = nullptr;
        for (const Family& f : kFamilies)
            if (file.rfind(f.prefix, 0) == 0) fam = &f;
        ASSERT_NE(fam, nullptr) << file << ": a new shared template: pair it with a tokenizer and its end-of-turn "
                                           "token in kFamilies";
        LF_REQUIRE_HF_TOKENIZER(tdir, fam->tokenizer);
        SCOPED_TRACE(file);
        const Tokenizer& tok = cached_tokenizer(tdir);
        ChatTemplate tmpl(read_file(e.path().string()), file);
        expect_exact_assistant_spans(tok, tmpl, file, fam->eot);
        ++checked;
    }
    EXPECT_EQ(checked, 8);  // the eight templates the assets README lists
}

// Qwen3 writes an empty reasoning block before the last reply ("<think>\n\n</think>\n\n"). The
// template adds it, not the assistant: it is not the assistant's words, so it is not counted (the
// runs above are exactly content + <|im_end|>); here it is shown to be in the text, unmasked.
TEST(SftMask, Qwen3ThinkBoilerplateIsNotCounted) {
    LF_REQUIRE_ASSET(path, "chat-templates/Qwen-Qwen3-0.6B.jinja");
    LF_REQUIRE_HF_TOKENIZER(tdir, "qwen3");
    const Tokenizer& tok = cached_tokenizer(tdir);
    ChatTemplate tmpl(read_file(path), "Qwen3-0.6B");
    SftExample ex = render_sft_example(tok, tmpl, kWithSystem, "qwen3");
    const size_t think = ex.text.find("<think>\n\n</think>\n\nRome, since 1871.<|im_end|>");
    ASSERT_NE(think, std::string::npos) << ex.text;
    for (const std::string& run : masked_runs(tok, ex)) EXPECT_EQ(run.find("think>"), std::string::npos) << run;
}

TEST(SftMask, DefaultModelAndBuiltinChatml) {
    const std::string model = src_dir() + "/models/default";
    if (!fs::exists(model + "/tokenizer.json")) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << model;
    const Tokenizer& tok = cached_tokenizer(model);
    auto own = load_chat_format(tok, model, "", false);
    ASSERT_TRUE(own.has_value());
    expect_exact_assistant_spans(tok, own->tmpl, "default model", "<|im_end|>");
    auto chatml = load_chat_format(tok, model, kBuiltinChatml, false);
    expect_exact_assistant_spans(tok, chatml->tmpl, "chatml", "<|im_end|>");
}

TEST(SftMask, EmptyReplyCountsOnlyItsEndOfTurn) {
    const std::string model = src_dir() + "/models/default";
    if (!fs::exists(model + "/tokenizer.json")) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << model;
    const Tokenizer& tok = cached_tokenizer(model);
    auto f = load_chat_format(tok, model, kBuiltinChatml, false);
    const json conv = json::parse(R"([{"role": "user", "content": "Say nothing."},
                                      {"role": "assistant", "content": ""}])");
    SftExample ex = render_sft_example(tok, f->tmpl, conv, "empty");
    EXPECT_EQ(masked_runs(tok, ex), std::vector<std::string>{"<|im_end|>"});
}

TEST(SftMask, ChatLineChecks) {
    check_chat_line(json::parse(R"({"messages": [{"role": "user", "content": "a"},
                                                 {"role": "assistant", "content": "b"}]})"), "f:1");
    auto err = [](const char* line) {
        try {
            check_chat_line(json::parse(line), "chats.jsonl:7");
        } catch (const Error& e) {
            return std::string(e.what());
        }
        return std::string("no error");
    };
    const std::string no_asst = err(R"({"messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "u"}]})");
    EXPECT_EQ(no_asst.rfind("chats.jsonl:7: ", 0), 0u) << no_asst;
    EXPECT_NE(no_asst.find("no assistant turn"), std::string::npos) << no_asst;
    EXPECT_NE(no_asst.find("roles: system, user"), std::string::npos) << no_asst;
    EXPECT_NE(no_asst.find("hint:"), std::string::npos) << no_asst;
    EXPECT_EQ(no_asst.find('\n'), std::string::npos);
    EXPECT_NE(err(R"({"text": "x"})").find("\"messages\""), std::string::npos);
    EXPECT_NE(err(R"({"messages": {}})").find("expected a list"), std::string::npos);
    EXPECT_NE(err(R"({"messages": [{"content": "x"}]})").find("message 0"), std::string::npos);
    EXPECT_NE(err(R"({"messages": [{"role": "assistant", "content": [{"type": "text"}]}]})").find("content parts"),
              std::string::npos);
    EXPECT_NE(err(R"({"messages": []})").find("no assistant turn"), std::string::npos);
}

// ---- packing ------------------------------------------------------------------------------------

// A dialogue: (token, counted) pairs.
using Dialogue = std::vector<std::pair<int32_t, bool>>;

// Writes an SFT folder by hand: the dialogues' tokens cut into shards of shard_tokens (so a
// dialogue may span two shards), masks beside them.
std::string write_sft_folder(const std::vector<Dialogue>& dialogues, int64_t shard_tokens, int32_t eos) {
    const std::string dir = temp_dir();
    std::vector<int32_t> ids;
    std::vector<uint8_t> mask;
    for (const Dialogue& d : dialogues)
        for (size_t i = 0; i < d.size(); ++i) {
            ids.push_back(d[i].first);
            mask.push_back(static_cast<uint8_t>((d[i].second ? 1 : 0) | (i == 0 ? 2 : 0)));
        }
    json shards = json::array(), masks = json::array();
    for (size_t s = 0, n = 0; s < ids.size(); s += shard_tokens, ++n) {
        const size_t e = std::min(ids.size(), s + static_cast<size_t>(shard_tokens));
        std::string tb, mb;
        for (size_t i = s; i < e; ++i) {
            tb.push_back(static_cast<char>(ids[i] & 0xff));
            tb.push_back(static_cast<char>(ids[i] >> 8));
            mb.push_back(static_cast<char>(mask[i]));
        }
        const std::string tn = "train-0000" + std::to_string(n) + ".u16", mn = "train-0000" + std::to_string(n) + ".mask";
        write_file(dir + "/" + tn, tb);
        write_file(dir + "/" + mn, mb);
        shards.push_back(tn);
        masks.push_back(mn);
    }
    json meta = {{"format", "llmforge-tokens-v1"}, {"dtype", "u16"},    {"vocab_size", 100},
                 {"eos_id", eos},                  {"train_shards", shards}, {"val_shards", json::array()},
                 {"sft", true},                    {"train_masks", masks},   {"val_masks", json::array()}};
    write_file(dir + "/meta.json", meta.dump());
    return dir;
}

// Dialogue i: ids 10·(i+1) + j; prompt tokens first (not counted), then `reply` counted ones.
Dialogue make_dialogue(int i, int len, int reply) {
    Dialogue d;
    for (int j = 0; j < len; ++j) d.push_back({10 * (i + 1) + j, j >= len - reply});
    return d;
}

TEST(SftPacking, RowsTargetsAndDocStarts) {
    // Lengths 4, 3, 6, 2, 10 with T = 7 (rows of 8 tokens): [d0 d1 pad], [d2 d3], [d4 cut to 8].
    const std::vector<Dialogue> dl = {make_dialogue(0, 4, 2), make_dialogue(1, 3, 1), make_dialogue(2, 6, 3),
                                      make_dialogue(3, 2, 1), make_dialogue(4, 10, 6)};
    const std::string dir = write_sft_folder(dl, 5, 99);  // shards of 5 tokens: dialogues span shards
    TokenData d = TokenData::open(dir, "train", 100);
    ASSERT_TRUE(d.sft());
    EXPECT_EQ(d.dialogues(), 5);
    EXPECT_EQ(d.counted_tokens(), 2 + 1 + 3 + 1 + 6);
    testing::internal::CaptureStderr();
    auto pk = d.packing(7);
    const std::string said = testing::internal::GetCapturedStderr();
    EXPECT_EQ(pk->rows(), 3);
    EXPECT_EQ(pk->truncated, 1);
    EXPECT_NE(said.find("1 of 5 dialogues"), std::string::npos) << said;
    testing::internal::CaptureStderr();
    d.packing(7);  // said once
    EXPECT_EQ(testing::internal::GetCapturedStderr(), "");

    BatchPlan plan;
    plan.batch = 3, plan.seq = 7, plan.shuffle = false;
    std::vector<int32_t> in(21), tg(21), ds(21);
    fill_batch(d, plan, 0, in.data(), tg.data(), ds.data());
    const int32_t X = -1;
    // Row 0: d0 = 10 11 [12 13], d1 = 20 21 [22], pad 99.
    EXPECT_EQ(std::vector<int32_t>(in.begin(), in.begin() + 7), (std::vector<int32_t>{10, 11, 12, 13, 20, 21, 22}));
    EXPECT_EQ(std::vector<int32_t>(tg.begin(), tg.begin() + 7), (std::vector<int32_t>{X, 12, 13, X, X, 22, X}));
    EXPECT_EQ(std::vector<int32_t>(ds.begin(), ds.begin() + 7), (std::vector<int32_t>{0, 0, 0, 0, 4, 4, 4}));
    // Row 1: d2 = 30 31 32 [33 34 35], d3 = 40 [41].
    EXPECT_EQ(std::vector<int32_t>(in.begin() + 7, in.begin() + 14), (std::vector<int32_t>{30, 31, 32, 33, 34, 35, 40}));
    EXPECT_EQ(std::vector<int32_t>(tg.begin() + 7, tg.begin() + 14), (std::vector<int32_t>{X, X, 33, 34, 35, X, 41}));
    EXPECT_EQ(std::vector<int32_t>(ds.begin() + 7, ds.begin() + 14), (std::vector<int32_t>{0, 0, 0, 0, 0, 0, 6}));
    // Row 2: d4 cut to its first 8 tokens 50..57, counted from 54.
    EXPECT_EQ(std::vector<int32_t>(in.begin() + 14, in.end()), (std::vector<int32_t>{50, 51, 52, 53, 54, 55, 56}));
    EXPECT_EQ(std::vector<int32_t>(tg.begin() + 14, tg.end()), (std::vector<int32_t>{X, X, X, 54, 55, 56, 57}));
    EXPECT_EQ(std::vector<int32_t>(ds.begin() + 14, ds.end()), (std::vector<int32_t>(7, 0)));
    // Sequential order wraps around the 3 rows: micro-batch 1 starts again at row 0.
    std::vector<int32_t> in1(21), tg1(21);
    fill_batch(d, plan, 1, in1.data(), tg1.data());
    EXPECT_EQ(in1, in);
    EXPECT_EQ(tg1, tg);
}

TEST(SftPacking, PaddingHasItsOwnDocStartAndNoTargets) {
    const std::string dir = write_sft_folder({make_dialogue(0, 3, 2)}, 100, 7);
    TokenData d = TokenData::open(dir, "train", 100);
    BatchPlan plan;
    plan.batch = 1, plan.seq = 6, plan.shuffle = false;
    std::vector<int32_t> in(6), tg(6), ds(6);
    fill_batch(d, plan, 0, in.data(), tg.data(), ds.data());
    EXPECT_EQ(in, (std::vector<int32_t>{10, 11, 12, 7, 7, 7}));
    EXPECT_EQ(tg, (std::vector<int32_t>{11, 12, -1, -1, -1, -1}));
    EXPECT_EQ(ds, (std::vector<int32_t>{0, 0, 0, 3, 3, 3}));
}

TEST(SftPacking, ShuffledRowsArePureFunctionsOfSeedStepAndRow) {
    std::vector<Dialogue> dl;
    for (int i = 0; i < 40; ++i) dl.push_back(make_dialogue(i % 9, 3 + i % 5, 2));
    const std::string dir = write_sft_folder(dl, 37, 0);
    TokenData d = TokenData::open(dir, "train", 100);
    BatchPlan one;
    one.batch = 4, one.seq = 12, one.shuffle = true, one.seed = 1234;
    auto batch = [&](const BatchPlan& p, int64_t k) {
        std::vector<int32_t> in(p.batch * p.seq), tg(p.batch * p.seq), ds(p.batch * p.seq);
        fill_batch(d, p, k, in.data(), tg.data(), ds.data());
        in.insert(in.end(), tg.begin(), tg.end());
        in.insert(in.end(), ds.begin(), ds.end());
        return in;
    };
    // The same call twice, and from a fresh open (a resumed run), gives the same rows.
    EXPECT_EQ(batch(one, 5), batch(one, 5));
    TokenData d2 = TokenData::open(dir, "train", 100);
    std::vector<int32_t> a(48), b(48), c(48), e(48);
    fill_batch(d, one, 17, a.data(), b.data());
    fill_batch(d2, one, 17, c.data(), e.data());
    EXPECT_EQ(a, c);
    EXPECT_EQ(b, e);
    EXPECT_NE(batch(one, 5), batch(one, 6));
    BatchPlan other = one;
    other.seed = 99;
    EXPECT_NE(batch(one, 5), batch(other, 5));
    // Rank r of 2 with B = 2 reads rows g = 2r, 2r+1: the same rows one rank with B = 4 reads.
    BatchPlan r1 = one;
    r1.batch = 2, r1.ranks = 2, r1.rank = 1;
    std::vector<int32_t> full(48), fullt(48), half(24), halft(24);
    fill_batch(d, one, 3, full.data(), fullt.data());
    fill_batch(d, r1, 3, half.data(), halft.data());
    EXPECT_EQ(half, std::vector<int32_t>(full.begin() + 24, full.end()));
    EXPECT_EQ(halft, std::vector<int32_t>(fullt.begin() + 24, fullt.end()));
    // Every row is a whole packed row: it begins with a dialogue start (doc_start 0 at t = 0 and a
    // first token that opens a dialogue in this data: 10·(i+1)).
    for (int64_t k = 0; k < 20; ++k) {
        auto v = batch(one, k);
        for (int b = 0; b < 4; ++b) EXPECT_EQ(v[b * 12] % 10, 0) << "k " << k << " row " << b;
    }
}

TEST(SftPacking, PlainDataIsUnchangedAndDocStartIsZero) {
    const std::string dir = temp_dir();
    std::string raw;
    for (int i = 0; i < 50; ++i) raw.push_back(static_cast<char>(i)), raw.push_back(0);
    write_file(dir + "/t.u16", raw);
    TokenData d = TokenData::open(dir + "/t.u16", "train", 100);
    EXPECT_FALSE(d.sft());
    BatchPlan plan;
    plan.batch = 2, plan.seq = 8, plan.shuffle = false;
    std::vector<int32_t> in(16), tg(16), ds(16, 5), in2(16), tg2(16);
    fill_batch(d, plan, 1, in.data(), tg.data(), ds.data());
    fill_batch(d, plan, 1, in2.data(), tg2.data());
    EXPECT_EQ(in, in2);
    EXPECT_EQ(tg, tg2);
    EXPECT_EQ(ds, std::vector<int32_t>(16, 0));
    // k = 1, B = 2: rows g = 2, 3 of R = 6 start at tokens 16 and 24.
    for (int t = 0; t < 8; ++t) {
        EXPECT_EQ(in[t], 16 + t);
        EXPECT_EQ(tg[t], 17 + t);
        EXPECT_EQ(in[8 + t], 24 + t);
    }
}

TEST(SftPacking, BadMaskFilesAreOneClearError) {
    const std::string dir = write_sft_folder({make_dialogue(0, 4, 2)}, 100, 0);
    write_file(dir + "/train-00000.mask", std::string("\x03\x01", 2));
    try {
        TokenData::open(dir, "train", 100);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("train-00000.mask: 2 mask bytes for the 4 tokens"), std::string::npos)
            << e.what();
    }
    write_file(dir + "/train-00000.mask", std::string("\x00\x01\x01\x01", 4));
    try {
        TokenData::open(dir, "train", 100);
        FAIL() << "no error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("does not start a dialogue"), std::string::npos) << e.what();
    }
}

// prepare_data(chat) → TokenData → fill_batch: the counted targets are exactly the replies and
// their end-of-turn tokens, and each row's doc_start marks its dialogues.
TEST(SftPacking, PreparedChatsTrainOnlyOnReplies) {
    const std::string model = src_dir() + "/models/default";
    if (!fs::exists(model + "/tokenizer.json")) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: " << model;
    const std::string dir = temp_dir();
    std::string lines;
    for (int i = 0; i < 6; ++i)
        lines += json{{"messages", json::array({json{{"role", "user"}, {"content", "Where is order " + std::to_string(i) + "?"}},
                                                json{{"role", "assistant"}, {"content", "It ships today."}}})}}
                     .dump() +
                 "\n";
    write_file(dir + "/c.jsonl", lines);
    PrepareOptions o;
    o.tokenizer = model;
    o.inputs = {dir + "/c.jsonl"};
    o.out = dir + "/data";
    o.val_fraction = 0;
    o.chat = true;
    PrepareResult r = prepare_data(o);
    EXPECT_EQ(r.documents, 6);
    const auto meta = json::parse(read_file(dir + "/data/meta.json"));
    EXPECT_EQ(meta["sft"], true);
    EXPECT_EQ(meta["train_masks"].size(), meta["train_shards"].size());
    const Tokenizer& tok = cached_tokenizer(model);
    TokenData d = TokenData::open(dir + "/data", "train", tok.n_vocab());
    ASSERT_TRUE(d.sft());
    EXPECT_EQ(d.dialogues(), 6);
    EXPECT_EQ(d.counted_tokens(), r.counted_tokens);
    BatchPlan plan;
    plan.batch = 1, plan.seq = 64, plan.shuffle = false;
    const int64_t R = d.packing(plan.seq)->rows();
    std::string counted;
    int starts = 0;
    for (int64_t k = 0; k < R; ++k) {
        std::vector<int32_t> in(64), tg(64), ds(64);
        fill_batch(d, plan, k, in.data(), tg.data(), ds.data());
        for (int t = 0; t < 64; ++t) {
            if (tg[t] >= 0) counted += tok.decode({tg[t]}, true);
            if (ds[t] == t && in[t] != d.pad_id()) ++starts;
        }
    }
    std::string want;
    for (int i = 0; i < 6; ++i) want += "It ships today.<|im_end|>";
    EXPECT_EQ(counted, want);
    EXPECT_EQ(starts, 6);
}

}  // namespace
}  // namespace llmforge::train
