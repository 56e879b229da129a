// llmforge convert -m IN [--tokenizer FILE] -o OUT.gguf [--type T]: any readable format to GGUF.
// Hugging Face llama checkpoints get llama.cpp's Q/K row permutation (rotate-half -> interleaved
// pairs), so the file means the same to llama.cpp as to us.
#include <cstdio>
#include <map>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "gguf_export.h"
#include "kernels/cpu/kernels.h"
#include "model/arch/arch.h"
#include "model/model.h"

namespace llmforge::cli {

void add_convert(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("convert", "Convert a model to GGUF (optionally quantising)");
    static std::string in, tokenizer, out, type = "f16";
    static int threads = 0;
    sub->add_option("-m,--model", in, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF) to embed");
    sub->add_option("-o,--out", out, "output .gguf")->required();
    sub->add_option("--type", type, "f32|f16|bf16|q8_0|q4_0|q4_k|q6_k")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    run = [] {
        const DType requested = dtype_from_name(type);
        ModelFiles files = open_model_files(in, tokenizer);
        // Validates shapes and config exactly as loading does.
        ModelConfig cfg = Model::validate(files);
        // GGUF llama stores Q/K rows in the interleaved-pair order (llama.cpp's converter).
        const Arch& arch = arch_of(cfg.arch, in);
        const bool permute_qk = !cfg.rope_interleaved && arch.gguf_rope_interleaved;
        if (permute_qk) cfg.rope_interleaved = true;
        std::map<std::string, bool> rope_rows;  // GGUF name -> rows follow the RoPE pair order
        for (const NamedSpec& ns : tensor_list(arch, cfg, true)) rope_rows[ns.name] = ns.spec->rope_rows;
        const auto& kt = kernels::kernels();
        std::vector<ExportTensor> tensors;
        for (const auto& [name, t] : files.tensors) {
            ExportTensor e;
            e.name = name;
            e.shape = t.shape();
            std::string note;
            e.dtype = export_dtype(name, e.shape, requested, &note);
            if (!note.empty()) std::fprintf(stderr, "convert: note: %s\n", note.c_str());
            const int64_t cols = t.shape().back();
            auto deq = kt.dequantize_row[static_cast<int>(t.dtype())];
            const bool permute = permute_qk && rope_rows[name];
            const int64_t D = cfg.head_dim;
            Tensor src = t;
            if (src.ndim() == 1 && permute) {  // a Q/K bias: each value is a row of the permutation
                e.row = [src, deq, cols, D](int64_t, float* dst) {
                    std::vector<float> tmp(static_cast<size_t>(cols));
                    deq(src.data(), tmp.data(), cols);
                    for (int64_t r = 0; r < cols; ++r) dst[r] = tmp[rope_row_source(r, D, true)];
                };
            } else {
                e.row = [src, deq, cols, permute, D](int64_t r, float* dst) {
                    if (src.ndim() == 1) {
                        deq(src.data(), dst, cols);
                    } else {
                        deq(src.row(permute ? rope_row_source(r, D, true) : r), dst, cols);
                    }
                };
            }
            tensors.push_back(std::move(e));
        }
        if (files.vocab.empty()) {
            std::fprintf(stderr, "convert: warning: %s has no tokenizer; pass --tokenizer to embed one\n",
                         in.c_str());
        }
        export_gguf(out, cfg, files.vocab, requested, std::move(tensors), threads, "convert");
        return 0;
    };
}

}  // namespace llmforge::cli
