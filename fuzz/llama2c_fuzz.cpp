// libFuzzer target: llama2.c checkpoint header validation and tok*.bin parsing on arbitrary bytes.
// Any llmforge::Error is an accepted outcome; a crash, a sanitizer report, a hang or an
// allocation beyond libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "model/llama2c.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    size_t sink = 0;
    try {
        Llama2cCheckpoint ck = Llama2cCheckpoint::from_memory(data, size, "fuzz.bin");
        for (const Tensor& t : ck.tensors()) {
            const auto* p = static_cast<const volatile uint8_t*>(t.data());
            sink += p[0] + p[t.nbytes() - 1];
        }
    } catch (const Error&) {
    }
    for (int64_t n : {int64_t{-1}, int64_t{3}, int64_t{512}}) {
        try {
            Vocab v = llama2c_parse_vocab(data, size, "fuzz_tok.bin", n);
            sink += v.tokens.size();
        } catch (const Error&) {
        }
    }
    (void)sink;
    return 0;
}
