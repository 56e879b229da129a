// Fill-in-the-middle prompts against real vocabularies. Every expected id comes from outside the
// project: marker ids as the models' published tokenizer.json / GGUF vocabularies number them
// (StarCoder <fim_prefix>=1, <fim_middle>=2, <fim_suffix>=3; DeepSeek-Coder <｜fim▁begin｜>=32016,
// <｜fim▁hole｜>=32015, <｜fim▁end｜>=32017, BOS 32013; Qwen <|fim_prefix|>=151659 ...), and the
// code's ids from Hugging Face's own encodings in llama.cpp's vocabulary test vectors
// (NAME.gguf.inp / .out), so a prompt is checked as [markers] + HF(prefix) + ... + HF(suffix).
#include "runtime/fim.h"

#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "model/vocab_source.h"
#include "test_util.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/vocab.h"

namespace llmforge {
namespace {

using test::asset;
using Ids = std::vector<int32_t>;

struct Vectors {
    std::vector<std::string> text;
    std::vector<Ids> ids;
};

// llama.cpp's vocabulary test format (see the assets README).
Vectors read_vectors(const std::string& inp, const std::string& out) {
    Vectors v;
    const std::string sep = "\n__ggml_vocab_test__\n";
    const std::string all = test::read_file(inp);
    size_t pos = 0;
    for (size_t at; (at = all.find(sep, pos)) != std::string::npos; pos = at + sep.size())
        v.text.push_back(all.substr(pos, at - pos));
    std::istringstream os(test::read_file(out));
    std::string line;
    while (v.ids.size() < v.text.size() && std::getline(os, line)) {
        std::istringstream ls(line);
        Ids ids;
        for (int32_t id; ls >> id;) ids.push_back(id);
        v.ids.push_back(ids);
    }
    EXPECT_EQ(v.ids.size(), v.text.size()) << out;
    return v;
}

Ids cat(std::initializer_list<Ids> parts) {
    Ids r;
    for (const Ids& p : parts) r.insert(r.end(), p.begin(), p.end());
    return r;
}

bool has(const Ids& v, int32_t id) {
    return std::find(v.begin(), v.end(), id) != v.end();
}

// Vocabularies the shared assets do not hold: tests/runtime/data/ (deepseek-coder and refact,
// copied from llama.cpp's models/ folder, MIT), else llama.cpp's checkout beside the project
// (…/llama.cpp) or $LLAMA_CPP_DIR. "" when absent.
std::string llama_cpp_model(const std::string& name) {
    const std::string in_repo = test::src_path("tests/runtime/data/" + name);
    if (std::filesystem::exists(in_repo)) return in_repo;
    const char* e = std::getenv("LLAMA_CPP_DIR");
    const std::filesystem::path dir = e && *e ? std::filesystem::path(e) : std::filesystem::path(test::src_path("../llama.cpp"));
    const auto p = dir / "models" / name;
    return std::filesystem::exists(p) ? p.string() : std::string();
}

#define LF_REQUIRE_LLAMA_CPP_MODEL(var, name)                             \
    std::string var = llama_cpp_model(name);                              \
    if (var.empty())                                                      \
    GTEST_SKIP() << "optional vocabulary missing: llama.cpp/models/" << (name) \
                 << " (set LLAMA_CPP_DIR to a llama.cpp checkout)"

// Every consecutive pair of test strings as (prefix, suffix): the prompt is the markers around
// Hugging Face's ids of each, tokenised separately.
void expect_pairs(const Tokenizer& tok, const FimFormat& f, const Vectors& v, const Ids& bos) {
    ASSERT_GE(v.text.size(), 2u);
    for (size_t i = 0; i + 1 < v.text.size(); ++i) {
        const Ids want = cat({bos, {f.prefix}, v.ids[i], {f.suffix}, v.ids[i + 1], {f.middle}});
        EXPECT_EQ(fim_prompt(tok, f, v.text[i], v.text[i + 1]), want) << "pair " << i;
        FimRequest req;
        req.prefix = v.text[i];
        req.suffix = v.text[i + 1];
        EXPECT_EQ(fim_prompt(tok, f, req), want) << "pair " << i << " (FimRequest)";
    }
}

TEST(Fim, StarCoder) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-starcoder.gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-starcoder.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-starcoder.gguf.out");
    auto tok = Tokenizer::create(load_vocab(gguf));
    const auto f = detect_fim(*tok);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->name, "starcoder");
    EXPECT_EQ(f->prefix, 1);
    EXPECT_EQ(f->middle, 2);
    EXPECT_EQ(f->suffix, 3);
    // This vocabulary is StarCoder2's: <repo_name>=5, <file_sep>=6; no <filename>.
    EXPECT_EQ(f->repo_name, 5);
    EXPECT_EQ(f->file_sep, 6);
    EXPECT_EQ(f->filename, -1);
    EXPECT_TRUE(has(f->stop, 0)) << "<|endoftext|>";
    EXPECT_TRUE(has(f->stop, 4)) << "<fim_pad>";
    EXPECT_TRUE(has(f->stop, 6)) << "<file_sep>";
    EXPECT_FALSE(has(f->stop, f->middle));
    // StarCoder adds no BOS (no tokenizer.ggml.add_bos_token, BPE default).
    expect_pairs(*tok, *f, read_vectors(inp, out), {});
}

TEST(Fim, StarCoderRepoLevelLayout) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-starcoder.gguf");
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-starcoder.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-starcoder.gguf.out");
    auto tok = Tokenizer::create(load_vocab(gguf));
    const FimFormat f = *detect_fim(*tok);
    const Vectors v = read_vectors(inp, out);
    // Test string 7 is "\n" (HF: 222); 11 "Hello world", 28 "    Hello\n    Hello", 23 "Hello".
    ASSERT_EQ(v.text[7], "\n");
    FimRequest req;
    req.files = {{v.text[11].substr(0, 5), v.text[28]}};  // path "Hello", text of string 28
    req.path = v.text[23];                                // "Hello"
    req.prefix = v.text[12];
    req.suffix = v.text[14];
    req.repo = v.text[23];
    // <repo_name> repo \n <file_sep> path \n text \n <file_sep> path \n <fim_prefix> ...
    // ("Hello\n" is one pre-token split only after the word: HF's "Hello" then "\n").
    const Ids want = cat({{5},
                          v.ids[23],
                          {222},
                          {6},
                          v.ids[23],
                          {222},
                          v.ids[28],
                          {222},
                          {6},
                          v.ids[23],
                          {222},
                          {1},
                          v.ids[12],
                          {3},
                          v.ids[14],
                          {2}});
    EXPECT_EQ(fim_prompt(*tok, f, req), want);
}

TEST(Fim, RefactFilenameLayout) {
    // Refact (StarCoder 1's markers): <fim_prefix>=1 <fim_middle>=2 <fim_suffix>=3, <filename>=5,
    // no file separator: context files go after <fim_prefix> under <filename> markers.
    LF_REQUIRE_LLAMA_CPP_MODEL(gguf, "ggml-vocab-refact.gguf");
    LF_REQUIRE_LLAMA_CPP_MODEL(inp, "ggml-vocab-refact.gguf.inp");
    LF_REQUIRE_LLAMA_CPP_MODEL(out, "ggml-vocab-refact.gguf.out");
    auto tok = Tokenizer::create(load_vocab(gguf));
    const FimFormat f = *detect_fim(*tok);
    EXPECT_EQ(f.name, "starcoder");
    EXPECT_EQ(f.filename, 5);
    EXPECT_EQ(f.file_sep, -1);
    EXPECT_EQ(f.repo_name, 18);  // <reponame>
    const Vectors v = read_vectors(inp, out);
    ASSERT_EQ(v.text[7], "\n");
    ASSERT_EQ(v.text[23], "Hello");
    expect_pairs(*tok, f, v, {});
    FimRequest req;
    req.repo = "Hello";  // no repo marker in this layout
    req.files = {{"Hello", v.text[28]}};
    req.path = "Hello";
    req.prefix = v.text[12];
    req.suffix = v.text[14];
    const Ids nl = v.ids[7];
    EXPECT_EQ(fim_prompt(*tok, f, req), cat({{1, 5},
                                             v.ids[23],
                                             nl,
                                             v.ids[28],
                                             nl,
                                             {5},
                                             v.ids[23],
                                             nl,
                                             v.ids[12],
                                             {3},
                                             v.ids[14],
                                             {2}}));
    // Without context files: the plain prompt, no file marker.
    req.files.clear();
    EXPECT_EQ(fim_prompt(*tok, f, req), cat({{1}, v.ids[12], {3}, v.ids[14], {2}}));
}

TEST(Fim, DeepSeekCoder) {
    LF_REQUIRE_LLAMA_CPP_MODEL(gguf, "ggml-vocab-deepseek-coder.gguf");
    LF_REQUIRE_LLAMA_CPP_MODEL(inp, "ggml-vocab-deepseek-coder.gguf.inp");
    LF_REQUIRE_LLAMA_CPP_MODEL(out, "ggml-vocab-deepseek-coder.gguf.out");
    auto tok = Tokenizer::create(load_vocab(gguf));
    const auto f = detect_fim(*tok);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->name, "deepseek-coder");
    EXPECT_EQ(f->prefix, 32016);  // <｜fim▁begin｜>
    EXPECT_EQ(f->suffix, 32015);  // <｜fim▁hole｜>
    EXPECT_EQ(f->middle, 32017);  // <｜fim▁end｜>
    EXPECT_EQ(f->file_sep, -1);
    EXPECT_TRUE(has(f->stop, 32014)) << "<｜end▁of▁sentence｜>";
    EXPECT_TRUE(has(f->stop, 32021)) << "<|EOT|>";
    expect_pairs(*tok, *f, read_vectors(inp, out), {32013});  // BOS <｜begin▁of▁sentence｜>
}

TEST(Fim, DeepSeekV3) {
    LF_REQUIRE_HF_TOKENIZER(dir, "deepseek-v3");
    auto tok = Tokenizer::create(load_vocab(dir));
    const auto f = detect_fim(*tok);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->name, "deepseek-coder");
    EXPECT_EQ(f->prefix, 128801);
    EXPECT_EQ(f->suffix, 128800);
    EXPECT_EQ(f->middle, 128802);
    EXPECT_TRUE(has(f->stop, 1)) << "<｜end▁of▁sentence｜>";
    EXPECT_TRUE(has(f->stop, 128805)) << "<|EOT|>";
    // tokenizer.json model.vocab: "def"=3465, "Ġadd"=1258, "Ġreturn"=1354; add_bos_token: BOS 0.
    EXPECT_EQ(fim_prompt(*tok, *f, "def add", " return"),
              (Ids{0, 128801, 3465, 1258, 128800, 1354, 128802}));
    // Context goes after the prefix marker, before the prefix's code (path comment: no markers).
    // "# a.py\n" is not checked id by id here, only its place: it is what the tokenizer gives.
    const Ids ctx = tok->encode("# a.py\n", false, false);
    const Ids code = tok->encode("def\n", false, false);
    FimRequest req;
    req.files = {{"a.py", "def"}};
    req.prefix = "def add";
    req.suffix = " return";
    EXPECT_EQ(fim_prompt(*tok, *f, req),
              cat({{0, 128801}, ctx, code, {3465, 1258, 128800, 1354, 128802}}));
}

TEST(Fim, Qwen) {
    LF_REQUIRE_HF_TOKENIZER(dir, "qwen3");
    // The qwen3 tokenizer reproduces llama.cpp's qwen2 vectors (assets README).
    LF_REQUIRE_ASSET(inp, "llama.cpp-vocab/ggml-vocab-qwen2.gguf.inp");
    LF_REQUIRE_ASSET(out, "llama.cpp-vocab/ggml-vocab-qwen2.gguf.out");
    auto tok = Tokenizer::create(load_vocab(dir));
    const auto f = detect_fim(*tok);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->name, "qwen2.5-coder");
    EXPECT_EQ(f->prefix, 151659);
    EXPECT_EQ(f->middle, 151660);
    EXPECT_EQ(f->suffix, 151661);
    EXPECT_EQ(f->repo_name, 151663);
    EXPECT_EQ(f->file_sep, 151664);
    for (int32_t id : {151643, 151645, 151662, 151663, 151664}) EXPECT_TRUE(has(f->stop, id)) << id;
    const Vectors v = read_vectors(inp, out);
    expect_pairs(*tok, *f, v, {});  // Qwen adds no BOS

    // Qwen2.5-Coder's repo-level layout: <|repo_name|>name\n<|file_sep|>path\ntext\n ...
    // <|file_sep|>current\n<|fim_prefix|>...; "Hello" is test string 23 and "\n" string 7.
    ASSERT_EQ(v.text[7], "\n");
    ASSERT_EQ(v.text[23], "Hello");
    FimRequest req;
    req.repo = "Hello";
    req.files = {{"Hello", v.text[28]}, {"Hello", v.text[11]}};
    req.path = "Hello";
    req.prefix = v.text[12];
    req.suffix = v.text[14];
    const Ids nl = v.ids[7];
    const Ids want =
        cat({{151663},  v.ids[23], nl,        {151664},  v.ids[23], nl,        v.ids[28],
             nl,        {151664},  v.ids[23], nl,        v.ids[11], nl,        {151664},
             v.ids[23], nl,        {151659},  v.ids[12], {151661},  v.ids[14], {151660}});
    EXPECT_EQ(fim_prompt(*tok, *f, req), want);

    // A length limit drops the least relevant (first) file, then trims the code around the hole.
    req.max_tokens = static_cast<int64_t>(want.size()) - 1;
    const Ids one_file = cat({{151663},
                              v.ids[23],
                              nl,
                              {151664},
                              v.ids[23],
                              nl,
                              v.ids[11],
                              nl,
                              {151664},
                              v.ids[23],
                              nl,
                              {151659},
                              v.ids[12],
                              {151661},
                              v.ids[14],
                              {151660}});
    EXPECT_EQ(fim_prompt(*tok, *f, req), one_file);
}

TEST(Fim, LengthLimitKeepsTheCodeNearestTheHole) {
    LF_REQUIRE_HF_TOKENIZER(dir, "qwen3");
    auto tok = Tokenizer::create(load_vocab(dir));
    const FimFormat f = *detect_fim(*tok);
    FimRequest req;
    for (int i = 0; i < 200; ++i)
        req.prefix += "x" + std::to_string(i) + " = " + std::to_string(i) + "\n";
    for (int i = 0; i < 200; ++i)
        req.suffix += "y" + std::to_string(i) + " = " + std::to_string(i) + "\n";
    const Ids pre = tok->encode(req.prefix, false, false),
              suf = tok->encode(req.suffix, false, false);
    req.max_tokens = 103;
    const Ids p = fim_prompt(*tok, f, req);
    ASSERT_EQ(p.size(), 103u);
    // 100 tokens for code: the suffix keeps its first quarter (25), the prefix its last 75.
    EXPECT_EQ(p.front(), f.prefix);
    EXPECT_EQ(Ids(p.begin() + 1, p.begin() + 76), Ids(pre.end() - 75, pre.end()));
    EXPECT_EQ(p[76], f.suffix);
    EXPECT_EQ(Ids(p.begin() + 77, p.begin() + 102), Ids(suf.begin(), suf.begin() + 25));
    EXPECT_EQ(p.back(), f.middle);
    // A short prefix leaves its room to the suffix.
    req.prefix = "a";
    const Ids q = fim_prompt(*tok, f, req);
    EXPECT_EQ(q.size(), 103u);
    EXPECT_EQ(q[1], tok->token_id("a"));
    EXPECT_EQ(q[2], f.suffix);
    // Not even room for the markers: a resource error.
    req.max_tokens = 2;
    EXPECT_THROW(fim_prompt(*tok, f, req), Error);
}

TEST(Fim, NoFimVocabulary) {
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    auto tok = Tokenizer::create(load_vocab(gguf));
    EXPECT_FALSE(detect_fim(*tok).has_value());
    try {
        require_fim(*tok, "llama-spm.gguf");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        const std::string m = e.what();
        EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        for (const char* s : {"llama-spm.gguf", "deepseek-coder", "<｜fim▁begin｜>", "starcoder",
                              "<fim_prefix>", "<|fim_prefix|>", "codellama", "hint"})
            EXPECT_NE(m.find(s), std::string::npos) << s << " in: " << m;
    }
    // A default (undetected) format is refused, naming the formats looked for.
    try {
        fim_prompt(*tok, FimFormat{}, "a", "b");
        FAIL() << "expected an error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("<fim_prefix>"), std::string::npos) << e.what();
    }
    FimFormat bad;
    bad.prefix = 1;
    bad.suffix = 2;
    bad.middle = tok->n_vocab();
    EXPECT_THROW(fim_prompt(*tok, bad, FimRequest{}), Error);
}

TEST(Fim, SentencePieceDummyPrefixAsLlamaCpp) {
    // CodeLlama-style markers on a SentencePiece vocabulary: the llama-spm vocabulary has no FIM
    // tokens, so the markers are borrowed ids; each piece is encoded as llama.cpp's server does
    // (its own dummy-prefix space), checked against HF's ids for "Hello world" (15043 3186).
    LF_REQUIRE_ASSET(gguf, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    auto tok = Tokenizer::create(load_vocab(gguf));
    FimFormat f;
    f.name = "codellama";
    f.prefix = 3;
    f.suffix = 4;
    f.middle = 5;
    EXPECT_EQ(fim_prompt(*tok, f, "Hello world", "Hello world"),
              (Ids{1, 3, 15043, 3186, 4, 15043, 3186, 5}));
}

TEST(Fim, CodeLlamaMarkersDetected) {
    // CodeLlama's SentencePiece pieces "▁<PRE>" "▁<SUF>" "▁<MID>" "▁<EOT>" (its tokenizer.json ids
    // 32007..32010), here on a small synthetic vocabulary: the detection table, not the ids.
    Vocab v;
    v.model = "llama";
    auto add = [&](const std::string& t, TokenType ty) {
        v.tokens.push_back(t);
        v.scores.push_back(0);
        v.types.push_back(ty);
    };
    add("<unk>", TokenType::kUnknown);
    add("<s>", TokenType::kControl);
    add("</s>", TokenType::kControl);
    for (int b = 0; b < 256; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        add(buf, TokenType::kByte);
    }
    for (const char* t : {"▁<PRE>", "▁<SUF>", "▁<MID>", "▁<EOT>"}) add(t, TokenType::kControl);
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    auto tok = Tokenizer::create(v);
    const auto f = detect_fim(*tok);
    ASSERT_TRUE(f.has_value());
    EXPECT_EQ(f->name, "codellama");
    EXPECT_EQ(f->prefix, 259);
    EXPECT_EQ(f->suffix, 260);
    EXPECT_EQ(f->middle, 261);
    EXPECT_TRUE(has(f->stop, 262));  // ▁<EOT>
    EXPECT_TRUE(has(f->stop, 2));    // EOS
    EXPECT_EQ(fim_prompt(*tok, *f, "", ""), (Ids{1, 259, 260, 261}));
}

TEST(Fim, PathComment) {
    EXPECT_EQ(fim_path_comment("pkg/util.py"), "# pkg/util.py\n");
    EXPECT_EQ(fim_path_comment("src/a.cpp"), "// src/a.cpp\n");
    EXPECT_EQ(fim_path_comment("x.H"), "// x.H\n");
    EXPECT_EQ(fim_path_comment("run.sh"), "# run.sh\n");
    EXPECT_EQ(fim_path_comment("q.sql"), "-- q.sql\n");
    EXPECT_EQ(fim_path_comment("CMakeLists.txt"), "# CMakeLists.txt\n");
    EXPECT_EQ(fim_path_comment("lib.rs"), "// lib.rs\n");
}

}  // namespace
}  // namespace llmforge
