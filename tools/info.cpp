// llmforge info -m MODEL: architecture, shapes, dtypes and parameter count.
#include <cstdio>
#include <map>

#include "commands.h"
#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "model/model.h"

namespace llmforge::cli {

void add_info(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("info", "Print a model's architecture, shapes, dtypes and size");
    static std::string model, tokenizer;
    static bool tensors = false;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer file (llama2.c tok*.bin or GGUF)");
    sub->add_flag("--tensors", tensors, "list every tensor");
    run = [] {
        auto m = Model::load(model, tokenizer);
        const ModelConfig& c = m->config();
        std::map<std::string, int64_t> by_type;
        for (const auto& [name, t] : m->files().tensors) by_type[dtype_name(t.dtype())] += t.numel();
        std::printf("file:            %s (%s)\n", model.c_str(), m->files().format.c_str());
        std::printf("architecture:    %s%s\n", c.arch.c_str(), c.name.empty() ? "" : (" (" + c.name + ")").c_str());
        std::printf("layers:          %lld\n", (long long)c.n_layer);
        std::printf("embedding:       %lld\n", (long long)c.n_embd);
        std::printf("heads:           %lld (kv %lld, head dim %lld)\n", (long long)c.n_head,
                    (long long)c.n_head_kv, (long long)c.head_dim);
        std::printf("ffn:             %lld\n", (long long)c.n_ff);
        std::printf("vocab:           %lld (tokenizer: %s, %zu tokens)\n", (long long)c.n_vocab,
                    m->vocab().model.empty() ? "none" : m->vocab().model.c_str(), m->vocab().tokens.size());
        std::printf("context:         %lld\n", (long long)c.n_ctx_train);
        std::printf("rope:            theta %g, %s%s\n", c.rope_theta,
                    c.rope_interleaved ? "interleaved pairs" : "rotate-half",
                    c.rope_scaling == RopeScaling::kNone ? "" : strfmt(", scaling x%g", c.rope_factor).c_str());
        std::printf("rms eps:         %g\n", c.rms_eps);
        std::printf("tied embeddings: %s\n", c.tied_embeddings ? "yes" : "no");
        std::printf("parameters:      %lld (%.2f M)\n", (long long)m->n_params(), m->n_params() / 1e6);
        std::printf("weights:         %.2f MiB\n", m->weight_bytes() / 1048576.0);
        for (const auto& [t, n] : by_type) std::printf("  %-6s %lld params\n", t.c_str(), (long long)n);
        std::printf("kernels:         %s\n", kernels::isa_name(kernels::kernels().isa));
        if (tensors) {
            for (const auto& [name, t] : m->files().tensors)
                std::printf("  %-32s %-6s %s\n", name.c_str(), dtype_name(t.dtype()), t.shape_str().c_str());
        }
        return 0;
    };
}

}  // namespace llmforge::cli
