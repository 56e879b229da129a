#include "core/dtype.h"

#include <cctype>

#include "core/error.h"

namespace llmforge {

namespace {
const DTypeInfo kF32{"f32", 1, 4, false};
const DTypeInfo kF16{"f16", 1, 2, false};
const DTypeInfo kBF16{"bf16", 1, 2, false};
const DTypeInfo kQ4_0{"q4_0", kQK, sizeof(BlockQ4_0), true};
const DTypeInfo kQ4_1{"q4_1", kQK, sizeof(BlockQ4_1), true};
const DTypeInfo kQ5_0{"q5_0", kQK, sizeof(BlockQ5_0), true};
const DTypeInfo kQ5_1{"q5_1", kQK, sizeof(BlockQ5_1), true};
const DTypeInfo kQ8_0{"q8_0", kQK, sizeof(BlockQ8_0), true};
const DTypeInfo kQ8_1{"q8_1", kQK, sizeof(BlockQ8_1), true};
const DTypeInfo kQ2_K{"q2_k", kQK_K, sizeof(BlockQ2_K), true};
const DTypeInfo kQ3_K{"q3_k", kQK_K, sizeof(BlockQ3_K), true};
const DTypeInfo kQ5_K{"q5_k", kQK_K, sizeof(BlockQ5_K), true};
const DTypeInfo kQ4_K{"q4_k", kQK_K, sizeof(BlockQ4_K), true};
const DTypeInfo kQ6_K{"q6_k", kQK_K, sizeof(BlockQ6_K), true};
const DTypeInfo kQ8_K{"q8_k", kQK_K, sizeof(BlockQ8_K), true};
}  // namespace

const DTypeInfo* dtype_info_or_null(uint32_t id) {
    switch (static_cast<DType>(id)) {
        case DType::F32: return &kF32;
        case DType::F16: return &kF16;
        case DType::BF16: return &kBF16;
        case DType::Q4_0: return &kQ4_0;
        case DType::Q4_1: return &kQ4_1;
        case DType::Q5_0: return &kQ5_0;
        case DType::Q5_1: return &kQ5_1;
        case DType::Q8_0: return &kQ8_0;
        case DType::Q8_1: return &kQ8_1;
        case DType::Q2_K: return &kQ2_K;
        case DType::Q3_K: return &kQ3_K;
        case DType::Q5_K: return &kQ5_K;
        case DType::Q4_K: return &kQ4_K;
        case DType::Q6_K: return &kQ6_K;
        case DType::Q8_K: return &kQ8_K;
    }
    return nullptr;
}

const DTypeInfo& dtype_info(DType t) {
    const DTypeInfo* i = dtype_info_or_null(static_cast<uint32_t>(t));
    LF_ASSERT(i != nullptr);
    return *i;
}

DType dtype_from_name(const std::string& s) {
    std::string l;
    for (char c : s) l += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (DType t : kStorageTypes) {
        if (l == dtype_info(t).name) return t;
    }
    fail("unknown type '%s': expected one of f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, "
         "q6_k", s.c_str());
}

float fp16_to_fp32(uint16_t h) {
    const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t man = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (man == 0) {
            u = sign;
        } else {  // subnormal: normalise
            int e = -1;
            do {
                man <<= 1;
                ++e;
            } while ((man & 0x400u) == 0);
            man &= 0x3ffu;
            u = sign | (static_cast<uint32_t>(127 - 15 - e) << 23) | (man << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (man << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (man << 13);
    }
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}

uint16_t fp32_to_fp16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u) return sign | 0x7e00u;  // NaN
    if (absu >= 0x477ff000u) return sign | 0x7c00u; // rounds to inf
    if (absu < 0x38800000u) {                        // subnormal or zero in fp16
        const int e = static_cast<int>(absu >> 23);  // biased exponent
        if (e < 102) return sign;                     // < 2^-25: rounds to zero
        uint32_t man = (absu & 0x7fffffu) | 0x800000u;
        const int shift = 126 - e;  // bits to drop so that unit = 2^-24
        uint32_t q = man >> shift;
        const uint32_t rem = man & ((1u << shift) - 1);
        const uint32_t half = 1u << (shift - 1);
        if (rem > half || (rem == half && (q & 1u))) ++q;
        return sign | static_cast<uint16_t>(q);
    }
    uint32_t h = ((absu >> 13) - ((127u - 15u) << 10));
    const uint32_t rem = absu & 0x1fffu;
    if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;
    return sign | static_cast<uint16_t>(h);
}

}  // namespace llmforge
