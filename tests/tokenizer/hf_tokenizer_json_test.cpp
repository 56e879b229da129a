// Hugging Face tokenizer.json -> Vocab: Llama 3 and Qwen 3 tokenizers reproduce llama.cpp's
// llama-bpe and qwen2 vectors; DeepSeek V3 loads; unsupported files are rejected.
#include "tokenizer/hf_tokenizer_json.h"

#include <gtest/gtest.h>

#include "core/error.h"
#include "test_util.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer_vectors.h"
#include "vocab_loader.h"

#include <nlohmann/json.hpp>
#include <tuple>
#include <unordered_map>

namespace llmforge {
namespace {

// Decompresses hf-tokenizers/<dir>/tokenizer.json.gz into a temporary directory.
std::string gunzip_tokenizer(const std::string& gz) {
    const std::string out = test::temp_dir() + "/tokenizer.json";
    const int rc = test::run_command("gzip -dc '" + gz + "' > '" + out + "'");
    EXPECT_EQ(rc, 0) << "gzip -dc " << gz;
    return out;
}

struct Loaded {
    Vocab vocab;
    std::unique_ptr<Tokenizer> tok;
};

Loaded load(const std::string& gz, const std::string& config) {
    Loaded l;
    l.vocab = hf_tokenizer_json_load(gunzip_tokenizer(gz), config);
    l.tok = Tokenizer::create(l.vocab);
    return l;
}

TEST(HfTokenizerJson, Llama3ReproducesLlamaBpeVectors) {
    LF_REQUIRE_ASSET(gz, "hf-tokenizers/llama3/tokenizer.json.gz");
    LF_REQUIRE_ASSET(cfg, "hf-tokenizers/llama3/tokenizer_config.json");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-llama-bpe.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-llama-bpe.gguf.out");
    const Loaded l = load(gz, cfg);
    EXPECT_EQ(l.vocab.model, "gpt2");
    EXPECT_EQ(l.vocab.pre, "llama-bpe");
    EXPECT_EQ(l.tok->n_vocab(), 128256);
    EXPECT_EQ(l.tok->token_text(l.tok->bos()), "<|begin_of_text|>");
    EXPECT_TRUE(l.tok->add_bos_default());
    EXPECT_TRUE(l.tok->is_eog(l.tok->token_id("<|eot_id|>")));
    EXPECT_FALSE(l.vocab.chat_template.empty());
    const size_t n = test::read_vocab_test_inputs(inp).size();
    EXPECT_EQ(test::run_vocab_vectors(*l.tok, inp, out, "llama-bpe (llama3 tokenizer.json)"), n);
    // Chat markup is parsed only on request.
    const auto ids = l.tok->encode("<|start_header_id|>user<|end_header_id|>", true, true);
    EXPECT_EQ(ids, (std::vector<int32_t>{128000, 128006, 882, 128007}));
}

TEST(HfTokenizerJson, Qwen3ReproducesQwen2Vectors) {
    LF_REQUIRE_ASSET(gz, "hf-tokenizers/qwen3/tokenizer.json.gz");
    LF_REQUIRE_ASSET(cfg, "hf-tokenizers/qwen3/tokenizer_config.json");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-qwen2.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-qwen2.gguf.out");
    const Loaded l = load(gz, cfg);
    EXPECT_EQ(l.vocab.pre, "qwen2");
    EXPECT_EQ(l.tok->bos(), -1);
    EXPECT_FALSE(l.tok->add_bos_default());
    EXPECT_THROW(l.tok->encode("x", true, false), Error);
    EXPECT_EQ(l.tok->token_text(l.tok->eos()), "<|im_end|>");
    EXPECT_TRUE(l.tok->is_eog(l.tok->token_id("<|endoftext|>")));
    const size_t n = test::read_vocab_test_inputs(inp).size();
    EXPECT_EQ(test::run_vocab_vectors(*l.tok, inp, out, "qwen2 (qwen3 tokenizer.json)"), n);
    const auto ids = l.tok->encode("<|im_start|>user\nhi<|im_end|>", false, true);
    EXPECT_EQ(ids.front(), l.tok->token_id("<|im_start|>"));
    EXPECT_EQ(ids.back(), l.tok->token_id("<|im_end|>"));

    LF_REQUIRE_ASSET(old_inp,
                     "llama.cpp-vocab/r1-qwen-older-testset/ggml-vocab-deepseek-r1-qwen.gguf.inp");
    LF_REQUIRE_ASSET(old_out,
                     "llama.cpp-vocab/r1-qwen-older-testset/ggml-vocab-deepseek-r1-qwen.gguf.out");
    const size_t n_old = test::read_vocab_test_inputs(old_inp).size();
    EXPECT_EQ(test::run_vocab_vectors(*l.tok, old_inp, old_out,
                                      "deepseek-r1-qwen (qwen3 tokenizer.json)"),
              n_old);
}

TEST(HfTokenizerJson, DeepseekV3Loads) {
    LF_REQUIRE_ASSET(gz, "hf-tokenizers/deepseek-v3/tokenizer.json.gz");
    LF_REQUIRE_ASSET(cfg, "hf-tokenizers/deepseek-v3/tokenizer_config.json");
    const Loaded l = load(gz, cfg);
    EXPECT_EQ(l.vocab.pre, "deepseek-v3");
    // 128,000 BPE tokens + 818 added ones, 3 of which (BOS, EOS, PAD) are BPE ids too.
    EXPECT_EQ(l.tok->n_vocab(), 128815);
    EXPECT_EQ(l.tok->bos(), 0);
    EXPECT_TRUE(l.tok->add_bos_default());
    const std::string text =
        "Hello, world! 1234567 \xE4\xBD\xA0\xE5\xA5\xBD\xE4\xB8\x96\xE7\x95\x8C "
        "\xE3\x81\x93\xE3\x82\x93\xE3\x81\xAB\xE3\x81\xA1\xE3\x81\xAF def f(x):\n    return x";
    const auto ids = l.tok->encode(text, true, false);
    EXPECT_EQ(ids.front(), 0);
    EXPECT_EQ(l.tok->decode(ids), text);
}

TEST(HfTokenizerJson, RejectsUnsupportedFiles) {
    const std::string unigram = R"({"model": {"type": "Unigram", "vocab": []}})";
    try {
        hf_tokenizer_json_parse(unigram, "", "", "x/tokenizer.json");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("x/tokenizer.json"), std::string::npos) << m;
        EXPECT_NE(m.find("'Unigram'"), std::string::npos) << m;
        EXPECT_NE(m.find("'WordPiece'"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    const std::string cased = R"({"model": {"type": "WordPiece", "vocab": {}},
        "normalizer": {"type": "BertNormalizer", "lowercase": false}})";
    EXPECT_THROW(hf_tokenizer_json_parse(cased, ""), Error);
    EXPECT_THROW(hf_tokenizer_json_parse("{not json", ""), Error);
    const std::string odd_regex = R"({"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": "x+"}, "behavior": "Isolated"},
            {"type": "ByteLevel", "use_regex": false}]}})";
    try {
        hf_tokenizer_json_parse(odd_regex, "");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("x+"), std::string::npos) << e.what();
    }
    // ... unless the caller names the pre-tokenizer.
    const Vocab v = hf_tokenizer_json_parse(odd_regex, "", "gpt-2");
    EXPECT_EQ(v.pre, "gpt-2");
    EXPECT_EQ(v.tokens, std::vector<std::string>{"a"});
    EXPECT_THROW(hf_tokenizer_json_load("/nonexistent/tokenizer.json"), Error);
    // Ids must be integers (found by tokenizer_json_fuzz: a huge float id was undefined behaviour).
    const std::string float_id = R"({"model": {"type": "BPE", "vocab": {"a": 7.7e86}, "merges": []},
        "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}})";
    try {
        hf_tokenizer_json_parse(float_id, "");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("expected an integer"), std::string::npos) << e.what();
    }
    // A few tokens with one id far beyond them (found by tokenizer_json_fuzz: 22M "[PADn]" holes
    // ran it out of memory) are refused; a padded vocabulary with some holes still loads.
    const std::string sparse = R"({"model": {"type": "BPE", "vocab": {"[UNK]": 22222220, "[CLS]": 1, "hello": 2},
        "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}})";
    try {
        hf_tokenizer_json_parse(sparse, "");
        FAIL() << "expected Error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("'[UNK]' has id 22222220 but the vocabulary has 3 tokens"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    const std::string padded = R"({"model": {"type": "BPE", "vocab": {"[UNK]": 0, "[CLS]": 1, "hello": 2, "world": 40},
        "merges": []}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}})";
    EXPECT_EQ(hf_tokenizer_json_parse(padded, "").tokens.size(), 41u);
}

TEST(HfTokenizerJson, MergesAsPairsAndGaps) {
    const std::string j = R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
        "merges": [["a", "b"]]},
        "pre_tokenizer": {"type": "ByteLevel", "use_regex": true},
        "added_tokens": [{"id": 5, "content": "<eos>", "special": true},
                         {"id": 4, "content": "<tool>", "special": false}]})";
    const Vocab v = hf_tokenizer_json_parse(j, R"({"eos_token": {"content": "<eos>"}})");
    EXPECT_EQ(v.pre, "gpt-2");
    EXPECT_EQ(v.merges, std::vector<std::string>{"a b"});
    ASSERT_EQ(v.tokens.size(), 6u);
    EXPECT_EQ(v.tokens[3], "[PAD3]");
    EXPECT_EQ(v.types[3], TokenType::kUnused);
    EXPECT_EQ(v.types[4], TokenType::kUserDefined);
    EXPECT_EQ(v.types[5], TokenType::kControl);
    EXPECT_EQ(v.eos_id, 5);
    EXPECT_EQ(v.bos_id, -1);
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(tok->encode("ab<tool><eos>", false, true), (std::vector<int32_t>{2, 4, 5}));
    // Without parse_special "<eos>" is text; its characters are no tokens here and drop out.
    EXPECT_EQ(tok->encode("ab<tool><eos>", false, false), (std::vector<int32_t>{2, 4}));
}

// A Llama-2-style tokenizer.json (BPE over SentencePiece pieces with byte fallback, Prepend +
// Replace normalizer) written here from the llama-spm GGUF vocabulary the way Hugging Face's
// converter builds it: every split of a piece into two pieces is a merge, ranked by the merged
// piece's score. Loading it must tokenize exactly like the GGUF vocabulary: 46/46 vectors.
TEST(HfTokenizerJson, SentencePieceBpeFromTokenizerJson) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf.out");
    const Vocab g = test::load_gguf_vocab(gguf);
    std::unordered_map<std::string, size_t> id;
    for (size_t i = 0; i < g.tokens.size(); ++i) id.emplace(g.tokens[i], i);
    struct M {
        float score;
        size_t a, b;
        std::string text;
    };
    std::vector<M> merges;
    for (size_t i = 0; i < g.tokens.size(); ++i) {
        const std::string& t = g.tokens[i];
        if (g.types[i] != TokenType::kNormal) continue;
        for (size_t k = 1; k < t.size(); ++k) {
            if ((static_cast<unsigned char>(t[k]) & 0xC0) == 0x80) continue;  // inside a character
            const auto a = id.find(t.substr(0, k)), b = id.find(t.substr(k));
            if (a == id.end() || b == id.end()) continue;
            if (g.types[a->second] != TokenType::kNormal || g.types[b->second] != TokenType::kNormal)
                continue;
            merges.push_back({g.scores[i], a->second, b->second, a->first + " " + b->first});
        }
    }
    std::stable_sort(merges.begin(), merges.end(), [](const M& x, const M& y) {
        if (x.score != y.score) return x.score > y.score;
        return std::tie(x.a, x.b) < std::tie(y.a, y.b);
    });
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object(), added = nlohmann::ordered_json::array();
    for (size_t i = 0; i < g.tokens.size(); ++i) {
        vocab[g.tokens[i]] = i;
        if (g.types[i] == TokenType::kControl || g.types[i] == TokenType::kUnknown)
            added.push_back({{"id", i}, {"content", g.tokens[i]}, {"special", true}});
    }
    nlohmann::ordered_json mj = nlohmann::ordered_json::array();
    for (const M& m : merges) mj.push_back(m.text);
    const std::string sp = "\xE2\x96\x81";
    nlohmann::ordered_json j = {
        {"added_tokens", added},
        {"normalizer", {{"type", "Sequence"},
                        {"normalizers", {{{"type", "Prepend"}, {"prepend", sp}},
                                         {{"type", "Replace"}, {"pattern", {{"String", " "}}},
                                          {"content", sp}}}}}},
        {"pre_tokenizer", nullptr},
        {"model", {{"type", "BPE"}, {"unk_token", "<unk>"}, {"fuse_unk", true},
                   {"byte_fallback", true}, {"vocab", vocab}, {"merges", mj}}}};
    const Vocab v = hf_tokenizer_json_parse(
        j.dump(), R"({"bos_token": "<s>", "eos_token": "</s>", "add_bos_token": true})");
    EXPECT_EQ(v.model, "llama");
    EXPECT_TRUE(v.add_space_prefix);
    EXPECT_EQ(v.tokens, g.tokens);
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_EQ(v.types[3 + 0x41], TokenType::kByte);  // "<0x41>"
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(test::run_vocab_vectors(*tok, inp, out, "llama-spm via tokenizer.json"), 46u);
    // A Metaspace pre-tokenizer in place of the normalizer (newer converters) is the same.
    j["normalizer"] = nullptr;
    j["pre_tokenizer"] = {{"type", "Metaspace"}, {"replacement", sp}, {"prepend_scheme", "first"},
                          {"split", false}};
    auto tok2 = Tokenizer::create(hf_tokenizer_json_parse(j.dump(), ""));
    EXPECT_EQ(test::run_vocab_vectors(*tok2, inp, out, "llama-spm via Metaspace"), 46u);
}

// A BERT tokenizer.json, written here from the bert-bge GGUF vocabulary the way Hugging Face
// stores it ("##" continuations, TemplateProcessing "[CLS] $A [SEP]"), reproduces the vectors.
TEST(HfTokenizerJson, WordPieceFromTokenizerJson) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf.out");
    const Vocab g = test::load_gguf_vocab(gguf);
    nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
    nlohmann::ordered_json added = nlohmann::ordered_json::array();
    const std::string phantom = "\xE2\x96\x81";
    for (size_t i = 0; i < g.tokens.size(); ++i) {
        const std::string& t = g.tokens[i];
        std::string hf;
        if (t.compare(0, phantom.size(), phantom) == 0) {
            hf = t.substr(phantom.size());
        } else if (t.size() >= 2 && t.front() == '[' && t.back() == ']') {
            hf = t;
        } else {
            hf = "##" + t;
        }
        vocab[hf] = i;
        if (g.types[i] == TokenType::kControl) {
            added.push_back({{"id", i}, {"content", t}, {"special", true}});
        }
    }
    nlohmann::ordered_json j = {
        {"added_tokens", added},
        {"normalizer", {{"type", "BertNormalizer"}, {"clean_text", true},
                        {"handle_chinese_chars", true}, {"strip_accents", nullptr},
                        {"lowercase", true}}},
        {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
        {"post_processor",
         {{"type", "TemplateProcessing"},
          {"single", {{{"SpecialToken", {{"id", "[CLS]"}, {"type_id", 0}}}},
                      {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
                      {{"SpecialToken", {{"id", "[SEP]"}, {"type_id", 0}}}}}}}},
        {"model", {{"type", "WordPiece"}, {"unk_token", "[UNK]"},
                   {"continuing_subword_prefix", "##"}, {"max_input_chars_per_word", 100},
                   {"vocab", vocab}}}};
    const Vocab v = hf_tokenizer_json_parse(j.dump(), "");
    EXPECT_EQ(v.model, "bert");
    EXPECT_EQ(v.tokens, g.tokens);
    EXPECT_EQ(v.bos_id, 101);
    EXPECT_EQ(v.eos_id, 102);
    EXPECT_EQ(v.unk_id, 100);
    EXPECT_TRUE(v.add_bos);
    EXPECT_TRUE(v.add_eos);
    auto tok = Tokenizer::create(v);
    EXPECT_EQ(test::run_vocab_vectors(*tok, inp, out, "bert-bge via tokenizer.json", false), 46u);
}

}  // namespace
}  // namespace llmforge
