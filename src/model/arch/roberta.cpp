// RoBERTa (Liu et al. 2019; Hugging Face RobertaModel): a bidirectional text encoder with learned
// positions, written once against Ops for the engine and the trainer.
//
//   LN(word[id] + token_type[0] + position[offset + i])     offset = pad_token_id + 1 (RoBERTa's
//                                                           numbering of real tokens)
//   → n × post-norm blocks:  h = LN1(h + out(attention(h)))   bidirectional over the sequence's
//                            h = LN2(h + fc2(act(fc1(h))))    real tokens (padding masked as keys)
//   → last hidden state; pooled: tanh(dense(row 0)) (the <s> token's).
// Sequences are right-padded to one length (Model::encode_tokens / TrainModel::encode_tokens with
// each sequence's length): padded rows still get outputs, which nothing should read — HF gives them
// position padding_idx, here they continue the numbering, so only real rows match HF's.
#include <cmath>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/encoder.h"

namespace llmforge {

namespace {

enum Slot {
    kWord, kPos, kType, kEmbNorm, kEmbNormB, kPooler, kPoolerB,
    kWq, kBq, kWk, kBk, kWv, kBv, kWo, kBo, kLn1, kLn1B, kFc1, kFc1B, kFc2, kFc2B, kLn2, kLn2B,
    kNumSlots
};

using Shape = std::vector<int64_t>;
Shape s_word(const ModelConfig& c, int64_t) { return {c.n_vocab, c.n_embd}; }
Shape s_pos(const ModelConfig& c, int64_t) { return {c.n_ctx_train + c.enc.position_offset, c.n_embd}; }
Shape s_type(const ModelConfig& c, int64_t) { return {1, c.n_embd}; }
Shape s_embd(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_sq(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_embd}; }
Shape s_up(const ModelConfig& c, int64_t) { return {c.n_ff, c.n_embd}; }
Shape s_ff(const ModelConfig& c, int64_t) { return {c.n_ff}; }
Shape s_down(const ModelConfig& c, int64_t) { return {c.n_embd, c.n_ff}; }

std::vector<TensorSpec> table() {
    using U = TensorUse;
#define L "encoder.layer.{l}."
    return {
        {kWord, "t.token_embd.weight", "embeddings.word_embeddings.weight", false, U::kRows, Init::kNormal, s_word},
        {kPos, "t.position_embd.weight", "embeddings.position_embeddings.weight", false, U::kRows, Init::kNormal, s_pos},
        {kType, "t.token_type_embd.weight", "embeddings.token_type_embeddings.weight", false, U::kRows, Init::kNormal,
         s_type},
        {kEmbNorm, "t.embd_norm.weight", "embeddings.LayerNorm.weight", false, U::kVector, Init::kOnes, s_embd},
        {kEmbNormB, "t.embd_norm.bias", "embeddings.LayerNorm.bias", false, U::kVector, Init::kZeros, s_embd},
        // RobertaModel(add_pooling_layer=False) has none.
        {kPooler, "t.pooler.weight", "pooler.dense.weight", false, U::kMatrix, Init::kNormal, s_sq, nullptr, true},
        {kPoolerB, "t.pooler.bias", "pooler.dense.bias", false, U::kVector, Init::kZeros, s_embd, nullptr, true},
        {kWq, "t.blk.{l}.attn_q.weight", L "attention.self.query.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBq, "t.blk.{l}.attn_q.bias", L "attention.self.query.bias", true, U::kVector, Init::kZeros, s_embd},
        {kWk, "t.blk.{l}.attn_k.weight", L "attention.self.key.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBk, "t.blk.{l}.attn_k.bias", L "attention.self.key.bias", true, U::kVector, Init::kZeros, s_embd},
        {kWv, "t.blk.{l}.attn_v.weight", L "attention.self.value.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBv, "t.blk.{l}.attn_v.bias", L "attention.self.value.bias", true, U::kVector, Init::kZeros, s_embd},
        {kWo, "t.blk.{l}.attn_out.weight", L "attention.output.dense.weight", true, U::kMatrix, Init::kResidualOut, s_sq},
        {kBo, "t.blk.{l}.attn_out.bias", L "attention.output.dense.bias", true, U::kVector, Init::kZeros, s_embd},
        {kLn1, "t.blk.{l}.attn_norm.weight", L "attention.output.LayerNorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kLn1B, "t.blk.{l}.attn_norm.bias", L "attention.output.LayerNorm.bias", true, U::kVector, Init::kZeros, s_embd},
        {kFc1, "t.blk.{l}.ffn_up.weight", L "intermediate.dense.weight", true, U::kMatrix, Init::kNormal, s_up},
        {kFc1B, "t.blk.{l}.ffn_up.bias", L "intermediate.dense.bias", true, U::kVector, Init::kZeros, s_ff},
        {kFc2, "t.blk.{l}.ffn_down.weight", L "output.dense.weight", true, U::kMatrix, Init::kResidualOut, s_down},
        {kFc2B, "t.blk.{l}.ffn_down.bias", L "output.dense.bias", true, U::kVector, Init::kZeros, s_embd},
        {kLn2, "t.blk.{l}.ffn_norm.weight", L "output.LayerNorm.weight", true, U::kVector, Init::kOnes, s_embd},
        {kLn2B, "t.blk.{l}.ffn_norm.bias", L "output.LayerNorm.bias", true, U::kVector, Init::kZeros, s_embd},
    };
#undef L
}

void configure(ModelConfig& c, const ConfigSource& src) {
    using encoder_family::need;
    const std::string& where = src.where();
    c.n_vocab = need(src, "vocab_size");
    c.n_embd = need(src, "hidden_size");
    c.n_ff = need(src, "intermediate_size");
    c.n_layer = need(src, "num_hidden_layers");
    c.n_head = c.n_head_kv = need(src, "num_attention_heads");
    c.head_dim = c.n_embd / c.n_head;
    const int64_t positions = need(src, "max_position_embeddings");
    const int64_t pad = src.integer("pad_token_id", "pad_token_id").value_or(1);
    if (pad < 0 || pad + 2 > positions) {
        fail("%s: pad_token_id %lld leaves no positions of the %lld (RoBERTa numbers tokens from pad_token_id + 1)",
             where.c_str(), (long long)pad, (long long)positions);
    }
    c.enc.pad_token = pad;
    c.enc.position_offset = pad + 1;
    c.n_ctx_train = positions - c.enc.position_offset;
    if (src.integer("type_vocab_size", "type_vocab_size").value_or(1) != 1) {
        fail("%s: \"type_vocab_size\" is not 1; llmforge's RoBERTa gives every token type 0 (expected 1)", where.c_str());
    }
    const std::string pet = src.string("position_embedding_type", "position_embedding_type").value_or("absolute");
    if (pet != "absolute") {
        fail("%s: \"position_embedding_type\" is '%s', expected 'absolute'", where.c_str(), pet.c_str());
    }
    const std::string act = src.string("hidden_act", "hidden_act").value_or("gelu");
    if (!activation_from_name(act, &c.enc.act)) {
        fail("%s: \"hidden_act\" is '%s', expected gelu, gelu_new or quick_gelu", where.c_str(), act.c_str());
    }
    const double eps = src.number("layer_norm_eps", "layer_norm_eps").value_or(1e-12);
    if (!(eps > 0 && eps < 1)) fail("%s: \"layer_norm_eps\" is %g, expected in (0, 1)", where.c_str(), eps);
    c.enc.norm_eps = static_cast<float>(eps);
}

void write_keys(const ModelConfig& c, ConfigSink& sink) {
    sink.integer("vocab_size", "vocab_size", c.n_vocab);
    sink.integer("hidden_size", "hidden_size", c.n_embd);
    sink.integer("intermediate_size", "intermediate_size", c.n_ff);
    sink.integer("num_hidden_layers", "num_hidden_layers", c.n_layer);
    sink.integer("num_attention_heads", "num_attention_heads", c.n_head);
    sink.integer("max_position_embeddings", "max_position_embeddings", c.n_ctx_train + c.enc.position_offset);
    sink.integer("pad_token_id", "pad_token_id", c.enc.pad_token);
    sink.integer("type_vocab_size", "type_vocab_size", 1);
    sink.string("position_embedding_type", "position_embedding_type", "absolute");
    sink.string("hidden_act", "hidden_act", activation_name(c.enc.act));
    sink.number("layer_norm_eps", "layer_norm_eps", c.enc.norm_eps);
}

void validate(const ModelConfig& c, const std::string& where) {
    if (c.n_vocab <= 0 || c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_ff <= 0 || c.n_embd % c.n_head != 0 ||
        c.n_ctx_train <= 0) {
        fail("%s: bad RoBERTa hyper-parameters: vocab %lld, hidden %lld, layers %lld, heads %lld, ffn %lld, positions "
             "%lld (expected all > 0 and whole heads)",
             where.c_str(), (long long)c.n_vocab, (long long)c.n_embd, (long long)c.n_layer, (long long)c.n_head,
             (long long)c.n_ff, (long long)c.n_ctx_train);
    }
}

Weight G(int slot) { return Weight{-1, slot}; }

Act embed(Ops& o, const ModelConfig& c) {
    Act x = o.embed(G(kWord));
    x = o.add_row(x, G(kType), 0);
    x = o.add_positions(x, G(kPos), c.enc.position_offset);
    return o.layernorm(x, G(kEmbNorm), G(kEmbNormB), c.enc.norm_eps);
}

Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    auto W = [l](int slot) { return Weight{l, slot}; };
    const float eps = c.enc.norm_eps;
    const Weight qkv[3] = {W(kWq), W(kWk), W(kWv)}, qkv_b[3] = {W(kBq), W(kBk), W(kBv)};
    h = o.layernorm(encoder_family::self_attention_residual(o, l, h, h, c.n_head, qkv, qkv_b, W(kWo), W(kBo)), W(kLn1),
                    W(kLn1B), eps);
    return o.layernorm(encoder_family::mlp_residual(o, l, h, h, W(kFc1), W(kFc1B), W(kFc2), W(kFc2B), c.enc.act),
                       W(kLn2), W(kLn2B), eps);
}

Act head(Ops&, const ModelConfig&, Act h) { return h; }

Act pool(Ops& o, const ModelConfig&, Act last) {
    Act p = o.first_rows(last);
    if (!o.has(G(kPooler))) return p;
    return o.linear_act(p, G(kPooler), G(kPoolerB), Activation::kTanh);
}

Arch make() {
    Arch a = encoder_family::make_arch("roberta", {"roberta", "xlm-roberta"}, "RobertaModel", table(), kNumSlots,
                                       configure, write_keys, validate, embed, layer, head, pool);
    a.text_input = true;
    return a;
}

}  // namespace

extern const Arch kRobertaArch = make();

}  // namespace llmforge
