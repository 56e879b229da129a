#include "gguf_export.h"
#include "progress.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quantize.h"
#include "quantize_model.h"

namespace llmforge::cli {

DType export_dtype(const std::string& name, const std::vector<int64_t>& shape, DType requested,
                   std::string* note) {
    if (shape.size() < 2) return DType::F32;
    DType t = requested;
    const int64_t k = shape.back();
    const bool quantized = dtype_info(requested).quantized;
    if (quantized && requested != DType::Q8_0 && name == "output.weight")
        t = k % dtype_info(requested).block_size != 0 ? DType::Q8_0 : DType::Q6_K;
    if (k % dtype_info(t).block_size != 0) {
        const DType fb = fallback_dtype(t, k);
        if (note) {
            *note = strfmt("%s: row length %lld is not a multiple of %s's block of %d; stored as %s", name.c_str(),
                           (long long)k, dtype_name(t), dtype_info(t).block_size, dtype_name(fb));
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
        case DType::Q4_1: return 3;
        case DType::Q8_0: return 7;
        case DType::Q5_0: return 8;
        case DType::Q5_1: return 9;
        case DType::Q2_K: return 10;
        case DType::Q3_K: return 12;  // llama-quantize's "Q3_K" is Q3_K_M
        case DType::Q4_K: return 15;  // "Q4_K" is Q4_K_M
        case DType::Q5_K: return 17;  // "Q5_K" is Q5_K_M
        case DType::Q6_K: return 18;
        case DType::BF16: return 32;
        default: return 0;
    }
}

void export_gguf(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                 DType requested, std::vector<ExportTensor> tensors, int n_threads,
                 const char* label) {
    GgufFileInfo info;
    info.file_type = gguf_file_type(requested);
    info.quantized = dtype_info(requested).quantized;
    export_gguf_file(path, cfg, vocab, info, std::move(tensors), n_threads, label);
}

GgufExportStats export_gguf_file(const std::string& path, const ModelConfig& cfg, const Vocab& vocab,
                                 const GgufFileInfo& info, std::vector<ExportTensor> tensors, int n_threads,
                                 const char* label) {
    GgufWriter w;
    gguf_write_config(w, cfg);
    w.set("general.file_type", info.file_type);
    if (info.quantized) w.set("general.quantization_version", uint32_t{2});
    for (const GgufKV& kv : info.extra) w.set(kv.key, kv.value);
    if (!vocab.empty()) gguf_write_vocab(w, vocab);

    auto pool = std::make_shared<ThreadPool>(n_threads > 0 ? n_threads
                                                           : std::max(1u, std::thread::hardware_concurrency()));
    GgufExportStats st;
    for (const auto& t : tensors) {
        int64_t n = 1;
        for (int64_t d : t.shape) n *= d;
        st.n_params += n;
        int64_t rows = n / t.shape.back();
        st.bytes_out += row_bytes(t.dtype, t.shape.back()) * static_cast<size_t>(rows);
    }
    std::shared_ptr<Progress> progress;
    if (info.progress) progress = std::make_shared<Progress>(label, static_cast<double>(st.n_params), "params");
    auto done = std::make_shared<size_t>(0);
    auto idx = std::make_shared<size_t>(0);
    const size_t n_tensors = tensors.size();
    for (auto& t : tensors) {
        const int64_t cols = t.shape.back();
        int64_t rows = 1;
        for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
        LF_ASSERT(kernels::can_quantize_weights(t.dtype));
        if (cols % dtype_info(t.dtype).block_size != 0)
            fail("%s: %s: row length %lld is not a multiple of %s's block of %d", label, t.name.c_str(), (long long)cols,
                 dtype_name(t.dtype), dtype_info(t.dtype).block_size);
        const size_t rb = row_bytes(t.dtype, cols);
        const bool copy = t.source.defined() && t.source.dtype() == t.dtype;
        w.add_tensor(t.name, t.dtype, t.shape,
                     [=, row = t.row, name = t.name, src = t.source, imp = t.importance, dt = t.dtype](uint8_t* dst,
                                                                                                         size_t nbytes) {
                         LF_ASSERT(nbytes == rb * static_cast<size_t>(rows));
                         if (copy) {
                             // Already in the chosen type: the bytes as they are.
                             for (int64_t r = 0; r < rows; ++r) std::memcpy(dst + r * rb, src.row(r), rb);
                         } else {
                             // Blocks of rows of at least 16K values per task (llama.cpp's chunk),
                             // so small rows do not pay a dispatch each.
                             const int64_t grain = std::max<int64_t>(1, 16384 / cols);
                             const float* im = imp ? imp->data() : nullptr;
                             // Routed experts (E, rows, cols): E x cols importances, expert e's
                             // rows quantised with its own (llama-quantize's imatrix + e·cols).
                             const int64_t n_mat = imp ? static_cast<int64_t>(imp->size()) / cols : 1;
                             LF_ASSERT(!imp || (n_mat >= 1 && rows % n_mat == 0 &&
                                                static_cast<int64_t>(imp->size()) == n_mat * cols));
                             const int64_t per_mat = rows / n_mat;
                             std::mutex mu;
                             std::string error;  // the first failure (a worker must not throw)
                             pool->run_range(rows, grain, [&](int64_t b, int64_t e) {
                                 thread_local std::vector<float> buf;
                                 buf.resize(static_cast<size_t>((e - b) * cols));
                                 try {
                                     for (int64_t r = b; r < e; ++r) row(r, buf.data() + (r - b) * cols);
                                     for (int64_t r0 = b; r0 < e;) {
                                         const int64_t r1 = std::min(e, (r0 / per_mat + 1) * per_mat);
                                         kernels::quantize_weights(dt, buf.data() + (r0 - b) * cols, dst + r0 * rb,
                                                                   r1 - r0, cols, im ? im + (r0 / per_mat) * cols : nullptr);
                                         r0 = r1;
                                     }
                                 } catch (const std::exception& ex) {
                                     std::lock_guard<std::mutex> lk(mu);
                                     if (error.empty()) error = ex.what();
                                 }
                             });
                             if (!error.empty()) fail("%s: %s (%s): %s", label, name.c_str(), dtype_name(dt), error.c_str());
                         }
                         *done += static_cast<size_t>(rows * cols);
                         ++*idx;
                         if (progress)
                             progress->update(static_cast<double>(*done),
                                              strfmt("tensor %zu/%zu %s", *idx, n_tensors, name.c_str()));
                     });
    }
    w.write(path);
    std::fprintf(stderr, "%s: wrote %s (%zu tensors)\n", label, path.c_str(), n_tensors);
    return st;
}

std::vector<ExportTensor> model_export_tensors(const ModelFiles& files, ModelConfig& cfg, bool to_interleaved,
                                               DType requested, const ReplacedTensors& replaced, const char* label) {
    std::vector<ExportTensor> tensors = model_export_rows(files, cfg, to_interleaved, replaced);
    for (ExportTensor& e : tensors) {
        std::string note;
        e.dtype = export_dtype(e.name, e.shape, requested, &note);
        if (!note.empty()) std::fprintf(stderr, "%s: note: %s\n", label, note.c_str());
    }
    return tensors;
}

std::vector<ExportTensor> model_export_rows(const ModelFiles& files, ModelConfig& cfg, bool to_interleaved,
                                            const ReplacedTensors& replaced) {
    const Arch& arch = arch_of(cfg.arch, files.path);
    const bool permute_qk = cfg.rope_interleaved != to_interleaved;
    std::map<std::string, bool> rope_rows;  // GGUF name -> rows follow the RoPE pair order
    for (const NamedSpec& ns : tensor_list(arch, cfg, true)) rope_rows[ns.name] = ns.spec->rope_rows;
    cfg.rope_interleaved = to_interleaved;
    const auto& kt = kernels::kernels();
    const int64_t D = cfg.head_dim;
    std::vector<ExportTensor> tensors;
    for (const auto& [name, t] : files.tensors) {
        ExportTensor e;
        e.name = name;
        e.shape = t.shape();
        e.dtype = t.dtype();
        const int64_t cols = t.shape().back();
        const bool permute = permute_qk && rope_rows[name];
        auto rep = replaced.find(name);
        if (rep != replaced.end()) {
            std::shared_ptr<const std::vector<float>> v = rep->second;
            LF_ASSERT(static_cast<int64_t>(v->size()) == t.numel());
            if (t.ndim() == 1 && permute) {
                e.row = [v, cols, D, to_interleaved](int64_t, float* dst) {
                    for (int64_t r = 0; r < cols; ++r) dst[r] = (*v)[rope_row_source(r, D, to_interleaved)];
                };
            } else {
                e.row = [v, cols, permute, D, to_interleaved](int64_t r, float* dst) {
                    const int64_t sr = permute ? rope_row_source(r, D, to_interleaved) : r;
                    std::memcpy(dst, v->data() + sr * cols, static_cast<size_t>(cols) * sizeof(float));
                };
            }
            tensors.push_back(std::move(e));
            continue;
        }
        auto deq = kt.dequantize_row[static_cast<int>(t.dtype())];
        Tensor src = t;
        if (src.ndim() == 1 && permute) {  // a Q/K bias: each value is a row of the permutation
            e.row = [src, deq, cols, D, to_interleaved](int64_t, float* dst) {
                std::vector<float> tmp(static_cast<size_t>(cols));
                deq(src.data(), tmp.data(), cols);
                for (int64_t r = 0; r < cols; ++r) dst[r] = tmp[rope_row_source(r, D, to_interleaved)];
            };
        } else {
            if (!permute) e.source = src;
            e.row = [src, deq, cols, permute, D, to_interleaved](int64_t r, float* dst) {
                if (src.ndim() == 1) {
                    deq(src.data(), dst, cols);
                } else {
                    deq(src.row(permute ? rope_row_source(r, D, to_interleaved) : r), dst, cols);
                }
            };
        }
        tensors.push_back(std::move(e));
    }
    return tensors;
}

void export_hf_folder(const std::string& dir, const ModelConfig& cfg, DType requested,
                      std::vector<ExportTensor> tensors, const std::vector<std::string>& extra_files,
                      int n_threads, const char* label) {
    namespace fs = std::filesystem;
    if (requested != DType::F32 && requested != DType::F16 && requested != DType::BF16)
        fail("%s: --type %s: a Hugging Face folder holds f32, f16 or bf16 tensors (hint: write a .gguf to quantise)",
             label, dtype_name(requested));
    LF_ASSERT(!cfg.rope_interleaved);
    const Arch& arch = arch_of(cfg.arch, dir);
    std::error_code ec;
    if (fs::exists(dir, ec) && !fs::is_directory(dir, ec))
        fail("%s: %s exists and is not a folder (hint: a Hugging Face model is written as a folder; name a .gguf "
             "for one file)", label, dir.c_str());
    fs::create_directories(dir, ec);
    if (ec) fail("%s: cannot create the folder %s (%s)", label, dir.c_str(), ec.message().c_str());

    const auto& kt = kernels::kernels();
    ThreadPool pool(n_threads > 0 ? n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    std::vector<std::vector<uint8_t>> bufs;  // the writer borrows them until write()
    bufs.reserve(tensors.size());
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    for (ExportTensor& t : tensors) {
        const std::string hf = gguf_to_hf_name(arch, t.name, &cfg);
        if (hf.empty()) {
            std::fprintf(stderr, "%s: note: %s has no Hugging Face name (config.json carries it); left out\n", label,
                         t.name.c_str());
            continue;
        }
        const DType dt = requested;
        const int64_t cols = t.shape.back();
        int64_t rows = 1;
        for (size_t i = 0; i + 1 < t.shape.size(); ++i) rows *= t.shape[i];
        const size_t rb = row_bytes(dt, cols);
        auto quant = kt.quantize_row[static_cast<int>(dt)];
        if (dt != DType::F32) LF_ASSERT(quant != nullptr);
        bufs.emplace_back(rb * static_cast<size_t>(rows));
        uint8_t* dst = bufs.back().data();
        std::vector<std::vector<float>> tmp(pool.size(), std::vector<float>(static_cast<size_t>(cols)));
        pool.run(rows, [&](int64_t r, int tid) {
            float* f = tmp[tid].data();
            t.row(r, f);
            if (quant) {
                quant(f, dst + r * rb, cols);
            } else {
                std::memcpy(dst + r * rb, f, rb);
            }
        });
        if (hf.find('*') != std::string::npos) {  // routed experts: one HF matrix each
            LF_ASSERT(t.shape.size() == 3);
            const size_t per = bufs.back().size() / static_cast<size_t>(t.shape[0]);
            for (int64_t e = 0; e < t.shape[0]; ++e)
                w.add_tensor(hf_expert_name(hf, e), dt, {t.shape[1], t.shape[2]}, dst + e * per, per);
        } else {
            w.add_tensor(hf, dt, t.shape, dst, bufs.back().size());
        }
    }
    w.write((fs::path(dir) / "model.safetensors").string());
    {
        AtomicFile f((fs::path(dir) / "config.json").string());
        const std::string text = hf_config_write(cfg);
        f.write(text.data(), text.size());
        f.commit();
    }
    for (const std::string& src : extra_files) {
        const std::string text = read_file(src, "tokenizer file");
        AtomicFile f((fs::path(dir) / fs::path(src).filename()).string());
        f.write(text.data(), text.size());
        f.commit();
    }
    std::fprintf(stderr, "%s: wrote %s (%zu tensors, %s)\n", label, dir.c_str(), w.n_tensors(), dtype_name(requested));
}

std::string lora_site_gguf_name(const Arch& arch, const LoraSite& s) {
    const TensorSpec* spec = arch.find_slot(s.w.slot);
    LF_ASSERT(spec != nullptr);
    return spec->gguf_name(s.w.layer);
}

void export_lora_gguf(const std::string& path, const Adapter& ad, const ModelConfig& base, DType type,
                      const char* label) {
    if (ad.cfg.type != PeftType::kLora)
        fail("%s: %s is a prompt-tuning adapter; GGUF adapters (llama.cpp --lora) are LoRA only (hint: run it with "
             "llmforge's --adapter)", label, ad.path.c_str());
    if (type != DType::F32 && type != DType::F16 && type != DType::BF16)
        fail("%s: --type %s for a LoRA adapter, expected f32, f16 or bf16", label, dtype_name(type));
    const Arch& arch = arch_of(base.arch, ad.path);
    const bool interleave = arch.gguf_rope_interleaved;
    const int64_t D = base.head_dim;
    GgufWriter w;
    w.set("general.architecture", base.arch);
    w.set("general.type", "adapter");
    const std::string name = std::filesystem::path(ad.path).filename().string();
    if (!name.empty()) w.set("general.name", name);
    w.set("adapter.type", "lora");
    // llama.cpp: scale = alpha / r (no rsLoRA): alpha·sqrt(r) / r = alpha / sqrt(r).
    const double alpha = ad.cfg.use_rslora ? ad.cfg.alpha * std::sqrt(static_cast<double>(ad.cfg.r)) : ad.cfg.alpha;
    w.set("adapter.lora.alpha", static_cast<float>(alpha));
    const auto quant = kernels::kernels().quantize_row[static_cast<int>(type)];
    if (type != DType::F32) LF_ASSERT(quant != nullptr);
    auto add = [&](const std::string& tname, std::vector<int64_t> shape, std::vector<float> values) {
        auto v = std::make_shared<std::vector<float>>(std::move(values));
        const int64_t cols = shape.back(), rows = static_cast<int64_t>(v->size()) / cols;
        const size_t rb = row_bytes(type, cols);
        w.add_tensor(tname, type, std::move(shape), [v, cols, rows, rb, quant](uint8_t* dst, size_t nbytes) {
            LF_ASSERT(nbytes == rb * static_cast<size_t>(rows));
            for (int64_t r = 0; r < rows; ++r) {
                if (quant) {
                    quant(v->data() + r * cols, dst + r * rb, cols);
                } else {
                    std::memcpy(dst + r * rb, v->data() + r * cols, rb);
                }
            }
        });
    };
    // Routed experts: llama.cpp stacks the experts' pairs like their weights, lora_a (E, r, in) and
    // lora_b (E, out, r) (its convert_lora_to_gguf.py; llm_build_lora_mm_id reads them per expert);
    // an expert the adapter leaves out gets zeros.
    struct Stack {
        const LoraSite* site;
        int64_t r;
        std::vector<float> a, b;
    };
    std::map<std::string, Stack> stacks;
    const int64_t E = base.ds.n_routed_experts;
    for (const LoraPair& p : ad.lora) {
        const std::string base_name = lora_site_gguf_name(arch, p.site);
        if (p.site.expert >= 0) {
            Stack& st = stacks[base_name];
            if (st.a.empty()) {
                st = Stack{&p.site, p.r, std::vector<float>(static_cast<size_t>(E * p.r * p.site.in)),
                           std::vector<float>(static_cast<size_t>(E * p.site.out * p.r))};
            }
            std::copy(p.a.begin(), p.a.end(), st.a.begin() + p.site.expert * p.r * p.site.in);
            std::copy(p.b.begin(), p.b.end(), st.b.begin() + p.site.expert * p.site.out * p.r);
            continue;
        }
        std::vector<float> b = p.b;
        if (p.site.rope_rows && interleave) permute_rope_rows(p.b.data(), b.data(), p.site.out, p.r, D, true);
        add(base_name + ".lora_a", {p.r, p.site.in}, p.a);
        add(base_name + ".lora_b", {p.site.out, p.r}, std::move(b));
    }
    for (auto& [base_name, st] : stacks) {
        add(base_name + ".lora_a", {E, st.r, st.site->in}, std::move(st.a));
        add(base_name + ".lora_b", {E, st.site->out, st.r}, std::move(st.b));
    }
    w.write(path);
    // llama.cpp (c392e5094) multiplies deepseek2's q / q_a / q_b / kv_a / kv_b with plain
    // ggml_mul_mat, no LoRA: measured, such pairs change nothing there.
    if (base.arch == "deepseek2") {
        int64_t ignored = 0;
        for (const LoraPair& p : ad.lora)
            ignored += p.site.module.find(".self_attn.") != std::string::npos && p.site.short_name != "o_proj";
        if (ignored > 0)
            std::fprintf(stderr, "%s: note: llama.cpp applies no LoRA to deepseek2's q/q_a/q_b/kv_a/kv_b projections, so "
                                 "%lld of these pairs have no effect there (hint: merge them into the model with "
                                 "`llmforge merge-adapter`)\n", label, (long long)ignored);
    }
    std::fprintf(stderr, "%s: wrote %s (LoRA adapter for %s: %zu modules, r %lld, alpha %g, %s)\n", label,
                 path.c_str(), base.arch.c_str(), ad.lora.size(), (long long)ad.cfg.r, alpha, dtype_name(type));
}

}  // namespace llmforge::cli
