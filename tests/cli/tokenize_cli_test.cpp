// `llmforge tokenize` / `detokenize` end to end: Hugging Face's ids (llama.cpp's vocabulary test
// vectors) through every kind of -m source, and one clear error line for each bad input.
#include <gtest/gtest.h>

#include <algorithm>
#include <fstream>
#include <numeric>

#include "../tokenizer/vocab_loader.h"
#include "cli_run.h"
#include "io/gguf.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

// Ids as the CLI prints them: one line, single spaces.
std::string ids_text(const std::vector<int32_t>& ids) {
    std::string s;
    for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
    return s + "\n";
}

// Indices of the test strings worth a process each: the three longest and the last one.
std::vector<size_t> picked(const std::vector<std::string>& inputs) {
    std::vector<size_t> idx(inputs.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(),
                     [&](size_t a, size_t b) { return inputs[a].size() > inputs[b].size(); });
    idx.resize(std::min<size_t>(3, idx.size()));
    idx.push_back(inputs.size() - 1);
    return idx;
}

// Runs `tokenize --ids --no-bos` on picked vectors of `vocab` (a -m argument) and checks the
// ids; then `detokenize` gives the input back when `round_trip`.
void check_vectors(const std::string& vocab, const std::string& name, bool round_trip) {
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/" + name + ".gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/" + name + ".gguf.out");
    const auto inputs = read_vocab_test_inputs(inp);
    const auto expected = read_vocab_test_outputs(out);
    ASSERT_EQ(inputs.size(), expected.size());
    for (size_t i : picked(inputs)) {
        const CliRun r = run_cli_input("tokenize -m " + q(vocab) + " --ids --no-bos", inputs[i]);
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_EQ(r.out, ids_text(expected[i])) << name << " string " << i;
        if (!round_trip) continue;
        const CliRun d = run_cli_input("detokenize -m " + q(vocab), r.out);
        ASSERT_EQ(d.rc, 0) << d.err;
        EXPECT_EQ(d.out, inputs[i]) << name << " string " << i;
    }
}

TEST(TokenizeCli, GgufVocabularies) {
    for (const char* name : {"ggml-vocab-llama-spm", "ggml-vocab-phi-3", "ggml-vocab-gpt-2",
                             "ggml-vocab-starcoder", "ggml-vocab-falcon",
                             "ggml-vocab-deepseek-llm", "ggml-vocab-bert-bge"}) {
        LF_REQUIRE_ASSET(gguf, std::string("llama.cpp-vocab/") + name + ".gguf");
        check_vectors(gguf, name, std::string(name) != "ggml-vocab-bert-bge");
    }
}

TEST(TokenizeCli, BosEosAndPieceTable) {
    LF_REQUIRE_ASSET(spm, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    LF_REQUIRE_ASSET(bert, "llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    CliRun r = run_cli_input("tokenize -m " + q(spm) + " --ids", "Hello world");
    EXPECT_EQ(r.out, "1 15043 3186\n") << r.err;
    r = run_cli_input("tokenize -m " + q(spm), "Hello world");
    EXPECT_EQ(r.out, "1\t<s>\n15043\t Hello\n3186\t world\n") << r.err;
    // BERT wraps the text in [CLS] ... [SEP].
    r = run_cli_input("tokenize -m " + q(bert) + " --ids", "Hello world");
    EXPECT_EQ(r.out, "101 7592 2088 102\n") << r.err;
    // Pieces that are not printable stay on their line, escaped.
    r = run_cli_input("tokenize -m " + q(spm) + " --no-bos", "\n\xFF");
    EXPECT_EQ(r.out, "29871\t \n13\t\\n\n258\t\\xFF\n") << r.err;
}

TEST(TokenizeCli, TokenizerJsonFolderAndLlama2cSources) {
    LF_REQUIRE_ASSET(tok512, "llama2c-stories260K/tok512.bin");
    LF_REQUIRE_HF_TOKENIZER(dir, "qwen3");
    check_vectors(dir, "ggml-vocab-qwen2", true);
    check_vectors(dir + "/tokenizer.json", "ggml-vocab-qwen2", false);
    // Special-token text becomes the token only with --parse-special.
    CliRun r = run_cli_input("tokenize -m " + q(dir) + " --ids --parse-special", "<|im_start|>user");
    EXPECT_EQ(r.out, "151644 872\n") << r.err;
    r = run_cli_input("tokenize -m " + q(dir) + " --ids", "<|im_start|>user");
    EXPECT_NE(r.out.substr(0, 7), "151644 ") << r.err;
    r = run_cli_input("detokenize -m " + q(dir) + " --render-special", "151644 872");
    EXPECT_EQ(r.out, "<|im_start|>user") << r.err;
    // llama2.c tok512.bin: "Once upon a time" is 403 407 261 378 after BOS (the reference story).
    r = run_cli_input("tokenize -m " + q(tok512) + " --ids", "Once upon a time");
    EXPECT_EQ(r.out, "1 403 407 261 378\n") << r.err;
}

TEST(TokenizeCli, BadInputGivesOneClearLine) {
    LF_REQUIRE_ASSET(spm, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    LF_REQUIRE_ASSET(gpt2, "llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    const std::string dir = temp_dir();
    // A GGUF without a vocabulary.
    GgufWriter w;
    w.set("general.architecture", GgufValue(std::string("llama")));
    w.write(dir + "/novocab.gguf");
    expect_one_line_error(run_cli_input("tokenize -m " + q(dir + "/novocab.gguf"), "x"),
                          "no vocabulary");
    // A tokenizer.json whose model type is not supported.
    write_file(dir + "/unigram.json", R"({"model": {"type": "Unigram", "vocab": [["a", 0.0]]}})");
    expect_one_line_error(run_cli_input("tokenize -m " + q(dir + "/unigram.json"), "x"),
                          "'Unigram'");
    // Merges naming tokens the vocabulary does not have.
    write_file(dir + "/merges.json", R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2},
        "merges": ["a b", "a zz"]}, "pre_tokenizer": {"type": "ByteLevel", "use_regex": true}})");
    expect_one_line_error(run_cli_input("tokenize -m " + q(dir + "/merges.json"), "x"),
                          "'a zz'");
    // Missing path, truncated GGUF, ids that are no ids or out of range.
    expect_one_line_error(run_cli_input("tokenize -m " + q(dir + "/nope.gguf"), "x"),
                          "no such file");
    ASSERT_EQ(run_command("head -c 5000 " + q(gpt2) + " > " + q(dir + "/cut.gguf")), 0);
    expect_one_line_error(run_cli_input("tokenize -m " + q(dir + "/cut.gguf"), "x"),
                          "cut.gguf");
    expect_one_line_error(run_cli_input("detokenize -m " + q(spm), "1 two"), "byte 2");
    expect_one_line_error(run_cli_input("detokenize -m " + q(spm), "[1, 32000]"), "token id 32000");
}

}  // namespace
