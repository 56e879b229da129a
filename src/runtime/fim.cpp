#include "runtime/fim.h"

#include <algorithm>
#include <cctype>
#include <initializer_list>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

namespace {

// The marker texts of each format, in the order they are tried (the texts llama.cpp's
// llama-vocab.cpp looks for, plus StarCoder's underscore spelling and CodeLlama's "▁"-prefixed
// SentencePiece pieces, which its GGUF files name only through metadata).
struct FimSpelling {
    const char* name;
    const char* prefix;
    const char* suffix;
    const char* middle;
};

constexpr FimSpelling kFormats[] = {
    {"deepseek-coder", "<｜fim▁begin｜>", "<｜fim▁hole｜>", "<｜fim▁end｜>"},
    {"qwen2.5-coder", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>"},
    {"starcoder", "<fim_prefix>", "<fim_suffix>", "<fim_middle>"},
    {"santacoder", "<fim-prefix>", "<fim-suffix>", "<fim-middle>"},
    {"codellama", "▁<PRE>", "▁<SUF>", "▁<MID>"},
    {"codellama", "<PRE>", "<SUF>", "<MID>"},
};

// Tokens that end a middle when the vocabulary has them: end of text / turn, FIM padding, and the
// repository markers (a model that starts another file has finished this one).
constexpr const char* kStopTexts[] = {
    "<|endoftext|>",      "<|EOT|>",      "<EOT>",       "▁<EOT>",
    "<|file_separator|>", "<fim_pad>",    "<|fim_pad|>", "<fim-pad>",
    "<file_sep>",         "<|file_sep|>", "<filename>",  "<repo_name>",
    "<|repo_name|>",      "<reponame>",   "<|im_end|>",  "<|eot_id|>",
};

constexpr const char* kFileSepTexts[] = {"<|file_sep|>", "<file_sep>"};
constexpr const char* kRepoTexts[] = {"<|repo_name|>", "<repo_name>", "<reponame>"};

int32_t first_present(const Tokenizer& tok, std::initializer_list<const char*> texts) {
    for (const char* t : texts)
        if (int32_t id = tok.token_id(t); id >= 0) return id;
    return -1;
}

template <size_t N>
int32_t first_present(const Tokenizer& tok, const char* const (&texts)[N]) {
    for (const char* t : texts)
        if (int32_t id = tok.token_id(t); id >= 0) return id;
    return -1;
}

std::string formats_looked_for() {
    std::string s;
    for (const FimSpelling& f : kFormats) {
        if (!s.empty()) s += ", ";
        s += f.name;
        s += " (";
        s += f.prefix;
        s += ")";
    }
    return s;
}

void check_marker(const Tokenizer& tok, int32_t id, const char* which) {
    if (id < 0 || id >= tok.n_vocab()) {
        fail(
            "fim: the %s marker is token %d, expected a token of the vocabulary (0..%d); the "
            "formats looked for are %s (hint: use a code model such as DeepSeek-Coder, "
            "StarCoder or Qwen2.5-Coder, and detect_fim() its format)",
            which, id, tok.n_vocab() - 1, formats_looked_for().c_str());
    }
}

std::vector<int32_t> encode(const Tokenizer& tok, std::string_view text) {
    return text.empty() ? std::vector<int32_t>{} : tok.encode(text, false, false);
}

void append(std::vector<int32_t>& out, const std::vector<int32_t>& ids) {
    out.insert(out.end(), ids.begin(), ids.end());
}

std::string_view extension_of(std::string_view path) {
    const size_t slash = path.find_last_of('/');
    const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
    const size_t dot = base.find_last_of('.');
    return dot == std::string_view::npos || dot == 0 ? std::string_view{} : base.substr(dot + 1);
}

}  // namespace

std::optional<FimFormat> detect_fim(const Tokenizer& tok) {
    for (const FimSpelling& s : kFormats) {
        const int32_t p = tok.token_id(s.prefix), su = tok.token_id(s.suffix),
                      m = tok.token_id(s.middle);
        if (p < 0 || su < 0 || m < 0) continue;
        FimFormat f;
        f.name = s.name;
        f.prefix = p;
        f.suffix = su;
        f.middle = m;
        if (tok.eos() >= 0) f.stop.push_back(tok.eos());
        for (const char* t : kStopTexts)
            if (int32_t id = tok.token_id(t); id >= 0) f.stop.push_back(id);
        // Another FIM marker after MID means the model has left the hole.
        f.stop.push_back(p);
        f.stop.push_back(su);
        std::sort(f.stop.begin(), f.stop.end());
        f.stop.erase(std::unique(f.stop.begin(), f.stop.end()), f.stop.end());
        f.file_sep = first_present(tok, kFileSepTexts);
        f.repo_name = first_present(tok, kRepoTexts);
        f.filename = first_present(tok, {"<filename>"});
        return f;
    }
    return std::nullopt;
}

FimFormat require_fim(const Tokenizer& tok, std::string_view source) {
    if (auto f = detect_fim(tok)) return *f;
    fail(
        "%.*s: the vocabulary has no fill-in-the-middle tokens; looked for %s (hint: use a code "
        "model with FIM training such as DeepSeek-Coder, StarCoder or Qwen2.5-Coder)",
        static_cast<int>(source.size()), source.data(), formats_looked_for().c_str());
}

std::string fim_path_comment(std::string_view path) {
    std::string ext(extension_of(path));
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    static const char* const kHash[] = {"py",  "pyi", "sh",  "bash",  "zsh",  "rb",  "pl",
                                        "pm",  "r",   "jl",  "cmake", "yaml", "yml", "toml",
                                        "nim", "ex",  "exs", "tcl",   "mk",   "ps1", "coffee"};
    static const char* const kDash[] = {"lua", "sql", "hs", "elm", "ada", "adb", "ads"};
    const char* lead = "//";
    for (const char* e : kHash)
        if (ext == e) lead = "#";
    for (const char* e : kDash)
        if (ext == e) lead = "--";
    const size_t slash = path.find_last_of('/');
    const std::string_view base = slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (base == "CMakeLists.txt" || base == "Makefile" || base == "Dockerfile") lead = "#";
    std::string s = lead;
    s += ' ';
    s += path;
    s += '\n';
    return s;
}

std::vector<int32_t> fim_prompt(const Tokenizer& tok, const FimFormat& f, std::string_view prefix,
                                std::string_view suffix, std::string_view context) {
    check_marker(tok, f.prefix, "prefix");
    check_marker(tok, f.suffix, "suffix");
    check_marker(tok, f.middle, "middle");
    std::vector<int32_t> out;
    if (tok.add_bos_default()) out.push_back(tok.bos());
    out.push_back(f.prefix);
    append(out, encode(tok, context));
    append(out, encode(tok, prefix));
    out.push_back(f.suffix);
    append(out, encode(tok, suffix));
    out.push_back(f.middle);
    return out;
}

std::vector<int32_t> fim_prompt(const Tokenizer& tok, const FimFormat& f, const FimRequest& req) {
    check_marker(tok, f.prefix, "prefix");
    check_marker(tok, f.suffix, "suffix");
    check_marker(tok, f.middle, "middle");
    const bool repo_level = f.file_sep >= 0 && f.file_sep < tok.n_vocab();
    const bool filename = !repo_level && f.filename >= 0 && f.filename < tok.n_vocab();

    // Context before PRE (repo-level) or inside the prefix part: a head, then one block per file,
    // then the current file's marker.
    std::vector<int32_t> head;
    std::vector<std::vector<int32_t>> blocks;
    std::vector<int32_t> current;
    if (repo_level) {
        if (!req.files.empty() && !req.repo.empty() && f.repo_name >= 0 &&
            f.repo_name < tok.n_vocab()) {
            head.push_back(f.repo_name);
            append(head, encode(tok, req.repo + "\n"));
        }
    }
    if (repo_level || filename) {
        // Each file as <marker>path\ntext\n, then the current file's <marker>path\n.
        const int32_t marker = repo_level ? f.file_sep : f.filename;
        for (const FimFile& file : req.files) {
            std::vector<int32_t> b{marker};
            append(b, encode(tok, file.path + "\n"));
            append(b, encode(tok, file.text + "\n"));
            blocks.push_back(std::move(b));
        }
        if (!req.files.empty()) {
            current.push_back(marker);
            append(current,
                   encode(tok, (req.path.empty() ? std::string("untitled") : req.path) + "\n"));
        }
    } else {
        for (const FimFile& file : req.files) {
            std::vector<int32_t> b = encode(tok, fim_path_comment(file.path));
            std::string text = file.text;
            if (!text.empty() && text.back() != '\n') text += '\n';
            append(b, encode(tok, text));
            blocks.push_back(std::move(b));
        }
    }
    std::vector<int32_t> pre = encode(tok, req.prefix), suf = encode(tok, req.suffix);

    const int64_t fixed = (tok.add_bos_default() ? 1 : 0) + 3 + static_cast<int64_t>(head.size()) +
                          static_cast<int64_t>(current.size());
    size_t first_block = 0;
    if (req.max_tokens > 0) {
        if (fixed > req.max_tokens) {
            fail_kind(ErrorKind::kResource,
                      "fim: the prompt's markers and file names need %lld tokens, over the limit "
                      "of %lld (hint: raise the context size)",
                      (long long)fixed, (long long)req.max_tokens);
        }
        int64_t n = fixed + static_cast<int64_t>(pre.size() + suf.size());
        for (const auto& b : blocks) n += static_cast<int64_t>(b.size());
        while (n > req.max_tokens && first_block < blocks.size())
            n -= static_cast<int64_t>(blocks[first_block++].size());
        if (n > req.max_tokens) {
            const int64_t room = req.max_tokens - fixed;  // for prefix + suffix
            const int64_t suf_take = std::min<int64_t>(
                static_cast<int64_t>(suf.size()),
                std::max<int64_t>(room / 4, room - static_cast<int64_t>(pre.size())));
            const int64_t pre_take =
                std::min<int64_t>(static_cast<int64_t>(pre.size()), room - suf_take);
            pre.erase(pre.begin(), pre.end() - pre_take);
            suf.resize(static_cast<size_t>(suf_take));
        }
    }

    std::vector<int32_t> out;
    if (tok.add_bos_default()) out.push_back(tok.bos());
    if (repo_level) {
        append(out, head);
        for (size_t i = first_block; i < blocks.size(); ++i) append(out, blocks[i]);
        append(out, current);
        out.push_back(f.prefix);
    } else {
        out.push_back(f.prefix);
        for (size_t i = first_block; i < blocks.size(); ++i) append(out, blocks[i]);
        append(out, current);
    }
    append(out, pre);
    out.push_back(f.suffix);
    append(out, suf);
    out.push_back(f.middle);
    return out;
}

}  // namespace llmforge
