// `llmforge complete` end to end on a tiny random model that carries StarCoder's vocabulary
// (init-model with 49,152 tokens + --tokenizer ggml-vocab-starcoder.gguf). The prompts it prints
// (--print-prompt) are checked against ids nobody here produced: StarCoder's published marker ids
// (<fim_prefix>=1, <fim_middle>=2, <fim_suffix>=3, <repo_name>=5, <file_sep>=6) and Hugging
// Face's encodings of llama.cpp's vocabulary test strings (ggml-vocab-starcoder.gguf.out):
//   "\n" -> 222, "    Hello\n    Hello" -> 283 12009 303 12009, "Hello" -> 8302,
//   " Hello world" -> 12009 5810, "Äpfel" -> 163 250 7146 361.
#include <gtest/gtest.h>

#include <filesystem>

#include "cli_run.h"
#include "model/vocab_source.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::test {
namespace {

namespace fs = std::filesystem;

// The tiny model, made once per process; "" when the StarCoder vocabulary is missing.
const std::string& tiny_model() {
    static const std::string path = [] {
        if (asset("llama.cpp-vocab/ggml-vocab-starcoder.gguf").empty()) return std::string();
        const std::string p = temp_dir() + "/tiny-starcoder.gguf";
        const CliRun r = run_cli(
            "init-model --dim 16 --layers 1 --heads 2 --ffn 32 --vocab 49152 --ctx 512 --tied -o " +
            q(p));
        EXPECT_EQ(r.rc, 0) << r.err;
        return p;
    }();
    return path;
}

#define LF_REQUIRE_TINY(model, vocab)                                     \
    LF_REQUIRE_ASSET(vocab, "llama.cpp-vocab/ggml-vocab-starcoder.gguf"); \
    const std::string model = tiny_model();                               \
    ASSERT_FALSE(model.empty())

std::string src_file(const std::string& text) {
    const std::string p = temp_dir() + "/code.py";
    write_file(p, text);
    return p;
}

TEST(CompleteCli, PromptAtLineStart) {
    LF_REQUIRE_TINY(model, vocab);
    // Cursor at the start of line 2: prefix "\n", suffix "    Hello\n    Hello".
    const std::string f = src_file("\n    Hello\n    Hello");
    const CliRun r = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " +
                             q(f) + " --line 2 --print-prompt");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "1 222 3 283 12009 303 12009 2\n");
    // Line 3 = lines + 1 of "    Hello\n    Hello": the whole file is the prefix.
    const std::string g = src_file("    Hello\n    Hello");
    const CliRun end = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " +
                               q(g) + " --line 3 --print-prompt");
    ASSERT_EQ(end.rc, 0) << end.err;
    EXPECT_EQ(end.out, "1 283 12009 303 12009 3 2\n");
}

TEST(CompleteCli, PromptAtColumnCountsCharacters) {
    LF_REQUIRE_TINY(model, vocab);
    // "Hello| Hello world": column 6; "Äpfel| Hello world": column 6 too (Ä is 2 bytes).
    const std::string f = src_file("x\nHello Hello world\n");
    CliRun r = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " + q(f) +
                       " --line 2 --col 6 --print-prompt");
    ASSERT_EQ(r.rc, 0) << r.err;
    // Prefix "x\nHello": pre-tokens "x", "\n", "Hello"; suffix " Hello world\n". "x" is 125 in
    // StarCoder's vocabulary (tokenizer.json / the GGUF's token list).
    EXPECT_EQ(r.out, "1 125 222 8302 3 12009 5810 222 2\n");
    const std::string g = src_file("Äpfel Hello world");
    r = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " + q(g) +
                " --line 1 --col 6 --print-prompt");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, "1 163 250 7146 361 3 12009 5810 2\n");
}

TEST(CompleteCli, RepoContextLayout) {
    LF_REQUIRE_TINY(model, vocab);
    const fs::path repo = fs::path(temp_dir()) / "myrepo";
    fs::create_directories(repo / "lib");
    write_file((repo / "lib/helpers.py").string(),
               "def parse_price_tag(tag):\n    return float(tag.strip('$'))\n");
    write_file((repo / "lib/other.py").string(), "def unrelated_thing(x):\n    return x * 2\n");
    write_file((repo / "main.py").string(),
               "from lib.helpers import parse_price_tag\n\nprice = parse_price_tag(raw)\n");
    const CliRun r = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " +
                             q((repo / "main.py").string()) + " --line 3 --repo " +
                             q(repo.string()) + " --print-prompt");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("lib/helpers.py:1-2"), std::string::npos) << r.err;
    EXPECT_EQ(r.err.find("lib/other.py"), std::string::npos) << r.err;  // shares no term
    std::vector<int32_t> ids;
    std::istringstream ss(r.out);
    for (int32_t id; ss >> id;) ids.push_back(id);
    auto tok = Tokenizer::create(load_vocab(vocab));
    // StarCoder2's repository markers, Qwen2.5-Coder's repo-level layout.
    EXPECT_EQ(
        tok->decode(ids, true),
        "<repo_name>myrepo\n"
        "<file_sep>lib/helpers.py\ndef parse_price_tag(tag):\n    return float(tag.strip('$'))\n\n"
        "<file_sep>main.py\n"
        "<fim_prefix>from lib.helpers import parse_price_tag\n\n<fim_suffix>price = "
        "parse_price_tag(raw)\n"
        "<fim_middle>");
    ASSERT_FALSE(ids.empty());
    EXPECT_EQ(ids.front(), 5);
    EXPECT_EQ(ids.back(), 2);
    // --budget 0: no context, the plain prompt.
    const CliRun none = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) +
                                " --file " + q((repo / "main.py").string()) + " --line 3 --repo " +
                                q(repo.string()) + " --budget 0 --print-prompt");
    ASSERT_EQ(none.rc, 0) << none.err;
    EXPECT_EQ(none.out.rfind("1 1097 ", 0), 0u) << none.out;  // <fim_prefix> "from" ...
}

TEST(CompleteCli, GeneratesTheMiddleOnly) {
    LF_REQUIRE_TINY(model, vocab);
    const std::string f = src_file("def add(a, b):\n\nprint(add(1, 2))\n");
    const std::string cmd = "complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file " +
                            q(f) + " --line 2 -n 6 -t 1";
    const CliRun a = run_cli(cmd), b = run_cli(cmd);
    ASSERT_EQ(a.rc, 0) << a.err;
    EXPECT_NE(a.err.find("FIM format starcoder"), std::string::npos) << a.err;
    EXPECT_NE(a.err.find("finish: "), std::string::npos) << a.err;
    EXPECT_EQ(a.out, b.out);  // greedy by default
    // The middle only: none of the prompt's text or markers is echoed.
    EXPECT_EQ(a.out.find("def add"), std::string::npos) << a.out;
    EXPECT_EQ(a.out.find("<fim_"), std::string::npos) << a.out;
    const CliRun zero = run_cli("complete -m " + q(model) + " --tokenizer " + q(vocab) +
                                " --file " + q(f) + " --line 2 -n 0");
    ASSERT_EQ(zero.rc, 0) << zero.err;
    EXPECT_EQ(zero.out, "");
}

TEST(CompleteCli, Errors) {
    LF_REQUIRE_TINY(model, vocab);
    const std::string f = src_file("a = 1\nb = 2\n");
    const std::string base = "complete -m " + q(model) + " --tokenizer " + q(vocab) + " --file ";
    expect_one_line_error(run_cli(base + q(f) + " --line 4"),
                          "line 4 is out of range: the file has 2 lines");
    expect_one_line_error(run_cli(base + q(f) + " --line 1 --col 8"),
                          "column 8 is out of range on line 1");
    expect_one_line_error(run_cli(base + q(f + ".missing") + " --line 1"), "cannot open");
    expect_one_line_error(run_cli(base + q(temp_dir()) + " --line 1"), "not a regular file");
    expect_one_line_error(run_cli(base + q(f) + " --line 1 --repo " + q(f + ".nodir")),
                          "not a folder");
    expect_one_line_error(run_cli(base + q(f) + " --line 1 -c 16 -n 16"), "no room for the prompt");
    // A model without FIM tokens (TinyStories): names the formats looked for, suggests a code
    // model.
    LF_REQUIRE_ASSET(stories, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok512, "llama2c-stories260K/tok512.bin");
    const CliRun r = run_cli("complete -m " + q(stories) + " --tokenizer " + q(tok512) +
                             " --file " + q(f) + " --line 1");
    expect_one_line_error(r, "no fill-in-the-middle tokens");
    EXPECT_NE(r.err.find("<fim_prefix>"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("<｜fim▁begin｜>"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("code model"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace llmforge::test
