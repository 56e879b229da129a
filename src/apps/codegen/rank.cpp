#include "apps/codegen/rank.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <numeric>
#include <set>

#include "apps/codegen/python_literal.h"
#include "core/error.h"

namespace llmforge::codegen {

namespace {

void check_language(const Problem& p) {
    if (p.language != "python" && p.language != "cpp" && p.language != "js") {
        fail("codet: problem %s has language '%s' (expected python, cpp or js)", p.task_id.c_str(), p.language.c_str());
    }
}

bool ident_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_';
}

// Splits text into statements: at newlines, top-level ';' and before each top-level "assert"
// word. Brackets and string literals are tracked so that none of these split inside them; a
// segment that ends with brackets or a string still open is marked incomplete.
struct Segment {
    std::string text;
    bool complete = true;
};

std::vector<Segment> split_statements(std::string_view s, bool python) {
    std::vector<Segment> out;
    std::string cur;
    int depth = 0;
    char quote = 0;
    auto flush = [&](bool at_line_end) {
        Segment seg;
        seg.complete = depth == 0 && quote == 0;
        size_t a = cur.find_first_not_of(" \t\r");
        size_t b = cur.find_last_not_of(" \t\r");
        if (a != std::string::npos) {
            seg.text = cur.substr(a, b - a + 1);
            out.push_back(std::move(seg));
        }
        cur.clear();
        if (at_line_end) {  // a statement never continues past a line end here
            depth = 0;
            quote = 0;
        }
    };
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quote) {
            cur += c;
            if (c == '\\' && i + 1 < s.size() && s[i + 1] != '\n') {
                cur += s[++i];
            } else if (c == quote) {
                quote = 0;
            } else if (c == '\n') {
                cur.pop_back();
                flush(true);
            }
            continue;
        }
        if (c == '\n') {
            flush(true);
            continue;
        }
        if (c == '"' || c == '\'' || (c == '`' && !python)) {
            quote = c;
            cur += c;
            continue;
        }
        if (python && c == '#') {  // a comment ends the statement's text
            while (i + 1 < s.size() && s[i + 1] != '\n') ++i;
            continue;
        }
        if (!python && c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
            while (i + 1 < s.size() && s[i + 1] != '\n') ++i;
            continue;
        }
        if (c == '(' || c == '[' || c == '{') ++depth;
        if (c == ')' || c == ']' || c == '}') depth = std::max(0, depth - 1);
        if (depth == 0 && c == ';') {
            if (!python) cur += c;
            flush(false);
            continue;
        }
        if (depth == 0 && s.substr(i, 6) == "assert" && (i == 0 || !ident_char(s[i - 1])) &&
            (i + 6 >= s.size() || !ident_char(s[i + 6])) && cur.find_first_not_of(" \t\r") != std::string::npos) {
            flush(false);
        }
        cur += c;
    }
    flush(true);
    return out;
}

// ---- Python ----

void python_calls(const PyExpr& e, std::vector<std::string>& names) {
    if (e.kind == PyExpr::kCall) {
        const PyExpr& f = e.items[0];
        if (f.kind == PyExpr::kName) {
            names.push_back(f.str);
        } else if (f.kind == PyExpr::kAttribute && f.items[0].kind == PyExpr::kName) {
            names.push_back(f.items[0].str + "." + f.str);
        } else if (f.kind == PyExpr::kAttribute) {
            // a method of a value (x.lower()): fine as long as the value itself is fine
        } else {
            names.push_back("?");
        }
    }
    for (const auto& x : e.items) python_calls(x, names);
    for (const auto& x : e.values) python_calls(x, names);
}

// ---- C++ / JS ----

// The names called in a C-like statement (identifiers, with :: and . joined, followed by '(';
// member calls `.size()` on a value are skipped). Strings are skipped.
std::vector<std::string> c_like_calls(const std::string& s) {
    std::vector<std::string> names;
    for (size_t i = 0; i < s.size();) {
        const char c = s[i];
        if (c == '"' || c == '\'' || c == '`') {
            for (++i; i < s.size() && s[i] != c; ++i) {
                if (s[i] == '\\') ++i;
            }
            ++i;
            continue;
        }
        if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
            const bool member = i > 0 && s[i - 1] == '.';
            size_t j = i;
            while (j < s.size() &&
                   (ident_char(s[j]) || s[j] == '.' || (s[j] == ':' && j + 1 < s.size() && s[j + 1] == ':'))) {
                j += s[j] == ':' ? 2 : 1;
            }
            std::string name = s.substr(i, j - i);
            size_t k = j;
            if (k < s.size() && s[k] == '<') {  // template arguments: std::vector<long>(...)
                int d = 0;
                for (; k < s.size(); ++k) {
                    if (s[k] == '<') ++d;
                    if (s[k] == '>' && --d == 0) {
                        ++k;
                        break;
                    }
                    if (s[k] == '(' || s[k] == ';') break;
                }
            }
            while (k < s.size() && s[k] == ' ') ++k;
            if (k < s.size() && s[k] == '(' && !member) names.push_back(name);
            i = j;
            continue;
        }
        ++i;
    }
    return names;
}

std::string collapse_space(const std::string& s) {
    std::string out;
    char quote = 0;
    for (size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        if (quote) {
            out += c;
            if (c == '\\' && i + 1 < s.size()) {
                out += s[++i];
            } else if (c == quote) {
                quote = 0;
            }
            continue;
        }
        if (c == '"' || c == '\'' || c == '`') quote = c;
        if (c == ' ' || c == '\t') continue;
        out += c;
    }
    return out;
}

bool starts_with(std::string_view s, std::string_view p) {
    return s.substr(0, p.size()) == p;
}

}  // namespace

std::string test_generation_prefix(const Problem& p) {
    check_language(p);
    if (p.language == "python") return "assert " + p.entry_point + "(";
    if (p.language == "cpp") return "assert(" + p.entry_point + "(";
    return "assert.deepEqual(" + p.entry_point + "(";
}

std::string test_generation_prompt(const Problem& p) {
    check_language(p);
    std::string s = p.prompt;
    if (!s.empty() && s.back() != '\n') s += '\n';
    const std::string comment = "check the correctness of " + p.entry_point;
    if (p.language == "python") {
        // HumanEval prompts end inside the function: `pass` gives it a body. MBPP prompts are prose.
        if (!p.completion_includes_prompt) s += "    pass\n";
        return s + "\n# " + comment + "\n" + test_generation_prefix(p);
    }
    if (p.language == "cpp") return s + "}\n\n// " + comment + "\n" + test_generation_prefix(p);
    return s + "}\n\n// " + comment + "\n" + test_generation_prefix(p);
}

std::vector<std::string> extract_generated_tests(const Problem& p, std::string_view generated) {
    check_language(p);
    const bool python = p.language == "python";
    const std::string prefix = test_generation_prefix(p);
    std::string text(generated);
    {
        const size_t a = text.find_first_not_of(" \t\r\n");
        if (a == std::string::npos || !starts_with(std::string_view(text).substr(a), "assert")) text = prefix + text;
    }
    static const std::set<std::string> kPyBuiltins = {"abs",   "len", "sorted", "set",         "list", "tuple",
                                                      "round", "str", "int",    "float",       "bool", "sum",
                                                      "min",   "max", "dict",   "math.isclose"};
    std::vector<std::string> tests;
    std::set<std::string> seen;
    for (const Segment& seg : split_statements(text, python)) {
        if (!seg.complete || !starts_with(seg.text, "assert")) continue;
        std::string key;
        std::vector<std::string> calls;
        std::string stmt = seg.text;
        if (python) {
            try {
                auto t = parse_python_assert(stmt);
                if (!t) continue;
                python_calls(*t, calls);
                key = python_repr(*t);
            } catch (const Error&) {
                continue;  // malformed
            }
            bool ok = std::find(calls.begin(), calls.end(), p.entry_point) != calls.end();
            for (const auto& c : calls) ok = ok && (c == p.entry_point || kPyBuiltins.count(c));
            if (!ok) continue;
        } else {
            if (p.language == "cpp" && !starts_with(stmt, "assert(")) continue;
            if (p.language == "js" && !starts_with(stmt, "assert(") && !starts_with(stmt, "assert.")) continue;
            if (stmt.back() != ';') stmt += ';';
            if (stmt.size() < 2 || stmt[stmt.size() - 2] != ')') continue;  // `assert(...)` then junk
            calls = c_like_calls(stmt);
            bool has_entry = false, ok = true;
            for (const auto& c : calls) {
                if (c == p.entry_point) {
                    has_entry = true;
                } else if (p.language == "cpp") {
                    ok = ok && (c == "assert" || c == "abs" || c == "fabs" || starts_with(c, "std::"));
                } else {
                    ok = ok && (c == "assert" || starts_with(c, "assert.") || starts_with(c, "Math.") ||
                                c == "JSON.stringify");
                }
            }
            if (!ok || !has_entry) continue;
            key = collapse_space(stmt);
        }
        if (seen.insert(key).second) tests.push_back(stmt);
    }
    return tests;
}

std::string generated_test_snippet(const Problem& p, const std::string& test) {
    check_language(p);
    if (p.language == "python") return test + "\n";
    if (p.language == "cpp") return "}\nint main() {\n    " + test + "\n}\n";
    return "const assert = require('node:assert');\n" + test + "\n";
}

std::vector<double> codet_scores(const std::vector<std::vector<bool>>& passes) {
    std::map<std::vector<bool>, size_t> group_size;
    for (size_t i = 0; i < passes.size(); ++i) {
        if (passes[i].size() != passes[0].size()) {
            fail(
                "codet: candidate %zu has results for %zu tests but candidate 0 for %zu (expected one row per "
                "candidate, one column per test)",
                i, passes[i].size(), passes[0].size());
        }
        ++group_size[passes[i]];
    }
    std::vector<double> scores(passes.size());
    for (size_t i = 0; i < passes.size(); ++i) {
        const size_t n_pass = static_cast<size_t>(std::count(passes[i].begin(), passes[i].end(), true));
        scores[i] = static_cast<double>(group_size[passes[i]]) * static_cast<double>(n_pass);
    }
    return scores;
}

std::vector<size_t> codet_rank(const std::vector<std::vector<bool>>& passes) {
    const std::vector<double> scores = codet_scores(passes);
    std::vector<size_t> order(passes.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
    return order;
}

}  // namespace llmforge::codegen
