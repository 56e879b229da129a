// llmforge complete: fill-in-the-middle code completion at a cursor in a file. Prints ONLY the
// generated middle on stdout (no newline added); logs go to stderr.
//
// Cursor: --line L (1-based) and --col C (1-based, counted in UTF-8 characters; C = the line's
// length + 1 is the end of the line). Without --col the cursor is at the START of line L: the
// prefix is lines 1..L-1, the suffix line L onward, and the middle is inserted before line L
// (L = lines + 1 appends at the end of the file).
//
// Prompt: the model's FIM format (runtime/fim.h, detected from its vocabulary). --repo DIR adds
// repository context (apps/codegen/repo_context.h): the source windows of DIR that best match the
// lines around the cursor under BM25, at most --budget tokens, shown to the model as files
// before the code (file-separator markers where the vocabulary has them, path comments
// otherwise). The prompt is cut to the context size minus -n (context files first, then the code
// farthest from the cursor). --print-prompt prints the prompt's token ids (one line) and stops.
//
// Generation: greedy by default (--temp 0); ends at an end-of-generation token, one of the
// format's stop tokens (<fim_pad>, <|file_sep|>, EOT, ...), a --stop string, or -n tokens.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "attention_flags.h"
#include "apps/codegen/repo_context.h"
#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "runtime/context.h"
#include "runtime/decode_step.h"
#include "runtime/fim.h"
#include "runtime/sampler.h"

namespace llmforge::cli {

namespace {

namespace fs = std::filesystem;

struct Split {
    std::string prefix, suffix;
};

// Byte offset of character `col` (1-based) in `line` (no newline), or npos past its end + 1.
size_t char_offset(std::string_view line, int64_t col) {
    size_t pos = 0;
    for (int64_t c = 1; c < col; ++c) {
        if (pos >= line.size()) return std::string::npos;
        const unsigned char b = static_cast<unsigned char>(line[pos]);
        size_t len = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
        pos = std::min(line.size(), pos + len);
    }
    return pos;
}

size_t char_count(std::string_view s) {
    size_t n = 0;
    for (unsigned char b : s) n += (b & 0xC0) != 0x80;
    return n;
}

Split split_at(const std::string& file, const std::string& text, int64_t line, int64_t col) {
    // Start offsets of each line; a final newline does not open a line.
    std::vector<size_t> starts;
    for (size_t p = 0; p < text.size();) {
        starts.push_back(p);
        const size_t nl = text.find('\n', p);
        p = nl == std::string::npos ? text.size() : nl + 1;
    }
    const int64_t n = static_cast<int64_t>(starts.size());
    if (line < 1 || line > n + 1) {
        fail(
            "%s: line %lld is out of range: the file has %lld lines (expected 1..%lld; hint: "
            "--line "
            "is 1-based, and lines + 1 appends at the end)",
            file.c_str(), (long long)line, (long long)n, (long long)n + 1);
    }
    size_t at = line <= n ? starts[static_cast<size_t>(line - 1)] : text.size();
    if (col > 0) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        std::string_view l(text.data() + at, end - at);
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        const size_t off = char_offset(l, col);
        if (off == std::string::npos) {
            fail(
                "%s: column %lld is out of range on line %lld, which has %zu characters (expected "
                "1..%zu; hint: --col is 1-based, counted in characters)",
                file.c_str(), (long long)col, (long long)line, char_count(l), char_count(l) + 1);
        }
        at += off;
    }
    return {text.substr(0, at), text.substr(at)};
}

}  // namespace

void add_complete(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand(
        "complete", "Fill in the middle of code at a cursor (code models with FIM tokens)");
    static std::string model, tokenizer, file, repo;
    static int64_t line = 0, col = 0, budget = 512, n = 128, ctx_size = 0;
    static int threads = 0;
    static SamplerParams sp;
    static std::vector<std::string> stops;
    static bool print_prompt = false;
    sp.temperature = 0;
    sub->add_option("-m,--model", model, "GGUF file or Hugging Face folder of a code model")
        ->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    sub->add_option("--tokenizer", tokenizer,
                    "tokenizer (GGUF, tokenizer.json or its folder) instead of the model's");
    sub->add_option("--file", file, "the source file")->required();
    sub->add_option("--line", line,
                    "cursor line (1-based); without --col the cursor is at its start")
        ->required()
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    sub->add_option("--col", col, "cursor column (1-based, in characters)")
        ->check(CLI::Range(int64_t{1}, int64_t{1} << 40));
    sub->add_option("--repo", repo, "repository folder to retrieve context from");
    sub->add_option("--budget", budget, "tokens of repository context at most")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_option("-n,--n-predict", n, "tokens to generate at most")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_option("--temp", sp.temperature, "temperature (0 = greedy)")->capture_default_str();
    sub->add_option("--top-k", sp.top_k, "top-k (0 = off)")->capture_default_str();
    sub->add_option("--top-p", sp.top_p, "top-p (1 = off)")->capture_default_str();
    sub->add_option("--min-p", sp.min_p, "min-p (0 = off)")->capture_default_str();
    sub->add_option("--repeat-penalty", sp.repeat_penalty, "repetition penalty (1 = off)")
        ->capture_default_str();
    sub->add_option("-s,--seed", sp.seed, "random seed")->capture_default_str();
    sub->add_option("--stop", stops, "stop string (repeatable)");
    sub->add_option("-c,--ctx-size", ctx_size, "context size (0 = model's, max 4096)")
        ->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_flag("--print-prompt", print_prompt, "print the prompt's token ids and stop");
    run = [] {
        Sampler::validate(sp);
        const std::string text = RegularFile(file, "a source file").read_all();
        const Split cut = split_at(file, text, line, col);

        auto m = Model::load(model, tokenizer, true);
        m->set_attention(attention);
        if (m->vocab().empty()) {
            fail(
                "%s: the model has no tokenizer (hint: pass --tokenizer with the code model's "
                "tokenizer)",
                model.c_str());
        }
        auto tok = Tokenizer::create(m->vocab());
        const FimFormat fim = require_fim(*tok, tokenizer.empty() ? model : tokenizer);

        FimRequest req;
        req.prefix = cut.prefix;
        req.suffix = cut.suffix;
        req.path = fs::path(file).filename().string();
        if (!repo.empty()) {
            const codegen::RepoIndex idx = codegen::RepoIndex::build(repo);
            std::error_code ec;
            const fs::path rel =
                fs::weakly_canonical(file, ec).lexically_relative(fs::weakly_canonical(repo, ec));
            codegen::RepoExclude ex;
            const int64_t w = codegen::RepoIndexOptions{}.window;
            if (!rel.empty() && *rel.begin() != "..") {
                req.path = rel.generic_string();
                ex = {req.path, line - w, line + w};
            }
            req.repo = fs::weakly_canonical(repo, ec).filename().string();
            const auto snippets = idx.retrieve(
                codegen::query_window(text, line, w), ex, budget, [&](std::string_view s) {
                    return static_cast<int64_t>(tok->encode(s, false, false).size());
                });
            int64_t used = 0;
            for (auto it = snippets.rbegin(); it != snippets.rend();
                 ++it) {  // best nearest the code
                req.files.push_back({it->chunk.path, it->chunk.text});
                used += it->n_tokens;
            }
            std::fprintf(stderr, "complete: %zu files indexed in %s, %zu snippets (%lld tokens):",
                         idx.n_files(), repo.c_str(), snippets.size(), (long long)used);
            for (const auto& s : snippets)
                std::fprintf(stderr, " %s:%lld-%lld", s.chunk.path.c_str(),
                             (long long)s.chunk.first_line, (long long)s.chunk.last_line);
            std::fputc('\n', stderr);
        }
        const int64_t n_ctx =
            ctx_size > 0 ? ctx_size : std::min<int64_t>(m->config().n_ctx_train, 4096);
        if (n_ctx <= n) {
            fail_kind(ErrorKind::kResource,
                      "complete: -n %lld leaves no room for the prompt in a context of %lld "
                      "(hint: raise --ctx-size or lower -n)",
                      (long long)n, (long long)n_ctx);
        }
        req.max_tokens = n_ctx - n;
        const std::vector<int32_t> ids = fim_prompt(*tok, fim, req);
        if (print_prompt) {
            std::string s;
            for (size_t i = 0; i < ids.size(); ++i) s += (i ? " " : "") + std::to_string(ids[i]);
            std::printf("%s\n", s.c_str());
            return 0;
        }

        ContextParams cp;
        cp.n_threads = threads;
        cp.n_ctx = n_ctx;
        Context ctx(*m, cp);
        std::fprintf(stderr, "complete: %s, FIM format %s, %zu prompt tokens, %d threads\n",
                     model.c_str(), fim.name.c_str(), ids.size(), ctx.pool().size());
        Sampler sampler(sp, tok.get());
        for (int32_t t : ids) sampler.accept(t);
        if (n > 0) ctx.decode(ids);
        DecodeOptions opt;
        opt.stop = stops;
        // Stop tokens that decode to visible text (user-defined ones, e.g. DeepSeek's <|EOT|>)
        // also end the text as stop strings, so their text is never printed.
        for (int32_t id : fim.stop)
            if (!tok->is_hidden(id) && !tok->token_to_piece(id).empty())
                opt.stop.push_back(tok->token_to_piece(id));
        opt.max_tokens = n;
        SeqDecoder dec(*tok, sampler, opt, ids.back());
        int64_t generated = 0;
        std::string finish = "length";
        while (n > 0) {
            const StepResult r =
                dec.step(ctx.logits().data(), static_cast<int64_t>(ctx.logits().size()),
                         ctx.n_ctx() - ctx.n_past());
            if (!r.kept || std::binary_search(fim.stop.begin(), fim.stop.end(), r.token)) {
                finish = "stop";
                if (r.kept && !r.text.empty()) {  // a hidden stop token has no text; be safe
                    std::fwrite(r.text.data(), 1, r.text.size(), stdout);
                }
                break;
            }
            ++generated;
            if (!r.text.empty()) {
                std::fwrite(r.text.data(), 1, r.text.size(), stdout);
                std::fflush(stdout);
            }
            if (r.end == StepEnd::kStop) {
                finish = "stop";
                break;
            }
            if (r.end == StepEnd::kLength) break;
            ctx.decode({r.token});
        }
        const std::string rest = dec.finish();
        std::fwrite(rest.data(), 1, rest.size(), stdout);
        std::fflush(stdout);
        std::fprintf(stderr, "complete: %lld tokens generated, finish: %s\n", (long long)generated,
                     finish.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
