#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"

namespace llmforge::kernels {

namespace {

// Tile shape for M > 1. A tile of kTileRows weight rows and kTileCols activation rows: for K=4096
// in Q4_K that is 64 x 2.3 KB of weights + 32 x 4.6 KB of activations, ~300 KB, inside a 512 KB+
// L2; the gemm kernels then block in registers and L1 within the tile.
constexpr int64_t kTileRows = 64;
constexpr int64_t kTileCols = 32;
// Decode (M == 1): chunks per thread; more than one so uneven progress balances out.
constexpr int64_t kChunksPerThread = 4;
// Minimum weight rows per decode chunk (a chunk must amortise the pool hand-off).
constexpr int64_t kMinChunkRows = 16;

}  // namespace

void* MatmulScratch::get(size_t bytes) {
    if (bytes > cap_ || !buf_) {
        size_t want = std::max(bytes, cap_ + cap_ / 2);
        buf_ = alloc_aligned(want);
        cap_ = want;
    }
    return buf_.get();
}

void matmul(const Tensor& w, const float* x, int64_t m, float* y, ThreadPool& pool, MatmulScratch& scratch) {
    matmul(kernels(), w, x, m, y, pool, scratch);
}

void matmul(const KernelTable& table, const Tensor& w, const float* x, int64_t m, float* y, ThreadPool& pool,
            MatmulScratch& scratch) {
    LF_ASSERT(w.ndim() == 2);
    LF_ASSERT(m >= 0);
    if (m == 0) return;
    const DType wt = w.dtype();
    const int64_t n = w.dim(0), k = w.dim(1);
    const DTypeInfo& wi = dtype_info(wt);
    LF_ASSERT(k % wi.block_size == 0);
    const DType at = vec_dot_type(wt);
    const DTypeInfo& ai = dtype_info(at);
    LF_ASSERT(k % ai.block_size == 0);
    GemmFn gemm = table.gemm[static_cast<int>(wt)];
    LF_ASSERT(gemm != nullptr);

    // Activations in vec_dot_type(W).
    const void* xq = x;
    size_t x_stride = static_cast<size_t>(k) * sizeof(float);
    if (at != DType::F32) {
        QuantizeRowFn quant = table.quantize_row[static_cast<int>(at)];
        LF_ASSERT(quant != nullptr);
        x_stride = row_bytes(at, k);
        auto* buf = static_cast<uint8_t*>(scratch.get(x_stride * static_cast<size_t>(m)));
        auto quant_rows = [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) quant(x + i * k, buf + static_cast<size_t>(i) * x_stride, k);
        };
        // Parallel only when there is enough work to pay for waking the pool.
        if (m * k >= 16384) {
            pool.run_range(m, std::max<int64_t>(1, m / (4 * pool.size())), quant_rows);
        } else {
            quant_rows(0, m);
        }
        xq = buf;
    }

    const auto* wp = static_cast<const uint8_t*>(w.data());
    const size_t w_stride = w.row_stride();
    const auto* xp = static_cast<const uint8_t*>(xq);
    const size_t ldo = static_cast<size_t>(n);

    if (m == 1) {
        const int64_t want = std::max<int64_t>(1, pool.size() * kChunksPerThread);
        int64_t chunk = std::max<int64_t>(kMinChunkRows, (n + want - 1) / want);
        chunk = (chunk + 3) & ~int64_t{3};  // whole 4-row register tiles
        const int64_t n_chunks = (n + chunk - 1) / chunk;
        pool.run(n_chunks, [&](int64_t i, int) {
            const int64_t r0 = i * chunk;
            const int64_t nr = std::min(chunk, n - r0);
            gemm(k, wp + static_cast<size_t>(r0) * w_stride, w_stride, nr, xp, x_stride, 1, y + r0, ldo);
        });
        return;
    }

    // 2-D tiles. Consecutive tile ids share a weight tile so a thread moving to the next tile
    // usually finds those weights still in its cache.
    int64_t tile_cols = std::min(kTileCols, m);
    int64_t tile_rows = kTileRows;
    const int64_t n_row_tiles = (n + tile_rows - 1) / tile_rows;
    const int64_t n_col_tiles = (m + tile_cols - 1) / tile_cols;
    // With few tiles (small N or M), shrink weight tiles so every thread gets work.
    if (n_row_tiles * n_col_tiles < 2 * pool.size() && n > 16) {
        const int64_t want_rows = (2 * pool.size() + n_col_tiles - 1) / n_col_tiles;
        tile_rows = std::max<int64_t>(16, ((n + want_rows - 1) / want_rows + 3) & ~int64_t{3});
    }
    const int64_t rt = (n + tile_rows - 1) / tile_rows;
    pool.run(rt * n_col_tiles, [&](int64_t t, int) {
        const int64_t r0 = (t / n_col_tiles) * tile_rows;
        const int64_t c0 = (t % n_col_tiles) * tile_cols;
        const int64_t nr = std::min(tile_rows, n - r0);
        const int64_t nc = std::min(tile_cols, m - c0);
        gemm(k, wp + static_cast<size_t>(r0) * w_stride, w_stride, nr, xp + static_cast<size_t>(c0) * x_stride,
             x_stride, nc, y + static_cast<size_t>(c0) * ldo + static_cast<size_t>(r0), ldo);
    });
}

void matmul_ref(const Tensor& w, const float* x, int64_t m, float* y) {
    LF_ASSERT(w.ndim() == 2);
    const KernelTable& ref = *kernels_for(Isa::kScalar);
    const DType wt = w.dtype();
    const int64_t n = w.dim(0), k = w.dim(1);
    const DType at = vec_dot_type(wt);
    LF_ASSERT(k % dtype_info(wt).block_size == 0 && k % dtype_info(at).block_size == 0);

    std::vector<float> xa(static_cast<size_t>(m * k));
    if (at == DType::F32) {
        std::copy(x, x + m * k, xa.begin());
    } else {
        std::vector<uint8_t> q(row_bytes(at, k));
        for (int64_t i = 0; i < m; ++i) {
            ref.quantize_row[static_cast<int>(at)](x + i * k, q.data(), k);
            ref.dequantize_row[static_cast<int>(at)](q.data(), xa.data() + i * k, k);
        }
    }
    std::vector<float> wr(static_cast<size_t>(k));
    for (int64_t r = 0; r < n; ++r) {
        ref.dequantize_row[static_cast<int>(wt)](w.row(r), wr.data(), k);
        for (int64_t i = 0; i < m; ++i) {
            double s = 0;
            const float* xi = xa.data() + i * k;
            for (int64_t j = 0; j < k; ++j) s += static_cast<double>(wr[j]) * xi[j];
            y[i * n + r] = static_cast<float>(s);
        }
    }
}

}  // namespace llmforge::kernels
