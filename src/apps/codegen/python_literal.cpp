#include "apps/codegen/python_literal.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "core/error.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/utf8.h"

namespace llmforge::codegen {

namespace {

constexpr int kMaxDepth = 200;  // nesting bound: bad input never overflows the stack

struct Token {
    enum Kind { kEnd, kName, kInt, kFloat, kStr, kOp } kind = kEnd;
    std::string text;  // name, operator, or decoded string
    int64_t int_value = 0;
    double float_value = 0;
    size_t pos = 0;
};

bool is_name_start(unsigned char c) {
    return std::isalpha(c) || c == '_' || c >= 0x80;
}
bool is_name_char(unsigned char c) {
    return std::isalnum(c) || c == '_' || c >= 0x80;
}

class Lexer {
  public:
    explicit Lexer(std::string_view s) : s_(s) {}

    Token next() {
        skip_blank();
        Token t;
        t.pos = i_;
        if (i_ >= s_.size()) return t;
        const unsigned char c = s_[i_];
        // String prefixes: r, b, u, f and their pairs, followed by a quote.
        if (is_name_start(c)) {
            size_t j = i_;
            while (j < s_.size() && is_name_char(s_[j])) ++j;
            std::string_view word = s_.substr(i_, j - i_);
            if (j < s_.size() && (s_[j] == '\'' || s_[j] == '"') && word.size() <= 2 && is_prefix(word)) {
                return string_token(word);
            }
            t.kind = Token::kName;
            t.text = std::string(word);
            i_ = j;
            return t;
        }
        if (c == '\'' || c == '"') return string_token("");
        if (std::isdigit(c) ||
            (c == '.' && i_ + 1 < s_.size() && std::isdigit(static_cast<unsigned char>(s_[i_ + 1])))) {
            return number_token();
        }
        static const char* const kOps[] = {"...", "**", "//", "==", "!=", "<=", ">=", "->", "<<", ">>", ":=", "(",
                                           ")",   "[",  "]",  "{",  "}",  ",",  ":",  ".",  "+",  "-",  "*",  "/",
                                           "%",   "<",  ">",  "=",  "~",  "&",  "|",  "^",  "@",  ";"};
        for (const char* op : kOps) {
            std::string_view o(op);
            if (s_.substr(i_, o.size()) == o) {
                t.kind = Token::kOp;
                t.text = std::string(o);
                i_ += o.size();
                return t;
            }
        }
        fail("python: unexpected character '%c' at offset %zu (expected an expression)", c, i_);
    }

    size_t pos() const { return i_; }

  private:
    static bool is_prefix(std::string_view w) {
        for (char ch : w) {
            char l = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (l != 'r' && l != 'b' && l != 'u' && l != 'f') return false;
        }
        return true;
    }

    void skip_blank() {
        while (i_ < s_.size()) {
            const char c = s_[i_];
            if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
                ++i_;
            } else if (c == '\\' && i_ + 1 < s_.size() && (s_[i_ + 1] == '\n' || s_[i_ + 1] == '\r')) {
                i_ += 2;
            } else if (c == '#') {
                while (i_ < s_.size() && s_[i_] != '\n') ++i_;
            } else {
                break;
            }
        }
    }

    Token number_token() {
        Token t;
        t.pos = i_;
        size_t j = i_;
        std::string digits;
        auto take_digits = [&](auto pred) {
            while (j < s_.size() && (pred(static_cast<unsigned char>(s_[j])) || s_[j] == '_')) {
                if (s_[j] != '_') digits += s_[j];
                ++j;
            }
        };
        if (s_[j] == '0' && j + 1 < s_.size() && std::strchr("xXoObB", s_[j + 1]) != nullptr && s_[j + 1] != '\0') {
            const char base_c = static_cast<char>(std::tolower(static_cast<unsigned char>(s_[j + 1])));
            const int base = base_c == 'x' ? 16 : base_c == 'o' ? 8 : 2;
            j += 2;
            take_digits([](unsigned char ch) { return std::isxdigit(ch) != 0; });
            int64_t v = 0;
            auto r = std::from_chars(digits.data(), digits.data() + digits.size(), v, base);
            if (digits.empty() || r.ec != std::errc() || r.ptr != digits.data() + digits.size()) {
                fail("python: bad or out-of-range integer literal at offset %zu (expected a base-%d int64)", i_, base);
            }
            t.kind = Token::kInt;
            t.int_value = v;
            i_ = j;
            return t;
        }
        bool is_float = false;
        take_digits([](unsigned char ch) { return std::isdigit(ch) != 0; });
        if (j < s_.size() && s_[j] == '.') {
            is_float = true;
            digits += '.';
            ++j;
            take_digits([](unsigned char ch) { return std::isdigit(ch) != 0; });
        }
        if (j < s_.size() && (s_[j] == 'e' || s_[j] == 'E')) {
            size_t k = j + 1;
            if (k < s_.size() && (s_[k] == '+' || s_[k] == '-')) ++k;
            if (k < s_.size() && std::isdigit(static_cast<unsigned char>(s_[k]))) {
                is_float = true;
                digits += 'e';
                digits.append(s_.substr(j + 1, k - j - 1));
                j = k;
                take_digits([](unsigned char ch) { return std::isdigit(ch) != 0; });
            }
        }
        if (j < s_.size() && (s_[j] == 'j' || s_[j] == 'J')) {
            fail("python: complex literal at offset %zu is not supported (expected int or float)", i_);
        }
        if (j < s_.size() && is_name_char(static_cast<unsigned char>(s_[j]))) {
            fail("python: bad number literal at offset %zu (a name follows the digits)", i_);
        }
        if (is_float) {
            t.kind = Token::kFloat;
            t.float_value = std::strtod(digits.c_str(), nullptr);
        } else {
            t.kind = Token::kInt;
            auto r = std::from_chars(digits.data(), digits.data() + digits.size(), t.int_value);
            if (r.ec != std::errc()) {
                fail("python: integer literal '%s' at offset %zu is outside int64 (not translatable)", digits.c_str(),
                     i_);
            }
        }
        i_ = j;
        return t;
    }

    Token string_token(std::string_view prefix) {
        Token t;
        t.pos = i_;
        bool raw = false;
        for (char ch : prefix) {
            const char l = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
            if (l == 'r') raw = true;
            if (l == 'b') fail("python: bytes literal at offset %zu is not supported (expected str)", i_);
            if (l == 'f') fail("python: f-string at offset %zu is not supported (expected a plain str literal)", i_);
        }
        i_ += prefix.size();
        const char q = s_[i_];
        const bool triple = s_.substr(i_, 3) == std::string(3, q);
        i_ += triple ? 3 : 1;
        std::string out;
        for (;;) {
            if (i_ >= s_.size()) fail("python: unterminated string literal starting at offset %zu", t.pos);
            const char c = s_[i_];
            if (triple ? s_.substr(i_, 3) == std::string(3, q) : c == q) {
                i_ += triple ? 3 : 1;
                break;
            }
            if (!triple && c == '\n') fail("python: newline in a one-line string literal at offset %zu", i_);
            if (c != '\\') {
                out += c;
                ++i_;
                continue;
            }
            if (i_ + 1 >= s_.size()) fail("python: unterminated string literal starting at offset %zu", t.pos);
            const char e = s_[i_ + 1];
            if (raw) {  // a raw string keeps the backslash (it still cannot end the string)
                out += c;
                out += e;
                i_ += 2;
                continue;
            }
            i_ += 2;
            if (jinja::py::append_simple_escape(e, out)) continue;
            switch (e) {
                case 'x':  // \xhh is the code point U+00hh, as in Python 3 str
                    utf8_append(out, hex_escape(2));
                    break;
                case 'u':
                    utf8_append(out, hex_escape(4));
                    break;
                case 'U':
                    utf8_append(out, hex_escape(8));
                    break;
                case 'N':
                    fail("python: \\N{...} escape at offset %zu is not supported", i_ - 2);
                default:
                    if (e >= '0' && e <= '7') {
                        uint32_t v = static_cast<uint32_t>(e - '0');
                        for (int k = 0; k < 2 && i_ < s_.size() && s_[i_] >= '0' && s_[i_] <= '7'; ++k) {
                            v = v * 8 + static_cast<uint32_t>(s_[i_++] - '0');
                        }
                        utf8_append(out, v);
                    } else {  // unknown escapes keep their backslash in Python
                        out += '\\';
                        out += e;
                    }
            }
        }
        t.kind = Token::kStr;
        t.text = std::move(out);
        return t;
    }

    uint32_t hex_escape(int n) {
        if (i_ + static_cast<size_t>(n) > s_.size()) fail("python: truncated \\x/\\u escape at offset %zu", i_);
        uint32_t v = 0;
        for (int k = 0; k < n; ++k) {
            const char h = s_[i_ + static_cast<size_t>(k)];
            if (!std::isxdigit(static_cast<unsigned char>(h))) {
                fail("python: bad hex digit '%c' in an escape at offset %zu", h, i_);
            }
            v = v * 16 + static_cast<uint32_t>(
                             std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : std::tolower(h) - 'a' + 10);
        }
        if (v > 0x10FFFF) fail("python: escape at offset %zu is beyond U+10FFFF", i_);
        i_ += static_cast<size_t>(n);
        return v;
    }

    std::string_view s_;
    size_t i_ = 0;
};

class Parser {
  public:
    explicit Parser(std::string_view s) : lex_(s) { advance(); }

    PyExpr parse_all() {
        PyExpr e = parse_expr_or_tuple();
        if (tok_.kind != Token::kEnd) unexpected("the end of the expression");
        return e;
    }

    // For def headers and asserts.
    const Token& tok() const { return tok_; }
    void advance() { tok_ = lex_.next(); }
    bool is_op(const char* op) const { return tok_.kind == Token::kOp && tok_.text == op; }
    bool is_name(const char* n) const { return tok_.kind == Token::kName && tok_.text == n; }
    void expect_op(const char* op) {
        if (!is_op(op)) unexpected((std::string("'") + op + "'").c_str());
        advance();
    }
    [[noreturn]] void unexpected(const char* expected) const {
        std::string found = tok_.kind == Token::kEnd ? "the end" : "'" + tok_.text + "'";
        if (tok_.kind == Token::kInt || tok_.kind == Token::kFloat) found = "a number";
        if (tok_.kind == Token::kStr) found = "a string";
        fail("python: expected %s at offset %zu, found %s", expected, tok_.pos, found.c_str());
    }

    // expr ("," expr)* [","] — a bare tuple when there is a comma.
    PyExpr parse_expr_or_tuple() {
        PyExpr first = parse_expr();
        if (!is_op(",")) return first;
        PyExpr t;
        t.kind = PyExpr::kTuple;
        t.items.push_back(std::move(first));
        while (is_op(",")) {
            advance();
            if (at_expr_end()) break;
            t.items.push_back(parse_expr());
        }
        return t;
    }

    PyExpr parse_expr() {
        Depth d(this);
        if (is_name("lambda")) fail("python: lambda at offset %zu is not supported", tok_.pos);
        PyExpr e = parse_or();
        if (is_name("if")) fail("python: conditional expression at offset %zu is not supported", tok_.pos);
        return e;
    }

  private:
    struct Depth {
        explicit Depth(Parser* p) : p_(p) {
            if (++p_->depth_ > kMaxDepth) fail("python: expression nested deeper than %d levels", kMaxDepth);
        }
        ~Depth() { --p_->depth_; }
        Parser* p_;
    };

    bool at_expr_end() const {
        return tok_.kind == Token::kEnd || is_op(")") || is_op("]") || is_op("}") || is_op("=") || is_op(":");
    }

    PyExpr parse_or() {
        return parse_bool_op("or", [this] { return parse_and(); });
    }
    PyExpr parse_and() {
        return parse_bool_op("and", [this] { return parse_not(); });
    }

    template <class F>
    PyExpr parse_bool_op(const char* word, F sub) {
        PyExpr first = sub();
        if (!is_name(word)) return first;
        PyExpr e;
        e.kind = PyExpr::kBoolOp;
        e.op = word;
        e.items.push_back(std::move(first));
        while (is_name(word)) {
            advance();
            e.items.push_back(sub());
        }
        return e;
    }

    PyExpr parse_not() {
        if (is_name("not")) {
            Depth d(this);
            advance();
            PyExpr e;
            e.kind = PyExpr::kUnary;
            e.op = "not";
            e.items.push_back(parse_not());
            return e;
        }
        return parse_compare();
    }

    PyExpr parse_compare() {
        PyExpr first = parse_arith();
        PyExpr e;
        e.kind = PyExpr::kCompare;
        e.items.push_back(std::move(first));
        for (;;) {
            std::string op;
            if (tok_.kind == Token::kOp && (tok_.text == "==" || tok_.text == "!=" || tok_.text == "<" ||
                                            tok_.text == "<=" || tok_.text == ">" || tok_.text == ">=")) {
                op = tok_.text;
                advance();
            } else if (is_name("is")) {
                advance();
                op = "is";
                if (is_name("not")) {
                    advance();
                    op = "is not";
                }
            } else if (is_name("in")) {
                advance();
                op = "in";
            } else if (is_name("not")) {
                advance();
                if (!is_name("in")) unexpected("'in' after 'not'");
                advance();
                op = "not in";
            } else {
                break;
            }
            e.ops.push_back(op);
            e.items.push_back(parse_arith());
        }
        if (e.ops.empty()) return std::move(e.items[0]);
        return e;
    }

    PyExpr binary(std::string op, PyExpr a, PyExpr b) {
        PyExpr e;
        e.kind = PyExpr::kBinary;
        e.op = std::move(op);
        e.items.push_back(std::move(a));
        e.items.push_back(std::move(b));
        return e;
    }

    PyExpr parse_arith() {
        PyExpr e = parse_term();
        while (is_op("+") || is_op("-")) {
            std::string op = tok_.text;
            advance();
            e = binary(op, std::move(e), parse_term());
        }
        return e;
    }

    PyExpr parse_term() {
        PyExpr e = parse_unary();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            std::string op = tok_.text;
            advance();
            e = binary(op, std::move(e), parse_unary());
        }
        return e;
    }

    PyExpr parse_unary() {
        if (is_op("-") || is_op("+") || is_op("~")) {
            Depth d(this);
            PyExpr e;
            e.kind = PyExpr::kUnary;
            e.op = tok_.text;
            advance();
            e.items.push_back(parse_unary());
            return e;
        }
        return parse_power();
    }

    PyExpr parse_power() {
        PyExpr base = parse_postfix();
        if (is_op("**")) {
            advance();
            return binary("**", std::move(base), parse_unary());
        }
        return base;
    }

    PyExpr parse_postfix() {
        PyExpr e = parse_atom();
        for (;;) {
            if (is_op("(")) {
                Depth d(this);
                advance();
                PyExpr call;
                call.kind = PyExpr::kCall;
                call.items.push_back(std::move(e));
                while (!is_op(")")) {
                    if (is_op("*") || is_op("**"))
                        fail("python: star argument at offset %zu is not supported", tok_.pos);
                    PyExpr arg = parse_expr();
                    if (is_op("=")) fail("python: keyword argument at offset %zu is not supported", tok_.pos);
                    if (is_name("for")) fail("python: generator expression at offset %zu is not supported", tok_.pos);
                    call.items.push_back(std::move(arg));
                    if (!is_op(",")) break;
                    advance();
                }
                expect_op(")");
                e = std::move(call);
            } else if (is_op("[")) {
                Depth d(this);
                advance();
                PyExpr sub;
                sub.kind = PyExpr::kSubscript;
                sub.items.push_back(std::move(e));
                if (is_op(":")) fail("python: slice at offset %zu is not supported", tok_.pos);
                sub.items.push_back(parse_expr_or_tuple());
                if (is_op(":")) fail("python: slice at offset %zu is not supported", tok_.pos);
                expect_op("]");
                e = std::move(sub);
            } else if (is_op(".")) {
                advance();
                if (tok_.kind != Token::kName) unexpected("an attribute name");
                PyExpr a;
                a.kind = PyExpr::kAttribute;
                a.str = tok_.text;
                a.items.push_back(std::move(e));
                advance();
                e = std::move(a);
            } else {
                return e;
            }
        }
    }

    // Items up to `close`, with an optional trailing comma.
    void parse_items(const char* close, std::vector<PyExpr>& out, bool* had_comma = nullptr) {
        while (!is_op(close)) {
            out.push_back(parse_expr());
            if (is_name("for")) fail("python: comprehension at offset %zu is not supported", tok_.pos);
            if (!is_op(",")) break;
            if (had_comma) *had_comma = true;
            advance();
        }
        expect_op(close);
    }

    PyExpr parse_atom() {
        Depth d(this);
        PyExpr e;
        switch (tok_.kind) {
            case Token::kInt:
                e.kind = PyExpr::kInt;
                e.int_value = tok_.int_value;
                advance();
                return e;
            case Token::kFloat:
                e.kind = PyExpr::kFloat;
                e.float_value = tok_.float_value;
                advance();
                return e;
            case Token::kStr:
                e.kind = PyExpr::kStr;
                while (tok_.kind == Token::kStr) {  // "a" "b" is "ab"
                    e.str += tok_.text;
                    advance();
                }
                return e;
            case Token::kName:
                if (tok_.text == "True" || tok_.text == "False") {
                    e.kind = PyExpr::kBool;
                    e.bool_value = tok_.text == "True";
                } else if (tok_.text == "None") {
                    e.kind = PyExpr::kNone;
                } else {
                    static const char* const kKeywords[] = {"and",    "or",     "not",    "in",     "is",
                                                            "if",     "else",   "for",    "lambda", "def",
                                                            "return", "assert", "import", "from"};
                    for (const char* k : kKeywords) {
                        if (tok_.text == k) unexpected("an expression");
                    }
                    e.kind = PyExpr::kName;
                    e.str = tok_.text;
                }
                advance();
                return e;
            case Token::kOp:
                if (tok_.text == "...") {
                    advance();
                    e.kind = PyExpr::kName;
                    e.str = "...";
                    return e;
                }
                if (tok_.text == "(") {
                    advance();
                    if (is_op(")")) {
                        advance();
                        e.kind = PyExpr::kTuple;
                        return e;
                    }
                    PyExpr inner = parse_expr();
                    if (is_name("for")) fail("python: generator expression at offset %zu is not supported", tok_.pos);
                    if (is_op(")")) {
                        advance();
                        return inner;  // parenthesised expression
                    }
                    e.kind = PyExpr::kTuple;
                    e.items.push_back(std::move(inner));
                    expect_op(",");
                    parse_items(")", e.items);
                    return e;
                }
                if (tok_.text == "[") {
                    advance();
                    e.kind = PyExpr::kList;
                    parse_items("]", e.items);
                    return e;
                }
                if (tok_.text == "{") {
                    advance();
                    if (is_op("}")) {
                        advance();
                        e.kind = PyExpr::kDict;
                        return e;
                    }
                    PyExpr first = parse_expr();
                    if (is_op(":")) {
                        e.kind = PyExpr::kDict;
                        advance();
                        e.items.push_back(std::move(first));
                        e.values.push_back(parse_expr());
                        while (is_op(",")) {
                            advance();
                            if (is_op("}")) break;
                            e.items.push_back(parse_expr());
                            expect_op(":");
                            e.values.push_back(parse_expr());
                        }
                        if (is_name("for")) fail("python: comprehension at offset %zu is not supported", tok_.pos);
                        expect_op("}");
                        return e;
                    }
                    e.kind = PyExpr::kSet;
                    e.items.push_back(std::move(first));
                    if (is_op(",")) {
                        advance();
                        parse_items("}", e.items);
                    } else {
                        if (is_name("for")) fail("python: comprehension at offset %zu is not supported", tok_.pos);
                        expect_op("}");
                    }
                    return e;
                }
                break;
            default:
                break;
        }
        unexpected("an expression");
    }

    Lexer lex_;
    Token tok_;
    int depth_ = 0;
};

void repr_into(const PyExpr& e, std::string& out) {
    auto join = [&](const std::vector<PyExpr>& xs, const char* sep) {
        for (size_t i = 0; i < xs.size(); ++i) {
            if (i) out += sep;
            repr_into(xs[i], out);
        }
    };
    switch (e.kind) {
        case PyExpr::kInt:
            out += std::to_string(e.int_value);
            break;
        case PyExpr::kFloat:
            out += jinja::py::float_repr(e.float_value);
            break;
        case PyExpr::kStr:
            out += jinja::py::str_repr(e.str);
            break;
        case PyExpr::kBool:
            out += e.bool_value ? "True" : "False";
            break;
        case PyExpr::kNone:
            out += "None";
            break;
        case PyExpr::kList:
            out += '[';
            join(e.items, ", ");
            out += ']';
            break;
        case PyExpr::kTuple:
            out += '(';
            join(e.items, ", ");
            if (e.items.size() == 1) out += ',';
            out += ')';
            break;
        case PyExpr::kSet:
            out += '{';
            join(e.items, ", ");
            out += '}';
            break;
        case PyExpr::kDict:
            out += '{';
            for (size_t i = 0; i < e.items.size(); ++i) {
                if (i) out += ", ";
                repr_into(e.items[i], out);
                out += ": ";
                repr_into(e.values[i], out);
            }
            out += '}';
            break;
        case PyExpr::kName:
            out += e.str;
            break;
        case PyExpr::kAttribute:
            repr_into(e.items[0], out);
            out += "." + e.str;
            break;
        case PyExpr::kCall:
            repr_into(e.items[0], out);
            out += '(';
            for (size_t i = 1; i < e.items.size(); ++i) {
                if (i > 1) out += ", ";
                repr_into(e.items[i], out);
            }
            out += ')';
            break;
        case PyExpr::kSubscript:
            repr_into(e.items[0], out);
            out += '[';
            repr_into(e.items[1], out);
            out += ']';
            break;
        case PyExpr::kUnary:
            if (e.op == "-" && e.items[0].is_number()) {  // the repr of the negative value: -5, -0.5
                out += '-';
                repr_into(e.items[0], out);
                break;
            }
            out += e.op == "not" ? "not " : e.op;
            out += '(';
            repr_into(e.items[0], out);
            out += ')';
            break;
        case PyExpr::kBinary:
            out += '(';
            repr_into(e.items[0], out);
            out += " " + e.op + " ";
            repr_into(e.items[1], out);
            out += ')';
            break;
        case PyExpr::kBoolOp:
            join(e.items, e.op == "and" ? " and " : " or ");
            break;
        case PyExpr::kCompare:
            repr_into(e.items[0], out);
            for (size_t i = 0; i < e.ops.size(); ++i) {
                out += " " + e.ops[i] + " ";
                repr_into(e.items[i + 1], out);
            }
            break;
    }
}

}  // namespace

PyExpr parse_python_expr(std::string_view src) {
    Parser p(src);
    return p.parse_all();
}

std::string python_float_repr(double v) {
    return jinja::py::float_repr(v);
}

std::string python_repr(const PyExpr& expr) {
    std::string out;
    repr_into(expr, out);
    return out;
}

std::vector<PyLogicalLine> python_logical_lines(std::string_view src) {
    std::vector<PyLogicalLine> lines;
    size_t i = 0;
    int line_no = 1;
    while (i < src.size()) {
        // Indentation of this physical line.
        int indent = 0;
        const int start_line = line_no;
        while (i < src.size() && (src[i] == ' ' || src[i] == '\t' || src[i] == '\f')) {
            indent = src[i] == '\t' ? (indent / 8 + 1) * 8 : src[i] == ' ' ? indent + 1 : 0;
            ++i;
        }
        std::string text;
        int depth = 0;
        bool done = false;
        while (i < src.size() && !done) {
            const char c = src[i];
            if (c == '#') {
                while (i < src.size() && src[i] != '\n') text += src[i++];
            } else if (c == '\'' || c == '"') {
                const bool triple = src.substr(i, 3) == std::string(3, c);
                const size_t qn = triple ? 3 : 1;
                text.append(src.substr(i, qn));
                i += qn;
                while (i < src.size()) {
                    if (src[i] == '\\' && i + 1 < src.size()) {
                        if (src[i + 1] == '\n') ++line_no;
                        text.append(src.substr(i, 2));
                        i += 2;
                        continue;
                    }
                    if (triple ? src.substr(i, 3) == std::string(3, c) : src[i] == c) {
                        text.append(src.substr(i, qn));
                        i += qn;
                        break;
                    }
                    if (src[i] == '\n') {
                        ++line_no;
                        if (!triple) break;  // unterminated: the parser will say so
                    }
                    text += src[i++];
                }
            } else if (c == '(' || c == '[' || c == '{') {
                ++depth;
                text += src[i++];
            } else if (c == ')' || c == ']' || c == '}') {
                if (depth > 0) --depth;
                text += src[i++];
            } else if (c == '\\' && i + 1 < src.size() && src[i + 1] == '\n') {
                text += ' ';
                i += 2;
                ++line_no;
            } else if (c == '\n') {
                ++i;
                ++line_no;
                if (depth == 0) {
                    done = true;
                } else {
                    text += '\n';
                }
            } else {
                text += src[i++];
            }
        }
        // Blank or comment-only lines carry no statement.
        size_t k = 0;
        while (k < text.size() && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r')) ++k;
        if (k < text.size() && text[k] != '#') {
            while (!text.empty() && (text.back() == ' ' || text.back() == '\r' || text.back() == '\t')) text.pop_back();
            lines.push_back({indent, start_line, std::move(text)});
        }
    }
    return lines;
}

namespace {

bool starts_with_word(std::string_view s, std::string_view w) {
    return s.substr(0, w.size()) == w &&
           (s.size() == w.size() || !is_name_char(static_cast<unsigned char>(s[w.size()])));
}

PyFunctionDef parse_def_header(const PyLogicalLine& line) {
    PyFunctionDef def;
    def.line_no = line.line_no;
    Parser p(std::string_view(line.text).substr(3));  // after "def"
    if (p.tok().kind != Token::kName) p.unexpected("a function name after 'def'");
    def.name = p.tok().text;
    p.advance();
    p.expect_op("(");
    while (!p.is_op(")")) {
        if (p.is_op("*") || p.is_op("**") || p.is_op("/")) {
            def.has_star_params = true;
            p.advance();
            if (p.is_op(",") || p.is_op(")")) {
                if (p.is_op(",")) p.advance();
                continue;
            }
        }
        if (p.tok().kind != Token::kName) p.unexpected("a parameter name");
        PyParam param;
        param.name = p.tok().text;
        p.advance();
        if (p.is_op(":")) {
            p.advance();
            param.annotation = p.parse_expr();
        }
        if (p.is_op("=")) {
            p.advance();
            param.default_value = p.parse_expr();
        }
        def.params.push_back(std::move(param));
        if (!p.is_op(",")) break;
        p.advance();
    }
    p.expect_op(")");
    if (p.is_op("->")) {
        p.advance();
        def.returns = p.parse_expr();
    }
    p.expect_op(":");
    return def;
}

}  // namespace

std::vector<PyFunctionDef> python_top_level_defs(std::string_view src) {
    const std::vector<PyLogicalLine> lines = python_logical_lines(src);
    std::vector<PyFunctionDef> defs;
    for (size_t i = 0; i < lines.size(); ++i) {
        if (lines[i].indent != 0 || !starts_with_word(lines[i].text, "def")) continue;
        PyFunctionDef def = parse_def_header(lines[i]);
        // The docstring: the first statement of the body, after any imports (HumanEval/115 has
        // `import math` first; Python's ast would not call that string a docstring).
        size_t b = i + 1;
        while (b < lines.size() && lines[b].indent > 0 &&
               (starts_with_word(lines[b].text, "import") || starts_with_word(lines[b].text, "from"))) {
            ++b;
        }
        if (b < lines.size() && lines[b].indent > 0) {
            const std::string& body = lines[b].text;
            const size_t q = body.find_first_of("'\"");
            // A docstring: the first statement is a lone string literal.
            if (q != std::string::npos && body.find_first_not_of("rRuU") == q) {
                try {
                    PyExpr e = parse_python_expr(body);
                    if (e.kind == PyExpr::kStr) def.docstring = e.str;
                } catch (const Error&) {
                }
            }
        }
        defs.push_back(std::move(def));
    }
    return defs;
}

std::optional<PyExpr> parse_python_assert(std::string_view line) {
    if (!starts_with_word(line, "assert")) return std::nullopt;
    Parser p(line.substr(6));
    PyExpr test = p.parse_expr();
    if (p.is_op(",")) {  // the message: parsed only to check the line is whole
        p.advance();
        p.parse_expr();
    }
    if (p.tok().kind != Token::kEnd) p.unexpected("the end of the assert statement");
    return test;
}

}  // namespace llmforge::codegen
