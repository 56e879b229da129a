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
#include <vector>

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
    std::string model_id;
    std::vector<SeqRequest> seqs;  // n per prompt, index = prompt * n + choice
    int64_t prompt_tokens = 0;     // all prompts, counted once each
    bool echo = false;             // completions: the prompt text is prepended
    std::vector<std::string> prompts_text;  // echo
};

// Parses and checks a body against the served model (its id, tokenizer, template, context).
// Throws ApiError (400 bad field / too long, 404 unknown model).
ParsedRequest parse_request(const std::string& body, bool chat, const std::shared_ptr<const ServedModel>& m,
                            const ApiLimits& limits);

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

// JSON text for the wire: invalid UTF-8 (a lone byte token) becomes U+FFFD instead of throwing.
std::string dump(const nlohmann::json& j);

}  // namespace llmforge::serve
