// Recursive-descent Jinja parser; each parse_* method transcribes the jinja2 3.1 method of the
// same name (jinja2/parser.py), so the grammar and its precedence are jinja2's.
#include "tokenizer/jinja/parser.h"

#include <algorithm>
#include <initializer_list>
#include <string_view>

#include "tokenizer/jinja/symbols.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

constexpr const char* kHintSyntax = "fix the template syntax at this position";

using Names = std::initializer_list<std::string_view>;

ExprPtr make_expr(ExprKind kind, size_t pos) {
    auto e = std::make_unique<Expr>();
    e->kind = kind;
    e->pos = pos;
    return e;
}

ExprPtr make_unary(ExprKind kind, size_t pos, ExprPtr x) {
    ExprPtr e = make_expr(kind, pos);
    e->kids.push_back(std::move(x));
    return e;
}

ExprPtr make_binary(ExprKind kind, size_t pos, ExprPtr a, ExprPtr b) {
    ExprPtr e = make_unary(kind, pos, std::move(a));
    e->kids.push_back(std::move(b));
    return e;
}

StmtPtr make_stmt(StmtKind kind, size_t pos) {
    auto s = std::make_unique<Stmt>();
    s->kind = kind;
    s->pos = pos;
    return s;
}

// Calls f(ExprPtr&) for every direct child of `e` (kids may hold nulls; f sees them).
template <typename E, typename F>
void for_each_child(E& e, F&& f) {
    for (auto& k : e.kids) f(k);
    for (auto& a : e.args.pos) f(a);
    for (auto& k : e.args.kw) f(k.value);
    f(e.args.star);
    f(e.args.star_star);
}

// Fails when an expression tree is higher than kMaxNesting. Recursion in the parser is bounded
// by Depth, but chains (`a or b or ...`, `x|f|g|...`, `a.b.c...`, `f()()...`, `1+1+...`) are
// built by loops into trees as high as they are long, and the symbol pass, the interpreter and
// the compiler-generated destructors would recurse that deep. Iterative, so any height is safe.
void check_height(const Expr& root) {
    std::vector<std::pair<const Expr*, int>> stack{{&root, 1}};
    while (!stack.empty()) {
        const auto [e, height] = stack.back();
        stack.pop_back();
        if (height > kMaxNesting)
            throw TemplateError(
                "expression nests more than " + std::to_string(kMaxNesting) + " levels deep",
                "each operator, filter, call or lookup in a chain is one level; split long "
                "chains with {% set %}",
                e->pos);
        for_each_child(*e, [&stack, height = height](const ExprPtr& k) {
            if (k) stack.emplace_back(k.get(), height + 1);
        });
    }
}

// check_height on every expression; statements nest at most kMaxNesting deep (Depth).
void check_heights(const Body& body) {
    auto check = [](const ExprPtr& e) {
        if (e) check_height(*e);
    };
    for (const StmtPtr& s : body) {
        for (const ExprPtr* e : {&s->expr, &s->target, &s->cond}) check(*e);
        for (const IfBranch& b : s->branches) {
            check(b.test);
            check_heights(b.body);
        }
        for (const auto* group : {&s->defaults, &s->targets, &s->values})
            for (const ExprPtr& e : *group) check(e);
        check_heights(s->body);
        check_heights(s->else_body);
    }
}

}  // namespace

// Frees the subtree without recursion: children are moved onto a stack and freed once they
// hold no children of their own.
Expr::~Expr() {
    std::vector<ExprPtr> stack;
    auto take = [&stack](ExprPtr& k) {
        if (k) stack.push_back(std::move(k));
    };
    for_each_child(*this, take);
    while (!stack.empty()) {
        ExprPtr e = std::move(stack.back());
        stack.pop_back();
        for_each_child(*e, take);
    }  // each `e` is freed here, childless
}

namespace {

// Restores a member on scope exit (parser context flags).
template <typename T>
class Saved {
  public:
    Saved(T& ref, T value) : ref_(ref), old_(ref) { ref_ = value; }
    ~Saved() { ref_ = old_; }
    Saved(const Saved&) = delete;
    Saved& operator=(const Saved&) = delete;

  private:
    T& ref_;
    T old_;
};

class Parser {
  public:
    explicit Parser(const std::vector<Token>& tokens) : toks_(tokens) {}

    Program parse_template() {
        Program program;
        program.body = subparse(nullptr);
        if (!unknown_.empty())
            throw TemplateError(unknown_.front().what,
                                "jinja2 has no such built-in; check the spelling",
                                unknown_.front().pos);
        check_heights(program.body);  // before the recursive passes over the tree
        resolve_locals(program);
        return program;
    }

  private:
    struct Unknown {
        std::string what;
        size_t pos;
    };

    // ---- token stream ----

    const Token& cur() const { return toks_[i_]; }
    const Token& look() const { return toks_[std::min(i_ + 1, toks_.size() - 1)]; }
    void next() {
        if (i_ + 1 < toks_.size()) ++i_;
    }
    bool is_op(std::string_view op) const {
        return cur().type == TokenType::kOperator && cur().value == op;
    }
    bool is_name(std::string_view n) const {
        return cur().type == TokenType::kName && cur().value == n;
    }
    bool is_name_in(Names names) const {
        return cur().type == TokenType::kName &&
               std::find(names.begin(), names.end(), cur().value) != names.end();
    }
    bool skip_op(std::string_view op) {
        if (!is_op(op)) return false;
        next();
        return true;
    }
    bool skip_name(std::string_view n) {
        if (!is_name(n)) return false;
        next();
        return true;
    }

    [[noreturn]] void fail(const std::string& what, size_t pos) const {
        throw TemplateError(what, kHintSyntax, pos);
    }
    [[noreturn]] void fail_here(const std::string& what) const { fail(what, cur().pos); }

    static std::string describe(TokenType t) {
        switch (t) {
            case TokenType::kText:
                return "template data / text";
            case TokenType::kVariableBegin:
                return "begin of print statement";
            case TokenType::kVariableEnd:
                return "end of print statement";
            case TokenType::kBlockBegin:
                return "begin of statement block";
            case TokenType::kBlockEnd:
                return "end of statement block";
            case TokenType::kName:
                return "name";
            case TokenType::kString:
                return "string";
            case TokenType::kInteger:
                return "integer";
            case TokenType::kFloat:
                return "float";
            case TokenType::kOperator:
                return "operator";
            case TokenType::kEof:
                return "end of template";
        }
        return "token";
    }
    static std::string describe(const Token& t) {
        return t.type == TokenType::kName || t.type == TokenType::kOperator ? t.value
                                                                            : describe(t.type);
    }

    void expect(TokenType t) {
        if (cur().type != t)
            fail_here("expected token '" + describe(t) + "', got '" + describe(cur()) + "'");
        next();
    }
    void expect_op(std::string_view op) {
        if (!skip_op(op))
            fail_here("expected token '" + std::string(op) + "', got '" + describe(cur()) + "'");
    }
    std::string expect_name() {
        if (cur().type != TokenType::kName)
            fail_here("expected token 'name', got '" + describe(cur()) + "'");
        std::string n = cur().value;
        next();
        return n;
    }
    void expect_name(std::string_view n) {
        if (!skip_name(n))
            fail_here("expected token '" + std::string(n) + "', got '" + describe(cur()) + "'");
    }

    // Guards recursion depth (expressions and nested blocks).
    class Depth {
      public:
        explicit Depth(Parser& p) : p_(p) {
            if (++p_.depth_ > kMaxNesting)
                p_.fail_here("template nests more than " + std::to_string(kMaxNesting) +
                             " levels deep");
        }
        ~Depth() { --p_.depth_; }
        Depth(const Depth&) = delete;
        Depth& operator=(const Depth&) = delete;

      private:
        Parser& p_;
    };

    // ---- statements ----

    // Statements until a {% tag %} named in `end` (the tag's name is then the current token).
    Body subparse(const Names* end) {
        Depth depth(*this);
        Body body;
        while (cur().type != TokenType::kEof) {
            const Token& t = cur();
            if (t.type == TokenType::kText) {
                StmtPtr s = make_stmt(StmtKind::kText, t.pos);
                s->text = t.value;
                body.push_back(std::move(s));
                next();
            } else if (t.type == TokenType::kVariableBegin) {
                next();
                StmtPtr s = make_stmt(StmtKind::kOutput, t.pos);
                s->expr = parse_tuple(false, true, {}, false);
                expect(TokenType::kVariableEnd);
                body.push_back(std::move(s));
            } else {
                expect(TokenType::kBlockBegin);
                if (end && is_name_in(*end)) return body;
                body.push_back(parse_statement());
                expect(TokenType::kBlockEnd);
            }
        }
        return body;
    }

    Body parse_statements(Names end, bool drop_needle) {
        skip_op(":");
        expect(TokenType::kBlockEnd);
        end_stack_.push_back(end);
        Body body = subparse(&end);
        end_stack_.pop_back();
        if (cur().type == TokenType::kEof) fail_unknown_tag("", end);
        if (drop_needle) next();
        return body;
    }

    [[noreturn]] void fail_unknown_tag(const std::string& name, Names looking_for) const {
        std::string msg = name.empty() ? "Unexpected end of template."
                                       : "Encountered unknown tag '" + name + "'.";
        if (looking_for.size()) {
            std::string tags;
            for (std::string_view t : looking_for)
                tags += (tags.empty() ? "'" : " or '") + std::string(t) + "'";
            msg += " Jinja was looking for the following tags: " + tags + ".";
        }
        if (!tag_stack_.empty())
            msg += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
        fail(msg, cur().pos);
    }

    StmtPtr parse_statement() {
        if (cur().type != TokenType::kName) fail_here("tag name expected");
        const std::string tag = cur().value;
        static constexpr std::string_view kUnsupported[] = {"extends", "block", "include",
                                                            "import",  "from",  "autoescape"};
        if (std::find(std::begin(kUnsupported), std::end(kUnsupported), tag) !=
            std::end(kUnsupported))
            throw TemplateError("'{% " + tag + " %}' is not supported",
                                "chat templates are one self-contained string: inline the content",
                                cur().pos);
        tag_stack_.push_back(tag);
        StmtPtr s = parse_known_statement(tag);
        tag_stack_.pop_back();
        return s;
    }

    StmtPtr parse_known_statement(const std::string& tag) {
        if (tag == "if") return parse_if();
        if (tag == "for") return parse_for();
        if (tag == "set") return parse_set();
        if (tag == "macro") return parse_macro();
        if (tag == "call") return parse_call_block();
        if (tag == "filter") return parse_filter_block();
        if (tag == "with") return parse_with();
        if (tag == "print") return parse_print();
        if (tag == "generation") return parse_simple_block(StmtKind::kGeneration, "endgeneration");
        if (tag == "break" || tag == "continue") return parse_loop_control(tag);
        tag_stack_.pop_back();
        fail_unknown_tag(tag, end_stack_.empty() ? Names{} : end_stack_.back());
    }

    StmtPtr parse_if() {
        StmtPtr s = make_stmt(StmtKind::kIf, cur().pos);
        next();
        Saved soft(soft_, true);
        while (true) {
            IfBranch b;
            b.test = parse_tuple(false, false, {}, false);
            b.body = parse_statements({"elif", "else", "endif"}, false);
            s->branches.push_back(std::move(b));
            const std::string t = cur().value;
            next();
            if (t == "elif") continue;
            if (t == "else") s->else_body = parse_statements({"endif"}, true);
            return s;
        }
    }

    StmtPtr parse_for() {
        StmtPtr s = make_stmt(StmtKind::kFor, cur().pos);
        next();
        s->target = parse_assign_target(true, false, {"in"}, false);
        expect_name("in");
        s->expr = parse_tuple(false, false, {"recursive"}, false);
        Saved soft(soft_, false);
        if (skip_name("if")) s->cond = parse_expression(true);
        s->recursive = skip_name("recursive");
        {
            Saved loops(loop_depth_, loop_depth_ + 1);
            s->body = parse_statements({"endfor", "else"}, false);
        }
        const bool has_else = cur().value == "else";
        next();
        if (has_else) s->else_body = parse_statements({"endfor"}, true);
        return s;
    }

    StmtPtr parse_set() {
        StmtPtr s = make_stmt(StmtKind::kSet, cur().pos);
        next();
        s->target = parse_assign_target(true, false, {}, true);
        if (skip_op("=")) {
            s->expr = parse_tuple(false, true, {}, false);
            return s;
        }
        s->kind = StmtKind::kSetBlock;
        Saved soft(soft_, false);
        Saved loops(loop_depth_, 0);
        s->expr = parse_filter(nullptr, false);
        s->body = parse_statements({"endset"}, true);
        return s;
    }

    // Macro and call-block bodies are functions: no soft context, no enclosing loop.
    Body parse_function_body(std::string_view end) {
        Saved soft(soft_, false);
        Saved loops(loop_depth_, 0);
        return parse_statements({end}, true);
    }

    void parse_signature(Stmt& s) {
        expect_op("(");
        while (!is_op(")")) {
            if (!s.params.empty()) expect_op(",");
            s.params.push_back(expect_name());
            if (skip_op("=")) {
                s.defaults.push_back(parse_expression(true));
            } else if (!s.defaults.empty()) {
                fail_here("non-default argument follows default argument");
            }
        }
        expect_op(")");
    }

    StmtPtr parse_macro() {
        StmtPtr s = make_stmt(StmtKind::kMacro, cur().pos);
        next();
        s->name = expect_name();
        parse_signature(*s);
        s->body = parse_function_body("endmacro");
        return s;
    }

    StmtPtr parse_call_block() {
        StmtPtr s = make_stmt(StmtKind::kCallBlock, cur().pos);
        next();
        if (is_op("(")) parse_signature(*s);
        s->expr = parse_expression(true);
        if (s->expr->kind != ExprKind::kCall) fail("expected call", s->pos);
        s->body = parse_function_body("endcall");
        return s;
    }

    StmtPtr parse_filter_block() {
        StmtPtr s = make_stmt(StmtKind::kFilterBlock, cur().pos);
        next();
        Saved soft(soft_, false);
        Saved loops(loop_depth_, 0);
        s->expr = parse_filter(nullptr, true);
        s->body = parse_statements({"endfilter"}, true);
        return s;
    }

    StmtPtr parse_with() {
        StmtPtr s = make_stmt(StmtKind::kWith, cur().pos);
        next();
        while (cur().type != TokenType::kBlockEnd) {
            if (!s->targets.empty()) expect_op(",");
            s->targets.push_back(parse_assign_target(true, false, {}, false));
            expect_op("=");
            s->values.push_back(parse_expression(true));
        }
        Saved soft(soft_, false);
        s->body = parse_statements({"endwith"}, true);
        return s;
    }

    StmtPtr parse_print() {
        StmtPtr s = make_stmt(StmtKind::kOutput, cur().pos);
        next();
        ExprPtr all = make_expr(ExprKind::kConcat, s->pos);
        while (cur().type != TokenType::kBlockEnd) {
            if (!all->kids.empty()) expect_op(",");
            all->kids.push_back(parse_expression(true));
        }
        s->expr = std::move(all);
        return s;
    }

    StmtPtr parse_simple_block(StmtKind kind, std::string_view end) {
        StmtPtr s = make_stmt(kind, cur().pos);
        next();
        s->body = parse_function_body(end);
        return s;
    }

    StmtPtr parse_loop_control(const std::string& tag) {
        if (loop_depth_ == 0) fail_here("'" + tag + "' outside of a for loop");
        StmtPtr s = make_stmt(tag == "break" ? StmtKind::kBreak : StmtKind::kContinue, cur().pos);
        next();
        return s;
    }

    // A name, a (nested) tuple of names, or with_namespace `ns.attr`.
    ExprPtr parse_assign_target(bool with_tuple, bool name_only, Names extra_end,
                                bool with_namespace) {
        const size_t pos = cur().pos;
        if (with_namespace && look().type == TokenType::kOperator && look().value == ".") {
            ExprPtr ns = make_expr(ExprKind::kName, pos);
            ns->name = expect_name();
            next();
            ExprPtr target = make_unary(ExprKind::kGetattr, pos, std::move(ns));
            target->name = expect_name();
            return target;
        }
        if (name_only) {
            ExprPtr n = make_expr(ExprKind::kName, pos);
            n->name = expect_name();
            return n;
        }
        ExprPtr target = with_tuple ? parse_tuple(true, true, extra_end, false) : parse_primary();
        check_assignable(*target);
        return target;
    }

    void check_assignable(const Expr& e) const {
        if (e.kind == ExprKind::kTuple) {
            for (const auto& k : e.kids) check_assignable(*k);
        } else if (e.kind != ExprKind::kName) {
            fail("can't assign to this expression", e.pos);
        }
    }

    // ---- expressions ----

    ExprPtr parse_expression(bool with_condexpr) {
        return with_condexpr ? parse_condexpr() : parse_or();
    }

    ExprPtr parse_condexpr() {
        const size_t mark = unknown_.size();
        ExprPtr e = parse_or();
        while (is_name("if")) {
            const size_t pos = cur().pos;
            next();
            Saved soft(soft_, true);
            ExprPtr cond = make_expr(ExprKind::kCond, pos);
            ExprPtr test = parse_or();
            ExprPtr other;
            if (skip_name("else")) {
                Depth depth(*this);  // `a if b else c if d else ...` recurses here
                other = parse_condexpr();
            }
            cond->kids.push_back(std::move(e));
            cond->kids.push_back(std::move(test));
            cond->kids.push_back(std::move(other));
            e = std::move(cond);
            unknown_.resize(mark);  // every part of an inline if is soft in jinja2
        }
        return e;
    }

    ExprPtr parse_or() {
        ExprPtr left = parse_and();
        while (is_name("or")) {
            const size_t pos = cur().pos;
            next();
            left = make_binary(ExprKind::kOr, pos, std::move(left), parse_and());
        }
        return left;
    }

    ExprPtr parse_and() {
        ExprPtr left = parse_not();
        while (is_name("and")) {
            const size_t pos = cur().pos;
            next();
            left = make_binary(ExprKind::kAnd, pos, std::move(left), parse_not());
        }
        return left;
    }

    ExprPtr parse_not() {
        if (!is_name("not")) return parse_compare();
        Depth depth(*this);
        const size_t pos = cur().pos;
        next();
        return make_unary(ExprKind::kNot, pos, parse_not());
    }

    ExprPtr parse_compare() {
        const size_t pos = cur().pos;
        ExprPtr first = parse_math1();
        ExprPtr cmp = make_expr(ExprKind::kCompare, pos);
        static constexpr std::pair<std::string_view, CmpOp> kOps[] = {
            {"==", CmpOp::kEq}, {"!=", CmpOp::kNe}, {"<", CmpOp::kLt},
            {"<=", CmpOp::kLe}, {">", CmpOp::kGt},  {">=", CmpOp::kGe}};
        while (true) {
            std::optional<CmpOp> op;
            for (const auto& [sym, o] : kOps)
                if (is_op(sym)) op = o;
            if (op) {
                next();
            } else if (skip_name("in")) {
                op = CmpOp::kIn;
            } else if (is_name("not") && look().type == TokenType::kName && look().value == "in") {
                next();
                next();
                op = CmpOp::kNotIn;
            } else {
                break;
            }
            cmp->cmp.push_back(*op);
            cmp->kids.push_back(parse_math1());
        }
        if (cmp->cmp.empty()) return first;
        cmp->kids.insert(cmp->kids.begin(), std::move(first));
        return cmp;
    }

    ExprPtr binary(BinOp op, size_t pos, ExprPtr a, ExprPtr b) {
        ExprPtr e = make_binary(ExprKind::kBinary, pos, std::move(a), std::move(b));
        e->op = op;
        return e;
    }

    ExprPtr parse_math1() {
        ExprPtr left = parse_concat();
        while (is_op("+") || is_op("-")) {
            const BinOp op = is_op("+") ? BinOp::kAdd : BinOp::kSub;
            const size_t pos = cur().pos;
            next();
            left = binary(op, pos, std::move(left), parse_concat());
        }
        return left;
    }

    ExprPtr parse_concat() {
        const size_t pos = cur().pos;
        ExprPtr first = parse_math2();
        if (!is_op("~")) return first;
        ExprPtr cat = make_unary(ExprKind::kConcat, pos, std::move(first));
        while (skip_op("~")) cat->kids.push_back(parse_math2());
        return cat;
    }

    ExprPtr parse_math2() {
        ExprPtr left = parse_pow();
        while (true) {
            BinOp op;
            if (is_op("*")) {
                op = BinOp::kMul;
            } else if (is_op("/")) {
                op = BinOp::kDiv;
            } else if (is_op("//")) {
                op = BinOp::kFloorDiv;
            } else if (is_op("%")) {
                op = BinOp::kMod;
            } else {
                return left;
            }
            const size_t pos = cur().pos;
            next();
            left = binary(op, pos, std::move(left), parse_pow());
        }
    }

    ExprPtr parse_pow() {
        ExprPtr left = parse_unary(true);
        while (is_op("**")) {
            const size_t pos = cur().pos;
            next();
            left = binary(BinOp::kPow, pos, std::move(left), parse_unary(true));
        }
        return left;
    }

    ExprPtr parse_unary(bool with_filter) {
        Depth depth(*this);
        const size_t pos = cur().pos;
        ExprPtr node;
        if (skip_op("-")) {
            node = make_unary(ExprKind::kNeg, pos, parse_unary(false));
        } else if (skip_op("+")) {
            node = make_unary(ExprKind::kPos, pos, parse_unary(false));
        } else {
            node = parse_primary();
        }
        node = parse_postfix(std::move(node));
        if (with_filter) node = parse_filter_expr(std::move(node));
        return node;
    }

    ExprPtr parse_primary() {
        const Token& t = cur();
        ExprPtr node;
        if (t.type == TokenType::kName) {
            node = make_expr(ExprKind::kConst, t.pos);
            if (t.value == "true" || t.value == "True" || t.value == "false" ||
                t.value == "False") {
                node->value = Value::boolean(t.value[0] == 't' || t.value[0] == 'T');
            } else if (t.value == "none" || t.value == "None") {
                node->value = Value::none();
            } else {
                node->kind = ExprKind::kName;
                node->name = t.value;
            }
            next();
        } else if (t.type == TokenType::kString) {
            std::string s;
            const size_t pos = t.pos;
            while (cur().type == TokenType::kString) {
                s += cur().value;
                next();
            }
            node = make_expr(ExprKind::kConst, pos);
            node->value = Value::string(std::move(s));
        } else if (t.type == TokenType::kInteger || t.type == TokenType::kFloat) {
            node = make_expr(ExprKind::kConst, t.pos);
            node->value = t.type == TokenType::kInteger ? Value::integer(t.int_value)
                                                        : Value::number(t.float_value);
            next();
        } else if (is_op("(")) {
            next();
            node = parse_tuple(false, true, {}, true);
            expect_op(")");
        } else if (is_op("[")) {
            node = parse_sequence(ExprKind::kList, "]", false);
        } else if (is_op("{")) {
            node = parse_sequence(ExprKind::kDict, "}", true);
        } else {
            fail_here("unexpected '" + describe(t) + "'");
        }
        return node;
    }

    // parse_list / parse_dict: [a, b,] and {k: v, ...}
    ExprPtr parse_sequence(ExprKind kind, std::string_view close, bool pairs) {
        ExprPtr e = make_expr(kind, cur().pos);
        next();
        while (!is_op(close)) {
            if (!e->kids.empty()) expect_op(",");
            if (is_op(close)) break;
            e->kids.push_back(parse_expression(true));
            if (pairs) {
                expect_op(":");
                e->kids.push_back(parse_expression(true));
            }
        }
        expect_op(close);
        return e;
    }

    // A comma-separated list becomes a tuple; `simplified` parses names and literals only.
    ExprPtr parse_tuple(bool simplified, bool with_condexpr, Names extra_end,
                        bool explicit_parens) {
        const size_t pos = cur().pos;
        std::vector<ExprPtr> items;
        bool is_tuple = false;
        while (true) {
            if (!items.empty()) expect_op(",");
            if (is_tuple_end(extra_end)) break;
            items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
            if (!is_op(",")) break;
            is_tuple = true;
        }
        if (!is_tuple) {
            if (!items.empty()) return std::move(items[0]);
            if (!explicit_parens)
                fail_here("Expected an expression, got '" + describe(cur()) + "'");
        }
        ExprPtr t = make_expr(ExprKind::kTuple, pos);
        t->kids = std::move(items);
        return t;
    }

    bool is_tuple_end(Names extra_end) const {
        const TokenType t = cur().type;
        return t == TokenType::kVariableEnd || t == TokenType::kBlockEnd || is_op(")") ||
               is_name_in(extra_end);
    }

    ExprPtr parse_postfix(ExprPtr node) {
        while (true) {
            if (is_op(".") || is_op("[")) {
                node = parse_subscript(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_filter_expr(ExprPtr node) {
        while (true) {
            if (is_op("|")) {
                node = parse_filter(std::move(node), false);
            } else if (is_name("is")) {
                node = parse_test(std::move(node));
            } else if (is_op("(")) {
                node = parse_call(std::move(node));
            } else {
                return node;
            }
        }
    }

    ExprPtr parse_subscript(ExprPtr node) {
        const size_t pos = cur().pos;
        if (skip_op(".")) {
            const Token& attr = cur();
            if (attr.type == TokenType::kName) {
                ExprPtr e = make_unary(ExprKind::kGetattr, pos, std::move(node));
                e->name = attr.value;
                next();
                return e;
            }
            if (attr.type != TokenType::kInteger) fail_here("expected name or number");
            ExprPtr index = make_expr(ExprKind::kConst, attr.pos);
            index->value = Value::integer(attr.int_value);
            next();
            return make_binary(ExprKind::kGetitem, pos, std::move(node), std::move(index));
        }
        next();  // [
        std::vector<ExprPtr> args;
        while (!is_op("]")) {
            if (!args.empty()) expect_op(",");
            args.push_back(parse_subscribed());
        }
        expect_op("]");
        if (args.empty()) fail("expected subscript expression", pos);
        ExprPtr key;
        if (args.size() == 1) {
            key = std::move(args[0]);
        } else {
            key = make_expr(ExprKind::kTuple, pos);
            key->kids = std::move(args);
        }
        return make_binary(ExprKind::kGetitem, pos, std::move(node), std::move(key));
    }

    ExprPtr parse_subscribed() {
        const size_t pos = cur().pos;
        ExprPtr slice = make_expr(ExprKind::kSlice, pos);
        if (skip_op(":")) {
            slice->kids.push_back(nullptr);
        } else {
            ExprPtr e = parse_expression(true);
            if (!skip_op(":")) return e;
            slice->kids.push_back(std::move(e));
        }
        auto optional_expr = [&]() {
            return is_op("]") || is_op(",") ? nullptr : parse_expression(true);
        };
        slice->kids.push_back(is_op(":") ? nullptr : optional_expr());
        slice->kids.push_back(skip_op(":") ? optional_expr() : nullptr);
        return slice;
    }

    ArgList parse_call_args() {
        const size_t pos = cur().pos;
        expect_op("(");
        ArgList args;
        bool require_comma = false;
        auto ensure = [&](bool ok) {
            if (!ok) fail("invalid syntax for function call expression", pos);
        };
        while (!is_op(")")) {
            if (require_comma) {
                expect_op(",");
                if (is_op(")")) break;
            }
            if (skip_op("*")) {
                ensure(!args.star && !args.star_star);
                args.star = parse_expression(true);
            } else if (skip_op("**")) {
                ensure(!args.star_star);
                args.star_star = parse_expression(true);
            } else if (cur().type == TokenType::kName && look().type == TokenType::kOperator &&
                       look().value == "=") {
                ensure(!args.star_star);
                Keyword k;
                k.name = cur().value;
                next();
                next();
                k.value = parse_expression(true);
                args.kw.push_back(std::move(k));
            } else {
                ensure(!args.star && !args.star_star && args.kw.empty());
                args.pos.push_back(parse_expression(true));
            }
            require_comma = true;
        }
        expect_op(")");
        return args;
    }

    ExprPtr parse_call(ExprPtr node) {
        ExprPtr e = make_unary(ExprKind::kCall, cur().pos, std::move(node));
        e->args = parse_call_args();
        return e;
    }

    std::string parse_dotted_name() {
        std::string name = expect_name();
        while (skip_op(".")) name.append(".").append(expect_name());
        return name;
    }

    void note_unknown(const char* what, const std::string& name, size_t pos) {
        if (!soft_) unknown_.push_back({std::string("No ") + what + " named '" + name + "'", pos});
    }

    // `node | f(args) | g`; with start_inline the first `|` is implicit ({% filter f %}).
    ExprPtr parse_filter(ExprPtr node, bool start_inline) {
        while (is_op("|") || start_inline) {
            if (!start_inline) next();
            start_inline = false;
            const size_t pos = cur().pos;
            ExprPtr f = make_unary(ExprKind::kFilter, pos, std::move(node));
            f->name = parse_dotted_name();
            f->filter = find_filter(f->name);
            if (!f->filter) note_unknown("filter", f->name, pos);
            if (is_op("(")) f->args = parse_call_args();
            node = std::move(f);
        }
        return node;
    }

    ExprPtr parse_test(ExprPtr node) {
        const size_t pos = cur().pos;
        next();  // is
        const bool negated = skip_name("not");
        ExprPtr t = make_unary(ExprKind::kTest, pos, std::move(node));
        t->name = parse_dotted_name();
        t->test = find_test(t->name);
        if (!t->test) note_unknown("test", t->name, pos);
        const TokenType ct = cur().type;
        if (is_op("(")) {
            t->args = parse_call_args();
        } else if ((ct == TokenType::kName || ct == TokenType::kString ||
                    ct == TokenType::kInteger || ct == TokenType::kFloat || is_op("[") ||
                    is_op("{")) &&
                   !is_name_in({"else", "or", "and"})) {
            if (is_name("is")) fail_here("You cannot chain multiple tests with is");
            t->args.pos.push_back(parse_postfix(parse_primary()));
        }
        return negated ? make_unary(ExprKind::kNot, pos, std::move(t)) : std::move(t);
    }

    const std::vector<Token>& toks_;
    size_t i_ = 0;
    int depth_ = 0;
    bool soft_ = false;   // inside an if statement or inline if: unknown filters fail at runtime
    int loop_depth_ = 0;  // enclosing for loops in the current function body
    std::vector<Names> end_stack_;
    std::vector<std::string> tag_stack_;
    std::vector<Unknown> unknown_;
};

}  // namespace

Program parse(const std::vector<Token>& tokens) {
    return Parser(tokens).parse_template();
}

}  // namespace llmforge::jinja
