// llmforge tokenize / detokenize: text on stdin -> token ids, and back.
//
//   tokenize -m VOCAB [--no-bos] [--parse-special] [--ids]
//     Encodes all of stdin, byte for byte (a trailing newline is part of the text). With --ids
//     prints the ids on one line, separated by single spaces; without, one "id<TAB>piece" line
//     per token, the piece's bytes escaped C-style where they are not printable UTF-8.
//     BOS is added when the vocabulary asks for it (and EOS / [SEP] where it asks too) unless
//     --no-bos.
//   detokenize -m VOCAB [--render-special]
//     Reads ids separated by whitespace or commas (brackets ignored, so "[1, 2]" works) and
//     prints the decoded bytes, nothing added.
//
// VOCAB: a GGUF file (vocabulary-only is fine), a tokenizer.json, a folder holding one, or a
// llama2.c tok*.bin (see model/vocab_source.h).
#include <charconv>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "model/vocab_source.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace llmforge::cli {

std::string read_stdin(const char* command) {
    std::string s;
    char buf[1 << 16];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) s.append(buf, n);
    if (std::ferror(stdin)) fail("%s: cannot read stdin (hint: pipe or redirect the text into it)", command);
    return s;
}

namespace {

void append_int(std::string& out, int32_t v) {
    char buf[16];
    out.append(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
}

// Printable form of a piece: valid UTF-8 stays, control characters and ill-formed bytes are
// escaped (\n, \t, \\, \xHH), so that every token stays on one line.
std::string escape_piece(std::string_view s) {
    std::string out;
    for (size_t pos = 0; pos < s.size();) {
        const Utf8Char ch = utf8_decode(s.substr(pos));
        if (ch.status == Utf8Status::kOk && ch.cp >= 0x20 && ch.cp != 0x7F && ch.cp != '\\') {
            out.append(s.substr(pos, ch.len));
        } else if (ch.status == Utf8Status::kOk && ch.cp == '\\') {
            out += "\\\\";
        } else if (ch.status == Utf8Status::kOk && ch.cp == '\n') {
            out += "\\n";
        } else if (ch.status == Utf8Status::kOk && ch.cp == '\t') {
            out += "\\t";
        } else if (ch.status == Utf8Status::kOk && ch.cp == '\r') {
            out += "\\r";
        } else {
            for (size_t k = 0; k < ch.len; ++k) {
                out += strfmt("\\x%02X", static_cast<unsigned char>(s[pos + k]));
            }
        }
        pos += ch.len;
    }
    return out;
}

// Ids from text: decimal numbers separated by whitespace, commas or brackets.
std::vector<int32_t> parse_ids(const std::string& text) {
    std::vector<int32_t> ids;
    size_t pos = 0;
    while (pos < text.size()) {
        const char c = text[pos];
        if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == ',' || c == '[' || c == ']') {
            ++pos;
            continue;
        }
        size_t end = pos + (c == '-' ? 1 : 0);
        while (end < text.size() && text[end] >= '0' && text[end] <= '9') ++end;
        const size_t digits = end - pos - (c == '-' ? 1 : 0);
        if (digits == 0 || digits > 10) {
            fail("detokenize: stdin byte %zu: expected a token id, found '%s'; hint: give ids as "
                 "decimal numbers separated by spaces or commas",
                 pos, escape_piece(text.substr(pos, 16)).c_str());
        }
        const long long v = std::stoll(text.substr(pos, end - pos));
        if (v < INT32_MIN || v > INT32_MAX) {
            fail("detokenize: stdin byte %zu: token id %lld does not fit in 32 bits", pos, v);
        }
        ids.push_back(static_cast<int32_t>(v));
        pos = end;
    }
    return ids;
}

}  // namespace

void add_tokenize(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("tokenize", "Text on stdin -> token ids");
    static std::string model;
    static bool no_bos = false, parse_special = false, ids_only = false;
    sub->add_option("-m,--model", model,
                    "GGUF file, tokenizer.json, folder holding one, or llama2.c tok*.bin")
        ->required();
    sub->add_flag("--no-bos", no_bos, "add no BOS (nor the EOS / [SEP] some vocabularies append)");
    sub->add_flag("--parse-special", parse_special,
                  "let the text of special tokens (\"<|im_end|>\") become those tokens");
    sub->add_flag("--ids", ids_only, "print only the ids, on one line");
    run = [] {
        auto tok = Tokenizer::create(load_vocab(model));
        const std::string text = read_stdin("tokenize");
        std::vector<int32_t> ids = tok->encode(text, !no_bos && tok->add_bos_default(), parse_special);
        if (!no_bos && tok->vocab().add_eos && tok->eos() >= 0) ids.push_back(tok->eos());
        std::string out;
        if (ids_only) {
            for (size_t i = 0; i < ids.size(); ++i) {
                if (i) out += ' ';
                append_int(out, ids[i]);
            }
            out += '\n';
        } else {
            for (int32_t id : ids) {
                append_int(out, id);
                out += '\t';
                out += escape_piece(tok->token_to_piece(id, true));
                out += '\n';
            }
        }
        std::fwrite(out.data(), 1, out.size(), stdout);
        return 0;
    };
}

void add_detokenize(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("detokenize", "Token ids on stdin -> text");
    static std::string model;
    static bool render_special = false;
    sub->add_option("-m,--model", model,
                    "GGUF file, tokenizer.json, folder holding one, or llama2.c tok*.bin")
        ->required();
    sub->add_flag("--render-special", render_special,
                  "print the text of control tokens (\"<s>\", \"<|im_end|>\") too");
    run = [] {
        auto tok = Tokenizer::create(load_vocab(model));
        const std::string text = tok->decode(parse_ids(read_stdin("detokenize")), render_special);
        std::fwrite(text.data(), 1, text.size(), stdout);
        return 0;
    };
}

}  // namespace llmforge::cli
