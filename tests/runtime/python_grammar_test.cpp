// grammars/python.gbnf behind the indentation lexer (issue 15, item 4): whatever the constrained
// matcher lets through is a program CPython compiles. The reference is CPython itself:
//  * hand-written programs the subset covers are accepted, and python3 compiles them;
//  * random walks of the matcher (hundreds of programs, each character chosen among those the
//    grammar allows) all pass `py_compile` — the real proof of "the output always parses";
//  * programs CPython rejects (bad indentation, return / break out of place, repeated parameters,
//    keywords as names, unclosed brackets) are rejected, and python3 agrees they are errors;
//  * the grammar stage runs the lexer; generation with real models (in process, and through
//    `llmforge generate --grammar-file grammars/python.gbnf`): prefixes are accepted, and what
//    ended by the grammar compiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "core/error.h"
#include "model/model.h"
#include "model/vocab_source.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "runtime/grammar_internal.h"
#include "runtime/indent_lexer.h"
#include "test_util.h"

using namespace llmforge;
using test::src_path;
using nlohmann::json;

namespace {

std::shared_ptr<const Grammar> python_grammar() {
    static std::shared_ptr<const Grammar> g = [] {
        const std::string text = test::read_file(src_path("grammars/python.gbnf"));
        EXPECT_FALSE(text.empty()) << "missing grammars/python.gbnf (set LLMFORGE_SRC to the source tree)";
        return Grammar::parse(text, "root", "python.gbnf");
    }();
    return g;
}

bool accepts(const std::string& text) {
    IndentedMatcher m(python_grammar());
    return m.accept(text) && m.can_end();
}

bool have_python() { return test::run_command("python3 -c pass >/dev/null 2>&1") == 0; }

// Compiles every source with CPython's py_compile (one python3 run); returns per source "" when it
// compiles, else CPython's message.
std::vector<std::string> py_compile_all(const std::vector<std::string>& sources) {
    const std::string dir = test::temp_dir();
    for (size_t i = 0; i < sources.size(); ++i) test::write_file(dir + "/p" + std::to_string(i) + ".py", sources[i]);
    test::write_file(dir + "/check.py", R"PY(
import json, os, py_compile, sys, warnings
warnings.simplefilter("ignore")
d, n = sys.argv[1], int(sys.argv[2])
out = []
for i in range(n):
    p = os.path.join(d, "p%d.py" % i)
    try:
        py_compile.compile(p, cfile=p + "c", doraise=True)
        out.append("")
    except py_compile.PyCompileError as e:
        out.append(str(e.msg).strip().splitlines()[-1] or "error")
json.dump(out, sys.stdout)
)PY");
    std::string out;
    const int rc = test::run_command("python3 " + dir + "/check.py " + dir + " " + std::to_string(sources.size()), &out);
    EXPECT_EQ(rc, 0) << out;
    if (rc != 0) return std::vector<std::string>(sources.size(), "python3 failed");
    return json::parse(out).get<std::vector<std::string>>();
}

const std::vector<std::string> kPrograms = {
    "",
    "x = 1\n",
    "x = 1",
    "import os\nimport os.path as p, sys\nfrom collections import OrderedDict as OD, defaultdict\n",
    "from a.b import (c, d)\n",
    "def add(a, b):\n    return a + b\n",
    "def f(x, y=2, z=3):\n    \"\"\n    return x * y - z\n",
    "def f(n: int, s: str = 'a') -> int:\n    return n\n",
    "class Point:\n    def __init__(self, x, y):\n        self.x = x\n        self.y = y\n\n    def norm(self):\n"
    "        return (self.x ** 2 + self.y ** 2) ** 0.5\n",
    "class A(B, metaclass=M):\n    pass\n",
    "@property\ndef f(self):\n    return self._f\n",
    "@functools.lru_cache(maxsize=None)\ndef fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for i in range(10):\n    if i % 2 == 0:\n        continue\n    elif i > 7:\n        break\n    else:\n        print(i)\nelse:\n    pass\n",
    "while True:\n    x += 1\n    if x >= 10: break\n",
    "try:\n    f()\nexcept ValueError as e:\n    raise RuntimeError('bad') from e\nexcept (KeyError, IndexError):\n    pass\nexcept:\n    raise\nelse:\n    ok = True\nfinally:\n    done = 1\n",
    "try:\n    pass\nfinally:\n    pass\n",
    "with open(p) as f, lock:\n    data = f.read()\n",
    "x = [i * i for i in range(10) if i % 3]\n",
    "d = {k: v for k, v in items}\ns = {a for a in b}\ng = sum(x for x in y)\n",
    "t = (1,)\ne = ()\nl = []\nm = {}\nn = {1, 2, 3}\n",
    "y = lambda a, b: a if a > b else b\nz = lambda: 0\n",
    "a, b = b, a\nx = y = 0\nx[1:2] = y[::2]\nobj.attr[0].k = 3\n",
    "x += 1\nx //= 2\nx **= 3\nx >>= 1\nx @= m\n",
    "print('hello', end='', sep=' ')\nprint(*args)\nf(a, *b, c=1, **d)\n",
    "s = 'it\\'s' + \"q\\\"\" + r'\\d+' + f'{name!r:>10} {x.y[0]}' + 'a' 'b'\n",
    "s = '\\x41\\u00e9\\n\\t\\\\'\nu = '\xc3\xa9t\xc3\xa9'\n",
    "n = 0\nm = 10 if False else 0\n",
    "z = 0x1F + 1.5e-3 + 2. + 0.0 + 3e8\n",
    "if not a and b or c is not None and d not in e:\n    pass\n",
    "x = -y + ~z * +w // 2 % 3 | 4 & 5 ^ 6 << 1 >> 2\n",
    "assert x == 1, 'x must be 1'\n",
    "del x, y.z, w[0]\n",
    "x = 1  # a comment\n# a line comment\n    # an indented comment line\ny = 2\n",
    "if x:\n    y = 1\n\n\n    z = 2\n",
    "def outer():\n    def inner():\n        return 1\n    for i in x:\n        def g():\n            return i\n        break\n    return inner\n",
    "x = 1; y = 2; z = 3\n",
    "result = ', '.join(str(i) for i in nums)\n",
    "value = data['key'][0].strip().lower()\n",
    "if a: b = 1\nelif c: b = 2\nelse: b = 3\n",
    "while a < b < c <= d != e:\n    a = a - -1\n",
    "x = ...\n",
    "x = [1, 2][0] + {'a': 1}['a'] + 'abc'[1:]\n",
    "f(a = 1, key = len)\nx = 1;\n",
    "def f():\n    x = 1\n            \n  \n    return x\n",
};

// Valid Python that lies outside the subset, or invalid Python: both must be rejected; `invalid`
// marks those CPython must reject too.
struct Negative {
    std::string text;
    bool invalid;
};
const std::vector<Negative> kNegatives = {
    {"return 1\n", true},
    {"break\n", true},
    {"continue\n", true},
    {"class A:\n    return 1\n", true},
    {"def f():\n    class A:\n        return 1\n", true},
    {"for x in y:\n    def f():\n        break\n", true},
    {"for x in y:\n    class A:\n        continue\n", true},
    {"while x:\n    pass\nelse:\n    break\n", true},
    {"def f(a, a):\n    pass\n", true},
    {"def f(a=1, b):\n    pass\n", true},
    {"f(a=1, a=2)\n", true},
    {"f(a=1, b)\n", true},
    {"f(x for x in y, 1)\n", true},
    {"lambda a, a: 0\n", true},
    {"if x:\ny = 1\n", true},
    {"if x:\n    y = 1\n  z = 2\n", true},
    {" x = 1\n", true},
    {"x = 1\n    y = 2\n", true},
    {"x = (1,\n 2)\n", false},
    {"x = (1, 2\n", true},
    {"x = [1, 2", true},
    {"x = 'abc\n", true},
    {"x = '\\x4'\n", true},
    {"x = 01\n", true},
    {"f() = 1\n", true},
    {"1 = x\n", true},
    {"None = 1\n", true},
    {"x.if = 1\n", true},
    {"__debug__ = 1\n", true},
    {"from __future__ import braces\n", true},
    {"try:\n    pass\n", true},
    {"try:\n    pass\nexcept:\n    pass\nexcept E:\n    pass\n", true},
    {"if x:\n\tpass\n", false},
    {"def f(b, a):\n    pass\n", false},
    {"x = '''doc'''\n", false},
    {"x = 1 + \\\n    2\n", false},
    {"x = yield\n", true},
    {"x = f'{}'\n", true},
    {"x = f'}'\n", true},
    {"a == not b\n", true},
    {"x = 1 +\n", true},
    {"if x:\n", true},
};

// ------------------------------------------------------------------ random walks of the matcher

// The matcher state of a walk: lexer + grammar stacks over one shared stack pool (the public
// GrammarMatcher copies its pool on every copy, too slow for ~10^6 tries).
struct WalkState {
    IndentLexerState lex;
    MatchState st;
};

class Walker {
public:
    explicit Walker(const Grammar& g) : pool_(&g.impl()) {}
    WalkState start() {
        WalkState w;
        w.st.stacks = pool_.initial();
        return w;
    }
    bool step(WalkState& w, std::string_view piece) {
        WalkState n = w;
        std::string out;
        if (!indent_feed(n.lex, piece, out)) return false;
        if (!advance_bytes(pool_, n.st, out, scratch_)) return false;
        const std::string need = indent_lookahead(n.lex);  // steer as a mask would
        if (!need.empty()) {
            MatchState probe = n.st;
            if (!advance_bytes(pool_, probe, need, scratch_)) return false;
        }
        w = std::move(n);
        return true;
    }
    bool can_end(const WalkState& w) {
        MatchState s = w.st;
        return w.lex.utf8_need == 0 && advance_bytes(pool_, s, indent_finish(w.lex), scratch_) && !s.stacks.empty() &&
               s.stacks.front() == 0;
    }

private:
    StackPool pool_;
    std::vector<uint32_t> scratch_;
};

// Python words the walk may take in one step (as a model's tokens would), besides single chars.
const std::vector<std::string> kWords = {
    "if ", "elif ", "else", "for ", " in ", "while ", "def ", "class ", "return", "try", "except", "finally",
    "with ", " as ", "lambda", "import ", "from ", "raise", "assert ", "pass", "break", "continue", "not ",
    " and ", " or ", " if ", " else ", " for ", " is ", "True", "None", "self", "del ", "    ", "f'", "r'",
    "(", "[", "{", " = ", ", ", ":", "\n", "'", "0", "x", "print",
};

// What the text leaves open, innermost last: quotes (' or "), brackets, and '{' for an f-string's
// replacement field. A small scanner of the subset's tokens, only to steer the walk's ending.
std::string open_stack(const std::string& text) {
    std::string st;
    std::vector<bool> fstr;  // per open quote: an f-string
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        const bool in_str = !st.empty() && (st.back() == '\'' || st.back() == '"');
        if (in_str) {
            if (c == '\\') {
                ++i;
            } else if (c == st.back()) {
                st.pop_back();
                fstr.pop_back();
            } else if (c == '{' && fstr.back()) {
                if (i + 1 < text.size() && text[i + 1] == '{') {
                    ++i;
                } else {
                    st += '{';
                }
            }
            continue;
        }
        if (c == '#' && st.empty()) {  // (no comment inside brackets: they cannot span lines)
            while (i < text.size() && text[i] != '\n') ++i;
        } else if (c == '\'' || c == '"') {
            st += c;
            fstr.push_back(i > 0 && text[i - 1] == 'f');
        } else if (c == '(' || c == '[' || c == '{') {
            st += c;
        } else if ((c == ')' || c == ']' || c == '}') && !st.empty()) {
            st.pop_back();
        }
    }
    return st;
}

// One random program: a free phase of `budget` bytes, then a finishing phase that prefers what
// closes (quotes, brackets), ends lines, and completes blocks, until the text can end.
// Returns false when it does not finish within budget + 600 bytes.
bool random_program(Walker& wk, std::mt19937_64& rng, size_t budget, std::string& text) {
    WalkState w = wk.start();
    text.clear();
    std::uniform_real_distribution<double> uni(0.0, 1.0);
    std::vector<std::pair<double, std::string>> order;
    auto try_weighted = [&](const std::vector<std::pair<std::string, double>>& cands) {
        order.clear();
        for (const auto& [s, weight] : cands) order.push_back({-std::log(uni(rng) + 1e-300) / weight, s});
        std::sort(order.begin(), order.end());
        for (const auto& [key, s] : order)
            if (wk.step(w, s)) {
                text += s;
                return true;
            }
        return false;
    };
    std::vector<std::pair<std::string, double>> chars;
    for (int c = 0x20; c < 0x7f; ++c)
        chars.push_back({std::string(1, static_cast<char>(c)), std::isalnum(c) ? 1.0 : (c == ' ' ? 4.0 : 2.0)});
    chars.push_back({"\n", 6.0});
    std::vector<std::pair<std::string, double>> words;
    for (const std::string& s : kWords) words.push_back({s, 1.0});
    // In order (after closing what is open, ending the line — also a comment's — and ending a
    // header): complete an operand or a block, and while pending indent.
    const std::vector<std::vector<std::pair<std::string, double>>> finishing = {
        {{"pass", 1}, {"0", 1}, {"x", 1}, {"except", 1}, {"finally", 1}},
        {{" ", 1}},
    };
    while (text.size() < budget) {
        if (uni(rng) < 0.25 && try_weighted(words)) continue;
        if (!try_weighted(chars)) {
            text += "<<dead end>>";  // no character can continue: a grammar bug
            return false;
        }
    }
    for (size_t guard = 0; guard < 600; ++guard) {
        if (wk.can_end(w)) return true;
        bool moved = false;
        const std::string open = open_stack(text);
        if (!open.empty()) {
            const char o = open.back();
            const std::string closer(1, o == '(' ? ')' : o == '[' ? ']' : o == '{' ? '}' : o);
            if (wk.step(w, closer)) {
                text += closer;
                continue;
            }
        }
        // '\n' only ends a line; while pending it would just add blank lines.
        if ((w.lex.pending < 0 || w.lex.comment) && wk.step(w, "\n")) {
            text += "\n";
            continue;
        }
        // End a header or an open expression, in this order (a def's name wants its parameters).
        const size_t bol = std::min(text.size(), text.find_first_not_of(' ', text.rfind('\n') + 1));
        const bool def_name = text.compare(bol, 4, "def ") == 0 && text.find('(', bol) == std::string::npos;
        for (const char* s : {":", " else ", " = ", " in ", " import ", def_name ? "(" : ""}) {
            if (*s && w.lex.pending < 0 && wk.step(w, s)) {
                text += s;
                moved = true;
                break;
            }
        }
        if (moved) continue;
        for (const auto& group : finishing) {
            if ((moved = try_weighted(group))) break;
        }
        if (!moved && !try_weighted(chars)) {
            text += "<<dead end>>";
            return false;
        }
    }
    text += "<<did not finish>>";
    return false;
}

}  // namespace

TEST(PythonGrammar, ParsesAndAsksForTheLexer) {
    const std::string text = test::read_file(src_path("grammars/python.gbnf"));
    ASSERT_FALSE(text.empty());
    EXPECT_TRUE(grammar_wants_indent_lexer(text));
    EXPECT_EQ(text.rfind("# llmforge: indent-lexer\n", 0), 0u) << "the directive must be the first line";
    ASSERT_NO_THROW(python_grammar());
}

TEST(PythonGrammar, AcceptsProgramsThatCompile) {
    for (const std::string& p : kPrograms) EXPECT_TRUE(accepts(p)) << "rejected:\n" << p;
    if (!have_python()) GTEST_SKIP() << "python3 is not available to confirm the programs compile";
    const std::vector<std::string> errs = py_compile_all(kPrograms);
    for (size_t i = 0; i < kPrograms.size(); ++i)
        EXPECT_EQ(errs[i], "") << "python3 rejects a program the test expects to be valid:\n" << kPrograms[i];
}

TEST(PythonGrammar, RejectsWhatCompilerRejects) {
    std::vector<std::string> invalid;
    for (const Negative& n : kNegatives) {
        EXPECT_FALSE(accepts(n.text)) << "accepted:\n" << n.text;
        if (n.invalid) invalid.push_back(n.text);
    }
    if (!have_python()) GTEST_SKIP() << "python3 is not available to confirm the programs are errors";
    const std::vector<std::string> errs = py_compile_all(invalid);
    for (size_t i = 0; i < invalid.size(); ++i)
        EXPECT_NE(errs[i], "") << "python3 compiles a program the test calls invalid:\n" << invalid[i];
}

TEST(PythonGrammar, KeywordsAreNotNames) {
    if (!have_python()) GTEST_SKIP() << "python3 is not available to list its keywords";
    std::string out;
    ASSERT_EQ(test::run_command("python3 -c \"import keyword; print(' '.join(keyword.kwlist))\"", &out), 0);
    std::istringstream in(out);
    std::vector<std::string> kws;
    for (std::string kw; in >> kw;) kws.push_back(kw);
    int n = 0;
    for (const std::string& kw : kws) {
        ++n;
        EXPECT_FALSE(accepts(kw + " = 1\n")) << kw;
        EXPECT_FALSE(accepts("x." + kw + " = 1\n")) << kw;
        EXPECT_FALSE(accepts("def " + kw + "():\n    pass\n")) << kw;
        EXPECT_TRUE(accepts(kw + "_ = 1\n")) << kw;
        EXPECT_TRUE(accepts(kw + "x = 1\n")) << kw;
        EXPECT_TRUE(accepts("x." + kw + "0 = 1\n")) << kw;
        const std::string prefix = kw.substr(0, kw.size() - 1);  // "as" -> "a", "def" -> "de"
        if (std::find(kws.begin(), kws.end(), prefix) == kws.end()) {
            EXPECT_TRUE(accepts(prefix + " = 1\n")) << prefix;
        }
    }
    EXPECT_GE(n, 30);
    EXPECT_TRUE(accepts("match = case = _ = 1\n"));  // soft keywords are names
    EXPECT_TRUE(accepts("a = i = d = no = de = 1\n"));
}

TEST(PythonGrammar, RandomWalksAllCompile) {
    if (!have_python()) GTEST_SKIP() << "python3 is not available to compile the programs";
    const auto g = python_grammar();
    Walker wk(*g);
    const char* seed_env = std::getenv("LLMFORGE_WALK_SEED");  // other seeds for longer soak runs
    std::mt19937_64 rng(seed_env && *seed_env ? std::stoull(seed_env) : 20261206);
    std::vector<std::string> programs;
    int unfinished = 0;
    for (int i = 0; programs.size() < 400 && i < 600; ++i) {
        std::string text;
        const size_t budget = 20 + rng() % 260;
        bool done = false;
        try {
            done = random_program(wk, rng, budget, text);
        } catch (const Error& e) {
            ADD_FAILURE() << e.what() << " after:\n" << text;
            continue;
        }
        if (done) {
            programs.push_back(text);
        } else if (++unfinished <= 5) {
            ADD_FAILURE() << "walk " << i << " did not end:\n" << text;
        }
    }
    EXPECT_EQ(unfinished, 0);
    ASSERT_GE(programs.size(), 300u);
    // The public path (IndentedMatcher over GrammarMatcher) agrees with the walker's.
    for (size_t i = 0; i < programs.size(); i += 7) EXPECT_TRUE(accepts(programs[i])) << programs[i];
    // They are real programs: blocks, functions, loops appear (a walk stuck in one-liners would
    // prove little).
    int blocks = 0, defs = 0, loops = 0, strings = 0;
    for (const std::string& p : programs) {
        blocks += p.find(":\n ") != std::string::npos;
        defs += p.find("def ") != std::string::npos;
        loops += p.find("for ") != std::string::npos || p.find("while ") != std::string::npos;
        strings += p.find('\'') != std::string::npos;
    }
    EXPECT_GE(blocks, 20);
    EXPECT_GE(defs, 10);
    EXPECT_GE(loops, 10);
    EXPECT_GE(strings, 30);
    const std::vector<std::string> errs = py_compile_all(programs);
    int bad = 0;
    for (size_t i = 0; i < programs.size(); ++i) {
        if (errs[i].empty()) continue;
        if (++bad <= 10) ADD_FAILURE() << "py_compile: " << errs[i] << "\n----\n" << programs[i] << "\n----";
    }
    EXPECT_EQ(bad, 0) << "of " << programs.size() << " programs";
    const char* keep = std::getenv("LLMFORGE_KEEP_WALKS");  // for eyeballing: a folder to copy them to
    if (keep && *keep)
        for (size_t i = 0; i < programs.size(); ++i)
            test::write_file(std::string(keep) + "/walk" + std::to_string(i) + ".py", programs[i]);
}

// ------------------------------------------------------------------ generation with real models

namespace {

// Forwards to a stage kept across generations (reset() between them keeps its mask caches), so
// that many seeds cost what one long generation does.
class SharedStage final : public SamplerStage {
public:
    explicit SharedStage(SamplerStage* s) : s_(s) {}
    const char* name() const override { return s_->name(); }
    void apply(Candidates& c, const SamplerContext& ctx) override { s_->apply(c, ctx); }
    void accept(int32_t t, const SamplerContext& ctx) override { s_->accept(t, ctx); }
    void reset() override { s_->reset(); }

private:
    SamplerStage* s_;
};

// Raises the logits of end-of-generation tokens by `bias` once `after` tokens (prompt included)
// were accepted: the length knob of these tests. The small test models never choose to end on
// their own (no generation of theirs ends within the context unbiased), yet the claim is about
// the texts that do end. The grammar stage still decides which tokens are valid: end of
// generation passes it only where the text is a whole program.
class EogBias final : public SamplerStage {
public:
    EogBias(int after, float bias) : after_(after), bias_(bias) {}
    const char* name() const override { return "eog-bias"; }
    void apply(Candidates& c, const SamplerContext& ctx) override {
        if (seen_ < after_) return;
        for (Candidate& x : c.items)
            if (ctx.tokenizer->is_eog(x.id)) x.logit += bias_;
        c.sorted = false;
        c.has_p = false;
    }
    void accept(int32_t, const SamplerContext&) override { ++seen_; }
    void reset() override { seen_ = 0; }

private:
    int after_, seen_ = 0;
    float bias_;
};

struct GenTally {
    int finished = 0, cut = 0;
    std::vector<std::string> programs;  // the finished ones
};

// Generates `seeds` texts at temperature 1 under python.gbnf; each must be a prefix the lexer and
// the grammar accept, and those that ended with end-of-generation whole programs. Seeds above
// `unbiased` add EogBias (after 16, 48 or 96 tokens, in turn) so that some generations end.
void generate_python(const Model& model, const Tokenizer& tok, int seeds, int64_t max_tokens, GenTally& tally,
                     int unbiased) {
    auto vocab = GrammarVocab::build(tok);
    auto stage = make_grammar_stage(python_grammar(), vocab);
    for (int seed = 1; seed <= seeds; ++seed) {
        stage->reset();
        ContextParams cp;
        cp.n_ctx = 512;
        cp.n_batch = 512;
        cp.n_threads = 1;
        Context ctx(model, cp);
        SamplerParams sp;
        sp.temperature = 1.0f;
        sp.seed = static_cast<uint64_t>(seed);
        Sampler s(sp, &tok);
        s.add_stage(std::make_unique<SharedStage>(stage.get()), StageSlot::kFirst);
        if (seed > unbiased) {
            static constexpr int kAfter[] = {16, 48, 96};
            s.add_stage(std::make_unique<EogBias>(kAfter[seed % 3], 12.0f), StageSlot::kFirst);
        }
        GenerateParams gp;
        gp.max_tokens = max_tokens;
        const GenerateResult r = generate(ctx, tok, s, {tok.bos()}, gp);
        IndentedMatcher m(python_grammar());
        EXPECT_TRUE(m.accept(r.text)) << "seed " << seed << ": not a prefix:\n" << r.text;
        const GrammarCheck chk = grammar_check(*python_grammar(), r.text);
        if (r.finish_reason == "stop") {
            ++tally.finished;
            EXPECT_TRUE(m.can_end()) << "seed " << seed << ": ended before the program did:\n" << r.text;
            EXPECT_TRUE(chk.accepted) << "seed " << seed << ": " << chk.reason;
            tally.programs.push_back(r.text);
        } else {
            ++tally.cut;
            EXPECT_EQ(r.finish_reason, "length");
            EXPECT_TRUE(chk.accepted || chk.reason == "text ends before the grammar does") << chk.reason;
        }
    }
}

}  // namespace

// The grammar stage runs the lexer for grammars that ask for it: a probe grammar that needs it
// (NEWLINE from '\n') lets '\n' through after "a" and nothing else but spaces/comments/blank lines.
TEST(PythonGrammar, StageRunsTheLexer) {
    LF_REQUIRE_ASSET(tokp, "llama2c-stories260K/tok512.bin");
    auto tok = Tokenizer::create(load_vocab(tokp, 512));
    auto g = Grammar::parse("# llmforge: indent-lexer\nroot ::= \"a\" NL \"b\" NL\nNL ::= \"\\uE000\"\n", "root", "probe");
    ASSERT_TRUE(g->uses_indent_lexer());
    auto stage = make_grammar_stage(g, GrammarVocab::build(*tok));
    SamplerContext ctx{tok.get()};
    auto allowed = [&]() {
        Candidates c;
        for (int32_t i = 0; i < tok->n_vocab(); ++i) c.items.push_back({i, 0.0f, 0});
        stage->apply(c, ctx);
        std::set<std::string> out;
        for (const Candidate& x : c.items) out.insert(tok->is_eog(x.id) ? "<eog>" : tok->token_to_piece(x.id));
        return out;
    };
    auto piece_id = [&](const std::string& p) {
        for (int32_t i = 0; i < tok->n_vocab(); ++i)
            if (!tok->is_hidden(i) && !tok->is_eog(i) && tok->token_to_piece(i) == p) return i;
        ADD_FAILURE() << "no token spells '" << p << "'";
        return int32_t{0};
    };
    // At the start: "a", or what the lexer skips before the first line (blank lines, comment
    // lines, and spaces, whose INDENT only the next character would reject).
    EXPECT_EQ(allowed(), (std::set<std::string>{"a", "\n", " ", "#"}));
    stage->accept(piece_id("a"), ctx);
    const std::set<std::string> after_a = allowed();
    EXPECT_TRUE(after_a.count("\n"));
    EXPECT_FALSE(after_a.count("b"));
    EXPECT_FALSE(after_a.count(" "));
    EXPECT_FALSE(after_a.count("<eog>"));
    stage->accept(piece_id("\n"), ctx);
    const std::set<std::string> after_nl = allowed();
    EXPECT_TRUE(after_nl.count("b"));
    EXPECT_TRUE(after_nl.count("\n"));  // a blank line
    EXPECT_FALSE(after_nl.count("a"));
    stage->accept(piece_id("b"), ctx);
    EXPECT_TRUE(allowed().count("<eog>"));  // "a\nb": the lexer's final NEWLINE completes it
    // grammar_check and GrammarMatcher see the text through the lexer, too.
    EXPECT_TRUE(grammar_check(*g, "a\nb").accepted);
    EXPECT_TRUE(grammar_check(*g, "\n# c\na\n\n  \nb\n").accepted);
    const GrammarCheck bad = grammar_check(*g, "a\n  b\n");
    EXPECT_FALSE(bad.accepted);
    EXPECT_EQ(bad.fail_offset, 4) << bad.reason;  // the 'b' that makes the lexer emit INDENT
    // Offsets count code points of the original text (the lexer's input), not bytes.
    const GrammarCheck dedent = grammar_check(*python_grammar(), "def f(x):\n    if x:\n        return 1\n  return 2\n");
    EXPECT_FALSE(dedent.accepted);
    EXPECT_EQ(dedent.fail_offset, 39) << dedent.reason;
    EXPECT_NE(dedent.reason.find("does not match any outer indentation level"), std::string::npos) << dedent.reason;
    const GrammarCheck tab = grammar_check(*python_grammar(), "x = '\xc3\xa9'\nif x:\n\ty = 1\n");
    EXPECT_EQ(tab.fail_offset, 14) << tab.reason;
    EXPECT_EQ(grammar_check(*python_grammar(), "x = (1,\n").fail_offset, 7);
    EXPECT_TRUE(grammar_check(*python_grammar(), "def f(x):\n    return x").accepted);
    GrammarMatcher m(g);
    EXPECT_TRUE(m.accept("a\n"));
    EXPECT_FALSE(m.can_end());
    EXPECT_TRUE(m.accept("b"));
    EXPECT_TRUE(m.can_end());
}

// Generation with the shared models at temperature 1 (TinyStories 260K: 512 tokens with byte
// fallback; llama-2-tiny-random: llama.cpp's 32k vocabulary): every text is a prefix the
// grammar accepts, and every one that ended with end-of-generation compiles with py_compile.
TEST(PythonGrammar, GenerateOutputCompiles) {
    LF_REQUIRE_ASSET(m, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(t, "llama2c-stories260K/tok512.bin");
    LF_REQUIRE_ASSET(gguf, "gguf-fixtures/llama-2-tiny-random.gguf");
    GenTally small, big;
    {
        auto model = Model::load(m, t);
        auto tok = Tokenizer::create(model->vocab());
        generate_python(*model, *tok, 60, 500, small, 20);
    }
    {
        auto model = Model::load(gguf);
        auto tok = Tokenizer::create(model->vocab());
        generate_python(*model, *tok, 20, 200, big, 5);
    }
    std::printf("ended with end-of-generation: TinyStories %d of 60, llama-2-tiny-random %d of 20\n", small.finished,
                big.finished);
    std::vector<std::string> programs = small.programs;
    programs.insert(programs.end(), big.programs.begin(), big.programs.end());
    for (size_t i = 0; i < programs.size() && i < 3; ++i) std::printf("---- a finished program:\n%s\n", programs[i].c_str());
    // With the end-of-generation bias on most seeds, programs must end (an empty program would
    // prove nothing: count the non-empty ones).
    int non_empty = 0;
    for (const std::string& p : programs) non_empty += !p.empty();
    EXPECT_GE(non_empty, 10) << "too few generations ended by the grammar to check";
    if (!have_python()) GTEST_SKIP() << "python3 is not available to compile the output";
    const std::vector<std::string> errs = py_compile_all(programs);
    for (size_t i = 0; i < programs.size(); ++i) EXPECT_EQ(errs[i], "") << programs[i];
}

// Through the CLI: `llmforge generate --grammar-file grammars/python.gbnf` prints text the
// grammar accepts; when it ended by the grammar (finish: stop), python3 compiles it.
TEST(PythonGrammar, GenerateCliOutputCompiles) {
    LF_REQUIRE_ASSET(model, "gguf-fixtures/llama-2-tiny-random.gguf");
    const std::string dir = test::temp_dir();
    std::vector<std::string> programs;
    int finished = 0;
    for (int seed = 1; seed <= 6; ++seed) {
        std::string text;
        const std::string err = dir + "/err" + std::to_string(seed);
        ASSERT_EQ(test::run_command(test::cli_path() + " generate -m " + model + " -p 'x' -n 150 --temp 1 -s " +
                                        std::to_string(seed) + " --grammar-file " + src_path("grammars/python.gbnf") +
                                        " 2>" + err,
                                    &text),
                  0)
            << test::read_file(err);
        if (!text.empty() && text.back() == '\n') text.pop_back();  // generate's own final newline
        IndentedMatcher m(python_grammar());
        EXPECT_TRUE(m.accept(text)) << "seed " << seed << ":\n" << text;
        const std::string log = test::read_file(err);
        EXPECT_NE(log.find("constrained by"), std::string::npos) << log;
        if (log.find("finish: stop") != std::string::npos) {
            ++finished;
            EXPECT_TRUE(m.can_end()) << "seed " << seed << ":\n" << text;
            programs.push_back(text);
        } else {
            EXPECT_NE(log.find("finish: length"), std::string::npos) << log;
        }
    }
    std::printf("CLI: %d of 6 generations ended by the grammar\n", finished);
    if (programs.empty()) GTEST_SKIP() << "no CLI generation ended within 150 tokens (all were checked as prefixes)";
    if (!have_python()) GTEST_SKIP() << "python3 is not available to compile the output";
    const std::vector<std::string> errs = py_compile_all(programs);
    for (size_t i = 0; i < programs.size(); ++i) EXPECT_EQ(errs[i], "") << programs[i];
}
