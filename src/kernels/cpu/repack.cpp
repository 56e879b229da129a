#include "kernels/cpu/repack.h"

#include <cstring>
#include <vector>

#include "core/error.h"

namespace llmforge::kernels {

namespace {

constexpr int kRows = 8;
constexpr int kChunk = 4;  // quant bytes per row per chunk

// A plain block is its header fields (fp16 d; fp16 m for Q4_1 / Q5_1; the uint32 of 5th bits for
// Q5_0 / Q5_1), in this order, then its quant bytes. A group block holds each header field of
// the 8 rows together (8 d's, then 8 m's, then 8 qh's), then the quant chunks.
struct Field {
    size_t offset, size;  // in the plain block
};
struct Layout {
    Field fields[3];
    int n_fields;
    size_t head;  // header bytes per plain block
    size_t quants;  // quant bytes per plain block: 16 for 4/5-bit types (32 nibbles), 32 for Q8_0
};

Layout layout(DType t) {
    switch (t) {
        case DType::Q4_0: return {{{0, 2}}, 1, 2, kQK / 2};
        case DType::Q8_0: return {{{0, 2}}, 1, 2, kQK};
        case DType::Q4_1: return {{{0, 2}, {2, 2}}, 2, 4, kQK / 2};
        case DType::Q5_0: return {{{0, 2}, {2, 4}}, 2, 6, kQK / 2};
        case DType::Q5_1: return {{{0, 2}, {2, 2}, {4, 4}}, 3, 8, kQK / 2};
        default: LF_ASSERT(false); return {};
    }
}

// The layout, in one place: where, inside a group block, row r's header field f and its quant
// chunk s (plain quant bytes [4s, 4s+4)) live.
size_t field_offset(const Layout& l, int f, int r) {
    return kRows * l.fields[f].offset + l.fields[f].size * static_cast<size_t>(r);
}
size_t chunk_offset(const Layout& l, size_t s, int r) { return kRows * l.head + (s * kRows + static_cast<size_t>(r)) * kChunk; }

// Plain block `blk` into (or, unpack, out of) its places in group block `gb` as row r.
void scatter_block(const Layout& l, const uint8_t* blk, uint8_t* gb, int r) {
    for (int f = 0; f < l.n_fields; ++f) std::memcpy(gb + field_offset(l, f, r), blk + l.fields[f].offset, l.fields[f].size);
    for (size_t s = 0; s < l.quants / kChunk; ++s) std::memcpy(gb + chunk_offset(l, s, r), blk + l.head + s * kChunk, kChunk);
}
void gather_block(const Layout& l, const uint8_t* gb, int r, uint8_t* blk) {
    for (int f = 0; f < l.n_fields; ++f) std::memcpy(blk + l.fields[f].offset, gb + field_offset(l, f, r), l.fields[f].size);
    for (size_t s = 0; s < l.quants / kChunk; ++s) std::memcpy(blk + l.head + s * kChunk, gb + chunk_offset(l, s, r), kChunk);
}

}  // namespace

bool x8_supported(DType t) {
    return t == DType::Q4_0 || t == DType::Q8_0 || t == DType::Q4_1 || t == DType::Q5_0 || t == DType::Q5_1;
}

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
    const Layout l = layout(t);
    const size_t tsz = static_cast<size_t>(dtype_info(t).type_size);  // plain block bytes
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
                scatter_block(l, src.data() + static_cast<size_t>(r) * rs + static_cast<size_t>(b) * tsz, gb, r);
            }
        }
    }
    out.set_row_group(kRows);
    return out;
}

void x8_unpack_row(DType t, const uint8_t* group, int i, int64_t k, uint8_t* out) {
    const Layout l = layout(t);
    const size_t tsz = static_cast<size_t>(dtype_info(t).type_size);
    for (int64_t b = 0; b < k / kQK; ++b) {
        gather_block(l, group + static_cast<size_t>(b) * kRows * tsz, i, out + static_cast<size_t>(b) * tsz);
    }
}

}  // namespace llmforge::kernels
