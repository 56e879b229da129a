// Repository context for code completion (RepoCoder, Zhang et al. 2023): the source files of a
// folder cut into fixed windows of lines, ranked against the code around the cursor with BM25,
// and the best windows that fit a token budget returned as snippets, each under a path comment
// in its file's language ("# pkg/util.py" / "// src/a.cpp").
//
// Indexing skips hidden folders (.git, .venv, ...), build outputs (build*, cmake-build-*, dist,
// target, node_modules, __pycache__), symbolic links, files over max_file_bytes, files that are
// not regular, files whose first 8 KiB hold a NUL byte (binaries), and files whose extension is
// not in a small allow-list of source languages (kSourceExtensions in repo_context.cpp).
//
// Ranking: BM25 (Robertson & Zaragoza) with k1 = 1.2, b = 0.75 and Lucene's non-negative
//   idf(t) = ln(1 + (N - n_t + 0.5) / (n_t + 0.5)),
//   score(q, d) = sum over the DISTINCT terms t of q of
//                 idf(t) * tf(t,d) * (k1 + 1) / (tf(t,d) + k1 * (1 - b + b * |d| / avgdl)),
// where N is the number of windows, n_t those holding t, |d| a window's term count. Terms are
// code tokens (code_tokens()). Ties keep index order (path, then line).
//
// Written here rather than taken from a library: Debian has no C++ BM25/code-search library
// (Xapian's BM25 is tied to its own database and tokeniser, which splits neither snake_case nor
// camelCase); the scorer is a few lines.
//
// Thread safety: a RepoIndex is immutable after build(); const methods may run concurrently.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmforge::codegen {

// Search terms of code: every identifier ([A-Za-z_][A-Za-z0-9_]*) lowercased, and when it has
// several parts also its parts, split at '_' and at camelCase humps ("parseHTTPResponse" ->
// "parsehttpresponse", "parse", "http", "response"; "max_len" -> "max_len", "max", "len"). Parts
// of one character and identifiers that are only digits/underscores are dropped.
std::vector<std::string> code_tokens(std::string_view text);

// BM25 over a set of documents, each a list of terms. Terms are interned; a document keeps its
// (term id, count) pairs sorted by id.
class Bm25 {
  public:
    explicit Bm25(double k1 = 1.2, double b = 0.75) : k1_(k1), b_(b) {}
    explicit Bm25(const std::vector<std::vector<std::string>>& docs, double k1 = 1.2,
                  double b = 0.75);
    // Appends a document (its index is size() before the call).
    void add(const std::vector<std::string>& terms);
    // Score of document `doc` for the query's distinct terms (0 for an unknown doc).
    double score(const std::vector<std::string>& query, size_t doc) const;
    // score(query, d) for every document d.
    std::vector<double> score_all(const std::vector<std::string>& query) const;
    double idf(const std::string& term) const;
    size_t size() const { return docs_.size(); }

  private:
    struct Query {
        std::vector<uint32_t> ids;  // distinct known terms
        std::vector<double> idf;    // of each
    };
    Query prepare(const std::vector<std::string>& query) const;
    double score(const Query& q, size_t doc) const;
    double idf_of(double n) const;

    double k1_, b_;
    uint64_t total_terms_ = 0;
    std::unordered_map<std::string, uint32_t> ids_;                 // term -> id
    std::vector<uint32_t> df_;                                      // documents holding each term
    std::vector<std::vector<std::pair<uint32_t, uint32_t>>> docs_;  // (term id, tf), by id
    std::vector<uint32_t> len_;                                     // terms per document
};

struct RepoChunk {
    std::string path;        // relative to the indexed folder, '/' separators
    int64_t first_line = 0;  // 1-based, inclusive
    int64_t last_line = 0;   // 1-based, inclusive
    std::string text;        // the lines, each with its '\n'
};

struct RepoSnippet {
    RepoChunk chunk;
    double score = 0;
    std::string rendered;  // path comment + text: what goes into a prompt
    int64_t n_tokens = 0;  // of `rendered`, by the budget's counter
};

struct RepoIndexOptions {
    int64_t window = 24;                // lines per chunk (RepoCoder: fixed windows)
    int64_t stride = 12;                // lines between chunk starts (overlap = window - stride)
    uint64_t max_file_bytes = 1 << 20;  // larger files are skipped
    size_t max_files = 20000;           // files indexed at most (the rest is skipped, counted)
};

// What retrieval must not return: windows of `path` that overlap lines [first_line, last_line]
// (the code around the cursor, already in the prompt).
struct RepoExclude {
    std::string path;  // relative to the indexed folder; "" = nothing excluded
    int64_t first_line = 0, last_line = 0;
};

// Counts the tokens of a text (the model's tokenizer in the CLI).
using TokenCounter = std::function<int64_t(std::string_view)>;

class RepoIndex {
  public:
    // Walks `root`. Throws Error (kNotFound) when root is not a readable folder; unreadable files
    // inside it are skipped.
    static RepoIndex build(const std::string& root, const RepoIndexOptions& opt = {});

    static constexpr size_t kMaxCandidates = 64;

    const std::vector<RepoChunk>& chunks() const { return chunks_; }
    size_t n_files() const { return n_files_; }
    size_t n_skipped() const { return n_skipped_; }  // files passed over (binary, big, ...)

    // (chunk index, score) for every chunk not excluded, best first; chunks with score 0 left out.
    std::vector<std::pair<size_t, double>> rank(std::string_view query,
                                                const RepoExclude& ex = {}) const;

    // The best snippets whose rendered texts together take at most `budget` tokens (by `count`,
    // or bytes / 4 when null), at most `max_snippets` of them, never two overlapping windows of
    // one file; best first. A snippet too large for what is left is passed over for the next
    // ones; only the best kMaxCandidates chunks are considered (counting tokens costs).
    std::vector<RepoSnippet> retrieve(std::string_view query, const RepoExclude& ex, int64_t budget,
                                      const TokenCounter& count = nullptr,
                                      size_t max_snippets = 8) const;

  private:
    RepoIndex() = default;
    std::vector<RepoChunk> chunks_;
    Bm25 bm25_;  // one document per chunk
    size_t n_files_ = 0, n_skipped_ = 0;
};

// The query RepoCoder uses: the `window` lines ending at line `line` (1-based; past the end: the
// last line) of `text`.
std::string query_window(std::string_view text, int64_t line, int64_t window);

}  // namespace llmforge::codegen
