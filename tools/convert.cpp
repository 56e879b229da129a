// llmforge convert -m IN [--tokenizer FILE] -o OUT.gguf [--type T]: any readable format to GGUF;
// -o DIR (a name not ending in ".gguf"): a Hugging Face folder (config.json + model.safetensors in
// f32 / f16 / bf16, the input folder's tokenizer files copied; a GGUF's vocabulary is not written).
// Hugging Face llama checkpoints get llama.cpp's Q/K row permutation (rotate-half -> interleaved
// pairs), so the file means the same to llama.cpp as to us.
//
// llmforge convert --adapter DIR [-m BASE] -o A.gguf [--type f32|f16|bf16]: a PEFT LoRA adapter as
// a GGUF LoRA adapter for llama.cpp's --lora (gguf_export.h export_lora_gguf). The base (-m, else
// adapter_config.json's base_model_name_or_path when it is a local path) checks the adapter and
// gives the architecture; only its config is read. Adapter tensors are f32 unless --type is given.
#include <cstdio>
#include <filesystem>
#include <map>
#include <vector>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "gguf_export.h"
#include "model/adapter.h"
#include "model/arch/arch.h"
#include "model/model.h"

namespace llmforge::cli {

namespace {

// The base model an adapter is checked against: -m, else the adapter's own base when local.
std::string adapter_base(const std::string& given, const std::string& adapter_dir) {
    if (!given.empty()) return given;
    const std::string cfg_path = (std::filesystem::path(adapter_dir) / "adapter_config.json").string();
    std::string base;
    try {
        const nlohmann::json j = nlohmann::json::parse(read_file(cfg_path, "adapter config"));
        if (j.is_object() && j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
            base = j["base_model_name_or_path"].get<std::string>();
    } catch (const nlohmann::json::exception&) {
        fail("%s: not valid JSON", cfg_path.c_str());
    }
    std::error_code ec;
    if (base.empty() || !std::filesystem::exists(base, ec))
        fail("convert --adapter: the base model is needed to check the adapter and name its tensors (hint: -m BASE; "
             "adapter_config.json's base_model_name_or_path '%s' is not a local path)", base.c_str());
    return base;
}

}  // namespace

void add_convert(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("convert", "Convert a model to GGUF (optionally quantising), or a LoRA adapter "
                                              "to a GGUF LoRA adapter (--adapter)");
    static std::string in, tokenizer, out, type = "f16", adapter;
    static int threads = 0;
    sub->add_option("-m,--model", in, "GGUF file, Hugging Face folder or llama2.c .bin (with --adapter: its base)");
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF) to embed");
    sub->add_option("-o,--out", out, "output .gguf, or a Hugging Face folder (any name not ending in .gguf)")->required();
    auto* type_opt = sub->add_option("--type", type, "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k..q6_k (--adapter: f32|f16|bf16, "
                                                     "default f32)")->capture_default_str();
    sub->add_option("--adapter", adapter, "PEFT LoRA adapter folder to write as a GGUF LoRA adapter (llama.cpp --lora)");
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    run = [type_opt] {
        if (!adapter.empty()) {
            const DType t = type_opt->count() > 0 ? dtype_from_name(type) : DType::F32;
            const std::string base = adapter_base(in, adapter);
            const ModelFiles files = open_model_files(base, tokenizer);
            const ModelConfig cfg = Model::validate(files);
            const Adapter ad = read_adapter(adapter, arch_of(cfg.arch, base), cfg);
            export_lora_gguf(out, ad, cfg, t, "convert");
            return 0;
        }
        if (in.empty()) fail("convert: -m MODEL is required (or --adapter DIR to convert a LoRA adapter)");
        const DType requested = dtype_from_name(type);
        ModelFiles files = open_model_files(in, tokenizer);
        // Validates shapes and config exactly as loading does.
        ModelConfig cfg = Model::validate(files);
        const Arch& arch = arch_of(cfg.arch, in);
        if (out.size() < 5 || out.compare(out.size() - 5, 5, ".gguf") != 0) {  // a Hugging Face folder
            if (requested != DType::F32 && requested != DType::F16 && requested != DType::BF16)
                fail("convert: --type %s: a Hugging Face folder holds f32, f16 or bf16 tensors (hint: name a .gguf "
                     "output to quantise)", type.c_str());
            std::vector<ExportTensor> tensors = model_export_tensors(files, cfg, false, requested, {}, "convert");
            std::vector<std::string> extra;
            std::error_code ec;
            if (std::filesystem::is_directory(in, ec)) {
                for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "generation_config.json"}) {
                    const auto p = std::filesystem::path(in) / f;
                    if (std::filesystem::is_regular_file(p, ec)) extra.push_back(p.string());
                }
            } else if (!files.vocab.empty()) {
                std::fprintf(stderr, "convert: note: the vocabulary of %s is not written to the folder (no "
                                     "tokenizer.json; hint: --tokenizer %s when converting the folder back)\n",
                             in.c_str(), in.c_str());
            }
            export_hf_folder(out, cfg, requested, std::move(tensors), extra, threads, "convert");
            return 0;
        }
        // GGUF llama stores Q/K rows in the interleaved-pair order (llama.cpp's converter).
        const bool to_interleaved = cfg.rope_interleaved || arch.gguf_rope_interleaved;
        std::vector<ExportTensor> tensors = model_export_tensors(files, cfg, to_interleaved, requested, {}, "convert");
        if (files.vocab.empty()) {
            std::fprintf(stderr, "convert: warning: %s has no tokenizer; pass --tokenizer to embed one\n",
                         in.c_str());
        }
        export_gguf(out, cfg, files.vocab, requested, std::move(tensors), threads, "convert");
        return 0;
    };
}

}  // namespace llmforge::cli
