// Interpreter: executes statements, evaluates expressions, implements macros and loop objects
// (see interpreter.h for scoping and limits).
#include "tokenizer/jinja/interpreter.h"

#include <memory>

#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

namespace {

class Scope;
using ScopePtr = std::shared_ptr<Scope>;

// Variables of one block level; lookups walk up to the globals.
class Scope {
  public:
    explicit Scope(ScopePtr parent) : parent_(std::move(parent)) {}

    const Value* find(std::string_view name) const {
        for (const Scope* s = this; s; s = s->parent_.get())
            for (const auto& [k, v] : s->vars_)
                if (k == name) return &v;
        return nullptr;
    }
    void set(std::string_view name, Value v) {
        for (auto& [k, x] : vars_) {
            if (k == name) {
                x = std::move(v);
                return;
            }
        }
        vars_.emplace_back(std::string(name), std::move(v));
    }

  private:
    ScopePtr parent_;
    std::vector<std::pair<std::string, Value>> vars_;
};

enum class Flow { kNormal, kBreak, kContinue };

constexpr int kMaxRenderNesting = 1000;

class Interpreter;

// A {% macro %} (or the `caller` of a {% call %} block) bound to the scope it was defined in.
class Macro : public Object {
  public:
    Macro(Interpreter& in, const Stmt& def, ScopePtr scope, std::string name)
        : in_(in), def_(def), scope_(std::move(scope)), name_(std::move(name)) {}
    std::string type_name() const override { return "Macro"; }
    std::string repr() const override { return "<Macro '" + name_ + "'>"; }
    bool callable() const override { return true; }
    Value call(CallArgs args) override;
    void release() override { scope_.reset(); }

  private:
    Interpreter& in_;
    const Stmt& def_;
    ScopePtr scope_;
    std::string name_;
};

// The `loop` variable of a for loop. Like jinja2's LoopContext it pulls items on demand, so a
// `for ... if test` evaluates each test just before its item's turn (a body that changes a
// namespace changes which later items pass), and loop.length / last / nextitem look ahead only
// when asked. get_attr is const for callers but may pull items: the look-ahead state is mutable.
class LoopContext : public Object {
  public:
    using Next = std::function<std::optional<Value>()>;  // the iterable's next item, if any
    using Recurse = std::function<Value(const Value&)>;
    LoopContext(Next next, int depth0, Recurse recurse)
        : next_(std::move(next)), depth0_(depth0), recurse_(std::move(recurse)) {}

    // Moves to the next item; false when there is none.
    bool advance() {
        if (started_) {
            before_ = current_;
            ++index0_;
        }
        started_ = true;
        std::optional<Value> v = ahead_.empty() ? pull() : take_ahead();
        if (!v) return false;
        current_ = std::move(*v);
        return true;
    }
    const Value& current() const { return current_; }

    std::string type_name() const override { return "LoopContext"; }
    std::string repr() const override {
        return "<LoopContext " + std::to_string(index0_ + 1) + "/" + std::to_string(length()) + ">";
    }
    std::optional<Value> get_attr(std::string_view name) const override;
    bool callable() const override { return true; }
    Value call(CallArgs args) override {
        if (!recurse_)
            throw TemplateError(
                "Tried to call non recursive loop. Maybe you forgot the 'recursive' modifier.",
                "add 'recursive' to the for tag");
        if (args.pos.size() != 1 || !args.kw.empty())
            throw TemplateError("loop() takes exactly one iterable", kHintType);
        return recurse_(args.pos[0]);
    }
    void release() override {
        next_ = nullptr;
        recurse_ = nullptr;
        ahead_.clear();
        current_ = before_ = Value();
        last_changed_->reset();  // may hold loop.changed itself: `loop.changed(loop.changed)`
    }

  private:
    std::optional<Value> pull() const {
        if (!next_) return std::nullopt;
        std::optional<Value> v = next_();
        if (!v) next_ = nullptr;
        return v;
    }
    std::optional<Value> take_ahead() {
        Value v = std::move(ahead_.front());
        ahead_.erase(ahead_.begin());
        return v;
    }
    const Value* peek() const {
        if (ahead_.empty())
            if (auto v = pull()) ahead_.push_back(std::move(*v));
        return ahead_.empty() ? nullptr : &ahead_.front();
    }
    int64_t length() const {
        while (auto v = pull()) ahead_.push_back(std::move(*v));
        return static_cast<int64_t>(index0_ + 1 + ahead_.size());
    }

    mutable Next next_;
    mutable std::vector<Value> ahead_;  // pulled but not yet iterated
    int depth0_;
    Recurse recurse_;
    bool started_ = false;
    size_t index0_ = 0;
    Value current_, before_;
    std::shared_ptr<std::optional<Value>> last_changed_ = std::make_shared<std::optional<Value>>();
};

std::optional<Value> LoopContext::get_attr(std::string_view name) const {
    const auto i = static_cast<int64_t>(index0_);
    if (name == "index") return Value::integer(i + 1);
    if (name == "index0") return Value::integer(i);
    if (name == "revindex") return Value::integer(length() - i);
    if (name == "revindex0") return Value::integer(length() - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(peek() == nullptr);
    if (name == "length") return Value::integer(length());
    if (name == "depth") return Value::integer(depth0_ + 1);
    if (name == "depth0") return Value::integer(depth0_);
    if (name == "previtem") return i > 0 ? before_ : Value::undefined("there is no previous item");
    if (name == "nextitem") {
        const Value* next = peek();
        return next ? *next : Value::undefined("there is no next item");
    }
    if (name == "cycle") {
        return make_function("loop.cycle", [i](CallArgs& a) {
            if (a.pos.empty())
                throw TemplateError("no items for cycling given", "pass loop.cycle() some values");
            return a.pos[static_cast<size_t>(i) % a.pos.size()];
        });
    }
    if (name == "changed") {
        return make_function("loop.changed", [state = last_changed_](CallArgs& a) {
            Value now = Value::list(a.pos);
            if (*state && (*state)->equals(now)) return Value::boolean(false);
            *state = std::move(now);
            return Value::boolean(true);
        });
    }
    return std::nullopt;
}

class Interpreter {
  public:
    explicit Interpreter(const Limits& limits) : limits_(limits) {}
    ~Interpreter() {
        for (const auto& o : owned_) o->release();
    }
    Interpreter(const Interpreter&) = delete;
    Interpreter& operator=(const Interpreter&) = delete;

    std::string render(const Program& program, const DictData& context) {
        auto globals = std::make_shared<Scope>(nullptr);
        for (const auto& [k, v] : engine_globals().items) globals->set(k.as_string(), v);
        globals->set("namespace", make_function("namespace", [this](CallArgs& a) {
                         return own(std::make_shared<Namespace>(dict_from_args("namespace", a)));
                     }));
        auto root = std::make_shared<Scope>(globals);
        for (const auto& [k, v] : context.items) root->set(k.str(), v);
        declare_locals(*root, program.locals);
        return capture(program.body, root);
    }

    Value call_macro(const Stmt& def, const ScopePtr& scope, CallArgs args,
                     const std::string& name);

  private:
    // Bounds the C++ recursion of nested statements and expressions across macro calls (the
    // parser bounds one template's nesting; recursive macros multiply it).
    class Nesting {
      public:
        explicit Nesting(Interpreter& in) : in_(in) {
            if (++in_.nesting_ > kMaxRenderNesting) {
                --in_.nesting_;
                throw TemplateError("template evaluation nests more than " +
                                        std::to_string(kMaxRenderNesting) + " levels deep",
                                    "the template recurses too deeply");
            }
        }
        ~Nesting() { --in_.nesting_; }
        Nesting(const Nesting&) = delete;
        Nesting& operator=(const Nesting&) = delete;

      private:
        Interpreter& in_;
    };

    // Loop iterations and `for ... if` tests count against Limits::max_loop_iterations.
    void count_iteration() {
        if (++iterations_ > limits_.max_loop_iterations)
            throw TemplateError(
                "more than " + std::to_string(limits_.max_loop_iterations) + " loop iterations",
                "the template loops without end or over too much data");
    }

    // A scope for a frame, with the names it starts as undefined (see symbols.h).
    static ScopePtr open_scope(ScopePtr parent, const std::vector<std::string>& locals) {
        auto scope = std::make_shared<Scope>(std::move(parent));
        declare_locals(*scope, locals);
        return scope;
    }
    static void declare_locals(Scope& scope, const std::vector<std::string>& locals) {
        for (const std::string& name : locals)
            scope.set(name, Value::undefined("'" + name + "' is undefined"));
    }

    // Keeps objects that may sit in reference cycles until the render ends (see Object::release).
    Value own(std::shared_ptr<Object> o) {
        owned_.push_back(o);
        return Value::object(std::move(o));
    }

    void emit(std::string_view s) {
        if (out_->size() + s.size() > limits_.max_output_bytes)
            throw TemplateError(
                "output larger than " + std::to_string(limits_.max_output_bytes) + " bytes",
                "the template produces runaway output");
        out_->append(s);
    }

    // Runs `render` with the output going to a string of its own, and returns that string.
    template <typename Fn>
    std::string capture(Fn&& render) {
        std::string buf;
        struct Restore {
            std::string*& out;
            std::string* saved;
            ~Restore() { out = saved; }
        } restore{out_, std::exchange(out_, &buf)};
        render();
        return buf;
    }
    std::string capture(const Body& body, const ScopePtr& scope) {
        return capture([&] { exec_body(body, scope); });
    }

    Flow exec_body(const Body& body, const ScopePtr& scope) {
        for (const StmtPtr& s : body) {
            const Flow f = exec(*s, scope);
            if (f != Flow::kNormal) return f;
        }
        return Flow::kNormal;
    }

    Flow exec(const Stmt& s, const ScopePtr& scope) {
        const Nesting nesting(*this);
        try {
            return exec_node(s, scope);
        } catch (TemplateError& e) {
            if (!e.has_pos()) e.set_pos(s.pos);
            throw;
        }
    }

    Flow exec_node(const Stmt& s, const ScopePtr& scope);
    Flow exec_if(const Stmt& s, const ScopePtr& scope);
    Flow exec_for(const Stmt& s, const ScopePtr& scope, const Value& iterable, int depth0);
    void exec_call_block(const Stmt& s, const ScopePtr& scope);
    Flow exec_with(const Stmt& s, const ScopePtr& scope);
    void assign(const Expr& target, const Value& v, Scope& scope);

    Value eval(const Expr& e, const ScopePtr& scope) {
        const Nesting nesting(*this);
        try {
            return eval_node(e, scope);
        } catch (TemplateError& err) {
            if (!err.has_pos()) err.set_pos(e.pos);
            throw;
        }
    }
    Value eval_node(const Expr& e, const ScopePtr& scope);
    Value eval_optional(const Expr* e, const ScopePtr& scope) {
        return e ? eval(*e, scope) : Value::none();
    }
    CallArgs eval_args(const ArgList& a, const ScopePtr& scope);
    Value eval_filter(const Expr& f, const ScopePtr& scope, const Value* seed);
    Value eval_compare(const Expr& e, const ScopePtr& scope);
    Value eval_collection(const Expr& e, const ScopePtr& scope);
    Value call(const Value& callee, CallArgs args);

    Limits limits_;
    std::string* out_ = nullptr;
    uint64_t iterations_ = 0;
    int call_depth_ = 0;
    int nesting_ = 0;
    std::vector<std::shared_ptr<Object>> owned_;
};

Value Macro::call(CallArgs args) {
    if (!scope_)
        throw TemplateError("macro '" + name_ + "' called after the render ended", kHintType);
    return in_.call_macro(def_, scope_, std::move(args), name_);
}

// Binds arguments as jinja2's Macro.__call__ does: positional, then keywords for the rest, then
// `caller`, `kwargs` and `varargs` when the body reads them; missing ones take their defaults.
Value Interpreter::call_macro(const Stmt& def, const ScopePtr& scope, CallArgs args,
                              const std::string& name) {
    if (call_depth_ >= limits_.max_call_depth)
        throw TemplateError(
            "macro calls nested more than " + std::to_string(limits_.max_call_depth) + " deep",
            "the template recurses without end");
    const size_t n = def.params.size();
    auto local = open_scope(scope, def.locals);
    std::vector<bool> bound(n, false);
    for (size_t i = 0; i < n && i < args.pos.size(); ++i) {
        local->set(def.params[i], args.pos[i]);
        bound[i] = true;
    }
    auto take_keyword = [&args](const std::string& key) -> std::optional<Value> {
        for (auto it = args.kw.begin(); it != args.kw.end(); ++it) {
            if (it->first != key) continue;
            Value v = std::move(it->second);
            args.kw.erase(it);
            return v;
        }
        return std::nullopt;
    };
    for (size_t i = args.pos.size(); i < n; ++i) {
        if (auto v = take_keyword(def.params[i])) {
            local->set(def.params[i], std::move(*v));
            bound[i] = true;
        }
    }
    if (def.uses_caller)
        local->set("caller",
                   take_keyword("caller").value_or(Value::undefined("No caller defined")));
    if (def.catch_kwargs) {
        DictData extra;
        for (auto& [k, v] : args.kw) extra.set(Value::string(k), std::move(v));
        local->set("kwargs", Value::dict(std::move(extra)));
    } else if (!args.kw.empty()) {
        const std::string& k = args.kw.front().first;
        throw TemplateError(
            k == "caller"
                ? "macro '" + name + "' was invoked with two values for the special caller argument"
                : "macro '" + name + "' takes no keyword argument '" + k + "'",
            kHintType);
    }
    if (def.catch_varargs) {
        const auto extra =
            args.pos.size() > n ? args.pos.begin() + static_cast<long>(n) : args.pos.end();
        local->set("varargs", Value::list(std::vector<Value>(extra, args.pos.end()), true));
    } else if (args.pos.size() > n) {
        throw TemplateError(
            "macro '" + name + "' takes not more than " + std::to_string(n) + " argument(s)",
            kHintType);
    }
    const size_t first_default = n - def.defaults.size();
    for (size_t i = 0; i < n; ++i) {
        if (bound[i]) continue;
        local->set(def.params[i],
                   i >= first_default
                       ? eval(*def.defaults[i - first_default], local)
                       : Value::undefined("parameter '" + def.params[i] + "' was not provided"));
    }
    ++call_depth_;
    struct Unwind {
        int& depth;
        ~Unwind() { --depth; }
    } unwind{call_depth_};
    return Value::string(capture(def.body, local));
}

Flow Interpreter::exec_node(const Stmt& s, const ScopePtr& scope) {
    switch (s.kind) {
        case StmtKind::kText:
            emit(s.text);
            return Flow::kNormal;
        case StmtKind::kOutput:
            emit(eval(*s.expr, scope).str());
            return Flow::kNormal;
        case StmtKind::kIf:
            return exec_if(s, scope);
        case StmtKind::kFor:
            return exec_for(s, scope, eval(*s.expr, scope), 0);
        case StmtKind::kSet:
            assign(*s.target, eval(*s.expr, scope), *scope);
            return Flow::kNormal;
        case StmtKind::kSetBlock: {
            Value v = Value::string(capture(s.body, open_scope(scope, s.locals)));
            if (s.expr) v = eval_filter(*s.expr, scope, &v);
            assign(*s.target, v, *scope);
            return Flow::kNormal;
        }
        case StmtKind::kMacro:
            scope->set(s.name, own(std::make_shared<Macro>(*this, s, scope, s.name)));
            return Flow::kNormal;
        case StmtKind::kCallBlock:
            exec_call_block(s, scope);
            return Flow::kNormal;
        case StmtKind::kFilterBlock: {
            const Value body = Value::string(capture(s.body, open_scope(scope, s.locals)));
            emit(eval_filter(*s.expr, scope, &body).str());
            return Flow::kNormal;
        }
        case StmtKind::kWith:
            return exec_with(s, scope);
        case StmtKind::kGeneration:
            return exec_body(s.body, open_scope(scope, s.locals));
        case StmtKind::kBreak:
            return Flow::kBreak;
        case StmtKind::kContinue:
            return Flow::kContinue;
    }
    return Flow::kNormal;
}

Flow Interpreter::exec_if(const Stmt& s, const ScopePtr& scope) {
    for (const IfBranch& b : s.branches)
        if (eval(*b.test, scope).truthy()) return exec_body(b.body, scope);
    return exec_body(s.else_body, scope);
}

Flow Interpreter::exec_for(const Stmt& s, const ScopePtr& scope, const Value& iterable,
                           int depth0) {
    // Items come one at a time through the `if` test, evaluated when the item is pulled.
    auto items = std::make_shared<const std::vector<Value>>(iterate(iterable));
    auto next = [this, &s, scope, items, pos = size_t{0}]() mutable -> std::optional<Value> {
        while (pos < items->size()) {
            const Value& item = (*items)[pos++];
            if (!s.cond) return item;
            count_iteration();
            auto test_scope = std::make_shared<Scope>(scope);
            assign(*s.target, item, *test_scope);
            if (eval(*s.cond, test_scope).truthy()) return item;
        }
        return std::nullopt;
    };
    LoopContext::Recurse recurse;
    if (s.recursive) {
        recurse = [this, &s, scope, depth0](const Value& inner) {
            return Value::string(capture([&] { exec_for(s, scope, inner, depth0 + 1); }));
        };
    }
    auto loop = std::make_shared<LoopContext>(std::move(next), depth0, std::move(recurse));
    const Value loop_value = own(loop);
    bool iterated = false;
    while (loop->advance()) {
        iterated = true;
        count_iteration();
        auto iteration = open_scope(scope, s.locals);
        iteration->set("loop", loop_value);
        assign(*s.target, loop->current(), *iteration);
        if (exec_body(s.body, iteration) == Flow::kBreak) break;
    }
    if (!iterated) return exec_body(s.else_body, open_scope(scope, s.else_locals));
    return Flow::kNormal;
}

void Interpreter::exec_call_block(const Stmt& s, const ScopePtr& scope) {
    const Value caller = own(std::make_shared<Macro>(*this, s, scope, "caller"));
    const Expr& call_expr = *s.expr;
    const Value callee = eval(*call_expr.kids[0], scope);
    CallArgs args = eval_args(call_expr.args, scope);
    args.kw.emplace_back("caller", caller);
    emit(call(callee, std::move(args)).str());
}

Flow Interpreter::exec_with(const Stmt& s, const ScopePtr& scope) {
    auto inner = open_scope(scope, s.locals);
    std::vector<Value> values;
    for (const ExprPtr& v : s.values) values.push_back(eval(*v, scope));
    for (size_t i = 0; i < s.targets.size(); ++i) assign(*s.targets[i], values[i], *inner);
    return exec_body(s.body, inner);
}

void Interpreter::assign(const Expr& target, const Value& v, Scope& scope) {
    switch (target.kind) {
        case ExprKind::kName:
            scope.set(target.name, v);
            return;
        case ExprKind::kTuple: {
            const std::vector<Value> items = iterate(v);
            const size_t want = target.kids.size();
            if (items.size() < want)
                throw TemplateError("not enough values to unpack (expected " +
                                        std::to_string(want) + ", got " +
                                        std::to_string(items.size()) + ")",
                                    kHintType);
            if (items.size() > want)
                throw TemplateError(
                    "too many values to unpack (expected " + std::to_string(want) + ")", kHintType);
            for (size_t i = 0; i < want; ++i) assign(*target.kids[i], items[i], scope);
            return;
        }
        default: {  // ns.attr
            const Value* ns = scope.find(target.kids[0]->name);
            if (!ns || !ns->is_object() || !ns->as_object().set_attr(target.name, v))
                throw TemplateError(
                    "cannot assign attribute on non-namespace object",
                    "create the variable with namespace(...) to change it from a loop");
        }
    }
}

CallArgs Interpreter::eval_args(const ArgList& a, const ScopePtr& scope) {
    CallArgs out;
    for (const ExprPtr& e : a.pos) out.pos.push_back(eval(*e, scope));
    if (a.star)
        for (Value& v : iterate(eval(*a.star, scope))) out.pos.push_back(std::move(v));
    for (const Keyword& k : a.kw) out.kw.emplace_back(k.name, eval(*k.value, scope));
    if (a.star_star) {
        const Value more = eval(*a.star_star, scope);
        if (!more.is_dict())
            throw TemplateError("argument after ** must be a mapping, not " + more.type_name(),
                                kHintType);
        for (const auto& [k, v] : more.as_dict().items) {
            if (!k.is_string()) throw TemplateError("keywords must be strings", kHintType);
            out.kw.emplace_back(k.as_string(), v);
        }
    }
    return out;
}

Value Interpreter::call(const Value& callee, CallArgs args) {
    if (callee.is_undefined()) throw_undefined(callee);
    if (!callee.is_object() || !callee.as_object().callable())
        throw TemplateError("'" + callee.type_name() + "' object is not callable", kHintType);
    return callee.as_object().call(std::move(args));
}

// `x | f(args)`; in filter blocks the innermost input is `seed` (the rendered body).
Value Interpreter::eval_filter(const Expr& f, const ScopePtr& scope, const Value* seed) {
    const Expr* input = f.kids[0].get();
    Value in;
    if (!input) {
        in = *seed;
    } else if (seed) {
        in = eval_filter(*input, scope, seed);
    } else {
        in = eval(*input, scope);
    }
    if (!f.filter)
        throw TemplateError("No filter named '" + f.name + "'",
                            "jinja2 has no such built-in; check the spelling");
    CallArgs args = eval_args(f.args, scope);
    try {
        return (*f.filter)(in, args);
    } catch (TemplateError& e) {
        if (!e.has_pos()) e.set_pos(f.pos);
        throw;
    }
}

Value Interpreter::eval_compare(const Expr& e, const ScopePtr& scope) {
    Value left = eval(*e.kids[0], scope);
    for (size_t i = 0; i < e.cmp.size(); ++i) {
        Value right = eval(*e.kids[i + 1], scope);
        if (!compare(e.cmp[i], left, right)) return Value::boolean(false);
        left = std::move(right);
    }
    return Value::boolean(true);
}

Value Interpreter::eval_collection(const Expr& e, const ScopePtr& scope) {
    if (e.kind != ExprKind::kDict) {
        std::vector<Value> items;
        for (const ExprPtr& k : e.kids) items.push_back(eval(*k, scope));
        return Value::list(std::move(items), e.kind == ExprKind::kTuple);
    }
    DictData d;
    for (size_t i = 0; i + 1 < e.kids.size(); i += 2) {
        Value key = eval(*e.kids[i], scope);
        if (!is_hashable(key))
            throw TemplateError("unhashable type: '" + key.type_name() + "'", kHintType);
        d.set(std::move(key), eval(*e.kids[i + 1], scope));
    }
    return Value::dict(std::move(d));
}

Value Interpreter::eval_node(const Expr& e, const ScopePtr& scope) {
    switch (e.kind) {
        case ExprKind::kConst:
            return e.value;
        case ExprKind::kName: {
            const Value* v = scope->find(e.name);
            return v ? *v : Value::undefined("'" + e.name + "' is undefined");
        }
        case ExprKind::kList:
        case ExprKind::kTuple:
        case ExprKind::kDict:
            return eval_collection(e, scope);
        case ExprKind::kGetattr:
            return get_attr(eval(*e.kids[0], scope), e.name);
        case ExprKind::kGetitem: {
            const Value obj = eval(*e.kids[0], scope);
            const Expr& key = *e.kids[1];
            if (key.kind != ExprKind::kSlice) return get_item(obj, eval(key, scope));
            return get_slice(obj, eval_optional(key.kids[0].get(), scope),
                             eval_optional(key.kids[1].get(), scope),
                             eval_optional(key.kids[2].get(), scope));
        }
        case ExprKind::kSlice:
            throw TemplateError("a slice is only allowed alone inside []", "use x[a:b]");
        case ExprKind::kCall: {
            const Value callee = eval(*e.kids[0], scope);
            return call(callee, eval_args(e.args, scope));
        }
        case ExprKind::kFilter:
            return eval_filter(e, scope, nullptr);
        case ExprKind::kTest: {
            const Value v = eval(*e.kids[0], scope);
            if (!e.test)
                throw TemplateError("No test named '" + e.name + "'",
                                    "jinja2 has no such built-in; check the spelling");
            CallArgs args = eval_args(e.args, scope);
            return Value::boolean((*e.test)(v, args));
        }
        case ExprKind::kNeg:
            return negate(eval(*e.kids[0], scope));
        case ExprKind::kPos:
            return unary_plus(eval(*e.kids[0], scope));
        case ExprKind::kNot:
            return Value::boolean(!eval(*e.kids[0], scope).truthy());
        case ExprKind::kBinary:
            return binary_op(e.op, eval(*e.kids[0], scope), eval(*e.kids[1], scope));
        case ExprKind::kConcat: {
            std::string out;
            for (const ExprPtr& k : e.kids) {
                out += eval(*k, scope).str();
                check_string_size(out.size());
            }
            return Value::string(std::move(out));
        }
        case ExprKind::kCompare:
            return eval_compare(e, scope);
        case ExprKind::kAnd: {
            Value left = eval(*e.kids[0], scope);
            return left.truthy() ? eval(*e.kids[1], scope) : left;
        }
        case ExprKind::kOr: {
            Value left = eval(*e.kids[0], scope);
            return left.truthy() ? left : eval(*e.kids[1], scope);
        }
        case ExprKind::kCond:
            if (eval(*e.kids[1], scope).truthy()) return eval(*e.kids[0], scope);
            if (e.kids[2]) return eval(*e.kids[2], scope);
            return Value::undefined(
                "the inline if-expression evaluated to false and no else section was defined.");
    }
    return Value();
}

}  // namespace

std::string render(const Program& program, const DictData& context, const Limits& limits) {
    const BuildBudget budget(limits.max_built_bytes);
    return Interpreter(limits).render(program, context);
}

}  // namespace llmforge::jinja
