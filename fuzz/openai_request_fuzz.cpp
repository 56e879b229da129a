// libFuzzer target: the server's OpenAI request parser (parse_request) on arbitrary bodies, as
// chat and as completions, against a small SentencePiece vocabulary with byte fallback and a
// ChatML template (tests/serve/tiny_served_model.h); bodies that parse are also turned into
// response and chunk JSON.
// ApiError (400/404) and Error are accepted outcomes; a crash, a sanitizer report or a hang is a
// bug.
#include <algorithm>
#include <cstddef>
#include <cstdlib>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "core/json_depth.h"
#include "runtime/tool_calls.h"
#include "serve/openai_api.h"
#include "serve/tiny_served_model.h"

using namespace llmforge;
using namespace llmforge::serve;

namespace {

[[noreturn]] void die(const char* what) {
    std::fprintf(stderr, "openai_request_fuzz: %s\n", what);
    std::abort();
}

// How deeply valid JSON nests, as nlohmann's SAX parser (iterative) sees it.
struct DepthSax : nlohmann::json_sax<nlohmann::json> {
    size_t depth = 0, max_depth = 0;
    bool null() override { return true; }
    bool boolean(bool) override { return true; }
    bool number_integer(number_integer_t) override { return true; }
    bool number_unsigned(number_unsigned_t) override { return true; }
    bool number_float(number_float_t, const string_t&) override { return true; }
    bool string(string_t&) override { return true; }
    bool binary(binary_t&) override { return true; }
    bool key(string_t&) override { return true; }
    bool start_object(std::size_t) override { return open(); }
    bool start_array(std::size_t) override { return open(); }
    bool end_object() override { return close(); }
    bool end_array() override { return close(); }
    bool parse_error(std::size_t, const std::string&, const nlohmann::detail::exception&) override { return false; }
    bool open() {
        max_depth = std::max(max_depth, ++depth);
        return true;
    }
    bool close() {
        --depth;
        return true;
    }
};

// The input as model output in every tool-call format: parsed whole, and streamed in pieces of
// `step` bytes; the calls (names, arguments) must be the same.
void fuzz_tool_text(const std::string& text) {
    const std::vector<ToolDef> tools(1, ToolDef{"f", "", nlohmann::ordered_json::parse(
                                                              R"({"type":"object","properties":{"a":{"type":"string"}}})"),
                                                false});
    for (ToolCallFormat f : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json, ToolCallFormat::kDeepSeekR1,
                             ToolCallFormat::kDeepSeekV31, ToolCallFormat::kQwen3Coder}) {
        ToolSyntax syn;
        syn.format = f;
        syn.template_renders_tools = true;
        const ParsedToolOutput whole = parse_tool_calls(syn, text, &tools);
        const size_t step = 1 + text.size() % 5;
        ToolCallStreamer st(syn, tools);
        std::vector<ToolCall> calls;
        std::string content;
        for (size_t i = 0; i < text.size(); i += step) {
            auto d = st.push(std::string_view(text).substr(i, step));
            content += d.content;
            calls.insert(calls.end(), d.calls.begin(), d.calls.end());
        }
        auto d = st.finish();
        content += d.content;
        calls.insert(calls.end(), d.calls.begin(), d.calls.end());
        if (calls.size() != whole.calls.size()) die("streamed tool calls differ in number from the whole parse");
        for (size_t i = 0; i < calls.size(); ++i) {
            if (calls[i].name != whole.calls[i].name || calls[i].arguments != whole.calls[i].arguments)
                die("a streamed tool call differs from the whole parse");
        }
        if (whole.calls.empty() && content != whole.content) die("streamed content differs from the whole text");
    }
}

// Bodies with `v` in each structured-output / tool field.
std::vector<std::string> structured_bodies(const nlohmann::json& v) {
    using nlohmann::json;
    const json msgs = json::array({{{"role", "user"}, {"content", "a"}}});
    const json tool = {{"type", "function"}, {"function", {{"name", "f"}, {"parameters", v}}}};
    std::vector<json> bodies = {
        {{"messages", msgs}, {"response_format", v}},
        {{"messages", msgs}, {"response_format", {{"type", "json_schema"}, {"json_schema", {{"name", "x"}, {"schema", v}}}}}},
        {{"messages", msgs}, {"json_schema", v}},
        {{"messages", msgs}, {"tools", v}},
        {{"messages", msgs}, {"tools", json::array({tool})}},
        {{"messages", msgs}, {"tools", json::array({tool})}, {"tool_choice", v}},
        {{"messages", msgs}, {"tools", json::array({tool})}, {"tool_choice", "required"}, {"parallel_tool_calls", v}},
        {{"messages", json::array({{{"role", "user"}, {"content", "a"}}, {{"role", "assistant"}, {"content", nullptr}, {"tool_calls", v}},
                                   {{"role", "tool"}, {"tool_call_id", v}, {"content", "r"}}})},
         {"tools", json::array({tool})}},
        {{"prompt", "a"}, {"suffix", v}},
    };
    std::vector<std::string> out;
    for (const auto& b : bodies) out.push_back(b.dump());
    if (v.is_string()) out.push_back(json{{"prompt", "a"}, {"grammar", v}}.dump());
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::shared_ptr<const ServedModel> kModel = test::tiny_served_model(false);
    const ApiLimits limits{64, 4, 256};
    const std::string body(reinterpret_cast<const char*>(data), size);
    const JsonNesting nesting = json_nesting(body);
    if ((nesting.max_depth == 0) != (nesting.at == 0) || nesting.at > size) die("json_nesting: bad position");
    if (nesting.max_depth > 0 && body[nesting.at - 1] != '[' && body[nesting.at - 1] != '{') {
        die("json_nesting: the position is not an opening bracket");
    }
    // nlohmann stops at a NUL byte (end of input); the scan goes on (it may only count more).
    DepthSax sax;
    if (nlohmann::json::sax_parse(body, &sax, nlohmann::json::input_format_t::json, true)) {
        const bool has_nul = body.find('\0') != std::string::npos;
        if (has_nul ? sax.max_depth > nesting.max_depth : sax.max_depth != nesting.max_depth) {
            die("json_nesting disagrees with the SAX parser on valid JSON");
        }
    }
    const bool too_deep = nesting.max_depth > kMaxRequestJsonDepth;
    fuzz_tool_text(body);
    std::vector<std::pair<std::string, bool>> inputs = {{body, true}, {body, false}};
    if (!too_deep && size < 4096) {
        const nlohmann::json v = nlohmann::json::parse(body, nullptr, false);
        if (!v.is_discarded()) {
            for (auto& b : structured_bodies(v)) inputs.emplace_back(b, b.find("\"prompt\"") == std::string::npos);
        }
    }
    for (const auto& [text, chat] : inputs) {
        const bool too_deep_here = json_nesting(text).max_depth > kMaxRequestJsonDepth;
        try {
            ParsedRequest r = parse_request(text, chat, kModel, limits);
            // Fake one token and a finish per choice, as the engine would send them.
            std::vector<ChoiceResult> choices(r.seqs.size());
            for (size_t i = 0; i < r.seqs.size(); ++i) {
                Event e;
                e.index = static_cast<int>(i);
                e.text = r.tools_active ? body : "a";  // with tools: the input as generated text
                e.token = {static_cast<int32_t>(r.seqs[i].prompt.back()), -0.5f};
                e.top = {{4, -0.5f}, {3, -1.5f}};
                (void)dump(chunk_json(r, "id", 0, &e, *kModel->tokenizer, i == 0));
                choices[i].text = e.text;
                if (r.tools_active) {  // the streaming side's chunks for the calls in it
                    ToolCallStreamer st(r.tool_syntax, r.tools);
                    auto d = st.push(e.text);
                    auto f = st.finish();
                    d.calls.insert(d.calls.end(), f.calls.begin(), f.calls.end());
                    for (size_t k = 0; k < d.calls.size(); ++k)
                        for (const auto& c : tool_call_chunks_json(r, "id", 0, static_cast<int>(i), static_cast<int>(k), d.calls[k]))
                            (void)dump(c);
                    (void)dump(content_chunk_json(r, "id", 0, static_cast<int>(i), d.content + f.content));
                }
                choices[i].tokens.push_back(e);
                choices[i].finish_reason = "length";
            }
            (void)dump(response_json(r, "id", 0, choices, *kModel->tokenizer));
            if (too_deep_here) die("a body nesting deeper than the limit was accepted");
        } catch (const ApiError& e) {
            if ((e.code == "json_too_deep") != too_deep_here) die("json_too_deep does not match the scan");
            (void)dump(e.body());
        } catch (const Error&) {
            if (too_deep_here) die("a body nesting deeper than the limit got past the scan");
        }
    }
    return 0;
}
