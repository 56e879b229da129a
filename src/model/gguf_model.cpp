#include "model/gguf_model.h"

#include <cmath>

#include "core/error.h"
#include "io/byte_reader.h"
#include "model/arch/arch.h"

namespace llmforge {

using io_detail::printable;

namespace {

constexpr int64_t kMaxSize = int64_t{1} << 31;

// An architecture's own keys (model/arch/arch.h) as "<arch>.<key>" metadata.
class GgufSource final : public ConfigSource {
public:
    GgufSource(const GgufFile& f, const std::string& arch) : f_(f), a_(arch + ".") {}
    bool is_gguf() const override { return true; }
    std::optional<int64_t> integer(const char*, const char* key) const override {
        if (key == nullptr) return std::nullopt;
        return f_.get_int_opt(a_ + key);
    }
    std::optional<bool> boolean(const char*, const char* key) const override {
        if (key == nullptr) return std::nullopt;
        return f_.get_opt<bool>(a_ + key);
    }
    std::optional<double> number(const char*, const char* key) const override {
        if (key == nullptr) return std::nullopt;
        return f_.get_float_opt(a_ + key);
    }
    std::optional<std::string> string(const char*, const char* key) const override {
        if (key == nullptr) return std::nullopt;
        return f_.get_opt<std::string>(a_ + key);
    }
    bool has_tensor(const std::string& name) const override { return f_.has_tensor(name); }
    const std::string& where() const override { return f_.path(); }

private:
    const GgufFile& f_;
    std::string a_;
};

// Positive integer metadata in [1, 2^31).
int64_t size_value(const GgufFile& f, const std::string& key, int64_t v) {
    if (v < 1 || v >= kMaxSize) {
        fail("%s: key '%s' is %lld, expected a positive integer below 2^31 (corrupt file?)",
             f.path().c_str(), key.c_str(), static_cast<long long>(v));
    }
    return v;
}
int64_t req_size(const GgufFile& f, const std::string& key) {
    return size_value(f, key, f.get_int(key));
}
int64_t opt_size(const GgufFile& f, const std::string& key, int64_t dflt) {
    auto v = f.get_int_opt(key);
    return v ? size_value(f, key, *v) : dflt;
}
float positive_float(const GgufFile& f, const std::string& key, double v) {
    if (!(v > 0) || !std::isfinite(v)) {
        fail("%s: key '%s' is %g, expected a positive number (corrupt file?)", f.path().c_str(),
             key.c_str(), v);
    }
    return static_cast<float>(v);
}

}  // namespace

ModelConfig gguf_read_config(const GgufFile& f) {
    const char* file = f.path().c_str();
    if (!f.has("general.architecture")) {
        fail("%s: key 'general.architecture' not found (hint: not a model GGUF, or converted by an "
             "old tool)",
             file);
    }
    ModelConfig c;
    c.arch = f.get_string("general.architecture");
    const Arch* arch = find_arch(c.arch);
    if (arch == nullptr) {
        fail("%s: architecture '%s' is not supported (supported: %s)", file, printable(c.arch).c_str(),
             supported_archs().c_str());
    }
    if (auto n = f.get_opt<std::string>("general.name")) c.name = *n;
    const std::string a = c.arch + ".";

    c.n_embd = req_size(f, a + "embedding_length");
    c.n_layer = req_size(f, a + "block_count");
    c.n_ff = req_size(f, a + "feed_forward_length");
    c.n_head = req_size(f, a + "attention.head_count");
    c.n_head_kv = opt_size(f, a + "attention.head_count_kv", c.n_head);
    c.n_ctx_train = req_size(f, a + "context_length");
    const std::string eps_key = a + "attention.layer_norm_rms_epsilon";
    const double eps = f.get_float(eps_key);
    if (!(eps > 0 && eps < 1)) {
        fail("%s: key '%s' is %g, expected in (0, 1) (corrupt file?)", file, eps_key.c_str(), eps);
    }
    c.rms_eps = static_cast<float>(eps);
    c.rope_theta = positive_float(f, a + "rope.freq_base",
                                  f.get_float_opt(a + "rope.freq_base").value_or(10000.0));

    if (c.n_head % c.n_head_kv != 0) {
        fail("%s: attention.head_count %lld is not a multiple of attention.head_count_kv %lld "
             "(corrupt file?)",
             file, static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv));
    }
    if (auto kl = f.get_int_opt(a + "attention.key_length")) {
        c.head_dim = size_value(f, a + "attention.key_length", *kl);
    } else {
        if (c.n_embd % c.n_head != 0) {
            fail("%s: embedding_length %lld is not a multiple of attention.head_count %lld and "
                 "there is no attention.key_length (corrupt file?)",
                 file, static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head));
        }
        c.head_dim = c.n_embd / c.n_head;
    }
    if (auto vl = f.get_int_opt(a + "attention.value_length"); vl && *vl != c.head_dim) {
        c.head_dim_v = size_value(f, a + "attention.value_length", *vl);  // values have their own size
    }
    if (c.head_dim % 2 != 0) {
        fail("%s: head dimension %lld is odd, expected even (RoPE rotates pairs)", file,
             static_cast<long long>(c.head_dim));
    }
    if (auto rd = f.get_int_opt(a + "rope.dimension_count"); rd && *rd != c.head_dim) {
        if (*rd < 2 || *rd > c.head_dim || *rd % 2 != 0) {
            fail("%s: rope.dimension_count is %lld, expected an even number in 2..%lld (the head dimension)", file,
                 static_cast<long long>(*rd), static_cast<long long>(c.head_dim));
        }
        c.n_rot = *rd;  // partial rotary embedding: the architecture says whether it supports it
    }

    if (auto v = f.get_int_opt(a + "vocab_size")) {
        c.n_vocab = size_value(f, a + "vocab_size", *v);
    } else if (const GgufValue* t = f.find("tokenizer.ggml.tokens"); t && t->array_size() > 0) {
        c.n_vocab = static_cast<int64_t>(t->array_size());
    } else if (const GgufTensorInfo* e = f.find_tensor("token_embd.weight")) {
        c.n_vocab = e->shape[0];
    } else {
        fail("%s: cannot tell the vocabulary size: no '%svocab_size', no tokenizer.ggml.tokens and "
             "no token_embd.weight (incomplete file?)",
             file, a.c_str());
    }

    // RoPE scaling.
    if (auto t = f.get_opt<std::string>("llmforge.rope.scaling.type"); t && *t == "llama3") {
        c.rope_scaling = RopeScaling::kLlama3;
        const std::string p = "llmforge.rope.scaling.";
        c.rope_factor = positive_float(f, p + "factor", f.get_float(p + "factor"));
        c.rope_low_freq_factor =
            positive_float(f, p + "low_freq_factor", f.get_float(p + "low_freq_factor"));
        c.rope_high_freq_factor =
            positive_float(f, p + "high_freq_factor", f.get_float(p + "high_freq_factor"));
        c.rope_orig_ctx = req_size(f, p + "original_context_length");
    } else {
        const std::string s = a + "rope.scaling.";
        const auto type = f.get_opt<std::string>(s + "type");
        const auto factor = f.get_float_opt(s + "factor");
        // llama.cpp: the type defaults to linear; a factor of 0 or 1 means no scaling.
        const bool scaled = factor && *factor != 0.0 && *factor != 1.0;
        const std::string ty = type ? *type : (scaled ? "linear" : "none");
        if (ty == "none" || (ty == "linear" && !scaled)) {
            c.rope_scaling = RopeScaling::kNone;
        } else if (ty == "linear") {
            c.rope_scaling = RopeScaling::kLinear;
            c.rope_factor = positive_float(f, s + "factor", *factor);
        } else if (ty == "yarn") {
            c.rope_scaling = RopeScaling::kYarn;
            c.rope_factor = positive_float(f, s + "factor", f.get_float(s + "factor"));
            c.rope_orig_ctx = opt_size(f, s + "original_context_length", c.n_ctx_train);
            if (auto af = f.get_float_opt(s + "attn_factor")) {
                c.yarn_attn_factor = positive_float(f, s + "attn_factor", *af);
            }
            if (auto b = f.get_float_opt("llmforge.rope.scaling.yarn_beta_fast")) {
                c.yarn_beta_fast = static_cast<float>(*b);
            }
            if (auto b = f.get_float_opt("llmforge.rope.scaling.yarn_beta_slow")) {
                c.yarn_beta_slow = static_cast<float>(*b);
            }
        } else {
            fail("%s: key '%stype' is '%s', which llmforge does not support (supported: none, "
                 "linear, yarn)",
                 file, s.c_str(), printable(ty).c_str());
        }
    }

    c.rope_interleaved = arch->gguf_rope_interleaved;
    c.tied_embeddings = !f.has_tensor("output.weight");
    c.qkv_bias = f.has_tensor("blk.0.attn_q.bias");
    if (arch->configure != nullptr) arch->configure(c, GgufSource(f, c.arch));
    lsh_configure(c, GgufSource(f, c.arch));
    return c;
}

Vocab gguf_read_vocab(const GgufFile& f) {
    const char* file = f.path().c_str();
    Vocab v;
    if (!f.has("tokenizer.ggml.model")) {
        fail("%s: key 'tokenizer.ggml.model' not found: the file has no vocabulary (hint: use a "
             "GGUF converted with its tokenizer)",
             file);
    }
    v.model = f.get_string("tokenizer.ggml.model");
    if (auto p = f.get_opt<std::string>("tokenizer.ggml.pre")) v.pre = *p;
    v.tokens = f.get_array<std::string>("tokenizer.ggml.tokens");
    const size_t n = v.tokens.size();
    if (n == 0) fail("%s: tokenizer.ggml.tokens is empty, expected at least one token", file);
    if (const GgufValue* s = f.find("tokenizer.ggml.scores")) {
        v.scores = s->to_float_array(f.key_ctx("tokenizer.ggml.scores"));
        if (v.scores.size() != n) {
            fail("%s: tokenizer.ggml.scores has %zu entries, expected %zu (one per token)", file,
                 v.scores.size(), n);
        }
    }
    if (const GgufValue* t = f.find("tokenizer.ggml.token_type")) {
        const std::vector<int64_t> raw = t->to_int_array(f.key_ctx("tokenizer.ggml.token_type"));
        if (raw.size() != n) {
            fail("%s: tokenizer.ggml.token_type has %zu entries, expected %zu (one per token)",
                 file, raw.size(), n);
        }
        v.types.reserve(n);
        for (int64_t x : raw) {
            v.types.push_back(x >= 0 && x <= 6 ? static_cast<TokenType>(x) : TokenType::kUndefined);
        }
    }
    if (f.has("tokenizer.ggml.merges")) {
        v.merges = f.get_array<std::string>("tokenizer.ggml.merges");
    } else if (v.model == "gpt2") {
        fail("%s: key 'tokenizer.ggml.merges' not found, but a gpt2 (byte-level BPE) vocabulary "
             "needs it (incomplete conversion?)",
             file);
    }

    // Defaults per tokenizer model, as llama.cpp's llama_vocab::load.
    v.bos_id = v.eos_id = v.unk_id = v.pad_id = -1;
    v.add_eos = false;
    if (v.model == "llama") {
        v.bos_id = 1;
        v.eos_id = 2;
        v.unk_id = 0;
        v.add_bos = true;
        v.add_space_prefix = true;
    } else if (v.model == "bert") {  // [CLS] text [SEP]
        v.bos_id = 101;
        v.eos_id = 102;
        v.unk_id = 100;
        v.pad_id = 0;
        v.add_bos = true;
        v.add_eos = true;
        v.add_space_prefix = false;
    } else if (v.model == "gpt2") {
        v.add_space_prefix = false;
        v.add_bos = v.pre == "llama3" || v.pre == "llama-v3" || v.pre == "llama-bpe" ||
                    v.pre == "falcon3" || v.pre == "tekken" || v.pre == "chameleon";
    } else {
        v.add_bos = false;
        v.add_space_prefix = false;
    }
    auto special = [&](const char* key, int32_t& id) {
        if (id >= static_cast<int64_t>(n)) id = -1;
        if (const GgufValue* x = f.find(key)) {
            const int64_t val = x->to_int(f.key_ctx(key));
            if (val >= 0 && val < static_cast<int64_t>(n)) id = static_cast<int32_t>(val);
        }
    };
    if (v.model == "bert") {
        special("tokenizer.ggml.cls_token_id", v.bos_id);
        special("tokenizer.ggml.seperator_token_id", v.eos_id);  // sic: llama.cpp's key
    }
    special("tokenizer.ggml.bos_token_id", v.bos_id);
    special("tokenizer.ggml.eos_token_id", v.eos_id);
    special("tokenizer.ggml.unknown_token_id", v.unk_id);
    special("tokenizer.ggml.padding_token_id", v.pad_id);
    if (auto b = f.get_opt<bool>("tokenizer.ggml.add_bos_token")) v.add_bos = *b;
    if (auto b = f.get_opt<bool>("tokenizer.ggml.add_eos_token")) v.add_eos = *b;
    if (auto b = f.get_opt<bool>("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;
    if (auto t = f.get_opt<std::string>("tokenizer.chat_template")) v.chat_template = *t;
    return v;
}

void gguf_write_config(GgufWriter& w, const ModelConfig& c) {
    const Arch* arch = find_arch(c.arch);
    if (arch == nullptr) {
        fail("GGUF writer: architecture '%s' is not supported (supported: %s)", printable(c.arch).c_str(),
             supported_archs().c_str());
    }
    if (c.rope_interleaved != arch->gguf_rope_interleaved) {
        fail("GGUF writer: a %s GGUF uses %s RoPE, but the config has rope_interleaved = %s "
             "(hint: %s)",
             c.arch.c_str(), arch->gguf_rope_interleaved ? "interleaved" : "rotate-half",
             c.rope_interleaved ? "true" : "false",
             arch->gguf_rope_interleaved ? "permute the attn_q/attn_k rows as convert_hf_to_gguf.py does, "
                                           "then set rope_interleaved = true"
                                         : "its checkpoints are rotate-half; do not permute them");
    }
    auto u32 = [&](const char* what, int64_t v) {
        if (v < 1 || v > static_cast<int64_t>(UINT32_MAX)) {
            fail("GGUF writer: %s is %lld, expected 1..%u", what, static_cast<long long>(v),
                 UINT32_MAX);
        }
        return static_cast<uint32_t>(v);
    };
    const std::string a = c.arch + ".";
    w.set("general.architecture", c.arch);
    if (!c.name.empty()) w.set("general.name", c.name);
    w.set("general.quantization_version", uint32_t{2});
    w.set(a + "context_length", u32("n_ctx_train", c.n_ctx_train));
    w.set(a + "embedding_length", u32("n_embd", c.n_embd));
    // llama.cpp counts DeepSeek's multi-token-prediction blocks in block_count (nextn_predict_layers).
    w.set(a + "block_count", u32("n_layer", c.n_block()));
    w.set(a + "feed_forward_length", u32("n_ff", c.n_ff));
    w.set(a + "rope.dimension_count", u32("rope dims", c.rot_dim()));
    w.set(a + "attention.head_count", u32("n_head", c.n_head));
    w.set(a + "attention.head_count_kv", u32("n_head_kv", c.n_head_kv));
    w.set(a + "attention.layer_norm_rms_epsilon", c.rms_eps);
    w.set(a + "rope.freq_base", c.rope_theta);
    if (c.n_vocab > 0) w.set(a + "vocab_size", u32("n_vocab", c.n_vocab));
    if (c.head_dim * c.n_head != c.n_embd || c.v_dim() != c.head_dim) {
        w.set(a + "attention.key_length", u32("head_dim", c.head_dim));
        w.set(a + "attention.value_length", u32("head_dim_v", c.v_dim()));
    }
    const std::string s = a + "rope.scaling.";
    switch (c.rope_scaling) {
        case RopeScaling::kNone: break;
        case RopeScaling::kLinear:
            w.set(s + "type", "linear");
            w.set(s + "factor", c.rope_factor);
            break;
        case RopeScaling::kYarn:
            w.set(s + "type", "yarn");
            w.set(s + "factor", c.rope_factor);
            w.set(s + "original_context_length",
                  u32("rope_orig_ctx", c.rope_orig_ctx > 0 ? c.rope_orig_ctx : c.n_ctx_train));
            // DeepSeek's cos/sin factor is derived from its own keys (arch/deepseek2.cpp).
            if (c.yarn_attn_factor != 1.0f && c.ds.kv_lora_rank == 0) w.set(s + "attn_factor", c.yarn_attn_factor);
            if (c.yarn_beta_fast != 32.0f) w.set("llmforge.rope.scaling.yarn_beta_fast", c.yarn_beta_fast);
            if (c.yarn_beta_slow != 1.0f) w.set("llmforge.rope.scaling.yarn_beta_slow", c.yarn_beta_slow);
            break;
        case RopeScaling::kLlama3:
            // Not expressible in llama.cpp metadata (it uses a rope_freqs.weight tensor).
            w.set("llmforge.rope.scaling.type", "llama3");
            w.set("llmforge.rope.scaling.factor", c.rope_factor);
            w.set("llmforge.rope.scaling.low_freq_factor", c.rope_low_freq_factor);
            w.set("llmforge.rope.scaling.high_freq_factor", c.rope_high_freq_factor);
            w.set("llmforge.rope.scaling.original_context_length",
                  u32("rope_orig_ctx", c.rope_orig_ctx));
            break;
    }
    struct Sink final : ConfigSink {
        GgufWriter& w;
        const std::string& a;
        Sink(GgufWriter& ww, const std::string& aa) : w(ww), a(aa) {}
        void integer(const char*, const char* key, std::optional<int64_t> v) override {
            if (key == nullptr || !v) return;
            if (*v < 0 || *v > static_cast<int64_t>(UINT32_MAX)) fail("GGUF writer: %s%s is %lld, expected 0..%u", a.c_str(), key, (long long)*v, UINT32_MAX);
            w.set(a + key, static_cast<uint32_t>(*v));
        }
        void boolean(const char*, const char* key, bool v) override {
            if (key != nullptr) w.set(a + key, v);
        }
        void number(const char*, const char* key, double v) override {
            if (key != nullptr) w.set(a + key, static_cast<float>(v));
        }
        void string(const char*, const char* key, const std::string& v) override {
            if (key != nullptr) w.set(a + key, v);
        }
    } sink(w, a);
    if (arch->write_keys != nullptr) arch->write_keys(c, sink);
    lsh_write_keys(c, sink);
}

void gguf_write_vocab(GgufWriter& w, const Vocab& v) {
    const size_t n = v.tokens.size();
    if (n == 0) fail("GGUF writer: the vocabulary has no tokens");
    if (v.model.empty()) fail("GGUF writer: the vocabulary has no model name (llama, gpt2, ...)");
    if (n > static_cast<size_t>(INT32_MAX)) fail("GGUF writer: too many tokens (%zu)", n);
    if (!v.scores.empty() && v.scores.size() != n) {
        fail("GGUF writer: the vocabulary has %zu scores for %zu tokens", v.scores.size(), n);
    }
    if (!v.types.empty() && v.types.size() != n) {
        fail("GGUF writer: the vocabulary has %zu token types for %zu tokens", v.types.size(), n);
    }
    w.set("tokenizer.ggml.model", v.model);
    if (!v.pre.empty()) w.set("tokenizer.ggml.pre", v.pre);
    w.set("tokenizer.ggml.tokens", v.tokens);
    if (!v.scores.empty()) w.set("tokenizer.ggml.scores", v.scores);
    if (!v.types.empty()) {
        std::vector<int32_t> t(n);
        for (size_t i = 0; i < n; ++i) t[i] = static_cast<int32_t>(v.types[i]);
        w.set("tokenizer.ggml.token_type", std::move(t));
    }
    if (!v.merges.empty()) w.set("tokenizer.ggml.merges", v.merges);
    auto special = [&](const char* key, int32_t id) {
        if (id < 0) return;
        if (static_cast<size_t>(id) >= n) {
            fail("GGUF writer: %s is %d, outside the vocabulary of %zu tokens", key, id, n);
        }
        w.set(key, static_cast<uint32_t>(id));
    };
    if (v.model == "bert") {
        special("tokenizer.ggml.cls_token_id", v.bos_id);
        special("tokenizer.ggml.seperator_token_id", v.eos_id);  // sic: llama.cpp's key
    }
    special("tokenizer.ggml.bos_token_id", v.bos_id);
    special("tokenizer.ggml.eos_token_id", v.eos_id);
    special("tokenizer.ggml.unknown_token_id", v.unk_id);
    special("tokenizer.ggml.padding_token_id", v.pad_id);
    w.set("tokenizer.ggml.add_bos_token", v.add_bos);
    w.set("tokenizer.ggml.add_eos_token", v.add_eos);
    w.set("tokenizer.ggml.add_space_prefix", v.add_space_prefix);
    if (!v.chat_template.empty()) w.set("tokenizer.chat_template", v.chat_template);
}

}  // namespace llmforge
