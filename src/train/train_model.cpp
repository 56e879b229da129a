#include "train/train_model.h"

#include <cmath>
#include <cstring>
#include <unordered_set>

#include "core/error.h"
#include "core/random.h"
#include "kernels/cpu/kernels.h"
#include "model/rope.h"
#include "train/encoder_ops.h"
#include "train/lsh_ops.h"
#include "train/moe_ops.h"
#include "train/ops.h"

namespace llmforge::train {

// ------------------------------------------------------------------------------------ TapeOps

// The tape backend of the op interface (model/arch/arch.h): every op records its forward and
// backward (train/ops.h). Rows are B sequences of T positions; positions restart at 0 per
// sequence. Frozen weights go through the *_frozen ops.
class TapeOps final : public Ops {
public:
    struct Batch {
        const int32_t* ids;
        int64_t B, T;
        const int32_t* doc_start;  // packed rows: (B·T) first row of each row's document; null: none
        const int32_t* given_doc_start;  // the caller's (B·T_tokens) buffer doc_start was made from
        float p_drop;
        uint64_t dropout_seed;
        const TrainModel::Hook* hook;
        bool count = false;  // MoE statistics go to TrainModel::moe_stats (a step's forward, not a recomputation)
        // Encoders (TrainModel::encode): the input rows (B·T, input_cols), whether they get a
        // gradient, and each sequence's valid length (null: all T).
        const float* input = nullptr;
        int64_t input_cols = 0;
        Var in_vars[2] = {nullptr, nullptr};  // a fusion model's inputs: the encoders' output nodes
        bool input_grad = false;
        const int32_t* lengths = nullptr;
    };
    TapeOps(Tape& t, TrainModel& m, const Batch& b) : t_(t), m_(m), b_(b) {}
    using Ops::linear;

    bool has(Weight w) const override { return m_.param(w) != nullptr; }

    Act embed(Weight table) override {
        Param& p = P(table);
        embedded_ = &p;
        mark({&p});  // runs last in backward: the embedding's (and a tied output's) grad is final
        const int64_t N = b_.B * b_.T;
        Var rows = p.trainable ? embedding(t_, weight(p), b_.ids, N) : embedding_frozen(t_, p.frozen, b_.ids, N);
        if (!m_.embed_offset.empty()) {
            // FGM's perturbation: a constant added to the rows (the lookup's backward never reads them).
            LF_ASSERT(static_cast<int64_t>(m_.embed_offset.size()) == rows->numel);
            for (int64_t i = 0; i < rows->numel; ++i) rows->data[i] += m_.embed_offset[i];
        }
        if (m_.need_embed_grad && t_.grad_enabled) rows->requires_grad = rows->keep = true;  // FGM reads its gradient
        m_.last_embed = rows;
        if (!m_.input_rows) return act(rows);
        Var out = m_.input_rows(t_, rows, b_.B);
        const int64_t T2 = out->numel / out->shape.back() / b_.B;
        LF_ASSERT(T2 >= b_.T && T2 * b_.B * out->shape.back() == out->numel);
        if (T2 != b_.T) {  // added rows first: positions 0..T2-T-1, the tokens' follow
            m_.set_positions(b_.B, T2, b_.given_doc_start, T2 - b_.T);
            b_.T = T2;
            b_.doc_start = m_.doc_.empty() ? nullptr : m_.doc_.data();
        }
        return act(out);
    }
    Act rmsnorm(Act x, Weight gain, float eps) override { return act(train::rmsnorm(t_, V(x), t_.param(P(gain)), eps)); }
    Act head_rmsnorm(Act x, Weight gain, int64_t D, float eps) override {
        const Var v = V(x);
        const int64_t N = v->numel / v->shape.back();
        Var heads = reshape(t_, v, {v->numel / D, D});
        return act(reshape(t_, train::rmsnorm(t_, heads, t_.param(P(gain)), eps), {N, v->shape.back()}));
    }
    void linear(Act x, const Weight* w, const Weight* bias, int n, Act* out) override {
        for (int i = 0; i < n; ++i) {
            Param* b = bias[i].slot >= 0 ? m_.param(bias[i]) : nullptr;
            Var bv = b != nullptr ? t_.param(*b) : nullptr;
            out[i] = product(x, w[i], bv);
        }
    }
    Act rope(Act x, int64_t D) override {
        const ModelConfig& c = m_.cfg_;
        // A product's output (q or k on its way to attention) is read by nothing but RoPE: rotated
        // in place, so the unrotated copy is not kept through backward.
        const bool in_place = products_.count(V(x)) != 0;
        return act(train::rope(t_, V(x), D, m_.pos_.data(), m_.cos_.data(), m_.sin_.data(), c.rope_interleaved,
                               in_place));
    }
    // ---- encoder ops ----
    Act input(int64_t cols, int which) override {
        if (b_.in_vars[which] != nullptr) {  // another model's output node: gradients flow back into it
            LF_ASSERT(b_.in_vars[which]->shape.back() == cols);
            if (which == 0) mark_globals();
            return act(b_.in_vars[which]);
        }
        LF_ASSERT(which == 0 && b_.input != nullptr && cols == b_.input_cols);
        mark_globals();
        Var x = t_.make({b_.B * b_.T, cols}, b_.input_grad && t_.grad_enabled);
        std::memcpy(x->data, b_.input, static_cast<size_t>(x->numel) * sizeof(float));
        x->keep = b_.input_grad;  // its gradient is read after backward
        m_.last_input = x;
        return act(x);
    }
    Act layernorm(Act x, Weight gain, Weight bias, float eps) override {
        Param* b = bias.slot >= 0 ? m_.param(bias) : nullptr;
        return act(train::layernorm(t_, V(x), t_.param(P(gain)), b != nullptr ? t_.param(*b) : nullptr, eps));
    }
    Act activation(Act x, Activation f) override { return act(train::activation(t_, V(x), static_cast<int>(f))); }
    Act class_row(Act x, Weight w) override { return act(train::class_row(t_, V(x), t_.param(P(w)), b_.B)); }
    Act add_positions(Act x, Weight table, int64_t offset) override {
        return act(train::add_positions(t_, V(x), t_.param(P(table)), b_.B, offset));
    }
    Act add_row(Act x, Weight table, int64_t row) override {
        return act(train::add_row(t_, V(x), t_.param(P(table)), row));
    }
    Act first_rows(Act x) override { return act(train::first_rows(t_, V(x), b_.B)); }
    Act softmax_rows(Act x) override { return act(train::softmax_rows(t_, V(x))); }
    Act weighted_sum(Act w, Act a, Act b) override { return act(train::weighted_sum(t_, V(w), V(a), V(b))); }
    Act mean_rows(Act x) override { return act(train::mean_rows(t_, V(x), b_.B)); }
    Act gather_rows(Act x, const int32_t* index, int64_t n_out) override {
        return act(train::gather_rows(t_, V(x), b_.B, index, n_out));
    }
    Act merge_rows(Act x, int64_t k) override {
        LF_ASSERT(x.rows % k == 0);
        return act(reshape(t_, V(x), {x.rows / k, k * x.cols}));
    }
    Act columns(Act x, int64_t first, int64_t n) override { return act(train::columns(t_, V(x), 1, first, n)); }
    Act table_bias(Weight table, const int32_t* index, int64_t G, int64_t H) override {
        return act(train::table_bias(t_, t_.param(P(table)), index, G, H));
    }

    Act attention(int64_t l, Act q, Act k, Act v, const AttentionSpec& a) override {
        if (!a.causal) {
            const int64_t G = a.group > 0 ? a.group : q.rows / b_.B;  // a group: a window, else a sequence
            const int64_t Gk = a.group > 0 ? a.group : k.rows / b_.B;  // cross-attention: the keys' own
            LF_ASSERT(q.rows % G == 0 && (a.group == 0 || b_.lengths == nullptr));
            return act(attention_bidir(t_, V(q), V(k), V(v), q.rows / G, G, a.n_head, a.n_head_kv, a.scale, b_.lengths,
                                       a.bias.data != nullptr ? V(a.bias) : nullptr, a.mask, a.n_mask, Gk));
        }
        if (a.lsh != nullptr) {
            // Buckets of this step's (rotated) queries and keys, held fixed through backward.
            const Var qv = V(q), kv = V(k);
            auto bk = lsh_buckets(qv->data, kv->data, b_.B * b_.T, a.n_head, a.n_head_kv, a.head_dim,
                                  &m_.infer_->lsh_hash(l, 0), t_.pool());
            uint64_t f = m_.lsh_fingerprint ^ static_cast<uint64_t>(l);
            for (const auto* side : {&bk->q, &bk->k})
                for (int32_t b : *side) f = mix64(f ^ static_cast<uint64_t>(b));
            m_.lsh_fingerprint = f;
            return act(lsh_attention(t_, qv, kv, V(v), b_.B, b_.T, a.n_head, a.n_head_kv, *a.lsh, std::move(bk),
                                     a.scale, b_.doc_start, a.window));
        }
        return act(train::attention(t_, V(q), V(k), V(v), b_.B, b_.T, a.n_head, a.n_head_kv, a.window, a.scale,
                                    b_.doc_start));
    }
    Act swiglu(Act x, Weight gate, Weight up) override {
        Act g = linear(x, gate), u = linear(x, up);
        return act(train::swiglu(t_, V(g), V(u)));
    }
    // MLA in the plain (non-absorbed) form: per head k_h = [c · W_UK_h^T, k_pe], v_h = c · W_UV_h^T
    // from one kv_b product of the normalised latent c, q_h = [q_nope_h, RoPE(q_pe_h)], then causal
    // attention with value heads of their own size (arch.h's MlaSpec).
    Act mla_attention(int64_t, Act q, Act kv_a, const MlaSpec& m) override {
        const int64_t H = m.n_head, nope = m.nope, R = m.rope, r = m.kv_rank, Dv = m.v_dim;
        if (nope <= 0) fail("training MLA needs qk_nope_head_dim > 0 (found %lld)", (long long)nope);
        const ModelConfig& c = m_.cfg_;
        auto rope_of = [&](Var x) {  // a fresh slice: rotated in place
            return train::rope(t_, x, R, m_.pos_.data(), m_.cos_.data(), m_.sin_.data(), c.rope_interleaved, true);
        };
        Var qv = V(q), kva = V(kv_a);
        LF_ASSERT(qv->shape.back() == H * (nope + R) && kva->shape.back() == r + R);
        Var qq = concat_columns(t_, train::columns(t_, qv, H, 0, nope), rope_of(train::columns(t_, qv, H, nope, R)), H);
        Var lat = train::rmsnorm(t_, train::columns(t_, kva, 1, 0, r), t_.param(P(m.kv_norm)), m.eps);
        Var k_pe = rope_of(train::columns(t_, kva, 1, r, R));
        Var kv = V(product(act(lat), m.kv_b, nullptr));  // (N, H·(nope + Dv))
        Var k = concat_columns(t_, train::columns(t_, kv, H, 0, nope), k_pe, H, true);
        Var v = train::columns(t_, kv, H, nope, Dv);
        return act(train::attention(t_, qq, k, v, b_.B, b_.T, H, H, 0, m.scale, b_.doc_start));
    }
    // DeepSeekMoE: router product, routing (model/moe.h's rule), the routed experts gathered per
    // expert, then the shared experts as an ordinary SwiGLU added to them.
    Act moe(int64_t l, Act x, const MoeSpec& m) override {
        const int64_t E = m.n_expert;
        Act lg = product(x, m.router, nullptr);
        const float* bias = nullptr;
        if (m.bias.slot >= 0)
            if (const Param* p = m_.param(m.bias); p != nullptr) bias = p->trainable ? p->value.data() : p->frozen.ptr<float>();
        MoeRoute route = moe_route(t_, V(lg), bias, m, b_.B, m_.moe_aux_alpha);
        if (b_.count) {
            std::vector<int64_t>& load = m_.moe_stats.load[l];
            load.resize(static_cast<size_t>(E), 0);
            for (int64_t e = 0; e < E; ++e) load[e] += route.load[e];
            m_.moe_stats.aux += route.aux;
        }
        Var y = moe_experts(t_, V(x), route.weights, route.sel, E, experts(m.gate), experts(m.up), experts(m.down));
        if (m.shared_gate.slot >= 0) y = add(t_, y, V(linear(swiglu(x, m.shared_gate, m.shared_up), m.shared_down)));
        return act(y);
    }
    // MTP's [embedding; hidden] input (TrainModel::mtp_loss, --mtp-lambda).
    Act concat(Act a, Act b) override { return act(concat_columns(t_, V(a), V(b), 1)); }
    Act residual(int64_t layer, int branch, Act h, Act y) override {
        const uint64_t seed = b_.dropout_seed ^ (kGoldenGamma * static_cast<uint64_t>(2 * layer + branch + 1));
        return act(add(t_, V(h), dropout(t_, V(y), b_.p_drop, seed)));
    }
    Act output_rows(Act h) override {
        // The head's parameters: every global one not marked yet (the final norm, an untied output).
        std::vector<Param*> ps;
        for (const TensorSpec& s : m_.arch_->tensors)
            if (!s.per_layer)
                if (Param* p = m_.param({-1, s.slot}); p != nullptr && p != embedded_) ps.push_back(p);
        mark(ps);
        return h;
    }
    Act logits(Act h, Weight w) override {
        Act y = product(h, w, nullptr);
        observe("logits", y);
        return y;
    }
    bool observing() const override { return b_.hook != nullptr && *b_.hook; }
    void observe(const std::string& name, Act x) override {
        if (observing()) (*b_.hook)(name, V(x));
    }
    Act run_layer(int64_t l, Act h, const std::function<Act(Ops&, Act)>& body) override {
        std::vector<Param*> ps;
        for (const TensorSpec& s : m_.arch_->tensors)
            if (s.per_layer)
                if (Param* p = m_.param({l, s.slot}); p != nullptr) ps.push_back(p);
        mark(ps);
        if (!m_.checkpoint_activations) {
            if (!m_.store_activations_bf16) return body(*this, h);
            const size_t from = t_.mark();
            Act y = body(*this, h);
            t_.store_bf16(from, V(h), V(y));
            return y;
        }
        // Keeps none of the layer's activations: backward runs the body again on a scratch tape
        // (the closure outlives this call, so it owns copies of what it reads).
        TrainModel* m = &m_;
        Batch b = b_;
        b.hook = nullptr;  // the recomputation is not observed
        auto fn = [m, b, body](Tape& sub, Var x) {
            Batch b2 = b;
            b2.count = b.count && !sub.grad_enabled;  // counted in forward, not again in backward's recomputation
            TapeOps ops(sub, *m, b2);
            return V(body(ops, act(x)));
        };
        return act(checkpoint(t_, V(h), fn));
    }

private:
    // The globals' gradients are complete once backward is back at the input (run last).
    void mark_globals() {
        std::vector<Param*> ps;
        for (const TensorSpec& s : m_.arch_->tensors)
            if (!s.per_layer)
                if (Param* p = m_.param({-1, s.slot}); p != nullptr) ps.push_back(p);
        mark(ps);
    }
    // x · W^T (+ bias), then the after_linear seam.
    Act product(Act x, Weight w, Var bias) {
        Param& p = P(w);
        Var in = V(x);
        if (m_.linear_input) {  // QAT activations: one quantised copy per input (q, k and v share it)
            if (in != act_in_) act_in_ = in, act_q_ = m_.linear_input(t_, in);
            in = act_q_;
        }
        Var y = p.trainable ? train::linear(t_, in, weight(p), bias) : linear_frozen(t_, in, as_matrix(p.frozen), bias, &p.packs);
        if (m_.after_linear) y = m_.after_linear(t_, w, V(x), y);
        products_.insert(y);
        return act(y);
    }
    // A trainable weight's leaf: the master, or the values weight_values gives instead (QAT's
    // fake-quantised copy); the gradient goes to the master either way (straight-through).
    Var weight(Param& p) {
        Var v = t_.param(p);
        if (v->shape.size() == 4) v->shape = {v->shape[0], v->numel / v->shape[0]};  // a convolution's: the linear over its inputs
        if (m_.weight_values)
            if (const float* q = m_.weight_values(p)) v->data = const_cast<float*>(q);
        return v;
    }
    // An (E, rows, cols) expert tensor for moe_experts.
    ExpertWeight experts(Weight w) {
        Param& p = P(w);
        std::shared_ptr<const ExpertLora> lora = m_.expert_lora ? m_.expert_lora(t_, w) : nullptr;
        if (!p.trainable) return ExpertWeight{nullptr, &p.frozen, nullptr, std::move(lora)};
        Var v = t_.param(p);
        return ExpertWeight{v, nullptr, m_.weight_values ? m_.weight_values(p) : nullptr, std::move(lora)};
    }
    // A convolution's (out, in, kh, kw) weight as the (out, in·kh·kw) matrix of its linear.
    static Tensor as_matrix(const Tensor& t) {
        if (t.ndim() != 4) return t;
        return Tensor::view(t.dtype(), {t.dim(0), t.numel() / t.dim(0)}, t.data(), t.owner(), t.name());
    }
    static Act act(Var v) { return Act{v->data, v->numel / v->shape.back(), v->shape.back(), v}; }
    static Var V(Act a) { return static_cast<Var>(a.node); }
    Param& P(Weight w) const {
        Param* p = m_.param(w);
        LF_ASSERT(p != nullptr);
        return *p;
    }
    // Registers a marker: in backward it runs after every op recorded later, i.e. once the
    // gradients of these parameters for the micro-batch are complete.
    void mark(std::vector<Param*> ps) {
        if (!m_.on_grad_ready || !t_.grad_enabled) return;
        TrainModel* m = &m_;
        t_.on_backward([m, ps] {
            for (Param* p : ps)
                if (p->trainable) m->on_grad_ready(p);
        });
    }

    Tape& t_;
    TrainModel& m_;
    Batch b_;
    Param* embedded_ = nullptr;  // the input table (marked at embed)
    Var act_in_ = nullptr, act_q_ = nullptr;  // linear_input: the last input and its replacement
    // Outputs of linear / linear_frozen / linear_into (after the after_linear seam), whose backward
    // never reads them: RoPE may rotate these in place.
    std::unordered_set<const Node*> products_;
};

// ---------------------------------------------------------------------------------- TrainModel

namespace {

// Every value of t (any dtype the kernel table reads, plain row layout) as f32 into out.
void dequantize_all(const Tensor& t, float* out) {
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    LF_ASSERT(deq != nullptr);
    const int64_t cols = t.shape().back();
    for (int64_t r = 0; r < t.nrows(); ++r) deq(t.ndim() == 1 ? t.data() : t.row(r), out + r * cols, cols);
}

std::unique_ptr<Param> new_param(const NamedSpec& ns) {
    auto p = std::make_unique<Param>();
    p->name = ns.name;
    p->shape = ns.shape;
    return p;
}

}  // namespace

std::unique_ptr<TrainModel> TrainModel::from_files(const ModelFiles& files, const TrainableFn& trainable) {
    // Validates every tensor (names, shapes, dtypes) exactly as inference does.
    const ModelConfig checked = Model::validate(files);
    std::unique_ptr<TrainModel> m(new TrainModel());
    m->cfg_ = checked;
    m->arch_ = &arch_of(checked.arch, files.path);
    m->vocab_ = files.vocab;
    for (const NamedSpec& ns : tensor_list(*m->arch_, m->cfg_, true)) {
        auto it = files.tensors.find(ns.name);
        if (it == files.tensors.end()) continue;  // an absent optional tensor (validated above)
        const Tensor& t = it->second;
        if (kernels::kernels().dequantize_row[static_cast<int>(t.dtype())] == nullptr) {
            fail("%s: tensor '%s' has dtype %s, which cannot be trained", files.path.c_str(), ns.name.c_str(),
                 dtype_name(t.dtype()));
        }
        auto p = new_param(ns);
        if (trainable && !trainable(ns.name)) {
            p->trainable = false;
            if (ns.spec->use == TensorUse::kVector && t.dtype() != DType::F32) {
                p->frozen = Tensor::empty(DType::F32, ns.shape, ns.name);
                dequantize_all(t, p->frozen.ptr<float>());
            } else {
                p->frozen = t;  // the file's bytes, as mapped
            }
            m->frozen_.push_back(std::move(p));
            continue;
        }
        p->value = FloatBuffer(p->numel(), false);
        p->grad = FloatBuffer(p->numel());
        dequantize_all(t, p->value.data());
        m->params_.push_back(std::move(p));
    }
    m->bind();
    return m;
}

std::unique_ptr<TrainModel> TrainModel::init_random(ModelConfig cfg, uint64_t seed) {
    if (cfg.head_dim == 0 && cfg.n_head > 0) cfg.head_dim = cfg.n_embd / cfg.n_head;
    std::unique_ptr<TrainModel> m(new TrainModel());
    m->arch_ = &arch_of(cfg.arch, "init");
    if (m->arch_->qkv_bias) cfg.qkv_bias = true;
    if (rope_rows_convertible(*m->arch_)) cfg.rope_interleaved = false;  // else the arch's own convention
    m->cfg_ = cfg;
    for (const NamedSpec& ns : tensor_list(*m->arch_, cfg, false)) {
        auto p = new_param(ns);
        p->value = FloatBuffer(p->numel());
        p->grad = FloatBuffer(p->numel());
        const int64_t cols = ns.shape.back();
        for (int64_t r = 0; r < p->numel() / cols; ++r)
            init_tensor(*ns.spec, cfg, ns.name, ns.shape, seed, r, p->value.data() + r * cols);
        m->params_.push_back(std::move(p));
    }
    m->bind();
    return m;
}

void TrainModel::set_attention(const AttentionChoice& choice) {
    if (choice.kind.empty() && !cfg_.attention_lsh && choice.any_setting())
        fail("train: --lsh-* settings, but the model trains dense attention (hint: add --attention lsh to train it "
             "with LSH attention; the choice is saved with the model)");
    infer_->set_attention(choice);
    cfg_ = infer_->config();
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
    for (auto& p : frozen_) f.tensors[p->name] = p->frozen;
    // Zero-copy twin: no repacking (that would copy quantised frozen weights).
    infer_ = Model::from_files(std::move(f), false);
    cfg_ = infer_->config();
    arch_ = &infer_->arch();
    slots_.assign(static_cast<size_t>((cfg_.n_block() + 1) * arch_->n_slots), nullptr);  // + MTP blocks
    for (const NamedSpec& ns : tensor_list(*arch_, cfg_, true))
        slots_[static_cast<size_t>((ns.layer + 1) * arch_->n_slots + ns.spec->slot)] = find(ns.name);
    n_ctx_ = 0;
    if (!arch_->encoder) ensure_ctx(std::max<int64_t>(cfg_.n_ctx_train, 1));  // encoders rotate nothing
}

Param* TrainModel::param(Weight w) const {
    const size_t idx = static_cast<size_t>((w.layer + 1) * arch_->n_slots + w.slot);
    return w.slot < 0 || idx >= slots_.size() ? nullptr : slots_[idx];
}

bool TrainModel::rope_rows_convertible(const Arch& a) {
    for (const TensorSpec& s : a.tensors)
        if (s.rope_rows) return true;
    return false;
}

void TrainModel::to_rotate_half() {
    if (!cfg_.rope_interleaved || !rope_rows_convertible(*arch_)) return;
    const int64_t D = cfg_.head_dim;
    for (const NamedSpec& ns : tensor_list(*arch_, cfg_, true)) {
        Param* p = find(ns.name);
        if (p == nullptr || !ns.spec->rope_rows) continue;
        const int64_t rows = p->shape[0], cols = p->shape.size() == 2 ? p->shape[1] : 1;
        if (p->trainable) {
            std::vector<float> tmp(p->value.data(), p->value.data() + p->numel());
            permute_rope_rows(tmp.data(), p->value.data(), rows, cols, D, false);
            continue;
        }
        // A frozen tensor keeps its dtype: its rows (whole quantisation blocks) move as bytes.
        const Tensor& src = p->frozen;
        Tensor dst = Tensor::empty(src.dtype(), src.shape(), src.name());
        if (src.ndim() == 1) {
            permute_rope_rows(src.ptr<float>(), dst.ptr<float>(), rows, 1, D, false);
        } else {
            for (int64_t r = 0; r < rows; ++r) std::memcpy(dst.row(r), src.row(rope_row_source(r, D, false)), src.row_stride());
        }
        p->frozen = dst;
    }
    cfg_.rope_interleaved = false;
    bind();
}

void TrainModel::balance_experts(float gamma) {
    for (const auto& [l, v] : moe_stats.load) {
        Param* p = find("blk." + std::to_string(l) + ".exp_probs_b.bias");
        if (p == nullptr || !p->trainable) continue;
        LF_ASSERT(static_cast<int64_t>(v.size()) == p->numel());
        const int64_t E = static_cast<int64_t>(v.size());
        int64_t sum = 0;
        for (int64_t c : v) sum += c;
        for (int64_t e = 0; e < E; ++e) {  // load_e < mean  <=>  load_e · E < sum (exact in integers)
            if (v[e] * E < sum) {
                p->value[e] += gamma;
            } else if (v[e] * E > sum) {
                p->value[e] -= gamma;
            }
        }
    }
}

void TrainModel::set_vocab(const Vocab& v) {
    vocab_ = v;
    bind();
}

Param* TrainModel::find(const std::string& name) const {
    for (const auto* list : {&params_, &frozen_})
        for (const auto& p : *list)
            if (p->name == name) return p.get();
    return nullptr;
}

int64_t TrainModel::n_params() const {
    int64_t n = n_trainable();
    for (const auto& p : frozen_) n += p->numel();
    return n;
}

int64_t TrainModel::n_trainable() const {
    int64_t n = 0;
    for (const auto& p : params_) n += p->numel();
    return n;
}

void TrainModel::for_each_tensor(const std::function<void(const Param&, const float*)>& fn) const {
    std::vector<float> tmp;
    for (const NamedSpec& ns : tensor_list(*arch_, cfg_, true)) {
        const Param* p = find(ns.name);
        if (p == nullptr) continue;
        if (p->trainable) {
            fn(*p, p->value.data());
            continue;
        }
        tmp.resize(static_cast<size_t>(p->numel()));
        dequantize_all(p->frozen, tmp.data());
        fn(*p, tmp.data());
    }
}

void TrainModel::ensure_ctx(int64_t n) {
    if (n <= n_ctx_) return;
    const auto& inv = infer_->rope_inv_freq();
    const int64_t half = static_cast<int64_t>(inv.size());
    cos_.resize(static_cast<size_t>(n * half));
    sin_.resize(static_cast<size_t>(n * half));
    for (int64_t p = 0; p < n; ++p) rope_cos_sin(inv, infer_->rope_mscale(), p, &cos_[p * half], &sin_[p * half]);
    n_ctx_ = n;
}

Var TrainModel::logits(Tape& t, const int32_t* inputs, int64_t B, int64_t T, float p_drop, uint64_t dropout_seed,
                       const Hook& hook, const int32_t* doc_start) {
    set_positions(B, T, doc_start, 0);
    lsh_fingerprint = 0;
    TapeOps ops(t, *this, TapeOps::Batch{inputs, B, T, doc_start ? doc_.data() : nullptr, doc_start, p_drop, dropout_seed, &hook,
                                         t.grad_enabled});
    Act last;
    const Var lg = static_cast<Var>(run_decoder(ops, *arch_, cfg_, &last).node);
    last_hidden_ = static_cast<Var>(last.node);
    return lg;
}

Var TrainModel::encode(Tape& t, const float* input, int64_t B, int64_t T, Var* pooled, bool input_grad,
                       const int32_t* lengths, const Hook& hook, int64_t grid_h, int64_t grid_w) {
    if (!arch_->encoder) fail("%s is a decoder: encode() needs an encoder architecture", cfg_.arch.c_str());
    if (T > cfg_.n_ctx_train) {
        fail("%lld input rows per sequence, the model's position table has %lld", (long long)T, (long long)cfg_.n_ctx_train);
    }
    const int64_t tower_rows = (cfg_.enc.class_token ? 1 : 0) + cfg_.enc.n_patches();
    if (cfg_.enc.projector != Projector::kNone && T != tower_rows) {
        fail("%lld input rows per image, the vision tower with a projector takes %lld (hint: vision_input_rows makes "
             "them)", (long long)T, (long long)tower_rows);
    }
    set_positions(B, T, nullptr, 0);
    TapeOps::Batch b{nullptr, B, T, nullptr, nullptr, 0.0f, 0, &hook, t.grad_enabled};
    b.input = input;
    b.input_cols = cfg_.enc.patch_cols();
    b.input_grad = input_grad;
    b.lengths = lengths;
    TapeOps ops(t, *this, b);
    ModelConfig c = cfg_;  // this call's input grid
    c.enc.grid_h = grid_h;
    c.enc.grid_w = grid_w;
    Act p;
    const Act last = run_encoder(ops, *arch_, c, &p);
    if (pooled != nullptr) *pooled = static_cast<Var>(p.node);
    return static_cast<Var>(last.node);
}

Var TrainModel::encode_tokens(Tape& t, const int32_t* ids, const int32_t* lengths, int64_t B, int64_t T, Var* pooled,
                              const Hook& hook) {
    if (!arch_->encoder || !arch_->text_input) fail("%s is not a text encoder: encode_tokens() needs one", cfg_.arch.c_str());
    if (T > cfg_.n_ctx_train) {
        fail("%lld tokens per sequence, the model has %lld positions", (long long)T, (long long)cfg_.n_ctx_train);
    }
    set_positions(B, T, nullptr, 0);
    TapeOps::Batch b{ids, B, T, nullptr, nullptr, 0.0f, 0, &hook, t.grad_enabled};
    b.lengths = lengths;
    TapeOps ops(t, *this, b);
    Act p;
    const Act last = run_encoder(ops, *arch_, cfg_, &p);
    if (pooled != nullptr) *pooled = static_cast<Var>(p.node);
    return static_cast<Var>(last.node);
}

Var TrainModel::fuse(Tape& t, Var text, Var image, int64_t B, const Hook& hook) {
    if (arch_->name != "fusion") fail("%s is not a fusion model: fuse() needs one", cfg_.arch.c_str());
    LF_ASSERT(rows_of(text) % B == 0 && rows_of(image) % B == 0);
    const int64_t T = rows_of(text) / B;
    set_positions(B, T, nullptr, 0);
    TapeOps::Batch b{nullptr, B, T, nullptr, nullptr, 0.0f, 0, &hook, t.grad_enabled};
    b.in_vars[0] = text;
    b.in_vars[1] = image;
    TapeOps ops(t, *this, b);
    Act logits;
    run_encoder(ops, *arch_, cfg_, &logits);
    return static_cast<Var>(logits.node);
}

// DeepSeek-V3's MTP loss (depth 1): the module reads row t's last hidden state and the embedding
// of token t+1 (targets[t]) and predicts token t+2 (targets[t+1]); rows without both (the
// sequence's last, masked or document-boundary targets) count no loss. Same positions, document
// starts and dropout masks as the main pass it follows.
Var TrainModel::mtp_loss(Tape& t, const int32_t* targets, int64_t B, int64_t T, float p_drop, uint64_t dropout_seed,
                         const int32_t* doc_start) {
    LF_ASSERT(last_hidden_ != nullptr && arch_->mtp != nullptr && cfg_.ds.n_mtp > 0);
    if (on_grad_ready) fail("train: --mtp-lambda is not supported with several MPI ranks yet (hint: run one rank)");
    mtp_ids_.assign(static_cast<size_t>(B * T), 0);
    mtp_targets_.assign(static_cast<size_t>(B * T), -1);
    for (int64_t b = 0; b < B; ++b)
        for (int64_t i = 0; i < T; ++i) {
            const int64_t r = b * T + i;
            if (targets[r] < 0) continue;
            mtp_ids_[r] = targets[r];
            if (i + 1 < T && targets[r + 1] >= 0) mtp_targets_[r] = targets[r + 1];
        }
    const Hook none;
    TapeOps ops(t, *this, TapeOps::Batch{mtp_ids_.data(), B, T, doc_start ? doc_.data() : nullptr, doc_start, p_drop,
                                         dropout_seed ^ 0x6d7470ull, &none, t.grad_enabled});
    const Arch::MtpOut out = arch_->mtp(ops, cfg_, 1, Act{last_hidden_->data, B * T, cfg_.n_embd, last_hidden_});
    return cross_entropy(t, static_cast<Var>(out.logits.node), mtp_targets_.data(), B * T);
}

void TrainModel::set_positions(int64_t B, int64_t T, const int32_t* doc_start, int64_t added) {
    ensure_ctx(T);
    pos_.resize(static_cast<size_t>(B * T));
    doc_.clear();
    if (doc_start == nullptr) {
        for (int64_t r = 0; r < B * T; ++r) pos_[r] = static_cast<int32_t>(r % T);
        return;
    }
    // Packed rows: each document's positions restart at 0; the added rows belong to the first one.
    doc_.resize(static_cast<size_t>(B * T));
    const int64_t Tin = T - added;
    for (int64_t b = 0; b < B; ++b) {
        for (int64_t i = 0; i < T; ++i) {
            const int32_t ds = i < added ? 0 : doc_start[b * Tin + (i - added)];
            const int32_t d = ds == 0 ? 0 : static_cast<int32_t>(ds + added);
            doc_[b * T + i] = d;
            pos_[b * T + i] = static_cast<int32_t>(i - d);
        }
    }
}

Var TrainModel::forward(Tape& t, const int32_t* inputs, const int32_t* targets, int64_t B, int64_t T, float p_drop,
                        uint64_t dropout_seed, const Hook& hook, const int32_t* doc_start) {
    Var lg = logits(t, inputs, B, T, p_drop, dropout_seed, hook, doc_start);
    const int64_t T2 = lg->numel / lg->shape.back() / B;
    if (T2 == T && mtp_lambda > 0) {
        Var main = cross_entropy(t, lg, targets, B * T);
        last_mtp_loss = mtp_loss(t, targets, B, T, p_drop, dropout_seed, doc_start);
        return add_scaled(t, main, last_mtp_loss, mtp_lambda);
    }
    if (T2 == T) return cross_entropy(t, lg, targets, B * T);
    // Rows the input_rows seam added before each sequence predict nothing.
    targets_.assign(static_cast<size_t>(B * T2), -1);
    for (int64_t b = 0; b < B; ++b) {
        std::copy(targets + b * T, targets + (b + 1) * T, targets_.begin() + b * T2 + (T2 - T));
        if (added_rows_predict_first) targets_[static_cast<size_t>(b * T2 + (T2 - T) - 1)] = inputs[b * T];
    }
    return cross_entropy(t, lg, targets_.data(), B * T2);
}

}  // namespace llmforge::train
