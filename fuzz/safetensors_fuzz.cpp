// libFuzzer target: safetensors header parsing and tensor views on arbitrary bytes. Any
// llmforge::Error is an accepted outcome; a crash, a sanitizer report, a hang or an allocation
// beyond libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/safetensors.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    try {
        SafetensorsFile f = SafetensorsFile::from_memory(data, size, "fuzz.safetensors");
        size_t sink = f.metadata().size();
        for (const SafetensorsTensorInfo& info : f.tensor_infos()) {
            try {
                Tensor t = f.tensor(info);
                const size_t n = static_cast<size_t>(info.end - info.begin);
                if (n > 0) {
                    const auto* p = static_cast<const volatile uint8_t*>(t.data());
                    sink += p[0] + p[n - 1];
                }
            } catch (const Error&) {  // unloadable dtype
            }
            sink += f.has_tensor(info.name);
        }
        (void)sink;
    } catch (const Error&) {
    }
    return 0;
}
