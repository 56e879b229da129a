#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <vector>

#include "core/error.h"
#include "kernels/cpu/repack.h"

#if defined(LLMFORGE_HAVE_OPENBLAS)
#include "kernels/cpu/gemm_f32.h"
#endif

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

// The table's gemm for w's layout; for plain rows its row-invariant one when the caller asked for
// batch invariance (the x8 gemm always is).
GemmFn pick_gemm(const KernelTable& table, const Tensor& w, const MatmulScratch& scratch) {
    const int i = static_cast<int>(w.dtype());
    if (w.row_group() == 8) return table.gemm_x8[i];
    LF_ASSERT(w.row_group() == 1);
    return scratch.row_invariant && table.gemm_invariant[i] != nullptr ? table.gemm_invariant[i] : table.gemm[i];
}

// Work items split weight rows in multiples of this: whole 4-row register tiles, or whole
// interleaved groups.
int64_t row_align(const Tensor& w) { return std::max<int64_t>(4, w.row_group()); }
int64_t align_up(int64_t v, int64_t a) { return (v + a - 1) / a * a; }

#if defined(LLMFORGE_HAVE_OPENBLAS)
// Prefill with f32/f16/bf16 weights goes to a single-threaded sgemm (gemm_f32.h: OpenBLAS, or our
// AVX-512 kernel on CPUs with AVX-512) from this many activation rows on (OpenBLAS won over our
// AVX2 tiles on a benchmark: ~70 vs ~50 GFLOP/s per thread at M=512, K=768, N=2048). It runs
// inside each of our pool's work items, which split N, so there is one set of threads and no
// oversubscription.
constexpr int64_t kBlasMinRows = 32;
// At most this many weight rows per BLAS work item (f16/bf16 rows are converted to f32 in a
// per-thread buffer, up to 2048 x K floats); below it, two items per thread. Each sgemm call
// packs all M activation rows again, so few large items win: 1.1B f16 pp512 went from ~60-67 to
// ~65-70 t/s and 110M f32 from ~614-644 to ~730-744 t/s against 256-row items (2 threads).
constexpr int64_t kBlasChunkRows = 2048;

bool blas_matmul(const KernelTable& table, const Tensor& w, const float* x, int64_t m, float* y, ThreadPool& pool) {
    const DType wt = w.dtype();
    if (m < kBlasMinRows || (wt != DType::F32 && wt != DType::F16 && wt != DType::BF16)) return false;
    const int64_t n = w.dim(0), k = w.dim(1);
    const DequantizeRowFn deq = table.dequantize_row[static_cast<int>(wt)];
    if (wt != DType::F32 && deq == nullptr) return false;
    int64_t chunk = std::min<int64_t>(kBlasChunkRows, (n + 2 * pool.size() - 1) / (2 * pool.size()));
    chunk = std::max<int64_t>(16, (chunk + 15) & ~int64_t{15});
    const int64_t n_chunks = (n + chunk - 1) / chunk;
    pool.run(n_chunks, [&](int64_t i, int) {
        const int64_t r0 = i * chunk;
        const int64_t nr = std::min(chunk, n - r0);
        const float* wf;
        int64_t ldw;
        thread_local std::vector<float> conv;  // (chunk, K) f32 copy of f16/bf16 rows
        if (wt == DType::F32) {
            wf = reinterpret_cast<const float*>(w.row(r0));
            ldw = static_cast<int64_t>(w.row_stride() / sizeof(float));
        } else {
            if (conv.size() < static_cast<size_t>(nr * k)) conv.resize(static_cast<size_t>(nr * k));
            for (int64_t r = 0; r < nr; ++r) deq(w.row(r0 + r), conv.data() + r * k, k);
            wf = conv.data();
            ldw = k;
        }
        // One thread's product: our AVX-512 kernel where the CPU has it, else OpenBLAS (gemm_f32.h).
        sgemm(false, true, m, nr, k, 1.0f, x, k, wf, ldw, 0.0f, y + r0, n);
    });
    return true;
}
#endif

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
    GemmFn gemm = pick_gemm(table, w, scratch);
    LF_ASSERT(gemm != nullptr);
#if defined(LLMFORGE_HAVE_OPENBLAS)
    // Only for the best table: the scalar / explicit-ISA tables stay pure (tests compare them).
    if (&table == &kernels() && scratch.allow_blas && blas_matmul(table, w, x, m, y, pool)) return;
#endif

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
        const int64_t chunk = align_up(std::max<int64_t>(kMinChunkRows, (n + want - 1) / want), row_align(w));
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
        tile_rows = std::max<int64_t>(16, align_up((n + want_rows - 1) / want_rows, row_align(w)));
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

namespace {

// X quantised to `at` (or X itself for f32) in scratch; returns the row stride in bytes.
const void* activations_as(const KernelTable& table, DType at, const float* x, int64_t m, int64_t k,
                           MatmulScratch& scratch, size_t* x_stride) {
    if (at == DType::F32) {
        *x_stride = static_cast<size_t>(k) * sizeof(float);
        return x;
    }
    QuantizeRowFn quant = table.quantize_row[static_cast<int>(at)];
    LF_ASSERT(quant != nullptr);
    *x_stride = row_bytes(at, k);
    auto* buf = static_cast<uint8_t*>(scratch.get(*x_stride * static_cast<size_t>(m)));
    for (int64_t i = 0; i < m; ++i) quant(x + i * k, buf + static_cast<size_t>(i) * *x_stride, k);
    return buf;
}

// Decode row chunk for a matrix of n rows: a few chunks per thread, whole tiles or groups.
int64_t decode_chunk_rows(int64_t n, int n_threads, int64_t align) {
    const int64_t want = std::max<int64_t>(1, n_threads * kChunksPerThread);
    return align_up(std::max<int64_t>(kMinChunkRows, (n + want - 1) / want), align);
}

}  // namespace

void matmul_multi(const Tensor* const ws[], float* const ys[], int n_w, const float* x, int64_t m,
                  ThreadPool& pool, MatmulScratch& scratch) {
    matmul_multi(kernels(), ws, ys, n_w, x, m, pool, scratch);
}

void matmul_multi(const KernelTable& table, const Tensor* const ws[], float* const ys[], int n_w, const float* x,
                  int64_t m, ThreadPool& pool, MatmulScratch& scratch) {
    LF_ASSERT(n_w >= 1 && n_w <= 8);
    const DType at = vec_dot_type(ws[0]->dtype());
    bool same = m == 1;
    for (int j = 0; j < n_w && same; ++j) same = vec_dot_type(ws[j]->dtype()) == at && ws[j]->dim(1) == ws[0]->dim(1);
    if (!same) {
        for (int j = 0; j < n_w; ++j) matmul(table, *ws[j], x, m, ys[j], pool, scratch);
        return;
    }
    const int64_t k = ws[0]->dim(1);
    size_t x_stride = 0;
    const void* xq = activations_as(table, at, x, 1, k, scratch, &x_stride);
    // Chunk table: (matrix, first row) for every chunk of every matrix, in order.
    int64_t first_chunk[9] = {0};
    int64_t chunk_rows[8];
    GemmFn gemm[8];
    for (int j = 0; j < n_w; ++j) {
        const Tensor& w = *ws[j];
        LF_ASSERT(w.ndim() == 2 && k % dtype_info(w.dtype()).block_size == 0);
        gemm[j] = pick_gemm(table, w, scratch);
        LF_ASSERT(gemm[j] != nullptr);
        chunk_rows[j] = decode_chunk_rows(w.dim(0), pool.size(), row_align(w));
        first_chunk[j + 1] = first_chunk[j] + (w.dim(0) + chunk_rows[j] - 1) / chunk_rows[j];
    }
    pool.run(first_chunk[n_w], [&](int64_t i, int) {
        int j = 0;
        while (i >= first_chunk[j + 1]) ++j;
        const Tensor& w = *ws[j];
        const int64_t n = w.dim(0);
        const int64_t r0 = (i - first_chunk[j]) * chunk_rows[j];
        const int64_t nr = std::min(chunk_rows[j], n - r0);
        const size_t w_stride = w.row_stride();
        gemm[j](k, static_cast<const uint8_t*>(w.data()) + static_cast<size_t>(r0) * w_stride, w_stride, nr, xq,
                x_stride, 1, ys[j] + r0, static_cast<size_t>(n));
    });
}

void matmul_swiglu(const Tensor& w_gate, const Tensor& w_up, const float* x, int64_t m, float* gate, float* up,
                   ThreadPool& pool, MatmulScratch& scratch) {
    matmul_swiglu(kernels(), w_gate, w_up, x, m, gate, up, pool, scratch);
}

void matmul_swiglu(const KernelTable& table, const Tensor& w_gate, const Tensor& w_up, const float* x, int64_t m,
                   float* gate, float* up, ThreadPool& pool, MatmulScratch& scratch) {
    LF_ASSERT(w_gate.ndim() == 2 && w_up.ndim() == 2 && w_gate.shape() == w_up.shape());
    const int64_t f = w_gate.dim(0), k = w_gate.dim(1);
    const DType at = vec_dot_type(w_gate.dtype());
    if (m != 1 || vec_dot_type(w_up.dtype()) != at) {
        matmul(table, w_gate, x, m, gate, pool, scratch);
        matmul(table, w_up, x, m, up, pool, scratch);
        const int64_t grain = m >= 16 ? 4 : 1;
        pool.run_range(m, grain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) table.swiglu(gate + i * f, up + i * f, gate + i * f, f);
        });
        return;
    }
    size_t x_stride = 0;
    const void* xq = activations_as(table, at, x, 1, k, scratch, &x_stride);
    const GemmFn gemm_g = pick_gemm(table, w_gate, scratch);
    const GemmFn gemm_u = pick_gemm(table, w_up, scratch);
    LF_ASSERT(gemm_g != nullptr && gemm_u != nullptr);
    // Each item does both products, so half as many rows per item as a single matmul.
    const int64_t chunk =
        decode_chunk_rows((f + 1) / 2, pool.size(), std::max(row_align(w_gate), row_align(w_up)));
    const size_t sg = w_gate.row_stride(), su = w_up.row_stride();
    const auto* wg = static_cast<const uint8_t*>(w_gate.data());
    const auto* wu = static_cast<const uint8_t*>(w_up.data());
    pool.run((f + chunk - 1) / chunk, [&](int64_t i, int) {
        const int64_t r0 = i * chunk;
        const int64_t nr = std::min(chunk, f - r0);
        gemm_g(k, wg + static_cast<size_t>(r0) * sg, sg, nr, xq, x_stride, 1, gate + r0, static_cast<size_t>(f));
        gemm_u(k, wu + static_cast<size_t>(r0) * su, su, nr, xq, x_stride, 1, up + r0, static_cast<size_t>(f));
        table.swiglu(gate + r0, up + r0, gate + r0, nr);
    });
}

void matmul_grouped(const GroupedProduct* ps, int64_t n_products, ThreadPool& pool, MatmulScratch& scratch) {
    matmul_grouped(kernels(), ps, n_products, pool, scratch);
}

void matmul_grouped(const KernelTable& table, const GroupedProduct* ps, int64_t n_products, ThreadPool& pool,
                    MatmulScratch& scratch) {
    // Per product: its activations' offset in the scratch, tile grid and kernels.
    struct Plan {
        size_t x_off = 0, x_stride = 0;
        int64_t tile_rows = 0, tile_cols = 0, n_col_tiles = 0, first_item = 0;
        GemmFn gemm = nullptr, gemm_up = nullptr;
    };
    std::vector<Plan> plan(static_cast<size_t>(n_products));
    size_t bytes = 0;
    int64_t items = 0;
    for (int64_t p = 0; p < n_products; ++p) {
        const GroupedProduct& g = ps[p];
        Plan& pl = plan[p];
        pl.first_item = items;
        if (g.m == 0) continue;
        LF_ASSERT(g.w != nullptr && g.w->ndim() == 2 && g.x != nullptr && g.y != nullptr);
        LF_ASSERT(g.w_up == nullptr || (g.w_up->shape() == g.w->shape() && g.w_up->dtype() == g.w->dtype() && g.y_up));
        const int64_t n = g.w->dim(0), k = g.w->dim(1);
        const DType at = vec_dot_type(g.w->dtype());
        pl.x_stride = at == DType::F32 ? static_cast<size_t>(k) * sizeof(float) : row_bytes(at, k);
        pl.x_off = bytes;
        bytes += align_up(static_cast<int64_t>(pl.x_stride * static_cast<size_t>(g.m)), 64);
        pl.gemm = pick_gemm(table, *g.w, scratch);
        pl.gemm_up = g.w_up != nullptr ? pick_gemm(table, *g.w_up, scratch) : nullptr;
        LF_ASSERT(pl.gemm != nullptr && (g.w_up == nullptr || pl.gemm_up != nullptr));
        if (g.m == 1) {
            pl.tile_rows = decode_chunk_rows(g.w_up ? (n + 1) / 2 : n, pool.size(), row_align(*g.w));
            pl.tile_cols = 1;
        } else {
            pl.tile_rows = kTileRows;
            pl.tile_cols = std::min(kTileCols, g.m);
        }
        pl.n_col_tiles = (g.m + pl.tile_cols - 1) / pl.tile_cols;
        items += (n + pl.tile_rows - 1) / pl.tile_rows * pl.n_col_tiles;
    }
    if (items == 0) return;
    auto* buf = static_cast<uint8_t*>(scratch.get(std::max<size_t>(bytes, 64)));
    // Activations: every product's rows, quantised (or copied, for f32 weights) in one pass.
    std::vector<int64_t> row_end(static_cast<size_t>(n_products));
    int64_t rows = 0;
    for (int64_t p = 0; p < n_products; ++p) row_end[p] = rows += ps[p].m;
    auto convert = [&](int64_t b, int64_t e) {
        int64_t p = std::upper_bound(row_end.begin(), row_end.end(), b) - row_end.begin();
        for (int64_t r = b; r < e; ++r) {
            while (r >= row_end[p]) ++p;
            const GroupedProduct& g = ps[p];
            const int64_t i = r - (row_end[p] - g.m), k = g.w->dim(1);
            const float* src = g.x + i * (g.ldx > 0 ? g.ldx : k);
            uint8_t* dst = buf + plan[p].x_off + static_cast<size_t>(i) * plan[p].x_stride;
            const DType at = vec_dot_type(g.w->dtype());
            if (at == DType::F32) {
                std::copy(src, src + k, reinterpret_cast<float*>(dst));
            } else {
                table.quantize_row[static_cast<int>(at)](src, dst, k);
            }
        }
    };
    if (rows >= 8) {
        pool.run_range(rows, std::max<int64_t>(1, rows / (4 * pool.size())), convert);
    } else {
        convert(0, rows);
    }
    std::vector<int64_t> item_end(static_cast<size_t>(n_products));
    for (int64_t p = 0; p < n_products; ++p) item_end[p] = p + 1 < n_products ? plan[p + 1].first_item : items;
    pool.run(items, [&](int64_t it, int) {
        const int64_t p = std::upper_bound(item_end.begin(), item_end.end(), it) - item_end.begin();
        const GroupedProduct& g = ps[p];
        const Plan& pl = plan[p];
        const int64_t t = it - pl.first_item, n = g.w->dim(0), k = g.w->dim(1);
        const int64_t r0 = (t / pl.n_col_tiles) * pl.tile_rows, c0 = (t % pl.n_col_tiles) * pl.tile_cols;
        const int64_t nr = std::min(pl.tile_rows, n - r0), nc = std::min(pl.tile_cols, g.m - c0);
        const size_t ldy = static_cast<size_t>(g.ldy > 0 ? g.ldy : n);
        const uint8_t* xq = buf + pl.x_off + static_cast<size_t>(c0) * pl.x_stride;
        const size_t ws = g.w->row_stride();
        pl.gemm(k, static_cast<const uint8_t*>(g.w->data()) + static_cast<size_t>(r0) * ws, ws, nr, xq, pl.x_stride, nc,
                g.y + static_cast<size_t>(c0) * ldy + r0, ldy);
        if (g.w_up == nullptr) return;
        pl.gemm_up(k, static_cast<const uint8_t*>(g.w_up->data()) + static_cast<size_t>(r0) * ws, ws, nr, xq,
                   pl.x_stride, nc, g.y_up + static_cast<size_t>(c0) * ldy + r0, ldy);
        for (int64_t c = 0; c < nc; ++c) {
            float* yr = g.y + static_cast<size_t>(c0 + c) * ldy + r0;
            table.swiglu(yr, g.y_up + static_cast<size_t>(c0 + c) * ldy + r0, yr, nr);
        }
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
    std::vector<uint8_t> plain(w.row_stride());
    for (int64_t r = 0; r < n; ++r) {
        const uint8_t* row = w.row(r);
        if (const int g = w.row_group(); g != 1) {
            x8_unpack_row(wt, w.row(r - r % g), static_cast<int>(r % g), k, plain.data());
            row = plain.data();
        }
        ref.dequantize_row[static_cast<int>(wt)](row, wr.data(), k);
        for (int64_t i = 0; i < m; ++i) {
            double s = 0;
            const float* xi = xa.data() + i * k;
            for (int64_t j = 0; j < k; ++j) s += static_cast<double>(wr[j]) * xi[j];
            y[i * n + r] = static_cast<float>(s);
        }
    }
}

}  // namespace llmforge::kernels
