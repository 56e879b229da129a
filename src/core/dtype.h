// Element types and the exact GGUF/ggml block layouts of the quantised ones.
// DType values equal GGUF's ggml_type ids so a tensor info's type field maps 1:1.
// Thread safety: everything here is pure.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace llmforge {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q8_0 = 8,
    Q4_K = 12,
    Q6_K = 14,
    Q8_K = 15,  // activations only (partner of Q4_K / Q6_K in dot products)
    BF16 = 30,
};

constexpr int kQK = 32;    // elements per Q4_0 / Q8_0 block
constexpr int kQK_K = 256; // elements per K-quant super-block

// ---- block layouts (byte-exact with GGUF) ----
struct BlockQ4_0 {
    uint16_t d;            // fp16 scale
    uint8_t qs[kQK / 2];   // element j: low nibble of qs[j]; element j+16: high nibble; value (q-8)*d
};
static_assert(sizeof(BlockQ4_0) == 18);

struct BlockQ8_0 {
    uint16_t d;            // fp16 scale
    int8_t qs[kQK];        // value q*d
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ4_K {
    uint16_t d;            // fp16 super-scale for the 6-bit scales
    uint16_t dmin;         // fp16 super-scale for the 6-bit mins
    uint8_t scales[12];    // 8 (scale, min) pairs, 6 bits each, packed as in ggml
    uint8_t qs[kQK_K / 2]; // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ6_K {
    uint8_t ql[kQK_K / 2];     // low 4 bits
    uint8_t qh[kQK_K / 4];     // high 2 bits
    int8_t scales[kQK_K / 16]; // 8-bit scales of 16-element groups
    uint16_t d;                // fp16 super-scale
};
static_assert(sizeof(BlockQ6_K) == 210);

struct BlockQ8_K {
    float d;                    // f32 scale
    int8_t qs[kQK_K];
    int16_t bsums[kQK_K / 16];  // sums of qs in groups of 16
};
static_assert(sizeof(BlockQ8_K) == 292);

struct DTypeInfo {
    const char* name;   // GGUF spelling, lower case: "f32", "q4_k", ...
    int block_size;     // elements per block (1 for plain types)
    int type_size;      // bytes per block
    bool quantized;
};

// Returns nullptr for ids llmforge does not know.
const DTypeInfo* dtype_info_or_null(uint32_t id);
const DTypeInfo& dtype_info(DType t);
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Parses "f32", "F16", "q4_k", "Q8_0", ...; throws Error listing the known names.
DType dtype_from_name(const std::string& s);
// Bytes for a row of n elements; n must be a multiple of the block size (checked by callers).
inline size_t row_bytes(DType t, int64_t n) {
    const DTypeInfo& i = dtype_info(t);
    return static_cast<size_t>(n / i.block_size) * static_cast<size_t>(i.type_size);
}

// ---- scalar conversions (exact IEEE round-to-nearest-even) ----
float fp16_to_fp32(uint16_t h);
uint16_t fp32_to_fp16(float f);
inline float bf16_to_fp32(uint16_t h) {
    uint32_t u = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
inline uint16_t fp32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 64);  // quiet NaN
    u += 0x7fffu + ((u >> 16) & 1u);
    return static_cast<uint16_t>(u >> 16);
}

}  // namespace llmforge
