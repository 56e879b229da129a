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
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,   // activations only (partner of Q4_1 / Q5_1 in dot products)
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,  // activations only (partner of the K-quants in dot products)
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

struct BlockQ4_1 {
    uint16_t d;            // fp16 scale
    uint16_t m;            // fp16 minimum; value q*d + m
    uint8_t qs[kQK / 2];   // nibbles as in Q4_0
};
static_assert(sizeof(BlockQ4_1) == 20);

struct BlockQ5_0 {
    uint16_t d;            // fp16 scale
    uint8_t qh[4];         // 5th bit of element j is bit j of the little-endian uint32 qh
    uint8_t qs[kQK / 2];   // low 4 bits as in Q4_0; value (q-16)*d
};
static_assert(sizeof(BlockQ5_0) == 22);

struct BlockQ5_1 {
    uint16_t d;            // fp16 scale
    uint16_t m;            // fp16 minimum; value q*d + m
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
static_assert(sizeof(BlockQ5_1) == 24);

struct BlockQ8_1 {
    uint16_t d;            // fp16 scale
    uint16_t s;            // fp16 of d * sum(qs)
    int8_t qs[kQK];
};
static_assert(sizeof(BlockQ8_1) == 36);

struct BlockQ8_0 {
    uint16_t d;            // fp16 scale
    int8_t qs[kQK];        // value q*d
};
static_assert(sizeof(BlockQ8_0) == 34);

struct BlockQ2_K {
    uint8_t scales[kQK_K / 16];  // 4-bit scale (low) and min (high) of each 16-element group
    uint8_t qs[kQK_K / 4];       // 2-bit quants
    uint16_t d;                  // fp16 super-scale for the scales
    uint16_t dmin;               // fp16 super-scale for the mins
};
static_assert(sizeof(BlockQ2_K) == 84);

struct BlockQ3_K {
    uint8_t hmask[kQK_K / 8];  // high bit of each quant
    uint8_t qs[kQK_K / 4];     // low 2 bits
    uint8_t scales[12];        // 16 6-bit scales, packed as in ggml
    uint16_t d;                // fp16 super-scale
};
static_assert(sizeof(BlockQ3_K) == 110);

struct BlockQ4_K {
    uint16_t d;            // fp16 super-scale for the 6-bit scales
    uint16_t dmin;         // fp16 super-scale for the 6-bit mins
    uint8_t scales[12];    // 8 (scale, min) pairs, 6 bits each, packed as in ggml
    uint8_t qs[kQK_K / 2]; // 4-bit quants
};
static_assert(sizeof(BlockQ4_K) == 144);

struct BlockQ5_K {
    uint16_t d;             // fp16 super-scale for the 6-bit scales
    uint16_t dmin;          // fp16 super-scale for the 6-bit mins
    uint8_t scales[12];     // as in Q4_K
    uint8_t qh[kQK_K / 8];  // 5th bits
    uint8_t qs[kQK_K / 2];  // low 4 bits
};
static_assert(sizeof(BlockQ5_K) == 176);

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
// The types a weight can be stored in (not the activation-only Q8_1 / Q8_K).
inline constexpr DType kStorageTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                                          DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                                          DType::Q4_K, DType::Q5_K, DType::Q6_K};
// Parses a storage type's name: "f32", "F16", "q4_k", "Q8_0", ...; throws Error listing them.
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
