// libFuzzer target: GGUF parsing, metadata access, tensor views and the ModelConfig / Vocab
// mapping on arbitrary bytes. Any llmforge::Error is an accepted outcome; a crash, a sanitizer
// report, a hang or an allocation beyond libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/gguf.h"
#include "model/gguf_model.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        GgufFile f = GgufFile::from_memory(data, size, "fuzz.gguf");
        size_t sink = 0;
        for (const GgufKV& kv : f.metadata()) {
            sink += kv.value.to_string(4).size() + kv.value.array_size();
            try {
                sink += static_cast<size_t>(kv.value.to_int("k"));
            } catch (const Error&) {
            }
        }
        for (const GgufTensorInfo& info : f.tensor_infos()) {
            Tensor t = f.tensor(info);
            // Touch the first and last byte of every view: ASan reports a view past the input.
            if (t.nbytes() > 0) {
                const auto* p = static_cast<const volatile uint8_t*>(t.data());
                sink += p[0] + p[t.nbytes() - 1];
            }
        }
        try {
            ModelConfig c = gguf_read_config(f);
            sink += static_cast<size_t>(c.n_embd);
        } catch (const Error&) {
        }
        try {
            Vocab v = gguf_read_vocab(f);
            sink += v.tokens.size();
        } catch (const Error&) {
        }
        (void)sink;
    } catch (const Error&) {
    }
    return 0;
}
