// GBNF grammars: parser (llama.cpp's syntax and rule encoding), a pushdown matcher over interned
// stacks, whole-text checks, and the token-masking sampler stage.
//
// Written by hand: no Debian library parses GBNF or matches it with llama.cpp's semantics (the
// point is to accept exactly what llama.cpp accepts, so that grammars move between the two).
//
// Representation. A grammar is llama.cpp's element encoding (rules of elements, alternatives
// separated by kAlt, each rule ending with kEnd), flattened into one array so that a grammar
// position is one uint32_t. A matcher stack is interned in a per-matcher pool as a node
// (position, parent node): node 0 is the empty stack. Interning makes a stack one integer, so
// a stack set is a sorted vector of ints (dedup and hashing are trivial), pushes share their
// tails, and results can be memoised per node (expansion through rule references, token masks).
#include "runtime/grammar.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "core/error.h"
#include "runtime/grammar_internal.h"
#include "runtime/indent_lexer.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

// ================================================================================== the parser

namespace {

constexpr int kMaxNesting = 256;                  // groups inside groups
constexpr size_t kMaxElements = size_t{1} << 20;  // elements in all rules (repetitions expanded)

bool is_word_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-' || (c >= '0' && c <= '9'); }
bool is_digit_char(char c) { return c >= '0' && c <= '9'; }

bool is_end_of_seq(const GElem& e) { return e.type == GType::kEnd || e.type == GType::kAlt; }

std::string show_char(uint32_t c) {
    if (c >= 0x20 && c < 0x7f) return std::string(1, static_cast<char>(c));
    return strfmt("U+%04X", c);
}

class Parser {
public:
    Parser(std::string_view text, std::string_view source) : src_(text), source_(source) {}

    std::unique_ptr<GrammarImpl> run(std::string_view root) {
        for (size_t i = 0; i < src_.size(); ++i)
            if (src_[i] == '\0') error(i, "unexpected NUL byte", "grammars are text");
        text_ = src_.c_str();
        const char* pos = parse_space(text_, true);
        while (*pos) pos = parse_rule(pos);
        auto g = std::make_unique<GrammarImpl>();
        g->source = std::string(source_);
        if (rules_.empty())
            fail("grammar '%s': the grammar is empty (no rules); expected at least `%.*s ::= ...`",
                 source_.c_str(), static_cast<int>(root.size()), root.data());
        // Every referenced rule must be defined (llama.cpp: "Undefined rule identifier").
        for (uint32_t id = 0; id < names_.size(); ++id) {
            if (!defined_[id]) {
                const auto [line, col] = line_col(first_use_[id]);
                fail("grammar '%s': rule '%s' is used but never defined (line %d, column %d); define it "
                     "with `%s ::= ...` or fix the name",
                     source_.c_str(), names_[id].c_str(), line, col, names_[id].c_str());
            }
        }
        auto it = user_ids_.find(std::string(root));
        if (it == user_ids_.end() || !defined_[it->second])
            fail("grammar '%s': there is no rule named '%.*s' (the start rule); define `%.*s ::= ...`",
                 source_.c_str(), static_cast<int>(root.size()), root.data(), static_cast<int>(root.size()),
                 root.data());
        g->root = it->second;
        g->names = std::move(names_);
        g->rules = std::move(rules_);
        return g;
    }

private:
    [[noreturn]] void error(size_t off, const std::string& what, const std::string& hint) {
        const auto [line, col] = line_col(off);
        fail("grammar '%s': line %d, column %d: %s (%s)", source_.c_str(), line, col, what.c_str(), hint.c_str());
    }
    [[noreturn]] void error_at(const char* p, const std::string& what, const std::string& hint) {
        error(static_cast<size_t>(p - text_), what, hint);
    }
    std::pair<int, int> line_col(size_t off) const {
        int line = 1, col = 1;
        for (size_t i = 0; i < off && i < src_.size(); ++i) {
            if (src_[i] == '\n') {
                ++line;
                col = 1;
            } else if ((static_cast<unsigned char>(src_[i]) & 0xC0) != 0x80) {
                ++col;
            }
        }
        return {line, col};
    }
    std::string found(const char* p) const {
        if (!*p) return "found the end of the grammar";
        if (*p == '\n' || *p == '\r') return "found the end of the line";
        return strfmt("found '%c'", *p);
    }

    static const char* parse_space(const char* p, bool newline_ok) {
        while (*p == ' ' || *p == '\t' || *p == '#' || (newline_ok && (*p == '\r' || *p == '\n'))) {
            if (*p == '#') {
                while (*p && *p != '\r' && *p != '\n') ++p;
            } else {
                ++p;
            }
        }
        return p;
    }

    uint32_t symbol(const std::string& name, const char* use) {
        auto it = user_ids_.find(name);
        if (it != user_ids_.end()) return it->second;
        const uint32_t id = new_symbol(name);
        user_ids_.emplace(name, id);
        first_use_[id] = static_cast<size_t>(use - text_);
        return id;
    }
    uint32_t new_symbol(const std::string& name) {
        const uint32_t id = static_cast<uint32_t>(names_.size());
        names_.push_back(name);
        rules_.emplace_back();
        defined_.push_back(false);
        first_use_.push_back(0);
        return id;
    }
    uint32_t generated_symbol(const std::string& base) {
        // llama.cpp's naming: base_<id>; made unique should a user rule have that name.
        std::string name = base + "_" + std::to_string(names_.size());
        while (user_ids_.count(name)) name += "_";
        return new_symbol(name);
    }
    void add_rule(uint32_t id, std::vector<GElem> rule) {
        count_elements(rule.size());
        rules_[id] = std::move(rule);  // a rule defined twice: the last definition wins (llama.cpp)
        defined_[id] = true;
    }
    void count_elements(size_t n) {
        n_elements_ += n;
        if (n_elements_ > kMaxElements)
            fail("grammar '%s': the grammar expands to more than %zu elements (repetition counts too large?); "
                 "use * or + instead of large {m,n}",
                 source_.c_str(), kMaxElements);
    }

    // One character of a literal or class; *p is not the end.
    std::pair<uint32_t, const char*> parse_char(const char* p) {
        if (*p == '\\') {
            switch (p[1]) {
                case 'x': return parse_hex(p, 2);
                case 'u': return parse_hex(p, 4);
                case 'U': return parse_hex(p, 8);
                case 't': return {'\t', p + 2};
                case 'r': return {'\r', p + 2};
                case 'n': return {'\n', p + 2};
                case '\\':
                case '"':
                case '[':
                case ']': return {static_cast<unsigned char>(p[1]), p + 2};
                default:
                    error_at(p, p[1] ? strfmt("unknown escape '\\%c'", p[1]) : "unexpected end after '\\'",
                             "known escapes: \\n \\r \\t \\\\ \\\" \\[ \\] \\xHH \\uHHHH \\UHHHHHHHH");
            }
        }
        const auto* u = reinterpret_cast<const unsigned char*>(p);
        int n = u[0] < 0x80 ? 1 : (u[0] >> 5) == 6 ? 2 : (u[0] >> 4) == 14 ? 3 : (u[0] >> 3) == 30 ? 4 : 0;
        if (n == 0) error_at(p, strfmt("invalid UTF-8 byte 0x%02X", u[0]), "grammars are UTF-8 text");
        uint32_t v = n == 1 ? u[0] : n == 2 ? (u[0] & 0x1F) : n == 3 ? (u[0] & 0x0F) : (u[0] & 0x07);
        for (int i = 1; i < n; ++i) {
            if ((u[i] & 0xC0) != 0x80) error_at(p, "invalid UTF-8 sequence", "grammars are UTF-8 text");
            v = (v << 6) | (u[i] & 0x3F);
        }
        return {v, p + n};
    }
    std::pair<uint32_t, const char*> parse_hex(const char* p, int n) {
        uint32_t v = 0;
        const char* q = p + 2;
        for (int i = 0; i < n; ++i, ++q) {
            const char c = *q;
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) error_at(q, strfmt("expected %d hex digits after '\\%c', %s", n, p[1], found(q).c_str()), "e.g. \\x41 or \\u00e9");
            v = (v << 4) | static_cast<uint32_t>(d);
        }
        return {v, q};
    }

    const char* parse_rule(const char* p) {
        const char* name_end = p;
        while (is_word_char(*name_end)) ++name_end;
        if (name_end == p)
            error_at(p, "expected a rule name, " + found(p), "rules look like `name ::= ...`; names use a-z A-Z 0-9 -");
        const std::string name(p, name_end);
        const uint32_t id = symbol(name, p);
        const char* q = parse_space(name_end, false);
        if (!(q[0] == ':' && q[1] == ':' && q[2] == '='))
            error_at(q, "expected '::=' after rule name '" + name + "', " + found(q), "rules look like `name ::= ...`");
        q = parse_space(q + 3, true);
        q = parse_alternates(q, name, id, false, 0);
        if (*q == '\r') {
            q += q[1] == '\n' ? 2 : 1;
        } else if (*q == '\n') {
            ++q;
        } else if (*q) {
            error_at(q, "expected the end of the line after rule '" + name + "', " + found(q),
                     *q == ')' ? "unbalanced ')'" : "a rule ends at the end of its line unless inside ( )");
        }
        return parse_space(q, true);
    }

    const char* parse_alternates(const char* p, const std::string& rule_name, uint32_t id, bool nested, int depth) {
        std::vector<GElem> rule;
        p = parse_sequence(p, rule_name, rule, nested, depth);
        while (*p == '|') {
            rule.push_back({GType::kAlt, 0});
            p = parse_space(p + 1, true);
            p = parse_sequence(p, rule_name, rule, nested, depth);
        }
        rule.push_back({GType::kEnd, 0});
        add_rule(id, std::move(rule));
        return p;
    }

    void repeat(std::vector<GElem>& rule, size_t last_sym_start, const char* at, const std::string& rule_name,
                uint64_t min_times, int64_t max_times) {
        if (last_sym_start == rule.size())
            error_at(at, strfmt("'%c' has nothing to repeat", *at), "put it after an item: \"a\"*, [0-9]+, (x)?, x{2,3}");
        const std::vector<GElem> prev(rule.begin() + static_cast<std::ptrdiff_t>(last_sym_start), rule.end());
        const uint64_t n_opt = max_times < 0 ? 1 : (static_cast<uint64_t>(max_times) > min_times ? static_cast<uint64_t>(max_times) - min_times : 0);
        // Same rewrite as llama.cpp: S{m,n} -> S x m, then n-m nested optional rules.
        const uint64_t cost = prev.size() * (min_times + n_opt + 1) + 3 * n_opt;
        if (min_times > kMaxElements || n_opt > kMaxElements || cost > kMaxElements) count_elements(kMaxElements + 1);
        if (min_times == 0) {
            rule.resize(last_sym_start);
        } else {
            count_elements(prev.size() * (min_times - 1));
            for (uint64_t i = 1; i < min_times; ++i) rule.insert(rule.end(), prev.begin(), prev.end());
        }
        uint32_t last_rec = 0;
        for (uint64_t i = 0; i < n_opt; ++i) {
            std::vector<GElem> rec(prev);
            const uint32_t rec_id = generated_symbol(rule_name);
            if (i > 0 || max_times < 0) rec.push_back({GType::kRef, max_times < 0 ? rec_id : last_rec});
            rec.push_back({GType::kAlt, 0});
            rec.push_back({GType::kEnd, 0});
            add_rule(rec_id, std::move(rec));
            last_rec = rec_id;
        }
        if (n_opt > 0) rule.push_back({GType::kRef, last_rec});
    }

    uint64_t parse_count(const char*& p) {
        uint64_t v = 0;
        while (is_digit_char(*p)) {
            v = v * 10 + static_cast<uint64_t>(*p - '0');
            if (v > (uint64_t{1} << 40)) v = uint64_t{1} << 40;  // saturate: rejected as too large later
            ++p;
        }
        return v;
    }

    const char* parse_sequence(const char* p, const std::string& rule_name, std::vector<GElem>& rule, bool nested,
                               int depth) {
        size_t last_sym_start = rule.size();
        while (*p) {
            if (*p == '"') {
                const char* open = p++;
                last_sym_start = rule.size();
                while (*p != '"') {
                    if (!*p) error_at(open, "unterminated string literal", "close it with '\"'");
                    auto [c, next] = parse_char(p);
                    p = next;
                    rule.push_back({GType::kChar, c});
                }
                p = parse_space(p + 1, nested);
            } else if (*p == '[') {
                const char* open = p++;
                GType start = GType::kChar;
                if (*p == '^') {
                    ++p;
                    start = GType::kCharNot;
                }
                last_sym_start = rule.size();
                while (*p != ']') {
                    if (!*p) error_at(open, "expected ']' to close the character class", "e.g. [a-z0-9_]");
                    auto [c, next] = parse_char(p);
                    p = next;
                    rule.push_back({last_sym_start < rule.size() ? GType::kCharAlt : start, c});
                    if (p[0] == '-' && p[1] != ']') {
                        if (!p[1]) error_at(open, "expected ']' to close the character class", "e.g. [a-z0-9_]");
                        auto [hi, next2] = parse_char(p + 1);
                        p = next2;
                        rule.push_back({GType::kRngUpper, hi});
                    }
                }
                p = parse_space(p + 1, nested);
            } else if (is_word_char(*p)) {
                const char* end = p;
                while (is_word_char(*end)) ++end;
                const uint32_t ref = symbol(std::string(p, end), p);
                p = parse_space(end, nested);
                last_sym_start = rule.size();
                rule.push_back({GType::kRef, ref});
            } else if (*p == '(') {
                if (depth >= kMaxNesting)
                    error_at(p, strfmt("groups nested more than %d deep", kMaxNesting), "flatten the grammar into named rules");
                const char* open = p;
                p = parse_space(p + 1, true);
                const uint32_t sub = generated_symbol(rule_name);
                p = parse_alternates(p, rule_name, sub, true, depth + 1);
                last_sym_start = rule.size();
                rule.push_back({GType::kRef, sub});
                if (*p != ')') {
                    const auto [line, col] = line_col(static_cast<size_t>(open - text_));
                    error_at(p, strfmt("expected ')' to close the group opened at line %d, column %d, %s", line, col, found(p).c_str()),
                             "balance the parentheses");
                }
                p = parse_space(p + 1, nested);
            } else if (*p == '.') {
                last_sym_start = rule.size();
                rule.push_back({GType::kAny, 0});
                p = parse_space(p + 1, nested);
            } else if (*p == '*' || *p == '+' || *p == '?') {
                const char* at = p;
                p = parse_space(p + 1, nested);
                repeat(rule, last_sym_start, at, rule_name, *at == '+' ? 1 : 0, *at == '?' ? 1 : -1);
            } else if (*p == '{') {
                const char* at = p;
                p = parse_space(p + 1, nested);
                if (!is_digit_char(*p))
                    error_at(p, "expected a number after '{', " + found(p), "repetition is {m}, {m,} or {m,n}");
                const uint64_t min_times = parse_count(p);
                p = parse_space(p, nested);
                int64_t max_times = -1;
                if (*p == '}') {
                    max_times = static_cast<int64_t>(min_times);
                    p = parse_space(p + 1, nested);
                } else if (*p == ',') {
                    p = parse_space(p + 1, nested);
                    if (is_digit_char(*p)) {
                        max_times = static_cast<int64_t>(parse_count(p));
                        p = parse_space(p, nested);
                    }
                    if (*p != '}') error_at(p, "expected '}' to close the repetition, " + found(p), "repetition is {m}, {m,} or {m,n}");
                    p = parse_space(p + 1, nested);
                } else {
                    error_at(p, "expected ',' or '}' in the repetition, " + found(p), "repetition is {m}, {m,} or {m,n}");
                }
                repeat(rule, last_sym_start, at, rule_name, min_times, max_times);
            } else {
                break;
            }
        }
        return p;
    }

    std::string src_;
    std::string source_;
    const char* text_ = nullptr;
    std::vector<std::string> names_;
    std::vector<std::vector<GElem>> rules_;
    std::vector<bool> defined_;
    std::vector<size_t> first_use_;
    std::unordered_map<std::string, uint32_t> user_ids_;
    size_t n_elements_ = 0;
};

// Left recursion, as llama.cpp checks it (every rule, reachable or not), but with full
// nullability: a rule is nullable when an alternative consists of nullable rule references only
// (llama.cpp only counts a literally empty alternative, and then loops forever expanding a rule
// that is left-recursive through such a prefix; we reject it at load instead).
void check_left_recursion(const GrammarImpl& g) {
    const size_t n = g.rules.size();
    std::vector<bool> nullable(n, false);
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t r = 0; r < n; ++r) {
            if (nullable[r]) continue;
            bool all = true;  // the current alternative so far is nullable
            for (const GElem& e : g.rules[r]) {
                if (is_end_of_seq(e)) {
                    if (all) {
                        nullable[r] = true;
                        changed = true;
                        break;
                    }
                    all = true;
                } else if (e.type != GType::kRef || !nullable[e.value]) {
                    all = false;
                }
            }
        }
    }
    // leftmost[r]: rules that may start rule r (through nullable prefixes).
    std::vector<std::vector<uint32_t>> left(n);
    for (size_t r = 0; r < n; ++r) {
        bool at_left = true;
        for (const GElem& e : g.rules[r]) {
            if (is_end_of_seq(e)) {
                at_left = true;
            } else if (at_left && e.type == GType::kRef) {
                left[r].push_back(e.value);
                if (!nullable[e.value]) at_left = false;
            } else {
                at_left = false;
            }
        }
    }
    // Iterative DFS (a deep chain of rules must not overflow the stack); a back edge is a cycle.
    std::vector<uint8_t> color(n, 0);  // 0 new, 1 on the path, 2 done
    std::vector<std::pair<uint32_t, size_t>> path;
    for (uint32_t start = 0; start < n; ++start) {
        if (color[start]) continue;
        path.push_back({start, 0});
        color[start] = 1;
        while (!path.empty()) {
            auto& [r, i] = path.back();
            if (i == left[r].size()) {
                color[r] = 2;
                path.pop_back();
                continue;
            }
            const uint32_t next = left[r][i++];
            if (color[next] == 1) {
                std::string cycle;
                size_t k = 0;
                while (path[k].first != next) ++k;
                for (; k < path.size(); ++k) cycle += g.names[path[k].first] + " -> ";
                cycle += g.names[next];
                fail("grammar '%s': rule '%s' is left-recursive (%s); rewrite it with repetition, e.g. "
                     "`expr ::= term (\"+\" term)*` instead of `expr ::= expr \"+\" term | term`",
                     g.source.c_str(), g.names[next].c_str(), cycle.c_str());
            }
            if (color[next] == 0) {
                color[next] = 1;
                path.push_back({next, 0});
            }
        }
    }
}

void append_escaped(std::string& out, uint32_t c, bool in_class) {
    if (c == '"' && !in_class) {
        out += "\\\"";
    } else if (c == '\\') {
        out += "\\\\";
    } else if (in_class && (c == ']' || c == '[' || c == '-' || c == '^')) {
        out += c == ']' ? "\\]" : c == '[' ? "\\[" : c == '-' ? "\\x2D" : "\\x5E";
    } else if (c == '\n') {
        out += "\\n";
    } else if (c == '\r') {
        out += "\\r";
    } else if (c == '\t') {
        out += "\\t";
    } else if (c >= 0x20 && c < 0x7f) {
        out += static_cast<char>(c);
    } else if (c < 0x100) {
        out += strfmt("\\x%02X", c);
    } else if (c < 0x10000) {
        out += strfmt("\\u%04X", c);
    } else {
        out += strfmt("\\U%08X", c);
    }
}

}  // namespace

void GrammarImpl::flatten() {
    rule_start.resize(rules.size());
    flat.clear();
    for (size_t r = 0; r < rules.size(); ++r) {
        rule_start[r] = static_cast<uint32_t>(flat.size());
        flat.insert(flat.end(), rules[r].begin(), rules[r].end());
    }
    flat.push_back({GType::kEnd, 0});  // sentinel: a char element's scan never runs off the end
    // Alternative starts per rule and the position after each char element.
    alt_begin.assign(rules.size() + 1, 0);
    alt_starts.clear();
    for (size_t r = 0; r < rules.size(); ++r) {
        alt_begin[r] = static_cast<uint32_t>(alt_starts.size());
        uint32_t p = rule_start[r];
        alt_starts.push_back(p);
        for (; flat[p].type != GType::kEnd; ++p)
            if (flat[p].type == GType::kAlt) alt_starts.push_back(p + 1);
    }
    alt_begin[rules.size()] = static_cast<uint32_t>(alt_starts.size());
    char_info.assign(flat.size(), CharInfo{{0, 0}, 0});
    for (uint32_t p = 0; p < flat.size(); ++p) {
        const GType t = flat[p].type;
        if (t != GType::kChar && t != GType::kCharNot && t != GType::kAny) continue;
        CharInfo& ci = char_info[p];
        uint32_t q = p;
        do {  // set the class's ASCII members, one range at a time
            uint32_t lo = flat[q].value, hi = lo;
            if (flat[q].type == GType::kAny) {
                lo = 0;
                hi = 127;
                q += 1;
            } else if (flat[q + 1].type == GType::kRngUpper) {
                hi = flat[q + 1].value;
                q += 2;
            } else {
                q += 1;
            }
            for (uint32_t c = lo; c <= std::min<uint32_t>(hi, 127); ++c) ci.ascii[c >> 6] |= uint64_t{1} << (c & 63);
        } while (flat[q].type == GType::kCharAlt);
        if (t == GType::kCharNot) {
            ci.ascii[0] = ~ci.ascii[0];
            ci.ascii[1] = ~ci.ascii[1];
        }
        ci.after = q;
    }
}

// ================================================================================= Grammar

Grammar::Grammar(std::unique_ptr<GrammarImpl> impl) : impl_(std::move(impl)) {}
Grammar::~Grammar() = default;

std::shared_ptr<const Grammar> Grammar::parse(std::string_view gbnf, std::string_view root, std::string_view source) {
    Parser parser(gbnf, source);
    std::unique_ptr<GrammarImpl> impl = parser.run(root);
    check_left_recursion(*impl);
    impl->flatten();
    impl->indent_lexer = grammar_wants_indent_lexer(gbnf);
    return std::shared_ptr<const Grammar>(new Grammar(std::move(impl)));
}

const std::string& Grammar::source() const { return impl_->source; }
bool Grammar::uses_indent_lexer() const { return impl_->indent_lexer; }

std::string Grammar::to_gbnf() const {
    const GrammarImpl& g = *impl_;
    // Generated rules are named like llama.cpp's (root_1), but '_' is not a name character in
    // GBNF: print them as root-1 (made unique against the other names) so the text parses back.
    std::vector<std::string> names(g.names);
    std::unordered_map<std::string, int> taken;
    for (const std::string& n : g.names)
        if (n.find('_') == std::string::npos) taken[n] = 1;
    for (std::string& n : names) {
        if (n.find('_') == std::string::npos) continue;
        std::replace(n.begin(), n.end(), '_', '-');
        while (taken.count(n)) n += "-";
        taken[n] = 1;
    }
    std::string out;
    if (g.indent_lexer) out += "# llmforge: indent-lexer\n";  // keeps the lexer when parsed back
    for (size_t r = 0; r < g.rules.size(); ++r) {
        const std::vector<GElem>& rule = g.rules[r];
        out += names[r] + " ::=";
        bool empty_alt = true;
        for (size_t i = 0; i < rule.size();) {
            const GElem& e = rule[i];
            if (is_end_of_seq(e)) {
                if (empty_alt) out += " \"\"";
                if (e.type == GType::kEnd) break;
                out += " |";
                empty_alt = true;
                ++i;
                continue;
            }
            empty_alt = false;
            if (e.type == GType::kRef) {
                out += " " + names[e.value];
                ++i;
            } else if (e.type == GType::kAny) {
                out += " .";
                ++i;
            } else if (e.type == GType::kChar && rule[i + 1].type != GType::kCharAlt && rule[i + 1].type != GType::kRngUpper) {
                out += " \"";
                while (rule[i].type == GType::kChar && rule[i + 1].type != GType::kCharAlt && rule[i + 1].type != GType::kRngUpper) {
                    append_escaped(out, rule[i].value, false);
                    ++i;
                }
                out += "\"";
            } else {  // a character class
                out += e.type == GType::kCharNot ? " [^" : " [";
                do {
                    append_escaped(out, rule[i].value, true);
                    if (rule[i + 1].type == GType::kRngUpper) {
                        out += "-";
                        append_escaped(out, rule[i + 1].value, true);
                        i += 2;
                    } else {
                        ++i;
                    }
                } while (rule[i].type == GType::kCharAlt);
                out += "]";
            }
        }
        out += "\n";
    }
    return out;
}

// ================================================================================ stack pool

uint32_t StackPool::push(uint32_t parent, uint32_t pos) {
    const uint64_t key = (static_cast<uint64_t>(pos) << 32) | parent;
    auto [it, inserted] = index_.emplace(key, static_cast<uint32_t>(pos_.size()));
    if (inserted) {
        if (pos_.size() >= kMaxNodes) {
            index_.erase(it);
            fail_kind(ErrorKind::kResource,
                      "grammar '%s': the matcher needs more than %zu stack nodes (the grammar nests or branches too "
                      "much for this text); simplify the grammar",
                      g_->source.c_str(), kMaxNodes);
        }
        pos_.push_back(pos);
        parent_.push_back(parent);
        expanded_.emplace_back();
        seen_.push_back(0);
    }
    return it->second;
}

// Appends to `out` the stacks (nodes) that stack `node` stands for once every rule reference on
// top is replaced by its alternatives: each has a char element on top, or is empty (node 0).
// `out` may hold duplicates; the caller normalises.
void StackPool::expand(uint32_t node, std::vector<uint32_t>& out) {
    if (node == 0 || g_->flat[pos_[node]].type != GType::kRef) {
        out.push_back(node);
        return;
    }
    if (!expanded_[node].empty()) {
        out.insert(out.end(), expanded_[node].begin(), expanded_[node].end());
        return;
    }
    std::vector<uint32_t> result;
    ++epoch_;
    if (epoch_ == 0) {
        std::fill(seen_.begin(), seen_.end(), 0);
        epoch_ = 1;
    }
    std::vector<uint32_t> todo{node};
    size_t steps = 0;
    while (!todo.empty()) {
        const uint32_t n = todo.back();
        todo.pop_back();
        if (seen_[n] == epoch_) continue;
        seen_[n] = epoch_;
        if (++steps > kMaxExpandSteps)
            fail_kind(ErrorKind::kResource,
                      "grammar '%s': expanding the rules at one position takes more than %zu steps (too many "
                      "alternatives reachable without consuming a character); simplify the grammar",
                      g_->source.c_str(), kMaxExpandSteps);
        if (n == 0 || g_->flat[pos_[n]].type != GType::kRef) {
            result.push_back(n);
            continue;
        }
        const uint32_t p = pos_[n];
        const uint32_t rule = g_->flat[p].value;
        const uint32_t base = is_end_of_seq(g_->flat[p + 1]) ? parent_[n] : push(parent_[n], p + 1);
        for (uint32_t a = g_->alt_begin[rule]; a < g_->alt_begin[rule + 1]; ++a) {
            const uint32_t s = g_->alt_starts[a];
            todo.push_back(is_end_of_seq(g_->flat[s]) ? base : push(base, s));
        }
        if (seen_.size() < pos_.size()) seen_.resize(pos_.size(), 0);
    }
    std::sort(result.begin(), result.end());
    result.erase(std::unique(result.begin(), result.end()), result.end());
    out.insert(out.end(), result.begin(), result.end());
    expanded_[node] = std::move(result);  // never empty: a reference expands to >= 1 stack
}

// Char element at `p` against code point c: (matches, position after the element).
std::pair<bool, uint32_t> match_char(const std::vector<GElem>& flat, uint32_t p, uint32_t c) {
    const bool positive = flat[p].type == GType::kChar || flat[p].type == GType::kAny;
    bool found = false;
    do {
        if (flat[p + 1].type == GType::kRngUpper) {
            found = found || (flat[p].value <= c && c <= flat[p + 1].value);
            p += 2;
        } else if (flat[p].type == GType::kAny) {
            found = true;
            p += 1;
        } else {
            found = found || flat[p].value == c;
            p += 1;
        }
    } while (flat[p].type == GType::kCharAlt);
    return {found == positive, p};
}

// Some completion of the partial UTF-8 sequence could match the char element at p. Exact, unlike
// llama.cpp's llama_grammar_match_partial_char, which rejects a partial sequence for a negated
// class as soon as one excluded character is among its completions (so a token ending in the
// first bytes of "…" would be refused by [^\u2028]); we keep it when any completion is allowed.
bool match_partial(const std::vector<GElem>& flat, uint32_t p, Utf8Partial partial) {
    const bool positive = flat[p].type == GType::kChar || flat[p].type == GType::kAny;
    const int n = partial.n_remain;
    if (n == 1 && partial.value < 2) return false;  // overlong 2-byte form of an ASCII char
    uint32_t low = partial.value << (n * 6);
    uint32_t high = std::min<uint32_t>(low | ((1u << (n * 6)) - 1), 0x10FFFF);
    if (low == 0) low = n == 2 ? (1u << 11) : n == 3 ? (1u << 16) : low;
    if (low > high) return false;
    if (flat[p].type == GType::kAny) return true;
    // The class as ranges intersected with [low, high].
    std::vector<std::pair<uint32_t, uint32_t>> ranges;
    do {
        uint32_t a = flat[p].value, b = a;
        if (flat[p + 1].type == GType::kRngUpper) {
            b = flat[p + 1].value;
            p += 2;
        } else {
            p += 1;
        }
        a = std::max(a, low);
        b = std::min(b, high);
        if (a <= b) {
            if (positive) return true;
            ranges.push_back({a, b});
        }
    } while (flat[p].type == GType::kCharAlt);
    if (positive) return false;
    // Negated: some code point of [low, high] is outside every range.
    std::sort(ranges.begin(), ranges.end());
    uint32_t next = low;  // the smallest code point not yet known to be excluded
    for (const auto& [a, b] : ranges) {
        if (a > next) return true;
        if (b >= next) {
            if (b == high) return false;
            next = b + 1;
        }
    }
    return next <= high;
}

void StackPool::step(const std::vector<uint32_t>& in, uint32_t c, std::vector<uint32_t>& out) {
    out.clear();
    size_t contributions = 0;
    for (uint32_t n : in) {
        if (n == 0) continue;
        const uint32_t p = pos_[n];
        const GrammarImpl::CharInfo& ci = g_->char_info[p];
        const bool ok = c < 128 ? ((ci.ascii[c >> 6] >> (c & 63)) & 1) != 0 : match_char(g_->flat, p, c).first;
        if (!ok) continue;
        const uint32_t after = ci.after;
        // The stack after the char element does not depend on which character matched: memoised
        // per node, so the trie walk does no hashing on the common path.
        if (succ_.size() < pos_.size()) succ_.resize(pos_.size(), kNoNode);
        uint32_t m = succ_[n];
        if (m == kNoNode) {
            m = is_end_of_seq(g_->flat[after]) ? parent_[n] : push(parent_[n], after);
            succ_[n] = m;
        }
        expand(m, out);
        ++contributions;
    }
    if (contributions > 1 && out.size() > 1) {
        std::sort(out.begin(), out.end());
        out.erase(std::unique(out.begin(), out.end()), out.end());
    }
    if (out.size() > kMaxStacks)
        fail_kind(ErrorKind::kResource,
                  "grammar '%s': more than %zu alternative parses are alive at once (an ambiguous grammar); "
                  "make the alternatives start differently",
                  g_->source.c_str(), kMaxStacks);
}

void StackPool::filter_partial(std::vector<uint32_t>& set, Utf8Partial partial) const {
    size_t k = 0;
    for (uint32_t n : set)
        if (n != 0 && match_partial(g_->flat, pos_[n], partial)) set[k++] = n;
    set.resize(k);
}

std::vector<uint32_t> StackPool::initial() {
    std::vector<uint32_t> set;
    const uint32_t r = g_->root;
    for (uint32_t a = g_->alt_begin[r]; a < g_->alt_begin[r + 1]; ++a) {
        const uint32_t s = g_->alt_starts[a];
        expand(is_end_of_seq(g_->flat[s]) ? 0 : push(0, s), set);
    }
    std::sort(set.begin(), set.end());
    set.erase(std::unique(set.begin(), set.end()), set.end());
    return set;
}

// Feeds one byte to a UTF-8 decoder. Returns 1 and sets *cp when a code point completes, 0 when
// the sequence goes on, -1 when the byte is not valid here.
int utf8_feed(Utf8Partial& st, uint8_t b, uint32_t* cp) {
    if (st.n_remain == 0) {
        if (b < 0x80) {
            *cp = b;
            return 1;
        }
        if (b == 0xC0 || b == 0xC1 || b > 0xF4) return -1;  // never in UTF-8
        if ((b & 0xE0) == 0xC0) {
            st = {static_cast<uint32_t>(b & 0x1F), 1};
        } else if ((b & 0xF0) == 0xE0) {
            st = {static_cast<uint32_t>(b & 0x0F), 2};
        } else if ((b & 0xF8) == 0xF0) {
            st = {static_cast<uint32_t>(b & 0x07), 3};
        } else {
            return -1;
        }
        return 0;
    }
    if ((b & 0xC0) != 0x80) return -1;
    st.value = (st.value << 6) | (b & 0x3F);
    if (st.n_remain == 3 && st.value > (0x10FFFF >> 12)) return -1;  // beyond U+10FFFF
    if (--st.n_remain == 0) {
        *cp = st.value;
        st.value = 0;
        return 1;
    }
    return 0;
}

// ============================================================================ GrammarMatcher

struct GrammarMatcher::State {
    std::shared_ptr<const Grammar> grammar;
    StackPool pool;
    bool lexer;  // the text goes through the indentation lexer
    LexMatchState ls;
    std::vector<uint32_t> scratch;
    std::string out;
    State(std::shared_ptr<const Grammar> g, bool run_lexer)
        : grammar(std::move(g)), pool(&grammar->impl()), lexer(run_lexer && grammar->impl().indent_lexer) {
        ls.st.stacks = pool.initial();
    }
};

GrammarMatcher::GrammarMatcher(std::shared_ptr<const Grammar> g, bool run_lexer) {
    if (!g) fail("GrammarMatcher: null grammar");
    s_ = std::make_unique<State>(std::move(g), run_lexer);
}
GrammarMatcher::GrammarMatcher(const GrammarMatcher& o) : s_(std::make_unique<State>(*o.s_)) {}
GrammarMatcher& GrammarMatcher::operator=(const GrammarMatcher& o) {
    if (this != &o) s_ = std::make_unique<State>(*o.s_);
    return *this;
}
GrammarMatcher::~GrammarMatcher() = default;

bool advance_bytes(StackPool& pool, MatchState& st, std::string_view bytes, std::vector<uint32_t>& scratch) {
    MatchState next = st;
    for (char ch : bytes) {
        uint32_t cp = 0;
        const int r = utf8_feed(next.partial, static_cast<uint8_t>(ch), &cp);
        if (r < 0) return false;
        if (r == 1) {
            pool.step(next.stacks, cp, scratch);
            if (scratch.empty()) return false;
            next.stacks.swap(scratch);
        }
    }
    if (next.partial.n_remain > 0) {
        std::vector<uint32_t> viable = next.stacks;
        pool.filter_partial(viable, next.partial);
        if (viable.empty()) return false;
    }
    st = std::move(next);
    return true;
}

bool advance_lexed(StackPool& pool, LexMatchState& s, std::string_view bytes, std::string& out,
                   std::vector<uint32_t>& scratch) {
    IndentLexerState lex = s.lex;
    out.clear();
    if (!indent_feed(lex, bytes, out)) return false;
    if (!advance_bytes(pool, s.st, out, scratch)) return false;  // s.st unchanged on rejection
    s.lex = std::move(lex);
    return true;
}

bool lexed_can_end(StackPool& pool, const LexMatchState& s, std::vector<uint32_t>& scratch) {
    if (s.lex.utf8_need > 0 || s.st.partial.n_remain > 0) return false;
    MatchState end = s.st;
    return advance_bytes(pool, end, indent_finish(s.lex), scratch) && !end.stacks.empty() && end.stacks.front() == 0;
}

bool GrammarMatcher::accept(std::string_view bytes) {
    if (s_->lexer) return advance_lexed(s_->pool, s_->ls, bytes, s_->out, s_->scratch);
    return advance_bytes(s_->pool, s_->ls.st, bytes, s_->scratch);
}

bool GrammarMatcher::can_end() const {
    if (s_->lexer) return lexed_can_end(s_->pool, s_->ls, s_->scratch);
    const MatchState& st = s_->ls.st;
    return st.partial.n_remain == 0 && !st.stacks.empty() && st.stacks.front() == 0;
}

void GrammarMatcher::reset() {
    s_->ls = LexMatchState{};
    s_->ls.st.stacks = s_->pool.initial();
}

// ============================================================================= grammar_check

namespace {

std::string show_symbol(uint32_t c) {
    if (c == kIndentNewline) return "NEWLINE (end of the logical line)";
    if (c == kIndentIndent) return "INDENT (a deeper indentation)";
    if (c == kIndentDedent) return "DEDENT (a shallower indentation)";
    return "'" + show_char(c) + "'";
}

// grammar_check through the indentation lexer: offsets count code points of the original text.
GrammarCheck check_lexed(const Grammar& g, std::string_view text) {
    StackPool pool(&g.impl());
    MatchState st;
    st.stacks = pool.initial();
    IndentLexerState lex;
    std::string out;
    std::vector<uint32_t> next;
    GrammarCheck r;
    int64_t n_cp = 0;  // code points begun before the current byte
    auto feed_matcher = [&](std::string_view bytes, int64_t at) {
        for (char ch : bytes) {
            uint32_t cp = 0;
            const int k = utf8_feed(st.partial, static_cast<uint8_t>(ch), &cp);
            if (k < 0) {  // (the lexer checked the UTF-8 already)
                r.reason = strfmt("invalid UTF-8 byte 0x%02X at code point %lld", static_cast<uint8_t>(ch),
                                  static_cast<long long>(at));
                return false;
            }
            if (k == 0) continue;
            pool.step(st.stacks, cp, next);
            if (next.empty()) {
                r.reason = strfmt("unexpected %s at code point %lld", show_symbol(cp).c_str(), static_cast<long long>(at));
                return false;
            }
            st.stacks.swap(next);
        }
        return true;
    };
    for (char ch : text) {
        const auto b = static_cast<uint8_t>(ch);
        const bool lead = (b & 0xC0) != 0x80;
        const int64_t at = lead ? n_cp : std::max<int64_t>(0, n_cp - 1);
        if (lead) ++n_cp;
        out.clear();
        IndentLexerState before = lex;
        if (!indent_feed(lex, b, out)) {
            r.fail_offset = at;
            r.reason = indent_reject_reason(before, b) + strfmt(" at code point %lld", static_cast<long long>(at));
            return r;
        }
        if (!out.empty() && !feed_matcher(out, at)) {
            r.fail_offset = at;
            return r;
        }
    }
    if (lex.utf8_need > 0) {
        r.fail_offset = n_cp - 1;
        r.reason = strfmt("text ends inside a UTF-8 sequence at code point %lld", static_cast<long long>(n_cp - 1));
        return r;
    }
    if (feed_matcher(indent_finish(lex), n_cp) && !st.stacks.empty() && st.stacks.front() == 0) {
        r.accepted = true;
        r.reason.clear();
        return r;
    }
    r.fail_offset = n_cp;
    r.reason = "text ends before the grammar does";
    return r;
}

}  // namespace

GrammarCheck grammar_check(const Grammar& g, std::string_view text) {
    if (g.impl().indent_lexer) return check_lexed(g, text);
    StackPool pool(&g.impl());
    std::vector<uint32_t> set = pool.initial(), next;
    GrammarCheck r;
    Utf8Partial partial;
    int64_t n_cp = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        uint32_t cp = 0;
        const int k = utf8_feed(partial, static_cast<uint8_t>(text[i]), &cp);
        if (k < 0) {
            r.fail_offset = n_cp;
            r.reason = strfmt("invalid UTF-8 byte 0x%02X at code point %lld", static_cast<uint8_t>(text[i]),
                              static_cast<long long>(n_cp));
            return r;
        }
        if (k == 0) continue;
        pool.step(set, cp, next);
        if (next.empty()) {
            r.fail_offset = n_cp;
            r.reason = strfmt("unexpected '%s' at code point %lld", show_char(cp).c_str(), static_cast<long long>(n_cp));
            return r;
        }
        set.swap(next);
        ++n_cp;
    }
    if (partial.n_remain > 0) {
        r.fail_offset = n_cp;
        r.reason = strfmt("text ends inside a UTF-8 sequence at code point %lld", static_cast<long long>(n_cp));
        return r;
    }
    if (!set.empty() && set.front() == 0) {
        r.accepted = true;
        return r;
    }
    r.fail_offset = n_cp;
    r.reason = "text ends before the grammar does";
    return r;
}

// ============================================================================== GrammarVocab

GrammarVocab::GrammarVocab(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
GrammarVocab::~GrammarVocab() = default;

std::shared_ptr<const GrammarVocab> GrammarVocab::build(const Tokenizer& tok) {
    auto v = std::make_unique<Impl>();
    const int32_t V = tok.n_vocab();
    v->n_vocab = V;
    v->eog.assign(static_cast<size_t>(V), 0);
    v->pieces.resize(static_cast<size_t>(V));
    std::vector<int32_t> ids;
    for (int32_t id = 0; id < V; ++id) {
        if (tok.is_eog(id)) {
            v->eog[static_cast<size_t>(id)] = 1;
            v->eog_ids.push_back(id);
        }
        if (tok.is_eog(id) || tok.is_hidden(id)) continue;  // never text the grammar can match
        v->pieces[static_cast<size_t>(id)] = tok.token_to_piece(id);
        if (!v->pieces[static_cast<size_t>(id)].empty()) ids.push_back(id);
    }
    v->build_trie(ids);
    return std::shared_ptr<const GrammarVocab>(new GrammarVocab(std::move(v)));
}

void GrammarVocab::Impl::build_trie(std::vector<int32_t> ids) {
    std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
        const std::string& pa = pieces[static_cast<size_t>(a)];
        const std::string& pb = pieces[static_cast<size_t>(b)];
        return pa != pb ? pa < pb : a < b;
    });
    sorted_ids = ids;
    nodes.clear();
    nodes.push_back({0, 0, 0, 0, 0});  // the root: the empty prefix
    std::vector<uint32_t> path{0};     // node index per depth
    std::string prev;
    for (size_t k = 0; k < ids.size(); ++k) {
        const std::string& s = pieces[static_cast<size_t>(ids[k])];
        size_t common = 0;
        while (common < s.size() && common < prev.size() && s[common] == prev[common]) ++common;
        while (path.size() > common + 1) {
            nodes[path.back()].subtree_end = static_cast<uint32_t>(nodes.size());
            path.pop_back();
        }
        for (size_t d = common; d < s.size(); ++d) {
            TrieNode n{};
            n.byte = static_cast<uint8_t>(s[d]);
            n.depth = static_cast<uint16_t>(std::min<size_t>(d + 1, 65535));
            n.tok_begin = n.tok_end = static_cast<uint32_t>(k);
            path.push_back(static_cast<uint32_t>(nodes.size()));
            nodes.push_back(n);
        }
        TrieNode& end = nodes[path.back()];
        if (end.tok_end == end.tok_begin) end.tok_begin = static_cast<uint32_t>(k);
        end.tok_end = static_cast<uint32_t>(k + 1);
        prev = s;
    }
    while (!path.empty()) {
        nodes[path.back()].subtree_end = static_cast<uint32_t>(nodes.size());
        path.pop_back();
    }
    max_depth = 0;
    for (const TrieNode& n : nodes) max_depth = std::max<size_t>(max_depth, n.depth);
}

namespace {

// The walk both masks share: the trie in pre-order with one state per depth; `step(parent, cur,
// byte)` makes a node's state from its parent's and says whether any stack survives. A dead node
// skips its whole subtree; a live one sets the bits of the tokens whose text ends there.
template <class State, class Step>
void walk_token_trie(const GrammarVocab::Impl& v, const State& start, std::vector<uint64_t>& mask,
                     std::vector<State>& states, Step step) {
    mask.assign((static_cast<size_t>(v.n_vocab) + 63) / 64, 0);
    if (states.size() < v.max_depth + 1) states.resize(v.max_depth + 1);
    states[0] = start;
    const std::vector<TrieNode>& nodes = v.nodes;
    for (uint32_t i = 1; i < nodes.size();) {
        const TrieNode& n = nodes[i];
        if (!step(states[n.depth - 1], states[n.depth], n.byte)) {
            i = n.subtree_end;
            continue;
        }
        for (uint32_t k = n.tok_begin; k < n.tok_end; ++k) {
            const auto id = static_cast<uint32_t>(v.sorted_ids[k]);
            mask[id >> 6] |= uint64_t{1} << (id & 63);
        }
        ++i;
    }
}

// to = from advanced by `bytes` (the lexer's output for one byte: nothing, the byte, or virtual
// symbols), without allocating in the steady state. A partial UTF-8 sequence at the end keeps the
// stacks some completion could match (as compute_mask). False when no stack survives.
bool step_lexed_output(StackPool& pool, const MatchState& from, std::string_view bytes, MatchState& to,
                       std::vector<uint32_t>& scratch) {
    to.partial = from.partial;
    const std::vector<uint32_t>* src = &from.stacks;
    for (char ch : bytes) {
        uint32_t cp = 0;
        const int r = utf8_feed(to.partial, static_cast<uint8_t>(ch), &cp);
        if (r < 0) return false;
        if (r == 0) continue;
        pool.step(*src, cp, scratch);
        if (scratch.empty()) return false;
        to.stacks.swap(scratch);
        src = &to.stacks;
    }
    if (src != &to.stacks) to.stacks = from.stacks;
    if (to.partial.n_remain > 0) {
        pool.filter_partial(to.stacks, to.partial);
        if (to.stacks.empty()) return false;
    }
    return true;
}

}  // namespace

// Sets the bit of every token (not EOG / hidden) whose text the state `start` accepts.
void compute_mask(StackPool& pool, const GrammarVocab::Impl& v, const MatchState& start, std::vector<uint64_t>& mask,
                  std::vector<MatchState>& states) {
    walk_token_trie(v, start, mask, states, [&](const MatchState& parent, MatchState& cur, uint8_t byte) {
        cur.partial = parent.partial;
        uint32_t cp = 0;
        const int r = utf8_feed(cur.partial, byte, &cp);
        if (r < 0) return false;
        if (r == 1) {
            pool.step(parent.stacks, cp, cur.stacks);
        } else {
            cur.stacks = parent.stacks;
            pool.filter_partial(cur.stacks, cur.partial);
        }
        return !cur.stacks.empty();
    });
}

void compute_indented_mask(StackPool& pool, const GrammarVocab::Impl& v, const LexMatchState& start,
                           std::vector<uint64_t>& mask, std::vector<LexMatchState>& states,
                           std::vector<uint32_t>& scratch) {
    std::string out;
    walk_token_trie(v, start, mask, states, [&](const LexMatchState& parent, LexMatchState& cur, uint8_t byte) {
        cur.lex = parent.lex;
        out.clear();
        return indent_feed(cur.lex, byte, out) && step_lexed_output(pool, parent.st, out, cur.st, scratch);
    });
}

// ============================================================================== the stage

namespace {

struct VecHash {
    size_t operator()(const std::vector<uint32_t>& v) const {
        uint64_t h = 0x9E3779B97F4A7C15ull ^ v.size();
        for (uint32_t x : v) h = (h ^ x) * 0x100000001B3ull + (h >> 29);
        return static_cast<size_t>(h);
    }
};

class GrammarStage final : public SamplerStage {
public:
    GrammarStage(std::shared_ptr<const Grammar> g, std::shared_ptr<const GrammarVocab> vocab)
        : grammar_(std::move(g)), vocab_(std::move(vocab)), pool_(&grammar_->impl()),
          lexer_(grammar_->impl().indent_lexer) {
        st_.stacks = pool_.initial();
    }
    const char* name() const override { return "grammar"; }

    void apply(Candidates& c, const SamplerContext&) override {
        started_ = true;
        const GrammarVocab::Impl& v = vocab_->impl();
        const std::vector<uint64_t>& mask = lexer_ ? current_lexed_mask() : current_mask();
        const bool end_ok = lexer_ ? lexed_end_ok()
                                   : st_.partial.n_remain == 0 && !st_.stacks.empty() && st_.stacks.front() == 0;
        const auto V = static_cast<int32_t>(v.n_vocab);
        if (c.by_id && static_cast<int32_t>(c.items.size()) == V) {
            // Every token in id order: compact 64 ids per mask word (whole words of allowed
            // tokens, the common case inside strings, cost one compare while nothing moved yet).
            allowed_ = mask;
            if (end_ok)
                for (int32_t id : v.eog_ids) allowed_[static_cast<size_t>(id) >> 6] |= uint64_t{1} << (id & 63);
            size_t k = 0;
            for (size_t w = 0; w < allowed_.size(); ++w) {
                const size_t base = w * 64;
                const size_t n = std::min<size_t>(64, static_cast<size_t>(V) - base);
                uint64_t bits = allowed_[w];
                if (n < 64) bits &= (uint64_t{1} << n) - 1;
                if (bits == ((n == 64) ? ~uint64_t{0} : (uint64_t{1} << n) - 1)) {
                    if (k != base) std::copy(c.items.begin() + static_cast<std::ptrdiff_t>(base),
                                             c.items.begin() + static_cast<std::ptrdiff_t>(base + n),
                                             c.items.begin() + static_cast<std::ptrdiff_t>(k));
                    k += n;
                    continue;
                }
                while (bits) {
                    const int b = __builtin_ctzll(bits);
                    bits &= bits - 1;
                    c.items[k++] = c.items[base + static_cast<size_t>(b)];
                }
            }
            if (k != c.items.size()) c.by_id = false;
            c.items.resize(k);
        } else {
            c.remove_if([&](const Candidate& x) {
                if (x.id < 0 || x.id >= V) return true;
                const auto id = static_cast<uint32_t>(x.id);
                if (v.eog[id]) return !end_ok;
                return ((mask[id >> 6] >> (id & 63)) & 1) == 0;
            });
        }
        if (c.items.empty()) {
            fail("grammar '%s': no token can continue the text (%s); the grammar needs text this vocabulary "
                 "cannot spell, or it ended and the vocabulary has no end-of-generation token",
                 grammar_->source().c_str(), end_ok ? "the match is complete" : "the match is incomplete");
        }
    }

    void accept(int32_t token, const SamplerContext&) override {
        if (!started_) return;  // prompt tokens (fed before the first sample) are not constrained
        const GrammarVocab::Impl& v = vocab_->impl();
        if (token < 0 || token >= v.n_vocab) fail("grammar stage: token id %d is outside the vocabulary", token);
        if (v.eog[static_cast<size_t>(token)]) return;
        const std::string& piece = v.pieces[static_cast<size_t>(token)];
        if (lexer_) {
            IndentLexerState lex = lex_;
            out_.clear();
            if (piece.empty() || !indent_feed(lex, piece, out_) || !advance_bytes(pool_, st_, out_, scratch_)) {
                std::string shown;
                for (char ch : piece) shown += ch == '\n' ? std::string("\\n") : std::string(1, ch);
                fail("grammar '%s': token %d ('%s') is not allowed at this point of the grammar",
                     grammar_->source().c_str(), token, shown.c_str());
            }
            lex_ = std::move(lex);
            return;
        }
        if (piece.empty() || !advance_bytes(pool_, st_, piece, scratch_))
            fail("grammar '%s': token %d ('%s') is not allowed at this point of the grammar", grammar_->source().c_str(),
                 token, piece.c_str());
    }

    void reset() override {
        st_ = MatchState{};
        st_.stacks = pool_.initial();
        lex_ = IndentLexerState{};
        started_ = false;
    }

private:
    // Per-stack masks are cached by node (a stack is one interned node); a state's mask is the OR
    // of its stacks' masks, cached by the state. A pending partial UTF-8 sequence is walked
    // directly (rare: only after byte tokens).
    const std::vector<uint64_t>& current_mask() {
        if (st_.partial.n_remain == 0) {
            auto it = state_masks_.find(st_.stacks);
            if (it != state_masks_.end()) return it->second;
        } else {
            compute_mask(pool_, vocab_->impl(), st_, tmp_mask_, walk_);
            return tmp_mask_;
        }
        const size_t words = (static_cast<size_t>(vocab_->impl().n_vocab) + 63) / 64;
        std::vector<uint64_t> m(words, 0);
        for (uint32_t n : st_.stacks) {
            if (n == 0) continue;
            auto it = node_masks_.find(n);
            if (it == node_masks_.end()) {
                if (node_masks_.size() >= kMaxCachedMasks) node_masks_.clear();
                MatchState one;
                one.stacks = {n};
                compute_mask(pool_, vocab_->impl(), one, tmp_mask_, walk_);
                it = node_masks_.emplace(n, tmp_mask_).first;
            }
            for (size_t w = 0; w < words; ++w) m[w] |= it->second[w];
        }
        if (state_masks_.size() >= kMaxCachedMasks) state_masks_.clear();
        return state_masks_.emplace(st_.stacks, std::move(m)).first->second;
    }

    // Through the indentation lexer: the same two caches, keyed with the lexer's state too (the
    // lexer is deterministic and independent of the matcher, so a state's mask is still the OR of
    // its stacks' masks). The empty stack counts here: a token the lexer turns into nothing
    // (blank lines, spaces of a pending indentation, a comment line) is accepted even after the
    // grammar's end. Partial UTF-8 is walked directly.
    const std::vector<uint64_t>& current_lexed_mask() {
        const GrammarVocab::Impl& v = vocab_->impl();
        LexMatchState start;
        start.lex = lex_;
        if (lex_.utf8_need > 0 || st_.partial.n_remain > 0) {
            start.st = st_;
            compute_indented_mask(pool_, v, start, tmp_mask_, lex_walk_, scratch_);
            return tmp_mask_;
        }
        LexStateKey key{lex_, st_.stacks};
        auto it = lex_state_masks_.find(key);
        if (it != lex_state_masks_.end()) return it->second;
        const size_t words = (static_cast<size_t>(v.n_vocab) + 63) / 64;
        std::vector<uint64_t> m(words, 0);
        for (uint32_t n : st_.stacks) {
            LexNodeKey nk{lex_, n};
            auto jt = lex_node_masks_.find(nk);
            if (jt == lex_node_masks_.end()) {
                if (lex_node_masks_.size() >= kMaxCachedMasks) lex_node_masks_.clear();
                start.st.stacks = {n};
                compute_indented_mask(pool_, v, start, tmp_mask_, lex_walk_, scratch_);
                jt = lex_node_masks_.emplace(std::move(nk), tmp_mask_).first;
            }
            for (size_t w = 0; w < words; ++w) m[w] |= jt->second[w];
        }
        if (lex_state_masks_.size() >= kMaxCachedMasks) lex_state_masks_.clear();
        return lex_state_masks_.emplace(std::move(key), std::move(m)).first->second;
    }
    bool lexed_end_ok() {
        if (lex_.utf8_need > 0 || st_.partial.n_remain > 0) return false;
        MatchState end = st_;
        return advance_bytes(pool_, end, indent_finish(lex_), scratch_) && !end.stacks.empty() &&
               end.stacks.front() == 0;
    }

    struct LexNodeKey {
        IndentLexerState lex;
        uint32_t node;
        bool operator==(const LexNodeKey& o) const { return node == o.node && lex == o.lex; }
    };
    struct LexStateKey {
        IndentLexerState lex;
        std::vector<uint32_t> stacks;
        bool operator==(const LexStateKey& o) const { return stacks == o.stacks && lex == o.lex; }
    };
    struct LexKeyHash {
        size_t operator()(const LexNodeKey& k) const {
            return static_cast<size_t>(k.lex.hash() ^ (uint64_t{k.node} * 0x9E3779B97F4A7C15ull));
        }
        size_t operator()(const LexStateKey& k) const {
            return static_cast<size_t>(k.lex.hash() ^ (VecHash{}(k.stacks) * 0x9E3779B97F4A7C15ull));
        }
    };

    static constexpr size_t kMaxCachedMasks = 4096;  // x 4 KiB for a 32k vocabulary, per cache
    std::shared_ptr<const Grammar> grammar_;
    std::shared_ptr<const GrammarVocab> vocab_;
    StackPool pool_;
    MatchState st_;
    bool started_ = false;
    std::vector<uint32_t> scratch_;
    std::vector<MatchState> walk_;
    std::vector<uint64_t> tmp_mask_, allowed_;
    std::unordered_map<uint32_t, std::vector<uint64_t>> node_masks_;
    std::unordered_map<std::vector<uint32_t>, std::vector<uint64_t>, VecHash> state_masks_;
    // Grammars behind the indentation lexer.
    bool lexer_;
    IndentLexerState lex_;
    std::string out_;
    std::vector<LexMatchState> lex_walk_;
    std::unordered_map<LexNodeKey, std::vector<uint64_t>, LexKeyHash> lex_node_masks_;
    std::unordered_map<LexStateKey, std::vector<uint64_t>, LexKeyHash> lex_state_masks_;
};

}  // namespace

std::unique_ptr<SamplerStage> make_grammar_stage(std::shared_ptr<const Grammar> g,
                                                 std::shared_ptr<const GrammarVocab> vocab) {
    if (!g) fail("make_grammar_stage: null grammar");
    if (!vocab) fail("make_grammar_stage: null vocabulary (build it with GrammarVocab::build(tokenizer))");
    return std::make_unique<GrammarStage>(std::move(g), std::move(vocab));
}

}  // namespace llmforge
