// llmforge info -m MODEL: architecture, shapes, dtypes, parameter count and KV cache bytes per
// token. For DeepSeek-V2/V3 (deepseek2) also its style, the MLA dimensions, the experts, the
// parameters a token activates, and the compressed latent cache against plain multi-head
// attention of the same shape.
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "model/kv_cache.h"
#include "model/model.h"

namespace llmforge::cli {

namespace {

// Bytes of `n` values of a KV type as a rate (a quantised type's block overhead spread evenly):
// what plain MHA would take, whose head need not tile the type's blocks.
double kv_value_bytes(DType t, int64_t n) {
    const DTypeInfo& i = dtype_info(t);
    return static_cast<double>(n) * i.type_size / i.block_size;
}

std::string kib(double bytes) { return strfmt("%.0f B (%.2f KiB)", bytes, bytes / 1024.0); }

// Layer index of a "blk.<l>." tensor name, -1 otherwise.
int64_t block_of(const std::string& name) {
    if (name.rfind("blk.", 0) != 0) return -1;
    return std::strtoll(name.c_str() + 4, nullptr, 10);
}

bool ends_with(const std::string& s, const char* t) {
    const std::string suffix(t);
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The DeepSeek part: style, MLA, experts, parameters a token activates.
void print_deepseek(const Model& m) {
    const ModelConfig& c = m.config();
    const DeepSeekConfig& d = c.ds;
    const bool sigmoid = d.gating == MoeGating::kSigmoid;
    const char* style = sigmoid ? "V3" : (d.q_lora_rank > 0 ? "V2" : "V2-Lite");
    std::printf("deepseek style:  %s (%s, %s scoring%s%s)\n", style,
                d.q_lora_rank > 0 ? strfmt("q_lora_rank %lld", (long long)d.q_lora_rank).c_str()
                                  : "queries without q_lora",
                sigmoid ? "sigmoid" : "softmax", sigmoid ? " + selection bias" : "",
                d.n_group > 1 ? strfmt(", group-limited %lld of %lld groups", (long long)d.topk_group,
                                       (long long)d.n_group).c_str()
                              : "");
    std::printf("mla:             kv_lora_rank %lld, q_lora_rank %lld, qk head %lld (nope %lld + rope %lld), "
                "v head %lld\n",
                (long long)d.kv_lora_rank, (long long)d.q_lora_rank, (long long)c.head_dim,
                (long long)d.qk_nope_head_dim, (long long)d.qk_rope_head_dim, (long long)c.v_dim());
    if (d.n_routed_experts > 0) {
        std::printf("experts:         %lld routed (%lld used per token), %lld shared, expert ffn %lld; "
                    "%lld leading dense layer%s (ffn %lld)\n",
                    (long long)d.n_routed_experts, (long long)d.n_experts_used, (long long)d.n_shared_experts,
                    (long long)d.moe_ff, (long long)d.first_k_dense, d.first_k_dense == 1 ? "" : "s",
                    (long long)c.n_ff);
        std::printf("routing:         %s, groups %lld (use %lld), scale %g, weights %s\n",
                    sigmoid ? "sigmoid + e_score_correction_bias (noaux_tc)" : "softmax", (long long)d.n_group,
                    (long long)d.topk_group, d.routed_scaling, d.norm_topk_prob ? "normalised" : "not normalised");
    } else {
        std::printf("experts:         none (dense)\n");
    }
    if (d.n_mtp > 0) std::printf("mtp:             %lld multi-token-prediction module(s)\n", (long long)d.n_mtp);
    // Active per token: every tensor of the main layers and the head, the routed experts' share
    // n_used / n_routed; MTP blocks are not run by plain decoding.
    double active = 0, active_bytes = 0;
    for (const auto& [name, t] : m.files().tensors) {
        if (block_of(name) >= c.n_layer) continue;
        double share = 1.0;
        if (ends_with(name, "_exps.weight") && d.n_routed_experts > 0)
            share = static_cast<double>(d.n_experts_used) / static_cast<double>(d.n_routed_experts);
        active += share * static_cast<double>(t.numel());
        active_bytes += share * static_cast<double>(t.nbytes());
    }
    std::printf("active/token:    %.0f params (%.2f M, %.1f%% of %.2f M; embeddings counted, unused routed experts%s "
                "not), %.2f MiB of weights\n",
                active, active / 1e6, 100.0 * active / static_cast<double>(m.n_params()), m.n_params() / 1e6,
                d.n_mtp > 0 ? " and MTP blocks" : "", active_bytes / 1048576.0);
}

// KV bytes per token: the engine's memory as allocated, and for MLA against plain MHA of the
// same heads (n_layer * n_head * (qk head + v head) values).
void print_kv(const Model& m, const std::vector<KvTypes>& types) {
    const ModelConfig& c = m.config();
    const bool mla = c.ds.kv_lora_rank > 0;
    if (mla) {
        const int64_t w = c.ds.kv_lora_rank + c.ds.qk_rope_head_dim;
        std::printf("kv cache:        MLA latent: per layer and token one row of %lld values (kv_lora_rank %lld + "
                    "rope %lld), %lld layers; --cache-type-k sets its type\n",
                    (long long)w, (long long)c.ds.kv_lora_rank, (long long)c.ds.qk_rope_head_dim,
                    (long long)c.n_layer);
    } else {
        std::printf("kv cache:        per layer and token K (%lld heads x %lld) and V (%lld heads x %lld), %lld layers\n",
                    (long long)c.n_head_kv, (long long)c.head_dim, (long long)c.n_head_kv, (long long)c.v_dim(),
                    (long long)c.n_layer);
    }
    for (const KvTypes& kv : types) {
        const std::string name = mla ? dtype_name(kv.k) : kv_types_name(kv);
        std::unique_ptr<KvMemory> mem;
        try {
            mem = m.new_memory(1, kv);
        } catch (const Error& e) {
            std::printf("  kv %-13s not possible: %s\n", name.c_str(), e.what());
            continue;
        }
        if (!mla) {
            std::printf("  kv %-13s %s per token\n", name.c_str(), kib(mem->bytes_per_position()).c_str());
            continue;
        }
        const int64_t w = c.ds.kv_lora_rank + c.ds.qk_rope_head_dim;
        const double latent = static_cast<double>(c.n_layer) * static_cast<double>(row_bytes(kv.k, w));
        const double mha = static_cast<double>(c.n_layer) * kv_value_bytes(kv.k, c.n_head * (c.head_dim + c.v_dim()));
        std::printf("  kv %-13s %s per token; plain MHA (%lld layers x %lld heads x (%lld + %lld)) %s: %.1fx smaller\n",
                    name.c_str(), kib(latent).c_str(), (long long)c.n_layer, (long long)c.n_head,
                    (long long)c.head_dim, (long long)c.v_dim(), kib(mha).c_str(), mha / latent);
        if (mem->bytes_per_position() != static_cast<size_t>(latent)) {
            std::printf("  %-16s %s per token allocated (with the MTP modules' rows)\n", "",
                        kib(static_cast<double>(mem->bytes_per_position())).c_str());
        }
    }
}

}  // namespace

void add_info(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("info", "Print a model's architecture, shapes, dtypes, size and KV bytes per token");
    static std::string model, tokenizer, cache_k, cache_v;
    static bool tensors = false;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer file (llama2.c tok*.bin or GGUF)");
    sub->add_flag("--tensors", tensors, "list every tensor");
    sub->add_option("--cache-type-k", cache_k, "also show the KV bytes per token with keys (MLA: the latent) as "
                                               "f32, f16, q8_0 or q4_0");
    sub->add_option("--cache-type-v", cache_v, "... and values as f32, f16, q8_0 or q4_0 (not used by MLA)");
    run = [] {
        std::vector<KvTypes> kv_types{KvTypes{}};
        if (!cache_k.empty() || !cache_v.empty()) {
            KvTypes t;
            if (!cache_k.empty()) t.k = parse_kv_type(cache_k, "--cache-type-k");
            if (!cache_v.empty()) t.v = parse_kv_type(cache_v, "--cache-type-v");
            if (!t.is_f32()) kv_types.push_back(t);
        }
        auto m = Model::load(model, tokenizer);
        const ModelConfig& c = m->config();
        std::map<std::string, int64_t> by_type;
        for (const auto& [name, t] : m->files().tensors) by_type[dtype_name(t.dtype())] += t.numel();
        std::printf("file:            %s (%s)\n", model.c_str(), m->files().format.c_str());
        std::printf("architecture:    %s%s\n", c.arch.c_str(), c.name.empty() ? "" : (" (" + c.name + ")").c_str());
        if (c.ds.kv_lora_rank > 0) print_deepseek(*m);
        std::printf("layers:          %lld\n", (long long)c.n_layer);
        std::printf("embedding:       %lld\n", (long long)c.n_embd);
        std::printf("heads:           %lld (kv %lld, head dim %lld%s)\n", (long long)c.n_head,
                    (long long)c.n_head_kv, (long long)c.head_dim,
                    c.v_dim() != c.head_dim ? strfmt(", value head dim %lld", (long long)c.v_dim()).c_str() : "");
        std::printf("ffn:             %lld\n", (long long)c.n_ff);
        std::printf("vocab:           %lld (tokenizer: %s, %zu tokens)\n", (long long)c.n_vocab,
                    m->vocab().model.empty() ? "none" : m->vocab().model.c_str(), m->vocab().tokens.size());
        std::printf("context:         %lld\n", (long long)c.n_ctx_train);
        std::printf("rope:            theta %g, %s%s%s\n", c.rope_theta,
                    c.rope_interleaved ? "interleaved pairs" : "rotate-half",
                    c.rot_dim() != c.head_dim ? strfmt(", %lld of %lld dims rotate", (long long)c.rot_dim(),
                                                       (long long)c.head_dim).c_str()
                                              : "",
                    c.rope_scaling == RopeScaling::kNone
                        ? ""
                        : strfmt(", %s scaling x%g",
                                 c.rope_scaling == RopeScaling::kYarn     ? "yarn"
                                 : c.rope_scaling == RopeScaling::kLlama3 ? "llama3"
                                                                          : "linear",
                                 c.rope_factor).c_str());
        std::printf("attention:       %s\n", c.attention_lsh ? c.lsh.describe().c_str() : "dense");
        std::printf("rms eps:         %g\n", c.rms_eps);
        std::printf("tied embeddings: %s\n", c.tied_embeddings ? "yes" : "no");
        std::printf("parameters:      %lld (%.2f M)\n", (long long)m->n_params(), m->n_params() / 1e6);
        std::printf("weights:         %.2f MiB\n", m->weight_bytes() / 1048576.0);
        for (const auto& [t, n] : by_type) std::printf("  %-6s %lld params\n", t.c_str(), (long long)n);
        print_kv(*m, kv_types);
        std::printf("kernels:         %s\n", kernels::isa_name(kernels::kernels().isa));
        if (tensors) {
            for (const auto& [name, t] : m->files().tensors)
                std::printf("  %-32s %-6s %s\n", name.c_str(), dtype_name(t.dtype()), t.shape_str().c_str());
        }
        return 0;
    };
}

}  // namespace llmforge::cli
