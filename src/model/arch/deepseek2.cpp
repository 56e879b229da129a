// DeepSeek-V2 / V2-Lite / V3 (GGUF `deepseek2`, HF `deepseek_v2` / `deepseek_v3`): multi-head
// latent attention (MLA) and DeepSeekMoE (fine-grained routed experts + shared experts, after
// `first_k_dense_replace` dense layers).
//
// References read (public): DeepSeek-V3 `inference/model.py` (MLA, Gate, MoE), Hugging Face
// `modeling_deepseek.py` of deepseek-ai/DeepSeek-V2-Lite and DeepSeek-V3 (DeepseekV2Attention,
// MoEGate with greedy / group_limited_greedy / noaux_tc, yarn rotary embedding with mscale),
// and llama.cpp's GGUF names and keys (build_deepseek2, LLM_KV_* for deepseek2).
//
// RoPE: both DeepSeek codebases rotate adjacent pairs of the rope part (inference/model.py uses
// complex pairs; HF's apply_rotary_pos_emb first de-interleaves q/k and rotates halves, which is
// the same rotation with the outputs permuted identically for q and k), and GGUF files keep the
// rows as HF has them: interleaved everywhere, no permutation when converting.
#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"

namespace llmforge {

namespace {

enum Slot : int {
    kTokEmbd, kOutputNorm, kOutput,
    kAttnNorm, kWq, kWqA, kQANorm, kWqB, kWkvA, kKvANorm, kWkvB, kWo,
    kFfnNorm, kGate, kUp, kDown,
    kRouter, kExpBias, kGateExps, kUpExps, kDownExps, kGateSh, kUpSh, kDownSh,
    kEnorm, kHnorm, kEhProj, kMtpEmbd, kMtpHeadNorm, kMtpHead,
    kNumSlots
};

using Shape = std::vector<int64_t>;
int64_t qk_dim(const ModelConfig& c) { return c.ds.qk_nope_head_dim + c.ds.qk_rope_head_dim; }
Shape s_vocab(const ModelConfig& c, int64_t) { return {c.n_vocab, c.n_embd}; }
Shape s_embd(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_q(const ModelConfig& c, int64_t) { return {c.n_head * qk_dim(c), c.n_embd}; }
Shape s_qa(const ModelConfig& c, int64_t) { return {c.ds.q_lora_rank, c.n_embd}; }
Shape s_qa_norm(const ModelConfig& c, int64_t) { return {c.ds.q_lora_rank}; }
Shape s_qb(const ModelConfig& c, int64_t) { return {c.n_head * qk_dim(c), c.ds.q_lora_rank}; }
Shape s_kva(const ModelConfig& c, int64_t) { return {c.ds.kv_lora_rank + c.ds.qk_rope_head_dim, c.n_embd}; }
Shape s_kva_norm(const ModelConfig& c, int64_t) { return {c.ds.kv_lora_rank}; }
Shape s_kvb(const ModelConfig& c, int64_t) {
    return {c.n_head * (c.ds.qk_nope_head_dim + c.v_dim()), c.ds.kv_lora_rank};
}
Shape s_o(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_head * c.v_dim()}; }
Shape s_up(const ModelConfig& c, int64_t l) { return {c.ff_at(l), c.n_embd}; }
Shape s_down(const ModelConfig& c, int64_t l) { return {c.n_embd, c.ff_at(l)}; }
Shape s_router(const ModelConfig& c, int64_t) { return {c.ds.n_routed_experts, c.n_embd}; }
Shape s_exp_bias(const ModelConfig& c, int64_t) { return {c.ds.n_routed_experts}; }
Shape s_up_exps(const ModelConfig& c, int64_t) { return {c.ds.n_routed_experts, c.ds.moe_ff, c.n_embd}; }
Shape s_down_exps(const ModelConfig& c, int64_t) { return {c.ds.n_routed_experts, c.n_embd, c.ds.moe_ff}; }
Shape s_up_sh(const ModelConfig& c, int64_t) { return {c.ds.moe_ff * c.ds.n_shared_experts, c.n_embd}; }
Shape s_down_sh(const ModelConfig& c, int64_t) { return {c.n_embd, c.ds.moe_ff * c.ds.n_shared_experts}; }

Shape s_eh(const ModelConfig& c, int64_t) { return {c.n_embd, 2 * c.n_embd}; }
bool untied(const ModelConfig& c, int64_t) { return !c.tied_embeddings; }
bool mtp_block(const ModelConfig& c, int64_t l) { return l >= c.n_layer; }
bool q_direct(const ModelConfig& c, int64_t) { return c.ds.q_lora_rank == 0; }
bool q_lora(const ModelConfig& c, int64_t) { return c.ds.q_lora_rank > 0; }
bool dense(const ModelConfig& c, int64_t l) { return !c.ds.moe_layer(l); }
bool moe(const ModelConfig& c, int64_t l) { return c.ds.moe_layer(l); }
// V3's selection bias (e_score_correction_bias) comes with sigmoid scoring ("noaux_tc").
bool moe_biased(const ModelConfig& c, int64_t l) { return c.ds.moe_layer(l) && c.ds.gating == MoeGating::kSigmoid; }
bool moe_shared(const ModelConfig& c, int64_t l) { return c.ds.moe_layer(l) && c.ds.n_shared_experts > 0; }

std::vector<TensorSpec> table() {
    using U = TensorUse;
    return {
        {kTokEmbd, "token_embd.weight", "model.embed_tokens.weight", false, U::kRows, Init::kNormal, s_vocab},
        {kOutputNorm, "output_norm.weight", "model.norm.weight", false, U::kVector, Init::kOnes, s_embd},
        {kOutput, "output.weight", "lm_head.weight", false, U::kMatrix, Init::kNormal, s_vocab, untied},
        {kAttnNorm, "attn_norm.weight", "input_layernorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kWq, "attn_q.weight", "self_attn.q_proj.weight", true, U::kMatrix, Init::kNormal, s_q, q_direct},
        {kWqA, "attn_q_a.weight", "self_attn.q_a_proj.weight", true, U::kMatrix, Init::kNormal, s_qa, q_lora},
        {kQANorm, "attn_q_a_norm.weight", "self_attn.q_a_layernorm.weight", true, U::kVector, Init::kOnes, s_qa_norm, q_lora},
        {kWqB, "attn_q_b.weight", "self_attn.q_b_proj.weight", true, U::kMatrix, Init::kNormal, s_qb, q_lora},
        {kWkvA, "attn_kv_a_mqa.weight", "self_attn.kv_a_proj_with_mqa.weight", true, U::kMatrix, Init::kNormal, s_kva},
        {kKvANorm, "attn_kv_a_norm.weight", "self_attn.kv_a_layernorm.weight", true, U::kVector, Init::kOnes, s_kva_norm},
        {kWkvB, "attn_kv_b.weight", "self_attn.kv_b_proj.weight", true, U::kMatrix, Init::kNormal, s_kvb},
        {kWo, "attn_output.weight", "self_attn.o_proj.weight", true, U::kMatrix, Init::kResidualOut, s_o},
        {kFfnNorm, "ffn_norm.weight", "post_attention_layernorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kGate, "ffn_gate.weight", "mlp.gate_proj.weight", true, U::kMatrix, Init::kNormal, s_up, dense},
        {kUp, "ffn_up.weight", "mlp.up_proj.weight", true, U::kMatrix, Init::kNormal, s_up, dense},
        {kDown, "ffn_down.weight", "mlp.down_proj.weight", true, U::kMatrix, Init::kResidualOut, s_down, dense},
        {kRouter, "ffn_gate_inp.weight", "mlp.gate.weight", true, U::kMatrix, Init::kNormal, s_router, moe},
        {kExpBias, "exp_probs_b.bias", "mlp.gate.e_score_correction_bias", true, U::kVector, Init::kZeros, s_exp_bias,
         moe_biased},
        // Routed experts: one (E, rows, cols) tensor each in GGUF; HF has one matrix per expert,
        // "mlp.experts.<e>.gate_proj.weight" (`*` stands for the expert index).
        {kGateExps, "ffn_gate_exps.weight", "mlp.experts.*.gate_proj.weight", true, U::kMatrix, Init::kNormal, s_up_exps, moe},
        {kUpExps, "ffn_up_exps.weight", "mlp.experts.*.up_proj.weight", true, U::kMatrix, Init::kNormal, s_up_exps, moe},
        {kDownExps, "ffn_down_exps.weight", "mlp.experts.*.down_proj.weight", true, U::kMatrix, Init::kResidualOut,
         s_down_exps, moe},
        {kGateSh, "ffn_gate_shexp.weight", "mlp.shared_experts.gate_proj.weight", true, U::kMatrix, Init::kNormal, s_up_sh,
         moe_shared},
        {kUpSh, "ffn_up_shexp.weight", "mlp.shared_experts.up_proj.weight", true, U::kMatrix, Init::kNormal, s_up_sh,
         moe_shared},
        {kDownSh, "ffn_down_shexp.weight", "mlp.shared_experts.down_proj.weight", true, U::kMatrix, Init::kResidualOut,
         s_down_sh, moe_shared},
        // Multi-token prediction modules (V3): blocks n_layer.. with these besides an ordinary
        // block. Their embedding and output head are the main model's unless the file has copies
        // (V3's checkpoint does; llama.cpp names them nextn.*).
        {kEnorm, "nextn.enorm.weight", "enorm.weight", true, U::kVector, Init::kOnes, s_embd, mtp_block},
        {kHnorm, "nextn.hnorm.weight", "hnorm.weight", true, U::kVector, Init::kOnes, s_embd, mtp_block},
        {kEhProj, "nextn.eh_proj.weight", "eh_proj.weight", true, U::kMatrix, Init::kNormal, s_eh, mtp_block},
        {kMtpEmbd, "nextn.embed_tokens.weight", "embed_tokens.weight", true, U::kRows, Init::kNormal, s_vocab, mtp_block,
         true},
        {kMtpHeadNorm, "nextn.shared_head_norm.weight", "shared_head.norm.weight", true, U::kVector, Init::kOnes, s_embd,
         mtp_block},
        {kMtpHead, "nextn.shared_head_head.weight", "shared_head.head.weight", true, U::kMatrix, Init::kNormal, s_vocab,
         mtp_block, true},
    };
}

// HF yarn_get_mscale.
double yarn_mscale(double factor, double m) { return factor <= 1 ? 1.0 : 0.1 * m * std::log(factor) + 1.0; }

void configure(ModelConfig& c, const ConfigSource& src) {
    DeepSeekConfig& d = c.ds;
    const std::string& where = src.where();
    // Integers that may be 0 or absent (q_lora_rank null in V2-Lite, first_k_dense_replace 0).
    auto count = [&](const char* hf, const char* gguf, int64_t dflt) -> int64_t {
        const auto v = src.number(hf, gguf);
        if (!v) return dflt;
        if (*v < 0 || *v >= 2147483648.0 || *v != std::floor(*v)) {
            fail("%s: %s is %g, expected a non-negative integer", where.c_str(), src.is_gguf() ? gguf : hf, *v);
        }
        return static_cast<int64_t>(*v);
    };
    auto required = [&](const char* hf, const char* gguf) -> int64_t {
        if (!src.number(hf, gguf)) {
            fail("%s: DeepSeek key '%s' is missing (expected in every %s; hint: is the file complete?)", where.c_str(),
                 src.is_gguf() ? (c.arch + "." + gguf).c_str() : hf,
                 src.is_gguf() ? "deepseek2 GGUF" : "DeepSeek config.json");
        }
        return count(hf, gguf, 0);
    };
    d.kv_lora_rank = required("kv_lora_rank", "attention.kv_lora_rank");
    d.q_lora_rank = count("q_lora_rank", "attention.q_lora_rank", 0);
    d.n_routed_experts = count("n_routed_experts", "expert_count", 0);
    d.n_experts_used = count("num_experts_per_tok", "expert_used_count", 0);
    d.n_shared_experts = count("n_shared_experts", "expert_shared_count", 0);
    d.moe_ff = count("moe_intermediate_size", "expert_feed_forward_length", 0);
    d.first_k_dense = count("first_k_dense_replace", "leading_dense_block_count", 0);
    d.n_group = std::max<int64_t>(1, count("n_group", "expert_group_count", 1));
    d.topk_group = std::max<int64_t>(1, count("topk_group", "expert_group_used_count", 1));
    d.n_mtp = count("num_nextn_predict_layers", "nextn_predict_layers", 0);
    if (src.is_gguf() && d.n_mtp > 0) {
        // llama.cpp's block_count includes the MTP blocks; ours counts the main layers.
        if (d.n_mtp >= c.n_layer) {
            fail("%s: %s.nextn_predict_layers is %lld but block_count is only %lld (expected fewer MTP blocks than "
                 "blocks)",
                 where.c_str(), c.arch.c_str(), (long long)d.n_mtp, (long long)c.n_layer);
        }
        c.n_layer -= d.n_mtp;
    }
    d.routed_scaling = static_cast<float>(src.number("routed_scaling_factor", "expert_weights_scale").value_or(1.0));
    d.norm_topk_prob = src.boolean("norm_topk_prob", "expert_weights_norm").value_or(false);
    if (src.is_gguf()) {
        d.qk_rope_head_dim = c.n_rot > 0 ? c.n_rot : c.head_dim;
        if (!src.number(nullptr, "rope.dimension_count")) {
            fail("%s: DeepSeek key '%s.rope.dimension_count' is missing (expected the rotary part of each head)",
                 where.c_str(), c.arch.c_str());
        }
        d.qk_nope_head_dim = c.head_dim - d.qk_rope_head_dim;
        const int64_t g = count(nullptr, "expert_gating_func", 1);  // absent in V2 files: softmax
        if (g != 1 && g != 2) {
            fail("%s: %s.expert_gating_func is %lld, expected 1 (softmax) or 2 (sigmoid)", where.c_str(), c.arch.c_str(),
                 (long long)g);
        }
        d.gating = static_cast<MoeGating>(g);
        d.yarn_log_mul = static_cast<float>(src.number(nullptr, "rope.scaling.yarn_log_multiplier").value_or(0.0));
    } else {
        d.qk_rope_head_dim = required("qk_rope_head_dim", nullptr);
        d.qk_nope_head_dim = required("qk_nope_head_dim", nullptr);
        c.head_dim = d.qk_nope_head_dim + d.qk_rope_head_dim;
        c.n_rot = d.qk_rope_head_dim;
        if (c.head_dim_v == 0) c.head_dim_v = c.head_dim;
        c.n_head_kv = c.n_head;  // K/V heads come from the latent, one per query head
        const std::string scoring = src.string("scoring_func", nullptr).value_or("softmax");
        if (scoring == "softmax") {
            d.gating = MoeGating::kSoftmax;
        } else if (scoring == "sigmoid") {
            d.gating = MoeGating::kSigmoid;
        } else {
            fail("%s: \"scoring_func\" is '%s', expected softmax or sigmoid", where.c_str(), scoring.c_str());
        }
        const std::string method = src.string("topk_method", nullptr).value_or("greedy");
        if (method != "greedy" && method != "group_limited_greedy" && method != "noaux_tc") {
            fail("%s: \"topk_method\" is '%s', expected greedy, group_limited_greedy or noaux_tc", where.c_str(),
                 method.c_str());
        }
        if (method == "greedy") d.n_group = d.topk_group = 1;
        // HF DeepSeek-V2's MoEGate either normalises the top-k weights or scales them, never both
        // (V3's always scales); the engine's rule is V3's, so a V2 config that normalises scales by 1.
        if (src.string("model_type", nullptr).value_or("") == "deepseek_v2" && d.norm_topk_prob &&
            d.n_experts_used > 1) {
            d.routed_scaling = 1.0f;
        }
        if (method == "noaux_tc" && d.gating != MoeGating::kSigmoid) {
            fail("%s: topk_method noaux_tc goes with scoring_func sigmoid (found softmax)", where.c_str());
        }
        if (const auto freq = src.number("moe_layer_freq", nullptr); freq && *freq != 1) {
            fail("%s: \"moe_layer_freq\" is %g, expected 1 (every layer after first_k_dense_replace is MoE)",
                 where.c_str(), *freq);
        }
        if (c.rope_scaling == RopeScaling::kYarn) {
            const double mad = src.number("rope_scaling.mscale_all_dim", nullptr).value_or(0.0);
            d.yarn_log_mul = static_cast<float>(0.1 * mad);
            // HF multiplies cos/sin by yarn_get_mscale(factor, mscale) / yarn_get_mscale(factor,
            // mscale_all_dim); rope.cpp applies (0.1 ln f + 1) * yarn_attn_factor.
            const double m = src.number("rope_scaling.mscale", nullptr).value_or(1.0);
            const double f = c.rope_factor;
            c.yarn_attn_factor = static_cast<float>(yarn_mscale(f, m) / yarn_mscale(f, mad) / yarn_mscale(f, 1.0));
        }
    }
    if (src.is_gguf() && c.rope_scaling == RopeScaling::kYarn) {
        // llama.cpp leaves cos/sin unscaled for deepseek2 (its rope's mscale is divided out).
        c.yarn_attn_factor = static_cast<float>(1.0 / yarn_mscale(c.rope_factor, 1.0));
    }
    c.rope_interleaved = true;
}

void write_keys(const ModelConfig& c, ConfigSink& sink) {
    const DeepSeekConfig& d = c.ds;
    // deepseek_v2's modelling code has no sigmoid routing or MTP and never both normalises and
    // scales; anything using those is written as a deepseek_v3 folder.
    if (d.gating == MoeGating::kSigmoid || d.n_mtp > 0 || (d.norm_topk_prob && d.routed_scaling != 1.0f)) {
        sink.string("model_type", nullptr, "deepseek_v3");
        sink.string("architectures", nullptr, "DeepseekV3ForCausalLM");
    }
    sink.integer("kv_lora_rank", "attention.kv_lora_rank", d.kv_lora_rank);
    if (d.q_lora_rank > 0) {
        sink.integer("q_lora_rank", "attention.q_lora_rank", d.q_lora_rank);
    } else {
        sink.integer("q_lora_rank", nullptr, std::nullopt);  // HF: null
    }
    sink.integer("qk_rope_head_dim", nullptr, d.qk_rope_head_dim);
    sink.integer("qk_nope_head_dim", nullptr, d.qk_nope_head_dim);
    sink.integer("n_routed_experts", "expert_count", d.n_routed_experts);
    sink.integer("num_experts_per_tok", "expert_used_count", d.n_experts_used);
    sink.integer("n_shared_experts", "expert_shared_count", d.n_shared_experts);
    sink.integer("moe_intermediate_size", "expert_feed_forward_length", d.moe_ff);
    sink.integer("first_k_dense_replace", "leading_dense_block_count", d.first_k_dense);
    sink.integer("moe_layer_freq", nullptr, 1);
    if (d.n_group > 1) {
        sink.integer("n_group", "expert_group_count", d.n_group);
        sink.integer("topk_group", "expert_group_used_count", d.topk_group);
    }
    sink.number("routed_scaling_factor", "expert_weights_scale", d.routed_scaling);
    sink.boolean("norm_topk_prob", "expert_weights_norm", d.norm_topk_prob);
    sink.integer(nullptr, "expert_gating_func", static_cast<int64_t>(d.gating));
    sink.string("scoring_func", nullptr, d.gating == MoeGating::kSigmoid ? "sigmoid" : "softmax");
    sink.string("topk_method", nullptr,
                d.gating == MoeGating::kSigmoid ? "noaux_tc" : (d.n_group > 1 ? "group_limited_greedy" : "greedy"));
    if (d.n_mtp > 0) sink.integer("num_nextn_predict_layers", "nextn_predict_layers", d.n_mtp);
    sink.boolean("attention_bias", nullptr, false);
    // llama.cpp requires deepseek2.rope.scaling.yarn_log_multiplier in every file (0: no YaRN).
    sink.number(nullptr, "rope.scaling.yarn_log_multiplier",
                c.rope_scaling == RopeScaling::kYarn ? d.yarn_log_mul : 0.0f);
    if (c.rope_scaling == RopeScaling::kYarn) {
        sink.string("rope_scaling.type", nullptr, "yarn");  // DeepSeek's modelling code reads "type"
        sink.number("rope_scaling.mscale_all_dim", nullptr, d.yarn_log_mul * 10.0);
        sink.number("rope_scaling.mscale", nullptr, d.yarn_log_mul * 10.0);
    }
}

void validate(const ModelConfig& c, const std::string& where) {
    const DeepSeekConfig& d = c.ds;
    auto bad = [&](const char* what) {
        fail("%s: DeepSeek hyper-parameters do not fit: %s (kv_lora_rank %lld, rope %lld, nope %lld, heads %lld, "
             "experts %lld used %lld, expert groups %lld used %lld)",
             where.c_str(), what, (long long)d.kv_lora_rank, (long long)d.qk_rope_head_dim,
             (long long)d.qk_nope_head_dim, (long long)c.n_head, (long long)d.n_routed_experts,
             (long long)d.n_experts_used, (long long)d.n_group, (long long)d.topk_group);
    };
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_vocab <= 0) bad("sizes must be positive");
    if (d.kv_lora_rank <= 0) bad("kv_lora_rank must be positive");
    if (d.qk_rope_head_dim <= 0 || d.qk_rope_head_dim % 2 != 0) bad("the rotary part must be even and positive");
    if (d.qk_nope_head_dim < 0 || c.head_dim != d.qk_nope_head_dim + d.qk_rope_head_dim) {
        bad("key_length must be qk_nope_head_dim + qk_rope_head_dim");
    }
    if (d.first_k_dense < c.n_layer && d.n_routed_experts > 0) {
        if (d.n_experts_used <= 0) bad("expert_used_count must be positive");
        if (d.n_experts_used > d.n_routed_experts) bad("expert_used_count is larger than expert_count");
        if (d.moe_ff <= 0) bad("expert_feed_forward_length must be positive");
        if (d.n_routed_experts % d.n_group != 0) bad("expert_count must be a multiple of the expert groups");
        if (d.topk_group > d.n_group) bad("more expert groups used than there are");
        if (d.topk_group * (d.n_routed_experts / d.n_group) < d.n_experts_used) {
            bad("the groups kept hold fewer experts than expert_used_count");
        }
    }
    if (d.first_k_dense > 0 && c.n_ff <= 0) bad("dense layers need feed_forward_length");
    if (d.n_mtp < 0 || d.n_mtp > 4) bad("nextn_predict_layers must be 0..4");
}

Act embed(Ops& o, const ModelConfig&) { return o.embed(Weight{-1, kTokEmbd}); }

Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    const DeepSeekConfig& d = c.ds;
    auto W = [l](int slot) { return Weight{l, slot}; };
    const float eps = c.rms_eps;
    // Attention: queries (through the low-rank q_a / q_b pair when q_lora_rank > 0) and the
    // compressed KV projection, in one dispatch; the latent attention does the rest.
    Act x = o.rmsnorm(h, W(kAttnNorm), eps);
    const bool lora_q = d.q_lora_rank > 0;
    const Weight w2[2] = {W(lora_q ? kWqA : kWq), W(kWkvA)};
    const Weight none[2];
    Act qk[2];
    o.linear(x, w2, none, 2, qk);
    Act q = lora_q ? o.linear(o.rmsnorm(qk[0], W(kQANorm), eps), W(kWqB)) : qk[0];
    // Softmax scale: 1/sqrt(q head size), times YaRN's mscale(factor, mscale_all_dim)^2.
    float scale = 1.0f / std::sqrt(static_cast<float>(c.head_dim));
    if (c.rope_scaling == RopeScaling::kYarn && d.yarn_log_mul > 0 && c.rope_factor > 1) {
        const float m = 1.0f + d.yarn_log_mul * std::log(c.rope_factor);
        scale *= m * m;
    }
    const MlaSpec mla{c.n_head, d.qk_nope_head_dim, d.qk_rope_head_dim, c.v_dim(), d.kv_lora_rank, scale, eps,
                      W(kKvANorm), W(kWkvB)};
    Act a = o.mla_attention(l, q, qk[1], mla);
    h = o.residual(l, 0, h, o.linear(a, W(kWo)));
    // Feed-forward: dense in the first layers, routed + shared experts after.
    x = o.rmsnorm(h, W(kFfnNorm), eps);
    Act y;
    if (!d.moe_layer(l)) {
        y = o.linear(o.swiglu(x, W(kGate), W(kUp)), W(kDown));
    } else {
        MoeSpec m;
        m.n_expert = d.n_routed_experts;
        m.n_used = d.n_experts_used;
        m.n_group = d.n_group;
        m.topk_group = d.topk_group;
        m.gating = d.gating;
        m.norm = d.norm_topk_prob;
        m.scale = d.routed_scaling;
        m.router = W(kRouter);
        m.bias = moe_biased(c, l) ? W(kExpBias) : Weight{};
        m.gate = W(kGateExps);
        m.up = W(kUpExps);
        m.down = W(kDownExps);
        if (d.n_shared_experts > 0) {
            m.shared_gate = W(kGateSh);
            m.shared_up = W(kUpSh);
            m.shared_down = W(kDownSh);
        }
        y = o.moe(l, x, m);
    }
    return o.residual(l, 1, h, y);
}

Act head(Ops& o, const ModelConfig& c, Act h) {
    h = o.rmsnorm(o.output_rows(h), Weight{-1, kOutputNorm}, c.rms_eps);
    o.observe("final_norm", h);
    return o.logits(h, Weight{-1, c.tied_embeddings ? kTokEmbd : kOutput});
}

// DeepSeek-V3's MTP module k (paper §2.2): h'_i = W_eh [RMSNorm(Emb(t_{i+k})); RMSNorm(h_i^{k-1})],
// one transformer block, then the shared output head behind the module's own norm. h^0 is the
// main model's final hidden state after its final norm (as vLLM's and SGLang's DeepSeek MTP
// read it: their models return normed states), so depth 1 re-normalises the normed state.
Arch::MtpOut mtp(Ops& o, const ModelConfig& c, int64_t depth, Act h) {
    const int64_t l = c.n_layer + depth - 1;
    auto W = [l](int slot) { return Weight{l, slot}; };
    if (depth == 1) h = o.rmsnorm(h, Weight{-1, kOutputNorm}, c.rms_eps);
    const Act e = o.embed(o.has(W(kMtpEmbd)) ? W(kMtpEmbd) : Weight{-1, kTokEmbd});
    Act x = o.linear(o.concat(o.rmsnorm(e, W(kEnorm), c.rms_eps), o.rmsnorm(h, W(kHnorm), c.rms_eps)), W(kEhProj));
    x = layer(o, c, l, x);
    const Act hidden = x;
    Act y = o.rmsnorm(o.output_rows(x), W(kMtpHeadNorm), c.rms_eps);
    const Weight head_w = o.has(W(kMtpHead)) ? W(kMtpHead) : Weight{-1, c.tied_embeddings ? kTokEmbd : kOutput};
    return {o.logits(y, head_w), hidden};
}

}  // namespace

extern const Arch kDeepseek2Arch = {
    "deepseek2", {"deepseek_v2", "deepseek_v3"}, "DeepseekV2ForCausalLM", true, false, table(), kNumSlots,
    configure, write_keys, validate, embed, layer, head, mtp,
};

}  // namespace llmforge
