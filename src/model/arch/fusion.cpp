// Text–image fusion with an answer classifier (visual question answering), written once against
// Ops for the engine and the trainer. Its two inputs are an encoder's last hidden states: the
// question's rows (input 0, a text encoder such as RoBERTa; row 0 is its <s>) and the image's
// (input 1, a vision tower; row 0 is its class token). Kinds (config "fusion"):
//   gated   the seed system's module: t, v = the first rows (projected to the fusion width when
//           their widths differ), g = softmax(W2 · GELU(W1 · [t; v])) (2 weights per example,
//           observed as "gate": when the model trusts the image), f = g0·t + g1·v
//   concat  f = [t; v]
//   cross   n pre-norm blocks in which the question's rows attend to the image's rows
//           (cross-attention) and a GELU MLP; f = the question's first row after them
//   text    f = t (a question-only baseline)       image   f = v (an image-only baseline)
// then logits = W_c2 · GELU(W_c1 · f) over the closed answer set.
#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/encoder.h"

namespace llmforge {

namespace {

enum Slot {
    kProjT, kProjTB, kProjV, kProjVB, kGate1, kGate1B, kGate2, kGate2B, kCls1, kCls1B, kCls2, kCls2B,
    kLn1, kLn1B, kWq, kBq, kWk, kBk, kWv, kBv, kWo, kBo, kLn2, kLn2B, kFc1, kFc1B, kFc2, kFc2B,
    kNumSlots
};

using Shape = std::vector<int64_t>;
const FusionConfig& F(const ModelConfig& c) { return c.fusion; }
bool uses_text(const ModelConfig& c) { return F(c).kind != FusionKind::kImage; }
bool uses_image(const ModelConfig& c) { return F(c).kind != FusionKind::kText; }
bool proj_t(const ModelConfig& c, int64_t) { return uses_text(c) && F(c).text_width != c.n_embd; }
bool proj_v(const ModelConfig& c, int64_t) { return uses_image(c) && F(c).vision_width != c.n_embd; }
bool gated(const ModelConfig& c, int64_t) { return F(c).kind == FusionKind::kGated; }
int64_t cls_in(const ModelConfig& c) { return F(c).kind == FusionKind::kConcat ? 2 * c.n_embd : c.n_embd; }

Shape s_pt(const ModelConfig& c, int64_t) { return {c.n_embd, F(c).text_width}; }
Shape s_pv(const ModelConfig& c, int64_t) { return {c.n_embd, F(c).vision_width}; }
Shape s_c(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_g1(const ModelConfig& c, int64_t) { return {F(c).gate_hidden, 2 * c.n_embd}; }
Shape s_gh(const ModelConfig& c, int64_t) { return {F(c).gate_hidden}; }
Shape s_g2(const ModelConfig& c, int64_t) { return {2, F(c).gate_hidden}; }
Shape s_2(const ModelConfig&, int64_t) { return {2}; }
Shape s_c1(const ModelConfig& c, int64_t) { return {F(c).cls_hidden, cls_in(c)}; }
Shape s_ch(const ModelConfig& c, int64_t) { return {F(c).cls_hidden}; }
Shape s_c2(const ModelConfig& c, int64_t) { return {F(c).n_answers, F(c).cls_hidden}; }
Shape s_a(const ModelConfig& c, int64_t) { return {F(c).n_answers}; }
Shape s_sq(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_embd}; }
Shape s_up(const ModelConfig& c, int64_t) { return {c.n_ff, c.n_embd}; }
Shape s_ff(const ModelConfig& c, int64_t) { return {c.n_ff}; }
Shape s_down(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_ff}; }

std::vector<TensorSpec> table() {
    using U = TensorUse;
    return {
        {kProjT, "f.proj_text.weight", "fusion.text_projection.weight", false, U::kMatrix, Init::kNormal, s_pt, proj_t},
        {kProjTB, "f.proj_text.bias", "fusion.text_projection.bias", false, U::kVector, Init::kZeros, s_c, proj_t},
        {kProjV, "f.proj_image.weight", "fusion.image_projection.weight", false, U::kMatrix, Init::kNormal, s_pv, proj_v},
        {kProjVB, "f.proj_image.bias", "fusion.image_projection.bias", false, U::kVector, Init::kZeros, s_c, proj_v},
        {kGate1, "f.gate_up.weight", "fusion.gate.0.weight", false, U::kMatrix, Init::kNormal, s_g1, gated},
        {kGate1B, "f.gate_up.bias", "fusion.gate.0.bias", false, U::kVector, Init::kZeros, s_gh, gated},
        {kGate2, "f.gate_out.weight", "fusion.gate.2.weight", false, U::kMatrix, Init::kNormal, s_g2, gated},
        {kGate2B, "f.gate_out.bias", "fusion.gate.2.bias", false, U::kVector, Init::kZeros, s_2, gated},
        {kCls1, "f.cls_up.weight", "classifier.0.weight", false, U::kMatrix, Init::kNormal, s_c1},
        {kCls1B, "f.cls_up.bias", "classifier.0.bias", false, U::kVector, Init::kZeros, s_ch},
        {kCls2, "f.cls_out.weight", "classifier.2.weight", false, U::kMatrix, Init::kNormal, s_c2},
        {kCls2B, "f.cls_out.bias", "classifier.2.bias", false, U::kVector, Init::kZeros, s_a},
        {kLn1, "f.blk.{l}.ln1.weight", "fusion.layers.{l}.ln1.weight", true, U::kVector, Init::kOnes, s_c},
        {kLn1B, "f.blk.{l}.ln1.bias", "fusion.layers.{l}.ln1.bias", true, U::kVector, Init::kZeros, s_c},
        {kWq, "f.blk.{l}.attn_q.weight", "fusion.layers.{l}.cross_attn.q_proj.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBq, "f.blk.{l}.attn_q.bias", "fusion.layers.{l}.cross_attn.q_proj.bias", true, U::kVector, Init::kZeros, s_c},
        {kWk, "f.blk.{l}.attn_k.weight", "fusion.layers.{l}.cross_attn.k_proj.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBk, "f.blk.{l}.attn_k.bias", "fusion.layers.{l}.cross_attn.k_proj.bias", true, U::kVector, Init::kZeros, s_c},
        {kWv, "f.blk.{l}.attn_v.weight", "fusion.layers.{l}.cross_attn.v_proj.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBv, "f.blk.{l}.attn_v.bias", "fusion.layers.{l}.cross_attn.v_proj.bias", true, U::kVector, Init::kZeros, s_c},
        {kWo, "f.blk.{l}.attn_out.weight", "fusion.layers.{l}.cross_attn.out_proj.weight", true, U::kMatrix,
         Init::kResidualOut, s_sq},
        {kBo, "f.blk.{l}.attn_out.bias", "fusion.layers.{l}.cross_attn.out_proj.bias", true, U::kVector, Init::kZeros, s_c},
        {kLn2, "f.blk.{l}.ln2.weight", "fusion.layers.{l}.ln2.weight", true, U::kVector, Init::kOnes, s_c},
        {kLn2B, "f.blk.{l}.ln2.bias", "fusion.layers.{l}.ln2.bias", true, U::kVector, Init::kZeros, s_c},
        {kFc1, "f.blk.{l}.ffn_up.weight", "fusion.layers.{l}.mlp.fc1.weight", true, U::kMatrix, Init::kNormal, s_up},
        {kFc1B, "f.blk.{l}.ffn_up.bias", "fusion.layers.{l}.mlp.fc1.bias", true, U::kVector, Init::kZeros, s_ff},
        {kFc2, "f.blk.{l}.ffn_down.weight", "fusion.layers.{l}.mlp.fc2.weight", true, U::kMatrix, Init::kResidualOut,
         s_down},
        {kFc2B, "f.blk.{l}.ffn_down.bias", "fusion.layers.{l}.mlp.fc2.bias", true, U::kVector, Init::kZeros, s_c},
    };
}

void configure(ModelConfig& c, const ConfigSource& src) {
    using encoder_family::need;
    const std::string& where = src.where();
    const std::string kind = src.string("fusion", "fusion").value_or("");
    if (!fusion_kind_from_name(kind, &c.fusion.kind)) {
        fail("%s: \"fusion\" is '%s', expected gated, concat, cross, text or image", where.c_str(), kind.c_str());
    }
    c.n_embd = need(src, "hidden_size");
    c.fusion.text_width = need(src, "text_hidden_size");
    c.fusion.vision_width = need(src, "vision_hidden_size");
    c.fusion.cls_hidden = need(src, "classifier_hidden_size");
    c.fusion.n_answers = need(src, "num_answers");
    c.fusion.gate_hidden = c.fusion.kind == FusionKind::kGated ? need(src, "gate_hidden_size") : 0;
    c.n_layer = src.integer("num_hidden_layers", "num_hidden_layers").value_or(0);
    if (c.fusion.kind == FusionKind::kCross) {
        if (c.n_layer <= 0) fail("%s: cross fusion needs \"num_hidden_layers\" >= 1", where.c_str());
        c.n_head = c.n_head_kv = need(src, "num_attention_heads");
        c.n_ff = need(src, "intermediate_size");
        c.head_dim = c.n_embd / c.n_head;
    } else if (c.n_layer != 0) {
        fail("%s: \"num_hidden_layers\" is %lld, but only cross fusion has layers (expected 0)", where.c_str(),
             (long long)c.n_layer);
    }
    const double eps = src.number("layer_norm_eps", "layer_norm_eps").value_or(1e-5);
    if (!(eps > 0 && eps < 1)) fail("%s: \"layer_norm_eps\" is %g, expected in (0, 1)", where.c_str(), eps);
    c.enc.norm_eps = static_cast<float>(eps);
    c.enc.act = Activation::kGelu;
    c.n_ctx_train = int64_t{1} << 30;  // no positions
}

void write_keys(const ModelConfig& c, ConfigSink& sink) {
    sink.string("fusion", "fusion", fusion_kind_name(c.fusion.kind));
    sink.integer("hidden_size", "hidden_size", c.n_embd);
    sink.integer("text_hidden_size", "text_hidden_size", c.fusion.text_width);
    sink.integer("vision_hidden_size", "vision_hidden_size", c.fusion.vision_width);
    sink.integer("classifier_hidden_size", "classifier_hidden_size", c.fusion.cls_hidden);
    sink.integer("num_answers", "num_answers", c.fusion.n_answers);
    if (c.fusion.kind == FusionKind::kGated) sink.integer("gate_hidden_size", "gate_hidden_size", c.fusion.gate_hidden);
    if (c.fusion.kind == FusionKind::kCross) {
        sink.integer("num_hidden_layers", "num_hidden_layers", c.n_layer);
        sink.integer("num_attention_heads", "num_attention_heads", c.n_head);
        sink.integer("intermediate_size", "intermediate_size", c.n_ff);
    }
    sink.number("layer_norm_eps", "layer_norm_eps", c.enc.norm_eps);
}

void validate(const ModelConfig& c, const std::string& where) {
    if (c.n_embd <= 0 || c.fusion.n_answers <= 1 || c.fusion.cls_hidden <= 0 ||
        (c.fusion.kind == FusionKind::kCross && (c.n_head <= 0 || c.n_embd % c.n_head != 0 || c.n_ff <= 0))) {
        fail("%s: bad fusion hyper-parameters: width %lld, %lld answers, classifier %lld, heads %lld (expected a "
             "positive width, at least 2 answers and whole heads)",
             where.c_str(), (long long)c.n_embd, (long long)c.fusion.n_answers, (long long)c.fusion.cls_hidden,
             (long long)c.n_head);
    }
}

Weight G(int slot) { return Weight{-1, slot}; }

// An input's rows at the fusion width.
Act projected(Ops& o, Act x, int proj, int bias) {
    return o.has(G(proj)) ? o.linear(x, G(proj), G(bias)) : x;
}

Act image_rows(Ops& o, const ModelConfig& c) {
    return projected(o, o.input(F(c).vision_width, 1), kProjV, kProjVB);
}

// The question's rows (all of them: cross-attention reads every one), or for an image-only model
// the image's.
Act embed(Ops& o, const ModelConfig& c) {
    if (!uses_text(c)) return image_rows(o, c);
    return projected(o, o.input(F(c).text_width, 0), kProjT, kProjTB);
}

// Cross blocks (pre-norm): h += out(attention(q = LN1(h), k = v = image rows)); h += MLP(LN2(h)).
Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    auto W = [l](int slot) { return Weight{l, slot}; };
    const float eps = c.enc.norm_eps;
    Act q = o.linear(o.layernorm(h, W(kLn1), W(kLn1B), eps), W(kWq), W(kBq));
    const Weight wkv[2] = {W(kWk), W(kWv)}, bkv[2] = {W(kBk), W(kBv)};
    Act kv[2];
    o.linear(image_rows(o, c), wkv, bkv, 2, kv);
    const int64_t D = c.n_embd / c.n_head;
    AttentionSpec spec{c.n_head, c.n_head, D, D, 0, 1.0f / std::sqrt(static_cast<float>(D)), nullptr};
    spec.causal = false;
    h = o.linear_residual(l, 0, h, o.attention(l, q, kv[0], kv[1], spec), W(kWo), W(kBo));
    Act x = o.layernorm(h, W(kLn2), W(kLn2B), eps);
    return encoder_family::mlp_residual(o, l, h, x, W(kFc1), W(kFc1B), W(kFc2), W(kFc2B), Activation::kGelu);
}

Act head(Ops&, const ModelConfig&, Act h) { return h; }

// The answer logits (sequences, answers).
Act pool(Ops& o, const ModelConfig& c, Act last) {
    Act f = o.first_rows(last);  // t (the image's first row for an image-only model)
    switch (F(c).kind) {
        case FusionKind::kGated: {
            Act v = o.first_rows(image_rows(o, c));
            Act g = encoder_family::mlp(o, o.concat(f, v), G(kGate1), G(kGate1B), G(kGate2), G(kGate2B),
                                        Activation::kGelu);
            g = o.softmax_rows(g);
            o.observe("gate", g);
            f = o.weighted_sum(g, f, v);
            break;
        }
        case FusionKind::kConcat: f = o.concat(f, o.first_rows(image_rows(o, c))); break;
        case FusionKind::kCross:
        case FusionKind::kText:
        case FusionKind::kImage: break;
    }
    return encoder_family::mlp(o, f, G(kCls1), G(kCls1B), G(kCls2), G(kCls2B), Activation::kGelu);
}

Arch make() {
    return encoder_family::make_arch("fusion", {"llmforge_fusion"}, "LlmforgeFusion", table(), kNumSlots, configure,
                                     write_keys, validate, embed, layer, head, pool);
}

}  // namespace

bool fusion_kind_from_name(const std::string& n, FusionKind* out) {
    if (n == "gated") *out = FusionKind::kGated;
    else if (n == "concat") *out = FusionKind::kConcat;
    else if (n == "cross") *out = FusionKind::kCross;
    else if (n == "text") *out = FusionKind::kText;
    else if (n == "image") *out = FusionKind::kImage;
    else return false;
    return true;
}

const char* fusion_kind_name(FusionKind k) {
    switch (k) {
        case FusionKind::kGated: return "gated";
        case FusionKind::kConcat: return "concat";
        case FusionKind::kCross: return "cross";
        case FusionKind::kText: return "text";
        case FusionKind::kImage: return "image";
    }
    return "?";
}

extern const Arch kFusionArch = make();

}  // namespace llmforge
