// Tool calling (OpenAI "tools") in the model's own format: which syntax a chat template uses for
// tool calls, the GBNF a model's output must follow for a request's tools and tool_choice, the
// parser from generated text back to OpenAI tool calls, its streaming twin, and the messages a
// client sends back (assistant tool_calls, role "tool") prepared for the template.
//
// Formats (learned from llama.cpp's common/chat.cpp; written here):
//   hermes         <tool_call>\n{"name": N, "arguments": A}\n</tool_call>   (Qwen2.5, Qwen3, Hermes)
//   llama3-json    {"name": N, "parameters": A}                             (Llama 3.1 / 3.2)
//   deepseek-r1    <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>N\n```json\nA\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//   deepseek-v3.1  <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>N<｜tool▁sep｜>A<｜tool▁call▁end｜><｜tool▁calls▁end｜>
//   qwen3-coder    <tool_call>\n<function=N>\n<parameter=P>\nV\n</parameter>\n</function>\n</tool_call>
// The format is detected by rendering a probe conversation (a tool, an assistant call, a tool
// result) through the template itself and looking for each format's markup around the probe's
// name: the template's own text is the reference. A template that renders neither tools nor
// calls (the built-in ChatML) gets the generic fallback: Hermes syntax, with the tools described
// in a system message we add, and calls / results written into message contents.
//
// Thread safety: free functions over their arguments; a ToolSyntax is an immutable value; a
// ToolCallStreamer belongs to one sequence.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/chat_template.h"

namespace llmforge {

enum class ToolCallFormat { kHermes, kLlama3Json, kDeepSeekR1, kDeepSeekV31, kQwen3Coder };

// How one chat template writes tool calls.
struct ToolSyntax {
    ToolCallFormat format = ToolCallFormat::kHermes;
    // False: the template ignores tools and tool calls (generic fallback, Hermes syntax).
    bool template_renders_tools = false;
    // Assistant tool_calls' "arguments" reach the template as JSON objects (most templates
    // `tojson` them); false: as the client's JSON strings (templates that concatenate them).
    bool object_arguments = true;
    // An assistant message with tool_calls carries content null (templates that test `is none`)
    // rather than "".
    bool null_content = false;
    // "hermes", "llama3-json", "deepseek-r1", "deepseek-v3.1", "qwen3-coder"; the generic
    // fallback is "generic (hermes)".
    std::string name() const;
    // The text a call starts with (what streaming holds back, what "auto" text must not start with).
    std::string opener() const;
};

// Detects `tmpl`'s syntax by rendering probe conversations (bos/eos: the tokenizer's texts).
// Never throws: a template that fails on every probe gets the generic fallback.
ToolSyntax detect_tool_syntax(const ChatTemplate& tmpl, const std::string& bos_token = "",
                              const std::string& eos_token = "");

// One OpenAI function tool.
struct ToolDef {
    std::string name;
    std::string description;
    nlohmann::ordered_json parameters = nlohmann::ordered_json::object();  // a JSON schema (object)
    bool strict = false;
};

enum class ToolChoiceMode { kAuto, kNone, kRequired, kNamed };
struct ToolChoice {
    ToolChoiceMode mode = ToolChoiceMode::kAuto;
    std::string name;  // kNamed
};

// Tool names go into grammars and markup: 1..64 of [A-Za-z0-9_-] (OpenAI's rule). Throws Error
// (kBadInput) naming `where` otherwise.
void check_tool_name(const std::string& name, const std::string& where);

// The GBNF (root "root") of the model's output for these tools:
//   required / named: one call (or, with `parallel`, one or more) of the allowed tools, each
//   call's arguments constrained by its parameters schema (json_schema_to_gbnf);
//   auto: the same, or free text that does not start with the format's opener.
// Throws Error (kBadInput) naming the tool when a parameters schema cannot be converted.
// kNone has no grammar (the caller adds none).
std::string tool_call_gbnf(const ToolSyntax& syn, const std::vector<ToolDef>& tools, const ToolChoice& choice,
                           bool parallel);

// Renames every rule of a GBNF text `prefix + name` (definitions and references; literals,
// classes and comments untouched), so that several converted schemas can share one grammar.
std::string prefix_gbnf_rules(std::string_view gbnf, std::string_view prefix);

struct ToolCall {
    std::string id;         // "call_" + letters/digits (random part + a counter), unique per process
    std::string name;
    std::string arguments;  // a JSON object as text (OpenAI's function.arguments)
};

struct ParsedToolOutput {
    // Text outside the calls: the whole text when there is no call, else trimmed; may be empty.
    std::string content;
    std::vector<ToolCall> calls;
};

// Parses generated text in `syn`'s format. Text that is not a well-formed call stays content
// (never throws). `tools` (optional) gives the parameter types the XML format needs to tell a
// string "3" from the number 3.
ParsedToolOutput parse_tool_calls(const ToolSyntax& syn, std::string_view text,
                                  const std::vector<ToolDef>* tools = nullptr);

// A fresh, process-unique tool call id ("call_" + 10 random letters/digits + a base-62 counter).
std::string new_tool_call_id();

// Prepares OpenAI messages for the template: assistant tool_calls' arguments (JSON strings from
// clients) become objects when the template wants objects (and content null/"" as it wants);
// for the generic fallback the tools are described in a system message (merged into the first
// system message, or added) and calls / results are written as Hermes markup in the contents.
// `tools` is the request's tools array (OpenAI shape) or null. Throws Error (kBadInput) naming
// the message for arguments that are not a JSON object.
void prepare_tool_messages(const ToolSyntax& syn, nlohmann::ordered_json& messages, const nlohmann::ordered_json& tools);

// The streaming twin of parse_tool_calls: text arrives piece by piece; content that cannot be
// part of a call is released at once, text that may start a call is held back, and each call is
// released whole once its closing markup (or the end) has arrived. The calls and content
// released over a whole stream equal parse_tool_calls on the whole text (ids aside).
class ToolCallStreamer {
public:
    ToolCallStreamer(ToolSyntax syn, std::vector<ToolDef> tools);
    struct Delta {
        std::string content;
        std::vector<ToolCall> calls;  // new calls, in order
        bool empty() const { return content.empty() && calls.empty(); }
    };
    Delta push(std::string_view text);
    // The end of the text: releases what was held back.
    Delta finish();
    size_t calls_released() const { return n_calls_; }

private:
    Delta release(bool at_end);
    ToolSyntax syn_;
    std::vector<ToolDef> tools_;
    std::string text_;      // everything so far
    size_t done_ = 0;       // text_[0, done_) has been released (as content or calls)
    size_t n_calls_ = 0;
    bool in_block_ = false;  // inside a DeepSeek calls block
};

}  // namespace llmforge
