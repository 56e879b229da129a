// Core: dtype conversions against the compiler's own IEEE half type, thread pool coverage,
// tensor bookkeeping and error messages.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "core/tensor.h"
#include "core/thread_pool.h"

using namespace llmforge;

TEST(Dtype, Fp16ToFp32MatchesCompilerHalfForEveryBitPattern) {
    for (uint32_t h = 0; h < 65536; ++h) {
        _Float16 ref;
        uint16_t bits = static_cast<uint16_t>(h);
        std::memcpy(&ref, &bits, 2);
        const float want = static_cast<float>(ref);
        const float got = fp16_to_fp32(bits);
        if (std::isnan(want)) {
            EXPECT_TRUE(std::isnan(got)) << h;
        } else {
            ASSERT_EQ(std::memcmp(&want, &got, 4), 0) << "bits " << h << " want " << want << " got " << got;
        }
    }
}

TEST(Dtype, Fp32ToFp16RoundsLikeCompilerHalf) {
    std::mt19937 rng(1);
    std::vector<float> xs = {0.0f, -0.0f, 1.0f, 65504.0f, 65520.0f, 65519.0f, 1e-8f, 5.96e-8f,
                             2.98e-8f, 2.9802322e-8f, 6.1035156e-5f, 6.0975552e-5f, INFINITY,
                             -INFINITY, 1.00048828125f /* tie */, 1.00146484375f /* tie */};
    for (int i = 0; i < 200000; ++i) {
        uint32_t u = rng();
        float f;
        std::memcpy(&f, &u, 4);
        xs.push_back(f);
        xs.push_back(std::ldexp(static_cast<float>(rng() % 100000) / 1000.0f, static_cast<int>(rng() % 40) - 30));
    }
    for (float f : xs) {
        if (std::isnan(f)) continue;
        _Float16 ref = static_cast<_Float16>(f);
        uint16_t want;
        std::memcpy(&want, &ref, 2);
        ASSERT_EQ(fp32_to_fp16(f), want) << "value " << f;
    }
    EXPECT_TRUE(std::isnan(fp16_to_fp32(fp32_to_fp16(NAN))));
}

TEST(Dtype, Bf16RoundTripAndRounding) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(bf16_to_fp32(0x3f80), 1.0f);
    // 1 + 2^-8 is exactly halfway between bf16 1.0 and 1+2^-7: ties to even (1.0).
    EXPECT_EQ(fp32_to_bf16(1.00390625f), 0x3f80);
    // 1 + 3*2^-8 ties to even upward (1 + 2^-6).
    EXPECT_EQ(fp32_to_bf16(1.01171875f), 0x3f82);
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(NAN))));
    for (uint32_t h = 0; h < 65536; ++h) {
        float f = bf16_to_fp32(static_cast<uint16_t>(h));
        if (!std::isnan(f)) {
            ASSERT_EQ(fp32_to_bf16(f), h);
        }
    }
}

TEST(Dtype, NamesAndBlockSizes) {
    EXPECT_EQ(dtype_from_name("Q4_K"), DType::Q4_K);
    EXPECT_EQ(dtype_info(DType::Q6_K).type_size, 210);
    EXPECT_EQ(row_bytes(DType::Q8_0, 64), 68u);
    EXPECT_EQ(dtype_info_or_null(99), nullptr);
    EXPECT_EQ(dtype_from_name("q3_k"), DType::Q3_K);
    EXPECT_EQ(dtype_info(DType::Q5_1).type_size, 24);
    EXPECT_EQ(row_bytes(DType::Q2_K, 512), 168u);
    try {
        dtype_from_name("q8_1");  // an activation-only type is not a storage type
        FAIL();
    } catch (const Error& e) {
        EXPECT_NE(std::string(e.what()).find("q8_1"), std::string::npos);
        EXPECT_NE(std::string(e.what()).find("q8_0"), std::string::npos);
    }
}

TEST(Tensor, ShapesAndBytes) {
    Tensor t = Tensor::empty(DType::Q4_0, {3, 64}, "w");
    EXPECT_EQ(t.numel(), 192);
    EXPECT_EQ(t.row_stride(), 36u);
    EXPECT_EQ(t.nbytes(), 108u);
    EXPECT_EQ(t.shape_str(), "3x64");
    EXPECT_EQ(t.row(2) - t.row(0), 72);
}

TEST(FileMap, MissingFileIsOneClearLine) {
    try {
        FileMap f(RegularFile("/nonexistent/model.gguf", "a model file"));
        FAIL();
    } catch (const Error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("/nonexistent/model.gguf"), std::string::npos);
        EXPECT_EQ(m.find('\n'), std::string::npos);
    }
}

TEST(ThreadPool, EveryItemOnceForManyJobs) {
    for (int threads : {1, 2, 3, 4}) {
        ThreadPool pool(threads);
        for (int job = 0; job < 300; ++job) {
            const int64_t n = 1 + (job * 37) % 101;
            std::vector<std::atomic<int>> hits(n);
            pool.run(n, [&](int64_t i, int tid) {
                ASSERT_GE(tid, 0);
                ASSERT_LT(tid, threads);
                hits[i].fetch_add(1);
            });
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << threads << " " << job;
            std::atomic<int64_t> sum{0};
            pool.run_range(n, 3, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) sum += i;
            });
            ASSERT_EQ(sum.load(), n * (n - 1) / 2);
        }
    }
}
