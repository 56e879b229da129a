#include "serve/openai_api.h"

#include <cmath>

// GCC 12 at -O3 reports a false -Wrestrict inside std::string's operator+ (GCC bug 105651) for
// the error-message concatenations below.
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ == 12
#pragma GCC diagnostic ignored "-Wrestrict"
#endif

#include <algorithm>
#include <cctype>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/json_depth.h"
#include "io/image.h"
#include "runtime/chat.h"
#include "runtime/fim.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

namespace llmforge::serve {

using nlohmann::json;
using ojson = nlohmann::ordered_json;

ApiError::ApiError(int s, std::string message, std::string t, std::string p, std::string c)
    : std::runtime_error(std::move(message)), status(s), type(std::move(t)), param(std::move(p)), code(std::move(c)) {}

json ApiError::body() const {
    json e = {{"message", what()}, {"type", type}, {"param", nullptr}, {"code", nullptr}};
    if (!param.empty()) e["param"] = param;
    if (!code.empty()) e["code"] = code;
    return {{"error", e}};
}

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

int http_status(ErrorKind kind) {
    switch (kind) {
        case ErrorKind::kBadInput: return 400;
        case ErrorKind::kNotFound: return 404;
        case ErrorKind::kResource: return 503;
        case ErrorKind::kInternal: return 500;
    }
    return 500;
}

ApiError api_error(const std::exception& e, const std::string& prefix, std::string param, std::string code) {
    const ErrorKind kind = error_kind_of(e);
    const int status = http_status(kind);
    if (code.empty()) {
        code = kind == ErrorKind::kNotFound ? "not_found" : kind == ErrorKind::kResource ? "resource_exhausted" : "";
    }
    return ApiError(status, prefix + e.what(), status < 500 ? "invalid_request_error" : "server_error", std::move(param),
                    std::move(code));
}

namespace {

const char* type_name(const json& v) {
    switch (v.type()) {
        case json::value_t::null: return "null";
        case json::value_t::boolean: return "boolean";
        case json::value_t::string: return "string";
        case json::value_t::array: return "array";
        case json::value_t::object: return "object";
        case json::value_t::number_float: return "number";
        default: return "integer";
    }
}

[[noreturn]] void bad(const std::string& param, const std::string& msg) { throw ApiError(400, msg, "invalid_request_error", param); }

[[noreturn]] void bad_type(const std::string& param, const char* expected, const json& v) {
    bad(param, "'" + param + "' must be " + expected + ", found " + type_name(v));
}

// Optional typed fields: absent or null means the default.
const json* field(const json& body, const char* name) {
    auto it = body.find(name);
    return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double def, double lo, double hi) {
    const json* v = field(body, name);
    if (v == nullptr) return def;
    if (!v->is_number()) bad_type(name, "a number", *v);
    const double x = v->get<double>();
    if (!(x >= lo && x <= hi)) {
        bad(name, "'" + std::string(name) + "' is " + v->dump() + ", expected a value in [" + json(lo).dump() + ", " +
                      json(hi).dump() + "]");
    }
    return x;
}

int64_t integer(const json& body, const char* name, int64_t def, int64_t lo, int64_t hi) {
    const json* v = field(body, name);
    if (v == nullptr) return def;
    if (!v->is_number_integer() && !(v->is_number_float() && std::isfinite(v->get<double>()) &&
                                     v->get<double>() == std::trunc(v->get<double>()))) {
        bad_type(name, "an integer", *v);
    }
    // An integral float (2.0, 1e300) is compared as a double first: casting one outside int64's
    // range would be undefined (found by openai_request_fuzz: "seed": 2.2e102).
    if (v->is_number_float() && !(v->get<double>() >= static_cast<double>(lo) && v->get<double>() <= static_cast<double>(hi) &&
                                  v->get<double>() < 0x1p63)) {
        bad(name, "'" + std::string(name) + "' is " + v->dump() + ", expected " + std::to_string(lo) + ".." +
                      std::to_string(hi));
    }
    const int64_t x = v->is_number_integer() ? v->get<int64_t>() : static_cast<int64_t>(v->get<double>());
    if (x < lo || x > hi) {
        bad(name, "'" + std::string(name) + "' is " + std::to_string(x) + ", expected " + std::to_string(lo) + ".." +
                      std::to_string(hi));
    }
    return x;
}

bool boolean(const json& body, const char* name, bool def) {
    const json* v = field(body, name);
    if (v == nullptr) return def;
    if (!v->is_boolean()) bad_type(name, "a boolean", *v);
    return v->get<bool>();
}

// A JSON object key quoted for a message: printable, cut to 40 bytes.
std::string quoted_key(const std::string& k) {
    std::string s = json(k.size() > 40 ? k.substr(0, 40) : k).dump(-1, ' ', true, json::error_handler_t::replace);
    if (k.size() > 40) s.insert(s.size() - 1, "...");
    return s;
}

// Standard base64 (RFC 4648 section 4, and its URL-safe alphabet; '=' padding optional, ASCII
// whitespace skipped) into `out`; false at the first other byte (*bad_at: its offset).
bool decode_base64(std::string_view in, std::string& out, size_t* bad_at) {
    out.clear();
    out.reserve(in.size() / 4 * 3 + 3);
    uint32_t acc = 0;
    int bits = 0;
    bool padding = false;
    for (size_t i = 0; i < in.size(); ++i) {
        const unsigned char c = static_cast<unsigned char>(in[i]);
        int v = -1;
        if (c >= 'A' && c <= 'Z') v = c - 'A';
        else if (c >= 'a' && c <= 'z') v = c - 'a' + 26;
        else if (c >= '0' && c <= '9') v = c - '0' + 52;
        else if (c == '+' || c == '-') v = 62;
        else if (c == '/' || c == '_') v = 63;
        else if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        else if (c == '=') {
            padding = true;
            continue;
        }
        if (v < 0 || padding) {  // a data byte after padding is as wrong as a foreign byte
            *bad_at = i;
            return false;
        }
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xff);
        }
    }
    return true;
}

bool starts_with_ci(std::string_view s, std::string_view prefix) {
    if (s.size() < prefix.size()) return false;
    for (size_t i = 0; i < prefix.size(); ++i)
        if (std::tolower(static_cast<unsigned char>(s[i])) != prefix[i]) return false;
    return true;
}

// A message's image part's URL -> its bytes and declared type: a data: URI with base64 data.
ContentImage image_part(const json& part, const std::string& param) {
    const json* iu = field(part, "image_url");
    const json* url_v = iu != nullptr && iu->is_object() ? field(*iu, "url") : iu;
    if (url_v == nullptr || !url_v->is_string()) {
        bad(param, "'" + param + "' must be {\"url\": \"data:image/png;base64,...\"} or that URL as a string, found " +
                       (iu == nullptr ? std::string("nothing") : iu->is_object() ? "an object without a string 'url'" : type_name(*iu)));
    }
    const std::string& url = url_v->get_ref<const std::string&>();
    if (!starts_with_ci(url, "data:")) {
        const size_t colon = url.find(':');
        const bool scheme = colon != std::string::npos && colon > 0 &&
                            std::all_of(url.begin(), url.begin() + static_cast<std::ptrdiff_t>(colon), [](char c) {
                                return std::isalnum(static_cast<unsigned char>(c)) || c == '+' || c == '-' || c == '.';
                            });
        if (scheme || url.rfind("//", 0) == 0) {
            bad(param, param + ": remote image URLs are not fetched (no network); send the image as a data: URI");
        }
        bad(param, param + ": expected a data: URI (data:image/png;base64,...), found " + quoted_key(url));
    }
    const size_t comma = url.find(',');
    if (comma == std::string::npos) {
        bad(param, param + ": the data: URI has no ',' before its data (expected data:image/png;base64,...)");
    }
    // data:[<mediatype>][;<parameter>]*[;base64],<data>
    std::string type;
    bool base64 = false;
    size_t at = 5;
    for (bool first = true; at <= comma; first = false) {
        size_t end = url.find(';', at);
        if (end == std::string::npos || end > comma) end = comma;
        std::string item = url.substr(at, end - at);
        std::transform(item.begin(), item.end(), item.begin(), [](unsigned char c) { return std::tolower(c); });
        if (first) type = item;
        else if (item == "base64") base64 = true;
        at = end + 1;
    }
    if (!base64) {
        bad(param, param + ": the data: URI is not base64 (expected data:image/png;base64,...; hint: encode the image's "
                           "bytes in base64)");
    }
    ContentImage img;
    img.param = param;
    img.where = type.empty() ? param : param + " (declared " + quoted_key(type) + ")";
    size_t bad_at = 0;
    if (!decode_base64(std::string_view(url).substr(comma + 1), img.bytes, &bad_at)) {
        const unsigned char c = static_cast<unsigned char>(url[comma + 1 + bad_at]);
        char shown[16];
        std::snprintf(shown, sizeof shown, c >= 0x21 && c < 0x7f ? "'%c'" : "byte 0x%02x", c);
        bad(param, param + ": the data: URI's base64 is not valid (" + shown + " at offset " + std::to_string(bad_at) +
                       " of the data; expected A-Z a-z 0-9 + / and '=' padding at the end)");
    }
    return img;
}

}  // namespace

FlatContent flatten_content_parts(const json& c, const std::string& where, bool images_allowed) {
    FlatContent out;
    if (c.is_null()) return out;
    if (c.is_string()) {
        out.text = out.plain = c.get<std::string>();
        return out;
    }
    if (!c.is_array()) bad_type(where, "a string or an array of content parts", c);
    for (size_t j = 0; j < c.size(); ++j) {
        const json& part = c[j];
        const std::string at = where + "[" + std::to_string(j) + "]";
        if (!part.is_object()) bad_type(at, "an object {\"type\": \"text\", \"text\": STRING} or {\"type\": \"image_url\", ...}", part);
        const json* type = field(part, "type");
        if (type == nullptr || !type->is_string()) {
            bad(at + ".type", "'" + at + ".type' must be \"text\" or \"image_url\"");
        }
        const std::string& t = type->get_ref<const std::string&>();
        if (t == "text") {
            const json* text = field(part, "text");
            if (text == nullptr || !text->is_string()) bad(at + ".text", "'" + at + ".text' must be a string");
            out.text += text->get_ref<const std::string&>();
            out.plain += text->get_ref<const std::string&>();
        } else if (t == "image_url") {
            if (!images_allowed) {
                bad(at, "'" + at + "' is an image, but only user messages may carry images");
            }
            out.images.push_back(image_part(part, at + ".image_url"));
            out.text += "<image>\n";
        } else {
            bad(at + ".type", "'" + at + ".type' is " + quoted_key(t) + ", expected \"text\" or \"image_url\"");
        }
    }
    return out;
}

namespace {

// A chat request's prompt: its tokens, or with images the prompt of tokens and images (the
// images' rows not made yet: each has its row count, the image's bytes wait in `images`).
struct ChatRequestPrompt {
    std::vector<int32_t> tokens;
    std::shared_ptr<MultimodalPrompt> mm;
    std::vector<ContentImage> images;  // mm->images[i]'s bytes
};

ChatRequestPrompt chat_prompt(const json& body, const ServedModel& m, bool tools_given, std::string* last_user) {
    const json* msgs = field(body, "messages");
    if (msgs == nullptr) bad("messages", "'messages' is required");
    if (!msgs->is_array()) bad_type("messages", "an array", *msgs);
    if (msgs->empty()) bad("messages", "'messages' must hold at least one message");
    ChatTemplateInputs in;
    in.messages = ojson::array();
    ChatRequestPrompt out;
    for (size_t i = 0; i < msgs->size(); ++i) {
        const json& msg = (*msgs)[i];
        const std::string where = "messages[" + std::to_string(i) + "]";
        if (!msg.is_object()) bad_type(where, "an object", msg);
        if (!msg.contains("role") || !msg["role"].is_string()) bad(where + ".role", "'" + where + ".role' must be a string");
        const std::string role = msg["role"].get<std::string>();
        if (role != "system" && role != "user" && role != "assistant" && role != "tool" && role != "developer") {
            bad(where + ".role", "'" + where + ".role' is '" + role +
                                     "', expected system, developer, user, assistant or tool");
        }
        ojson o = ojson::parse(msg.dump());
        o["role"] = role == "developer" ? "system" : role;
        FlatContent fc = flatten_content_parts(msg.contains("content") ? msg["content"] : json(), where + ".content", role == "user");
        o["content"] = std::move(fc.text);
        if (role == "user") *last_user = std::move(fc.plain);
        for (ContentImage& im : fc.images) {
            if (out.images.size() == kMaxRequestImages) {
                bad(im.param, "the request has more than " + std::to_string(kMaxRequestImages) +
                                  " images, the most this server takes per request (hint: send fewer)");
            }
            out.images.push_back(std::move(im));
        }
        if (msg.contains("tool_calls") && !msg["tool_calls"].is_null()) {
            if (role != "assistant") bad(where + ".tool_calls", "'" + where + ".tool_calls' is only allowed on assistant messages");
            if (!msg["tool_calls"].is_array()) bad_type(where + ".tool_calls", "an array", msg["tool_calls"]);
        }
        if (role == "tool" && msg.contains("tool_call_id") && !msg["tool_call_id"].is_string())
            bad_type(where + ".tool_call_id", "a string", msg["tool_call_id"]);
        in.messages.push_back(std::move(o));
    }
    if (!out.images.empty() && !m.image_encoder) {
        const std::string& first = out.images[0].param;
        throw ApiError(400,
                       first + ": model '" + m.id + "' has no image encoder (" +
                           (m.no_images_reason.empty()
                                ? std::string("no mmproj.gguf beside it; hint: serve a vision-language model folder, or "
                                              "start the server with --mmproj FILE")
                                : "its mmproj was left out at load: " + m.no_images_reason) + ")",
                       "invalid_request_error", first, "no_image_encoder");
    }
    if (tools_given) in.tools = ojson::parse(field(body, "tools")->dump());
    if (!m.chat_template) {
        throw ApiError(400,
                       no_chat_template_message("model '" + m.id + "'", "--chat-template") +
                           " when starting the server, or send the prompt to /v1/completions",
                       "invalid_request_error", "messages", "no_chat_template");
    }
    try {
        prepare_tool_messages(m.tool_syntax(), in.messages, in.tools);
    } catch (const Error& e) {
        bad("messages", e.what());
    }
    try {
        if (out.images.empty()) {
            out.tokens = chat_to_tokens(*m.tokenizer, *m.chat_template, std::move(in)).tokens;
        } else {
            // The rows come later (once the prompt is known to fit): each image holds its place.
            std::vector<PromptImage> images(out.images.size());
            for (PromptImage& im : images) im.n_rows = m.image_encoder->n_tokens();
            out.mm = std::make_shared<MultimodalPrompt>(chat_to_multimodal(*m.tokenizer, *m.chat_template, std::move(in),
                                                                           std::move(images)));
        }
    } catch (const Error& e) {
        bad("messages", std::string("the chat template failed on these messages: ") + e.what());
    }
    return out;
}

// The rows of a chat prompt's images: each decoded (by content: PNG or JPEG, within the server's
// limits) and run through the model's image encoder; the bytes are let go as they are used.
void embed_images(ChatRequestPrompt& p, const ServedModel& m) {
    for (size_t i = 0; i < p.images.size(); ++i) {
        ContentImage& ci = p.images[i];
        Image img;
        try {
            img = decode_image(reinterpret_cast<const uint8_t*>(ci.bytes.data()), ci.bytes.size(), ci.where,
                               ImageLimits{kMaxImagePixels, kMaxImageSide});
        } catch (const Error& e) {
            bad(ci.param, e.what());
        }
        std::string().swap(ci.bytes);
        p.mm->images[i] = m.embed_image(img);
    }
}

// Completions prompts: a string, an array of strings, an array of token ids, or an array of those.
std::vector<std::vector<int32_t>> completion_prompts(const json& body, const ServedModel& m,
                                                     std::vector<std::string>& texts) {
    const json* p = field(body, "prompt");
    if (p == nullptr) bad("prompt", "'prompt' is required");
    const Tokenizer& tok = *m.tokenizer;
    auto one = [&](const json& v) -> std::vector<int32_t> {
        if (v.is_string()) {
            texts.push_back(v.get<std::string>());
            return encode_prompt(tok, v.get<std::string>(), true, true);
        }
        if (v.is_array() && !v.empty() && v[0].is_number_integer()) {
            std::vector<int32_t> ids;
            for (const auto& x : v) {
                if (!x.is_number_integer() || x.get<int64_t>() < 0 || x.get<int64_t>() >= tok.n_vocab()) {
                    bad("prompt", "token ids in 'prompt' must be integers in 0.." + std::to_string(tok.n_vocab() - 1) +
                                      ", found " + x.dump());
                }
                ids.push_back(x.get<int32_t>());
            }
            texts.push_back(tok.decode(ids));
            return ids;
        }
        bad_type("prompt", "a string, an array of strings or an array of token ids", v);
    };
    std::vector<std::vector<int32_t>> out;
    if (p->is_array() && !p->empty() && !(*p)[0].is_number_integer()) {
        if (p->size() > 16) bad("prompt", "at most 16 prompts per request, found " + std::to_string(p->size()));
        for (const auto& v : *p) out.push_back(one(v));
    } else {
        out.push_back(one(*p));
    }
    return out;
}

// 'logit_bias': {"TOKEN_ID": BIAS, ...} as OpenAI defines it (keys are token ids written as
// decimal strings, BIAS a number in [-100, 100]). Sorted by id.
std::vector<std::pair<int32_t, float>> logit_bias(const json& body, int64_t n_vocab) {
    const json* lb = field(body, "logit_bias");
    if (lb == nullptr) return {};
    if (!lb->is_object()) bad_type("logit_bias", "an object mapping token ids to biases, e.g. {\"50256\": -100}", *lb);
    if (lb->size() > kMaxLogitBiasEntries) {
        bad("logit_bias", "'logit_bias' has " + std::to_string(lb->size()) + " entries, expected at most " +
                              std::to_string(kMaxLogitBiasEntries) + " (hint: bias fewer tokens)");
    }
    const std::string range = "0.." + std::to_string(n_vocab - 1);
    std::vector<std::pair<int32_t, float>> out;
    out.reserve(lb->size());
    for (auto it = lb->begin(); it != lb->end(); ++it) {
        const std::string& k = it.key();
        int64_t id = 0;
        bool digits = !k.empty() && k.size() <= 18;
        for (char c : k) {
            if (c < '0' || c > '9') {
                digits = false;
                break;
            }
            id = id * 10 + (c - '0');
        }
        if (!digits) {
            bad("logit_bias", "'logit_bias' key " + quoted_key(k) + " is not a token id: expected an integer in " + range +
                                  " written as a string, e.g. {\"50256\": -100}");
        }
        if (id >= n_vocab) {
            bad("logit_bias", "'logit_bias' key " + quoted_key(k) + " is outside this model's vocabulary: expected a token id in " +
                                  range);
        }
        const json& v = it.value();
        const std::string where = "'logit_bias' value for token " + std::to_string(id);
        if (!v.is_number()) bad("logit_bias", where + " must be a number in [-100, 100], found " + type_name(v));
        const double b = v.get<double>();
        if (!(b >= -kMaxLogitBias && b <= kMaxLogitBias)) {
            bad("logit_bias", where + " is " + v.dump() + ", expected a value in [-100, 100]");
        }
        out.emplace_back(static_cast<int32_t>(id), static_cast<float>(b));
    }
    std::sort(out.begin(), out.end());
    for (size_t i = 1; i < out.size(); ++i) {
        if (out[i].first == out[i - 1].first) {
            bad("logit_bias", "'logit_bias' names token " + std::to_string(out[i].first) +
                                  " twice (keys with leading zeros?), expected each token once");
        }
    }
    return out;
}

std::vector<std::string> stops(const json& body) {
    const json* s = field(body, "stop");
    if (s == nullptr) return {};
    if (s->is_string()) return {s->get<std::string>()};
    if (!s->is_array()) bad_type("stop", "a string or an array of strings", *s);
    if (s->size() > 4) bad("stop", "'stop' holds at most 4 strings, found " + std::to_string(s->size()));
    std::vector<std::string> out;
    for (const auto& x : *s) {
        if (!x.is_string()) bad_type("stop", "a string or an array of strings", x);
        out.push_back(x.get<std::string>());
    }
    return out;
}

// A JSON schema given in a request: an object (or a boolean schema), under the size cap.
ojson request_schema(const json& v, const std::string& param) {
    if (!v.is_object() && !v.is_boolean()) bad_type(param, "a JSON schema object", v);
    const std::string text = v.dump(-1, ' ', false, json::error_handler_t::replace);
    if (text.size() > kMaxGrammarBytes) {
        bad(param, "'" + param + "' is " + std::to_string(text.size()) + " bytes of JSON, above this server's limit of " +
                       std::to_string(kMaxGrammarBytes) + " (hint: simplify the schema)");
    }
    return ojson::parse(text);
}

std::string schema_gbnf(const json& v, const std::string& param) {
    const ojson schema = request_schema(v, param);
    try {
        return json_schema_to_gbnf(schema, param);
    } catch (const Error& e) {
        bad(param, std::string("'") + param + "' cannot be used: " + e.what());
    }
}

// The GBNF of 'response_format', 'grammar' or 'json_schema' (at most one), with the param that
// gave it; empty when none constrains the output.
std::pair<std::string, std::string> response_gbnf(const json& body) {
    std::vector<std::pair<std::string, std::string>> found;  // (gbnf, param)
    if (const json* rf = field(body, "response_format")) {
        if (!rf->is_object()) bad_type("response_format", "an object, e.g. {\"type\": \"json_object\"}", *rf);
        const json* t = field(*rf, "type");
        if (t == nullptr || !t->is_string())
            bad("response_format.type", "'response_format.type' must be \"text\", \"json_object\" or \"json_schema\"");
        const std::string type = t->get<std::string>();
        if (type == "json_object") {
            if (const json* sc = field(*rf, "schema")) {  // llama.cpp: json_object with a schema
                found.emplace_back(schema_gbnf(*sc, "response_format.schema"), "response_format.schema");
            } else {
                found.emplace_back(json_object_gbnf(), "response_format");
            }
        } else if (type == "json_schema") {
            const json* js = field(*rf, "json_schema");
            if (js == nullptr) bad("response_format.json_schema", "'response_format.json_schema' is required with type \"json_schema\"");
            if (!js->is_object()) bad_type("response_format.json_schema", "an object {\"name\", \"schema\", \"strict\"}", *js);
            if (const json* n = field(*js, "name")) {
                if (!n->is_string()) bad_type("response_format.json_schema.name", "a string", *n);
                if (n->get<std::string>().size() > 64)
                    bad("response_format.json_schema.name", "'response_format.json_schema.name' is longer than 64 characters");
            }
            if (const json* d = field(*js, "description"); d != nullptr && !d->is_string())
                bad_type("response_format.json_schema.description", "a string", *d);
            if (const json* st = field(*js, "strict"); st != nullptr && !st->is_boolean())
                bad_type("response_format.json_schema.strict", "a boolean", *st);
            const json* sc = field(*js, "schema");
            if (sc == nullptr) {
                found.emplace_back(json_object_gbnf(), "response_format.json_schema");
            } else {
                found.emplace_back(schema_gbnf(*sc, "response_format.json_schema.schema"), "response_format.json_schema.schema");
            }
        } else if (type != "text") {
            bad("response_format.type", "'response_format.type' is " + quoted_key(type) +
                                            ", expected \"text\", \"json_object\" or \"json_schema\"");
        }
    }
    if (const json* g = field(body, "grammar")) {
        if (!g->is_string()) bad_type("grammar", "a string (GBNF)", *g);
        if (g->get_ref<const std::string&>().size() > kMaxGrammarBytes) {
            bad("grammar", "'grammar' is " + std::to_string(g->get_ref<const std::string&>().size()) +
                               " bytes, above this server's limit of " + std::to_string(kMaxGrammarBytes));
        }
        found.emplace_back(g->get<std::string>(), "grammar");
    }
    if (const json* js = field(body, "json_schema")) found.emplace_back(schema_gbnf(*js, "json_schema"), "json_schema");
    if (found.size() > 1) {
        bad(found[1].second, "'" + found[0].second + "' and '" + found[1].second +
                                 "' both constrain the output; send one of response_format, grammar, json_schema");
    }
    return found.empty() ? std::pair<std::string, std::string>{} : found[0];
}

std::shared_ptr<const Grammar> parse_grammar(const std::string& gbnf, const std::string& param) {
    try {
        return Grammar::parse(gbnf, "root", param);
    } catch (const Error& e) {
        bad(param, std::string("'") + param + "' is not a usable grammar: " + e.what());
    }
}

// 'tools' -> definitions (each checked; its parameters converted once to find a bad schema).
std::vector<ToolDef> parse_tools(const json& tools) {
    if (!tools.is_array()) bad_type("tools", "an array of {\"type\": \"function\", \"function\": {...}}", tools);
    if (tools.size() > kMaxTools)
        bad("tools", "'tools' has " + std::to_string(tools.size()) + " entries, expected at most " + std::to_string(kMaxTools));
    std::vector<ToolDef> out;
    size_t schema_bytes = 0;
    for (size_t i = 0; i < tools.size(); ++i) {
        const std::string where = "tools[" + std::to_string(i) + "]";
        const json& t = tools[i];
        if (!t.is_object()) bad_type(where, "an object {\"type\": \"function\", \"function\": {...}}", t);
        const json* type = field(t, "type");
        if (type == nullptr || !type->is_string() || type->get<std::string>() != "function")
            bad(where + ".type", "'" + where + ".type' must be \"function\" (the only tool type this server runs)");
        const json* fn = field(t, "function");
        if (fn == nullptr || !fn->is_object()) bad(where + ".function", "'" + where + ".function' must be an object {\"name\", \"description\", \"parameters\"}");
        ToolDef d;
        const json* name = field(*fn, "name");
        if (name == nullptr || !name->is_string()) bad(where + ".function.name", "'" + where + ".function.name' must be a string");
        d.name = name->get<std::string>();
        try {
            check_tool_name(d.name, "'" + where + ".function.name'");
        } catch (const Error& e) {
            bad(where + ".function.name", e.what());
        }
        for (const auto& prev : out)
            if (prev.name == d.name) bad(where + ".function.name", "'" + where + ".function.name' repeats the tool name '" + d.name + "'");
        if (const json* desc = field(*fn, "description")) {
            if (!desc->is_string()) bad_type(where + ".function.description", "a string", *desc);
            d.description = desc->get<std::string>();
        }
        if (const json* st = field(*fn, "strict")) {
            if (!st->is_boolean()) bad_type(where + ".function.strict", "a boolean", *st);
            d.strict = st->get<bool>();
        }
        const std::string pparam = where + ".function.parameters";
        if (const json* p = field(*fn, "parameters")) {
            if (!p->is_object()) bad_type(pparam, "a JSON schema object", *p);
            d.parameters = request_schema(*p, pparam);
            schema_bytes += p->dump().size();
            if (schema_bytes > kMaxGrammarBytes)
                bad(pparam, "the tools' parameter schemas are over this server's limit of " + std::to_string(kMaxGrammarBytes) + " bytes");
            try {
                (void)json_schema_to_gbnf(d.parameters, "tool " + d.name);
            } catch (const Error& e) {
                bad(pparam, "'" + pparam + "' cannot be used: " + e.what());
            }
        } else {
            d.parameters = ojson{{"type", "object"}};
        }
        out.push_back(std::move(d));
    }
    return out;
}

ToolChoice parse_tool_choice(const json& body, const std::vector<ToolDef>& tools, bool tools_given) {
    ToolChoice c;
    const json* tc = field(body, "tool_choice");
    if (tc == nullptr) return c;
    if (tc->is_string()) {
        const std::string v = tc->get<std::string>();
        if (v == "auto") c.mode = ToolChoiceMode::kAuto;
        else if (v == "none") c.mode = ToolChoiceMode::kNone;
        else if (v == "required") c.mode = ToolChoiceMode::kRequired;
        else bad("tool_choice", "'tool_choice' is " + quoted_key(v) + ", expected \"auto\", \"none\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": NAME}}");
    } else if (tc->is_object()) {
        const json* fn = field(*tc, "function");
        const json* name = fn != nullptr && fn->is_object() ? field(*fn, "name") : nullptr;
        if (name == nullptr || !name->is_string())
            bad("tool_choice", "'tool_choice' as an object must be {\"type\": \"function\", \"function\": {\"name\": NAME}}");
        c.mode = ToolChoiceMode::kNamed;
        c.name = name->get<std::string>();
        bool known = false;
        for (const auto& t : tools) known = known || t.name == c.name;
        if (!known) {
            std::string names;
            for (const auto& t : tools) names += (names.empty() ? "'" : ", '") + t.name + "'";
            bad("tool_choice", "'tool_choice' names function " + quoted_key(c.name) + ", which is not in 'tools' (" +
                                   (names.empty() ? std::string("none given") : "known: " + names) + ")");
        }
    } else {
        bad_type("tool_choice", "a string or an object", *tc);
    }
    if ((!tools_given || tools.empty()) && c.mode == ToolChoiceMode::kRequired)
        bad("tool_choice", "'tool_choice' is \"required\" but the request has no 'tools'");
    return c;
}

}  // namespace

void check_json_depth(std::string_view body, size_t limit) {
    const JsonNesting n = json_nesting(body);
    if (n.max_depth > limit) {
        throw ApiError(400,
                       "the request JSON nests " + std::to_string(n.max_depth) + " levels deep at byte " +
                           std::to_string(n.at) + "; the limit is " + std::to_string(limit) +
                           " (hint: flatten the structure)",
                       "invalid_request_error", "", "json_too_deep");
    }
}

ApiError unknown_model_error(const std::string& requested, const std::string& base_id, const AdapterMap* adapters) {
    std::string known = "'" + base_id + "'";
    size_t listed = 0;
    if (adapters != nullptr) {
        for (const auto& [name, a] : *adapters) {
            if (++listed > 32) {
                known += ", ... (" + std::to_string(adapters->size()) + " adapters; GET /v1/models lists them)";
                break;
            }
            known += ", '" + name + "'";
        }
    }
    std::string shown = requested.size() > 200 ? requested.substr(0, 200) + "..." : requested;
    return ApiError(404,
                    "The model '" + shown + "' does not exist (this server serves " + known +
                        "; hint: GET /v1/models)",
                    "invalid_request_error", "model", "model_not_found");
}

ParsedRequest parse_request(const std::string& text, bool chat, const std::shared_ptr<const ServedModel>& m,
                            const ApiLimits& limits, const AdapterMap* adapters) {
    check_json_depth(text);  // before parsing: deep values would overflow the stack later
    json body;
    try {
        body = json::parse(text);
    } catch (const json::exception& e) {
        throw ApiError(400, std::string("the request body is not valid JSON: ") + e.what() +
                                " (hint: send Content-Type: application/json with a JSON object)");
    }
    if (!body.is_object()) throw ApiError(400, std::string("the request body must be a JSON object, found ") + type_name(body));
    ParsedRequest r;
    r.chat = chat;
    r.model_id = m->id;
    if (const json* mv = field(body, "model")) {
        if (!mv->is_string()) bad_type("model", "a string", *mv);
        const std::string& name = mv->get_ref<const std::string&>();
        if (name != m->id) {
            auto it = adapters != nullptr ? adapters->find(name) : AdapterMap::const_iterator{};
            if (adapters == nullptr || it == adapters->end()) throw unknown_model_error(name, m->id, adapters);
            r.adapter = it->second;
            r.model_id = name;
        }
    }
    r.stream = boolean(body, "stream", false);
    if (const json* so = field(body, "stream_options")) {
        if (!so->is_object()) bad_type("stream_options", "an object", *so);
        r.include_usage = boolean(*so, "include_usage", false);
    }
    r.n = static_cast<int>(integer(body, "n", 1, 1, limits.max_n));
    SamplerParams sp;
    sp.temperature = static_cast<float>(number(body, "temperature", 1.0, 0, 2));
    sp.top_p = static_cast<float>(number(body, "top_p", 1.0, 0, 1));
    sp.top_k = static_cast<int32_t>(integer(body, "top_k", 0, 0, 1 << 20));
    sp.min_p = static_cast<float>(number(body, "min_p", 0.0, 0, 1));
    sp.presence_penalty = static_cast<float>(number(body, "presence_penalty", 0.0, -2, 2));
    sp.frequency_penalty = static_cast<float>(number(body, "frequency_penalty", 0.0, -2, 2));
    sp.repeat_penalty = static_cast<float>(number(body, "repeat_penalty", 1.0, 0, 10));
    sp.logit_bias = logit_bias(body, m->tokenizer->n_vocab());
    const json* seed_v = field(body, "seed");
    uint64_t seed = seed_v ? static_cast<uint64_t>(integer(body, "seed", 0, INT64_MIN, INT64_MAX)) : std::random_device{}();
    if (chat) {
        r.logprobs = boolean(body, "logprobs", false);
        r.top_logprobs = static_cast<int>(integer(body, "top_logprobs", 0, 0, 20));
        if (field(body, "top_logprobs") && !r.logprobs) bad("top_logprobs", "'top_logprobs' needs 'logprobs': true");
    } else {
        const json* lp = field(body, "logprobs");
        if (lp != nullptr) {
            r.logprobs = true;
            r.top_logprobs = static_cast<int>(integer(body, "logprobs", 0, 0, 20));
        }
        r.echo = boolean(body, "echo", false);
        if (const json* sf = field(body, "suffix")) {
            if (!sf->is_string()) bad_type("suffix", "a string", *sf);
            r.fim = true;
            if (r.echo) bad("suffix", "'suffix' and 'echo' cannot be used together");
            if (!m->fim()) {
                bad("suffix", "model '" + m->id + "' has no fill-in-the-middle tokens (looked for DeepSeek-Coder "
                              "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>, StarCoder <fim_prefix>, "
                              "Qwen2.5-Coder <|fim_prefix|>, CodeLlama <PRE>); hint: send the prompt without 'suffix'");
            }
        }
        for (const char* chat_only : {"tools", "tool_choice"})
            if (field(body, chat_only)) bad(chat_only, std::string("'") + chat_only + "' needs /v1/chat/completions");
    }
    // Structured output.
    const auto [resp_gbnf, resp_param] = response_gbnf(body);
    const bool tools_given = chat && field(body, "tools") != nullptr;
    if (tools_given) r.tools = parse_tools(*field(body, "tools"));
    const ToolChoice choice = chat ? parse_tool_choice(body, r.tools, tools_given) : ToolChoice{};
    const bool parallel = chat ? boolean(body, "parallel_tool_calls", true) : true;
    r.tools_active = tools_given && !r.tools.empty() && choice.mode != ToolChoiceMode::kNone;
    if (r.tools_active && !resp_gbnf.empty()) {
        bad(resp_param, "'" + resp_param + "' and 'tools' both constrain the output; send tools, or set tool_choice "
                        "\"none\", or drop " + resp_param);
    }
    if (r.tools_active) {
        r.tool_syntax = m->tool_syntax();
        std::string gbnf;
        try {
            gbnf = tool_call_gbnf(r.tool_syntax, r.tools, choice, parallel);
        } catch (const Error& e) {
            bad("tools", e.what());
        }
        r.grammar = parse_grammar(gbnf, "tools");
    } else if (!resp_gbnf.empty()) {
        r.grammar = parse_grammar(resp_gbnf, resp_param);
    }
    const char* max_name = chat && field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
    const json* mt = field(body, max_name);
    int64_t max_tokens = -1;
    if (mt != nullptr) {
        max_tokens = integer(body, max_name, 16, 1, INT64_MAX);
        if (max_tokens > limits.max_tokens_cap) {
            bad(max_name, "'" + std::string(max_name) + "' is " + std::to_string(max_tokens) + ", above this server's cap of " +
                              std::to_string(limits.max_tokens_cap) + " (hint: ask for fewer tokens)");
        }
    } else if (!chat) {
        max_tokens = 16;  // OpenAI's completions default
    }
    std::vector<std::string> stop = stops(body);

    std::vector<std::vector<int32_t>> prompts;
    ChatRequestPrompt chat_p;  // chat: with images, their prompt (rows made once it fits)
    if (chat) {
        chat_p = chat_prompt(body, *m, tools_given, &r.user_text);
        prompts.push_back(std::move(chat_p.tokens));
        for (const auto& s : m->extra_stops) stop.push_back(s);
    } else {
        prompts = completion_prompts(body, *m, r.prompts_text);
        for (const auto& t : r.prompts_text) r.user_text += (r.user_text.empty() ? "" : "\n") + t;
        if (r.fim) {
            const std::string& suffix = field(body, "suffix")->get_ref<const std::string&>();
            const FimFormat& f = *m->fim();
            for (size_t p = 0; p < prompts.size(); ++p) {
                try {
                    prompts[p] = fim_prompt(*m->tokenizer, f, r.prompts_text[p], suffix);
                } catch (const Error& e) {
                    bad("suffix", e.what());
                }
            }
            for (int32_t t : f.stop)
                if (t >= 0 && t < m->tokenizer->n_vocab()) stop.push_back(m->tokenizer->token_text(t));
            if (stop.size() > 8) stop.resize(8);
        }
    }
    std::shared_ptr<const GrammarVocab> gvocab = r.grammar ? m->grammar_vocab() : nullptr;
    for (size_t p = 0; p < prompts.size(); ++p) {
        const bool images = chat && chat_p.mm != nullptr;
        const int64_t np = images ? chat_p.mm->n_positions() : static_cast<int64_t>(prompts[p].size());
        if (np == 0) bad(chat ? "messages" : "prompt", "the prompt is empty (it tokenises to no tokens)");
        int64_t mt_p = max_tokens;
        if (mt_p < 0) mt_p = std::min(limits.max_tokens_cap, limits.n_ctx - np);
        if (np + mt_p > limits.n_ctx || mt_p < 1) {
            throw ApiError(400,
                           "This model's maximum context length is " + std::to_string(limits.n_ctx) + " tokens. However, you requested " +
                               std::to_string(np + std::max<int64_t>(mt_p, 1)) + " tokens (" + std::to_string(np) + " in the prompt, " +
                               std::to_string(std::max<int64_t>(mt_p, 1)) + " for the completion" +
                               (images ? "; each image counts as " + std::to_string(m->image_encoder->n_tokens()) + " prompt tokens" : "") +
                               "). Please reduce the prompt or max_tokens.",
                           "invalid_request_error", chat ? "messages" : "prompt", "context_length_exceeded");
        }
        std::shared_ptr<const MultimodalPrompt> mm;
        if (images) {  // it fits: the images' rows now (the costly part of the request's checks)
            embed_images(chat_p, *m);
            prompts[p] = chat_p.mm->position_keys();
            mm = std::move(chat_p.mm);
        }
        r.prompt_tokens += np;
        for (int i = 0; i < r.n; ++i) {
            SeqRequest s;
            s.model = m;
            s.index = static_cast<int>(p) * r.n + i;
            s.prompt = prompts[p];
            s.images = mm;
            s.sampling = sp;
            s.sampling.seed = seed + static_cast<uint64_t>(s.index);
            s.max_tokens = mt_p;
            s.stop = stop;
            s.top_logprobs = r.logprobs ? r.top_logprobs : -1;
            if (r.adapter) {
                s.adapter = r.adapter->key;
                s.delta = r.adapter->delta;
            }
            if (r.grammar) {
                s.constraint = [g = r.grammar, gvocab] { return make_grammar_stage(g, gvocab); };
            }
            r.seqs.push_back(std::move(s));
        }
    }
    return r;
}

// ------------------------------------------------------------------------------------ responses

namespace {

json bytes_of(const std::string& s) {
    json b = json::array();
    for (unsigned char c : s) b.push_back(static_cast<int>(c));
    return b;
}

json chat_logprob_entry(const Event& e, const Tokenizer& tok) {
    const std::string piece = tok.token_to_piece(e.token.id);
    json top = json::array();
    for (const auto& t : e.top) {
        const std::string p = tok.token_to_piece(t.id);
        top.push_back({{"token", p}, {"logprob", t.logprob}, {"bytes", bytes_of(p)}});
    }
    return {{"token", piece}, {"logprob", e.token.logprob}, {"bytes", bytes_of(piece)}, {"top_logprobs", top}};
}

// Completions' legacy shape: parallel arrays.
json completion_logprobs(const std::vector<Event>& tokens, const Tokenizer& tok, size_t offset0) {
    json toks = json::array(), lps = json::array(), tops = json::array(), offs = json::array();
    size_t off = offset0;
    for (const auto& e : tokens) {
        const std::string piece = tok.token_to_piece(e.token.id);
        toks.push_back(piece);
        lps.push_back(e.token.logprob);
        json top = json::object();
        for (const auto& t : e.top) top[tok.token_to_piece(t.id)] = t.logprob;
        tops.push_back(top);
        offs.push_back(off);
        off += piece.size();
    }
    return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", tops}, {"text_offset", offs}};
}

std::string wire_reason(const std::string& r) { return r == "cancelled" ? "length" : r; }

}  // namespace

json usage_json(int64_t prompt_tokens, int64_t completion_tokens, int64_t cached_tokens) {
    return {{"prompt_tokens", prompt_tokens},
            {"completion_tokens", completion_tokens},
            {"total_tokens", prompt_tokens + completion_tokens},
            {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

json response_json(const ParsedRequest& r, const std::string& id, int64_t created,
                   const std::vector<ChoiceResult>& choices, const Tokenizer& tok) {
    json out = {{"id", id},
                {"object", r.chat ? "chat.completion" : "text_completion"},
                {"created", created},
                {"model", r.model_id},
                {"system_fingerprint", "llmforge"}};
    json arr = json::array();
    int64_t completion = 0, cached = 0;
    for (size_t i = 0; i < choices.size(); ++i) {
        const ChoiceResult& c = choices[i];
        completion += c.completion_tokens;
        if (i % r.n == 0) cached += c.cached_tokens;
        json ch = {{"index", i}, {"finish_reason", wire_reason(c.finish_reason)}};
        if (r.chat) {
            ch["message"] = {{"role", "assistant"}, {"content", c.text}, {"refusal", nullptr}};
            if (r.tools_active) {
                ParsedToolOutput p = parse_tool_calls(r.tool_syntax, c.text, &r.tools);
                if (!p.calls.empty()) {
                    ch["message"]["content"] = p.content.empty() ? json(nullptr) : json(p.content);
                    json calls = json::array();
                    for (const auto& tc : p.calls) calls.push_back(tool_call_json(tc));
                    ch["message"]["tool_calls"] = std::move(calls);
                    ch["finish_reason"] = "tool_calls";
                }
            }
            if (r.logprobs) {
                json content = json::array();
                for (const auto& e : c.tokens) content.push_back(chat_logprob_entry(e, tok));
                ch["logprobs"] = {{"content", content}, {"refusal", nullptr}};
            } else {
                ch["logprobs"] = nullptr;
            }
        } else {
            const std::string prefix = r.echo ? r.prompts_text[i / r.n] : "";
            ch["text"] = prefix + c.text;
            ch["logprobs"] = r.logprobs ? completion_logprobs(c.tokens, tok, prefix.size()) : json(nullptr);
        }
        arr.push_back(std::move(ch));
    }
    out["choices"] = std::move(arr);
    out["usage"] = usage_json(r.prompt_tokens, completion, cached);
    return out;
}

json chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, const Event* ev,
                const Tokenizer& tok, bool role_chunk) {
    json out = {{"id", id},
                {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
                {"created", created},
                {"model", r.model_id},
                {"system_fingerprint", "llmforge"}};
    json choices = json::array();
    if (ev != nullptr) {
        json ch = {{"index", ev->index}, {"finish_reason", nullptr}, {"logprobs", nullptr}};
        if (ev->kind == Event::kDone) ch["finish_reason"] = wire_reason(ev->finish_reason);
        const bool tok_ev = ev->kind == Event::kToken && !role_chunk;
        if (r.chat) {
            json delta = json::object();
            if (role_chunk) delta = {{"role", "assistant"}, {"content", ""}};
            if (tok_ev) delta["content"] = ev->text;
            ch["delta"] = delta;
            if (tok_ev && r.logprobs && ev->token.id >= 0)
                ch["logprobs"] = {{"content", json::array({chat_logprob_entry(*ev, tok)})}, {"refusal", nullptr}};
        } else {
            ch["text"] = tok_ev ? ev->text : "";
            if (tok_ev && r.logprobs && ev->token.id >= 0) ch["logprobs"] = completion_logprobs({*ev}, tok, 0);
        }
        choices.push_back(std::move(ch));
    }
    out["choices"] = std::move(choices);
    if (r.include_usage) out["usage"] = nullptr;
    return out;
}

json tool_call_json(const ToolCall& c) {
    return {{"id", c.id}, {"type", "function"}, {"function", {{"name", c.name}, {"arguments", c.arguments}}}};
}

namespace {
json chunk_head(const ParsedRequest& r, const std::string& id, int64_t created) {
    json out = {{"id", id},
                {"object", "chat.completion.chunk"},
                {"created", created},
                {"model", r.model_id},
                {"system_fingerprint", "llmforge"}};
    if (r.include_usage) out["usage"] = nullptr;
    return out;
}
}  // namespace

json content_chunk_json(const ParsedRequest& r, const std::string& id, int64_t created, int index,
                        const std::string& content) {
    json out = chunk_head(r, id, created);
    out["choices"] = json::array(
        {{{"index", index}, {"finish_reason", nullptr}, {"logprobs", nullptr}, {"delta", {{"content", content}}}}});
    return out;
}

std::vector<json> tool_call_chunks_json(const ParsedRequest& r, const std::string& id, int64_t created, int index,
                                        int call_index, const ToolCall& call) {
    auto one = [&](json tc) {
        json out = chunk_head(r, id, created);
        out["choices"] = json::array({{{"index", index},
                                       {"finish_reason", nullptr},
                                       {"logprobs", nullptr},
                                       {"delta", {{"tool_calls", json::array({std::move(tc)})}}}}});
        return out;
    };
    std::vector<json> out;
    out.push_back(one({{"index", call_index},
                       {"id", call.id},
                       {"type", "function"},
                       {"function", {{"name", call.name}, {"arguments", ""}}}}));
    out.push_back(one({{"index", call_index}, {"function", {{"arguments", call.arguments}}}}));
    return out;
}

}  // namespace llmforge::serve
