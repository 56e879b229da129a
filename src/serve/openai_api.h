// The OpenAI wire format: request bodies of /v1/chat/completions and /v1/completions checked and
// turned into engine sequences, and the response / stream-chunk JSON built from engine events.
// Field meanings and defaults follow OpenAI's API reference; llama.cpp's extensions top_k and
// min_p are accepted too.
//
// Thread safety: free functions over their arguments only.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "serve/engine.h"

namespace llmforge::serve {

// An error in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with its status.
struct ApiError : std::runtime_error {
    int status;
    std::string type, param, code;
    ApiError(int status, std::string message, std::string type = "invalid_request_error", std::string param = "",
             std::string code = "");
    nlohmann::json body() const;
};

// The HTTP status of an error kind: bad input 400, not found 404, resource (memory, capacity,
// context) 503, internal 500.
int http_status(ErrorKind kind);
// Any exception as an OpenAI error: the status of its kind (error_kind_of), type
// "invalid_request_error" below 500 and "server_error" from 500 on, `prefix` + its message; `code`
// defaults to "not_found" (404) or "resource_exhausted" (503).
ApiError api_error(const std::exception& e, const std::string& prefix = "", std::string param = "", std::string code = "");

// Request bodies nesting arrays/objects deeper than this are refused (400, code "json_too_deep")
// before they are parsed: copying, comparing and dumping a parsed value recurse once per level, so
// a body of 20,000 '[' would overflow the stack. 64 levels hold any real messages + tools +
// JSON-schema body.
constexpr size_t kMaxRequestJsonDepth = 64;
// At most this many 'logit_bias' entries per request.
constexpr size_t kMaxLogitBiasEntries = 1024;
// Structured output: a 'grammar' text, a JSON schema (as compact JSON text) and all of a
// request's tools' parameter schemas together are each capped at this many bytes; 'tools' at
// kMaxTools entries.
constexpr size_t kMaxGrammarBytes = 256u << 10;
constexpr size_t kMaxTools = 128;

// Throws ApiError 400 (code "json_too_deep") when `body` nests deeper than `limit`, checked by a
// linear scan of the raw text (core/json_depth.h) that needs no parse. parse_request calls it;
// other JSON endpoints should too.
void check_json_depth(std::string_view body, size_t limit = kMaxRequestJsonDepth);

// Images in chat requests (docs/MULTIMODAL.md "Server"): at most this many per request, each
// decoded within these limits (checked from the image's header before its pixels are allocated).
constexpr size_t kMaxRequestImages = 8;
constexpr int64_t kMaxImagePixels = 4096 * 4096;
constexpr int64_t kMaxImageSide = 8192;

// An image part of a message's content: its bytes (the data URI's base64, decoded) and where it
// was: param "messages[1].content[0].image_url"; where, for messages, the same with the declared
// type when one was given ("... (declared \"image/webp\")").
struct ContentImage {
    std::string param, where;
    std::string bytes;
};
// A message's content as the chat template gets it.
struct FlatContent {
    std::string text;   // the text parts in order, "<image>\n" where each image part was
    std::string plain;  // the text parts alone (what a content filter checks)
    std::vector<ContentImage> images;
};
// OpenAI message content — a string, null, or an array of parts {"type": "text", "text": STRING}
// and {"type": "image_url", "image_url": {"url": URL, "detail": ...} or URL} — flattened: the text
// parts concatenated, each image part becoming an "<image>" marker line (runtime/multimodal.h)
// at its place. URL must be a data: URI with base64 data (data:image/png;base64,...); the
// declared type is not trusted (the bytes are decoded by content later). images_allowed false
// (messages other than the user's): an image part is refused. Throws ApiError 400, one line whose
// param names the part ("messages[i].content[j].image_url"): a part of another shape or type, a
// remote URL (http, https, file, ...: never fetched, the server has no network), a URL that is not
// a data: URI, data that is not base64. `where` is "messages[i].content".
FlatContent flatten_content_parts(const nlohmann::json& content, const std::string& where, bool images_allowed);

struct ApiLimits {
    int64_t max_tokens_cap = 4096;  // max_tokens above this: 400
    int max_n = 16;                 // choices per request
    int64_t n_ctx = 2048;           // per sequence: prompt + max_tokens must fit
};

// A checked request: the sequences to run plus what the response needs.
struct ParsedRequest {
    bool chat = false;
    bool stream = false;
    bool include_usage = false;
    bool logprobs = false;
    int top_logprobs = 0;
    int n = 1;
    std::string model_id;  // as the response names it: the base's id or the adapter's name
    std::shared_ptr<const ServedAdapter> adapter;  // null: the base model alone
    std::vector<SeqRequest> seqs;  // n per prompt, index = prompt * n + choice
    int64_t prompt_tokens = 0;     // all prompts, counted once each
    bool echo = false;             // completions: the prompt text is prepended
    std::vector<std::string> prompts_text;  // echo
    // Structured output: the grammar every sequence is constrained by (response_format,
    // 'grammar', 'json_schema', or the tools' call grammar); null: none.
    std::shared_ptr<const Grammar> grammar;
    // Tools (chat): the output is parsed into tool_calls when tools_active (tools given and
    // tool_choice not "none").
    bool tools_active = false;
    ToolSyntax tool_syntax;
    std::vector<ToolDef> tools;
    bool fim = false;  // completions with 'suffix': the prompt is the model's FIM prompt
    // What a content filter checks before generating: the last user message (chat) or the text
    // prompts (completions), joined by newlines.
    std::string user_text;
};

// Parses and checks a body against the served model (its id, tokenizer, template, context).
// Chat messages may carry images (flatten_content_parts): for a model with an image encoder each
// is decoded (PNG or JPEG by content, within kMaxImagePixels / kMaxImageSide), at most
// kMaxRequestImages per request, and turned into rows once the prompt is known to fit the context;
// the sequences then carry the MultimodalPrompt (chat_to_multimodal) and prompt_tokens counts its
// positions. A model without one refuses them (400, code "no_image_encoder").
// Structured output (each constrains every sequence with a grammar stage, the Grammar parsed once
// per request, the model's GrammarVocab shared): 'response_format' {"type": "text" | "json_object"
// | "json_schema", "json_schema": {"name", "schema", "strict", "description"}} and llama.cpp's
// 'grammar' (GBNF) and 'json_schema'; at most one of them. Chat only: 'tools' (function tools),
// 'tool_choice' ("auto" | "none" | "required" | {"type": "function", "function": {"name"}}),
// 'parallel_tool_calls'; tools and a response constraint together are refused. Completions:
// 'suffix' makes the prompt the model's fill-in-the-middle prompt (400 for a model without FIM
// tokens). A bad schema or grammar is a 400 whose param names the field.
// "model" names the base model (its id; omitted: the base too) or one of `adapters` (each
// sequence then carries the adapter's key and delta). Throws ApiError (400 bad field / too long /
// nested too deep / a chat request for a model without a chat template, 404 unknown model, the
// message listing the known ones).
// 'logit_bias' ({"TOKEN_ID": BIAS}, BIAS in [-100, 100], at most kMaxLogitBiasEntries, ids within
// the vocabulary) goes to SamplerParams::logit_bias of every sequence.
ParsedRequest parse_request(const std::string& body, bool chat, const std::shared_ptr<const ServedModel>& m,
                            const ApiLimits& limits, const AdapterMap* adapters = nullptr);
// The 404 for a "model" the server does not serve, listing the ones it does.
ApiError unknown_model_error(const std::string& requested, const std::string& base_id, const AdapterMap* adapters);

// Collects one choice's events for a non-streaming response.
struct ChoiceResult {
    std::string text;
    std::string finish_reason;
    std::vector<Event> tokens;  // kToken events with a token (logprobs)
    int64_t completion_tokens = 0, cached_tokens = 0;
};

nlohmann::json response_json(const ParsedRequest& r, const std::string& id, int64_t created,
                             const std::vector<ChoiceResult>& choices, const Tokenizer& tok);
// One streamed chunk for a token event (text and/or logprobs) or a finish; role chunks open a
// chat choice. `usage` chunks carry no choices.
nlohmann::json chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const Event* ev,
                          const Tokenizer& tok, bool role_chunk);
nlohmann::json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens);

// Streaming with tools: a chunk whose delta holds `content` text, and the two chunks of one
// released call: {index, id, type, function: {name, arguments: ""}}, then its arguments.
nlohmann::json content_chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, int index,
                                  const std::string& content);
std::vector<nlohmann::json> tool_call_chunks_json(const ParsedRequest& r, const std::string& id, int64_t created,
                                                  int index, int call_index, const ToolCall& call);
// A tool call as OpenAI's message.tool_calls[] entry.
nlohmann::json tool_call_json(const ToolCall& c);

// JSON text for the wire: invalid UTF-8 (a lone byte token) becomes U+FFFD instead of throwing.
std::string dump(const nlohmann::json& j);

}  // namespace llmforge::serve
