// Kernel tests: every SIMD table available on this CPU against the scalar reference (random
// inputs, odd sizes), quantisation round-trip error bounds, fp16/bf16 bit patterns, and
// hand-built GGUF blocks decoded element by element from an independent reading of the layout.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/kernels.h"
#include "kernels/quant_fixtures.h"
#include "test_util.h"

namespace llmforge::kernels {
namespace {

const DType kWeightTypes[] = {DType::F32, DType::F16, DType::BF16, DType::Q8_0,
                              DType::Q4_0, DType::Q4_K, DType::Q6_K};
const DType kQuantizable[] = {DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0,
                              DType::Q4_K, DType::Q6_K, DType::Q8_K};

using namespace qfix;  // at, ref, simd_tables, gaussian (quant_fixtures.h)

std::vector<uint8_t> quantize(const KernelTable& t, DType type, const std::vector<float>& x, int64_t n) {
    const int64_t rows = static_cast<int64_t>(x.size()) / n;
    std::vector<uint8_t> q(row_bytes(type, n) * static_cast<size_t>(rows));
    for (int64_t r = 0; r < rows; ++r) {
        t.quantize_row[at(type)](x.data() + r * n, q.data() + static_cast<size_t>(r) * row_bytes(type, n), n);
    }
    return q;
}

std::vector<float> dequantize(DType type, const void* q, int64_t n) {
    std::vector<float> y(static_cast<size_t>(n));
    ref().dequantize_row[at(type)](q, y.data(), n);
    return y;
}

// A row of weight type `wt` with n elements, and a matching activation row (vec_dot_type) made
// by the reference quantiser; plus sum |w_i x_i| of the dequantised values for tolerances.
struct DotCase {
    std::vector<uint8_t> w, x;
    double abs_sum = 0;
};

DotCase make_dot_case(DType wt, int64_t n, uint32_t seed) {
    DotCase c;
    const DType at_ = vec_dot_type(wt);
    auto wf = gaussian(static_cast<size_t>(n), seed);
    auto xf = gaussian(static_cast<size_t>(n), seed + 1000);
    if (wt == DType::F32) {
        c.w.resize(static_cast<size_t>(n) * 4);
        std::memcpy(c.w.data(), wf.data(), c.w.size());
    } else {
        c.w = quantize(ref(), wt, wf, n);
    }
    if (at_ == DType::F32) {
        c.x.resize(static_cast<size_t>(n) * 4);
        std::memcpy(c.x.data(), xf.data(), c.x.size());
    } else {
        c.x = quantize(ref(), at_, xf, n);
    }
    auto wd = dequantize(wt, c.w.data(), n);
    auto xd = dequantize(at_, c.x.data(), n);
    for (int64_t i = 0; i < n; ++i) c.abs_sum += std::fabs(static_cast<double>(wd[i]) * xd[i]);
    return c;
}

std::vector<int64_t> dot_sizes(DType wt) {
    const int bs = dtype_info(wt).block_size;
    if (bs == 1) return {1, 3, 7, 8, 31, 100, 257};
    return {bs, 3 * bs, 5 * bs, 7 * bs};
}

// ============================================================ dispatch

#if defined(LLMFORGE_HAVE_AVX512_EMU)
// The emulated AVX-512 table (see avx512_emu.h) is among the tested tables and really holds the
// AVX-512 entries: 16-lane float tiles and VNNI quantised dots, not the AVX2 ones it started from.
TEST(Dispatch, EmulatedAvx512TableIsTestedHere) {
    const KernelTable* avx2 = kernels_for(Isa::kAvx2);
    if (avx2 == nullptr) GTEST_SKIP() << "no AVX2: the emulation runs on AVX2";
    const KernelTable* e = avx512_emulated_table();
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->isa, Isa::kAvx512);
    bool listed = false;
    for (const KernelTable* t : simd_tables()) listed = listed || t == e;
    EXPECT_TRUE(listed);
    for (DType d : kWeightTypes) {
        SCOPED_TRACE(dtype_name(d));
        EXPECT_NE(e->gemm[at(d)], avx2->gemm[at(d)]);
        EXPECT_NE(e->vec_dot[at(d)], avx2->vec_dot[at(d)]);
    }
    EXPECT_NE(e->act, avx2->act);  // 16-lane activations (act_impl.h)
    for (DType d : {DType::Q8_0, DType::Q4_0}) {
        EXPECT_NE(e->gemm_x8[at(d)], nullptr);
        EXPECT_NE(e->gemm_x8[at(d)], avx2->gemm_x8[at(d)]) << dtype_name(d);
    }
}
#endif

TEST(Dispatch, TablesAreCompleteAndAvx2IsTestedHere) {
    const CpuFeatures& f = cpu_features();
    if (f.avx2 && f.fma && f.f16c) {
        ASSERT_NE(kernels_for(Isa::kAvx2), nullptr) << "CPU has AVX2/FMA/F16C but no AVX2 table";
    }
    std::vector<const KernelTable*> all = simd_tables();
    all.push_back(&ref());
    for (const KernelTable* t : all) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType d : kWeightTypes) {
            EXPECT_NE(t->vec_dot[at(d)], nullptr) << dtype_name(d);
            EXPECT_NE(t->gemm[at(d)], nullptr) << dtype_name(d);
            EXPECT_NE(t->dequantize_row[at(d)], nullptr) << dtype_name(d);
        }
        for (DType d : kQuantizable) EXPECT_NE(t->quantize_row[at(d)], nullptr) << dtype_name(d);
        EXPECT_NE(t->dequantize_row[at(DType::Q8_K)], nullptr);
        EXPECT_TRUE(t->rmsnorm && t->softmax && t->swiglu && t->axpy && t->add && t->rope && t->attention);
        EXPECT_TRUE(t->act && t->layernorm);
        EXPECT_TRUE(t->adamw && t->sumsq);
    }
    EXPECT_EQ(kernels_for(Isa::kAvx2) ? kernels_for(Isa::kAvx2)->isa : Isa::kAvx2, Isa::kAvx2);
    EXPECT_STREQ(isa_name(Isa::kScalar), "scalar");
    EXPECT_STREQ(isa_name(Isa::kAvx2), "avx2");
    EXPECT_STREQ(isa_name(Isa::kAvx512), "avx512");
}

TEST(Dispatch, VecDotTypes) {
    EXPECT_EQ(vec_dot_type(DType::F32), DType::F32);
    EXPECT_EQ(vec_dot_type(DType::F16), DType::F32);
    EXPECT_EQ(vec_dot_type(DType::BF16), DType::F32);
    EXPECT_EQ(vec_dot_type(DType::Q8_0), DType::Q8_0);
    EXPECT_EQ(vec_dot_type(DType::Q4_0), DType::Q8_0);
    EXPECT_EQ(vec_dot_type(DType::Q4_K), DType::Q8_K);
    EXPECT_EQ(vec_dot_type(DType::Q6_K), DType::Q8_K);
}

TEST(Dispatch, DefaultIsBestUnlessForced) {
    const char* env = std::getenv("LLMFORGE_ISA");
    if (env != nullptr && *env) GTEST_SKIP() << "LLMFORGE_ISA is set";
    const Isa best = kernels_for(Isa::kAvx512) ? Isa::kAvx512 : kernels_for(Isa::kAvx2) ? Isa::kAvx2 : Isa::kScalar;
    EXPECT_EQ(kernels().isa, best);
    EXPECT_EQ(&kernels(), kernels_for(best));
}

// ============================================================ fp16 / bf16 conversions

float bits_f(uint32_t u) {
    float f;
    std::memcpy(&f, &u, 4);
    return f;
}
uint32_t f_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return u;
}

TEST(Fp16, KnownBitPatterns) {
    EXPECT_EQ(fp32_to_fp16(0.0f), 0x0000);
    EXPECT_EQ(fp32_to_fp16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_fp16(1.0f), 0x3c00);
    EXPECT_EQ(fp32_to_fp16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_fp16(0.5f), 0x3800);
    EXPECT_EQ(fp32_to_fp16(65504.0f), 0x7bff);                  // max finite
    EXPECT_EQ(fp32_to_fp16(65519.0f), 0x7bff);                  // below the halfway point
    EXPECT_EQ(fp32_to_fp16(65520.0f), 0x7c00);                  // tie with 65536 -> even = inf
    EXPECT_EQ(fp32_to_fp16(1e6f), 0x7c00);
    EXPECT_EQ(fp32_to_fp16(-__builtin_inff()), 0xfc00);
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -14)), 0x0400);   // min normal
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -24)), 0x0001);   // min subnormal
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1023.0f, -24)), 0x03ff);  // max subnormal
    EXPECT_EQ(fp32_to_fp16(std::ldexp(1.0f, -25)), 0x0000);   // tie 0 / min subnormal -> even 0
    EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -26)), 0x0001);   // 0.75 ulp -> 1
    EXPECT_EQ(fp32_to_fp16(std::ldexp(3.0f, -25)), 0x0002);   // tie 1.5 ulp -> even 2
    EXPECT_EQ(fp32_to_fp16(std::ldexp(5.0f, -25)), 0x0002);   // tie 2.5 ulp -> even 2
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11)), 0x3c00);       // tie -> even
    EXPECT_EQ(fp32_to_fp16(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);   // tie -> even (up)
    EXPECT_EQ(fp32_to_fp16(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
    const uint16_t nan = fp32_to_fp16(bits_f(0x7fc00001u));
    EXPECT_EQ(nan & 0x7c00, 0x7c00);
    EXPECT_NE(nan & 0x03ff, 0);

    EXPECT_EQ(fp16_to_fp32(0x3c00), 1.0f);
    EXPECT_EQ(fp16_to_fp32(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x03ff), std::ldexp(1023.0f, -24));
    EXPECT_EQ(fp16_to_fp32(0x8001), -std::ldexp(1.0f, -24));
    EXPECT_EQ(f_bits(fp16_to_fp32(0x8000)), 0x80000000u);
    EXPECT_EQ(fp16_to_fp32(0x7bff), 65504.0f);
    EXPECT_TRUE(std::isinf(fp16_to_fp32(0x7c00)));
    EXPECT_TRUE(std::isnan(fp16_to_fp32(0x7e00)));
    // Every non-NaN half survives a round trip.
    for (uint32_t h = 0; h < 65536; ++h) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff)) continue;
        ASSERT_EQ(fp32_to_fp16(fp16_to_fp32(static_cast<uint16_t>(h))), h) << std::hex << h;
    }
}

TEST(Bf16, KnownBitPatterns) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_bf16(bits_f(0x3f808000u)), 0x3f80);  // tie -> even (down)
    EXPECT_EQ(fp32_to_bf16(bits_f(0x3f818000u)), 0x3f82);  // tie -> even (up)
    EXPECT_EQ(fp32_to_bf16(bits_f(0x3f808001u)), 0x3f81);  // above the tie
    EXPECT_EQ(fp32_to_bf16(bits_f(0x7f7fffffu)), 0x7f80);  // max float rounds to inf
    EXPECT_EQ(fp32_to_bf16(__builtin_inff()), 0x7f80);
    EXPECT_EQ(fp32_to_bf16(bits_f(0x00010000u)), 0x0001);  // subnormal kept
    EXPECT_EQ(fp32_to_bf16(bits_f(0x00018000u)), 0x0002);  // subnormal tie -> even
    const uint16_t nan = fp32_to_bf16(bits_f(0x7f800001u));  // signalling NaN -> quiet NaN
    EXPECT_EQ(nan & 0x7f80, 0x7f80);
    EXPECT_NE(nan & 0x7f, 0);
    EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
    EXPECT_EQ(f_bits(bf16_to_fp32(0x8001)), 0x80010000u);
}

// SIMD fp16/bf16 conversion (hardware F16C for fp16) must match the scalar converters bit for bit,
// including subnormals, ties and overflow.
TEST(Fp16, SimdConversionsMatchScalar) {
    std::vector<float> x;
    std::mt19937 rng(7);
    for (int i = 0; i < 20000; ++i) {
        uint32_t u = rng();
        // Bias toward the interesting exponent ranges of fp16 and bf16.
        if (i % 3 == 0) u = (u & 0x807fffffu) | ((100u + (u >> 8) % 50u) << 23);
        if (i % 7 == 0) u &= 0xffffe000u | 0x1000u;  // fp16 ties
        if (i % 11 == 0) u = (u & 0xffff0000u) | 0x8000u;  // bf16 ties
        if (((u >> 23) & 0xff) == 0xff) continue;  // NaN payloads may legitimately differ
        x.push_back(bits_f(u));
    }
    x.push_back(65520.0f);
    x.push_back(std::ldexp(1.0f, -25));
    x.push_back(__builtin_inff());
    const int64_t n = static_cast<int64_t>(x.size());
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType d : {DType::F16, DType::BF16}) {
            std::vector<uint16_t> a(x.size()), b(x.size());
            ref().quantize_row[at(d)](x.data(), a.data(), n);
            t->quantize_row[at(d)](x.data(), b.data(), n);
            for (size_t i = 0; i < x.size(); ++i) {
                ASSERT_EQ(a[i], b[i]) << dtype_name(d) << " x=" << x[i] << " bits=" << std::hex << f_bits(x[i]);
            }
            std::vector<float> ya(x.size()), yb(x.size());
            ref().dequantize_row[at(d)](a.data(), ya.data(), n);
            t->dequantize_row[at(d)](a.data(), yb.data(), n);
            for (size_t i = 0; i < x.size(); ++i) ASSERT_EQ(f_bits(ya[i]), f_bits(yb[i])) << dtype_name(d);
        }
    }
}

// ============================================================ GGUF block layouts

// The layouts read independently of the kernels: element e of a block, straight from the format.
float spec_q4_0(const BlockQ4_0& b, int e) {
    const int q = e < 16 ? (b.qs[e] & 0xF) : (b.qs[e - 16] >> 4);
    return (q - 8) * fp16_to_fp32(b.d);
}

void spec_q4_k_scale_min(const BlockQ4_K& b, int j, int* sc, int* m) {
    // 12 bytes: [0..4) scale j low 6 bits (top 2 bits: scale j+4 bits 4-5),
    //           [4..8) min j low 6 bits (top 2 bits: min j+4 bits 4-5),
    //           [8..12) scale j+4 low nibble | min j+4 low nibble << 4.
    if (j < 4) {
        *sc = b.scales[j] & 0x3F;
        *m = b.scales[4 + j] & 0x3F;
    } else {
        *sc = (b.scales[8 + j - 4] & 0x0F) + 16 * (b.scales[j - 4] >> 6);
        *m = (b.scales[8 + j - 4] >> 4) + 16 * (b.scales[4 + j - 4] >> 6);
    }
}

float spec_q4_k(const BlockQ4_K& b, int e) {
    const int j = e / 32;             // sub-block
    const int byte = 32 * (e / 64) + e % 32;
    const int q = (j % 2 == 0) ? (b.qs[byte] & 0xF) : (b.qs[byte] >> 4);
    int sc, m;
    spec_q4_k_scale_min(b, j, &sc, &m);
    return fp16_to_fp32(b.d) * sc * q - fp16_to_fp32(b.dmin) * m;
}

float spec_q6_k(const BlockQ6_K& b, int e) {
    const int h = e / 128, r = e % 128, quarter = r / 32, l = r % 32;
    const uint8_t lo_byte = b.ql[64 * h + 32 * (quarter & 1) + l];
    const int lo = quarter < 2 ? (lo_byte & 0xF) : (lo_byte >> 4);
    const int hi = (b.qh[32 * h + l] >> (2 * quarter)) & 3;
    return fp16_to_fp32(b.d) * b.scales[e / 16] * ((lo | (hi << 4)) - 32);
}

template <class Block>
Block random_block(uint32_t seed) {
    std::mt19937 rng(seed);
    Block b;
    auto* p = reinterpret_cast<uint8_t*>(&b);
    for (size_t i = 0; i < sizeof(b); ++i) p[i] = static_cast<uint8_t>(rng());
    return b;
}

TEST(Layout, Q8_0HandBuilt) {
    BlockQ8_0 b;
    b.d = 0x3800;  // 0.5
    for (int j = 0; j < 32; ++j) b.qs[j] = static_cast<int8_t>(j - 16);
    auto y = dequantize(DType::Q8_0, &b, 32);
    for (int j = 0; j < 32; ++j) EXPECT_EQ(y[j], (j - 16) * 0.5f);
}

TEST(Layout, Q4_0HandBuilt) {
    BlockQ4_0 b;
    b.d = 0x4000;  // 2.0
    for (int j = 0; j < 16; ++j) b.qs[j] = static_cast<uint8_t>(j | ((15 - j) << 4));
    auto y = dequantize(DType::Q4_0, &b, 32);
    for (int j = 0; j < 16; ++j) {
        EXPECT_EQ(y[j], (j - 8) * 2.0f);
        EXPECT_EQ(y[j + 16], (7 - j) * 2.0f);
    }
    for (uint32_t s = 0; s < 20; ++s) {
        auto r = random_block<BlockQ4_0>(s);
        r.d = fp32_to_fp16(0.37f);
        auto yr = dequantize(DType::Q4_0, &r, 32);
        for (int e = 0; e < 32; ++e) ASSERT_EQ(yr[e], spec_q4_0(r, e));
    }
}

TEST(Layout, Q4_KHandBuilt) {
    BlockQ4_K b{};
    b.d = 0x3400;     // 0.25
    b.dmin = 0x3800;  // 0.5
    // scales: sub-block 0: scale 1, min 2; sub-block 5: scale 0x2A (42) = low 0xA, high 2; min 0x13 (19)
    b.scales[0] = 1;
    b.scales[4] = 2;
    b.scales[1] = 0x80;              // top bits of byte 1 -> scale 5 bits 4-5 = 2
    b.scales[5] = 0x40;              // top bits of byte 5 -> min 5 bits 4-5 = 1
    b.scales[9] = 0xA | (0x3 << 4);  // scale 5 low = 0xA, min 5 low = 3
    b.qs[0] = 0x7 | (0x9 << 4);      // element 0 = 7 (sub-block 0), element 32 = 9 (sub-block 1)
    b.qs[64 + 3] = 0xC5;             // element 128+3 = 5 (sub-block 4), element 160+3 = 12 (sub-block 5)
    auto y = dequantize(DType::Q4_K, &b, 256);
    EXPECT_EQ(y[0], 0.25f * 1 * 7 - 0.5f * 2);
    EXPECT_EQ(y[1], 0.25f * 1 * 0 - 0.5f * 2);
    EXPECT_EQ(y[32], 0.0f);            // sub-block 1: scale 0, min 0 (low bits of byte 1 are 0)
    EXPECT_EQ(y[131], 0.0f);           // sub-block 4: scale 0 (byte 8 = 0), min 0
    EXPECT_EQ(y[163], 0.25f * 42 * 12 - 0.5f * 19);
    EXPECT_EQ(y[164], 0.25f * 42 * 0 - 0.5f * 19);
    for (uint32_t s = 0; s < 20; ++s) {
        auto r = random_block<BlockQ4_K>(100 + s);
        r.d = fp32_to_fp16(0.01f * (s + 1));
        r.dmin = fp32_to_fp16(0.003f * (s + 2));
        auto yr = dequantize(DType::Q4_K, &r, 256);
        for (int e = 0; e < 256; ++e) ASSERT_EQ(yr[e], spec_q4_k(r, e)) << "element " << e;
    }
}

TEST(Layout, Q6_KHandBuilt) {
    BlockQ6_K b{};
    b.d = 0x3800;  // 0.5
    for (int g = 0; g < 16; ++g) b.scales[g] = static_cast<int8_t>(g - 8);
    // element 0: low nibble of ql[0], bits 0-1 of qh[0]; element 64: high nibble of ql[0], bits 4-5.
    b.ql[0] = 0x3 | (0xF << 4);
    b.qh[0] = 0x2 | (0x1 << 4) | (0x3 << 6);  // e0 hi=2, e32 hi=0, e64 hi=1, e96 hi=3
    b.ql[32] = 0x5 << 4;                       // element 96 low = 5 (element 32 low = 0)
    b.ql[64 + 1] = 0x9;                        // element 128+1 low = 9, qh[32+1] = 0
    auto y = dequantize(DType::Q6_K, &b, 256);
    EXPECT_EQ(y[0], 0.5f * -8 * ((3 | (2 << 4)) - 32));
    EXPECT_EQ(y[32], 0.5f * -6 * (0 - 32));
    EXPECT_EQ(y[64], 0.5f * -4 * ((15 | (1 << 4)) - 32));
    EXPECT_EQ(y[96], 0.5f * -2 * ((5 | (3 << 4)) - 32));
    EXPECT_EQ(y[129], 0.5f * 0 * (9 - 32));
    EXPECT_EQ(y[255], 0.5f * 7 * (0 - 32));
    for (uint32_t s = 0; s < 20; ++s) {
        auto r = random_block<BlockQ6_K>(200 + s);
        r.d = fp32_to_fp16(0.002f * (s + 1));
        auto yr = dequantize(DType::Q6_K, &r, 256);
        for (int e = 0; e < 256; ++e) ASSERT_EQ(yr[e], spec_q6_k(r, e)) << "element " << e;
    }
}

TEST(Layout, Q8_KHandBuilt) {
    BlockQ8_K b{};
    b.d = 0.25f;
    for (int j = 0; j < 256; ++j) b.qs[j] = static_cast<int8_t>((j % 255) - 127);
    auto y = dequantize(DType::Q8_K, &b, 256);
    for (int j = 0; j < 256; ++j) EXPECT_EQ(y[j], 0.25f * ((j % 255) - 127));
}

// ============================================================ quantisation error bounds

TEST(Quantize, Q8_0RoundTripWithinHalfStep) {
    const int64_t n = 32 * 64;
    auto x = gaussian(static_cast<size_t>(n), 11, 3.0f);
    auto q = quantize(ref(), DType::Q8_0, x, n);
    auto y = dequantize(DType::Q8_0, q.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        // d/2 plus the fp16 rounding of d (<= 2^-11 relative) times |q| <= 127.
        const float bound = amax / 254 * 1.0001f + amax * std::ldexp(1.0f, -11);
        for (int j = 0; j < 32; ++j) ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound);
    }
}

TEST(Quantize, Q4_0RoundTripWithinHalfStep) {
    const int64_t n = 32 * 64;
    auto x = gaussian(static_cast<size_t>(n), 12, 3.0f);
    auto q = quantize(ref(), DType::Q4_0, x, n);
    auto y = dequantize(DType::Q4_0, q.data(), n);
    for (int64_t b = 0; b < n / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        const float d = amax / 8;
        const float slack = amax * std::ldexp(1.0f, -10);  // fp16 rounding of d, times |q| <= 8
        for (int j = 0; j < 32; ++j) {
            const float ax = std::fabs(x[b * 32 + j]);
            // The extreme maps to -8 exactly; values on the other side beyond 7.5 d clip to 7 d.
            const float bound = ax > 7.5f * d ? ax - 7 * d : d / 2;
            ASSERT_LE(std::fabs(x[b * 32 + j] - y[b * 32 + j]), bound * 1.0001f + slack);
        }
    }
}

TEST(Quantize, Q8_KRoundTripWithinHalfStep) {
    const int64_t n = 256 * 8;
    auto x = gaussian(static_cast<size_t>(n), 13, 2.0f);
    for (const KernelTable* t : [] { auto v = simd_tables(); v.push_back(&ref()); return v; }()) {
        SCOPED_TRACE(isa_name(t->isa));
        auto q = quantize(*t, DType::Q8_K, x, n);
        auto y = dequantize(DType::Q8_K, q.data(), n);
        for (int64_t b = 0; b < n / 256; ++b) {
            const auto* blk = reinterpret_cast<const BlockQ8_K*>(q.data()) + b;
            float amax = 0;
            for (int j = 0; j < 256; ++j) amax = std::max(amax, std::fabs(x[b * 256 + j]));
            for (int j = 0; j < 256; ++j) ASSERT_LE(std::fabs(x[b * 256 + j] - y[b * 256 + j]), amax / 254 * 1.0001f);
            for (int g = 0; g < 16; ++g) {
                int s = 0;
                for (int l = 0; l < 16; ++l) s += blk->qs[16 * g + l];
                ASSERT_EQ(blk->bsums[g], s);
            }
        }
    }
}

double rel_rms_error(DType t, const std::vector<float>& x, int64_t n) {
    auto q = quantize(ref(), t, x, n);
    double se = 0, sx = 0;
    const int64_t rows = static_cast<int64_t>(x.size()) / n;
    for (int64_t r = 0; r < rows; ++r) {
        auto y = dequantize(t, q.data() + static_cast<size_t>(r) * row_bytes(t, n), n);
        for (int64_t i = 0; i < n; ++i) {
            const double e = x[r * n + i] - y[i];
            se += e * e;
            sx += static_cast<double>(x[r * n + i]) * x[r * n + i];
        }
    }
    return std::sqrt(se / sx);
}

// RMS error relative to RMS(x) on N(0, 1) data, 64 rows x 1024. Measured with this reference
// (printed in the test log): q8_0 0.0054, q4_0 0.086, q4_k 0.071, q6_k 0.0178, f16 2.1e-4,
// bf16 1.65e-3. These are what the bit widths allow on Gaussian data: a uniform step spanning a
// 32-value block's range (~4.2 sigma) over 15 levels gives 0.28/sqrt(12) = 0.081 for 4 bits, and
// Q4_K's scale/min search lands below that; Q6_K's 16-value groups over 64 levels give ~0.016.
// Bounds keep ~15% margin over the measurement, so a regression in the searches fails here.
TEST(Quantize, KQuantRmsErrorOnGaussianData) {
    const int64_t n = 1024;
    auto x = gaussian(static_cast<size_t>(n) * 64, 14);
    struct Case {
        DType t;
        double bound;
    } cases[] = {{DType::Q8_0, 0.0062}, {DType::Q4_0, 0.099}, {DType::Q4_K, 0.082}, {DType::Q6_K, 0.0205},
                 {DType::F16, 2.5e-4}, {DType::BF16, 1.9e-3}};
    for (const Case& c : cases) {
        const double e = rel_rms_error(c.t, x, n);
        std::printf("[          ] rms_err/rms_x %-5s = %.5f (bound %.4f)\n", dtype_name(c.t), e, c.bound);
        EXPECT_LT(e, c.bound) << dtype_name(c.t);
        EXPECT_GT(e, 0.0) << dtype_name(c.t);
    }
}

TEST(Quantize, ZeroAndConstantBlocks) {
    for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::Q8_K}) {
        SCOPED_TRACE(dtype_name(t));
        std::vector<float> zeros(512, 0.0f);
        auto q = quantize(ref(), t, zeros, 512);
        auto y = dequantize(t, q.data(), 512);
        for (float v : y) ASSERT_EQ(v, 0.0f);
        std::vector<float> c(512, -1.25f);
        q = quantize(ref(), t, c, 512);
        y = dequantize(t, q.data(), 512);
        for (float v : y) ASSERT_NEAR(v, -1.25f, 0.02f);
    }
}

// ============================================================ SIMD vs reference

TEST(Simd, QuantizeMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType d : kQuantizable) {
            SCOPED_TRACE(dtype_name(d));
            const int64_t n = dtype_info(d).block_size == 1 ? 1001 : 7 * 256;
            auto x = gaussian(static_cast<size_t>(n), 21 + at(d), 1.7f);
            x[5] = 0;  // an exact zero
            auto a = quantize(ref(), d, x, n);
            auto b = quantize(*t, d, x, n);
            // Bit-exact: Q8_0 / Q8_K / F16 / BF16 are implemented to reproduce the reference
            // exactly (random data has no Q8_K +a/-a extreme ties); other types share the ref code.
            ASSERT_EQ(a, b);
        }
    }
}

TEST(Simd, DequantizeMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType d : {DType::F32, DType::F16, DType::BF16, DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K,
                        DType::Q8_K}) {
            SCOPED_TRACE(dtype_name(d));
            const int64_t n = dtype_info(d).block_size == 1 ? 1003 : 3 * 256;
            auto x = gaussian(static_cast<size_t>(n), 31, 0.9f);
            std::vector<uint8_t> q;
            if (d == DType::F32) {
                q.resize(static_cast<size_t>(n) * 4);
                std::memcpy(q.data(), x.data(), q.size());
            } else {
                q = quantize(ref(), d, x, n);
            }
            std::vector<float> ya(static_cast<size_t>(n)), yb(static_cast<size_t>(n));
            ref().dequantize_row[at(d)](q.data(), ya.data(), n);
            t->dequantize_row[at(d)](q.data(), yb.data(), n);
            ASSERT_EQ(ya, yb);
        }
    }
}

TEST(Simd, VecDotMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType wt : kWeightTypes) {
            for (int64_t n : dot_sizes(wt)) {
                SCOPED_TRACE(std::string(dtype_name(wt)) + " n=" + std::to_string(n));
                for (uint32_t seed = 0; seed < 3; ++seed) {
                    DotCase c = make_dot_case(wt, n, 1000 * at(wt) + static_cast<uint32_t>(n) + seed);
                    const float r = ref().vec_dot[at(wt)](n, c.w.data(), c.x.data());
                    const float s = t->vec_dot[at(wt)](n, c.w.data(), c.x.data());
                    ASSERT_NEAR(s, r, 2e-6 * c.abs_sum + 1e-6);
                }
            }
        }
    }
}

TEST(Simd, GemmMatchesReference) {
    const int64_t sizes[] = {1, 2, 3, 5, 7, 13};
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (DType wt : kWeightTypes) {
            const DType at_ = vec_dot_type(wt);
            const int64_t n = dtype_info(wt).block_size == 1 ? 37 : (wt == DType::Q8_0 || wt == DType::Q4_0 ? 96 : 512);
            // Padded strides: rows are not contiguous, so the kernels must honour w_stride/x_stride.
            const size_t w_stride = row_bytes(wt, n) + 40, x_stride = row_bytes(at_, n) + 24;
            for (int64_t nr : sizes) {
                for (int64_t nc : sizes) {
                    SCOPED_TRACE(std::string(dtype_name(wt)) + " nr=" + std::to_string(nr) + " nc=" + std::to_string(nc));
                    std::vector<uint8_t> w(w_stride * static_cast<size_t>(nr)), x(x_stride * static_cast<size_t>(nc));
                    std::vector<double> abs_sum(static_cast<size_t>(nr * nc));
                    for (int64_t r = 0; r < nr; ++r) {
                        DotCase c = make_dot_case(wt, n, static_cast<uint32_t>(7 * r + 1));
                        std::memcpy(w.data() + static_cast<size_t>(r) * w_stride, c.w.data(), c.w.size());
                    }
                    for (int64_t cc = 0; cc < nc; ++cc) {
                        DotCase c = make_dot_case(wt, n, static_cast<uint32_t>(7 * cc + 5000));
                        std::memcpy(x.data() + static_cast<size_t>(cc) * x_stride, c.x.data(), c.x.size());
                    }
                    const size_t ldo = static_cast<size_t>(nr) + 3;
                    std::vector<float> out(ldo * static_cast<size_t>(nc), -777.0f);
                    t->gemm[at(wt)](n, w.data(), w_stride, nr, x.data(), x_stride, nc, out.data(), ldo);
                    for (int64_t cc = 0; cc < nc; ++cc) {
                        const uint8_t* xr = x.data() + static_cast<size_t>(cc) * x_stride;
                        auto xd = dequantize(at_, xr, n);
                        for (int64_t r = 0; r < nr; ++r) {
                            const uint8_t* wr = w.data() + static_cast<size_t>(r) * w_stride;
                            auto wd = dequantize(wt, wr, n);
                            double as = 0;
                            for (int64_t i = 0; i < n; ++i) as += std::fabs(static_cast<double>(wd[i]) * xd[i]);
                            const float expect = ref().vec_dot[at(wt)](n, wr, xr);
                            ASSERT_NEAR(out[static_cast<size_t>(cc) * ldo + r], expect, 2e-6 * as + 1e-6)
                                << "r=" << r << " c=" << cc;
                        }
                        for (size_t r = static_cast<size_t>(nr); r < ldo; ++r) {
                            ASSERT_EQ(out[static_cast<size_t>(cc) * ldo + r], -777.0f) << "wrote past nr";
                        }
                    }
                }
            }
        }
    }
}

void expect_close(const std::vector<float>& a, const std::vector<float>& b, float rel, float abs_tol) {
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) {
        ASSERT_NEAR(a[i], b[i], rel * std::fabs(b[i]) + abs_tol) << "index " << i;
    }
}

TEST(Simd, ElementwiseOpsMatchReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (int64_t n : {1, 7, 8, 33, 100, 4096}) {
            SCOPED_TRACE("n=" + std::to_string(n));
            auto x = gaussian(static_cast<size_t>(n), 41, 2.0f);
            auto w = gaussian(static_cast<size_t>(n), 42);
            auto up = gaussian(static_cast<size_t>(n), 43);
            std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n));

            ref().rmsnorm(x.data(), w.data(), a.data(), n, 1e-5f);
            t->rmsnorm(x.data(), w.data(), b.data(), n, 1e-5f);
            expect_close(b, a, 1e-5f, 1e-6f);
            b = x;  // in place
            t->rmsnorm(b.data(), w.data(), b.data(), n, 1e-5f);
            expect_close(b, a, 1e-5f, 1e-6f);

            // Softmax with a wide range, including values that underflow to 0.
            auto s = gaussian(static_cast<size_t>(n), 44, 30.0f);
            a = s;
            b = s;
            ref().softmax(a.data(), n);
            t->softmax(b.data(), n);
            expect_close(b, a, 1e-5f, 1e-9f);

            // SwiGLU with large |gate| (exp overflow/underflow paths).
            auto g = gaussian(static_cast<size_t>(n), 45, 40.0f);
            ref().swiglu(g.data(), up.data(), a.data(), n);
            t->swiglu(g.data(), up.data(), b.data(), n);
            expect_close(b, a, 1e-5f, 1e-7f);
            b = g;
            t->swiglu(b.data(), up.data(), b.data(), n);  // y aliases gate
            expect_close(b, a, 1e-5f, 1e-7f);

            a = w;
            b = w;
            ref().axpy(n, -0.75f, x.data(), a.data());
            t->axpy(n, -0.75f, x.data(), b.data());
            expect_close(b, a, 1e-6f, 1e-6f);

            a = w;
            b = w;
            ref().add(n, x.data(), a.data());
            t->add(n, x.data(), b.data());
            ASSERT_EQ(a, b);

            // AdamW: the reference's bits exactly (no fused multiply-adds), with and without decay.
            for (bool wd : {false, true}) {
                const AdamWStep st{0.9f, 0.999f, 0.1f, 0.001f, 3.7e-4f, 0.0447f, 1e-8f, 0.9999f, wd};
                std::vector<float> wa = w, wb = w, ma = up, mb = up, va(x.size()), vb(x.size());
                for (size_t i = 0; i < x.size(); ++i) va[i] = vb[i] = 0.01f * x[i] * x[i];
                for (int rep = 0; rep < 3; ++rep) {
                    ref().adamw(wa.data(), x.data(), ma.data(), va.data(), n, st);
                    t->adamw(wb.data(), x.data(), mb.data(), vb.data(), n, st);
                }
                ASSERT_EQ(0, std::memcmp(wa.data(), wb.data(), wa.size() * 4)) << "adamw w, wd " << wd;
                ASSERT_EQ(0, std::memcmp(ma.data(), mb.data(), ma.size() * 4)) << "adamw m";
                ASSERT_EQ(0, std::memcmp(va.data(), vb.data(), va.size() * 4)) << "adamw v";
            }
            const double ss_ref = ref().sumsq(x.data(), n), ss = t->sumsq(x.data(), n);
            ASSERT_NEAR(ss, ss_ref, 1e-13 * ss_ref);
        }
    }
}

// The encoder activations (KernelTable::act) of every table, the reference's included, against the
// float64 definitions: ~2e-6 relative (GELU's tail included: 1 + erf is computed as erfc there,
// not by cancellation) plus 1e-37 absolute; tails of every length and in place.
TEST(Simd, ActivationsMatchFloat64) {
    auto exact = [](int kind, double x) {
        switch (kind) {
            case 0: return 0.5 * x * std::erfc(-x / std::sqrt(2.0));
            case 1: return x / (1.0 + std::exp(-2.0 * std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
            case 2: return x / (1.0 + std::exp(-1.702 * x));
            default: return std::tanh(x);
        }
    };
    std::vector<float> x;
    for (float v = -12.0f; v <= 12.0f; v += 0.0137f) x.push_back(v);
    for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-6f, -1e-6f, 0.625f, -0.625f, 0.6251f, -0.6249f, 30.0f, -30.0f,
                    100.0f, -100.0f, 1e4f, -1e4f})
        x.push_back(v);
    std::vector<const KernelTable*> all = simd_tables();
    all.push_back(&ref());
    for (const KernelTable* t : all) {
        SCOPED_TRACE(isa_name(t->isa));
        for (int kind = 0; kind < 4; ++kind) {
            SCOPED_TRACE("kind " + std::to_string(kind));
            std::vector<float> y(x.size());
            t->act(kind, x.data(), y.data(), static_cast<int64_t>(x.size()));
            for (size_t i = 0; i < x.size(); ++i) {
                const double want = exact(kind, x[i]);
                // Each form is an exp of a float argument a (x²/2 + …, 2u, 1.702x, 2x) in the tail,
                // whose rounding moves the result by a few |a| · 6e-8 relative (GELU: 1e-6 at |x| = 4).
                const double xd = x[i], u = std::sqrt(2.0 / M_PI) * (xd + 0.044715 * xd * xd * xd);
                const double a = kind == 0 ? xd * xd / 2 : kind == 1 ? 2 * u : kind == 2 ? 1.702 * xd : 2 * xd;
                const double rel = 2e-6 + 2.5e-7 * std::fabs(a);
                ASSERT_NEAR(y[i], want, rel * std::fabs(want) + 1e-37) << "x = " << x[i];
            }
            for (int64_t n = 1; n <= 17; ++n) {  // every tail length, in place
                std::vector<float> z(x.begin() + 100, x.begin() + 100 + n), want(z.size());
                t->act(kind, z.data(), want.data(), n);
                t->act(kind, z.data(), z.data(), n);
                ASSERT_EQ(z, want) << "n = " << n;
                for (int64_t i = 0; i < n; ++i) ASSERT_EQ(want[i], y[100 + i]) << "n = " << n;
            }
        }
    }
}

// LayerNorm (KernelTable::layernorm) of every SIMD table against the reference: the statistics to
// double rounding (float-identical here), the outputs within a few float roundings; with and
// without a bias, in place, tails of every length, and a row with a large common offset (where
// summing in float would lose the deviations).
TEST(Simd, LayerNormMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (int64_t n : {1, 7, 8, 9, 17, 100, 768, 1024}) {
            SCOPED_TRACE("n=" + std::to_string(n));
            auto x = gaussian(static_cast<size_t>(n), 51, 3.0f);
            const auto g = gaussian(static_cast<size_t>(n), 52), b = gaussian(static_cast<size_t>(n), 53);
            for (int offset : {0, 1}) {
                if (offset) for (float& v : x) v += 1e4f;
                for (const float* bias : {b.data(), static_cast<const float*>(nullptr)}) {
                    std::vector<float> want(x.size()), got(x.size());
                    float m0, r0, m1, r1;
                    ref().layernorm(x.data(), g.data(), bias, want.data(), n, 1e-5f, &m0, &r0);
                    t->layernorm(x.data(), g.data(), bias, got.data(), n, 1e-5f, &m1, &r1);
                    ASSERT_EQ(m0, m1);
                    ASSERT_NEAR(r1, r0, 1e-6f * r0);
                    expect_close(got, want, 1e-5f, 1e-5f);
                    got = x;  // in place
                    t->layernorm(got.data(), g.data(), bias, got.data(), n, 1e-5f, nullptr, nullptr);
                    expect_close(got, want, 1e-5f, 1e-5f);
                }
            }
        }
    }
}

TEST(Simd, SoftmaxSumsToOneAndHandlesExtremes) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        std::vector<float> x = {-1e30f, 0.0f, 88.0f, -88.0f, 100.0f, 1e-3f, -200.0f, 3.0f, 50.0f};
        t->softmax(x.data(), static_cast<int64_t>(x.size()));
        double s = 0;
        for (float v : x) {
            ASSERT_TRUE(std::isfinite(v));
            ASSERT_GE(v, 0.0f);
            s += v;
        }
        EXPECT_NEAR(s, 1.0, 1e-6);
        EXPECT_NEAR(x[4], 1.0 / (1.0 + std::exp(-12.0) + std::exp(-50.0)), 1e-6);  // 100 vs 88, 50
        EXPECT_EQ(x[0], 0.0f);
    }
}

TEST(Simd, RopeMatchesReference) {
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (int64_t hd : {2, 6, 8, 10, 64, 128}) {
            for (bool inter : {true, false}) {
                SCOPED_TRACE("head_dim=" + std::to_string(hd) + (inter ? " interleaved" : " neox"));
                const int64_t nh = 3;
                auto x = gaussian(static_cast<size_t>(nh * hd), 51);
                std::vector<float> cs(static_cast<size_t>(hd / 2)), sn(static_cast<size_t>(hd / 2));
                for (int64_t i = 0; i < hd / 2; ++i) {
                    const double ang = 17.0 * std::pow(10000.0, -2.0 * i / hd);
                    cs[i] = static_cast<float>(std::cos(ang));
                    sn[i] = static_cast<float>(std::sin(ang));
                }
                auto a = x, b = x;
                ref().rope(a.data(), nh, hd, cs.data(), sn.data(), inter);
                t->rope(b.data(), nh, hd, cs.data(), sn.data(), inter);
                expect_close(b, a, 1e-6f, 1e-6f);
            }
        }
    }
}

TEST(Rope, ReferenceConventions) {
    // One head of 4: interleaved rotates (x0,x1) and (x2,x3); rotate-half rotates (x0,x2), (x1,x3).
    const float cs[2] = {0.0f, 1.0f}, sn[2] = {1.0f, 0.0f};  // pair 0 by 90 degrees, pair 1 by 0
    float a[4] = {1, 2, 3, 4};
    ref().rope(a, 1, 4, cs, sn, true);
    EXPECT_EQ(a[0], -2.0f);
    EXPECT_EQ(a[1], 1.0f);
    EXPECT_EQ(a[2], 3.0f);
    EXPECT_EQ(a[3], 4.0f);
    float b[4] = {1, 2, 3, 4};
    ref().rope(b, 1, 4, cs, sn, false);
    EXPECT_EQ(b[0], -3.0f);
    EXPECT_EQ(b[2], 1.0f);
    EXPECT_EQ(b[1], 2.0f);
    EXPECT_EQ(b[3], 4.0f);
}

TEST(Simd, AttentionMatchesReference) {
    struct Shape {
        int64_t H, H_kv, D;
    } shapes[] = {{4, 4, 64}, {8, 2, 64}, {6, 3, 20}, {12, 1, 128}, {32, 8, 128}, {2, 1, 7}, {3, 1, 72}, {8, 1, 576}};
    for (const KernelTable* t : simd_tables()) {
        SCOPED_TRACE(isa_name(t->isa));
        for (const Shape& sh : shapes) {
            for (int64_t n_kv : {1, 17, 100, 200}) {
                SCOPED_TRACE("H=" + std::to_string(sh.H) + " H_kv=" + std::to_string(sh.H_kv) + " D=" +
                             std::to_string(sh.D) + " n_kv=" + std::to_string(n_kv));
                const int64_t kv_stride = sh.H_kv * sh.D + 5;  // padded cache rows
                auto q = gaussian(static_cast<size_t>(sh.H * sh.D), 61, 1.5f);
                auto k = gaussian(static_cast<size_t>(n_kv * kv_stride), 62);
                auto v = gaussian(static_cast<size_t>(n_kv * kv_stride), 63);
                const float scale = 1.0f / std::sqrt(static_cast<float>(sh.D));
                std::vector<float> a(static_cast<size_t>(sh.H * sh.D)), b(a.size(), 123.0f), scratch(static_cast<size_t>(n_kv));
                ref().attention(q.data(), k.data(), v.data(), n_kv, kv_stride, sh.H, sh.H_kv, sh.D, scale, a.data(),
                                scratch.data());
                t->attention(q.data(), k.data(), v.data(), n_kv, kv_stride, sh.H, sh.H_kv, sh.D, scale, b.data(),
                             scratch.data());
                expect_close(b, a, 1e-4f, 2e-5f);
            }
        }
    }
}

TEST(Attention, SinglePositionReturnsValueRow) {
    // With one cached position the softmax weight is 1: out_h = v of head h's kv head.
    const int64_t H = 4, H_kv = 2, D = 3, stride = H_kv * D;
    std::vector<float> q(H * D, 0.3f), k(stride, 0.1f), v = {1, 2, 3, 4, 5, 6}, out(H * D), scratch(1);
    ref().attention(q.data(), k.data(), v.data(), 1, stride, H, H_kv, D, 0.5f, out.data(), scratch.data());
    const float expect[] = {1, 2, 3, 1, 2, 3, 4, 5, 6, 4, 5, 6};
    for (int i = 0; i < H * D; ++i) EXPECT_EQ(out[i], expect[i]);
}

}  // namespace
}  // namespace llmforge::kernels
