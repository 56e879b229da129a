// Llama (Llama 2/3, DeepSeek-LLM, DeepSeek-Coder v1, llama2.c): the family's block with no
// biases unless attention_bias, interleaved-pair RoPE in GGUF files (llama.cpp's converter
// permutes Q/K rows), rotate-half in Hugging Face folders.
#include "model/arch/llama.h"

#include <cmath>

#include "core/error.h"

namespace llmforge {
namespace llama_family {

namespace {

using Shape = std::vector<int64_t>;
Shape s_vocab(const ModelConfig& c, int64_t) { return {c.n_vocab, c.n_embd}; }
Shape s_embd(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_rope(const ModelConfig& c, int64_t) { return {c.head_dim / 2}; }
Shape s_q(const ModelConfig& c, int64_t) { return {c.n_head * c.head_dim, c.n_embd}; }
Shape s_kv(const ModelConfig& c, int64_t) { return {c.n_head_kv * c.head_dim, c.n_embd}; }
Shape s_v(const ModelConfig& c, int64_t) { return {c.n_head_kv * c.v_dim(), c.n_embd}; }
Shape s_bq(const ModelConfig& c, int64_t) { return {c.n_head * c.head_dim}; }
Shape s_bk(const ModelConfig& c, int64_t) { return {c.n_head_kv * c.head_dim}; }
Shape s_bv(const ModelConfig& c, int64_t) { return {c.n_head_kv * c.v_dim()}; }
Shape s_head(const ModelConfig& c, int64_t) { return {c.head_dim}; }
Shape s_o(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_head * c.v_dim()}; }
Shape s_up(const ModelConfig& c, int64_t l) { return {c.ff_at(l), c.n_embd}; }
Shape s_down(const ModelConfig& c, int64_t l) { return {c.n_embd, c.ff_at(l)}; }
bool untied(const ModelConfig& c, int64_t) { return !c.tied_embeddings; }
bool biased(const ModelConfig& c, int64_t) { return c.qkv_bias; }

}  // namespace

std::vector<TensorSpec> tensor_table(bool qk_norm) {
    using U = TensorUse;
    std::vector<TensorSpec> t = {
        {kTokEmbd, "token_embd.weight", "model.embed_tokens.weight", false, U::kRows, Init::kNormal, s_vocab},
        {kOutputNorm, "output_norm.weight", "model.norm.weight", false, U::kVector, Init::kOnes, s_embd},
        {kOutput, "output.weight", "lm_head.weight", false, U::kMatrix, Init::kNormal, s_vocab, untied},
        // Llama 3.1+ GGUF files carry their RoPE scaling as per-pair frequency divisors.
        {kRopeFreqs, "rope_freqs.weight", "", false, U::kVector, Init::kOnes, s_rope, nullptr, true},
        {kAttnNorm, "attn_norm.weight", "input_layernorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kWq, "attn_q.weight", "self_attn.q_proj.weight", true, U::kMatrix, Init::kNormal, s_q, nullptr, false, true},
        {kWk, "attn_k.weight", "self_attn.k_proj.weight", true, U::kMatrix, Init::kNormal, s_kv, nullptr, false, true},
        {kWv, "attn_v.weight", "self_attn.v_proj.weight", true, U::kMatrix, Init::kNormal, s_v},
        {kBq, "attn_q.bias", "self_attn.q_proj.bias", true, U::kVector, Init::kZeros, s_bq, biased, false, true},
        {kBk, "attn_k.bias", "self_attn.k_proj.bias", true, U::kVector, Init::kZeros, s_bk, biased, false, true},
        {kBv, "attn_v.bias", "self_attn.v_proj.bias", true, U::kVector, Init::kZeros, s_bv, biased},
        {kWo, "attn_output.weight", "self_attn.o_proj.weight", true, U::kMatrix, Init::kResidualOut, s_o},
        {kFfnNorm, "ffn_norm.weight", "post_attention_layernorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kGate, "ffn_gate.weight", "mlp.gate_proj.weight", true, U::kMatrix, Init::kNormal, s_up},
        {kUp, "ffn_up.weight", "mlp.up_proj.weight", true, U::kMatrix, Init::kNormal, s_up},
        {kDown, "ffn_down.weight", "mlp.down_proj.weight", true, U::kMatrix, Init::kResidualOut, s_down},
    };
    if (qk_norm) {
        t.push_back({kQNorm, "attn_q_norm.weight", "self_attn.q_norm.weight", true, U::kVector, Init::kOnes, s_head});
        t.push_back({kKNorm, "attn_k_norm.weight", "self_attn.k_norm.weight", true, U::kVector, Init::kOnes, s_head});
    }
    return t;
}

void validate(const ModelConfig& c, const std::string& where) {
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_ff <= 0 ||
        c.n_vocab <= 0 || c.head_dim <= 0 || c.head_dim % 2 != 0 || c.head_dim_v < 0) {
        fail("%s: bad hyper-parameters: dim %lld, layers %lld, heads %lld, kv heads %lld, ffn %lld, "
             "vocab %lld, head_dim %lld (expected all > 0 and an even head_dim)",
             where.c_str(), (long long)c.n_embd, (long long)c.n_layer, (long long)c.n_head,
             (long long)c.n_head_kv, (long long)c.n_ff, (long long)c.n_vocab, (long long)c.head_dim);
    }
    if (c.n_head % c.n_head_kv != 0) {
        fail("%s: %lld attention heads are not a multiple of %lld kv heads (grouped-query attention "
             "needs n_head %% n_head_kv == 0)",
             where.c_str(), (long long)c.n_head, (long long)c.n_head_kv);
    }
    auto per_layer = [&](const std::vector<int64_t>& v, const char* what, int64_t lo) {
        if (v.empty()) return;
        if (static_cast<int64_t>(v.size()) != c.n_layer) {
            fail("%s: %s has %zu entries, expected one per layer (%lld)", where.c_str(), what, v.size(),
                 (long long)c.n_layer);
        }
        for (size_t l = 0; l < v.size(); ++l)
            if (v[l] < lo) fail("%s: %s[%zu] is %lld, expected >= %lld", where.c_str(), what, l, (long long)v[l], (long long)lo);
    };
    if (c.n_rot != 0 && c.n_rot != c.head_dim) {
        fail("%s: rope.dimension_count is %lld but the head dimension is %lld: partial rotary embeddings are not "
             "supported for %s",
             where.c_str(), (long long)c.n_rot, (long long)c.head_dim, c.arch.c_str());
    }
    per_layer(c.layer_n_ff, "per-layer FFN width", 1);
    per_layer(c.layer_window, "per-layer sliding window", 0);
    if (c.sliding_window < 0) fail("%s: sliding window is %lld, expected >= 0 (0: none)", where.c_str(), (long long)c.sliding_window);
}

Act embed(Ops& o, const ModelConfig&) { return o.embed(Weight{-1, kTokEmbd}); }

Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    auto W = [l](int slot) { return Weight{l, slot}; };
    // Attention branch: norm, Q/K/V (+ biases), per-head q/k norms (Qwen3), RoPE, attention.
    Act x = o.rmsnorm(h, W(kAttnNorm), c.rms_eps);
    const Weight wqkv[3] = {W(kWq), W(kWk), W(kWv)};
    const Weight bqkv[3] = {W(kBq), W(kBk), W(kBv)};
    Act qkv[3];
    o.linear(x, wqkv, bqkv, 3, qkv);
    Act q = qkv[0], k = qkv[1];
    if (o.has(W(kQNorm))) {
        q = o.head_rmsnorm(q, W(kQNorm), c.head_dim, c.rms_eps);
        k = o.head_rmsnorm(k, W(kKNorm), c.head_dim, c.rms_eps);
    }
    q = o.rope(q, c.head_dim);
    k = o.rope(k, c.head_dim);
    const AttentionSpec spec{c.n_head, c.n_head_kv, c.head_dim, c.v_dim(), c.window_at(l),
                             1.0f / std::sqrt(static_cast<float>(c.head_dim)), c.attention_lsh ? &c.lsh : nullptr};
    Act a = o.attention(l, q, k, qkv[2], spec);
    h = o.residual(l, 0, h, o.linear(a, W(kWo)));
    // Feed-forward branch.
    x = o.rmsnorm(h, W(kFfnNorm), c.rms_eps);
    return o.residual(l, 1, h, o.linear(o.swiglu(x, W(kGate), W(kUp)), W(kDown)));
}

Act head(Ops& o, const ModelConfig& c, Act h) {
    h = o.rmsnorm(o.output_rows(h), Weight{-1, kOutputNorm}, c.rms_eps);
    o.observe("final_norm", h);
    return o.logits(h, Weight{-1, c.tied_embeddings ? kTokEmbd : kOutput});
}

}  // namespace llama_family

namespace {

void llama_configure(ModelConfig& c, const ConfigSource& src) {
    if (!src.is_gguf()) c.qkv_bias = src.boolean("attention_bias", nullptr).value_or(false);
}
void llama_write_keys(const ModelConfig& c, ConfigSink& sink) { sink.boolean("attention_bias", nullptr, c.qkv_bias); }

}  // namespace

extern const Arch kLlamaArch = {
    "llama", {"llama"}, "LlamaForCausalLM", true, false, llama_family::tensor_table(false), llama_family::kNumSlots,
    llama_configure, llama_write_keys, llama_family::validate,
    llama_family::embed, llama_family::layer, llama_family::head,
};

}  // namespace llmforge
