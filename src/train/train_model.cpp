#include "train/train_model.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "train/ops.h"

namespace llmforge::train {

namespace {

std::vector<std::pair<std::string, std::vector<int64_t>>> expected_params(const ModelConfig& c) {
    const int64_t C = c.n_embd, Hq = c.n_head * c.head_dim, Hk = c.n_head_kv * c.head_dim, F = c.n_ff;
    std::vector<std::pair<std::string, std::vector<int64_t>>> out;
    out.push_back({"token_embd.weight", {c.n_vocab, C}});
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        out.push_back({p + "attn_norm.weight", {C}});
        out.push_back({p + "attn_q.weight", {Hq, C}});
        out.push_back({p + "attn_k.weight", {Hk, C}});
        out.push_back({p + "attn_v.weight", {Hk, C}});
        if (c.qkv_bias) {
            out.push_back({p + "attn_q.bias", {Hq}});
            out.push_back({p + "attn_k.bias", {Hk}});
            out.push_back({p + "attn_v.bias", {Hk}});
        }
        out.push_back({p + "attn_output.weight", {C, Hq}});
        out.push_back({p + "ffn_norm.weight", {C}});
        out.push_back({p + "ffn_gate.weight", {F, C}});
        out.push_back({p + "ffn_up.weight", {F, C}});
        out.push_back({p + "ffn_down.weight", {C, F}});
    }
    out.push_back({"output_norm.weight", {C}});
    if (!c.tied_embeddings) out.push_back({"output.weight", {c.n_vocab, C}});
    return out;
}

// Deterministic N(0, 1) draws (Box-Muller over splitmix64): the same seed gives the same weights
// on every machine, unlike std::normal_distribution whose algorithm is implementation-defined.
class Gaussian {
public:
    explicit Gaussian(uint64_t seed) : s_(seed) {}
    double next() {
        if (have_) {
            have_ = false;
            return spare_;
        }
        const double u1 = (static_cast<double>(bits() >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = static_cast<double>(bits() >> 11) * 0x1.0p-53;
        const double r = std::sqrt(-2.0 * std::log(u1));
        spare_ = r * std::sin(2 * M_PI * u2);
        have_ = true;
        return r * std::cos(2 * M_PI * u2);
    }

private:
    uint64_t bits() {
        uint64_t z = (s_ += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
    }
    uint64_t s_;
    bool have_ = false;
    double spare_ = 0;
};

}  // namespace

std::unique_ptr<TrainModel> TrainModel::from_files(const ModelFiles& files) {
    // Validates every tensor (names, shapes, dtypes) exactly as inference does.
    const ModelConfig checked = Model::validate(files);
    std::unique_ptr<TrainModel> m(new TrainModel());
    m->cfg_ = checked;
    m->vocab_ = files.vocab;
    const auto& kt = kernels::kernels();
    for (const auto& [name, shape] : expected_params(m->cfg_)) {
        auto it = files.tensors.find(name);
        if (it == files.tensors.end()) fail("%s: tensor '%s' is missing", files.path.c_str(), name.c_str());
        const Tensor& t = it->second;
        auto p = std::make_unique<Param>();
        p->name = name;
        p->shape = shape;
        p->value = FloatBuffer(t.numel(), false);
        p->grad = FloatBuffer(t.numel());
        const int64_t cols = shape.back(), rows = t.numel() / cols;
        auto deq = kt.dequantize_row[static_cast<int>(t.dtype())];
        if (deq == nullptr) fail("%s: tensor '%s' has dtype %s, which cannot be trained", files.path.c_str(),
                                 name.c_str(), dtype_name(t.dtype()));
        for (int64_t r = 0; r < rows; ++r) deq(t.ndim() == 1 ? t.data() : t.row(r), p->value.data() + r * cols, cols);
        m->params_.push_back(std::move(p));
    }
    m->bind();
    return m;
}

std::unique_ptr<TrainModel> TrainModel::init_random(ModelConfig cfg, uint64_t seed) {
    if (cfg.head_dim == 0 && cfg.n_head > 0) cfg.head_dim = cfg.n_embd / cfg.n_head;
    if (cfg.arch == "qwen2") cfg.qkv_bias = true;
    cfg.rope_interleaved = false;
    std::unique_ptr<TrainModel> m(new TrainModel());
    m->cfg_ = cfg;
    Gaussian g(seed);
    const double sd = 0.02, sd_out = 0.02 / std::sqrt(2.0 * std::max<int64_t>(cfg.n_layer, 1));
    for (const auto& [name, shape] : expected_params(cfg)) {
        auto p = std::make_unique<Param>();
        p->name = name;
        p->shape = shape;
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        p->value = FloatBuffer(n);
        p->grad = FloatBuffer(n);
        const bool is_norm = name.find("norm") != std::string::npos;
        const bool is_bias = name.find(".bias") != std::string::npos;
        const bool is_out = name.find("attn_output") != std::string::npos || name.find("ffn_down") != std::string::npos;
        for (int64_t i = 0; i < n; ++i)
            p->value[i] = is_norm ? 1.0f : is_bias ? 0.0f : static_cast<float>(g.next() * (is_out ? sd_out : sd));
        m->params_.push_back(std::move(p));
    }
    m->bind();
    return m;
}

void TrainModel::bind() {
    ModelFiles f;
    f.path = cfg_.name.empty() ? "(training model)" : cfg_.name;
    f.format = "train";
    f.config = cfg_;
    f.vocab = vocab_;
    for (auto& p : params_) {
        std::shared_ptr<const void> none;
        f.tensors[p->name] = Tensor::view(DType::F32, p->shape, p->value.data(), none, p->name);
    }
    infer_ = Model::from_files(std::move(f));
    cfg_ = infer_->config();
    tok_embd_ = find("token_embd.weight");
    output_norm_ = find("output_norm.weight");
    output_ = cfg_.tied_embeddings ? tok_embd_ : find("output.weight");
    layers_.assign(cfg_.n_layer, {});
    for (int64_t l = 0; l < cfg_.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        Layer& L = layers_[l];
        L.attn_norm = find(p + "attn_norm.weight");
        L.wq = find(p + "attn_q.weight");
        L.wk = find(p + "attn_k.weight");
        L.wv = find(p + "attn_v.weight");
        L.bq = find(p + "attn_q.bias");
        L.bk = find(p + "attn_k.bias");
        L.bv = find(p + "attn_v.bias");
        L.wo = find(p + "attn_output.weight");
        L.ffn_norm = find(p + "ffn_norm.weight");
        L.w_gate = find(p + "ffn_gate.weight");
        L.w_up = find(p + "ffn_up.weight");
        L.w_down = find(p + "ffn_down.weight");
    }
    n_ctx_ = 0;
    ensure_ctx(std::max<int64_t>(cfg_.n_ctx_train, 1));
}

void TrainModel::to_rotate_half() {
    if (!cfg_.rope_interleaved) return;
    const int64_t D = cfg_.head_dim, C = cfg_.n_embd;
    std::vector<float> tmp;
    for (auto& p : params_) {
        const bool q = p->name.find(".attn_q.") != std::string::npos, k = p->name.find(".attn_k.") != std::string::npos;
        if (!q && !k) continue;
        const int64_t cols = p->shape.size() == 2 ? C : 1, rows = p->shape[0];
        tmp.assign(p->value.data(), p->value.data() + p->numel());
        for (int64_t r = 0; r < rows; ++r) {  // interleaved row h·D + 2i + j -> rotate-half row h·D + j·D/2 + i
            const int64_t h = r / D, w = r % D, i = w / 2, j = w % 2;
            const int64_t dst = h * D + j * (D / 2) + i;
            std::memcpy(p->value.data() + dst * cols, tmp.data() + r * cols, cols * sizeof(float));
        }
    }
    cfg_.rope_interleaved = false;
    bind();
}

void TrainModel::set_vocab(const Vocab& v) {
    vocab_ = v;
    bind();
}

Param* TrainModel::find(const std::string& name) const {
    for (const auto& p : params_)
        if (p->name == name) return p.get();
    return nullptr;
}

int64_t TrainModel::n_params() const {
    int64_t n = 0;
    for (const auto& p : params_) n += p->numel();
    return n;
}

void TrainModel::ensure_ctx(int64_t n) {
    if (n <= n_ctx_) return;
    const auto& inv = infer_->rope_inv_freq();
    const double ms = infer_->rope_mscale();
    const int64_t half = static_cast<int64_t>(inv.size());
    cos_.resize(static_cast<size_t>(n * half));
    sin_.resize(static_cast<size_t>(n * half));
    for (int64_t p = 0; p < n; ++p)
        for (int64_t i = 0; i < half; ++i) {
            const double a = static_cast<double>(p) * inv[i];
            cos_[p * half + i] = static_cast<float>(std::cos(a) * ms);
            sin_[p * half + i] = static_cast<float>(std::sin(a) * ms);
        }
    n_ctx_ = n;
}

Var TrainModel::forward(Tape& t, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T, float p_drop,
                        uint64_t dropout_seed, const Hook& hook) {
    ensure_ctx(T);
    const ModelConfig& c = cfg_;
    const int64_t N = B * T;
    pos_.resize(static_cast<size_t>(N));
    for (int64_t r = 0; r < N; ++r) pos_[r] = static_cast<int32_t>(r % T);
    auto seed_of = [dropout_seed](int64_t l, int64_t which) {
        return dropout_seed ^ (0x9e3779b97f4a7c15ull * static_cast<uint64_t>(2 * l + which + 1));
    };
    auto mark_ready = [&](std::vector<Param*> ps) {
        if (!on_grad_ready || !t.grad_enabled) return;
        t.on_backward([this, ps] {
            for (Param* p : ps)
                if (p != nullptr) on_grad_ready(p);
        });
    };
    mark_ready({tok_embd_});  // runs last in backward: the embedding's (and tied output's) grad is final
    Var h = embedding(t, t.param(*tok_embd_), inputs, N);  // (N, C)
    if (hook) hook("embed", h);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        Layer& L = layers_[l];
        mark_ready({L.attn_norm, L.wq, L.wk, L.wv, L.bq, L.bk, L.bv, L.wo, L.ffn_norm, L.w_gate, L.w_up, L.w_down});
        auto block = [this, &L, B, T, p_drop, l, seed_of](Tape& t, Var h) {
            const ModelConfig& c = cfg_;
            Var x = rmsnorm(t, h, t.param(*L.attn_norm), c.rms_eps);
            Var q = linear(t, x, t.param(*L.wq), L.bq ? t.param(*L.bq) : nullptr);  // (N, H·D)
            Var k = linear(t, x, t.param(*L.wk), L.bk ? t.param(*L.bk) : nullptr);  // (N, H_kv·D)
            Var v = linear(t, x, t.param(*L.wv), L.bv ? t.param(*L.bv) : nullptr);  // (N, H_kv·D)
            q = rope(t, q, c.head_dim, pos_.data(), cos_.data(), sin_.data(), c.rope_interleaved);
            k = rope(t, k, c.head_dim, pos_.data(), cos_.data(), sin_.data(), c.rope_interleaved);
            Var a = attention(t, q, k, v, B, T, c.n_head, c.n_head_kv);  // (N, H·D)
            Var o = dropout(t, linear(t, a, t.param(*L.wo)), p_drop, seed_of(l, 0));
            h = add(t, h, o);
            x = rmsnorm(t, h, t.param(*L.ffn_norm), c.rms_eps);
            Var f = swiglu(t, linear(t, x, t.param(*L.w_gate)), linear(t, x, t.param(*L.w_up)));  // (N, F)
            f = dropout(t, linear(t, f, t.param(*L.w_down)), p_drop, seed_of(l, 1));
            return add(t, h, f);
        };
        h = checkpoint_activations ? checkpoint(t, h, block) : block(t, h);
        if (hook) hook("layers." + std::to_string(l) + ".out", h);
    }
    mark_ready({output_norm_, output_ == tok_embd_ ? nullptr : output_});
    h = rmsnorm(t, h, t.param(*output_norm_), c.rms_eps);
    if (hook) hook("final_norm", h);
    Var logits = linear(t, h, t.param(*output_));  // (N, V)
    if (hook) hook("logits", logits);
    return cross_entropy(t, logits, targets, N);
}

}  // namespace llmforge::train
