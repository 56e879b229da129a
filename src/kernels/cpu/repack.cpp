#include "kernels/cpu/repack.h"

#include <cstring>
#include <vector>

#include "core/error.h"

namespace llmforge::kernels {

namespace {

constexpr int kRows = 8;
constexpr int kChunk = 4;                  // quant bytes per row per chunk
constexpr size_t kScaleBytes = 2 * kRows;  // the 8 fp16 scales at the head of a group block

// Quant bytes per plain block: 16 for Q4_0 (32 nibbles), 32 for Q8_0.
size_t quant_bytes(DType t) { return t == DType::Q4_0 ? kQK / 2 : kQK; }

// The layout, in one place: where, inside a group block, row r's fp16 scale and its quant chunk
// s (plain quant bytes [4s, 4s+4)) live.
size_t scale_offset(int r) { return 2 * static_cast<size_t>(r); }
size_t chunk_offset(size_t s, int r) { return kScaleBytes + (s * kRows + static_cast<size_t>(r)) * kChunk; }

}  // namespace

bool x8_supported(DType t) { return t == DType::Q4_0 || t == DType::Q8_0; }

bool x8_can_repack(const Tensor& w) {
    return x8_supported(w.dtype()) && w.ndim() == 2 && w.row_group() == 1 && w.dim(0) % kRows == 0 &&
           w.dim(1) % kQK == 0;
}

Tensor repack_x8(const Tensor& w, bool in_place) {
    if (in_place) return repack_x8(w, static_cast<uint8_t*>(const_cast<void*>(w.data())), nullptr);
    auto buf = alloc_huge(w.nbytes());
    return repack_x8(w, buf.get(), buf);
}

Tensor repack_x8(const Tensor& w, uint8_t* dst_base, std::shared_ptr<const void> owner) {
    LF_ASSERT(x8_can_repack(w));
    const DType t = w.dtype();
    const size_t tsz = static_cast<size_t>(dtype_info(t).type_size);  // plain block bytes
    const size_t qb = quant_bytes(t);
    const int64_t n = w.dim(0), nb = w.dim(1) / kQK;
    const size_t rs = w.row_stride();
    const size_t group_bytes = kRows * rs;

    const bool in_place = dst_base == w.data();
    Tensor out = in_place ? w : Tensor::view(t, w.shape(), dst_base, std::move(owner), w.name());
    std::vector<uint8_t> src(group_bytes);  // one group's plain rows (in place: a copy first)
    for (int64_t g = 0; g < n / kRows; ++g) {
        std::memcpy(src.data(), w.row(g * kRows), group_bytes);
        uint8_t* dst = dst_base + static_cast<size_t>(g) * group_bytes;
        for (int64_t b = 0; b < nb; ++b) {
            uint8_t* gb = dst + static_cast<size_t>(b) * kRows * tsz;
            for (int r = 0; r < kRows; ++r) {
                const uint8_t* blk = src.data() + static_cast<size_t>(r) * rs + static_cast<size_t>(b) * tsz;
                std::memcpy(gb + scale_offset(r), blk, 2);  // fp16 scale: first field of both block types
                for (size_t s = 0; s < qb / kChunk; ++s) std::memcpy(gb + chunk_offset(s, r), blk + 2 + s * kChunk, kChunk);
            }
        }
    }
    out.set_row_group(kRows);
    return out;
}

void x8_unpack_row(DType t, const uint8_t* group, int i, int64_t k, uint8_t* out) {
    const size_t tsz = static_cast<size_t>(dtype_info(t).type_size);
    const size_t qb = quant_bytes(t);
    for (int64_t b = 0; b < k / kQK; ++b) {
        const uint8_t* gb = group + static_cast<size_t>(b) * kRows * tsz;
        uint8_t* blk = out + static_cast<size_t>(b) * tsz;
        std::memcpy(blk, gb + scale_offset(i), 2);
        for (size_t s = 0; s < qb / kChunk; ++s) std::memcpy(blk + 2 + s * kChunk, gb + chunk_offset(s, i), kChunk);
    }
}

}  // namespace llmforge::kernels
