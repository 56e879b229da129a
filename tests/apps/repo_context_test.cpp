// Repository context: code tokens, BM25 against hand-computed scores, and retrieval over a small
// synthetic repository (the helper the cursor line calls must rank first; binaries, huge files,
// build outputs, .git and non-source files never indexed; the token budget holds).
#include "apps/codegen/repo_context.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "core/error.h"
#include "test_util.h"

namespace llmforge::codegen {
namespace {

namespace fs = std::filesystem;
using Strings = std::vector<std::string>;

void put(const fs::path& p, const std::string& data) {
    fs::create_directories(p.parent_path());
    std::ofstream f(p, std::ios::binary);
    f << data;
}

TEST(CodeTokens, SplitsSnakeAndCamelCase) {
    EXPECT_EQ(code_tokens("parseHTTPResponse"),
              (Strings{"parsehttpresponse", "parse", "http", "response"}));
    EXPECT_EQ(code_tokens("max_len = 3"), (Strings{"max_len", "max", "len"}));
    EXPECT_EQ(code_tokens("self.fooBar(x)"), (Strings{"self", "foobar", "foo", "bar", "x"}));
    // Numbers (with their suffix letters) are no terms; a part of one letter is dropped.
    EXPECT_EQ(code_tokens("0x1F + 10f + getX"), (Strings{"getx", "get"}));
    EXPECT_EQ(code_tokens("__init__ foo2Bar"), (Strings{"__init__", "foo2bar", "foo2", "bar"}));
    EXPECT_EQ(code_tokens("__ ++ --"), Strings{});
    // ASCII identifiers only: other bytes end an identifier.
    EXPECT_EQ(code_tokens("Ünïcode_név"), (Strings{"n", "code_n", "code", "v"}));
}

TEST(Bm25, HandComputedScores) {
    // 3 documents, |d| = 3, 2, 4, avgdl = 3. df: foo 2, bar 2, baz 2, qux 1.
    // idf(2 docs) = ln(1 + (3 - 2 + 0.5) / (2 + 0.5)) = ln(1.6); idf(1 doc) = ln(1 + 2.5 / 1.5).
    const Bm25 bm({{"foo", "bar", "foo"}, {"bar", "baz"}, {"qux", "foo", "baz", "baz"}});
    const double idf2 = std::log(1.6), idf1 = std::log(1.0 + 2.5 / 1.5);
    EXPECT_NEAR(bm.idf("foo"), idf2, 1e-12);
    EXPECT_NEAR(bm.idf("qux"), idf1, 1e-12);
    EXPECT_NEAR(bm.idf("absent"), std::log(1.0 + 3.5 / 0.5), 1e-12);
    // norm(d) = k1 * (1 - b + b * |d| / avgdl): d0 1.2, d1 1.2 * (0.25 + 0.5) = 0.9, d2 1.2 * 1.25
    // = 1.5. d0, "foo" (tf 2): ln(1.6) * 2 * 2.2 / (2 + 1.2)
    EXPECT_NEAR(bm.score({"foo"}, 0), idf2 * 2 * 2.2 / 3.2, 1e-12);
    EXPECT_NEAR(bm.score({"foo"}, 0), 0.6462549902128865, 1e-12);
    EXPECT_EQ(bm.score({"foo"}, 1), 0.0);
    // d2, "foo" tf 1: ln(1.6) * 2.2 / (1 + 1.5)
    EXPECT_NEAR(bm.score({"foo"}, 2), idf2 * 2.2 / 2.5, 1e-12);
    // d1, "foo baz": baz tf 1, norm 0.9: ln(1.6) * 2.2 / 1.9
    EXPECT_NEAR(bm.score({"foo", "baz"}, 1), idf2 * 2.2 / 1.9, 1e-12);
    // d2, "baz baz qux": distinct terms only; baz tf 2, qux tf 1, norm 1.5.
    EXPECT_NEAR(bm.score({"baz", "baz", "qux"}, 2), idf2 * 2 * 2.2 / 3.5 + idf1 * 2.2 / 2.5, 1e-12);
    EXPECT_NEAR(bm.score({"baz", "baz", "qux"}, 2), 1.4539914479878155, 1e-12);
    EXPECT_EQ(bm.score({"nope"}, 2), 0.0);
    EXPECT_EQ(bm.score({"foo"}, 7), 0.0);  // no such document
}

// A small repository: the cursor in app/main.py calls normalize_user_record, defined in
// app/records.py; the distractors share the generic words (user, record, data, value) or hide
// the helper's name where the index must not look.
std::string make_repo() {
    const fs::path root = fs::path(test::temp_dir()) / "repo";
    put(root / "app/records.py",
        "import json\n\n\n"
        "def normalize_user_record(record):\n"
        "    \"\"\"Lower-case the keys of a user record and strip its values.\"\"\"\n"
        "    return {k.lower(): str(v).strip() for k, v in record.items()}\n");
    put(root / "app/users.py",
        "class User:\n"
        "    def __init__(self, data):\n"
        "        self.data = data\n\n"
        "    def record(self):\n"
        "        return dict(user=self.data, value=self.data)\n");
    put(root / "app/storage.py",
        "def save_record(db, record):\n"
        "    db.insert(record)\n\n"
        "def load_user(db, user_id):\n"
        "    return db.get(user_id)\n");
    std::string main_py = "from app.records import normalize_user_record\n\n\ndef handle(raw):\n";
    main_py += "    user = json.loads(raw)\n";
    main_py += "    clean = normalize_user_record(user)\n";  // line 6: the cursor's line
    main_py += "    return clean\n";
    put(root / "app/main.py", main_py);
    // Never indexed: .git, build outputs, binaries, huge files, non-source files.
    put(root / ".git/hooks/normalize_user_record.py",
        "def normalize_user_record(r): normalize_user_record\n");
    put(root / "build/gen/records.py",
        "def normalize_user_record(r):\n    normalize_user_record(r)\n");
    put(root / "node_modules/x/index.js",
        "function normalize_user_record() { normalize_user_record() }\n");
    put(root / "app/blob.py", std::string("def normalize_user_record():\n\0\0\x01binary", 36));
    put(root / "app/huge.py",
        "def normalize_user_record(): pass\n" + std::string((1 << 20) + 10, '#'));
    put(root / "NOTES.txt", "normalize_user_record normalize_user_record normalize_user_record\n");
    std::error_code ec;
    fs::create_symlink(root / "app/records.py", root / "app/link.py", ec);  // symlinks are skipped
    return root.string();
}

TEST(RepoIndex, SkipsWhatIsNoSource) {
    const std::string root = make_repo();
    const RepoIndex idx = RepoIndex::build(root);
    std::set<std::string> paths;
    for (const RepoChunk& c : idx.chunks()) paths.insert(c.path);
    EXPECT_EQ(paths, (std::set<std::string>{"app/main.py", "app/records.py", "app/storage.py",
                                            "app/users.py"}));
    EXPECT_EQ(idx.n_files(), 4u);
    EXPECT_GE(idx.n_skipped(), 3u);  // blob.py, huge.py, NOTES.txt (the folders are not entered)
}

TEST(RepoIndex, HelperRanksFirst) {
    const std::string root = make_repo();
    const RepoIndex idx = RepoIndex::build(root);
    const std::string main_py = test::read_file(root + "/app/main.py");
    const std::string query = query_window(main_py, 6, 3);
    EXPECT_EQ(
        query,
        "def handle(raw):\n    user = json.loads(raw)\n    clean = normalize_user_record(user)\n");
    // The current file's window around the cursor is already in the prompt: excluded.
    const RepoExclude ex{"app/main.py", 4, 6};
    const auto ranked = idx.rank(query, ex);
    ASSERT_FALSE(ranked.empty());
    EXPECT_EQ(idx.chunks()[ranked[0].first].path, "app/records.py");
    for (const auto& [i, s] : ranked) EXPECT_NE(idx.chunks()[i].path, "app/main.py");
    // Without the exclusion the cursor's own file would win (it holds every query term).
    EXPECT_EQ(idx.chunks()[idx.rank(query)[0].first].path, "app/main.py");

    const auto snips = idx.retrieve(query, ex, 1000);
    ASSERT_FALSE(snips.empty());
    EXPECT_EQ(snips[0].chunk.path, "app/records.py");
    EXPECT_EQ(snips[0].rendered.rfind("# app/records.py\nimport json\n", 0), 0u)
        << snips[0].rendered;
    EXPECT_NE(snips[0].rendered.find("def normalize_user_record(record):"), std::string::npos);
    for (size_t i = 1; i < snips.size(); ++i) EXPECT_LE(snips[i].score, snips[i - 1].score);
}

TEST(RepoIndex, WindowsOverlapAndBudgetHolds) {
    const fs::path root = fs::path(test::temp_dir()) / "r";
    std::string a, b;
    for (int i = 1; i <= 50; ++i)
        a += "alpha_value_" + std::to_string(i) + " = compute(" + std::to_string(i) + ")\n";
    for (int i = 1; i <= 10; ++i) b += "beta = compute(alpha_value)\n";
    put(root / "a.py", a);
    put(root / "src/b.cpp", b);
    RepoIndexOptions opt;
    opt.window = 20;
    opt.stride = 10;
    const RepoIndex idx = RepoIndex::build(root.string(), opt);
    // a.py: 50 lines in windows 1-20, 11-30, 21-40, 31-50; b.cpp: one window 1-10.
    ASSERT_EQ(idx.chunks().size(), 5u);
    EXPECT_EQ(idx.chunks()[0].path, "a.py");
    EXPECT_EQ(idx.chunks()[3].first_line, 31);
    EXPECT_EQ(idx.chunks()[3].last_line, 50);
    EXPECT_EQ(idx.chunks()[4].path, "src/b.cpp");
    EXPECT_EQ(idx.chunks()[4].last_line, 10);
    EXPECT_EQ(idx.chunks()[1].text.substr(0, 16), "alpha_value_11 =");

    const TokenCounter bytes = [](std::string_view s) { return static_cast<int64_t>(s.size()); };
    const int64_t cpp_size = static_cast<int64_t>(("// src/b.cpp\n" + b).size());
    // Room for b.cpp's window only (a.py's windows are larger): only it comes back.
    auto s = idx.retrieve("compute alpha_value", {}, cpp_size, bytes);
    ASSERT_EQ(s.size(), 1u);
    EXPECT_EQ(s[0].chunk.path, "src/b.cpp");
    EXPECT_EQ(s[0].rendered, "// src/b.cpp\n" + b);
    EXPECT_EQ(s[0].n_tokens, cpp_size);
    // A large budget: never two overlapping windows of one file, and the sum stays in budget.
    for (int64_t budget : {int64_t{100}, int64_t{700}, int64_t{1500}, int64_t{100000}}) {
        s = idx.retrieve("compute alpha_value", {}, budget, bytes);
        int64_t used = 0;
        for (size_t i = 0; i < s.size(); ++i) {
            used += s[i].n_tokens;
            EXPECT_EQ(s[i].n_tokens, static_cast<int64_t>(s[i].rendered.size()));
            for (size_t j = 0; j < i; ++j)
                EXPECT_FALSE(s[i].chunk.path == s[j].chunk.path &&
                             s[i].chunk.first_line <= s[j].chunk.last_line &&
                             s[i].chunk.last_line >= s[j].chunk.first_line);
        }
        EXPECT_LE(used, budget);
    }
    EXPECT_EQ(idx.retrieve("compute alpha_value", {}, 100000, bytes).size(),
              3u);  // a 1-20, a 21-40 or so, b
    EXPECT_TRUE(idx.retrieve("compute", {}, 0, bytes).empty());
    EXPECT_EQ(idx.retrieve("compute", {}, 100000, bytes, 1).size(), 1u);
}

TEST(RepoIndex, BadRoot) {
    EXPECT_THROW(RepoIndex::build("/nonexistent/llmforge-repo"), Error);
    const std::string file = test::temp_dir() + "/f.py";
    test::write_file(file, "x = 1\n");
    try {
        RepoIndex::build(file);
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("not a folder"), std::string::npos) << e.what();
    }
    RepoIndexOptions bad;
    bad.stride = 0;
    EXPECT_THROW(RepoIndex::build(test::temp_dir(), bad), Error);
}

TEST(QueryWindow, Lines) {
    EXPECT_EQ(query_window("a\nb\nc\nd\n", 3, 2), "b\nc\n");
    EXPECT_EQ(query_window("a\nb\nc\nd\n", 1, 5), "a\n");
    EXPECT_EQ(query_window("a\nb", 9, 5), "a\nb");  // past the end: up to the last line
}

}  // namespace
}  // namespace llmforge::codegen
