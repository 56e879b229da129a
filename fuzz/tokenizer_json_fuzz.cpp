// libFuzzer target: Hugging Face tokenizer.json mapping, tokenizer construction, and one
// encode/decode round on arbitrary bytes. The input is the file; a fixed text with special-token
// look-alikes, ill-formed UTF-8 and a BOS request is encoded with whatever tokenizer it yields.
// Any llmforge::Error is an accepted outcome; a crash, a sanitizer report or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "tokenizer/hf_tokenizer_json.h"
#include "tokenizer/tokenizer.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static constexpr std::string_view kText =
        "Hello world!  <s>[CLS]<|im_end|> \xE4\xBD\xA0\xE5\xA5\xBD \xFF\xC3 12345\n\tend";
    try {
        const Vocab v = hf_tokenizer_json_parse(
            std::string_view(reinterpret_cast<const char*>(data), size), "", "", "fuzz.json");
        auto tok = Tokenizer::create(v);
        for (bool special : {false, true}) {
            const auto ids = tok->encode(kText, tok->add_bos_default(), special);
            (void)tok->decode(ids, special);
        }
    } catch (const Error&) {
    }
    return 0;
}
