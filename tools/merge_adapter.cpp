// llmforge merge-adapter -m BASE --adapter DIR[:scale]… -o OUT [--type T]: merges LoRA adapters
// into the base's weights (W += scale · alpha / r · B·A per covered module, adapters applied in the
// order given, each sum in double and rounded once: model/adapter.h merge_lora) and writes the
// merged model: a Hugging Face folder (config.json, model.safetensors, and the base folder's
// tokenizer files), or a GGUF when OUT ends in ".gguf" (Q/K rows in llama.cpp's order, the
// vocabulary embedded). --type: f32 (default: the merge loses nothing), f16, bf16; a GGUF also
// takes q8_0 | q4_0 | q4_k | q6_k.
//
// A prompt-tuning adapter is refused: it changes no weight (its virtual tokens are inputs).
#include <cstdio>
#include <filesystem>
#include <map>
#include <memory>
#include <vector>

#include "commands.h"
#include "core/error.h"
#include "gguf_export.h"
#include "kernels/cpu/kernels.h"
#include "model/adapter.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "runtime/adapters.h"

namespace llmforge::cli {

namespace {

bool ends_with(const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

}  // namespace

void add_merge_adapter(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("merge-adapter",
                                   "Merge LoRA adapters into a base model; write a Hugging Face folder or a .gguf");
    static std::string base, tokenizer, out, type = "f32";
    static std::vector<std::string> adapters;
    static int threads = 0;
    sub->add_option("-m,--model", base, "base model: GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF) for a GGUF output");
    sub->add_option("--adapter", adapters, "PEFT LoRA adapter folder, DIR or DIR:SCALE (repeatable: merged in order)")
        ->required();
    sub->add_option("-o,--out", out, "output: a folder (Hugging Face), or a file ending in .gguf")->required();
    sub->add_option("--type", type, "f32|f16|bf16 (.gguf also q8_0|q4_0|q4_1|q5_0|q5_1|q2_k..q6_k)")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    run = [] {
        const DType requested = dtype_from_name(type);
        const bool to_gguf = ends_with(out, ".gguf");
        if (!to_gguf && requested != DType::F32 && requested != DType::F16 && requested != DType::BF16)
            fail("merge-adapter: --type %s: a Hugging Face folder holds f32, f16 or bf16 tensors (hint: name a .gguf "
                 "output to quantise)", type.c_str());
        ModelFiles files = open_model_files(base, tokenizer);
        ModelConfig cfg = Model::validate(files);
        const Arch& arch = arch_of(cfg.arch, base);
        const AdapterSet ads = AdapterSet::load(adapters, arch, cfg);
        for (const AdapterSet::Entry& e : ads.entries())
            if (e.adapter.cfg.type == PeftType::kPromptTuning)
                fail("merge-adapter: %s is a prompt-tuning adapter: it has nothing to merge (its %lld virtual tokens "
                     "are inputs, not weights; hint: run it with --adapter on generate, chat or logits)",
                     e.adapter.path.c_str(), (long long)e.adapter.cfg.num_virtual_tokens);
        std::fprintf(stderr, "merge-adapter: %s + %s\n", base.c_str(), ads.describe().c_str());

        // The covered matrices in f32 (the base's row order), each adapter's terms added in turn.
        const auto& kt = kernels::kernels();
        std::map<std::string, std::shared_ptr<std::vector<float>>> merged;
        for (const AdapterSet::Entry& e : ads.entries()) {
            if (e.scale == 0.0) continue;
            const double scale = e.adapter.cfg.lora_scale() * e.scale;
            for (const LoraPair& p : e.adapter.lora) {
                const std::string name = lora_site_gguf_name(arch, p.site);
                auto& w = merged[name];
                if (!w) {  // the whole tensor (a routed expert's pair: the layer's whole stack)
                    const Tensor& t = files.tensors.at(name);
                    LF_ASSERT(t.ndim() == (p.site.expert >= 0 ? 3 : 2) && t.shape()[t.ndim() - 2] == p.site.out &&
                              t.shape().back() == p.site.in);
                    w = std::make_shared<std::vector<float>>(static_cast<size_t>(t.numel()));
                    const auto deq = kt.dequantize_row[static_cast<int>(t.dtype())];
                    for (int64_t r = 0; r < t.numel() / p.site.in; ++r) deq(t.row(r), w->data() + r * p.site.in, p.site.in);
                }
                const int64_t at = p.site.expert >= 0 ? p.site.expert * p.site.out * p.site.in : 0;
                merge_lora(p, scale, cfg.rope_interleaved, cfg.head_dim, w->data() + at);
            }
        }
        ReplacedTensors replaced;
        for (auto& [name, w] : merged) replaced[name] = w;

        if (to_gguf) {
            const bool to_interleaved = cfg.rope_interleaved || arch.gguf_rope_interleaved;
            auto tensors = model_export_tensors(files, cfg, to_interleaved, requested, replaced, "merge-adapter");
            export_gguf(out, cfg, files.vocab, requested, std::move(tensors), threads, "merge-adapter");
        } else {
            auto tensors = model_export_tensors(files, cfg, false, requested, replaced, "merge-adapter");
            // The base folder's tokenizer files go along; a GGUF / llama2.c base has none to copy.
            std::vector<std::string> extra;
            std::error_code ec;
            if (std::filesystem::is_directory(base, ec)) {
                for (const char* f : {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                      "generation_config.json"}) {
                    const auto p = std::filesystem::path(base) / f;
                    if (std::filesystem::is_regular_file(p, ec)) extra.push_back(p.string());
                }
            } else if (!files.vocab.empty()) {
                std::fprintf(stderr, "merge-adapter: note: %s is not a Hugging Face folder, so the merged folder has "
                                     "no tokenizer.json (hint: name a .gguf output, which embeds the vocabulary)\n",
                             base.c_str());
            }
            export_hf_folder(out, cfg, requested, std::move(tensors), extra, threads, "merge-adapter");
        }
        return 0;
    };
}

}  // namespace llmforge::cli
