// Tensor: dtype + shape + byte strides over storage that is either owned (aligned heap) or a
// read-only memory map of a model file (weights are never copied at load).
//
// Shape is row-major: shape.back() is the contiguous dimension. A weight matrix of a Linear layer
// y = x W^T is stored [out, in] (rows = output features), exactly as GGUF and safetensors keep it.
// For quantised dtypes the last dimension must be a multiple of the block size; rows are whole
// blocks. Strides are in bytes (nb[i] = bytes between consecutive indices along dim i).
//
// Thread safety: a Tensor is a value-like handle; the bytes it points to are shared between copies
// (copying a Tensor never copies data). Mutating data is the caller's business.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace llmforge {

// "4096x11008" for a row-major shape; "scalar" for an empty one.
std::string shape_to_string(const std::vector<int64_t>& shape);

// 64-byte aligned heap buffer, zero-initialised.
std::shared_ptr<uint8_t> alloc_aligned(size_t bytes);
// A zeroed anonymous mapping aligned to 2 MiB that asks for transparent huge pages
// (madvise): for weights that are streamed every token, where 4 KiB pages cost a TLB miss each.
// Throws Error on failure.
std::shared_ptr<uint8_t> alloc_huge(size_t bytes);
// Consecutive 64-byte-aligned slices of one alloc_huge() buffer, for weights copied at load
// (all of them under --no-mmap, repacked matrices otherwise). Size it with the sum of
// slice_bytes() of what will be taken. Not thread-safe.
class HugeArena {
public:
    static size_t slice_bytes(size_t bytes) { return (bytes + 63) & ~size_t{63}; }
    explicit HugeArena(size_t total) : buf_(alloc_huge(total)), size_(total) {}
    // The next `bytes` bytes (LF_ASSERT: within the total given at construction).
    uint8_t* take(size_t bytes);
    // Keeps the whole buffer alive (Tensor::view's owner).
    const std::shared_ptr<uint8_t>& owner() const { return buf_; }

private:
    std::shared_ptr<uint8_t> buf_;
    size_t size_ = 0, used_ = 0;
};
// Asks the kernel to drop the pages of [p, p + bytes) from this process's memory (MADV_PAGEOUT:
// clean file pages are dropped and read again if touched; anonymous ones are never lost). For
// file-mapped weights that were copied elsewhere. Best effort, never fails.
void release_pages(const void* p, size_t bytes);

class Tensor {
public:
    Tensor() = default;
    // A new owned, zeroed, contiguous tensor.
    static Tensor empty(DType dtype, std::vector<int64_t> shape, std::string name = "");
    // A view of bytes owned elsewhere; `owner` keeps them alive (may be null for static data).
    static Tensor view(DType dtype, std::vector<int64_t> shape, const void* data,
                       std::shared_ptr<const void> owner, std::string name = "");

    DType dtype() const { return dtype_; }
    const std::vector<int64_t>& shape() const { return shape_; }
    int64_t dim(int i) const { return shape_[i < 0 ? shape_.size() + i : i]; }
    int ndim() const { return static_cast<int>(shape_.size()); }
    int64_t numel() const;
    size_t nbytes() const;             // bytes of a contiguous tensor of this shape
    size_t row_stride() const;         // bytes between rows (last-dim vectors)
    int64_t nrows() const {
        return shape_.empty() ? 1 : (shape_.back() == 0 ? 0 : numel() / shape_.back());
    }
    const std::string& name() const { return name_; }
    void set_name(std::string n) { name_ = std::move(n); }
    bool defined() const { return data_ != nullptr; }
    // What keeps the bytes alive (null for an owned-elsewhere static view).
    const std::shared_ptr<const void>& owner() const { return owner_; }

    void* data() { return data_; }
    const void* data() const { return data_; }
    template <class T> T* ptr() { return static_cast<T*>(data_); }
    template <class T> const T* ptr() const { return static_cast<const T*>(data_); }
    // Rows are stored in interleaved groups of row_group() rows (1: plain row-major). Only
    // matrix weights repacked by kernels::repack_x8 have 8; row(r) is a row only when it is 1,
    // and for 8 it is the start of r's group when r % 8 == 0 (a group is 8 rows' bytes).
    int row_group() const { return row_group_; }
    void set_row_group(int g) { row_group_ = g; }
    const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data_) + r * row_stride(); }
    uint8_t* row(int64_t r) { return static_cast<uint8_t*>(data_) + r * row_stride(); }

    std::string shape_str() const { return shape_to_string(shape_); }  // row-major, "4096x4096"

private:
    DType dtype_ = DType::F32;
    std::vector<int64_t> shape_;
    void* data_ = nullptr;
    std::shared_ptr<const void> owner_;
    std::string name_;
    int row_group_ = 1;
};

}  // namespace llmforge
