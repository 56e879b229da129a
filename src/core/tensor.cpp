#include "core/tensor.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "core/error.h"

namespace llmforge {

std::shared_ptr<uint8_t> alloc_aligned(size_t bytes) {
    size_t n = (bytes + 63) & ~size_t{63};
    if (n == 0) n = 64;
    void* p = std::aligned_alloc(64, n);
    if (p == nullptr) fail("out of memory: could not allocate %zu bytes", bytes);
    std::memset(p, 0, n);
    return std::shared_ptr<uint8_t>(static_cast<uint8_t*>(p), [](uint8_t* q) { std::free(q); });
}

std::shared_ptr<uint8_t> alloc_huge(size_t bytes) {
    constexpr size_t kHuge = size_t{2} << 20;
    const size_t alloc = std::max<size_t>(kHuge, (bytes + kHuge - 1) / kHuge * kHuge);
    void* p = ::mmap(nullptr, alloc + kHuge, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) fail("out of memory: cannot map %zu bytes for weights", bytes);
    // Align the start to 2 MiB so whole huge pages cover the buffer.
    auto* base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1));
    ::madvise(base, alloc, MADV_HUGEPAGE);
    return std::shared_ptr<uint8_t>(base, [p, alloc](uint8_t*) { ::munmap(p, alloc + kHuge); });
}

uint8_t* HugeArena::take(size_t bytes) {
    LF_ASSERT(used_ + bytes <= size_);
    uint8_t* p = buf_.get() + used_;
    used_ += slice_bytes(bytes);
    return p;
}

void release_pages(const void* p, size_t bytes) {
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21  // Linux 5.4+; older kernels answer EINVAL, which is fine here
#endif
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + page - 1) & ~(page - 1);
    const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(page - 1);
    if (e > b) ::madvise(reinterpret_cast<void*>(b), e - b, MADV_PAGEOUT);
}

Tensor Tensor::empty(DType dtype, std::vector<int64_t> shape, std::string name) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.name_ = std::move(name);
    auto buf = alloc_aligned(t.nbytes());
    t.data_ = buf.get();
    t.owner_ = buf;
    return t;
}

Tensor Tensor::view(DType dtype, std::vector<int64_t> shape, const void* data,
                    std::shared_ptr<const void> owner, std::string name) {
    Tensor t;
    t.dtype_ = dtype;
    t.shape_ = std::move(shape);
    t.data_ = const_cast<void*>(data);
    t.owner_ = std::move(owner);
    t.name_ = std::move(name);
    return t;
}

int64_t Tensor::numel() const {
    int64_t n = 1;
    for (int64_t d : shape_) n *= d;
    return n;
}

size_t Tensor::row_stride() const {
    return shape_.empty() ? dtype_info(dtype_).type_size : row_bytes(dtype_, shape_.back());
}

size_t Tensor::nbytes() const {
    if (shape_.empty()) return dtype_info(dtype_).type_size;
    return row_stride() * static_cast<size_t>(nrows());
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
    std::string s;
    for (size_t i = 0; i < shape.size(); ++i) {
        if (i) s += 'x';
        s += std::to_string(shape[i]);
    }
    return s.empty() ? "scalar" : s;
}

}  // namespace llmforge
