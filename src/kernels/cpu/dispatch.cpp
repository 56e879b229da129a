// CPUID detection and the one-time choice of a kernel table.
//
// A feature counts only if the CPU has it *and* the OS saves its register state on context
// switches (XCR0 via xgetbv): a hypervisor may expose AVX-512 in CPUID while the guest kernel
// does not enable the ZMM state, and executing it would then fault.
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "kernels/cpu/kernels.h"
#include "kernels/cpu/table_fill.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define LF_X86 1
#endif

namespace llmforge::kernels {

namespace {

#if defined(LF_X86)
uint64_t read_xcr0() {
    uint32_t lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<uint64_t>(hi) << 32) | lo;
}
#endif

CpuFeatures detect() {
    CpuFeatures f;
#if defined(LF_X86)
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
    const bool osxsave = (c >> 27) & 1;
    const bool avx = (c >> 28) & 1;
    const bool fma = (c >> 12) & 1;
    const bool f16c = (c >> 29) & 1;
    if (!osxsave || !avx) return f;
    const uint64_t xcr0 = read_xcr0();
    const bool os_avx = (xcr0 & 0x6) == 0x6;              // XMM and YMM state
    const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;  // opmask, ZMM_Hi256, Hi16_ZMM
    if (!os_avx) return f;

    unsigned max_leaf = __get_cpuid_max(0, nullptr);
    unsigned b7 = 0, c7 = 0, a71 = 0;
    if (max_leaf >= 7) {
        unsigned a7 = 0, d7 = 0;
        __cpuid_count(7, 0, a7, b7, c7, d7);
        unsigned b71 = 0, c71 = 0, d71 = 0;
        if (a7 >= 1) __cpuid_count(7, 1, a71, b71, c71, d71);
    }
    f.fma = fma;
    f.f16c = f16c;
    f.avx2 = (b7 >> 5) & 1;
    f.avx_vnni = f.avx2 && ((a71 >> 4) & 1);
    if (os_avx512) {
        f.avx512f = (b7 >> 16) & 1;
        f.avx512dq = f.avx512f && ((b7 >> 17) & 1);
        f.avx512bw = f.avx512f && ((b7 >> 30) & 1);
        f.avx512vl = f.avx512f && ((b7 >> 31) & 1);
        f.avx512_vnni = f.avx512f && ((c7 >> 11) & 1);
        f.avx512_bf16 = f.avx512f && ((a71 >> 5) & 1);
    }
#endif
    return f;
}

bool supported(Isa isa, const CpuFeatures& f) {
    switch (isa) {
        case Isa::kScalar: return true;
        case Isa::kAvx2: return f.avx2 && f.fma && f.f16c;
        case Isa::kAvx512:
            return f.avx2 && f.fma && f.f16c && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    }
    return false;
}

struct Tables {
    KernelTable scalar, avx2, avx512;
    bool has_avx2 = false, has_avx512 = false;
};

const Tables& tables() {
    static const Tables t = [] {
        Tables r;
        const CpuFeatures& f = cpu_features();
        fill_ref_table(r.scalar);
#if defined(LF_X86)
        if (supported(Isa::kAvx2, f)) {
            r.avx2 = r.scalar;
            fill_avx2_table(r.avx2);
            r.has_avx2 = true;
        }
        if (supported(Isa::kAvx512, f)) {
            r.avx512 = r.avx2;
            fill_avx512_table(r.avx512, f);
            r.has_avx512 = true;
        }
#endif
        return r;
    }();
    return t;
}

Isa best_isa() {
    const Tables& t = tables();
    return t.has_avx512 ? Isa::kAvx512 : t.has_avx2 ? Isa::kAvx2 : Isa::kScalar;
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::kScalar: return "scalar";
        case Isa::kAvx2: return "avx2";
        case Isa::kAvx512: return "avx512";
    }
    return "unknown";
}

DType vec_dot_type(DType weight) {
    switch (weight) {
        case DType::Q8_0:
        case DType::Q4_0:
        case DType::Q5_0: return DType::Q8_0;
        case DType::Q4_1:
        case DType::Q5_1: return DType::Q8_1;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K: return DType::Q8_K;
        default: return DType::F32;
    }
}

const CpuFeatures& cpu_features() {
    static const CpuFeatures f = detect();
    return f;
}

const KernelTable* kernels_for(Isa isa) {
    const Tables& t = tables();
    switch (isa) {
        case Isa::kScalar: return &t.scalar;
        case Isa::kAvx2: return t.has_avx2 ? &t.avx2 : nullptr;
        case Isa::kAvx512: return t.has_avx512 ? &t.avx512 : nullptr;
    }
    return nullptr;
}

const KernelTable& kernels() {
    static const KernelTable* chosen = [] {
        Isa isa = best_isa();
        if (const char* env = std::getenv("LLMFORGE_ISA"); env != nullptr && *env != '\0') {
            bool found = false;
            for (Isa cand : {Isa::kScalar, Isa::kAvx2, Isa::kAvx512}) {
                if (std::strcmp(env, isa_name(cand)) != 0) continue;
                found = true;
                if (kernels_for(cand) != nullptr) {
                    isa = cand;
                } else {
                    std::fprintf(stderr, "llmforge: LLMFORGE_ISA=%s is not supported by this CPU; using %s\n",
                                 env, isa_name(isa));
                }
            }
            if (!found) {
                std::fprintf(stderr, "llmforge: LLMFORGE_ISA=%s is unknown (expected scalar, avx2 or avx512); using %s\n",
                             env, isa_name(isa));
            }
        }
        return kernels_for(isa);
    }();
    return *chosen;
}

}  // namespace llmforge::kernels
