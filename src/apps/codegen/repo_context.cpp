#include "apps/codegen/repo_context.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <filesystem>
#include <system_error>
#include <unordered_set>

#include "core/error.h"
#include "core/file.h"
#include "runtime/fim.h"

namespace llmforge::codegen {

namespace fs = std::filesystem;

namespace {

// Source files worth retrieving from (lowercased extensions), and file names without one.
const std::unordered_set<std::string> kSourceExtensions = {
    "py",  "pyi", "c",   "h",    "cc",    "cpp",  "cxx",   "hpp",  "hh",   "hxx", "inl", "cu",
    "cuh", "m",   "mm",  "java", "kt",    "kts",  "scala", "go",   "rs",   "js",  "jsx", "mjs",
    "cjs", "ts",  "tsx", "rb",   "php",   "cs",   "swift", "sh",   "bash", "zsh", "lua", "pl",
    "pm",  "r",   "jl",  "sql",  "cmake", "dart", "ex",    "exs",  "erl",  "hs",  "ml",  "mli",
    "fs",  "clj", "nim", "zig",  "v",     "sv",   "vhd",   "proto"};
const std::unordered_set<std::string> kSourceNames = {"CMakeLists.txt", "Makefile", "Dockerfile"};

bool skipped_dir(const std::string& name) {
    if (name.empty() || name[0] == '.') return true;  // .git, .hg, .venv, .cache, ...
    static const std::unordered_set<std::string> kDirs = {
        "node_modules",  "__pycache__",       "dist",      "target",    "out", "venv",
        "site-packages", "third_party_build", "bazel-out", "CMakeFiles"};
    if (kDirs.count(name)) return true;
    return name.rfind("build", 0) == 0 || name.rfind("cmake-build-", 0) == 0;
}

bool source_file(const fs::path& p) {
    const std::string name = p.filename().string();
    if (kSourceNames.count(name)) return true;
    std::string ext = p.extension().string();
    if (ext.size() < 2) return false;
    ext.erase(0, 1);
    std::transform(ext.begin(), ext.end(), ext.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return kSourceExtensions.count(ext) > 0;
}

bool looks_binary(const std::string& data) {
    return data.find('\0', 0) < std::min<size_t>(data.size(), 8192);
}

// Lines of `text`, each with its '\n' (the last may lack one).
std::vector<std::string_view> split_lines(std::string_view text) {
    std::vector<std::string_view> lines;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        size_t end = nl == std::string_view::npos ? text.size() : nl + 1;
        lines.push_back(text.substr(pos, end - pos));
        pos = end;
    }
    return lines;
}

bool ident_start(unsigned char c) {
    return std::isalpha(c) || c == '_';
}
bool ident_char(unsigned char c) {
    return std::isalnum(c) || c == '_';
}

std::string lower(std::string_view s) {
    std::string r(s);
    std::transform(r.begin(), r.end(), r.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return r;
}

// Parts of one '_'-free word at camelCase humps: a lower/digit -> upper step starts a part, and an
// upper followed by a lower after a run of uppers ("HTTPResponse" -> "HTTP", "Response").
void camel_parts(std::string_view w, std::vector<std::string_view>& out) {
    size_t start = 0;
    for (size_t i = 1; i < w.size(); ++i) {
        const unsigned char prev = w[i - 1], c = w[i];
        const bool hump = std::isupper(c) && (std::islower(prev) || std::isdigit(prev));
        const bool acronym_end = std::isupper(prev) && std::isupper(c) && i + 1 < w.size() &&
                                 std::islower(static_cast<unsigned char>(w[i + 1]));
        if (hump || acronym_end) {
            out.push_back(w.substr(start, i - start));
            start = i;
        }
    }
    out.push_back(w.substr(start));
}

}  // namespace

std::vector<std::string> code_tokens(std::string_view text) {
    std::vector<std::string> out;
    std::vector<std::string_view> parts;
    size_t i = 0;
    while (i < text.size()) {
        if (!ident_start(static_cast<unsigned char>(text[i]))) {
            // Skip numbers with their letters ("0x1F", "10f") as one run.
            if (std::isdigit(static_cast<unsigned char>(text[i]))) {
                while (i < text.size() && ident_char(static_cast<unsigned char>(text[i]))) ++i;
            } else {
                ++i;
            }
            continue;
        }
        size_t j = i;
        while (j < text.size() && ident_char(static_cast<unsigned char>(text[j]))) ++j;
        const std::string_view id = text.substr(i, j - i);
        i = j;
        if (id.find_first_not_of('_') == std::string_view::npos) continue;
        parts.clear();
        size_t s = 0;
        while (s < id.size()) {
            size_t u = id.find('_', s);
            if (u == std::string_view::npos) u = id.size();
            if (u > s) camel_parts(id.substr(s, u - s), parts);
            s = u + 1;
        }
        out.push_back(lower(id));
        if (parts.size() > 1) {
            for (std::string_view p : parts)
                if (p.size() > 1) out.push_back(lower(p));
        }
    }
    return out;
}

Bm25::Bm25(const std::vector<std::vector<std::string>>& docs, double k1, double b)
    : k1_(k1), b_(b) {
    for (const auto& d : docs) add(d);
}

void Bm25::add(const std::vector<std::string>& terms) {
    std::vector<uint32_t> ids;
    ids.reserve(terms.size());
    for (const std::string& t : terms) {
        auto [it, fresh] = ids_.try_emplace(t, static_cast<uint32_t>(df_.size()));
        if (fresh) df_.push_back(0);
        ids.push_back(it->second);
    }
    std::sort(ids.begin(), ids.end());
    std::vector<std::pair<uint32_t, uint32_t>> tf;
    for (uint32_t id : ids) {
        if (!tf.empty() && tf.back().first == id) {
            ++tf.back().second;
        } else {
            tf.emplace_back(id, 1);
            ++df_[id];
        }
    }
    tf.shrink_to_fit();
    docs_.push_back(std::move(tf));
    len_.push_back(static_cast<uint32_t>(terms.size()));
    total_terms_ += terms.size();
}

double Bm25::idf_of(double n) const {
    const double N = static_cast<double>(docs_.size());
    return std::log(1.0 + (N - n + 0.5) / (n + 0.5));
}

double Bm25::idf(const std::string& term) const {
    const auto it = ids_.find(term);
    return idf_of(it == ids_.end() ? 0 : df_[it->second]);
}

Bm25::Query Bm25::prepare(const std::vector<std::string>& query) const {
    Query q;
    for (const std::string& t : query) {
        const auto it = ids_.find(t);
        if (it == ids_.end() || std::find(q.ids.begin(), q.ids.end(), it->second) != q.ids.end())
            continue;
        q.ids.push_back(it->second);
        q.idf.push_back(idf_of(df_[it->second]));
    }
    return q;
}

double Bm25::score(const Query& q, size_t doc) const {
    if (doc >= docs_.size() || total_terms_ == 0) return 0;
    const double avgdl = static_cast<double>(total_terms_) / static_cast<double>(docs_.size());
    const double norm = k1_ * (1 - b_ + b_ * static_cast<double>(len_[doc]) / avgdl);
    const auto& d = docs_[doc];
    double s = 0;
    for (size_t i = 0; i < q.ids.size(); ++i) {
        const auto it = std::lower_bound(d.begin(), d.end(), std::make_pair(q.ids[i], uint32_t{0}));
        if (it == d.end() || it->first != q.ids[i]) continue;
        const double tf = it->second;
        s += q.idf[i] * tf * (k1_ + 1) / (tf + norm);
    }
    return s;
}

double Bm25::score(const std::vector<std::string>& query, size_t doc) const {
    return score(prepare(query), doc);
}

std::vector<double> Bm25::score_all(const std::vector<std::string>& query) const {
    const Query q = prepare(query);
    std::vector<double> r(docs_.size());
    for (size_t d = 0; d < docs_.size(); ++d) r[d] = score(q, d);
    return r;
}

RepoIndex RepoIndex::build(const std::string& root, const RepoIndexOptions& opt) {
    if (opt.window < 1 || opt.stride < 1 || opt.stride > opt.window) {
        fail("repo context: window %lld and stride %lld: expected 1 <= stride <= window",
             (long long)opt.window, (long long)opt.stride);
    }
    std::error_code ec;
    if (!fs::is_directory(root, ec)) {
        fail_kind(ErrorKind::kNotFound,
                  "%s: not a folder (hint: --repo takes the repository's root folder)",
                  root.c_str());
    }
    RepoIndex idx;
    std::vector<fs::path> files;
    fs::recursive_directory_iterator it(root, fs::directory_options::skip_permission_denied, ec),
        end;
    if (ec) {
        fail_kind(ErrorKind::kNotFound,
                  "%s: cannot read the folder: %s (hint: check its permissions)", root.c_str(),
                  ec.message().c_str());
    }
    for (; it != end; it.increment(ec)) {
        if (ec) break;
        const fs::directory_entry& e = *it;
        const fs::file_status st = e.symlink_status(ec);
        if (ec) continue;
        if (fs::is_directory(st)) {
            if (skipped_dir(e.path().filename().string())) it.disable_recursion_pending();
            continue;
        }
        if (!fs::is_regular_file(st) || !source_file(e.path())) {
            if (fs::is_regular_file(st)) ++idx.n_skipped_;
            continue;
        }
        if (files.size() >= opt.max_files) {
            ++idx.n_skipped_;
            continue;
        }
        files.push_back(e.path());
    }
    std::sort(files.begin(), files.end());
    for (const fs::path& p : files) {
        std::string data;
        try {
            RegularFile f(p.string(), "a source file");
            if (f.size() > opt.max_file_bytes) {
                ++idx.n_skipped_;
                continue;
            }
            data = f.read_all(opt.max_file_bytes);
        } catch (const Error&) {
            ++idx.n_skipped_;
            continue;
        }
        if (looks_binary(data)) {
            ++idx.n_skipped_;
            continue;
        }
        ++idx.n_files_;
        const std::string rel = fs::path(p).lexically_relative(root).generic_string();
        const std::vector<std::string_view> lines = split_lines(data);
        const int64_t n = static_cast<int64_t>(lines.size());
        for (int64_t start = 0; start < n; start += opt.stride) {
            const int64_t stop = std::min(n, start + opt.window);
            RepoChunk c;
            c.path = rel;
            c.first_line = start + 1;
            c.last_line = stop;
            for (int64_t l = start; l < stop; ++l) c.text += lines[static_cast<size_t>(l)];
            idx.bm25_.add(code_tokens(c.text));
            idx.chunks_.push_back(std::move(c));
            if (stop == n) break;
        }
    }
    return idx;
}

std::vector<std::pair<size_t, double>> RepoIndex::rank(std::string_view query,
                                                       const RepoExclude& ex) const {
    const std::vector<double> scores = bm25_.score_all(code_tokens(query));
    std::vector<std::pair<size_t, double>> r;
    for (size_t i = 0; i < chunks_.size(); ++i) {
        const RepoChunk& c = chunks_[i];
        if (!ex.path.empty() && c.path == ex.path && c.first_line <= ex.last_line &&
            c.last_line >= ex.first_line)
            continue;
        if (scores[i] > 0) r.emplace_back(i, scores[i]);
    }
    std::stable_sort(r.begin(), r.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    return r;
}

std::vector<RepoSnippet> RepoIndex::retrieve(std::string_view query, const RepoExclude& ex,
                                             int64_t budget, const TokenCounter& count,
                                             size_t max_snippets) const {
    std::vector<RepoSnippet> out;
    if (budget <= 0 || max_snippets == 0) return out;
    int64_t used = 0;
    size_t considered = 0;
    for (const auto& [i, score] : rank(query, ex)) {
        if (++considered > kMaxCandidates) break;
        const RepoChunk& c = chunks_[i];
        bool overlaps = false;
        for (const RepoSnippet& s : out)
            if (s.chunk.path == c.path && s.chunk.first_line <= c.last_line &&
                s.chunk.last_line >= c.first_line)
                overlaps = true;
        if (overlaps) continue;
        RepoSnippet s;
        s.chunk = c;
        s.score = score;
        s.rendered = fim_path_comment(c.path) + c.text;
        if (!s.rendered.empty() && s.rendered.back() != '\n') s.rendered += '\n';
        s.n_tokens = count ? count(s.rendered) : static_cast<int64_t>((s.rendered.size() + 3) / 4);
        if (used + s.n_tokens > budget) continue;  // a smaller one further down may still fit
        used += s.n_tokens;
        out.push_back(std::move(s));
        if (out.size() >= max_snippets) break;
    }
    return out;
}

std::string query_window(std::string_view text, int64_t line, int64_t window) {
    const std::vector<std::string_view> lines = split_lines(text);
    const int64_t last = std::min<int64_t>(line, static_cast<int64_t>(lines.size()));
    const int64_t first = std::max<int64_t>(1, last - window + 1);
    std::string q;
    for (int64_t l = first; l <= last; ++l) q += lines[static_cast<size_t>(l - 1)];
    return q;
}

}  // namespace llmforge::codegen
