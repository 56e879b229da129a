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
    for (bool chat : {true, false}) {
        try {
            ParsedRequest r = parse_request(body, chat, kModel, limits);
            // Fake one token and a finish per choice, as the engine would send them.
            std::vector<ChoiceResult> choices(r.seqs.size());
            for (size_t i = 0; i < r.seqs.size(); ++i) {
                Event e;
                e.index = static_cast<int>(i);
                e.text = "a";
                e.token = {static_cast<int32_t>(r.seqs[i].prompt.back()), -0.5f};
                e.top = {{4, -0.5f}, {3, -1.5f}};
                (void)dump(chunk_json(r, "id", 0, &e, *kModel->tokenizer, i == 0));
                choices[i].text = e.text;
                choices[i].tokens.push_back(e);
                choices[i].finish_reason = "length";
            }
            (void)dump(response_json(r, "id", 0, choices, *kModel->tokenizer));
            if (too_deep) die("a body nesting deeper than the limit was accepted");
        } catch (const ApiError& e) {
            if ((e.code == "json_too_deep") != too_deep) die("json_too_deep does not match the scan");
            (void)dump(e.body());
        } catch (const Error&) {
            if (too_deep) die("a body nesting deeper than the limit got past the scan");
        }
    }
    return 0;
}
