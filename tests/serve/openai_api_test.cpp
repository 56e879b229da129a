// The OpenAI request parser on its own (no server, no weights): a tiny in-process vocabulary and
// ChatML template stand in for a served model. Covers 'logit_bias' (parsed into every sequence's
// SamplerParams, every kind of bad input a 400 naming the parameter) and the JSON nesting limit
// (json_nesting's scan and the 400 "json_too_deep" before parsing), the HTTP status of each error
// kind, and chat prompts: one BOS rule, and a clear 400 for a model without a chat template.
// Images in chat messages: content parts flattened (a marker per image, data: URIs decoded), and
// each bad image part a one-line 400 naming it (remote URLs, bad base64, too many, a model without
// an image encoder). Decoding and encoding real images: tests/cli/serve_image_test.cpp.
#include <gtest/gtest.h>

#include <cstdio>
#include <memory>
#include <new>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.h"
#include "core/json_depth.h"
#include "runtime/sampler.h"
#include "serve/openai_api.h"
#include "serve/tiny_served_model.h"

namespace llmforge::serve {
namespace {

using nlohmann::json;

const std::shared_ptr<const ServedModel>& model() {
    static const std::shared_ptr<const ServedModel> m = test::tiny_served_model(false);
    return m;
}

ParsedRequest parse(const std::string& body, bool chat) { return parse_request(body, chat, model(), ApiLimits{}); }

// A body for chat or completions with `extra` fields merged in.
std::string body_with(bool chat, const json& extra) {
    json b = chat ? json{{"messages", {{{"role", "user"}, {"content", "a a"}}}}} : json{{"prompt", "a a"}};
    b["max_tokens"] = 4;
    for (auto it = extra.begin(); it != extra.end(); ++it) b[it.key()] = it.value();
    return b.dump();
}

// Expects an ApiError with status 400, the param and every substring; returns the message.
std::string expect_400(const std::string& body, bool chat, const std::string& param,
                       std::initializer_list<std::string> subs, const std::string& code = "") {
    try {
        parse(body, chat);
    } catch (const ApiError& e) {
        const std::string m = e.what();
        EXPECT_EQ(e.status, 400) << m;
        EXPECT_EQ(e.param, param) << m;
        EXPECT_EQ(e.code, code) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
        for (const auto& s : subs) EXPECT_NE(m.find(s), std::string::npos) << "missing '" << s << "' in: " << m;
        return m;
    }
    ADD_FAILURE() << "expected a 400 for " << body.substr(0, 200);
    return "";
}

// ---- logit_bias -----------------------------------------------------------------------------

TEST(OpenAiLogitBias, ReachesEverySequenceSortedByToken) {
    ASSERT_EQ(model()->tokenizer->n_vocab(), 264);
    for (bool chat : {true, false}) {
        SCOPED_TRACE(chat ? "chat" : "completions");
        const ParsedRequest r = parse(body_with(chat, {{"n", 3}, {"logit_bias", {{"263", 100}, {"4", -100}, {"0", 2.5}}}}), chat);
        ASSERT_EQ(r.seqs.size(), 3u);
        const std::vector<std::pair<int32_t, float>> want = {{0, 2.5f}, {4, -100.0f}, {263, 100.0f}};
        for (const auto& s : r.seqs) EXPECT_EQ(s.sampling.logit_bias, want);
        // Absent, null and {} mean none.
        EXPECT_TRUE(parse(body_with(chat, json::object()), chat).seqs[0].sampling.logit_bias.empty());
        EXPECT_TRUE(parse(body_with(chat, {{"logit_bias", nullptr}}), chat).seqs[0].sampling.logit_bias.empty());
        EXPECT_TRUE(parse(body_with(chat, {{"logit_bias", json::object()}}), chat).seqs[0].sampling.logit_bias.empty());
    }
}

TEST(OpenAiLogitBias, TheParsedBiasBansAndForcesTokensInTheSampler) {
    // The bias a request carries changes what the engine's sampler picks: greedy over logits
    // whose argmax is token 4, with -100 on it, then +100 on token 7.
    std::vector<float> logits(264, 0.0f);
    logits[4] = 8.0f;
    logits[5] = 6.0f;
    const auto pick = [&](const json& extra) {
        const ParsedRequest r = parse(body_with(false, extra), false);
        Sampler s(r.seqs[0].sampling);
        return s.sample(logits.data(), static_cast<int64_t>(logits.size()));
    };
    EXPECT_EQ(pick({{"temperature", 0}}), 4);
    EXPECT_EQ(pick({{"temperature", 0}, {"logit_bias", {{"4", -100}}}}), 5);
    EXPECT_EQ(pick({{"temperature", 0}, {"logit_bias", {{"7", 100}}}}), 7);
    EXPECT_EQ(pick({{"temperature", 1.5}, {"logit_bias", {{"7", 100}}}}), 7);
}

TEST(OpenAiLogitBias, BadInputIsA400NamingLogitBias) {
    for (bool chat : {true, false}) {
        SCOPED_TRACE(chat ? "chat" : "completions");
        expect_400(body_with(chat, {{"logit_bias", json::array({1, 2})}}), chat, "logit_bias",
                   {"'logit_bias' must be an object mapping token ids to biases", "found array"});
        expect_400(body_with(chat, {{"logit_bias", "4:-100"}}), chat, "logit_bias", {"must be an object", "found string"});
        // Keys: integers written as strings, within the vocabulary.
        for (const char* k : {"abc", "-1", "1.5", "", " 4", "4 ", "0x10", "+4", "1e2"}) {
            SCOPED_TRACE(k);
            expect_400(body_with(chat, {{"logit_bias", {{k, 1}}}}), chat, "logit_bias",
                       {"'logit_bias' key", "is not a token id", "expected an integer in 0..263"});
        }
        expect_400(body_with(chat, {{"logit_bias", {{"264", 1}}}}), chat, "logit_bias",
                   {"key \"264\"", "outside this model's vocabulary", "0..263"});
        expect_400(body_with(chat, {{"logit_bias", {{"99999999999999999999999", 1}}}}), chat, "logit_bias",
                   {"is not a token id"});
        expect_400(body_with(chat, {{"logit_bias", {{"4", 1}, {"004", 1}}}}), chat, "logit_bias",
                   {"names token 4 twice"});
        // Values: numbers in [-100, 100].
        expect_400(body_with(chat, {{"logit_bias", {{"4", "-100"}}}}), chat, "logit_bias",
                   {"'logit_bias' value for token 4 must be a number in [-100, 100], found string"});
        expect_400(body_with(chat, {{"logit_bias", {{"4", true}}}}), chat, "logit_bias", {"found boolean"});
        expect_400(body_with(chat, {{"logit_bias", {{"4", nullptr}}}}), chat, "logit_bias", {"found null"});
        expect_400(body_with(chat, {{"logit_bias", {{"4", 100.5}}}}), chat, "logit_bias",
                   {"value for token 4 is 100.5, expected a value in [-100, 100]"});
        expect_400(body_with(chat, {{"logit_bias", {{"4", -101}}}}), chat, "logit_bias", {"is -101"});
        // Too many entries (checked before any key).
        json many = json::object();
        for (size_t i = 0; i <= kMaxLogitBiasEntries; ++i) many[std::to_string(i)] = 1;
        expect_400(body_with(chat, {{"logit_bias", many}}), chat, "logit_bias",
                   {"has 1025 entries, expected at most 1024"});
    }
    // Keys with control characters or huge keys are quoted, printable and cut.
    const std::string m = expect_400(body_with(false, {{"logit_bias", {{std::string(500, 'x') + "\n", 1}}}}), false,
                                     "logit_bias", {"...\""});
    EXPECT_LT(m.size(), 300u) << m;
}

// ---- integer fields ---------------------------------------------------------------------------

// Integral floats are integers; one beyond int64's range is a range error, never a cast (found by
// openai_request_fuzz: "seed": 2.2e102 was undefined behaviour).
TEST(OpenAiIntegers, IntegralFloatsAreCheckedBeforeTheyAreCast) {
    for (bool chat : {true, false}) {
        SCOPED_TRACE(chat ? "chat" : "completions");
        EXPECT_NO_THROW(parse(body_with(chat, {{"max_tokens", 2.0}}), chat));
        for (double huge : {2.2e102, -2.2e102, 9223372036854775808.0}) {
            expect_400(body_with(chat, {{"seed", huge}}), chat, "seed", {"'seed' is", "expected"});
            expect_400(body_with(chat, {{"max_tokens", huge}}), chat, "max_tokens", {"'max_tokens' is", "expected"});
        }
        expect_400(body_with(chat, {{"max_tokens", 2.5}}), chat, "max_tokens", {"an integer"});
    }
}

// ---- JSON nesting -----------------------------------------------------------------------------

TEST(JsonNesting, CountsBracketsOutsideStringsOnly) {
    EXPECT_EQ(json_nesting("").max_depth, 0u);
    EXPECT_EQ(json_nesting("42").max_depth, 0u);
    EXPECT_EQ(json_nesting("[]").max_depth, 1u);
    EXPECT_EQ(json_nesting("{\"a\": [1, {\"b\": []}]}").max_depth, 4u);
    // Brackets inside strings do not count, nor do escaped quotes end a string.
    EXPECT_EQ(json_nesting("[\"[[[[{{{{\"]").max_depth, 1u);
    EXPECT_EQ(json_nesting("[\"\\\"[[[[\"]").max_depth, 1u);
    EXPECT_EQ(json_nesting("[\"\\\\\", [[]]]").max_depth, 3u);  // "\\" ends at the second quote
    EXPECT_EQ(json_nesting("{\"k[\": \"v{\", \"\\u005b\": [\"]]]]\"]}").max_depth, 2u);
    // Siblings do not add up; closing brackets without openers do not go below zero.
    EXPECT_EQ(json_nesting("[[], [], [[]]]").max_depth, 3u);
    EXPECT_EQ(json_nesting("]]]][[").max_depth, 2u);
    // The position is the 1-based byte of the bracket that first reached the maximum.
    const JsonNesting n = json_nesting("{\"a\": [[1], [[2]]]}");
    EXPECT_EQ(n.max_depth, 4u);
    EXPECT_EQ(n.at, 14u);
    // An unterminated string swallows the rest.
    EXPECT_EQ(json_nesting("[\"[[[[").max_depth, 1u);
    // Bytes that are not UTF-8 are just bytes.
    EXPECT_EQ(json_nesting(std::string("[\xff\x00[", 4)).max_depth, 2u);
}

std::string nested(size_t depth, const std::string& inner = "1") {
    std::string s;
    for (size_t i = 0; i < depth; ++i) s += i % 2 ? "{\"k\":" : "[";
    s += inner;
    for (size_t i = depth; i-- > 0;) s += i % 2 ? "}" : "]";
    return s;
}

TEST(JsonNesting, ExactlyAtTheLimitPassesOneMoreFails) {
    EXPECT_EQ(json_nesting(nested(kMaxRequestJsonDepth)).max_depth, kMaxRequestJsonDepth);
    EXPECT_NO_THROW(check_json_depth(nested(kMaxRequestJsonDepth)));
    try {
        check_json_depth(nested(kMaxRequestJsonDepth + 1));
        ADD_FAILURE() << "expected json_too_deep";
    } catch (const ApiError& e) {
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.code, "json_too_deep");
        EXPECT_NE(std::string(e.what()).find("nests 65 levels deep"), std::string::npos) << e.what();
        EXPECT_NE(std::string(e.what()).find("the limit is 64"), std::string::npos) << e.what();
    }
    // A smaller limit for other callers.
    EXPECT_NO_THROW(check_json_depth("[[1]]", 2));
    EXPECT_THROW(check_json_depth("[[[1]]]", 2), ApiError);
}

TEST(JsonNesting, RequestBodiesAreCheckedBeforeParsing) {
    // A body at the limit parses as usual (the unknown field is ignored): the body object takes
    // one level, the deep value the rest.
    for (bool chat : {true, false}) {
        SCOPED_TRACE(chat ? "chat" : "completions");
        const size_t used = 1;
        EXPECT_NO_THROW(parse(body_with(chat, {{"x_deep", json::parse(nested(kMaxRequestJsonDepth - used))}}), chat));
        expect_400(body_with(chat, {{"x_deep", json::parse(nested(kMaxRequestJsonDepth - used + 1))}}), chat, "",
                   {"the request JSON nests 65 levels deep", "the limit is 64", "hint: flatten the structure"},
                   "json_too_deep");
    }
    // The attack: 20,000 '[' (unterminated, so not even valid JSON) and a balanced version.
    expect_400(std::string(20000, '['), true, "", {"nests 20000 levels deep at byte 20000; the limit is 64"},
               "json_too_deep");
    const std::string deep = "{\"messages\": " + std::string(20000, '[') + std::string(20000, ']') + "}";
    expect_400(deep, true, "", {"nests 20001 levels deep at byte 20013"}, "json_too_deep");
    // Brackets in strings are content, not nesting.
    const ParsedRequest r = parse(body_with(true, {{"messages", {{{"role", "user"}, {"content", std::string(1500, '[')}}}}}), true);
    EXPECT_FALSE(r.seqs.empty());
}

// ---- error kinds -> HTTP status ------------------------------------------------------------------

TEST(ErrorKinds, MapToTheirHttpStatus) {
    EXPECT_EQ(http_status(ErrorKind::kBadInput), 400);
    EXPECT_EQ(http_status(ErrorKind::kNotFound), 404);
    EXPECT_EQ(http_status(ErrorKind::kResource), 503);
    EXPECT_EQ(http_status(ErrorKind::kInternal), 500);
    // fail() keeps meaning bad input; fail_kind() names another kind.
    try {
        fail("token id %d is out of range", 7);
    } catch (const Error& e) {
        EXPECT_EQ(e.kind(), ErrorKind::kBadInput);
        const ApiError a = api_error(e);
        EXPECT_EQ(a.status, 400);
        EXPECT_EQ(a.type, "invalid_request_error");
        EXPECT_EQ(std::string(a.what()), "token id 7 is out of range");
    }
    try {
        fail_kind(ErrorKind::kNotFound, "%s: no such model file or folder", "/no/such.gguf");
    } catch (const Error& e) {
        const ApiError a = api_error(e, "reload failed: ", "model");
        EXPECT_EQ(a.status, 404);
        EXPECT_EQ(a.type, "invalid_request_error");
        EXPECT_EQ(a.code, "not_found");
        EXPECT_EQ(a.param, "model");
        EXPECT_EQ(std::string(a.what()), "reload failed: /no/such.gguf: no such model file or folder");
    }
    const ApiError full = api_error(Error(ErrorKind::kResource, "context full"), "generation failed: ");
    EXPECT_EQ(full.status, 503);
    EXPECT_EQ(full.type, "server_error");
    EXPECT_EQ(full.code, "resource_exhausted");
    EXPECT_EQ(api_error(Error(ErrorKind::kInternal, "broken invariant")).status, 500);
    // Exceptions that are not Errors: out of memory is a resource, anything else internal.
    EXPECT_EQ(api_error(std::bad_alloc()).status, 503);
    EXPECT_EQ(api_error(std::runtime_error("?")).status, 500);
    EXPECT_EQ(api_error(std::runtime_error("?")).type, "server_error");
    // The JSON body carries the message and the code.
    const nlohmann::json b = full.body();
    EXPECT_EQ(b["error"]["message"], "generation failed: context full");
    EXPECT_EQ(b["error"]["code"], "resource_exhausted");
}

// ---- chat prompts -------------------------------------------------------------------------------

TEST(OpenAiChat, AModelWithoutAChatTemplateRefusesChatButNotCompletions) {
    auto m = test::tiny_served_model(false);
    m->chat_template.reset();
    m->extra_stops.clear();
    const std::shared_ptr<const ServedModel> bare = m;
    try {
        parse_request(body_with(true, json::object()), true, bare, ApiLimits{});
        ADD_FAILURE() << "expected a 400";
    } catch (const ApiError& e) {
        const std::string msg = e.what();
        EXPECT_EQ(e.status, 400);
        EXPECT_EQ(e.param, "messages");
        EXPECT_EQ(e.code, "no_chat_template");
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
        for (const char* sub : {"model 'tiny' carries no chat template", "--chat-template FILE.jinja", "--chat-template chatml",
                                "/v1/completions"}) {
            EXPECT_NE(msg.find(sub), std::string::npos) << "missing '" << sub << "' in: " << msg;
        }
    }
    EXPECT_EQ(parse_request(body_with(false, json::object()), false, bare, ApiLimits{}).seqs.size(), 1u);
}

TEST(OpenAiChat, BosIsAddedOnceWhateverTheTemplateOrPromptWrites) {
    // The tiny vocabulary adds BOS (<s>, id 1) by default.
    const int32_t bos = 1;
    const std::vector<int32_t> chat = parse(body_with(true, json::object()), true).seqs[0].prompt;
    ASSERT_FALSE(chat.empty());
    EXPECT_EQ(chat[0], bos);
    EXPECT_NE(chat[1], bos);
    // A template that writes BOS itself gets no second one.
    auto m = test::tiny_served_model(false);
    m->chat_template.emplace("{{ bos_token }}{{ messages[-1]['content'] }}", "bos.jinja");
    const std::shared_ptr<const ServedModel> with_bos = m;
    const std::vector<int32_t> own = parse_request(body_with(true, json::object()), true, with_bos, ApiLimits{}).seqs[0].prompt;
    ASSERT_GE(own.size(), 2u);
    EXPECT_EQ(own[0], bos);
    EXPECT_NE(own[1], bos);
    // Completions: BOS first; a prompt that starts with "<s>" already has it.
    const std::vector<int32_t> plain = parse(body_with(false, json::object()), false).seqs[0].prompt;
    const std::vector<int32_t> written = parse(body_with(false, {{"prompt", "<s>a a"}}), false).seqs[0].prompt;
    EXPECT_EQ(plain[0], bos);
    EXPECT_EQ(written, plain);
}

// ---- images in chat messages -------------------------------------------------------------------

json image_part(const std::string& url, bool as_object = true) {
    return {{"type", "image_url"}, {"image_url", as_object ? json{{"url", url}, {"detail", "low"}} : json(url)}};
}

std::string image_body(const json& content, const std::string& role = "user") {
    return json{{"messages", {{{"role", role}, {"content", content}}}}, {"max_tokens", 4}}.dump();
}

TEST(OpenAiImages, ContentPartsFlattenToTextWithAMarkerPerImage) {
    const json parts = {{{"type", "text"}, {"text", "Look: "}},
                        image_part("data:image/png;base64,aGVs\nbG8="),
                        {{"type", "text"}, {"text", "What is left?"}},
                        image_part("DATA:;BASE64,aGk", false)};  // no type, no padding, a plain string
    const FlatContent f = flatten_content_parts(parts, "messages[0].content", true);
    EXPECT_EQ(f.text, "Look: <image>\nWhat is left?<image>\n");
    EXPECT_EQ(f.plain, "Look: What is left?");
    ASSERT_EQ(f.images.size(), 2u);
    EXPECT_EQ(f.images[0].bytes, "hello");
    EXPECT_EQ(f.images[0].param, "messages[0].content[1].image_url");
    EXPECT_EQ(f.images[0].where, "messages[0].content[1].image_url (declared \"image/png\")");
    EXPECT_EQ(f.images[1].bytes, "hi");
    EXPECT_EQ(f.images[1].where, "messages[0].content[3].image_url");
    // URL-safe base64 too.
    EXPECT_EQ(flatten_content_parts(json::array({image_part("data:image/jpeg;base64,-_8=")}), "c", true).images[0].bytes,
              "\xfb\xff");
    EXPECT_EQ(flatten_content_parts("plain", "c", false).text, "plain");
    EXPECT_EQ(flatten_content_parts(json(), "c", false).text, "");
}

TEST(OpenAiImages, TextPartsAloneStayText) {
    // A request without images is tokenised as before, markers in its text included.
    const json parts = {{{"type", "text"}, {"text", "a <image> a"}}};
    EXPECT_EQ(parse(image_body(parts), true).seqs[0].prompt, parse(image_body("a <image> a"), true).seqs[0].prompt);
    EXPECT_EQ(parse(image_body(parts), true).seqs[0].images, nullptr);
}

TEST(OpenAiImages, EachBadImagePartIsAOneLine400NamingIt) {
    const std::string p1 = "messages[0].content[1].image_url";
    const json text = {{"type", "text"}, {"text", "a"}};
    auto with = [&](const json& part) { return image_body(json::array({text, part})); };
    for (const char* url : {"http://example.com/cat.png", "https://example.com/cat.png", "file:///etc/passwd",
                            "//example.com/cat.png", "ftp://example.com/cat.png"}) {
        const std::string m = expect_400(with(image_part(url)), true, p1, {});
        EXPECT_EQ(m, p1 + ": remote image URLs are not fetched (no network); send the image as a data: URI");
    }
    expect_400(with(image_part("cat.png")), true, p1, {p1 + ": expected a data: URI (data:image/png;base64,...), found \"cat.png\""});
    expect_400(with(image_part("data:image/png;base64,iVBOR*w0")), true, p1,
               {"the data: URI's base64 is not valid ('*' at offset 5 of the data; expected A-Z a-z 0-9 + /"});
    expect_400(with(image_part("data:image/png;base64,aGk=aGk=")), true, p1, {"base64 is not valid ('a' at offset 4"});
    expect_400(with(image_part("data:image/png,hello")), true, p1, {"the data: URI is not base64"});
    expect_400(with(image_part("data:image/png;base64")), true, p1, {"the data: URI has no ','"});
    expect_400(with({{"type", "image_url"}}), true, p1, {"'" + p1 + "' must be {\"url\": \"data:image/png;base64,...\"}"});
    expect_400(with({{"type", "image_url"}, {"image_url", {{"detail", "low"}}}}), true, p1, {"without a string 'url'"});
    expect_400(with({{"type", "input_audio"}}), true, "messages[0].content[1].type",
               {"'messages[0].content[1].type' is \"input_audio\", expected \"text\" or \"image_url\""});
    expect_400(with("just a string"), true, "messages[0].content[1]", {"must be an object"});
    expect_400(image_body(json::array({image_part("data:image/png;base64,AAAA")}), "system"), true,
               "messages[0].content[0]", {"is an image, but only user messages may carry images"});
    json nine = json::array();
    for (int i = 0; i < 9; ++i) nine.push_back(image_part("data:image/png;base64,AAAA"));
    expect_400(image_body(nine), true, "messages[0].content[8].image_url",
               {"more than 8 images, the most this server takes per request"});
}

TEST(OpenAiImages, AModelWithoutAnImageEncoderRefusesImages) {
    const std::string body = image_body(json::array({image_part("data:image/png;base64,AAAA"), {{"type", "text"}, {"text", "a"}}}));
    expect_400(body, true, "messages[0].content[0].image_url",
               {"messages[0].content[0].image_url: model 'tiny' has no image encoder (no mmproj.gguf beside it; hint: "
                "serve a vision-language model folder, or start the server with --mmproj FILE)"},
               "no_image_encoder");
    auto m = test::tiny_served_model(false);
    m->no_images_reason = "mmproj.gguf: rows of width 32, expected 8";
    const std::shared_ptr<const ServedModel> left_out = m;
    try {
        parse_request(body, true, left_out, ApiLimits{});
        ADD_FAILURE() << "expected a 400";
    } catch (const ApiError& e) {
        EXPECT_NE(std::string(e.what()).find("its mmproj was left out at load: mmproj.gguf: rows of width 32"), std::string::npos)
            << e.what();
    }
}

}  // namespace
}  // namespace llmforge::serve
