// libFuzzer target: Hugging Face config.json parsing on arbitrary bytes. Any llmforge::Error is an
// accepted outcome; a crash, a sanitizer report or a hang is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "model/hf_config.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        ModelConfig c =
            hf_config_parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.json");
        (void)c;
    } catch (const Error&) {
    }
    return 0;
}
