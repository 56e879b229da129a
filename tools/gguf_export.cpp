#include "gguf_export.h"
#include "progress.h"

#include <algorithm>
#include <cstring>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::cli {

DType export_dtype(const std::string& name, const std::vector<int64_t>& shape, DType requested,
                   std::string* note) {
    if (shape.size() < 2) return DType::F32;
    DType t = requested;
    const bool low_bits = requested == DType::Q4_0 || requested == DType::Q4_K || requested == DType::Q6_K;
    if (low_bits && name == "output.weight") t = DType::Q6_K;
    const int64_t k = shape.back();
    auto fits = [&](DType d) { return k % dtype_info(d).block_size == 0; };
    if (!fits(t)) {
        DType fb = (t == DType::Q4_K || t == DType::Q6_K) && fits(DType::Q8_0) ? DType::Q8_0 : DType::F16;
        if (note) {
            *note = strfmt("%s: row length %lld is not a multiple of %s's block of %d; stored as %s",
                           name.c_str(), (long long)k, dtype_name(t), dtype_info(t).block_size, dtype_name(fb));
        }
        t = fb;
    }
    return t;
}

uint32_t gguf_file_type(DType requested) {
    switch (requested) {
        case DType::F32: return 0;
        case DType::F16: return 1;
        case DType::Q4_0: return 2;
        case DType::Q8_0: return 7;
        case DType::Q4_K: return 15;  // Q4_K_M is the closest named mix
        case DType::Q6_K: return 18;
        case DType::BF16: return 32;
        default: return 0;
    }
}

void export_gguf(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                 DType requested, std::vector<ExportTensor> tensors, int n_threads,
                 const char* label) {
    GgufWriter w;
    gguf_write_config(w, cfg);
    w.set("general.file_type", gguf_file_type(requested));
    if (dtype_info(requested).quantized) w.set("general.quantization_version", uint32_t{2});
    if (!vocab.empty()) gguf_write_vocab(w, vocab);

    const auto& kt = kernels::kernels();
    auto pool = std::make_shared<ThreadPool>(n_threads > 0 ? n_threads
                                                           : std::max(1u, std::thread::hardware_concurrency()));
    size_t total = 0;
    for (const auto& t : tensors) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        total += static_cast<size_t>(n);
    }
    auto progress = std::make_shared<Progress>(label, static_cast<double>(total), "params");
    auto done = std::make_shared<size_t>(0);
    auto idx = std::make_shared<size_t>(0);
    const size_t n_tensors = tensors.size();
    for (auto& t : tensors) {
        const int64_t cols = t.shape.back();
        int64_t rows = 1;
        for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
        auto quant = kt.quantize_row[static_cast<int>(t.dtype)];
        if (t.dtype != DType::F32) LF_ASSERT(quant != nullptr);
        const size_t rb = row_bytes(t.dtype, cols);
        w.add_tensor(t.name, t.dtype, t.shape,
                     [=, row = t.row, name = t.name](uint8_t* dst, size_t nbytes) {
                         LF_ASSERT(nbytes == rb * static_cast<size_t>(rows));
                         std::vector<std::vector<float>> tmp(pool->size(), std::vector<float>(cols));
                         pool->run(rows, [&](int64_t r, int tid) {
                             float* f = tmp[tid].data();
                             row(r, f);
                             if (quant) {
                                 quant(f, dst + r * rb, cols);
                             } else {
                                 std::memcpy(dst + r * rb, f, rb);
                             }
                         });
                         *done += static_cast<size_t>(rows * cols);
                         ++*idx;
                         progress->update(static_cast<double>(*done),
                                          strfmt("tensor %zu/%zu %s", *idx, n_tensors, name.c_str()));
                     });
    }
    w.write(path);
    std::fprintf(stderr, "%s: wrote %s (%zu tensors)\n", label, path.c_str(), n_tensors);
}

}  // namespace llmforge::cli
