// jinja2's symbol analysis (jinja2/idtracking.py: Symbols, RootVisitor, FrameSymbolVisitor),
// transcribed to find the names each frame starts as undefined (see symbols.h).
#include "tokenizer/jinja/symbols.h"

#include <map>
#include <set>

namespace llmforge::jinja {

namespace {

// How a frame's local gets its first value (jinja2's VAR_LOAD_*).
enum class Load { kParameter, kResolve, kAlias, kUndefined };

class Symbols {
  public:
    explicit Symbols(const Symbols* parent) : parent_(parent) {}

    bool has_ref(const std::string& name) const {
        for (const Symbols* s = this; s; s = s->parent_)
            if (s->refs_.count(name)) return true;
        return false;
    }
    void load(const std::string& name) {
        if (!has_ref(name)) refs_[name] = Load::kResolve;
    }
    void store(const std::string& name) {
        stores_.insert(name);
        if (refs_.count(name)) return;
        refs_[name] = parent_ && parent_->has_ref(name) ? Load::kAlias : Load::kUndefined;
    }
    void declare_parameter(const std::string& name) {
        stores_.insert(name);
        refs_[name] = Load::kParameter;
    }

    // Merges the symbols of an if's branches (body, elifs, else); a name assigned in only some
    // of them keeps the outer value where it is not assigned.
    void branch_update(const std::vector<Symbols>& branches) {
        std::map<std::string, size_t> stored_in;
        for (const Symbols& b : branches)
            for (const std::string& name : b.stores_)
                if (!stores_.count(name)) ++stored_in[name];
        for (const Symbols& b : branches) {
            for (const auto& [name, load] : b.refs_) refs_[name] = load;
            stores_.insert(b.stores_.begin(), b.stores_.end());
        }
        for (const auto& [name, count] : stored_in) {
            if (count == branches.size()) continue;
            refs_[name] = parent_ && parent_->has_ref(name) ? Load::kAlias : Load::kResolve;
        }
    }

    std::vector<std::string> undefined() const {
        std::vector<std::string> out;
        for (const auto& [name, load] : refs_)
            if (load == Load::kUndefined) out.push_back(name);
        return out;
    }

  private:
    const Symbols* parent_;
    std::map<std::string, Load> refs_;
    std::set<std::string> stores_;
};

// FrameSymbolVisitor: the names one frame mentions, not descending into inner frames.
class FrameVisitor {
  public:
    explicit FrameVisitor(Symbols& symbols) : sym_(&symbols) {}

    void statements(const Body& body) {
        for (const StmtPtr& s : body) statement(*s);
    }

    void expression(const Expr& e) {
        if (e.kind == ExprKind::kName) sym_->load(e.name);
        for (const ExprPtr& k : e.kids)
            if (k) expression(*k);
        for (const ExprPtr& a : e.args.pos) expression(*a);
        for (const Keyword& k : e.args.kw) expression(*k.value);
        if (e.args.star) expression(*e.args.star);
        if (e.args.star_star) expression(*e.args.star_star);
    }

    void target(const Expr& t) {
        if (t.kind == ExprKind::kName) {
            sym_->store(t.name);
        } else if (t.kind == ExprKind::kTuple) {
            for (const ExprPtr& k : t.kids) target(*k);
        } else {  // ns.attr
            sym_->load(t.kids[0]->name);
        }
    }

    void parameters(const Expr& t) {
        if (t.kind == ExprKind::kTuple) {
            for (const ExprPtr& k : t.kids) parameters(*k);
        } else {
            sym_->declare_parameter(t.name);
        }
    }
    void parameter(const std::string& name) { sym_->declare_parameter(name); }

  private:
    void statement(const Stmt& s) {
        switch (s.kind) {
            case StmtKind::kOutput:
            case StmtKind::kFor:  // only the iterable belongs to this frame
            case StmtKind::kCallBlock:
            case StmtKind::kFilterBlock:
                expression(*s.expr);
                break;
            case StmtKind::kIf:
                visit_if(s.branches[0], &s.branches, &s.else_body);
                break;
            case StmtKind::kSet:
                expression(*s.expr);
                target(*s.target);
                break;
            case StmtKind::kSetBlock:
                target(*s.target);
                break;
            case StmtKind::kMacro:
                sym_->store(s.name);
                break;
            case StmtKind::kWith:
                for (const ExprPtr& v : s.values) expression(*v);
                break;
            default:  // text, break, continue, blocks
                break;
        }
    }

    // jinja2 keeps the elifs of an if as nested ifs without elif or else of their own.
    void visit_if(const IfBranch& top, const std::vector<IfBranch>* all, const Body* else_body) {
        expression(*top.test);
        Symbols* outer = sym_;
        auto branch = [&](auto&& visit) {
            Symbols copy = *outer;
            sym_ = &copy;
            visit();
            sym_ = outer;
            return copy;
        };
        std::vector<Symbols> branches;
        branches.push_back(branch([&] { statements(top.body); }));
        branches.push_back(branch([&] {
            if (all)
                for (size_t i = 1; i < all->size(); ++i) visit_if((*all)[i], nullptr, nullptr);
        }));
        branches.push_back(branch([&] {
            if (else_body) statements(*else_body);
        }));
        outer->branch_update(branches);
    }

    Symbols* sym_;
};

void resolve_frames(Body& body, const Symbols& frame);

// jinja2's find_undeclared: whether any expression under `body` reads `name`.
bool reads_name(const Expr& e, const char* name) {
    if (e.kind == ExprKind::kName && e.name == name) return true;
    auto any = [name](const std::vector<ExprPtr>& xs) {
        for (const ExprPtr& x : xs)
            if (x && reads_name(*x, name)) return true;
        return false;
    };
    if (any(e.kids) || any(e.args.pos)) return true;
    for (const Keyword& k : e.args.kw)
        if (reads_name(*k.value, name)) return true;
    return (e.args.star && reads_name(*e.args.star, name)) ||
           (e.args.star_star && reads_name(*e.args.star_star, name));
}

bool reads_name(const Body& body, const char* name) {
    for (const StmtPtr& s : body) {
        for (const Expr* e : {s->expr.get(), s->cond.get()})
            if (e && reads_name(*e, name)) return true;
        for (const auto& group : {&s->defaults, &s->values})
            for (const ExprPtr& e : *group)
                if (reads_name(*e, name)) return true;
        for (const IfBranch& b : s->branches)
            if (reads_name(*b.test, name) || reads_name(b.body, name)) return true;
        if (reads_name(s->body, name) || reads_name(s->else_body, name)) return true;
    }
    return false;
}

// A frame of its own: `setup` declares what the frame starts with, then its body is visited;
// returns the names it starts as undefined after resolving the frames inside it.
template <typename Setup>
std::vector<std::string> resolve_frame(Body& body, const Symbols* parent, Setup setup) {
    Symbols sym(parent);
    FrameVisitor v(sym);
    setup(v);
    v.statements(body);
    resolve_frames(body, sym);
    return sym.undefined();
}

void resolve_statement(Stmt& s, const Symbols& frame) {
    auto signature = [&s](FrameVisitor& v) {
        for (const std::string& p : s.params) v.parameter(p);
        for (const ExprPtr& d : s.defaults) v.expression(*d);
    };
    auto nothing = [](FrameVisitor&) {};
    switch (s.kind) {
        case StmtKind::kIf:
            for (IfBranch& b : s.branches) resolve_frames(b.body, frame);
            resolve_frames(s.else_body, frame);
            break;
        case StmtKind::kFor:
            s.locals =
                resolve_frame(s.body, &frame, [&s](FrameVisitor& v) { v.parameters(*s.target); });
            s.else_locals = resolve_frame(s.else_body, &frame, nothing);
            break;
        case StmtKind::kMacro:
        case StmtKind::kCallBlock:
            s.locals = resolve_frame(s.body, &frame, signature);
            s.uses_caller = reads_name(s.body, "caller");
            s.catch_varargs = reads_name(s.body, "varargs");
            s.catch_kwargs = reads_name(s.body, "kwargs");
            break;
        case StmtKind::kWith:
            s.locals = resolve_frame(s.body, &frame, [&s](FrameVisitor& v) {
                for (const ExprPtr& t : s.targets) v.parameters(*t);
            });
            break;
        case StmtKind::kSetBlock:
        case StmtKind::kFilterBlock:
        case StmtKind::kGeneration:
            s.locals = resolve_frame(s.body, &frame, nothing);
            break;
        default:
            break;
    }
}

void resolve_frames(Body& body, const Symbols& frame) {
    for (StmtPtr& s : body) resolve_statement(*s, frame);
}

}  // namespace

void resolve_locals(Program& program) {
    program.locals = resolve_frame(program.body, nullptr, [](FrameVisitor&) {});
}

}  // namespace llmforge::jinja
