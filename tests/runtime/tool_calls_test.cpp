// Tool calling against the real chat templates of /work/shared/assets/chat-templates (llama.cpp's
// models/templates copies of each model's Jinja): the template is the reference. For every
// template: a conversation with tools, an assistant tool call (arguments as an OpenAI client sends
// them: a JSON string) and a tool result is rendered through it; the detected format must be the
// model family's; the assistant's rendered call text, parsed back by our parser, gives the same
// name and arguments; our call grammar (required, named and auto) accepts that text; the
// streaming parser releases the same calls piece by piece, without markup in the content. A
// template that renders no tools (ChatML) is reported as the generic fallback.
#include <gtest/gtest.h>

#include <filesystem>
#include <map>
#include <string>

#include "core/error.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "runtime/tool_calls.h"
#include "test_util.h"

using namespace llmforge;
using ojson = nlohmann::ordered_json;

namespace {

const char* kTools = R"([{"type": "function", "function": {"name": "get_weather",
  "description": "Current weather for a city.",
  "parameters": {"type": "object", "properties": {"location": {"type": "string"}, "days": {"type": "integer"}},
                 "required": ["location", "days"]}}},
 {"type": "function", "function": {"name": "add_numbers", "description": "a + b",
  "parameters": {"type": "object", "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                 "required": ["a", "b"]}}}])";

std::vector<ToolDef> tool_defs() {
    std::vector<ToolDef> out;
    for (const auto& t : ojson::parse(kTools)) {
        ToolDef d;
        d.name = t["function"]["name"];
        d.description = t["function"]["description"];
        d.parameters = t["function"]["parameters"];
        out.push_back(d);
    }
    return out;
}

const ojson kArgs = ojson::parse(R"({"location": "Paris", "days": 3})");

ojson user_msg() { return {{"role", "user"}, {"content", "What is the weather in Paris for 3 days?"}}; }
ojson call_msg() {
    return {{"role", "assistant"},
            {"content", nullptr},
            {"tool_calls",
             ojson::array({{{"id", "call_abc123"},
                            {"type", "function"},
                            {"function", {{"name", "get_weather"}, {"arguments", kArgs.dump()}}}}})}};
}
ojson tool_msg() { return {{"role", "tool"}, {"tool_call_id", "call_abc123"}, {"content", "{\"temp_c\": 21}"}}; }

std::string render(const ChatTemplate& t, const ToolSyntax& syn, ojson msgs, bool gen) {
    ChatTemplateInputs in;
    in.tools = ojson::parse(kTools);
    prepare_tool_messages(syn, msgs, in.tools);
    in.messages = std::move(msgs);
    in.add_generation_prompt = gen;
    return t.render(in);
}

// What the model generates for the assistant turn: the full render after the prompt (the longest
// common prefix with the generation prompt, backed off to a call opener it cuts through), without
// the end-of-turn markers and a leading empty <think></think> block.
std::string assistant_text(const std::string& prompt, const std::string& full, const ToolSyntax& syn) {
    size_t lcp = 0;
    while (lcp < prompt.size() && lcp < full.size() && prompt[lcp] == full[lcp]) ++lcp;
    const std::string op = syn.opener();
    size_t q = full.rfind(op, lcp);
    if (q != std::string::npos && q + op.size() > lcp) lcp = q;
    std::string s = full.substr(lcp);
    for (bool again = true; again;) {
        again = false;
        while (!s.empty() && (s.back() == '\n' || s.back() == ' ')) s.pop_back(), again = true;
        for (const char* eot : {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<\xEF\xBD\x9C" "end\xE2\x96\x81" "of\xE2\x96\x81" "sentence\xEF\xBD\x9C>"}) {
            const std::string e = eot;
            if (s.size() >= e.size() && s.compare(s.size() - e.size(), e.size(), e) == 0) {
                s.resize(s.size() - e.size());
                again = true;
            }
        }
    }
    if (s.rfind("<think>", 0) == 0) {
        size_t e = s.find("</think>");
        if (e != std::string::npos) {
            s = s.substr(e + 8);
            while (!s.empty() && (s.front() == '\n' || s.front() == ' ')) s.erase(0, 1);
        }
    }
    return s;
}

struct Expect {
    const char* file;
    ToolCallFormat format;
};
const Expect kTemplates[] = {
    {"Qwen-Qwen2.5-7B-Instruct.jinja", ToolCallFormat::kHermes},
    {"Qwen-Qwen3-0.6B.jinja", ToolCallFormat::kHermes},
    {"Qwen3-Coder.jinja", ToolCallFormat::kQwen3Coder},
    {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja", ToolCallFormat::kDeepSeekR1},
    {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja", ToolCallFormat::kDeepSeekR1},
    {"deepseek-ai-DeepSeek-V3.1.jinja", ToolCallFormat::kDeepSeekV31},
    {"meta-llama-Llama-3.1-8B-Instruct.jinja", ToolCallFormat::kLlama3Json},
    {"meta-llama-Llama-3.2-3B-Instruct.jinja", ToolCallFormat::kLlama3Json},
};

void expect_probe_call(const ParsedToolOutput& p, const std::string& where) {
    ASSERT_FALSE(p.calls.empty()) << where;
    EXPECT_EQ(p.calls[0].name, "get_weather") << where;
    EXPECT_EQ(ojson::parse(p.calls[0].arguments), kArgs) << where;
    EXPECT_EQ(p.calls[0].id.rfind("call_", 0), 0u) << where;
}

TEST(ToolCalls, EveryAssetTemplateRoundTrips) {
    LF_REQUIRE_ASSET(dir, "chat-templates");
    size_t seen = 0;
    for (const auto& ent : std::filesystem::directory_iterator(dir)) {
        if (ent.path().extension() != ".jinja") continue;
        ++seen;
        const std::string file = ent.path().filename().string();
        SCOPED_TRACE(file);
        const Expect* ex = nullptr;
        for (const auto& e : kTemplates)
            if (file == e.file) ex = &e;
        ASSERT_NE(ex, nullptr) << "a template this test does not know: add its expected format";
        const ChatTemplate t(test::read_file(ent.path().string()), file);
        const ToolSyntax syn = detect_tool_syntax(t);
        EXPECT_TRUE(syn.template_renders_tools) << syn.name();
        EXPECT_EQ(static_cast<int>(syn.format), static_cast<int>(ex->format)) << syn.name();

        // The whole conversation renders (the tool result too) and its call parses back.
        const std::string conv = render(t, syn, ojson::array({user_msg(), call_msg(), tool_msg()}), false);
        // (Llama 3 writes a string result through tojson: quoted, so look for the key alone.)
        EXPECT_NE(conv.find("temp_c"), std::string::npos) << conv;
        const std::vector<ToolDef> defs = tool_defs();
        {
            // A Llama 3 call is a whole message: parse the assistant's message alone.
            std::string_view region = conv;
            if (syn.format == ToolCallFormat::kLlama3Json) {
                const size_t at = conv.find("{\"name\": \"get_weather\"");
                ASSERT_NE(at, std::string::npos) << conv;
                region = region.substr(at, conv.find("<|eo", at) - at);
            }
            ParsedToolOutput p = parse_tool_calls(syn, region, &defs);
            // Qwen3-Coder's system prompt shows an example call: ours is the one named get_weather.
            std::erase_if(p.calls, [](const ToolCall& c) { return c.name != "get_weather"; });
            expect_probe_call(p, "whole conversation:\n" + conv);
        }

        // The assistant's turn as the model would generate it.
        const std::string prompt = render(t, syn, ojson::array({user_msg()}), true);
        const std::string full = render(t, syn, ojson::array({user_msg(), call_msg()}), false);
        const std::string text = assistant_text(prompt, full, syn);
        const ParsedToolOutput p = parse_tool_calls(syn, text, &defs);
        expect_probe_call(p, "assistant text:\n" + text);
        EXPECT_EQ(p.calls.size(), 1u) << text;
        EXPECT_EQ(p.content, "") << text;

        // Our grammar accepts it, for every tool_choice that allows the call.
        for (auto [mode, parallel] : {std::pair{ToolChoiceMode::kRequired, true}, {ToolChoiceMode::kRequired, false},
                                      {ToolChoiceMode::kNamed, false}, {ToolChoiceMode::kAuto, true}}) {
            ToolChoice c{mode, mode == ToolChoiceMode::kNamed ? "get_weather" : ""};
            const std::string gbnf = tool_call_gbnf(syn, defs, c, parallel);
            auto g = Grammar::parse(gbnf, "root", file);
            const GrammarCheck chk = grammar_check(*g, text);
            EXPECT_TRUE(chk.accepted) << "mode " << static_cast<int>(mode) << ": " << chk.reason << "\n"
                                      << text << "\n---\n" << gbnf;
        }
        // Named for the other tool: the call is refused.
        {
            const std::string gbnf = tool_call_gbnf(syn, defs, ToolChoice{ToolChoiceMode::kNamed, "add_numbers"}, true);
            EXPECT_FALSE(grammar_check(*Grammar::parse(gbnf), text).accepted) << text;
        }
        // Wrong arguments for the schema (a string where an integer is due): refused.
        if (syn.format != ToolCallFormat::kQwen3Coder) {
            std::string bad = text;
            const size_t at = bad.find("3}");
            ASSERT_NE(at, std::string::npos) << bad;
            bad.replace(at, 1, "\"3\"");
            EXPECT_FALSE(grammar_check(*Grammar::parse(tool_call_gbnf(syn, defs, ToolChoice{ToolChoiceMode::kRequired, ""}, true)), bad).accepted) << bad;
        }

        // Streaming: byte by byte, then in one piece; same call, no markup in the content.
        for (size_t step : {size_t{1}, size_t{7}, text.size()}) {
            ToolCallStreamer s(syn, defs);
            std::string content;
            std::vector<ToolCall> calls;
            for (size_t i = 0; i < text.size(); i += step) {
                auto d = s.push(std::string_view(text).substr(i, step));
                content += d.content;
                for (auto& c : d.calls) calls.push_back(c);
            }
            auto d = s.finish();
            content += d.content;
            for (auto& c : d.calls) calls.push_back(c);
            ParsedToolOutput sp;
            sp.calls = calls;
            expect_probe_call(sp, "streamed in steps of " + std::to_string(step));
            EXPECT_EQ(content.find_first_not_of(" \n"), std::string::npos) << "content leaked: " << content;
        }
    }
    EXPECT_EQ(seen, std::size(kTemplates));
}

TEST(ToolCalls, TemplateWithoutToolsIsGenericFallback) {
    const ChatTemplate chatml(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "chatml");
    const ToolSyntax syn = detect_tool_syntax(chatml);
    EXPECT_FALSE(syn.template_renders_tools);
    EXPECT_EQ(syn.name(), "generic (hermes)");
    // The generic fallback describes the tools in a system message and writes calls and results
    // as Hermes markup, so the conversation still reaches the model.
    ojson msgs = ojson::array({user_msg(), call_msg(), tool_msg()});
    prepare_tool_messages(syn, msgs, ojson::parse(kTools));
    ASSERT_EQ(msgs.size(), 4u);
    EXPECT_EQ(msgs[0]["role"], "system");
    EXPECT_NE(msgs[0]["content"].get<std::string>().find("{\"name\":\"get_weather\",\"description\""), std::string::npos)
        << msgs[0]["content"];
    const ParsedToolOutput p = parse_tool_calls(syn, msgs[2]["content"].get<std::string>());
    expect_probe_call(p, msgs[2].dump());
    EXPECT_EQ(msgs[3]["content"], "<tool_response>\n{\"temp_c\": 21}\n</tool_response>");
}

TEST(ToolCalls, ParserKeepsTextThatIsNotACall) {
    ToolSyntax h;  // hermes
    EXPECT_EQ(parse_tool_calls(h, "Hello <tool_call> {not json} </tool_call>").content,
              "Hello <tool_call> {not json} </tool_call>");
    EXPECT_TRUE(parse_tool_calls(h, "Hello <tool_call> {not json} </tool_call>").calls.empty());
    // Text before a call is content; two calls; an unterminated last call (cut by max_tokens) still parses.
    auto p = parse_tool_calls(h, "Let me check.\n<tool_call>\n{\"name\": \"a\", \"arguments\": {}}\n</tool_call>\n"
                                 "<tool_call>{\"name\": \"b\", \"arguments\": \"{\\\"x\\\": 1}\"}");
    ASSERT_EQ(p.calls.size(), 2u);
    EXPECT_EQ(p.content, "Let me check.");
    EXPECT_EQ(p.calls[0].name, "a");
    EXPECT_EQ(p.calls[1].arguments, "{\"x\":1}");
    EXPECT_NE(p.calls[0].id, p.calls[1].id);
    // Deep nesting stays content (never a crash).
    std::string deep = "<tool_call>{\"name\": \"a\", \"arguments\": " + std::string(5000, '[') + "}</tool_call>";
    EXPECT_TRUE(parse_tool_calls(h, deep).calls.empty());
    ToolSyntax l;
    l.format = ToolCallFormat::kLlama3Json;
    EXPECT_EQ(parse_tool_calls(l, "The answer is {\"name\": \"a\"}").calls.size(), 0u);
    EXPECT_EQ(parse_tool_calls(l, " {\"name\": \"a\", \"parameters\": {\"q\": 1}}").calls.size(), 1u);
}

TEST(ToolCalls, AutoGrammarAllowsTextNotStartingWithOpener) {
    ToolSyntax h;
    const auto defs = tool_defs();
    auto g = Grammar::parse(tool_call_gbnf(h, defs, ToolChoice{}, true));
    EXPECT_TRUE(grammar_check(*g, "Hello there").accepted);
    EXPECT_TRUE(grammar_check(*g, "").accepted);
    EXPECT_TRUE(grammar_check(*g, "<tool").accepted);  // a proper prefix of the opener, then stop
    EXPECT_TRUE(grammar_check(*g, "<b>bold</b>").accepted);
    EXPECT_FALSE(grammar_check(*g, "<tool_call>hello").accepted);
    auto req = Grammar::parse(tool_call_gbnf(h, defs, ToolChoice{ToolChoiceMode::kRequired, ""}, false));
    EXPECT_FALSE(grammar_check(*req, "Hello").accepted);
    const std::string one = "<tool_call>\n{\"name\": \"add_numbers\", \"arguments\": {\"a\": 1, \"b\": 2.5}}\n</tool_call>";
    EXPECT_TRUE(grammar_check(*req, one).accepted);
    EXPECT_FALSE(grammar_check(*req, one + "\n" + one).accepted);  // parallel_tool_calls false
    auto par = Grammar::parse(tool_call_gbnf(h, defs, ToolChoice{ToolChoiceMode::kRequired, ""}, true));
    EXPECT_TRUE(grammar_check(*par, one + "\n" + one).accepted);
    EXPECT_THROW(tool_call_gbnf(h, defs, ToolChoice{ToolChoiceMode::kNamed, "nope"}, true), Error);
}

TEST(ToolCalls, PrefixRulesRenamesOnlyRules) {
    EXPECT_EQ(prefix_gbnf_rules("root ::= a-b [a-z]{1,3} \"root x\" # root\na-b ::= \"\\\"q\" root", "t0-"),
              "t0-root ::= t0-a-b [a-z]{1,3} \"root x\" # root\nt0-a-b ::= \"\\\"q\" t0-root");
}

TEST(ToolCalls, BadToolNamesAndArgumentsAreRefused) {
    EXPECT_THROW(check_tool_name("", "tools[0]"), Error);
    EXPECT_THROW(check_tool_name("has space", "tools[0]"), Error);
    EXPECT_THROW(check_tool_name(std::string(65, 'a'), "tools[0]"), Error);
    EXPECT_NO_THROW(check_tool_name("get_weather-2", "tools[0]"));
    ojson msgs = ojson::array({user_msg(), call_msg()});
    msgs[1]["tool_calls"][0]["function"]["arguments"] = "not json";
    ToolSyntax h;
    h.template_renders_tools = true;
    try {
        prepare_tool_messages(h, msgs, nullptr);
        ADD_FAILURE() << "expected an Error";
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("messages[1].tool_calls[0].function.arguments"), std::string::npos) << e.what();
    }
}

}  // namespace
