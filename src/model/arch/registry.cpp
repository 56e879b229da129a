// The architectures llmforge knows: one line each.
#include "core/error.h"
#include "model/arch/arch.h"

namespace llmforge {

extern const Arch kLlamaArch, kQwen2Arch, kQwen3Arch, kMistralArch, kDeepseek2Arch, kVitArch, kClipVisionArch,
    kSiglipVisionArch, kSwinArch, kRobertaArch, kFusionArch;

namespace {

const Arch* const kArchs[] = {&kLlamaArch, &kQwen2Arch, &kQwen3Arch, &kMistralArch, &kDeepseek2Arch, &kVitArch,
                              &kClipVisionArch, &kSiglipVisionArch, &kSwinArch, &kRobertaArch,
                              &kFusionArch};

}  // namespace

const Arch* find_arch(const std::string& name) {
    for (const Arch* a : kArchs)
        if (a->name == name) return a;
    return nullptr;
}

const Arch* find_arch_hf(const std::string& model_type) {
    for (const Arch* a : kArchs)
        for (const std::string& t : a->hf_types)
            if (t == model_type) return a;
    return nullptr;
}

std::string supported_archs() {
    std::string s;
    for (const Arch* a : kArchs) s += (s.empty() ? "" : ", ") + a->name;
    return s;
}

const Arch& arch_of(const std::string& name, const std::string& where) {
    const Arch* a = find_arch(name);
    if (a == nullptr) {
        fail("%s: architecture '%s' is not supported (supported: %s)", where.c_str(), name.c_str(),
             supported_archs().c_str());
    }
    return *a;
}

}  // namespace llmforge
