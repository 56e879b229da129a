#include "runtime/tool_calls.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <mutex>
#include <random>

#include "core/error.h"
#include "core/json_depth.h"
#include "runtime/json_schema.h"
#include "tokenizer/utf8.h"

namespace llmforge {

using ojson = nlohmann::ordered_json;

namespace {

// Markup of the DeepSeek formats (full-width bars and the ▁ of their added tokens).
const std::string kCallsBegin = "<\xEF\xBD\x9C" "tool\xE2\x96\x81" "calls\xE2\x96\x81" "begin\xEF\xBD\x9C>";
const std::string kCallsEnd = "<\xEF\xBD\x9C" "tool\xE2\x96\x81" "calls\xE2\x96\x81" "end\xEF\xBD\x9C>";
const std::string kCallBegin = "<\xEF\xBD\x9C" "tool\xE2\x96\x81" "call\xE2\x96\x81" "begin\xEF\xBD\x9C>";
const std::string kCallEnd = "<\xEF\xBD\x9C" "tool\xE2\x96\x81" "call\xE2\x96\x81" "end\xEF\xBD\x9C>";
const std::string kToolSep = "<\xEF\xBD\x9C" "tool\xE2\x96\x81" "sep\xEF\xBD\x9C>";
const std::string kToolCallOpen = "<tool_call>";
const std::string kToolCallClose = "</tool_call>";

constexpr size_t kMaxJsonDepth = 64;  // generated arguments nesting deeper stay content

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_space(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_space(s.back())) s.remove_suffix(1);
    return s;
}

bool starts_with(std::string_view s, std::string_view p) { return s.substr(0, p.size()) == p; }

// JSON text; invalid UTF-8 in strings (raw model bytes) becomes U+FFFD instead of throwing.
std::string dump_json(const ojson& j) { return j.dump(-1, ' ', false, ojson::error_handler_t::replace); }

// A JSON text parsed without exceptions, refusing deep nesting; discarded on failure.
ojson parse_json(std::string_view text) {
    if (json_nesting(text).max_depth > kMaxJsonDepth) return ojson(ojson::value_t::discarded);
    return ojson::parse(text.begin(), text.end(), nullptr, false);
}

// Arguments as OpenAI sends them: a JSON object's text. A string holding an object is unwrapped.
std::optional<std::string> arguments_text(const ojson& a) {
    if (a.is_object()) return dump_json(a);
    if (a.is_string()) {
        ojson inner = parse_json(a.get<std::string>());
        if (!inner.is_discarded() && inner.is_object()) return dump_json(inner);
    }
    return std::nullopt;
}

// {"name": N, "arguments"|"parameters": A} -> a call.
std::optional<ToolCall> call_from_object(std::string_view text) {
    ojson o = parse_json(trim(text));
    if (o.is_discarded() || !o.is_object()) return std::nullopt;
    auto n = o.find("name");
    if (n == o.end() || !n->is_string() || n->get<std::string>().empty()) return std::nullopt;
    auto a = o.find("arguments");
    if (a == o.end()) a = o.find("parameters");
    std::optional<std::string> args = a == o.end() ? std::optional<std::string>("{}") : arguments_text(*a);
    if (!args) return std::nullopt;
    return ToolCall{"", n->get<std::string>(), *args};
}

const ToolDef* find_tool(const std::vector<ToolDef>* tools, std::string_view name) {
    if (tools == nullptr) return nullptr;
    for (const auto& t : *tools)
        if (t.name == name) return &t;
    return nullptr;
}

// <function=N>\n<parameter=P>\nV\n</parameter>\n...</function>
std::optional<ToolCall> call_from_xml(std::string_view inner, const std::vector<ToolDef>* tools) {
    inner = trim(inner);
    if (starts_with(inner, "{")) return call_from_object(inner);  // JSON inside <tool_call>
    const std::string_view fopen = "<function=";
    if (!starts_with(inner, fopen)) return std::nullopt;
    size_t gt = inner.find('>');
    if (gt == std::string_view::npos) return std::nullopt;
    ToolCall c;
    c.name = std::string(trim(inner.substr(fopen.size(), gt - fopen.size())));
    if (c.name.empty()) return std::nullopt;
    std::string_view rest = inner.substr(gt + 1);
    const size_t fend = rest.rfind("</function>");
    if (fend != std::string_view::npos) rest = rest.substr(0, fend);
    const ToolDef* def = find_tool(tools, c.name);
    ojson args = ojson::object();
    const std::string_view popen = "<parameter=", pclose = "</parameter>";
    for (;;) {
        rest = trim(rest);
        if (rest.empty()) break;
        if (!starts_with(rest, popen)) return std::nullopt;
        size_t pgt = rest.find('>');
        if (pgt == std::string_view::npos) return std::nullopt;
        std::string key(trim(rest.substr(popen.size(), pgt - popen.size())));
        std::string_view after = rest.substr(pgt + 1);
        size_t pend = after.find(pclose);
        std::string_view v = pend == std::string_view::npos ? after : after.substr(0, pend);
        if (starts_with(v, "\n")) v.remove_prefix(1);
        if (!v.empty() && v.back() == '\n') v.remove_suffix(1);
        std::string type;
        if (def != nullptr && def->parameters.contains("properties") && def->parameters["properties"].is_object() &&
            def->parameters["properties"].contains(key) && def->parameters["properties"][key].is_object()) {
            const ojson& ps = def->parameters["properties"][key];
            if (ps.contains("type") && ps["type"].is_string()) type = ps["type"].get<std::string>();
        }
        if (type == "string") {
            args[key] = std::string(v);
        } else {
            ojson pv = parse_json(trim(v));
            if (pv.is_discarded()) {
                // Python's str() of booleans / None as the template writes them.
                std::string_view t = trim(v);
                if (t == "True") pv = true;
                else if (t == "False") pv = false;
                else if (t == "None") pv = nullptr;
                else pv = std::string(v);
            }
            args[key] = std::move(pv);
        }
        if (pend == std::string_view::npos) break;
        rest = after.substr(pend + pclose.size());
    }
    c.arguments = dump_json(args);
    return c;
}

// <｜tool▁call▁begin｜>[function<｜tool▁sep｜>NAME\n```json\nARGS\n```|NAME<｜tool▁sep｜>ARGS]<｜tool▁call▁end｜>
std::optional<ToolCall> call_from_deepseek(std::string_view seg, ToolCallFormat f) {
    if (!starts_with(seg, kCallBegin)) return std::nullopt;
    seg.remove_prefix(kCallBegin.size());
    if (seg.size() >= kCallEnd.size() && seg.substr(seg.size() - kCallEnd.size()) == kCallEnd)
        seg.remove_suffix(kCallEnd.size());
    size_t sep = seg.find(kToolSep);
    if (sep == std::string_view::npos) return std::nullopt;
    std::string_view head = seg.substr(0, sep), tail = seg.substr(sep + kToolSep.size());
    ToolCall c;
    std::string_view args;
    if (f == ToolCallFormat::kDeepSeekR1) {
        // head: the type ("function"); tail: NAME \n ```json \n ARGS \n ```
        size_t nl = tail.find('\n');
        c.name = std::string(trim(tail.substr(0, nl)));
        args = nl == std::string_view::npos ? std::string_view() : tail.substr(nl + 1);
        args = trim(args);
        if (starts_with(args, "```")) {
            size_t eol = args.find('\n');
            args = eol == std::string_view::npos ? std::string_view() : args.substr(eol + 1);
            size_t fence = args.rfind("```");
            if (fence != std::string_view::npos) args = args.substr(0, fence);
        }
    } else {
        c.name = std::string(trim(head));
        args = tail;
    }
    if (c.name.empty()) return std::nullopt;
    ojson a = parse_json(trim(args));
    if (a.is_discarded()) return std::nullopt;
    auto t = arguments_text(a);
    if (!t) return std::nullopt;
    c.arguments = *t;
    return c;
}

// The first `marker` at or after `pos`, the text before it appended to `content`. When there is
// none: the rest is appended but for its longest suffix that is a proper prefix of `marker` (held
// back unless at_end, as a later chunk may finish the marker), *consumed says where that suffix
// starts, and the result is npos.
size_t take_until_marker(std::string_view text, size_t pos, std::string_view marker, bool at_end,
                         std::string& content, size_t* consumed) {
    const size_t p = text.find(marker, pos);
    if (p != std::string_view::npos) {
        content.append(text.substr(pos, p - pos));
        return p;
    }
    size_t keep = 0;
    if (!at_end) {
        for (size_t k = std::min(text.size() - pos, marker.size() - 1); k > 0 && keep == 0; --k) {
            if (text.substr(text.size() - k) == marker.substr(0, k)) keep = k;
        }
    }
    content.append(text.substr(pos, text.size() - keep - pos));
    *consumed = text.size() - keep;
    return std::string_view::npos;
}

struct ScanOut {
    std::string content;
    std::vector<ToolCall> calls;
};

// The one scanner behind parse_tool_calls and ToolCallStreamer: consumes text from `pos` as far as
// it can decide (everything when at_end), appending content and calls. `in_block`: inside a
// DeepSeek calls block. Returns the new position.
size_t scan(const ToolSyntax& syn, std::string_view text, size_t pos, bool at_end, bool& in_block,
            const std::vector<ToolDef>* tools, ScanOut& out, bool any_call_yet) {
    switch (syn.format) {
        case ToolCallFormat::kLlama3Json: {
            // A call is the whole text: one JSON object (leading whitespace allowed).
            std::string_view rest = text.substr(pos);
            size_t first = 0;
            while (first < rest.size() && is_space(rest[first])) ++first;
            if (any_call_yet || (first < rest.size() && rest[first] != '{') || pos > 0) {
                if (first < rest.size() || at_end) {
                    out.content.append(rest);
                    return text.size();
                }
                return pos;
            }
            if (!at_end) return pos;  // empty so far, or may be a call: hold until the end
            if (auto c = call_from_object(rest)) {
                out.calls.push_back(std::move(*c));
            } else {
                out.content.append(rest);
            }
            return text.size();
        }
        case ToolCallFormat::kHermes:
        case ToolCallFormat::kQwen3Coder: {
            for (;;) {
                size_t consumed = 0;
                const size_t p = take_until_marker(text, pos, kToolCallOpen, at_end, out.content, &consumed);
                if (p == std::string_view::npos) return consumed;
                size_t e = text.find(kToolCallClose, p);
                if (e == std::string_view::npos && !at_end) return p;  // hold the open call
                const size_t end = e == std::string_view::npos ? text.size() : e + kToolCallClose.size();
                std::string_view inner = text.substr(p + kToolCallOpen.size(),
                                                     (e == std::string_view::npos ? text.size() : e) - p - kToolCallOpen.size());
                std::optional<ToolCall> c = syn.format == ToolCallFormat::kHermes ? call_from_object(inner)
                                                                                  : call_from_xml(inner, tools);
                if (!c && syn.format == ToolCallFormat::kHermes) c = call_from_xml(inner, tools);
                if (c) {
                    out.calls.push_back(std::move(*c));
                } else {
                    out.content.append(text.substr(p, end - p));
                }
                pos = end;
            }
        }
        case ToolCallFormat::kDeepSeekR1:
        case ToolCallFormat::kDeepSeekV31: {
            for (;;) {
                if (!in_block) {
                    size_t consumed = 0;
                    const size_t p = take_until_marker(text, pos, kCallsBegin, at_end, out.content, &consumed);
                    if (p == std::string_view::npos) return consumed;
                    pos = p + kCallsBegin.size();
                    in_block = true;
                }
                // Inside the block: whitespace, calls, then the end marker.
                size_t q = pos;
                while (q < text.size() && is_space(text[q])) ++q;
                std::string_view rest = text.substr(q);
                if (rest.empty()) {
                    if (at_end) in_block = false;
                    return at_end ? text.size() : pos;
                }
                if (starts_with(rest, kCallsEnd)) {
                    in_block = false;
                    pos = q + kCallsEnd.size();
                    continue;
                }
                if (starts_with(rest, kCallBegin)) {
                    size_t e = text.find(kCallEnd, q);
                    if (e == std::string_view::npos && !at_end) return pos;
                    const size_t end = e == std::string_view::npos ? text.size() : e + kCallEnd.size();
                    if (auto c = call_from_deepseek(text.substr(q, end - q), syn.format)) {
                        out.calls.push_back(std::move(*c));
                    } else {
                        out.content.append(text.substr(q, end - q));
                    }
                    pos = end;
                    continue;
                }
                // Not yet decidable (a marker's beginning) or something else: leave the block.
                if (!at_end && (starts_with(kCallsEnd, rest) || starts_with(kCallBegin, rest))) return pos;
                in_block = false;
                pos = q;
            }
        }
    }
    return pos;
}

// GBNF helpers ---------------------------------------------------------------------------------

// Rules "free-0".."free-(n-1)": any text that does not start with `opener`.
std::string free_text_rules(std::string_view opener) {
    const std::vector<uint32_t> cps = detail::decode_utf8(opener, "tool call opener");
    std::string g = "free-any ::= .*\n";
    for (size_t i = 0; i < cps.size(); ++i) {
        g += "free-" + std::to_string(i) + " ::= \"\" | [^" + detail::gbnf_class_char(cps[i]) + "] free-any";
        if (i + 1 < cps.size()) {
            std::string c;
            utf8_append(c, cps[i]);
            g += " | " + detail::gbnf_literal(c) + " free-" + std::to_string(i + 1);
        }
        g += "\n";
    }
    return g;
}

// A converted schema's rules, prefixed, with its whitespace rule cut to one optional space: a
// call's arguments are written compactly (as templates render them: `{"a": 1, "b": 2}`), and a
// small model is not given room to spend its tokens on blank space.
std::string compact_schema_rules(const std::string& gbnf, const std::string& prefix);

bool word_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
}

std::string compact_schema_rules(const std::string& gbnf, const std::string& prefix) {
    std::string out = prefix_gbnf_rules(gbnf, prefix);
    const std::string head = prefix + "space ::=";
    size_t p = out.rfind("\n" + head);
    p = p == std::string::npos ? (out.rfind(head, 0) == 0 ? 0 : std::string::npos) : p + 1;
    if (p != std::string::npos) {
        size_t e = out.find('\n', p);
        out.replace(p, (e == std::string::npos ? out.size() : e) - p, head + " \" \"?");
    }
    return out;
}

}  // namespace

std::string ToolSyntax::name() const {
    std::string n;
    switch (format) {
        case ToolCallFormat::kHermes: n = "hermes"; break;
        case ToolCallFormat::kLlama3Json: n = "llama3-json"; break;
        case ToolCallFormat::kDeepSeekR1: n = "deepseek-r1"; break;
        case ToolCallFormat::kDeepSeekV31: n = "deepseek-v3.1"; break;
        case ToolCallFormat::kQwen3Coder: n = "qwen3-coder"; break;
    }
    return template_renders_tools ? n : "generic (" + n + ")";
}

std::string ToolSyntax::opener() const {
    switch (format) {
        case ToolCallFormat::kHermes:
        case ToolCallFormat::kQwen3Coder: return kToolCallOpen;
        case ToolCallFormat::kLlama3Json: return "{";
        case ToolCallFormat::kDeepSeekR1:
        case ToolCallFormat::kDeepSeekV31: return kCallsBegin;
    }
    return kToolCallOpen;
}

std::string prefix_gbnf_rules(std::string_view g, std::string_view prefix) {
    std::string out;
    out.reserve(g.size() + 64);
    for (size_t i = 0; i < g.size();) {
        const char c = g[i];
        if (c == '"' || c == '[') {  // a literal or a class: copied with its escapes
            const char close = c == '"' ? '"' : ']';
            out += c;
            ++i;
            while (i < g.size() && g[i] != close) {
                if (g[i] == '\\' && i + 1 < g.size()) out += g[i++];
                out += g[i++];
            }
            if (i < g.size()) out += g[i++];
        } else if (c == '#') {  // a comment, to the end of the line
            while (i < g.size() && g[i] != '\n') out += g[i++];
        } else if (word_char(c)) {
            size_t j = i;
            while (j < g.size() && word_char(g[j])) ++j;
            // Repetition counts {m,n} are digits inside braces: not rule names.
            const bool digits = std::all_of(g.begin() + i, g.begin() + j, [](char d) { return d >= '0' && d <= '9'; });
            if (!digits) out += prefix;
            out.append(g.substr(i, j - i));
            i = j;
        } else {
            out += c;
            ++i;
        }
    }
    return out;
}

void check_tool_name(const std::string& name, const std::string& where) {
    bool ok = !name.empty() && name.size() <= 64;
    for (char c : name) ok = ok && word_char(c);
    if (!ok) {
        std::string shown = name.size() > 80 ? name.substr(0, 80) + "..." : name;
        ojson q = shown;
        fail("%s is %s: expected 1 to 64 characters from a-z, A-Z, 0-9, '_' and '-' (OpenAI's function name rule)",
             where.c_str(), q.dump(-1, ' ', true, ojson::error_handler_t::replace).c_str());
    }
}

std::string tool_call_gbnf(const ToolSyntax& syn, const std::vector<ToolDef>& tools, const ToolChoice& choice,
                           bool parallel) {
    std::string g;
    std::vector<std::string> call_rules;
    for (size_t i = 0; i < tools.size(); ++i) {
        const ToolDef& t = tools[i];
        if (choice.mode == ToolChoiceMode::kNamed && t.name != choice.name) continue;
        const std::string p = "t" + std::to_string(i) + "-";
        const std::string call = p + "call";
        const ojson& params = t.parameters;
        if (syn.format == ToolCallFormat::kQwen3Coder) {
            std::string body;
            if (params.contains("properties") && params["properties"].is_object() && !params["properties"].empty()) {
                std::vector<std::string> required;
                if (params.contains("required") && params["required"].is_array())
                    for (const auto& r : params["required"])
                        if (r.is_string()) required.push_back(r.get<std::string>());
                size_t j = 0;
                for (auto it = params["properties"].begin(); it != params["properties"].end(); ++it, ++j) {
                    const std::string pp = p + "p" + std::to_string(j) + "-";
                    std::string val;
                    const ojson& ps = it.value();
                    const bool is_str = ps.is_object() && ps.contains("type") && ps["type"] == "string" &&
                                        !ps.contains("enum") && !ps.contains("const");
                    if (is_str || !ps.is_object() || ps.empty()) {
                        val = "xml-text";
                    } else {
                        g += compact_schema_rules(json_schema_to_gbnf(ps, "tool " + t.name + " parameter " + it.key()), pp);
                        val = pp + "root";
                    }
                    std::string item = detail::gbnf_literal("<parameter=" + it.key() + ">\n") + " " + val + " " +
                                       detail::gbnf_literal("\n</parameter>\n");
                    const bool req = std::find(required.begin(), required.end(), it.key()) != required.end();
                    body += req ? " " + item : " (" + item + ")?";
                }
            } else {
                body = " (\"<parameter=\" [A-Za-z0-9_-]+ \">\\n\" xml-text \"\\n</parameter>\\n\")*";
            }
            g += call + " ::= " + detail::gbnf_literal("<tool_call>\n<function=" + t.name + ">\n") + body + " " +
                 detail::gbnf_literal("</function>\n</tool_call>") + "\n";
        } else {
            g += compact_schema_rules(json_schema_to_gbnf(params, "tool " + t.name), p);
            const std::string args = p + "root";
            switch (syn.format) {
                case ToolCallFormat::kHermes:
                    g += call + " ::= \"<tool_call>\" nl \"{\" sp \"\\\"name\\\"\" sp \":\" sp " +
                         detail::gbnf_literal("\"" + t.name + "\"") + " sp \",\" sp \"\\\"arguments\\\"\" sp \":\" sp " + args +
                         " sp \"}\" nl \"</tool_call>\"\n";
                    break;
                case ToolCallFormat::kLlama3Json:
                    g += call + " ::= \"{\" sp \"\\\"name\\\"\" sp \":\" sp " + detail::gbnf_literal("\"" + t.name + "\"") +
                         " sp \",\" sp \"\\\"parameters\\\"\" sp \":\" sp " + args + " sp \"}\"\n";
                    break;
                case ToolCallFormat::kDeepSeekR1:
                    g += call + " ::= " + detail::gbnf_literal(kCallBegin + "function" + kToolSep + t.name + "\n```json\n") +
                         " " + args + " nl " + detail::gbnf_literal("```" + kCallEnd) + "\n";
                    break;
                case ToolCallFormat::kDeepSeekV31:
                    g += call + " ::= " + detail::gbnf_literal(kCallBegin + t.name + kToolSep) + " " + args + " sp " +
                         detail::gbnf_literal(kCallEnd) + "\n";
                    break;
                case ToolCallFormat::kQwen3Coder: break;
            }
        }
        call_rules.push_back(call);
    }
    if (call_rules.empty()) fail("tool_choice names function '%s', which is not in 'tools'", choice.name.c_str());
    std::string any = "call ::= ";
    for (size_t i = 0; i < call_rules.size(); ++i) any += (i ? " | " : "") + call_rules[i];
    g += any + "\n";
    g += "sp ::= \" \"?\n";
    g += "nl ::= \"\\n\"?\n";
    g += "xml-text ::= [^<]*\n";
    const bool many = parallel && syn.format != ToolCallFormat::kLlama3Json;
    switch (syn.format) {
        case ToolCallFormat::kHermes:
        case ToolCallFormat::kQwen3Coder:
        case ToolCallFormat::kLlama3Json: g += many ? "calls ::= call (nl call)*\n" : "calls ::= call\n"; break;
        case ToolCallFormat::kDeepSeekR1:
            g += "calls ::= " + detail::gbnf_literal(kCallsBegin) + (many ? " call (nl call)*" : " call") + " (" +
                 detail::gbnf_literal(kCallsEnd) + ")?\n";
            break;
        case ToolCallFormat::kDeepSeekV31:
            g += "calls ::= " + detail::gbnf_literal(kCallsBegin) + (many ? " call (call)*" : " call") + " " +
                 detail::gbnf_literal(kCallsEnd) + "\n";
            break;
    }
    if (choice.mode == ToolChoiceMode::kAuto) {
        g += free_text_rules(syn.opener());
        g = "root ::= calls | free-0\n" + g;
    } else {
        g = "root ::= calls\n" + g;
    }
    return g;
}

ParsedToolOutput parse_tool_calls(const ToolSyntax& syn, std::string_view text, const std::vector<ToolDef>* tools) {
    ScanOut out;
    bool in_block = false;
    scan(syn, text, 0, true, in_block, tools, out, false);
    ParsedToolOutput r;
    r.calls = std::move(out.calls);
    for (auto& c : r.calls) c.id = new_tool_call_id();
    r.content = r.calls.empty() ? std::move(out.content) : std::string(trim(out.content));
    return r;
}

std::string new_tool_call_id() {
    static std::atomic<uint64_t> counter{0};
    static std::mutex mu;
    static std::mt19937_64 rng{std::random_device{}()};
    uint64_t r;
    {
        std::lock_guard<std::mutex> lk(mu);
        r = rng();
    }
    const uint64_t n = counter++;
    static const char* digits = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    std::string id = "call_";
    for (int i = 0; i < 10; ++i) {  // random part, fixed length
        id += digits[r % 62];
        r /= 62;
    }
    uint64_t m = n;  // counter part: unique within the process
    do {
        id += digits[m % 62];
        m /= 62;
    } while (m != 0);
    return id;
}

// Detection ------------------------------------------------------------------------------------

namespace {

const char* kProbeName = "probe_weather_fn";

ojson probe_tools() {
    return ojson::parse(R"([{"type":"function","function":{"name":"probe_weather_fn","description":"Weather.",
        "parameters":{"type":"object","properties":{"location":{"type":"string"},"days":{"type":"integer"}},
        "required":["location","days"]}}}])");
}

// The end (one past the closing brace) of the JSON object that starts at `at`; text.size() when
// it does not close.
size_t json_object_end(std::string_view text, size_t at) {
    size_t depth = 0;
    bool in_string = false;
    for (size_t i = at; i < text.size(); ++i) {
        const char c = text[i];
        if (in_string) {
            if (c == '\\') ++i;
            else if (c == '"') in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '{' || c == '[') {
            ++depth;
        } else if ((c == '}' || c == ']') && depth > 0 && --depth == 0) {
            return i + 1;
        }
    }
    return text.size();
}

std::optional<ToolCallFormat> markup_format(const std::string& out) {
    const std::string n = kProbeName;
    if (out.find("<function=" + n + ">") != std::string::npos) return ToolCallFormat::kQwen3Coder;
    if (out.find(kCallBegin + "function" + kToolSep + n) != std::string::npos) return ToolCallFormat::kDeepSeekR1;
    if (out.find(kCallBegin + n + kToolSep) != std::string::npos) return ToolCallFormat::kDeepSeekV31;
    if (out.find(kToolCallOpen) != std::string::npos && out.find("\"name\": \"" + n + "\"") != std::string::npos)
        return ToolCallFormat::kHermes;
    if (out.find("{\"name\": \"" + n + "\", \"parameters\"") != std::string::npos) return ToolCallFormat::kLlama3Json;
    return std::nullopt;
}

}  // namespace

ToolSyntax detect_tool_syntax(const ChatTemplate& tmpl, const std::string& bos, const std::string& eos) {
    const ojson want = ojson::parse(R"({"location": "Paris", "days": 3})");
    for (int obj = 1; obj >= 0; --obj) {
        for (int null_content = 1; null_content >= 0; --null_content) {
            ChatTemplateInputs in;
            in.tools = probe_tools();
            ojson call = {{"id", "call_probe0"},
                          {"type", "function"},
                          {"function", {{"name", kProbeName}, {"arguments", obj ? want : ojson(want.dump())}}}};
            ojson asst = {{"role", "assistant"}};
            asst["content"] = null_content ? ojson(nullptr) : ojson("");
            asst["tool_calls"] = ojson::array({call});
            in.messages = ojson::array({ojson{{"role", "user"}, {"content", "What is the weather in Paris?"}}, asst,
                                        ojson{{"role", "tool"}, {"tool_call_id", "call_probe0"}, {"content", "sunny"}}});
            in.add_generation_prompt = false;
            in.bos_token = bos;
            in.eos_token = eos;
            std::string out;
            try {
                out = tmpl.render(in);
            } catch (const std::exception&) {
                continue;
            }
            auto f = markup_format(out);
            if (!f) continue;
            ToolSyntax s;
            s.format = *f;
            s.template_renders_tools = true;
            s.object_arguments = obj != 0;
            s.null_content = null_content != 0;
            // The call must parse back to the probe's name and arguments. A Llama 3 call is a
            // whole message: cut it out of the conversation (the object from its '{').
            std::string_view region = out;
            if (s.format == ToolCallFormat::kLlama3Json) {
                const size_t at = out.find("{\"name\": \"" + std::string(kProbeName) + "\"");
                region = std::string_view(out).substr(at, json_object_end(out, at) - at);
            }
            const ParsedToolOutput p = parse_tool_calls(s, region);
            for (const auto& c : p.calls) {
                if (c.name == kProbeName && ojson::parse(c.arguments) == want) return s;
            }
        }
    }
    return ToolSyntax{};  // generic: Hermes syntax, tools described by us
}

void prepare_tool_messages(const ToolSyntax& syn, ojson& messages, const ojson& tools) {
    if (!messages.is_array()) return;
    for (size_t i = 0; i < messages.size(); ++i) {
        ojson& m = messages[i];
        if (!m.is_object()) continue;
        const std::string role = m.value("role", "");
        if (role == "assistant" && m.contains("tool_calls") && !m["tool_calls"].is_null()) {
            ojson& calls = m["tool_calls"];
            std::string markup;
            for (size_t j = 0; j < calls.size(); ++j) {
                ojson& c = calls[j];
                const std::string where = "messages[" + std::to_string(i) + "].tool_calls[" + std::to_string(j) + "]";
                if (!c.is_object() || !c.contains("function") || !c["function"].is_object())
                    fail("'%s' must be {\"id\", \"type\": \"function\", \"function\": {\"name\", \"arguments\"}}", where.c_str());
                ojson& fn = c["function"];
                if (!fn.contains("name") || !fn["name"].is_string())
                    fail("'%s.function.name' must be a string", where.c_str());
                if (!c.contains("type")) c["type"] = "function";
                ojson args = fn.contains("arguments") ? fn["arguments"] : ojson("{}");
                if (args.is_string()) {
                    ojson parsed = parse_json(args.get<std::string>());
                    if (parsed.is_discarded() || !parsed.is_object())
                        fail("'%s.function.arguments' is not a JSON object's text (hint: send arguments as the model "
                             "returned them, e.g. \"{\\\"city\\\": \\\"Paris\\\"}\")", where.c_str());
                    args = std::move(parsed);
                } else if (!args.is_object()) {
                    fail("'%s.function.arguments' must be a string holding a JSON object", where.c_str());
                }
                if (!syn.template_renders_tools) {
                    markup += "\n<tool_call>\n{\"name\": " + fn["name"].dump(-1, ' ', false, ojson::error_handler_t::replace) +
                              ", \"arguments\": " + args.dump(-1, ' ', false, ojson::error_handler_t::replace) +
                              "}\n</tool_call>";
                }
                fn["arguments"] = syn.object_arguments ? args : ojson(args.dump(-1, ' ', false, ojson::error_handler_t::replace));
            }
            const bool empty = !m.contains("content") || m["content"].is_null() ||
                               (m["content"].is_string() && m["content"].get<std::string>().empty());
            if (!syn.template_renders_tools) {
                std::string content = empty ? "" : m["content"].get<std::string>();
                m["content"] = std::string(trim(content + markup));
                m.erase("tool_calls");
            } else if (empty) {
                m["content"] = syn.null_content ? ojson(nullptr) : ojson("");
            }
        } else if (role == "tool" && !syn.template_renders_tools) {
            std::string content = m.contains("content") && m["content"].is_string() ? m["content"].get<std::string>() : "";
            m["content"] = "<tool_response>\n" + content + "\n</tool_response>";
        }
    }
    if (!syn.template_renders_tools && tools.is_array() && !tools.empty()) {
        // Kept short: small models have small contexts.
        std::string sys = "You can call these functions:";
        for (const auto& t : tools) {
            const ojson& fn = t.is_object() && t.contains("function") ? t["function"] : t;
            sys += "\n" + fn.dump(-1, ' ', false, ojson::error_handler_t::replace);
        }
        sys += "\nTo call one, reply <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call>";
        if (!messages.empty() && messages[0].is_object() && messages[0].value("role", "") == "system" &&
            messages[0].contains("content") && messages[0]["content"].is_string()) {
            messages[0]["content"] = messages[0]["content"].get<std::string>() + "\n\n" + sys;
        } else {
            messages.insert(messages.begin(), ojson{{"role", "system"}, {"content", sys}});
        }
    }
}

// Streaming ------------------------------------------------------------------------------------

ToolCallStreamer::ToolCallStreamer(ToolSyntax syn, std::vector<ToolDef> tools)
    : syn_(std::move(syn)), tools_(std::move(tools)) {}

ToolCallStreamer::Delta ToolCallStreamer::push(std::string_view text) {
    text_.append(text);
    return release(false);
}

ToolCallStreamer::Delta ToolCallStreamer::finish() { return release(true); }

ToolCallStreamer::Delta ToolCallStreamer::release(bool at_end) {
    ScanOut out;
    done_ = scan(syn_, text_, done_, at_end, in_block_, &tools_, out, n_calls_ > 0);
    Delta d;
    d.content = std::move(out.content);
    d.calls = std::move(out.calls);
    for (auto& c : d.calls) c.id = new_tool_call_id();
    n_calls_ += d.calls.size();
    return d;
}

}  // namespace llmforge
