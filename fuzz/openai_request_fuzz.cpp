// libFuzzer target: the server's OpenAI request parser (parse_request) on arbitrary bodies, as
// chat and as completions, against a small SentencePiece vocabulary with byte fallback and the
// fallback ChatML template; bodies that parse are also turned into response and chunk JSON.
// ApiError (400/404) and Error are accepted outcomes; a crash, a sanitizer report or a hang is a
// bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>

#include "core/error.h"
#include "serve/openai_api.h"

using namespace llmforge;
using namespace llmforge::serve;

namespace {

std::shared_ptr<const ServedModel> tiny_model() {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a", "<|im_start|>", "<|im_end|>"};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
               TokenType::kNormal, TokenType::kNormal, TokenType::kUserDefined, TokenType::kUserDefined};
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        v.tokens.push_back(name);
        v.types.push_back(TokenType::kByte);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(-static_cast<float>(i));
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    auto m = std::make_shared<ServedModel>();
    m->id = "tiny";
    m->tokenizer = Tokenizer::create(v);
    m->chat_template.emplace(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "fuzz");
    m->extra_stops = {"<|im_end|>"};
    return m;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const std::shared_ptr<const ServedModel> kModel = tiny_model();
    const ApiLimits limits{64, 4, 256};
    const std::string body(reinterpret_cast<const char*>(data), size);
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
        } catch (const ApiError& e) {
            (void)dump(e.body());
        } catch (const Error&) {
        }
    }
    return 0;
}
