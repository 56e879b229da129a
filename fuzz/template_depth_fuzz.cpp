// libFuzzer target: deep and shared nesting through the chat-template engine. The input bytes
// are not template text (chat_template_fuzz does that) but a recipe: they pick a nesting depth
// from a few levels to far past jinja::kMaxValueDepth, the shape of every level (list, dict,
// tuple, siblings, a namespace, a list that shares its sublist), the leaf (string, number, ...),
// where the value enters (message content, an extra message key, tool-call arguments, tools, a
// context variable) and the template: a real one (LLMFORGE_ASSETS/chat-templates/*.jinja, else
// ../shared/assets beside the source tree, when readable), a built-in one that builds the value
// itself or takes it from the inputs and prints, serializes, compares, iterates, sorts or
// searches it, or template text nested by repetition (brackets, filters, operators, blocks).
//
// Requires: no crash (stack overflow included; libFuzzer's thread has the default stack),
// every failure is llmforge::Error on one line, and input JSON is rejected exactly when it
// nests deeper than the limit. TEMPLATE_DEPTH_FUZZ_VERBOSE=1 prints each input's recipe.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/jinja/value.h"

using namespace llmforge;
using ojson = nlohmann::ordered_json;

namespace {

// Reads the recipe; past the end it wraps around, so a short input still describes deep shapes.
class Recipe {
  public:
    Recipe(const uint8_t* data, size_t size) : data_(data), size_(size) {}
    uint8_t byte() {
        if (size_ == 0) return 0;
        return data_[pos_++ % size_];
    }
    unsigned u16() { return byte() | (unsigned{byte()} << 8); }
    size_t pick(size_t n) { return n ? byte() % n : 0; }

  private:
    const uint8_t* data_;
    size_t size_;
    size_t pos_ = 0;
};

constexpr int kLimit = jinja::kMaxValueDepth;

// Depths near the limit are the interesting ones; some are far beyond it (few: deep JSON is slow
// to build and parse under the sanitizers).
int pick_depth(Recipe& r) {
    const size_t mode = r.pick(16);
    if (mode < 5) return static_cast<int>(r.pick(16));
    if (mode < 11) return kLimit - 8 + static_cast<int>(r.pick(17));
    if (mode < 15) return kLimit + static_cast<int>(r.u16() % 4000);
    return 20000 + static_cast<int>(r.u16() % 30000);
}

// JSON text nesting `levels` containers of recipe-chosen shapes around a leaf; `*depth` gets the
// value's depth as jinja counts it. Built as text and parsed: nlohmann's parser is iterative. The
// nested member comes last in every object: an ordered_json object that grows copies its members
// (recursively), which makes deep input with later siblings quadratic to parse.
std::string deep_json(Recipe& r, int levels, int* depth) {
    struct Shape {
        const char *open, *close;
        int sibling_depth;  // of the shallow items beside the nested one
    };
    static const Shape kShapes[] = {
        {"[", "]", 0},
        {"[1, \"s\", ", ", null]", 0},
        {"{\"k\": ", "}", 0},
        {"{\"role\": \"user\", \"n\": [true, 2.5], \"content\": ", "}", 1},
        {"{\"type\": \"object\", \"properties\": ", "}", 0},
    };
    static const char* const kLeaves[] = {
        "\"text \u00e9\"", "1", "-2.5", "null", "true", "[]", "{}", "\"{{ x }}\""};
    std::vector<const Shape*> shapes;
    for (int i = 0; i < levels; ++i) shapes.push_back(&kShapes[r.pick(std::size(kShapes))]);
    const size_t leaf = r.pick(std::size(kLeaves));
    std::string text;
    for (const Shape* s : shapes) text += s->open;
    text += kLeaves[leaf];
    int d = leaf == 5 || leaf == 6 ? 1 : 0;
    for (auto it = shapes.rbegin(); it != shapes.rend(); ++it) {
        text += (*it)->close;
        d = 1 + std::max(d, (*it)->sibling_depth);
    }
    *depth = d;
    return text;
}

std::vector<std::string> real_templates() {
    std::vector<std::string> out;
    std::filesystem::path dir;
    if (const char* e = std::getenv("LLMFORGE_ASSETS"); e != nullptr && *e) {
        dir = std::filesystem::path(e) / "chat-templates";
    } else {
        dir = std::filesystem::path(__FILE__).parent_path() / ".." / ".." / "shared" / "assets" /
              "chat-templates";
    }
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
        if (entry.path().extension() != ".jinja") continue;
        std::ifstream f(entry.path(), std::ios::binary);
        std::stringstream ss;
        ss << f.rdbuf();
        out.push_back(ss.str());
    }
    return out;
}

const std::vector<ChatTemplate>& parsed_real_templates() {
    static const std::vector<ChatTemplate> kParsed = [] {
        std::vector<ChatTemplate> v;
        for (const std::string& src : real_templates()) v.emplace_back(src, "real");
        return v;
    }();
    return kParsed;
}

// What a built-in template does with an expression E (written as `@`).
const char* const kOps[] = {
    "{{ @ }}",
    "{{ @|tojson }}",
    "{{ @|tojson(indent=2, sort_keys=true) }}",
    "{{ @ == @ }}{{ @ != [@] }}",
    "{{ @ < @ }}",
    "{{ @ in [@] }}{{ @ in @ }}",
    "{{ [@, @]|sort }}",
    "{{ @|sort|list }}",
    "{{ @|string|length }}",
    "{{ @|list|length }}{{ @|length }}",
    "{{ @|unique|list }}",
    "{{ @|dictsort }}",
    "{{ @|items|list }}",
    "{{ @|max }}{{ @|min }}",
    "{{ '%s' % (@,) }}{{ '{}'.format(@) }}",
    "{{ @|batch(2)|list }}",
    "{{ @|join(',') }}",
    "{{ @|map('string')|join }}",
    "{{ @|selectattr('k')|list }}",
    "{{ {@: 1} }}",
    "{{ dict(a=@) }}{{ namespace(a=@) }}",
    "{{ [@]|first|last }}",
    "{% for x in @ recursive %}[{{ loop.depth }}{% if x is iterable and x is not string %}"
    "{{ loop(x) }}{% endif %}]{% endfor %}",
    "{% for k, v in @|items %}{{ k }}={{ v|tojson }};{% endfor %}",
    "{% set y = @ %}{{ y is mapping }}{{ y is sequence }}{{ y|default('d') }}",
    "{% macro m(v, n) %}{% if n > 0 %}{{ m([v], n - 1) }}{% else %}{{ v }}{% endif %}{% endmacro %}"
    "{{ m(@, 40) }}",
};

// Subjects: the input value in its various places, or one the template builds.
const char* const kSubjects[] = {
    "v", "messages", "tools", "messages[-1].content", "messages[0].meta", "ns.x", "[ns.x, v]"};

// One level of a value built by the template (`ns.x` wrapped N times). The last three share
// their sublist, so the value has 2^N leaves as a tree: N stays small for them (printing one
// stops at the 64 MiB string bound, seconds under the sanitizers).
const char* const kWraps[] = {"[ns.x]",
                              "{'k': ns.x}",
                              "(ns.x,)",
                              "[1, ns.x, 'a']",
                              "namespace(x=ns.x)",
                              "[ns.x]|list",
                              "{'k': [ns.x]}|dictsort",
                              "[ns.x, ns.x]",
                              "(ns.x, ns.x)",
                              "{'k': ns.x, 'j': ns.x}"};
constexpr size_t kFirstSharing = 7;

std::string built_in_template(Recipe& r) {
    std::string src;
    if (r.pick(2)) {
        // ns.x starts as an input value or [] and is wrapped N times, each level's shape taken
        // in turn from a list or fixed.
        std::vector<size_t> shapes(1 + r.pick(6));
        bool sharing = false;
        for (size_t& w : shapes) {
            w = r.pick(std::size(kWraps));
            sharing = sharing || w >= kFirstSharing;
        }
        int n = pick_depth(r);
        if (sharing) n %= 13;
        src = "{% set ns = namespace(x=" + std::string(r.pick(2) ? "v" : "[]") +
              ") %}{% for i in range(" + std::to_string(n) + ") %}";
        if (shapes.size() > 1) {
            src += "{% set s = [";
            for (size_t i = 0; i < shapes.size(); ++i)
                src += (i ? ", " : "") + std::to_string(shapes[i]);
            src += "][i % " + std::to_string(shapes.size()) + "] %}";
            for (size_t w = 0; w < std::size(kWraps); ++w)
                src += std::string(w == 0 ? "{% if" : "{% elif") + " s == " + std::to_string(w) +
                       " %}{% set ns.x = " + kWraps[w] + " %}";
            src += "{% endif %}";
        } else {
            src += std::string("{% set ns.x = ") + kWraps[shapes[0]] + " %}";
        }
        src += "{% endfor %}";
    } else {
        src = "{% set ns = namespace(x=v) %}";
    }
    std::string op = kOps[r.pick(std::size(kOps))];
    const std::string subject = kSubjects[r.pick(std::size(kSubjects))];
    for (size_t at; (at = op.find('@')) != std::string::npos;) op.replace(at, 1, subject);
    return src + op;
}

// Template text nested by repetition: the parser's and the interpreter's own bounds. (Not
// `|tojson` chains or loops over several items: they grow exponentially and only stop at the
// 64 MiB string and loop-iteration limits, seconds under the sanitizers.)
std::string nested_source(Recipe& r) {
    struct Piece {
        const char *open, *middle, *close;
    };
    static const Piece kPieces[] = {
        {"{{ ", "(", "v"},
        {"{{ ", "[", "v"},
        {"{{ ", "{'k': ", "v"},
        {"{{ v", "|list", ""},
        {"{{ v", "|e", ""},
        {"{{ v", " or v", ""},
        {"{{ v", ".k", ""},
        {"{{ v", "[0]", ""},
        {"{{ v", " + v", ""},
        {"{{ ", "not ", "v"},
        {"{{ ", "-", "1"},
        {"{{ ", "1 if v else ", "2"},
        {"{{ 1", " if v", ""},
        {"{% filter upper", "|lower", ""},
        {"", "{% if v %}", "x"},
        {"", "{% for i in [v] %}", "x"},
        {"", "{% macro m() %}", "x"},
    };
    const Piece& p = kPieces[r.pick(std::size(kPieces))];
    const size_t n = r.pick(2) ? r.pick(260) : r.u16() % 20000;
    std::string src = p.open;
    for (size_t i = 0; i < n; ++i) src += p.middle;
    src += p.close;
    const std::string m = p.middle;
    auto closing = [&]() -> std::string {
        if (m == "(") return ")";
        if (m == "[") return "]";
        if (m == "{'k': ") return "}";
        if (m == "{% if v %}") return "{% endif %}";
        if (m == "{% for i in [v] %}") return "{% endfor %}";
        if (m == "{% macro m() %}") return "{% endmacro %}";
        return "";
    }();
    for (size_t i = 0; i < n && !closing.empty(); ++i) src += closing;
    if (std::string(p.open) == "{% filter upper") return src + " %}x{% endfilter %}";
    return std::string(p.open).rfind("{{", 0) == 0 ? src + " }}" : src;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    Recipe r(data, size);
    const std::vector<ChatTemplate>& real = parsed_real_templates();
    const size_t kind = r.pick(3);

    // The deep value and where it goes; `overhead` = the levels around it in the context.
    int depth = 0;
    const int levels = pick_depth(r);
    ojson value = ojson::parse(deep_json(r, levels, &depth));
    ChatTemplateInputs in;
    in.messages = ojson::parse(R"([
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function",
          "function": {"name": "f", "arguments": {"x": 1}}}]},
        {"role": "tool", "content": "ok"},
        {"role": "user", "content": "more"}])");
    in.bos_token = "<s>";
    in.eos_token = "</s>";
    in.extra = ojson::object();
    int overhead = 0;
    switch (r.pick(6)) {
        case 0:  // messages list, message
            in.messages[4]["content"] = std::move(value);
            overhead = 2;
            break;
        case 1:
            in.messages[4]["meta"] = std::move(value);
            overhead = 2;
            break;
        case 2:  // messages, message, tool_calls, call, function
            in.messages[2]["tool_calls"][0]["function"]["arguments"] = std::move(value);
            overhead = 5;
            break;
        case 3: {  // tools, tool, function
            in.tools = ojson::parse(R"([{"type": "function", "function": {"name": "f"}}])");
            in.tools[0]["function"]["parameters"] = std::move(value);
            overhead = 3;
            break;
        }
        case 4:
            in.tools = std::move(value);
            break;
        default:
            in.extra["v"] = std::move(value);
            break;
    }
    if (!in.extra.contains("v")) in.extra["v"] = ojson::array({1, "a"});
    const bool input_too_deep = overhead + depth > kLimit;

    std::string error, source = "(real template)";
    bool parsed = false;
    try {
        if (kind == 0 && !real.empty()) {
            const ChatTemplate& t = real[r.pick(real.size())];
            parsed = true;
            (void)t.render(in);
        } else {
            source = kind == 2 ? nested_source(r) : built_in_template(r);
            const ChatTemplate t(source, "fuzz");
            parsed = true;
            (void)t.render(in);
        }
    } catch (const Error& e) {
        error = e.what();
    }
    static const bool verbose = std::getenv("TEMPLATE_DEPTH_FUZZ_VERBOSE") != nullptr;
    if (verbose)  // to see what an artifact does: the recipe's choices and the outcome
        std::fprintf(stderr, "value depth %d + %d, template %.300s -> %.300s\n", depth, overhead,
                     source.c_str(), error.empty() ? "ok" : error.c_str());
    if (error.find('\n') != std::string::npos) std::abort();
    // A parsed template rejects input that nests too deeply before it runs, and only such input.
    const bool rejected = error.find("input JSON nests more than") != std::string::npos;
    if (parsed && rejected != input_too_deep) std::abort();
    return 0;
}
