// Regular expression -> GBNF (see json_schema.h).
//
// Written by hand: PCRE2 and std::regex compile to matchers, not to a grammar we could print, and
// no Debian library turns a regex into a context-free grammar. The parser covers the ECMAScript
// subset that llama.cpp's _visit_pattern handles (and the escapes it passes through unconverted:
// \d \w \s ...); everything else is refused with its offset rather than approximated.
//
// The output follows llama.cpp's conventions so that the same pattern gives the same text:
// consecutive plain characters merge into one literal, a quantified character stays its own
// literal ("ab" "c"?), a {m,n} repetition of a non-literal becomes a sub-rule <name>-N, and `.`
// is the rule `dot`.
#include <map>
#include <string>
#include <vector>

#include "core/error.h"
#include "runtime/json_schema.h"
#include "tokenizer/utf8.h"

namespace llmforge {
namespace detail {

namespace {

constexpr int64_t kMaxRegexRepeat = 10000;  // {m,n} bounds above this are refused (the grammar expands them)
constexpr int kMaxRegexDepth = 200;         // group nesting

using Range = std::pair<uint32_t, uint32_t>;

// A set of code points: `ranges` (as written) or, when negated, everything but them; `extra`
// holds negated parts united with a positive set ([a\D] = [a] | [^0-9]).
struct CharSet {
    std::vector<Range> ranges;
    bool negated = false;
    std::vector<std::vector<Range>> extra;  // each: everything but these ranges
};

struct Node {
    enum class Kind { kChar, kSet, kDot, kGroup, kRepeat } kind = Kind::kChar;
    uint32_t cp = 0;                         // kChar
    CharSet set;                             // kSet
    std::vector<std::vector<Node>> alts;     // kGroup
    std::vector<Node> child;                 // kRepeat: one node
    int64_t min = 0, max = -1;               // kRepeat; max < 0: unbounded
    bool braced = false;                     // kRepeat: written {m,n}
    char op = 0;                             // kRepeat: '?', '*' or '+' when not braced
};

const char* kSupported =
    "supported: literals, escapes \\d \\w \\s \\t \\n \\xHH \\uHHHH, classes [...], ., groups (...) (?:...), "
    "alternation |, ? * + {m} {m,} {m,n}, ^ at the start and $ at the end";

class RegexParser {
public:
    RegexParser(const std::vector<uint32_t>& cps, const std::string& what) : s_(cps), what_(what) {}

    // The whole pattern as alternatives.
    std::vector<std::vector<Node>> parse(bool* anchored_start, bool* anchored_end) {
        size_t end = s_.size();
        if (!s_.empty() && s_[0] == '^') {
            *anchored_start = true;
            i_ = 1;
        }
        if (end > i_ && s_[end - 1] == '$' && !escaped_at(end - 1)) {
            *anchored_end = true;
            --end;
        }
        end_ = end;
        auto alts = parse_alternation(0);
        if (i_ < end_) {
            // Only an unbalanced ')' stops the top level early.
            bad(i_, "unbalanced ')' (no group to close)");
        }
        return alts;
    }

private:
    [[noreturn]] void bad(size_t at, const std::string& msg) {
        fail("%s: %s at offset %zu (%s)", what_.c_str(), msg.c_str(), at, kSupported);
    }

    // s_[at] is preceded by an odd number of backslashes (and so is escaped), ignoring classes:
    // a trailing '$' inside a class is refused later as an unclosed class anyway.
    bool escaped_at(size_t at) const {
        size_t n = 0;
        while (at > n && s_[at - 1 - n] == '\\') ++n;
        return n % 2 == 1;
    }

    bool more() const { return i_ < end_; }
    uint32_t peek() const { return s_[i_]; }

    std::vector<std::vector<Node>> parse_alternation(int depth) {
        if (depth > kMaxRegexDepth) bad(i_, "groups nest too deeply");
        std::vector<std::vector<Node>> alts;
        alts.emplace_back();
        while (more()) {
            const uint32_t c = peek();
            if (c == '|') {
                ++i_;
                alts.emplace_back();
            } else if (c == ')') {
                if (depth == 0) bad(i_, "unbalanced ')' (no group to close)");
                return alts;
            } else {
                parse_term(alts.back(), depth);
            }
        }
        return alts;  // an unclosed group is reported by its '(' (parse_term)
    }

    void parse_term(std::vector<Node>& seq, int depth) {
        const size_t at = i_;
        const uint32_t c = peek();
        Node atom;
        switch (c) {
            case '(': {
                ++i_;
                if (more() && peek() == '?') {
                    const uint32_t n1 = i_ + 1 < end_ ? s_[i_ + 1] : 0;
                    const uint32_t n2 = i_ + 2 < end_ ? s_[i_ + 2] : 0;
                    if (n1 == ':') {
                        i_ += 2;
                    } else if (n1 == '=' || n1 == '!') {
                        bad(at, "lookahead '(?" + std::string(1, static_cast<char>(n1)) + "' is not supported");
                    } else if (n1 == '<' && (n2 == '=' || n2 == '!')) {
                        bad(at, "lookbehind '(?<" + std::string(1, static_cast<char>(n2)) + "' is not supported");
                    } else if (n1 == '<') {
                        // A named group: the name does not change what matches (no backreferences).
                        i_ += 2;
                        while (more() && peek() != '>') ++i_;
                        if (!more()) bad(at, "unclosed group name: expected '>'");
                        ++i_;
                    } else {
                        bad(at, "group modifier '(?' is not supported");
                    }
                }
                atom.kind = Node::Kind::kGroup;
                atom.alts = parse_alternation(depth + 1);
                if (!more() || peek() != ')') bad(at, "unclosed group: expected ')'");
                ++i_;
                break;
            }
            case '[':
                atom.kind = Node::Kind::kSet;
                atom.set = parse_class();
                break;
            case '.':
                ++i_;
                atom.kind = Node::Kind::kDot;
                break;
            case '^':
                bad(at, "anchor '^' is only supported at the start of the pattern");
            case '$':
                bad(at, "anchor '$' is only supported at the end of the pattern");
            case '*':
            case '+':
            case '?':
                bad(at, std::string("nothing to repeat before '") + static_cast<char>(c) + "'");
            case '{':
                if (looks_like_quantifier()) bad(at, "nothing to repeat before '{'");
                ++i_;
                atom.cp = c;
                break;
            case '\\':
                parse_escape(atom, false);
                break;
            default:
                ++i_;
                atom.cp = c;
                break;
        }
        // Quantifier.
        if (more()) {
            const uint32_t q = peek();
            Node rep;
            rep.kind = Node::Kind::kRepeat;
            const size_t qat = i_;
            if (q == '?' || q == '*' || q == '+') {
                ++i_;
                rep.op = static_cast<char>(q);
                rep.min = q == '+' ? 1 : 0;
                rep.max = q == '?' ? 1 : -1;
            } else if (q == '{' && looks_like_quantifier()) {
                parse_braces(rep);
            } else {
                seq.push_back(std::move(atom));
                return;
            }
            if (more() && peek() == '?') ++i_;  // lazy: the same language for a whole-text match
            if (more() && (peek() == '*' || peek() == '+' || peek() == '?' ||
                           (peek() == '{' && looks_like_quantifier()))) {
                bad(i_, "nothing to repeat (quantifier after a quantifier)");
            }
            (void)qat;
            rep.child.push_back(std::move(atom));
            seq.push_back(std::move(rep));
            return;
        }
        seq.push_back(std::move(atom));
    }

    // At '{': is this {digits}, {digits,}, {digits,digits} or {,digits}?
    bool looks_like_quantifier() const {
        size_t j = i_ + 1;
        bool digits = false, comma = false;
        while (j < end_ && s_[j] != '}') {
            if (s_[j] >= '0' && s_[j] <= '9') {
                digits = true;
            } else if (s_[j] == ',' && !comma) {
                comma = true;
            } else {
                return false;
            }
            ++j;
        }
        return j < end_ && digits;
    }

    void parse_braces(Node& rep) {
        const size_t at = i_;
        ++i_;  // '{'
        auto number = [&](int64_t& v) {
            bool any = false;
            v = 0;
            while (more() && peek() >= '0' && peek() <= '9') {
                v = std::min<int64_t>(v * 10 + (peek() - '0'), kMaxRegexRepeat + 1);
                ++i_;
                any = true;
            }
            return any;
        };
        int64_t lo = 0, hi = -1;
        const bool has_lo = number(lo);
        if (peek() == ',') {
            ++i_;
            int64_t v = 0;
            hi = number(v) ? v : -1;
        } else {
            hi = lo;
        }
        ++i_;  // '}' (checked by looks_like_quantifier)
        (void)has_lo;
        if (lo > kMaxRegexRepeat || hi > kMaxRegexRepeat) {
            bad(at, "repetition count above " + std::to_string(kMaxRegexRepeat));
        }
        if (hi >= 0 && hi < lo) bad(at, "repetition {m,n} with n < m");
        rep.braced = true;
        rep.min = lo;
        rep.max = hi;
    }

    uint32_t hex(size_t at, int n) {
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            if (!more()) bad(at, "truncated hex escape");
            const uint32_t c = peek();
            int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (d < 0) bad(at, "bad hex digit in escape");
            v = v * 16 + d;
            ++i_;
        }
        return v;
    }

    static void class_of(uint32_t e, CharSet& out) {
        switch (e) {
            case 'd': case 'D':
                out.ranges = {{'0', '9'}};
                break;
            case 'w': case 'W':
                out.ranges = {{'a', 'z'}, {'A', 'Z'}, {'0', '9'}, {'_', '_'}};
                break;
            default:  // 's', 'S': ECMAScript WhiteSpace and LineTerminator
                out.ranges = {{'\t', '\r'}, {' ', ' '}, {0xA0, 0xA0}, {0x1680, 0x1680}, {0x2000, 0x200A},
                              {0x2028, 0x2029}, {0x202F, 0x202F}, {0x205F, 0x205F}, {0x3000, 0x3000},
                              {0xFEFF, 0xFEFF}};
                break;
        }
        out.negated = e == 'D' || e == 'W' || e == 'S';
    }

    // At '\\'. Sets atom to a character or a class. In a class, \b is backspace and class escapes
    // come back as a set (atom.kind == kSet).
    void parse_escape(Node& atom, bool in_class) {
        const size_t at = i_;
        ++i_;
        if (!more()) bad(at, "pattern ends with a lone '\\'");
        const uint32_t e = peek();
        ++i_;
        atom.kind = Node::Kind::kChar;
        switch (e) {
            case 'd': case 'D': case 'w': case 'W': case 's': case 'S':
                atom.kind = Node::Kind::kSet;
                class_of(e, atom.set);
                return;
            case 't': atom.cp = '\t'; return;
            case 'n': atom.cp = '\n'; return;
            case 'r': atom.cp = '\r'; return;
            case 'f': atom.cp = '\f'; return;
            case 'v': atom.cp = '\v'; return;
            case 'b':
                if (in_class) {
                    atom.cp = '\b';
                    return;
                }
                bad(at, "word boundary '\\b' is not supported");
            case 'B': bad(at, "word boundary '\\B' is not supported");
            case '0':
                if (more() && peek() >= '0' && peek() <= '9') bad(at, "octal escape is not supported");
                atom.cp = 0;
                return;
            case 'c':
                if (more() && ((peek() >= 'a' && peek() <= 'z') || (peek() >= 'A' && peek() <= 'Z'))) {
                    atom.cp = peek() % 32;
                    ++i_;
                    return;
                }
                bad(at, "'\\c' must be followed by a letter");
            case 'x':
                atom.cp = hex(at, 2);
                return;
            case 'u': {
                if (more() && peek() == '{') {
                    ++i_;
                    uint32_t v = 0;
                    int n = 0;
                    while (more() && peek() != '}') {
                        v = v * 16 + hex(at, 1);
                        if (++n > 6 || v > 0x10FFFF) bad(at, "code point above U+10FFFF");
                    }
                    if (!more() || n == 0) bad(at, "expected '\\u{HEX}'");
                    ++i_;
                    atom.cp = v;
                } else {
                    atom.cp = hex(at, 4);
                    // A surrogate pair written as two escapes is one code point.
                    if (atom.cp >= 0xD800 && atom.cp <= 0xDBFF && i_ + 1 < end_ &&
                        s_[i_] == '\\' && s_[i_ + 1] == 'u') {
                        const size_t save = i_;
                        i_ += 2;
                        const uint32_t lo = hex(at, 4);
                        if (lo >= 0xDC00 && lo <= 0xDFFF) {
                            atom.cp = 0x10000 + ((atom.cp - 0xD800) << 10) + (lo - 0xDC00);
                        } else {
                            i_ = save;
                        }
                    }
                }
                if (atom.cp >= 0xD800 && atom.cp <= 0xDFFF) bad(at, "lone surrogate in '\\u' escape");
                return;
            }
            case 'k': bad(at, "backreference '\\k' is not supported");
            case 'p': case 'P': bad(at, "Unicode property escape '\\p' is not supported");
            default:
                if (e >= '1' && e <= '9') bad(at, "backreference '\\" + std::string(1, static_cast<char>(e)) + "' is not supported");
                if ((e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') || e == '_') {
                    bad(at, "unknown escape '\\" + std::string(1, static_cast<char>(e)) + "'");
                }
                atom.cp = e;  // identity escape: \. \( \\ \/ ...
                return;
        }
    }

    CharSet parse_class() {
        const size_t at = i_;
        ++i_;  // '['
        CharSet set;
        if (more() && peek() == '^') {
            set.negated = true;
            ++i_;
        }
        // One class atom: a character, or a class escape (returned through `sub`).
        auto atom = [&](uint32_t& cp, CharSet& sub) -> bool {
            if (peek() == '\\') {
                Node n;
                parse_escape(n, true);
                if (n.kind == Node::Kind::kSet) {
                    sub = n.set;
                    return false;
                }
                cp = n.cp;
                return true;
            }
            cp = peek();
            ++i_;
            return true;
        };
        auto add_set = [&](const CharSet& sub, size_t where) {
            if (!sub.negated) {
                set.ranges.insert(set.ranges.end(), sub.ranges.begin(), sub.ranges.end());
            } else if (set.negated) {
                bad(where, "a negated class escape (\\D \\W \\S) inside a negated class is not supported");
            } else {
                set.extra.push_back(sub.ranges);
            }
        };
        while (true) {
            if (!more()) bad(at, "unclosed character class: expected ']'");
            if (peek() == ']') {
                ++i_;
                break;
            }
            const size_t where = i_;
            uint32_t lo = 0;
            CharSet sub;
            if (!atom(lo, sub)) {
                add_set(sub, where);
                continue;
            }
            if (more() && peek() == '-' && i_ + 1 < end_ && s_[i_ + 1] != ']') {
                ++i_;
                uint32_t hi = 0;
                CharSet sub2;
                const size_t where2 = i_;
                if (!atom(hi, sub2)) {
                    // [a-\d]: '-' is a literal (Annex B).
                    set.ranges.push_back({lo, lo});
                    set.ranges.push_back({'-', '-'});
                    add_set(sub2, where2);
                    continue;
                }
                if (hi < lo) bad(where, "class range out of order");
                set.ranges.push_back({lo, hi});
            } else {
                set.ranges.push_back({lo, lo});
            }
        }
        if (set.ranges.empty() && set.extra.empty() && !set.negated) {
            bad(at, "empty class '[]' matches nothing");
        }
        return set;
    }

    const std::vector<uint32_t>& s_;
    const std::string& what_;
    size_t i_ = 0, end_ = 0;
};

std::string class_text(const std::vector<Range>& ranges, bool negated, const std::string& extra = "") {
    if (negated && ranges.empty() && extra.empty()) return "[\\x00-\\U0010FFFF]";  // [^]: anything
    std::string s = negated ? "[^" : "[";
    for (const auto& [lo, hi] : ranges) {
        s += gbnf_class_char(lo);
        if (hi != lo) s += "-" + gbnf_class_char(hi);
    }
    return s + extra + "]";
}

// JSON's encoding of one code point inside a string (the short escapes where JSON has them).
std::string json_encode(uint32_t cp) {
    switch (cp) {
        case '"': return "\\\"";
        case '\\': return "\\\\";
        case '\b': return "\\b";
        case '\f': return "\\f";
        case '\n': return "\\n";
        case '\r': return "\\r";
        case '\t': return "\\t";
        default: break;
    }
    if (cp < 0x20) return strfmt("\\u%04x", cp);
    std::string s;
    utf8_append(s, cp);
    return s;
}

bool json_special(uint32_t cp) { return cp < 0x20 || cp == '"' || cp == '\\'; }

bool in_ranges(const std::vector<Range>& r, uint32_t cp) {
    for (const auto& [lo, hi] : r)
        if (cp >= lo && cp <= hi) return true;
    return false;
}

class Emitter {
public:
    Emitter(const std::string& name, RegexTarget target, const AddRule& add_rule)
        : name_(name), target_(target), add_rule_(add_rule) {}

    std::string alts(const std::vector<std::vector<Node>>& a) {
        std::string out;
        for (size_t k = 0; k < a.size(); ++k) {
            if (k > 0) out += " | ";
            out += seq(a[k]);
        }
        return out;
    }

private:
    std::string encode(uint32_t cp) const {
        if (target_ == RegexTarget::kJsonString) return json_encode(cp);
        std::string s;
        utf8_append(s, cp);
        return s;
    }

    std::string seq(const std::vector<Node>& nodes) {
        std::vector<std::string> parts;
        std::string lit;
        auto flush = [&] {
            if (!lit.empty()) parts.push_back(gbnf_literal(lit));
            lit.clear();
        };
        for (const Node& n : nodes) {
            if (n.kind == Node::Kind::kChar) {
                lit += encode(n.cp);
            } else {
                flush();
                parts.push_back(atom(n));
            }
        }
        flush();
        if (parts.empty()) return "\"\"";
        std::string out;
        for (size_t k = 0; k < parts.size(); ++k) out += (k ? " " : "") + parts[k];
        return out;
    }

    // A set as GBNF alternatives (one class in the common case).
    std::vector<std::string> set_alts(const std::vector<Range>& ranges, bool negated) {
        if (target_ == RegexTarget::kText) return {class_text(ranges, negated)};
        std::vector<std::string> out;
        if (!negated) {
            bool special = false;
            for (const auto& [lo, hi] : ranges)
                if (lo < 0x20 || (lo <= '"' && hi >= '"') || (lo <= '\\' && hi >= '\\')) special = true;
            if (!special) return {class_text(ranges, false)};
            // The plain members as a class (the special ones cut out), then each special member in
            // its JSON encoding.
            std::vector<Range> plain;
            for (auto [lo, hi] : ranges) {
                uint32_t a = std::max<uint32_t>(lo, 0x20);
                while (a <= hi) {
                    uint32_t b = hi;
                    if (a <= '"' && b >= '"') b = a == '"' ? '"' : '"' - 1;
                    if (a <= '\\' && b >= '\\') b = a == '\\' ? '\\' : '\\' - 1;
                    if (!json_special(a)) plain.push_back({a, b});
                    if (b == 0xFFFFFFFFu) break;
                    a = b + 1;
                }
            }
            if (!plain.empty()) out.push_back(class_text(plain, false));
            for (uint32_t cp = 0; cp <= '\\'; ++cp)
                if (json_special(cp) && in_ranges(ranges, cp)) out.push_back(gbnf_literal(json_encode(cp)));
            return out;
        }
        // Everything but `ranges`: plain characters as a negated class, then the escapes of the
        // special characters not excluded (only the short ones for control characters).
        out.push_back(class_text(ranges, true, "\"\\\\\\x00-\\x1F"));
        for (uint32_t cp : {static_cast<uint32_t>('"'), static_cast<uint32_t>('\\'), static_cast<uint32_t>('\b'),
                            static_cast<uint32_t>('\f'), static_cast<uint32_t>('\n'), static_cast<uint32_t>('\r'),
                            static_cast<uint32_t>('\t')}) {
            if (!in_ranges(ranges, cp)) out.push_back(gbnf_literal(json_encode(cp)));
        }
        return out;
    }

    static std::string group(const std::vector<std::string>& a) {
        if (a.size() == 1) return a[0];
        std::string out = "(";
        for (size_t k = 0; k < a.size(); ++k) out += (k ? " | " : "") + a[k];
        return out + ")";
    }

    std::string atom(const Node& n) {
        switch (n.kind) {
            case Node::Kind::kChar:
                return gbnf_literal(encode(n.cp));
            case Node::Kind::kSet: {
                std::vector<std::string> a = set_alts(n.set.ranges, n.set.negated);
                if (n.set.ranges.empty() && !n.set.negated) a.clear();  // [\D] alone
                for (const auto& neg : n.set.extra) {
                    auto more = set_alts(neg, true);
                    a.insert(a.end(), more.begin(), more.end());
                }
                return group(a);
            }
            case Node::Kind::kDot: {
                // ECMAScript: any code point but the line terminators \n \r U+2028 U+2029.
                const std::string body = target_ == RegexTarget::kText
                                             ? "[^\\x0A\\x0D\\u2028\\u2029]"
                                             : "[^\"\\\\\\x00-\\x1F\\u2028\\u2029] | \"\\\\\" [\"\\\\/bft]";
                return add_rule_("dot", body);
            }
            case Node::Kind::kGroup:
                return "(" + alts(n.alts) + ")";
            case Node::Kind::kRepeat: {
                const Node& c = n.child[0];
                if (!n.braced) return atom(c) + n.op;
                if (c.kind == Node::Kind::kChar) return gbnf_repetition(atom(c), n.min, n.max);
                const std::string body = atom(c);
                std::string& id = sub_ids_[body];
                if (id.empty()) id = add_rule_(name_ + "-" + std::to_string(sub_ids_.size()), body);
                return gbnf_repetition(id, n.min, n.max);
            }
        }
        return "";
    }

    const std::string& name_;
    RegexTarget target_;
    const AddRule& add_rule_;
    std::map<std::string, std::string> sub_ids_;
};

}  // namespace

std::vector<uint32_t> decode_utf8(std::string_view s, const std::string& what) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < s.size();) {
        const Utf8Char c = utf8_decode(s.substr(i));
        if (c.status != Utf8Status::kOk) fail("%s: invalid UTF-8 at byte %zu (expected UTF-8 text)", what.c_str(), i);
        out.push_back(c.cp);
        i += c.len;
    }
    return out;
}

std::string gbnf_class_char(uint32_t cp) {
    switch (cp) {
        case '\\': return "\\\\";
        case ']': return "\\]";
        case '[': return "\\[";
        case '"': return "\\\"";
        case '-': return "\\x2D";
        case '^': return "\\x5E";
        case '\n': return "\\n";
        case '\r': return "\\r";
        case '\t': return "\\t";
        default: break;
    }
    if (cp < 0x20 || cp == 0x7F) return strfmt("\\x%02X", cp);
    std::string s;
    utf8_append(s, cp);
    return s;
}

std::string gbnf_rule_name(std::string_view name) {
    std::string out;
    bool in_bad = false;
    for (char c : name) {
        const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-';
        if (ok) {
            out += c;
            in_bad = false;
        } else if (!in_bad) {
            out += '-';
            in_bad = true;
        }
    }
    return out;
}

std::string add_gbnf_rule(std::map<std::string, std::string>& rules, const std::string& name,
                          const std::string& body) {
    const std::string key = gbnf_rule_name(name);
    for (int i = -1;; ++i) {
        const std::string k = i < 0 ? key : key + std::to_string(i);
        auto it = rules.find(k);
        if (it == rules.end() || it->second == body) {
            rules[k] = body;
            return k;
        }
    }
}

std::string gbnf_literal(std::string_view s) {
    std::string out = "\"";
    for (char ch : s) {
        const auto c = static_cast<unsigned char>(ch);
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20 || c == 0x7F) {
                    out += strfmt("\\x%02X", c);
                } else {
                    out += ch;
                }
        }
    }
    return out + "\"";
}

std::string gbnf_repetition(const std::string& item, int64_t min, int64_t max, const std::string& sep) {
    const bool bounded = max >= 0;
    if (min == 0 && max == 1) return item + "?";
    if (sep.empty()) {
        if (min == 1 && !bounded) return item + "+";
        if (min == 0 && !bounded) return item + "*";
        return item + "{" + std::to_string(min) + "," + (bounded ? std::to_string(max) : "") + "}";
    }
    std::string out = item + " " +
                      gbnf_repetition("(" + sep + " " + item + ")", min == 0 ? 0 : min - 1, bounded ? max - 1 : -1);
    return min == 0 ? "(" + out + ")?" : out;
}

std::string regex_gbnf_expr(std::string_view regex, const std::string& name, RegexTarget target,
                            const AddRule& add_rule, const std::string& what, bool* anchored_start,
                            bool* anchored_end) {
    const std::vector<uint32_t> cps = decode_utf8(regex, what);
    bool start = false, end = false;
    RegexParser parser(cps, what);
    const auto alts = parser.parse(&start, &end);
    if (anchored_start) *anchored_start = start;
    if (anchored_end) *anchored_end = end;
    Emitter em(name, target, add_rule);
    return em.alts(alts);
}

}  // namespace detail

std::string regex_to_gbnf(std::string_view regex, std::string_view source) {
    std::map<std::string, std::string> rules;
    const detail::AddRule add = [&rules](const std::string& name, const std::string& body) {
        return detail::add_gbnf_rule(rules, name, body);
    };
    const std::string what = source == "regex" ? std::string("regex") : "regex '" + std::string(source) + "'";
    rules["root"] = detail::regex_gbnf_expr(regex, "root", detail::RegexTarget::kText, add, what);
    std::string out;
    for (const auto& [name, body] : rules) out += name + " ::= " + body + "\n";
    return out;
}

}  // namespace llmforge
