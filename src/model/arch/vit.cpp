// Vision transformers: the encoder block family of ViT (Dosovitskiy et al.; Hugging Face ViTModel),
// CLIP's vision tower (CLIPVisionModel / CLIPVisionModelWithProjection) and SigLIP's
// (SiglipVisionModel), written once against Ops for the engine and the trainer.
//
//   input rows (per image: [ViT / CLIP: a placeholder row for the class token], then its patches,
//   each channel-major (c, py, px) — the order a stride-P convolution's (C, ch, P, P) weight
//   flattens to, so the convolution is one linear) → patch linear (+ bias: ViT, SigLIP)
//   → [ViT / CLIP: row 0 := class token] → + learned positions
//   → [CLIP: pre-LayerNorm] → n × pre-norm blocks:
//        h += out(attention(LN1(h)))            bidirectional, q/k/v/out with biases
//        h += fc2(act(fc1(LN2(h))))             act: gelu (ViT), quick_gelu (CLIP), gelu_pytorch_tanh (SigLIP)
//   → last hidden state: ViT and SigLIP a LayerNorm over every row; CLIP the rows as they are
//   → pooled: ViT tanh(dense(row 0)) (when the pooler is there, else row 0); CLIP post-LayerNorm
//     of row 0, then visual_projection when the model has one; SigLIP its attention-pooling head
//     (vision_use_head): a learned probe attends over the rows (nn.MultiheadAttention, one packed
//     in-projection), out-projection, then p + fc2(act(fc1(LN(p)))) — none without the head.
// With a projector into a decoder (EncoderConfig::projector, LLaVA; any of the three): the first
// feature_depth(n_layer) layers only, then the hidden state's rows (first row dropped unless
// "full"; clip.cpp's post-LayerNorm when an mmproj asks for it) → mm.0 [→ act → mm.2]; no head, no pool.
// GGUF names follow llama.cpp's vision towers (v.patch_embd, v.blk.N.attn_q, …, v.post_ln, mm.0, mm.2).
#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/encoder.h"

namespace llmforge {

namespace {

enum Slot {
    kPatch, kPatchB, kClass, kPos, kPreNorm, kPreNormB, kNorm, kNormB, kPostNorm, kPostNormB, kPooler, kPoolerB,
    kProj,
    kMm0, kMm0B, kMm2, kMm2B,  // the projector into a decoder (LLaVA)
    // SigLIP's attention-pooling head.
    kProbe, kHeadIn, kHeadInB, kHeadOut, kHeadOutB, kHeadLn, kHeadLnB, kHeadFc1, kHeadFc1B, kHeadFc2, kHeadFc2B,
    kLn1, kLn1B, kWq, kBq, kWk, kBk, kWv, kBv, kWo, kBo, kLn2, kLn2B, kFc1, kFc1B, kFc2, kFc2B,
    kNumSlots
};

using Shape = std::vector<int64_t>;
Shape s_patch(const ModelConfig& c, int64_t) {
    return {c.n_embd, c.enc.n_channels, c.enc.patch_size, c.enc.patch_size};
}
Shape s_embd(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_embd3(const ModelConfig& c, int64_t) { return {1, 1, c.n_embd}; }
Shape s_pos(const ModelConfig& c, int64_t) { return {1 + c.enc.n_patches(), c.n_embd}; }
Shape s_pos3(const ModelConfig& c, int64_t) { return {1, 1 + c.enc.n_patches(), c.n_embd}; }
Shape s_sq(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_embd}; }
Shape s_up(const ModelConfig& c, int64_t) { return {c.n_ff, c.n_embd}; }
Shape s_ff(const ModelConfig& c, int64_t) { return {c.n_ff}; }
Shape s_down(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_ff}; }
Shape s_proj(const ModelConfig& c, int64_t) { return {c.enc.projection_dim, c.n_embd}; }
Shape s_pos_patches(const ModelConfig& c, int64_t) { return {c.enc.n_patches(), c.n_embd}; }
Shape s_mm0(const ModelConfig& c, int64_t) { return {c.enc.proj_out, c.n_embd}; }
Shape s_mm2(const ModelConfig& c, int64_t) { return {c.enc.proj_out, c.enc.proj_out}; }
Shape s_proj_out(const ModelConfig& c, int64_t) { return {c.enc.proj_out}; }
Shape s_in(const ModelConfig& c, int64_t) { return {3 * c.n_embd, c.n_embd}; }
Shape s_in_b(const ModelConfig& c, int64_t) { return {3 * c.n_embd}; }
bool has_proj(const ModelConfig& c, int64_t) { return c.enc.projection_dim > 0; }
bool has_projector(const ModelConfig& c, int64_t) { return c.enc.projector != Projector::kNone; }
bool has_mlp(const ModelConfig& c, int64_t) { return c.enc.projector == Projector::kMlp; }
bool has_map_head(const ModelConfig& c, int64_t) { return c.enc.map_head; }
// CLIP's post-LayerNorm serves the pooled output, which a tower with a projector does not make; an
// mmproj whose v.post_ln clip.cpp applies before the projector keeps it.
bool has_clip_post_norm(const ModelConfig& c, int64_t) {
    return c.enc.projector == Projector::kNone || c.enc.proj_post_norm;
}

// The block's tensors: GGUF names as llama.cpp's vision towers, HF names from the layer prefix.
std::vector<TensorSpec> block_table(const char* ln1, const char* ln1b, const char* q, const char* bq, const char* k,
                                    const char* bk, const char* v, const char* bv, const char* o, const char* bo,
                                    const char* ln2, const char* ln2b, const char* fc1, const char* fc1b,
                                    const char* fc2, const char* fc2b) {
    using U = TensorUse;
    return {
        {kLn1, "v.blk.{l}.ln1.weight", ln1, true, U::kVector, Init::kOnes, s_embd},
        {kLn1B, "v.blk.{l}.ln1.bias", ln1b, true, U::kVector, Init::kZeros, s_embd},
        {kWq, "v.blk.{l}.attn_q.weight", q, true, U::kMatrix, Init::kNormal, s_sq},
        {kBq, "v.blk.{l}.attn_q.bias", bq, true, U::kVector, Init::kZeros, s_embd},
        {kWk, "v.blk.{l}.attn_k.weight", k, true, U::kMatrix, Init::kNormal, s_sq},
        {kBk, "v.blk.{l}.attn_k.bias", bk, true, U::kVector, Init::kZeros, s_embd},
        {kWv, "v.blk.{l}.attn_v.weight", v, true, U::kMatrix, Init::kNormal, s_sq},
        {kBv, "v.blk.{l}.attn_v.bias", bv, true, U::kVector, Init::kZeros, s_embd},
        {kWo, "v.blk.{l}.attn_out.weight", o, true, U::kMatrix, Init::kResidualOut, s_sq},
        {kBo, "v.blk.{l}.attn_out.bias", bo, true, U::kVector, Init::kZeros, s_embd},
        {kLn2, "v.blk.{l}.ln2.weight", ln2, true, U::kVector, Init::kOnes, s_embd},
        {kLn2B, "v.blk.{l}.ln2.bias", ln2b, true, U::kVector, Init::kZeros, s_embd},
        {kFc1, "v.blk.{l}.ffn_up.weight", fc1, true, U::kMatrix, Init::kNormal, s_up},
        {kFc1B, "v.blk.{l}.ffn_up.bias", fc1b, true, U::kVector, Init::kZeros, s_ff},
        {kFc2, "v.blk.{l}.ffn_down.weight", fc2, true, U::kMatrix, Init::kResidualOut, s_down},
        {kFc2B, "v.blk.{l}.ffn_down.bias", fc2b, true, U::kVector, Init::kZeros, s_embd},
    };
}

std::vector<TensorSpec> join(std::vector<TensorSpec> a, const std::vector<TensorSpec>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

// The projector (when the config has one): llama.cpp's mlp projector names (mm.0, mm.2; the linear
// one mm.0 only), Hugging Face LLaVA's multi_modal_projector.linear_1 / linear_2.
std::vector<TensorSpec> projector_table() {
    using U = TensorUse;
    return {
        {kMm0, "mm.0.weight", "multi_modal_projector.linear_1.weight", false, U::kMatrix, Init::kNormal, s_mm0,
         has_projector},
        {kMm0B, "mm.0.bias", "multi_modal_projector.linear_1.bias", false, U::kVector, Init::kZeros, s_proj_out,
         has_projector},
        {kMm2, "mm.2.weight", "multi_modal_projector.linear_2.weight", false, U::kMatrix, Init::kNormal, s_mm2, has_mlp},
        {kMm2B, "mm.2.bias", "multi_modal_projector.linear_2.bias", false, U::kVector, Init::kZeros, s_proj_out,
         has_mlp},
    };
}

std::vector<TensorSpec> vit_table() {
    using U = TensorUse;
#define L "encoder.layer.{l}."
    return join(join(
        {
            {kPatch, "v.patch_embd.weight", "embeddings.patch_embeddings.projection.weight", false, U::kMatrix,
             Init::kNormal, s_patch},
            {kPatchB, "v.patch_embd.bias", "embeddings.patch_embeddings.projection.bias", false, U::kVector, Init::kZeros,
             s_embd},
            {kClass, "v.class_embd", "embeddings.cls_token", false, U::kVector, Init::kNormal, s_embd3},
            {kPos, "v.position_embd.weight", "embeddings.position_embeddings", false, U::kRows, Init::kNormal, s_pos3},
            {kNorm, "v.norm.weight", "layernorm.weight", false, U::kVector, Init::kOnes, s_embd},
            {kNormB, "v.norm.bias", "layernorm.bias", false, U::kVector, Init::kZeros, s_embd},
            // ViTModel(add_pooling_layer=False) has none.
            {kPooler, "v.pooler.weight", "pooler.dense.weight", false, U::kMatrix, Init::kNormal, s_sq, nullptr, true},
            {kPoolerB, "v.pooler.bias", "pooler.dense.bias", false, U::kVector, Init::kZeros, s_embd, nullptr, true},
        },
        block_table(L "layernorm_before.weight", L "layernorm_before.bias", L "attention.attention.query.weight",
                    L "attention.attention.query.bias", L "attention.attention.key.weight",
                    L "attention.attention.key.bias", L "attention.attention.value.weight",
                    L "attention.attention.value.bias", L "attention.output.dense.weight",
                    L "attention.output.dense.bias", L "layernorm_after.weight", L "layernorm_after.bias",
                    L "intermediate.dense.weight", L "intermediate.dense.bias", L "output.dense.weight",
                    L "output.dense.bias")),
        projector_table());
#undef L
}

std::vector<TensorSpec> clip_block_table() {
#define L "vision_model.encoder.layers.{l}."
    return block_table(L "layer_norm1.weight", L "layer_norm1.bias", L "self_attn.q_proj.weight",
                       L "self_attn.q_proj.bias", L "self_attn.k_proj.weight", L "self_attn.k_proj.bias",
                       L "self_attn.v_proj.weight", L "self_attn.v_proj.bias", L "self_attn.out_proj.weight",
                       L "self_attn.out_proj.bias", L "layer_norm2.weight", L "layer_norm2.bias", L "mlp.fc1.weight",
                       L "mlp.fc1.bias", L "mlp.fc2.weight", L "mlp.fc2.bias");
#undef L
}

std::vector<TensorSpec> clip_table() {
    using U = TensorUse;
    return join(join(
        {
            {kPatch, "v.patch_embd.weight", "vision_model.embeddings.patch_embedding.weight", false, U::kMatrix,
             Init::kNormal, s_patch},
            {kClass, "v.class_embd", "vision_model.embeddings.class_embedding", false, U::kVector, Init::kNormal,
             s_embd},
            {kPos, "v.position_embd.weight", "vision_model.embeddings.position_embedding.weight", false, U::kRows,
             Init::kNormal, s_pos},
            {kPreNorm, "v.pre_ln.weight", "vision_model.pre_layrnorm.weight", false, U::kVector, Init::kOnes, s_embd},
            {kPreNormB, "v.pre_ln.bias", "vision_model.pre_layrnorm.bias", false, U::kVector, Init::kZeros, s_embd},
            {kPostNorm, "v.post_ln.weight", "vision_model.post_layernorm.weight", false, U::kVector, Init::kOnes,
             s_embd, has_clip_post_norm},
            {kPostNormB, "v.post_ln.bias", "vision_model.post_layernorm.bias", false, U::kVector, Init::kZeros,
             s_embd, has_clip_post_norm},
            // CLIPVisionModelWithProjection only (a CLIPVisionModel's config names a projection_dim too).
            {kProj, "v.proj.weight", "visual_projection.weight", false, U::kMatrix, Init::kNormal, s_proj, has_proj,
             true},
        },
        clip_block_table()), projector_table());
}

std::vector<TensorSpec> siglip_table() {
    using U = TensorUse;
#define H "vision_model.head."
    return join(join(
        {
            {kPatch, "v.patch_embd.weight", "vision_model.embeddings.patch_embedding.weight", false, U::kMatrix,
             Init::kNormal, s_patch},
            {kPatchB, "v.patch_embd.bias", "vision_model.embeddings.patch_embedding.bias", false, U::kVector,
             Init::kZeros, s_embd},
            {kPos, "v.position_embd.weight", "vision_model.embeddings.position_embedding.weight", false, U::kRows,
             Init::kNormal, s_pos_patches},
            {kPostNorm, "v.post_ln.weight", "vision_model.post_layernorm.weight", false, U::kVector, Init::kOnes,
             s_embd},
            {kPostNormB, "v.post_ln.bias", "vision_model.post_layernorm.bias", false, U::kVector, Init::kZeros,
             s_embd},
            {kProbe, "v.head.probe", H "probe", false, U::kVector, Init::kNormal, s_embd3, has_map_head},
            {kHeadIn, "v.head.attn_in.weight", H "attention.in_proj_weight", false, U::kMatrix, Init::kNormal, s_in,
             has_map_head},
            {kHeadInB, "v.head.attn_in.bias", H "attention.in_proj_bias", false, U::kVector, Init::kZeros, s_in_b,
             has_map_head},
            {kHeadOut, "v.head.attn_out.weight", H "attention.out_proj.weight", false, U::kMatrix, Init::kNormal,
             s_sq, has_map_head},
            {kHeadOutB, "v.head.attn_out.bias", H "attention.out_proj.bias", false, U::kVector, Init::kZeros, s_embd,
             has_map_head},
            {kHeadLn, "v.head.ln.weight", H "layernorm.weight", false, U::kVector, Init::kOnes, s_embd, has_map_head},
            {kHeadLnB, "v.head.ln.bias", H "layernorm.bias", false, U::kVector, Init::kZeros, s_embd, has_map_head},
            {kHeadFc1, "v.head.ffn_up.weight", H "mlp.fc1.weight", false, U::kMatrix, Init::kNormal, s_up,
             has_map_head},
            {kHeadFc1B, "v.head.ffn_up.bias", H "mlp.fc1.bias", false, U::kVector, Init::kZeros, s_ff, has_map_head},
            {kHeadFc2, "v.head.ffn_down.weight", H "mlp.fc2.weight", false, U::kMatrix, Init::kResidualOut, s_down,
             has_map_head},
            {kHeadFc2B, "v.head.ffn_down.bias", H "mlp.fc2.bias", false, U::kVector, Init::kZeros, s_embd,
             has_map_head},
        },
        clip_block_table()), projector_table());
#undef H
}

// ---- hyper-parameters (Hugging Face ViTConfig / CLIPVisionConfig keys) ----

void configure(ModelConfig& c, const ConfigSource& src, const char* default_act, double default_eps) {
    using encoder_family::need;
    c.n_embd = need(src, "hidden_size");
    c.n_ff = need(src, "intermediate_size");
    c.n_layer = need(src, "num_hidden_layers");
    c.n_head = need(src, "num_attention_heads");
    c.n_head_kv = c.n_head;
    c.head_dim = c.n_embd / c.n_head;  // validate() checks the division
    encoder_family::configure_vision(c, src, default_act, default_eps);
    c.enc.class_token = true;
    c.n_vocab = 0;
    c.n_ctx_train = 1 + c.enc.n_patches();
}

void write_common(const ModelConfig& c, ConfigSink& sink) {
    sink.integer("hidden_size", "hidden_size", c.n_embd);
    sink.integer("intermediate_size", "intermediate_size", c.n_ff);
    sink.integer("num_hidden_layers", "num_hidden_layers", c.n_layer);
    sink.integer("num_attention_heads", "num_attention_heads", c.n_head);
    sink.integer("image_size", "image_size", c.enc.image_size);
    sink.integer("patch_size", "patch_size", c.enc.patch_size);
    sink.integer("num_channels", "num_channels", c.enc.n_channels);
    sink.string("hidden_act", "hidden_act", activation_name(c.enc.act));
    sink.number("layer_norm_eps", "layer_norm_eps", c.enc.norm_eps);
}

// The projector keys (a vision tower config for a LLaVA-style decoder): "mm_projector_type" (LLaVA's
// names: "linear" | "mlp2x_gelu"; absent: no projector), "text_hidden_size" (its output width, the
// decoder's), and Hugging Face LlavaConfig's "vision_feature_layer" (default -2),
// "vision_feature_select_strategy" ("default" | "full") and "projector_hidden_act" (default gelu).
// GGUF: the same names under "<arch>."; vision_feature_layer as a float (it may be negative), and
// "projector_post_norm" (clip.cpp's v.post_ln before the projector, GGUF only).
void configure_projector(ModelConfig& c, const ConfigSource& src) {
    const char* where = src.where().c_str();
    const std::optional<std::string> type = src.string("mm_projector_type", "mm_projector_type");
    if (!type) return;
    if (*type == "mlp2x_gelu") {
        c.enc.projector = Projector::kMlp;
    } else if (*type == "linear") {
        c.enc.projector = Projector::kLinear;
    } else {
        fail("%s: \"mm_projector_type\" is '%s', expected linear or mlp2x_gelu (LLaVA's projectors)", where,
             type->c_str());
    }
    c.enc.proj_out = encoder_family::need(src, "text_hidden_size");
    const double fl = src.number("vision_feature_layer", "vision_feature_layer").value_or(-2.0);
    if (fl != std::floor(fl) || std::fabs(fl) > 1e6) {
        fail("%s: \"vision_feature_layer\" is %g, expected an integer (an index into hidden_states)", where, fl);
    }
    c.enc.feature_layer = static_cast<int64_t>(fl);
    const std::string sel = src.string("vision_feature_select_strategy", "vision_feature_select_strategy").value_or("default");
    if (sel != "default" && sel != "full") {
        fail("%s: \"vision_feature_select_strategy\" is '%s', expected default (drop the first row) or full", where,
             sel.c_str());
    }
    c.enc.feature_select_full = sel == "full";
    const std::string act = src.string("projector_hidden_act", "projector_hidden_act").value_or("gelu");
    if (!activation_from_name(act, &c.enc.projector_act)) {
        fail("%s: \"projector_hidden_act\" is '%s', expected gelu, gelu_pytorch_tanh or quick_gelu", where, act.c_str());
    }
    c.enc.proj_post_norm = src.boolean(nullptr, "projector_post_norm").value_or(false);
}

void write_projector(const ModelConfig& c, ConfigSink& sink) {
    if (c.enc.projector == Projector::kNone) return;
    sink.string("mm_projector_type", "mm_projector_type", c.enc.projector == Projector::kMlp ? "mlp2x_gelu" : "linear");
    sink.integer("text_hidden_size", "text_hidden_size", c.enc.proj_out);
    sink.integer("vision_feature_layer", nullptr, c.enc.feature_layer);  // may be negative: a float in GGUF
    sink.number(nullptr, "vision_feature_layer", static_cast<double>(c.enc.feature_layer));
    sink.string("vision_feature_select_strategy", "vision_feature_select_strategy",
                c.enc.feature_select_full ? "full" : "default");
    sink.string("projector_hidden_act", "projector_hidden_act", activation_name(c.enc.projector_act));
    if (c.enc.proj_post_norm) sink.boolean(nullptr, "projector_post_norm", true);
}

void vit_configure(ModelConfig& c, const ConfigSource& src) {
    configure(c, src, "gelu", 1e-12);
    if (src.boolean("qkv_bias", "qkv_bias").value_or(true) == false) {
        fail("%s: \"qkv_bias\" is false, which llmforge's ViT does not support (expected true)", src.where().c_str());
    }
    configure_projector(c, src);
}
void vit_write(const ModelConfig& c, ConfigSink& sink) {
    write_common(c, sink);
    sink.boolean("qkv_bias", "qkv_bias", true);
    write_projector(c, sink);
}

void clip_configure(ModelConfig& c, const ConfigSource& src) {
    configure(c, src, "quick_gelu", 1e-5);
    c.enc.projection_dim = src.integer("projection_dim", "projection_dim").value_or(0);
    configure_projector(c, src);
}
void clip_write(const ModelConfig& c, ConfigSink& sink) {
    write_common(c, sink);
    if (c.enc.projection_dim > 0) sink.integer("projection_dim", "projection_dim", c.enc.projection_dim);
    write_projector(c, sink);
}

// SiglipVisionConfig: no class token, positions for the patches only.
void siglip_configure(ModelConfig& c, const ConfigSource& src) {
    configure(c, src, "gelu_pytorch_tanh", 1e-6);
    c.enc.class_token = false;
    c.n_ctx_train = c.enc.n_patches();
    c.enc.map_head = src.boolean("vision_use_head", "vision_use_head").value_or(true);
    configure_projector(c, src);
}
void siglip_write(const ModelConfig& c, ConfigSink& sink) {
    write_common(c, sink);
    sink.boolean("vision_use_head", "vision_use_head", c.enc.map_head);
    write_projector(c, sink);
}

void validate(const ModelConfig& c, const std::string& where) {
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_ff <= 0 || c.n_embd % c.n_head != 0) {
        fail("%s: bad hyper-parameters: hidden %lld, layers %lld, heads %lld, ffn %lld (expected all > 0 and the "
             "hidden size a multiple of the heads)",
             where.c_str(), (long long)c.n_embd, (long long)c.n_layer, (long long)c.n_head, (long long)c.n_ff);
    }
    if (c.enc.patch_size <= 0 || c.enc.image_size % c.enc.patch_size != 0 || c.enc.n_channels <= 0) {
        fail("%s: image_size %lld is not a multiple of patch_size %lld (or %lld channels): expected whole patches",
             where.c_str(), (long long)c.enc.image_size, (long long)c.enc.patch_size, (long long)c.enc.n_channels);
    }
    if (c.enc.projector == Projector::kNone) return;
    if (c.enc.proj_out <= 0) {
        fail("%s: the projector's output width is %lld, expected > 0 (hint: text_hidden_size, the decoder's hidden size)",
             where.c_str(), (long long)c.enc.proj_out);
    }
    const int64_t depth = c.enc.feature_depth(c.n_layer);
    if (depth < 0 || depth > c.n_layer) {
        fail("%s: vision_feature_layer %lld selects no hidden state of a %lld-layer tower (expected %lld..%lld)",
             where.c_str(), (long long)c.enc.feature_layer, (long long)c.n_layer, (long long)(-c.n_layer - 1),
             (long long)c.n_layer);
    }
    if (c.enc.n_image_tokens() < 1) {
        fail("%s: the projector would get no rows (one patch, first row dropped: hint: vision_feature_select_strategy "
             "full)", where.c_str());
    }
}

// ---- the forward, once ----

Weight G(int slot) { return Weight{-1, slot}; }

Act embed(Ops& o, const ModelConfig& c) {
    Act h = o.linear(o.input(c.enc.patch_cols(), 0), G(kPatch), G(kPatchB));
    h = o.class_row(h, G(kClass));
    h = o.add_positions(h, G(kPos), 0);
    if (o.has(G(kPreNorm))) h = o.layernorm(h, G(kPreNorm), G(kPreNormB), c.enc.norm_eps);
    return h;
}

Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    auto W = [l](int slot) { return Weight{l, slot}; };
    const float eps = c.enc.norm_eps;
    const Weight qkv[3] = {W(kWq), W(kWk), W(kWv)}, qkv_b[3] = {W(kBq), W(kBk), W(kBv)};
    h = encoder_family::self_attention_residual(o, l, h, o.layernorm(h, W(kLn1), W(kLn1B), eps), c.n_head, qkv, qkv_b,
                                                W(kWo), W(kBo));
    Act x = o.layernorm(h, W(kLn2), W(kLn2B), eps);
    return encoder_family::mlp_residual(o, l, h, x, W(kFc1), W(kFc1B), W(kFc2), W(kFc2B), c.enc.act);
}

Act head(Ops& o, const ModelConfig& c, Act h) {
    if (o.has(G(kNorm))) h = o.layernorm(h, G(kNorm), G(kNormB), c.enc.norm_eps);
    return h;
}

Act pool(Ops& o, const ModelConfig& c, Act last) {
    Act p = o.first_rows(last);
    if (o.has(G(kPooler))) return o.linear_act(p, G(kPooler), G(kPoolerB), Activation::kTanh);
    if (o.has(G(kPostNorm))) p = o.layernorm(p, G(kPostNorm), G(kPostNormB), c.enc.norm_eps);
    if (o.has(G(kProj))) p = o.linear(p, G(kProj));
    return p;
}

// The projector into a decoder (LLaVA's get_image_features + multi_modal_projector): the feature
// layer's rows, the first dropped unless "full" ([:, 1:]: HF drops it whether or not it is a class
// row), [clip.cpp's post-LayerNorm], then linear_1 [→ act → linear_2].
Act project(Ops& o, const ModelConfig& c, Act h) {
    if (!c.enc.feature_select_full) {
        const int64_t T = c.enc.n_patches() + (c.enc.class_token ? 1 : 0);
        std::vector<int32_t> rows(static_cast<size_t>(T - 1));
        for (int64_t i = 1; i < T; ++i) rows[static_cast<size_t>(i - 1)] = static_cast<int32_t>(i);
        h = o.gather_rows(h, rows.data(), T - 1);
    }
    if (c.enc.proj_post_norm) h = o.layernorm(h, G(kPostNorm), G(kPostNormB), c.enc.norm_eps);
    Act y = o.linear(h, G(kMm0), G(kMm0B));
    if (c.enc.projector == Projector::kMlp) y = o.linear(o.activation(y, c.enc.projector_act), G(kMm2), G(kMm2B));
    return y;
}

// ---- SigLIP ----

Act siglip_embed(Ops& o, const ModelConfig& c) {
    Act h = o.linear(o.input(c.enc.patch_cols(), 0), G(kPatch), G(kPatchB));
    return o.add_positions(h, G(kPos), 0);
}

Act siglip_head(Ops& o, const ModelConfig& c, Act h) { return o.layernorm(h, G(kPostNorm), G(kPostNormB), c.enc.norm_eps); }

// SiglipMultiheadAttentionPoolingHead: the probe (one query row per image) attends over the image's
// rows through nn.MultiheadAttention (in_proj_weight packs q, k, v), then p + mlp(LN(p)).
Act siglip_pool(Ops& o, const ModelConfig& c, Act last) {
    if (!o.has(G(kProbe))) return Act{};
    const int64_t C = c.n_embd;
    Act probe = o.class_row(o.first_rows(last), G(kProbe));  // every image's one row := the probe
    Act q = o.columns(o.linear(probe, G(kHeadIn), G(kHeadInB)), 0, C);
    Act kv = o.linear(last, G(kHeadIn), G(kHeadInB));
    Act k = o.columns(kv, C, C), v = o.columns(kv, 2 * C, C);
    const int64_t D = C / c.n_head;
    AttentionSpec spec{c.n_head, c.n_head, D, D, 0, 1.0f / std::sqrt(static_cast<float>(D)), nullptr};
    spec.causal = false;
    Act p = o.linear(o.attention(c.n_layer, q, k, v, spec), G(kHeadOut), G(kHeadOutB));
    Act x = o.layernorm(p, G(kHeadLn), G(kHeadLnB), c.enc.norm_eps);
    return o.residual(c.n_layer, 0, p, encoder_family::mlp(o, x, G(kHeadFc1), G(kHeadFc1B), G(kHeadFc2), G(kHeadFc2B),
                                                          c.enc.act));
}

Arch with_projector(Arch a) {
    a.project = project;
    return a;
}

}  // namespace

namespace encoder_family {

Arch make_arch(const char* name, std::vector<std::string> hf_types, const char* hf_class, std::vector<TensorSpec> table,
               int n_slots, void (*configure)(ModelConfig&, const ConfigSource&),
               void (*write_keys)(const ModelConfig&, ConfigSink&), void (*validate)(const ModelConfig&, const std::string&),
               Act (*embed)(Ops&, const ModelConfig&), Act (*layer)(Ops&, const ModelConfig&, int64_t, Act),
               Act (*head)(Ops&, const ModelConfig&, Act), Act (*pool)(Ops&, const ModelConfig&, Act)) {
    Arch a;
    a.name = name;
    a.hf_types = std::move(hf_types);
    a.hf_class = hf_class;
    a.tensors = std::move(table);
    a.n_slots = n_slots;
    a.configure = configure;
    a.write_keys = write_keys;
    a.validate = validate;
    a.embed = embed;
    a.layer = layer;
    a.head = head;
    a.encoder = true;
    a.pool = pool;
    return a;
}

Act mlp(Ops& o, Act x, Weight up, Weight up_b, Weight down, Weight down_b, Activation f) {
    return o.linear(o.linear_act(x, up, up_b, f), down, down_b);
}

Act mlp_residual(Ops& o, int64_t layer, Act h, Act x, Weight up, Weight up_b, Weight down, Weight down_b, Activation f) {
    return o.mlp_residual(layer, h, x, up, up_b, down, down_b, f);
}

namespace {
// Self-attention before its output projection: q, k, v of x, every head over every row.
Act attend(Ops& o, int64_t layer, Act x, int64_t n_head, const Weight qkv[3], const Weight qkv_b[3]) {
    Act p[3];
    o.linear(x, qkv, qkv_b, 3, p);
    const int64_t D = p[0].cols / n_head;
    AttentionSpec spec{n_head, n_head, D, D, 0, 1.0f / std::sqrt(static_cast<float>(D)), nullptr};
    spec.causal = false;
    return o.attention(layer, p[0], p[1], p[2], spec);
}
}  // namespace

Act self_attention(Ops& o, int64_t layer, Act x, int64_t n_head, const Weight qkv[3], const Weight qkv_b[3], Weight out,
                   Weight out_b) {
    return o.linear(attend(o, layer, x, n_head, qkv, qkv_b), out, out_b);
}

Act self_attention_residual(Ops& o, int64_t layer, Act h, Act x, int64_t n_head, const Weight qkv[3],
                            const Weight qkv_b[3], Weight out, Weight out_b) {
    return o.linear_residual(layer, 0, h, attend(o, layer, x, n_head, qkv, qkv_b), out, out_b);
}

int64_t need(const ConfigSource& src, const char* key) {
    const std::optional<int64_t> v = src.integer(key, key);
    if (!v) fail("%s: required key \"%s\" is missing (an encoder's config needs it)", src.where().c_str(), key);
    if (*v <= 0) fail("%s: \"%s\" is %lld, expected > 0", src.where().c_str(), key, (long long)*v);
    return *v;
}

void configure_vision(ModelConfig& c, const ConfigSource& src, const char* default_act, double default_eps) {
    c.enc.image_size = need(src, "image_size");
    c.enc.patch_size = need(src, "patch_size");
    c.enc.n_channels = src.integer("num_channels", "num_channels").value_or(3);
    const std::string act = src.string("hidden_act", "hidden_act").value_or(default_act);
    if (!activation_from_name(act, &c.enc.act)) {
        fail("%s: \"hidden_act\" is '%s', expected gelu, gelu_new, gelu_pytorch_tanh or quick_gelu",
             src.where().c_str(), act.c_str());
    }
    const double eps = src.number("layer_norm_eps", "layer_norm_eps").value_or(default_eps);
    if (!(eps > 0 && eps < 1)) fail("%s: \"layer_norm_eps\" is %g, expected in (0, 1)", src.where().c_str(), eps);
    c.enc.norm_eps = static_cast<float>(eps);
}

}  // namespace encoder_family

bool activation_from_name(const std::string& n, Activation* out) {
    if (n == "gelu") *out = Activation::kGelu;
    else if (n == "gelu_new" || n == "gelu_pytorch_tanh" || n == "gelu_fast") *out = Activation::kGeluTanh;
    else if (n == "quick_gelu") *out = Activation::kQuickGelu;
    else if (n == "tanh") *out = Activation::kTanh;
    else return false;
    return true;
}

const char* activation_name(Activation a) {
    switch (a) {
        case Activation::kGelu: return "gelu";
        case Activation::kGeluTanh: return "gelu_pytorch_tanh";
        case Activation::kQuickGelu: return "quick_gelu";
        case Activation::kTanh: return "tanh";
    }
    return "?";
}

extern const Arch kVitArch = with_projector(encoder_family::make_arch(
    "vit", {"vit"}, "ViTModel", vit_table(), kNumSlots, vit_configure, vit_write, validate, embed, layer, head, pool));
extern const Arch kClipVisionArch = with_projector(encoder_family::make_arch(
    "clip_vision", {"clip_vision_model"}, "CLIPVisionModel", clip_table(), kNumSlots, clip_configure, clip_write,
    validate, embed, layer, head, pool));
extern const Arch kSiglipVisionArch = with_projector(encoder_family::make_arch(
    "siglip_vision", {"siglip_vision_model"}, "SiglipVisionModel", siglip_table(), kNumSlots, siglip_configure,
    siglip_write, validate, siglip_embed, layer, siglip_head, siglip_pool));

}  // namespace llmforge
