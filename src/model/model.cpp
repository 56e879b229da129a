#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <numbers>

#include "core/error.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/repack.h"
#include "model/moe.h"
#include "model/rope.h"

namespace llmforge {

namespace {

// Small 1-D parameters (norm gains, biases) are used as f32; other dtypes are converted once.
Tensor as_f32_vector(const Tensor& t) {
    if (t.dtype() == DType::F32) return t;
    Tensor out = Tensor::empty(DType::F32, {t.numel()}, t.name());
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    LF_ASSERT(deq != nullptr);
    deq(t.data(), out.ptr<float>(), t.numel());
    return out;
}

}  // namespace

Model::Model(ModelFiles files) : files_(std::move(files)), cfg_(files_.config) {}

std::unique_ptr<Model> Model::load(const std::string& path, const std::string& tokenizer_path,
                                   bool use_mmap) {
    ModelFiles files = open_model_files(path, tokenizer_path);
    if (!use_mmap) load_into_memory(files);
    std::unique_ptr<Model> m(new Model(std::move(files)));
    // Without mmap the weights are this model's private buffer, so matrices are repacked in place.
    m->bind_weights(!use_mmap);
    return m;
}

std::unique_ptr<Model> Model::from_files(ModelFiles files, bool repack) {
    std::unique_ptr<Model> m(new Model(std::move(files)));
    m->bind_weights(false, repack);  // the caller may share these bytes: repack into copies
    return m;
}

ModelConfig Model::validate(const ModelFiles& files) {
    Model m(files);
    m.bind_weights(false, false);
    return m.config();
}

// encode_pack's cache: one entry per weight, packed on first use outside the map's lock (call_once
// per entry, so concurrent encodes pack each weight once and wait only for the weight they need)
// and never erased, so the pointers handed out stay valid.
struct Model::EncodePacks {
    struct Entry {
        std::once_flag once;
        kernels::PackedBf16 bf16;
    };
    std::mutex mu;
    std::map<const Tensor*, std::unique_ptr<Entry>> packs;
};

const kernels::PackedBf16* Model::encode_pack(const Tensor& w, ThreadPool& pool) const {
    const DType wt = w.dtype();
    if (!packs_ || w.ndim() != 2 || w.row_group() != 1 || (wt != DType::F32 && wt != DType::BF16)) return nullptr;
    EncodePacks::Entry* e;
    {
        std::lock_guard<std::mutex> lock(packs_->mu);
        auto& slot = packs_->packs[&w];
        if (!slot) slot = std::make_unique<EncodePacks::Entry>();
        e = slot.get();
    }
    std::call_once(e->once, [&] {
        const int64_t n = w.dim(0), k = w.dim(1), ld = static_cast<int64_t>(w.row_stride() / dtype_info(wt).type_size);
        e->bf16 = wt == DType::F32 ? kernels::pack_bf16(w.ptr<float>(), ld, n, k, true, &pool)
                                   : kernels::pack_bf16(static_cast<const uint16_t*>(w.data()), ld, n, k, true);
    });
    return &e->bf16;
}

void Model::set_encode_type(DType t) {
    if (t != DType::F32 && t != DType::BF16)
        fail("%s: encoder products run in f32 or bf16, not %s", files_.path.c_str(), dtype_name(t));
    if (t != DType::F32 && !packs_)
        fail("%s: bf16 encoder products need weights that stay fixed (this model views weights that change: a "
             "trainer's twin)",
             files_.path.c_str());
    encode_type_ = t;
}

void Model::bind_weights(bool weights_private, bool repack_matrices) {
    const std::string& file = files_.path;
    // bf16 encodes pack each weight on first use, unless the weights may change (the trainer's
    // twin views its master weights: repack_matrices = false).
    if (repack_matrices) packs_ = std::make_shared<EncodePacks>();
    arch_ = &arch_of(cfg_.arch, file);
    // Formats that carry no flag for it: q/k/v biases are there when the file has them.
    if (files_.tensors.count("blk.0.attn_q.bias")) cfg_.qkv_bias = true;
    cfg_.tied_embeddings = files_.tensors.count("output.weight") == 0;
    const ModelConfig& c = cfg_;
    arch_->validate(c, file);
    const auto& kt = kernels::kernels();
    rows_invariant_ = true;
    // LLMFORGE_REPACK=0 keeps every matrix in the file's layout (for A/B measurements).
    const char* repack_env = std::getenv("LLMFORGE_REPACK");
    const bool repack = repack_matrices && (repack_env == nullptr || std::strcmp(repack_env, "0") != 0);
    const std::vector<NamedSpec> specs = tensor_list(*arch_, c, true);
    // Routed experts (E, rows, cols) repack as the (E·rows, cols) matrix they are in memory: with
    // rows a multiple of 8 no group straddles two experts, so each expert's slice is its own x8 matrix.
    auto as_matrix = [](const Tensor& t) {
        if (t.ndim() == 4) {  // a convolution's (out, in, kh, kw) weight: the linear over its flattened inputs
            Tensor m = Tensor::view(t.dtype(), {t.dim(0), t.numel() / t.dim(0)}, t.data(), t.owner(), t.name());
            return m;
        }
        if (t.ndim() != 3) return t;
        Tensor m = Tensor::view(t.dtype(), {t.dim(0) * t.dim(1), t.dim(2)}, t.data(), t.owner(), t.name());
        m.set_row_group(t.row_group());
        return m;
    };
    auto repackable = [&](const NamedSpec& ns, const Tensor& t) {
        // MLA's kv_b is only read here, into the per-head absorbed forms (bind_mla): kept plain.
        if (c.ds.kv_lora_rank > 0 && std::strcmp(ns.spec->gguf, "attn_kv_b.weight") == 0) return false;
        if (t.ndim() == 3 && t.dim(1) % 8 != 0) return false;
        return repack && ns.spec->use == TensorUse::kMatrix && kt.gemm_x8[static_cast<int>(t.dtype())] != nullptr &&
               kernels::x8_can_repack(as_matrix(t));
    };
    // Copies (weights shared with the file map or the caller) go into one huge-page arena: a
    // buffer per matrix would round each up to a 2 MiB page.
    std::unique_ptr<HugeArena> arena;
    if (!weights_private) {
        size_t total = 0;
        for (const NamedSpec& ns : specs) {
            auto it = files_.tensors.find(ns.name);
            if (it != files_.tensors.end() && repackable(ns, it->second)) total += HugeArena::slice_bytes(it->second.nbytes());
        }
        if (total > 0) arena = std::make_unique<HugeArena>(total);
    }
    const int n_slots = arch_->n_slots;
    weights_.assign(static_cast<size_t>((c.n_block() + 1) * n_slots), Tensor());
    bound_.assign(weights_.size(), false);
    for (const NamedSpec& ns : specs) {
        auto it = files_.tensors.find(ns.name);
        if (it == files_.tensors.end()) {
            if (ns.spec->optional) continue;
            fail("%s: tensor '%s' is missing (expected for %s with %lld layers; file incomplete or "
                 "not a %s model?)",
                 file.c_str(), ns.name.c_str(), c.arch.c_str(), (long long)c.n_layer, c.arch.c_str());
        }
        const Tensor& t = it->second;
        // Rows of a tied embedding are also the output matrix.
        const bool matmul = ns.spec->use == TensorUse::kMatrix || (ns.spec->use == TensorUse::kRows && c.tied_embeddings);
        check_tensor(ns, t, matmul);
        const int di = static_cast<int>(t.dtype());
        Tensor bound = t.ndim() == 4 && matmul ? as_matrix(t) : t;
        if (ns.spec->use == TensorUse::kVector) {
            bound = as_f32_vector(t);
        } else if (repackable(ns, t)) {
            // Q4_0 / Q8_0 matrices go into the interleaved 8-row layout (kernels/cpu/repack.h)
            // when the table has a kernel for it; row tables stay plain (their rows are looked up).
            if (weights_private) {
                bound = kernels::repack_x8(as_matrix(t), true);
            } else {
                bound = kernels::repack_x8(as_matrix(t), arena->take(t.nbytes()), arena->owner());
                release_pages(t.data(), t.nbytes());
            }
            if (t.ndim() == 3) {  // back to (E, rows, cols), still interleaved
                Tensor b3 = Tensor::view(t.dtype(), t.shape(), bound.data(), bound.owner(), t.name());
                b3.set_row_group(bound.row_group());
                bound = b3;
            }
            it->second = bound;
        } else if (matmul) {
            rows_invariant_ = rows_invariant_ && kt.gemm_invariant[di] != nullptr;
        }
        const size_t idx = static_cast<size_t>((ns.layer + 1) * n_slots + ns.spec->slot);
        weights_[idx] = bound;
        bound_[idx] = true;
        if (bound.ndim() == 3) {  // routed experts: one 2-D view per expert
            std::vector<Tensor>& views = experts_[idx];
            const size_t bytes = bound.nbytes() / static_cast<size_t>(bound.dim(0));
            for (int64_t e = 0; e < bound.dim(0); ++e) {
                views.push_back(Tensor::view(bound.dtype(), {bound.dim(1), bound.dim(2)},
                                             static_cast<const uint8_t*>(bound.data()) + e * bytes, nullptr,
                                             ns.name + "[" + std::to_string(e) + "]"));
                views.back().set_row_group(bound.row_group());
            }
        }
    }
    if (c.ds.kv_lora_rank > 0) bind_mla();
    if (arch_->encoder) return;  // no positions to rotate, no KV memory
    bind_rope();
    lsh_hash_.clear();
    if (c.attention_lsh) lsh_hash_ = lsh_hashes(c.lsh, c.n_layer, c.n_head_kv, c.head_dim);
}

void Model::set_attention(const AttentionChoice& ch) {
    if (!ch.kind.empty() && ch.kind != "dense" && ch.kind != "lsh")
        fail("--attention '%s': expected dense or lsh", ch.kind.c_str());
    const bool lsh = ch.kind == "lsh" || (ch.kind.empty() && cfg_.attention_lsh);
    if (!lsh && ch.any_setting())
        fail("--lsh-* settings for a model that runs dense attention (%s) (hint: add --attention lsh)",
             files_.path.c_str());
    if (ch.kind.empty() && !ch.any_setting()) return;  // the model's own
    set_attention(lsh, ch.spec(cfg_.attention_lsh ? cfg_.lsh : LshSpec()), "--attention lsh");
}

void Model::set_attention(bool lsh, const LshSpec& spec, const std::string& where) {
    if (!lsh) {
        cfg_.attention_lsh = false;
        lsh_hash_.clear();
        return;
    }
    spec.validate(where);
    if (cfg_.ds.kv_lora_rank > 0)
        fail("%s: LSH attention on a %s model: its multi-head latent attention has no per-head keys to hash "
             "(hint: leave --attention dense for DeepSeek models)", where.c_str(), cfg_.arch.c_str());
    cfg_.attention_lsh = true;
    cfg_.lsh = spec;
    lsh_hash_ = lsh_hashes(spec, cfg_.n_layer, cfg_.n_head_kv, cfg_.head_dim);
}

// W_UK_h^T and W_UV_h of every layer from attn_kv_b ((H·(nope + v), kv_rank), rows of head h:
// nope key rows then v value rows), one matrix per head: f32 for a float kv_b, q8_0 (in the
// interleaved 8-row layout where the kernels have it) for a quantised one, so decode reads about
// as many bytes for them as kv_b itself has.
void Model::bind_mla() {
    const ModelConfig& c = cfg_;
    const int64_t H = c.n_head, r = c.ds.kv_lora_rank, nope = c.ds.qk_nope_head_dim, v = c.v_dim();
    const auto& kt = kernels::kernels();
    mla_.assign(static_cast<size_t>(c.n_block()), {});
    const TensorSpec* spec = nullptr;
    for (const TensorSpec& t : arch_->tensors)
        if (std::strcmp(t.gguf, "attn_kv_b.weight") == 0) spec = &t;
    LF_ASSERT(spec != nullptr);
    std::vector<float> row(static_cast<size_t>(r)), uk(static_cast<size_t>(r * nope));
    for (int64_t l = 0; l < c.n_block(); ++l) {
        const Tensor* kvb = weight({l, spec->slot});
        LF_ASSERT(kvb != nullptr && kvb->row_group() == 1);
        const DType src = kvb->dtype();
        const bool quantised = src != DType::F32 && src != DType::F16 && src != DType::BF16;
        const DType dt = quantised && nope % 32 == 0 && r % 32 == 0 ? DType::Q8_0 : DType::F32;
        const auto deq = kt.dequantize_row[static_cast<int>(src)];
        auto finish = [&](Tensor t) {
            if (kt.gemm_x8[static_cast<int>(dt)] != nullptr && kernels::x8_can_repack(t)) t = kernels::repack_x8(t, true);
            return t;
        };
        auto store = [&](Tensor& t, int64_t row_i, const float* vals, int64_t n) {
            if (dt == DType::F32) {
                std::copy(vals, vals + n, t.ptr<float>() + row_i * n);
            } else {
                kt.quantize_row[static_cast<int>(dt)](vals, t.row(row_i), n);
            }
        };
        MlaAbsorbed& m = mla_[l];
        for (int64_t h = 0; h < H; ++h) {
            Tensor ukt = Tensor::empty(dt, {r, nope}), uvt = Tensor::empty(dt, {v, r});
            for (int64_t j = 0; j < nope + v; ++j) {
                deq(kvb->row(h * (nope + v) + j), row.data(), r);
                if (j < nope) {
                    for (int64_t i = 0; i < r; ++i) uk[i * nope + j] = row[i];
                } else {
                    store(uvt, j - nope, row.data(), r);
                }
            }
            for (int64_t i = 0; i < r; ++i) store(ukt, i, uk.data() + i * nope, nope);
            m.uk_t.push_back(finish(std::move(ukt)));
            m.uv.push_back(finish(std::move(uvt)));
        }
    }
}

const Tensor& Model::expert(Weight w, int64_t e) const {
    const size_t idx = static_cast<size_t>((w.layer + 1) * arch_->n_slots + w.slot);
    auto it = experts_.find(idx);
    LF_ASSERT(it != experts_.end() && e >= 0 && e < static_cast<int64_t>(it->second.size()));
    return it->second[e];
}

// Shape and dtype of a tensor against its table entry; one-line errors naming the file.
void Model::check_tensor(const NamedSpec& ns, const Tensor& t, bool matmul) const {
    const std::string& file = files_.path;
    if (t.shape() != ns.shape) {
        Tensor want = Tensor::view(t.dtype(), ns.shape, nullptr, nullptr);
        fail("%s: tensor '%s' has shape %s, expected %s (config and weights disagree)",
             file.c_str(), ns.name.c_str(), t.shape_str().c_str(), want.shape_str().c_str());
    }
    const auto& kt = kernels::kernels();
    const int di = static_cast<int>(t.dtype());
    if (matmul && kt.vec_dot[di] == nullptr) {
        fail("%s: tensor '%s' has dtype %s, which has no matrix kernel (expected f32, f16, bf16, "
             "q8_0, q4_0, q4_1, q5_0, q5_1 or q2_k..q6_k; hint: llmforge quantize --type q8_0)",
             file.c_str(), ns.name.c_str(), dtype_name(t.dtype()));
    }
    if (kt.dequantize_row[di] == nullptr) {
        fail("%s: tensor '%s' has dtype %s, which llmforge cannot read", file.c_str(),
             ns.name.c_str(), dtype_name(t.dtype()));
    }
}

// RoPE frequencies after the config's scaling, then the per-pair divisors of a rope_freqs.weight
// tensor: GGUF files of Llama 3.1+ carry their RoPE scaling that way (llama.cpp's converter).
void Model::bind_rope() {
    double ms = 1.0;
    inv_freq_ = llmforge::rope_inv_freq(cfg_, &ms);
    rope_mscale_ = ms;
    auto it = files_.tensors.find("rope_freqs.weight");
    if (it == files_.tensors.end()) return;
    const Tensor ff = as_f32_vector(it->second);
    for (int64_t i = 0; i < cfg_.rot_dim() / 2; ++i) {
        const float d = ff.ptr<float>()[i];
        if (!(d > 0)) {
            fail("%s: rope_freqs.weight[%lld] is %g, expected a positive frequency divisor", files_.path.c_str(),
                 (long long)i, d);
        }
        inv_freq_[i] /= d;
    }
}

const Tensor* Model::weight(Weight w) const {
    const size_t idx = static_cast<size_t>((w.layer + 1) * arch_->n_slots + w.slot);
    if (w.slot < 0 || idx >= bound_.size() || !bound_[idx]) return nullptr;
    return &weights_[idx];
}

std::string Model::weight_name(Weight w) const {
    const TensorSpec* spec = arch_->find_slot(w.slot);
    LF_ASSERT(spec != nullptr);
    return spec->gguf_name(w.layer);
}

int64_t Model::n_params() const {
    int64_t n = 0;
    for (const auto& [name, t] : files_.tensors) n += t.numel();
    return n;
}

size_t Model::weight_bytes() const {
    size_t n = 0;
    for (const auto& [name, t] : files_.tensors) n += t.nbytes();
    return n;
}

void Model::rope_tables(int64_t pos, float* cs, float* sn) const {
    rope_cos_sin(inv_freq_, rope_mscale_, pos, cs, sn);
}

std::unique_ptr<KvMemory> Model::new_memory(int64_t n_ctx, KvTypes types) const {
    if (cfg_.ds.kv_lora_rank > 0) {
        // MLA: one row per position and layer, the normalised latent then the rotated shared key
        // part; values are read from the same rows (the latent), so V stores nothing.
        const int64_t w = cfg_.ds.kv_lora_rank + cfg_.ds.qk_rope_head_dim;
        kv_check_head(types.k, w, "latent (kv_lora_rank + rope)", "--cache-type-k");
        types.v = types.k;
        // The MTP modules' blocks (layers n_layer..) have rows of their own.
        return std::make_unique<KvCache>(std::vector<int64_t>(cfg_.n_block(), w), std::vector<int64_t>(cfg_.n_block(), 0),
                                         n_ctx, types);
    }
    auto cache = std::make_unique<KvCache>(cfg_, n_ctx, types);
    if (cfg_.attention_lsh) cache->enable_lsh(cfg_.lsh, cfg_.n_head_kv);
    return cache;
}

void Model::forward(const int32_t* tokens, int64_t n, int64_t pos0, KvMemory& cache, float* logits,
                    int64_t n_out, ThreadPool& pool, ForwardScratch& s) const {
    if (n <= 0) return;
    LF_ASSERT(n_out >= 1 && n_out <= n);
    const SeqBatch seq{&cache, tokens, n, pos0, logits, n_out};
    forward_batch(&seq, 1, pool, s);
}

// ------------------------------------------------------------------------------- EagerOps

// The engine's backend of the op interface (model/arch/arch.h): each op runs at once on the
// kernel table over all rows of the batch, reusing ForwardScratch buffers; K/V go into each
// sequence's KV memory. The residual stream is s.x, updated in place.
class EagerOps final : public Ops {
public:
    EagerOps(const Model& m, const SeqBatch* seqs, int64_t n_seqs, int64_t n, int64_t n_real, int64_t n_out_total,
             int64_t max_len, bool double_lone_row, ThreadPool& pool, ForwardScratch& s)
        : m_(m), seqs_(seqs), n_seqs_(n_seqs), n_(n), n_real_(n_real), n_out_total_(n_out_total),
          max_len_(max_len), double_lone_row_(double_lone_row), pool_(pool), s_(s), kt_(kernels::kernels()),
          n_grain_(n >= 16 ? 4 : 1) {}
    using Ops::linear;

    bool has(Weight w) const override { return m_.weight(w) != nullptr; }

    Act embed(Weight table) override {
        const Tensor& t = w(table);
        const int64_t C = t.shape().back();
        grow(s_.x, n_ * C);
        float* x = s_.x.data();
        const auto deq = kt_.dequantize_row[static_cast<int>(t.dtype())];
        for (int64_t i = 0; i < n_; ++i) {
            const SeqBatch& sq = seqs_[s_.row_seq[i]];
            if (sq.embd != nullptr) {
                const float* src = sq.embd + (s_.row_pos[i] - sq.pos0) * C;
                std::copy(src, src + C, x + i * C);
            } else {
                deq(t.row(s_.row_tok[i]), x + i * C, C);
            }
        }
        return {x, n_, C};
    }

    Act rmsnorm(Act x, Weight gain, float eps) override {
        Act y = take(x.rows, x.cols);
        const float* g = w(gain).ptr<float>();
        pool_.run_range(x.rows, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) kt_.rmsnorm(x.data + i * x.cols, g, y.data + i * x.cols, x.cols, eps);
        });
        return y;
    }

    Act head_rmsnorm(Act x, Weight gain, int64_t D, float eps) override {
        Act y = take(x.rows, x.cols);
        const float* g = w(gain).ptr<float>();
        const int64_t heads = x.cols / D;
        pool_.run_range(x.rows, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                for (int64_t h = 0; h < heads; ++h)
                    kt_.rmsnorm(x.data + i * x.cols + h * D, g, y.data + i * x.cols + h * D, D, eps);
        });
        return y;
    }

    void linear(Act x, const Weight* ws, const Weight* bs, int n, Act* out) override {
        linear(x, ws, bs, n, out, false, nullptr);
    }
    // `one`: x holds only rows that share the delta `one_delta` (it applies to all of them; null:
    // none); otherwise each sequence's delta applies to its own rows.
    void linear(Act x, const Weight* ws, const Weight* bs, int n, Act* out, bool one, const LinearDelta* one_delta) {
        LF_ASSERT(n >= 1 && n <= 4);
        const Tensor* mats[4];
        float* ys[4];
        for (int i = 0; i < n; ++i) {
            if (!one) report_input(ws[i], x);
            mats[i] = &w(ws[i]);
            out[i] = take(x.rows, mats[i]->shape()[0]);
            ys[i] = out[i].data;
        }
        const Tensor* bias[4] = {};
        for (int i = 0; i < n; ++i) bias[i] = bs[i].slot >= 0 ? m_.weight(bs[i]) : nullptr;
        // bf16 encodes: each weight packed once (Model::encode_pack), the rows rounded and packed
        // once for all n products (Q, K and V), a bias added inside the product where no delta
        // comes between the two; otherwise one dispatch for several projections of the same rows
        // (Q, K and V in decode).
        bool fused[4] = {}, done = false;
        if (encoding_ && m_.encode_type_ == DType::BF16) {
            const kernels::PackedBf16* packs[4];
            const float* biases[4];
            done = true;
            for (int i = 0; i < n && done; ++i) {
                const bool delta = one ? one_delta != nullptr && one_delta->covers(ws[i]) : any_delta(ws[i]);
                fused[i] = bias[i] != nullptr && !delta;
                biases[i] = fused[i] ? bias[i]->ptr<float>() : nullptr;
                done = (packs[i] = m_.encode_pack(*mats[i], pool_)) != nullptr;
            }
            if (done) kernels::gemm_bf16_multi(x.data, x.cols, x.rows, n, packs, ys, biases, &pool_);
        }
        if (!done) {
            std::fill(fused, fused + 4, false);
            if (n == 1) {
                kernels::matmul(*mats[0], x.data, x.rows, ys[0], pool_, s_.mm);
            } else {
                kernels::matmul_multi(mats, ys, n, x.data, x.rows, pool_, s_.mm);
            }
        }
        for (int i = 0; i < n; ++i) {
            if (!one) {
                apply_deltas(ws[i], x, out[i]);
            } else if (one_delta != nullptr && one_delta->covers(ws[i])) {
                delta_runs_.clear();
                delta_runs_.push_back({one_delta, 0, x.rows});
                run_deltas(ws[i], x, out[i]);
            }
        }
        bool any = false;
        for (int i = 0; i < n; ++i) any |= (bias[i] = fused[i] ? nullptr : bias[i]) != nullptr;
        if (!any) return;
        pool_.run_range(x.rows, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t r = b; r < e; ++r)
                for (int i = 0; i < n; ++i)
                    if (bias[i]) kt_.add(out[i].cols, bias[i]->ptr<float>(), out[i].data + r * out[i].cols);
        });
    }

    Act rope(Act x, int64_t D) override {
        const bool interleaved = m_.cfg_.rope_interleaved;
        pool_.run_range(x.rows, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                kt_.rope(x.data + i * x.cols, x.cols / D, D, &s_.rope_cs[i * D / 2], &s_.rope_sn[i * D / 2], interleaved);
        });
        return x;  // in place: the unrotated values are not used again
    }

    Act attention(int64_t l, Act q, Act k, Act v, const AttentionSpec& a) override;
    Act lsh_attention(int64_t l, Act q, Act k, Act v, const AttentionSpec& a);
    KvCache& cache_of(int64_t row, int64_t l, int64_t k_dim, int64_t v_dim) const;
    void store_kv(int64_t l, Act k, Act v);
    void lsh_probe(const KvCache& cache, int64_t l, int64_t g, const float* qh, int64_t D, int64_t Dv, int64_t p,
                   int64_t W, float scale, const std::vector<int32_t>& cand, const float* lsh_out, LshStats& st) const;
    Act mla_attention(int64_t l, Act q, Act kv_a, const MlaSpec& m) override;
    Act moe(int64_t l, Act x, const MoeSpec& m) override;

    Act swiglu(Act x, Weight gate, Weight up) override {
        const Tensor& wg = w(gate);
        Act g = take(x.rows, wg.shape()[0]);
        Act u = take(x.rows, wg.shape()[0]);
        report_input(gate, x);
        report_input(up, x);
        kernels::matmul_swiglu(wg, w(up), x.data, x.rows, g.data, u.data, pool_, s_.mm);  // g = silu(g) * u
        if (any_delta(gate) || any_delta(up)) {
            // A delta on gate or up lands before the activation: the rows of sequences with one
            // are redone unfused, one group of adjacent sequences sharing a delta at a time (the
            // other rows keep the fused kernel's bits: batch invariance).
            std::vector<DeltaRun> groups;
            collect_runs(groups, [&](const LinearDelta* d) { return d->covers(gate) || d->covers(up); });
            for (const DeltaRun& run : groups) {
                const int64_t r0 = run.r0, rows = run.rows;
                Act xr{x.data + r0 * x.cols, rows, x.cols};
                Act gu[2];
                const Weight ws[2] = {gate, up}, none[2];
                linear(xr, ws, none, 2, gu, true, run.d);
                for (int64_t i = 0; i < rows * g.cols; ++i) {
                    const float a = gu[0].data[i];
                    g.data[r0 * g.cols + i] = a / (1.0f + std::exp(-a)) * gu[1].data[i];
                }
            }
        }
        return g;
    }

    // bf16 encodes: w's packed form when its product may run as one (bf16 encode, no delta on w),
    // else null; and a bias's values (null: none).
    const kernels::PackedBf16* encode_pack_for(Weight wt) {
        return encoding_ && m_.encode_type_ == DType::BF16 && !any_delta(wt) ? m_.encode_pack(w(wt), pool_) : nullptr;
    }
    const float* bias_values(Weight bias) const {
        const Tensor* b = bias.slot >= 0 ? m_.weight(bias) : nullptr;
        return b != nullptr ? b->ptr<float>() : nullptr;
    }
    // bf16 encodes: the product accumulated into h (h + x · wᵀ, then the bias, in the kernel; the
    // sums start from h instead of adding a finished product to it), where no delta comes between.
    Act linear_residual(int64_t layer, int branch, Act h, Act x, Weight wt, Weight bias) override {
        const kernels::PackedBf16* p = encode_pack_for(wt);
        if (p == nullptr || p->M != h.cols || x.rows != h.rows || x.data == h.data)
            return residual(layer, branch, h, linear(x, wt, bias));
        report_input(wt, x);
        kernels::gemm_bf16(x.data, x.cols, x.rows, *p, h.data, h.cols, true, &pool_, bias_values(bias));
        if (branch == 1 && h.data == s_.x.data()) next_buf_ = 0;  // as residual() below
        return h;
    }
    // bf16 encodes: the hidden rows straight from the up-projection's epilogue into the packed
    // layout the down-projection reads (kernels::gemm_bf16_to_rows: the bits of the f32 route),
    // then accumulated into h. Not with a matmul hook (it would want the hidden rows in f32).
    Act mlp_residual(int64_t layer, Act h, Act x, Weight up, Weight up_b, Weight down, Weight down_b,
                     Activation f) override {
        const kernels::PackedBf16* pu = encode_pack_for(up);
        const kernels::PackedBf16* pd = pu != nullptr ? encode_pack_for(down) : nullptr;
        if (pd == nullptr || s_.matmul_hook || pd->M != h.cols || pd->K != pu->M || x.rows != h.rows)
            return Ops::mlp_residual(layer, h, x, up, up_b, down, down_b, f);
        report_input(up, x);
        if (!s_.mlp_rows) s_.mlp_rows = std::make_shared<kernels::PackedRowsBf16>();
        kernels::gemm_bf16_to_rows(x.data, x.cols, x.rows, *pu, *s_.mlp_rows, &pool_, bias_values(up_b), static_cast<int>(f));
        kernels::gemm_bf16(*s_.mlp_rows, *pd, h.data, h.cols, true, &pool_, bias_values(down_b));
        if (h.data == s_.x.data()) next_buf_ = 0;  // as residual() below
        return h;
    }

    Act residual(int64_t layer, int branch, Act h, Act y) override {
        pool_.run_range(h.rows, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) kt_.add(h.cols, y.data + i * h.cols, h.data + i * h.cols);
        });
        // The layer is done: its temporaries are free again (unless the stream itself is one, as
        // in an MTP module's block).
        if (branch == 1 && h.data == s_.x.data()) next_buf_ = 0;
        return h;
    }

    // ---- encoder ops (Model::encode) ----
    // bf16 encodes (Model::set_encode_type): y (x.rows, N) = bf16(x) · bf16(w)ᵀ summed in f32
    // [+ bias] against w packed once by the model (Model::encode_pack; AMX tiles where the CPU
    // has them), then f in the product's epilogue (kernels::gemm_bf16's act: the bits of
    // act_rows afterwards, without that pass over y), where no delta comes between the two.
    // f32 encodes and weights the bf16 packer does not take (quantised): linear, then f.
    Act linear_act(Act x, Weight wt, Weight bias, Activation f) override {
        const kernels::PackedBf16* p = encode_pack_for(wt);
        if (p == nullptr) return activation(linear(x, wt, bias), f);
        report_input(wt, x);
        Act y = take(x.rows, p->M);
        kernels::gemm_bf16(x.data, x.cols, x.rows, *p, y.data, p->M, false, &pool_, bias_values(bias), static_cast<int>(f));
        return y;
    }
    void set_input(const float* rows, int64_t cols, int which = 0) {
        inputs_[which] = rows, input_cols_[which] = cols, encoding_ = true;
    }
    void set_text(const int32_t* lengths) { lengths_ = lengths, encoding_ = true; }
    Act input(int64_t cols, int which) override {
        LF_ASSERT(which >= 0 && which < 2 && inputs_[which] != nullptr && cols == input_cols_[which]);
        // Read only (a product's input); input 0 has the batch's n_ rows, input 1 its own.
        return {const_cast<float*>(inputs_[which]), which == 0 ? n_ : input_rows1_, cols};
    }
    void set_input_rows1(int64_t rows) { input_rows1_ = rows; }
    Act softmax_rows(Act x) override {
        for (int64_t i = 0; i < x.rows; ++i) kt_.softmax(x.data + i * x.cols, x.cols);
        return x;  // in place: a product's output
    }
    Act weighted_sum(Act wt, Act a, Act b) override {
        LF_ASSERT(wt.cols == 2 && a.rows == wt.rows && b.rows == wt.rows && a.cols == b.cols);
        Act y = take(a.rows, a.cols);
        for (int64_t i = 0; i < a.rows; ++i)
            for (int64_t c = 0; c < a.cols; ++c)
                y.data[i * a.cols + c] = wt.data[2 * i] * a.data[i * a.cols + c] + wt.data[2 * i + 1] * b.data[i * a.cols + c];
        return y;
    }
    Act layernorm(Act x, Weight gain, Weight bias, float eps) override {
        Act y = take(x.rows, x.cols);
        const float* g = w(gain).ptr<float>();
        const Tensor* b = bias.slot >= 0 ? m_.weight(bias) : nullptr;
        const float* bp = b != nullptr ? b->ptr<float>() : nullptr;
        pool_.run_range(x.rows, n_grain_, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) kernels::layernorm_row(x.data + i * x.cols, g, bp, y.data + i * x.cols, x.cols, eps);
        });
        return y;
    }
    Act activation(Act x, Activation f) override {
        const int kind = static_cast<int>(f);
        pool_.run_range(x.rows, n_grain_, [&](int64_t lo, int64_t hi) {
            kernels::act_rows(kind, x.data + lo * x.cols, x.data + lo * x.cols, (hi - lo) * x.cols);
        });
        return x;  // in place: an activation's input is a product's output nothing else reads
    }
    // An encoder's sequences all have x.rows / n_seqs_ rows (images of one size; texts padded).
    Act class_row(Act x, Weight wt) override {
        const float* c = w(wt).ptr<float>();
        const int64_t T = x.rows / n_seqs_;
        for (int64_t j = 0; j < n_seqs_; ++j) std::copy(c, c + x.cols, x.data + j * T * x.cols);
        return x;
    }
    Act add_positions(Act x, Weight table, int64_t offset) override {
        const Tensor& t = w(table);
        const int64_t C = t.shape().back(), n_rows = t.numel() / C;
        LF_ASSERT(C == x.cols);
        const size_t row_bytes = t.nbytes() / static_cast<size_t>(n_rows);
        const auto deq = kt_.dequantize_row[static_cast<int>(t.dtype())];
        pool_.run_range(x.rows, n_grain_, [&](int64_t lo, int64_t hi) {
            std::vector<float> row(static_cast<size_t>(C));
            for (int64_t i = lo; i < hi; ++i) {
                const int64_t p = s_.row_pos[i] + offset;
                LF_ASSERT(p >= 0 && p < n_rows);
                deq(static_cast<const uint8_t*>(t.data()) + p * row_bytes, row.data(), C);
                kt_.add(C, row.data(), x.data + i * C);
            }
        });
        return x;
    }
    Act add_row(Act x, Weight table, int64_t row) override {
        const Tensor& t = w(table);
        std::vector<float> v(static_cast<size_t>(x.cols));
        LF_ASSERT(t.shape().back() == x.cols && row >= 0 && row < t.numel() / x.cols);
        kt_.dequantize_row[static_cast<int>(t.dtype())](static_cast<const uint8_t*>(t.data()) + row * (t.nbytes() / (t.numel() / x.cols)),
                                                        v.data(), x.cols);
        pool_.run_range(x.rows, n_grain_, [&](int64_t lo, int64_t hi) {
            for (int64_t i = lo; i < hi; ++i) kt_.add(x.cols, v.data(), x.data + i * x.cols);
        });
        return x;
    }
    Act first_rows(Act x) override {
        Act y = take(n_seqs_, x.cols);
        const int64_t T = x.rows / n_seqs_;
        for (int64_t j = 0; j < n_seqs_; ++j) std::copy(x.data + j * T * x.cols, x.data + (j * T + 1) * x.cols, y.data + j * x.cols);
        return y;
    }
    Act mean_rows(Act x) override {
        Act y = take(n_seqs_, x.cols);
        const int64_t T = x.rows / n_seqs_, C = x.cols;
        for (int64_t j = 0; j < n_seqs_; ++j)
            for (int64_t c = 0; c < C; ++c) {
                double s = 0;  // the trainer's order and precision
                for (int64_t i = 0; i < T; ++i) s += x.data[(j * T + i) * C + c];
                y.data[j * C + c] = static_cast<float>(s / static_cast<double>(T));
            }
        return y;
    }
    Act gather_rows(Act x, const int32_t* index, int64_t n_out) override {
        const int64_t T = x.rows / n_seqs_, C = x.cols;
        Act y = take(n_seqs_ * n_out, C);
        pool_.run_range(n_seqs_ * n_out, n_grain_, [&](int64_t lo, int64_t hi) {
            for (int64_t r = lo; r < hi; ++r) {
                const int32_t src = index[r % n_out];
                LF_ASSERT(src < T);
                float* yr = y.data + r * C;
                if (src < 0) {
                    std::fill(yr, yr + C, 0.0f);
                } else {
                    const float* xr = x.data + ((r / n_out) * T + src) * C;
                    std::copy(xr, xr + C, yr);
                }
            }
        });
        return y;
    }
    Act merge_rows(Act x, int64_t k) override {
        LF_ASSERT(x.rows % k == 0);
        return {x.data, x.rows / k, x.cols * k};  // the same floats, read k rows at a time
    }
    Act columns(Act x, int64_t first, int64_t n) override {
        LF_ASSERT(first >= 0 && n > 0 && first + n <= x.cols);
        Act y = take(x.rows, n);
        for (int64_t i = 0; i < x.rows; ++i) std::copy(x.data + i * x.cols + first, x.data + i * x.cols + first + n, y.data + i * n);
        return y;
    }
    Act table_bias(Weight table, const int32_t* index, int64_t G, int64_t H) override {
        const float* tb = w(table).ptr<float>();
        Act y = take(H, G * G);
        for (int64_t h = 0; h < H; ++h)
            for (int64_t e = 0; e < G * G; ++e) y.data[h * G * G + e] = tb[index[e] * H + h];
        return y;
    }
    // Encoders keep each layer's output in s_.x, so the next layer reuses every temporary buffer
    // (a post-norm or merging layer returns a fresh one: copied there).
    Act run_layer(int64_t layer, Act h, const std::function<Act(Ops&, Act)>& body) override {
        if (!encoding_) return body(*this, h);
        auto to_stream = [this](Act a) {
            if (a.data == s_.x.data()) return a;
            grow(s_.x, a.rows * a.cols);
            std::copy(a.data, a.data + a.rows * a.cols, s_.x.data());
            a.data = s_.x.data();
            return a;
        };
        Act y = to_stream(body(*this, to_stream(h)));
        next_buf_ = 0;
        return y;
    }
    Act bidirectional_attention(Act q, Act k, Act v, const AttentionSpec& a);

    Act concat(Act a, Act b) override {
        LF_ASSERT(a.rows == b.rows);
        Act y = take(a.rows, a.cols + b.cols);
        for (int64_t i = 0; i < a.rows; ++i) {
            std::copy(a.data + i * a.cols, a.data + (i + 1) * a.cols, y.data + i * y.cols);
            std::copy(b.data + i * b.cols, b.data + (i + 1) * b.cols, y.data + i * y.cols + a.cols);
        }
        return y;
    }

    Act output_rows(Act h) override {
        if (s_.keep_hidden) s_.hidden.assign(h.data, h.data + n_real_ * h.cols);  // every real row, before the head
        // Each seq's last n_out rows, in order; a lone row doubled in batch-invariant mode.
        const bool doubled = double_lone_row_ && n_out_total_ == 1;
        m_out_ = doubled ? 2 : n_out_total_;
        Act y = take(std::max<int64_t>(m_out_, 1), h.cols);
        y.rows = m_out_;
        for (int64_t j = 0, i = 0, o = 0; j < n_seqs_; i += seqs_[j].n, ++j)
            for (int64_t t = seqs_[j].n - seqs_[j].n_out; t < seqs_[j].n; ++t, ++o)
                std::copy(h.data + (i + t) * h.cols, h.data + (i + t + 1) * h.cols, y.data + o * h.cols);
        if (doubled) std::copy(y.data, y.data + h.cols, y.data + h.cols);
        return y;
    }

    Act logits(Act h, Weight wt) override {
        const Tensor& out = w(wt);
        const int64_t V = out.shape()[0];
        if (h.rows == 0) return {nullptr, 0, V};
        report_input(wt, h);
        const SeqBatch* only = nullptr;  // the single seq with logits, written to in place
        for (int64_t j = 0; j < n_seqs_; ++j)
            if (seqs_[j].n_out == n_out_total_) only = &seqs_[j];
        if (only != nullptr && m_out_ == n_out_total_) {
            kernels::matmul(out, h.data, h.rows, only->logits, pool_, s_.mm);
            if (only->delta != nullptr && only->delta->covers(wt)) {
                delta_runs_.clear();
                delta_runs_.push_back({only->delta, 0, h.rows});
                run_deltas(wt, h, {only->logits, h.rows, V});
            }
            return {only->logits, h.rows, V};
        }
        grow(s_.out_logits, h.rows * V);
        kernels::matmul(out, h.data, h.rows, s_.out_logits.data(), pool_, s_.mm);
        delta_runs_.clear();
        for (int64_t j = 0, o = 0; j < n_seqs_; o += seqs_[j].n_out, ++j) {
            const LinearDelta* d = seqs_[j].delta;
            if (d == nullptr || !d->covers(wt) || seqs_[j].n_out == 0) continue;
            if (!delta_runs_.empty() && delta_runs_.back().d == d && delta_runs_.back().r0 + delta_runs_.back().rows == o) {
                delta_runs_.back().rows += seqs_[j].n_out;
            } else {
                delta_runs_.push_back({d, o, seqs_[j].n_out});
            }
        }
        run_deltas(wt, h, {s_.out_logits.data(), h.rows, V});
        for (int64_t j = 0, o = 0; j < n_seqs_; o += seqs_[j].n_out, ++j)
            std::copy(s_.out_logits.data() + o * V, s_.out_logits.data() + (o + seqs_[j].n_out) * V, seqs_[j].logits);
        return {s_.out_logits.data(), h.rows, V};
    }

    bool observing() const override { return static_cast<bool>(s_.hook); }
    void observe(const std::string& name, Act x) override {
        if (!s_.hook || x.rows == 0) return;
        if (encoding_) return s_.hook(name, x.data, x.rows * x.cols);  // an encoder's: every row
        const int64_t rows = x.rows == n_ ? n_real_ : std::min(x.rows, n_out_total_);
        s_.hook(name, x.data, rows * x.cols);
    }

private:
    // ForwardScratch::matmul_hook: the real rows of a product's input (not the doubled lone row).
    void report_input(Weight wt, Act x) {
        if (!s_.matmul_hook || x.rows == 0) return;
        const int64_t rows = x.rows == n_ ? n_real_ : std::min(x.rows, n_out_total_);
        s_.matmul_hook(m_.weight_name(wt), x.data, rows, x.cols);
    }
    // The same for one routed expert's gathered rows (group [b, b + n) of groups_, tokens in
    // ascending order, so the real rows come first).
    void report_expert(const std::string& name, int64_t b, int64_t n, const float* x, int64_t cols) {
        int64_t real = 0;
        while (real < n && groups_.token[b + real] < n_real_) ++real;
        if (real > 0) s_.matmul_hook(name, x, real, cols);
    }
    bool any_delta(Weight wt) const {
        for (int64_t j = 0; j < n_seqs_; ++j)
            if (seqs_[j].delta != nullptr && seqs_[j].delta->covers(wt)) return true;
        return false;
    }
    bool any_expert_delta(Weight wt) const {
        for (int64_t j = 0; j < n_seqs_; ++j)
            if (seqs_[j].delta != nullptr && seqs_[j].delta->covers_experts(wt)) return true;
        return false;
    }
    // moe: adds to y's gathered rows (moe_first_'s layout, x their inputs) each row's sequence's
    // delta for the row's expert of stack wt. Adjacent rows of one expert and delta are one call
    // (one row per call in batch-invariant mode, as in run_deltas); experts run on the pool.
    void apply_expert_deltas(Weight wt, const float* x, int64_t in, float* y, int64_t out) {
        const int64_t E = static_cast<int64_t>(moe_first_.size()) - 1;
        pool_.run_range(E, 1, [&](int64_t e0, int64_t e1) {
            for (int64_t e = e0; e < e1; ++e) {
                const int64_t b = groups_.begin[e], n = groups_.begin[e + 1] - b;
                const int64_t first = moe_first_[e], rows = moe_first_[e + 1] - first;
                for (int64_t j = 0; j < rows;) {
                    const LinearDelta* d = seqs_[s_.row_seq[groups_.token[b + std::min(j, n - 1)]]].delta;
                    int64_t k = j + 1;
                    if (!s_.batch_invariant)
                        while (k < rows && seqs_[s_.row_seq[groups_.token[b + std::min(k, n - 1)]]].delta == d) ++k;
                    if (d != nullptr && d->covers_expert(wt, e))
                        d->apply_expert(wt, e, x + (first + j) * in, k - j, in, y + (first + j) * out, out);
                    j = k;
                }
            }
        });
    }
    // Calls fn(seq, first row, rows) for each sequence's run of rows, then for the doubled lone
    // row of batch-invariant mode (it belongs to sequence row_seq[0]).
    template <class Fn>
    void for_each_run(Fn fn) {
        for (int64_t j = 0, i = 0; j < n_seqs_; i += seqs_[j].n, ++j)
            if (seqs_[j].n > 0) fn(seqs_[j], i, seqs_[j].n);
        if (n_ > n_real_) fn(seqs_[s_.row_seq[0]], n_real_, n_ - n_real_);
    }
    // A run of adjacent rows whose sequences share one delta (the scheduler puts sequences with
    // the same adapter side by side, so a run is usually one adapter's whole group).
    struct DeltaRun {
        const LinearDelta* d;
        int64_t r0, rows;
    };
    // The runs of rows whose delta satisfies `use`: adjacent sequences with the same delta merge.
    template <class Use>
    void collect_runs(std::vector<DeltaRun>& runs, Use use) {
        runs.clear();
        for_each_run([&](const SeqBatch& sq, int64_t r0, int64_t rows) {
            if (sq.delta == nullptr || !use(sq.delta)) return;
            if (!runs.empty() && runs.back().d == sq.delta && runs.back().r0 + runs.back().rows == r0) {
                runs.back().rows += rows;
            } else {
                runs.push_back({sq.delta, r0, rows});
            }
        });
    }
    // Adds each sequence's delta for weight wt to its own rows of y: one call per run of
    // adjacent sequences sharing a delta (one pair of small GEMMs per adapter group), or one per
    // row in batch-invariant mode (run_deltas).
    void apply_deltas(Weight wt, Act x, Act y) {
        if (!any_delta(wt)) return;
        collect_runs(delta_runs_, [&](const LinearDelta* d) { return d->covers(wt); });
        run_deltas(wt, x, y);
    }
    // y[r0 + i] += run.d(x[r0 + i]) for every run in delta_runs_, on the pool (runs are disjoint).
    // In batch-invariant mode every row is its own call, as nothing in LinearDelta promises that a
    // row's result does not depend on the rows that come with it, and LowRankDelta's BLAS products
    // do depend on them (OpenBLAS 0.3.21 takes its small-matrix kernels below M·N·K = 1e6, e.g. up
    // to ~76 rows for in = 768, r = 16, and the blocked ones above). LowRankDelta's one-row path
    // is a fixed-order dot/axpy (model/low_rank.h), so the split costs it nothing.
    void run_deltas(Weight wt, Act x, Act y) {
        const std::vector<DeltaRun>& runs = delta_runs_;
        if (runs.empty()) return;
        auto call = [&](const DeltaRun& r, int64_t i, int64_t rows) {
            r.d->apply(wt, x.data + (r.r0 + i) * x.cols, rows, x.cols, y.data + (r.r0 + i) * y.cols, y.cols);
        };
        if (!s_.batch_invariant) {
            if (runs.size() == 1) {
                call(runs[0], 0, runs[0].rows);
            } else {
                pool_.run(static_cast<int64_t>(runs.size()), [&](int64_t k, int) { call(runs[k], 0, runs[k].rows); });
            }
            return;
        }
        run_ends_.clear();
        int64_t total = 0;
        for (const DeltaRun& r : runs) run_ends_.push_back(total += r.rows);
        if (total <= 4) {  // a few rows: less work than handing it to the pool
            for (const DeltaRun& r : runs)
                for (int64_t i = 0; i < r.rows; ++i) call(r, i, 1);
            return;
        }
        pool_.run_range(total, 2, [&](int64_t b, int64_t e) {
            size_t k = static_cast<size_t>(std::upper_bound(run_ends_.begin(), run_ends_.end(), b) - run_ends_.begin());
            for (int64_t i = b; i < e; ++i) {
                while (i >= run_ends_[k]) ++k;
                call(runs[k], i - (run_ends_[k] - runs[k].rows), 1);
            }
        });
    }
    template <class V>
    static void grow(V& v, size_t n) {
        if (v.size() < n) v.resize(n);
    }
    const Tensor& w(Weight x) const {
        const Tensor* t = m_.weight(x);
        LF_ASSERT(t != nullptr);
        return *t;
    }
    // The next temporary buffer: the same sequence of sizes is asked for in every layer, so each
    // buffer keeps one role and stays warm in cache.
    Act take(int64_t rows, int64_t cols) {
        if (next_buf_ == s_.bufs.size()) s_.bufs.emplace_back();
        auto& b = s_.bufs[next_buf_++];
        grow(b, static_cast<size_t>(rows * cols));
        return {b.data(), rows, cols};
    }

    const Model& m_;
    const SeqBatch* seqs_;
    int64_t n_seqs_, n_, n_real_, n_out_total_, max_len_;
    bool double_lone_row_;
    ThreadPool& pool_;
    ForwardScratch& s_;
    const kernels::KernelTable& kt_;
    int64_t n_grain_;
    size_t next_buf_ = 0;
    int64_t m_out_ = 0;
    const float* inputs_[2] = {nullptr, nullptr};  // encoders' input rows: 0 (n_ rows), 1 (input_rows1_ rows)
    int64_t input_cols_[2] = {0, 0};
    int64_t input_rows1_ = 0;
    const int32_t* lengths_ = nullptr;  // text encoders: each sequence's real tokens (the rest is padding)
    bool encoding_ = false;             // Model::encode / encode_tokens
    std::vector<DeltaRun> delta_runs_;
    std::vector<int64_t> run_ends_;  // run_deltas: each run's end in the concatenated rows
    std::vector<kernels::GroupedProduct> grouped_;  // moe / mla: the products of one dispatch
    ExpertGroups groups_;
    std::vector<int64_t> moe_at_;
    std::vector<int64_t> moe_first_;  // moe: expert e's first gathered row (E + 1 entries)
};

// Attention work: a sequence's run of at least kAttMinRows prompt rows is cut into blocks of
// kAttBlockRows query rows that go through BLAS, one item per (block, query head); every other
// row (decode steps, short chunks, all rows in batch-invariant mode, whose result must not depend
// on the rows beside it) uses the kernel table's one-position attention, one item per (row, kv
// head). The per-position kernel reloads every K/V row for each query; as two small GEMMs a block
// reads them once (measured in docs/PERFORMANCE.md, prompt processing). With a sliding window W
// a row at position p reads positions max(0, p - W + 1) .. p only.
constexpr int64_t kAttMinRows = 16, kAttBlockRows = 64;

KvCache& EagerOps::cache_of(int64_t row, int64_t l, int64_t k_dim, int64_t v_dim) const {
    KvCache* c = seqs_[s_.row_seq[row]].cache->rows();
    LF_ASSERT(c != nullptr && c->k_dim(l) == k_dim && c->v_dim(l) == v_dim);
    return *c;
}

// Each real row's K/V into its cache row, in the cache's types: a quantised row is quantised
// here, once (blocks of 32 along the row never straddle a head: the cache checked D). A lone
// row doubled in batch-invariant mode (rows >= n_real_) is the same position: not written twice.
void EagerOps::store_kv(int64_t l, Act k, Act v) {
    auto store = [&](DType t, const float* src, uint8_t* dst, int64_t n) {
        if (t == DType::F32) {
            std::copy(src, src + n, reinterpret_cast<float*>(dst));
        } else {
            kt_.quantize_row[static_cast<int>(t)](src, dst, n);
        }
    };
    pool_.run_range(n_real_, n_grain_, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            KvCache& cache = cache_of(i, l, k.cols, v.cols);
            store(cache.types().k, k.data + i * k.cols, cache.k_row(l, s_.row_pos[i]), k.cols);
            store(cache.types().v, v.data + i * v.cols, cache.v_row(l, s_.row_pos[i]), v.cols);
        }
    });
}

// LSH-bucketed attention (model/lsh.h): the rows' keys are stored and hashed into their cache's
// buckets, each sequence's per-(layer, kv head) index is brought up to the batch's last position,
// then every (row, kv head) item hashes its query heads and attends over their candidates with
// the kernel table's one-position attention (lsh_attend_row). A row's result depends on its own
// query and its cache only, so prompt, decode and batch-invariant mode agree bit for bit, and
// with every position a candidate (dense_below, one bucket and a window >= n) it is dense decode.
// Non-f32 caches: the candidates' rows are dequantised into the item's buffer first.
Act EagerOps::lsh_attention(int64_t l, Act q, Act k, Act v, const AttentionSpec& a) {
    const LshSpec& spec = *a.lsh;
    const int64_t H = a.n_head, Hkv = a.n_head_kv, D = a.head_dim, Dv = a.head_dim_v, R = spec.n_hashes;
    const int64_t q_dim = H * D, k_dim = Hkv * D, v_dim = Hkv * Dv, o_dim = H * Dv, group = H / Hkv, W = a.window;
    LF_ASSERT(q.cols == q_dim && k.cols == k_dim && v.cols == v_dim);
    const int64_t* row_pos = s_.row_pos.data();
    store_kv(l, k, v);
    pool_.run_range(n_real_, n_grain_, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            KvCache& cache = cache_of(i, l, k_dim, v_dim);
            LF_ASSERT(cache.has_lsh());
            int32_t* kb = cache.lsh_buckets(l, row_pos[i]);
            for (int64_t g = 0; g < Hkv; ++g) m_.lsh_hash(l, g).buckets(k.data + i * k_dim + g * D, kb + g * R);
        }
    });
    pool_.run(n_seqs_ * Hkv, [&](int64_t item, int) {
        const SeqBatch& sq = seqs_[item / Hkv];
        if (sq.n > 0) sq.cache->rows()->lsh_index(l, item % Hkv, sq.pos0, sq.pos0 + sq.n - 1);
    });
    LshStats* stats = s_.lsh_stats;
    if (stats != nullptr && stats->scores.empty()) stats->reset(m_.config().n_block(), H);
    std::vector<LshStats> part(stats != nullptr ? static_cast<size_t>(pool_.size()) : 0);
    for (LshStats& ps : part) ps.reset(stats->n_layer, stats->n_head);
    Act att = take(n_, o_dim);
    pool_.run(n_ * Hkv, [&](int64_t item, int tid) {
        const int64_t i = item / Hkv, g = item % Hkv, p = row_pos[i];
        KvCache& cache = cache_of(i, l, k_dim, v_dim);
        const LshIndex& idx = cache.lsh_index(l, g);
        const KvTypes& kvt = cache.types();
        thread_local std::vector<int32_t> cand, qb;
        thread_local std::vector<float> scratch, deq;
        qb.resize(static_cast<size_t>(R));
        for (int64_t h = g * group; h < (g + 1) * group; ++h) {
            const float* qh = q.data + i * q_dim + h * D;
            float* out = att.data + i * o_dim + h * Dv;
            m_.lsh_hash(l, g).buckets(qh, qb.data());
            idx.candidates(p, qb.data(), spec, cand);
            if (W > 0) cand.erase(cand.begin(), std::lower_bound(cand.begin(), cand.end(), static_cast<int32_t>(p - W + 1)));
            const int64_t n = static_cast<int64_t>(cand.size());
            grow(scratch, static_cast<size_t>(n * (1 + 2 * std::max(D, Dv))));
            if (kvt.is_f32()) {
                lsh_attend_row(qh, cache.k(l) + g * D, k_dim, cache.v(l) + g * Dv, v_dim, D, Dv, cand.data(), n,
                               a.scale, out, scratch.data());
            } else {
                // The candidates' K and V rows of this head as f32, then attention over them in place.
                grow(deq, static_cast<size_t>(n * (D + Dv)));
                const auto k_f32 = kt_.dequantize_row[static_cast<int>(kvt.k)];
                const auto v_f32 = kt_.dequantize_row[static_cast<int>(kvt.v)];
                const size_t koff = row_bytes(kvt.k, g * D), voff = row_bytes(kvt.v, g * Dv);
                float* kd = deq.data();
                float* vd = kd + n * D;
                thread_local std::vector<int32_t> local;
                local.resize(static_cast<size_t>(n));
                for (int64_t j = 0; j < n; ++j) {
                    k_f32(cache.k_row(l, cand[j]) + koff, kd + j * D, D);
                    v_f32(cache.v_row(l, cand[j]) + voff, vd + j * Dv, Dv);
                    local[j] = static_cast<int32_t>(j);
                }
                lsh_attend_row(qh, kd, D, vd, Dv, D, Dv, local.data(), n, a.scale, out, scratch.data());
            }
            if (stats == nullptr || i >= n_real_) continue;
            LshStats& st = part[static_cast<size_t>(tid)];
            st.scores[static_cast<size_t>(l * H + h)] += n;
            st.dense[static_cast<size_t>(l * H + h)] += W > 0 ? std::min(p + 1, W) : p + 1;
            if (stats->probe_every > 0 && (p + 1) % stats->probe_every == 0)
                lsh_probe(cache, l, g, qh, D, Dv, p, W, a.scale, cand, out, st);
        }
    });
    for (const LshStats& ps : part) stats->merge(ps);
    return att;
}

// The online error probe of one (row, head): dense attention over every position the row could
// see, in double, against LSH's output `lsh_out` (largest difference over the output, divided by
// the largest value entry the row can see: at most 2), and the share of the dense softmax mass
// on LSH's candidates `cand` (positions).
void EagerOps::lsh_probe(const KvCache& cache, int64_t l, int64_t g, const float* qh, int64_t D, int64_t Dv,
                         int64_t p, int64_t W, float scale, const std::vector<int32_t>& cand, const float* lsh_out,
                         LshStats& st) const {
    const int64_t k0 = W > 0 ? std::max<int64_t>(0, p - W + 1) : 0, n = p + 1 - k0;
    const KvTypes& kvt = cache.types();
    std::vector<float> buf(static_cast<size_t>(std::max(D, Dv)));
    // Row t of this head's keys (values) as f32: the cache itself or dequantised into buf.
    auto row = [&](bool key, int64_t t) -> const float* {
        const DType dt = key ? kvt.k : kvt.v;
        const int64_t w = key ? D : Dv;
        const uint8_t* r = (key ? cache.k_row(l, t) : cache.v_row(l, t)) + row_bytes(dt, g * w);
        if (dt == DType::F32) return reinterpret_cast<const float*>(r);
        kt_.dequantize_row[static_cast<int>(dt)](r, buf.data(), w);
        return buf.data();
    };
    std::vector<double> sc(static_cast<size_t>(n)), o(static_cast<size_t>(Dv), 0.0);
    double m = -1e300;
    for (int64_t t = 0; t < n; ++t) {
        const float* kk = row(true, k0 + t);
        double d = 0;
        for (int64_t i = 0; i < D; ++i) d += static_cast<double>(qh[i]) * kk[i];
        sc[t] = d * scale;
        m = std::max(m, sc[t]);
    }
    double z = 0;
    for (double& x : sc) z += (x = std::exp(x - m));
    double vmax = 0;  // the largest value entry the row can see: the scale of its outputs
    for (int64_t t = 0; t < n; ++t) {
        const float* vv = row(false, k0 + t);
        for (int64_t i = 0; i < Dv; ++i) {
            o[i] += sc[t] / z * vv[i];
            vmax = std::max(vmax, std::abs(static_cast<double>(vv[i])));
        }
    }
    double kept = 0;
    for (int32_t c : cand) kept += sc[c - k0] / z;
    // Relative to the values' scale, not to this output's own magnitude: dense attention that
    // averages many values can have a tiny output, and a ratio to it says little.
    double err = 0;
    for (int64_t i = 0; i < Dv; ++i) err = std::max(err, std::abs(o[i] - lsh_out[i]));
    err /= std::max(vmax, 1e-30);
    ++st.probes;
    st.err_sum += err;
    st.err_max = std::max(st.err_max, err);
    st.mass_sum += kept;
    st.mass_min = std::min(st.mass_min, kept);
}

// Encoders: every row of a sequence attends to every row of it (no KV memory), one work item per
// (sequence, query head): scores S = scale · Q_h K_g^T, row softmax, O_h = S V_g as two GEMMs.
Act EagerOps::bidirectional_attention(Act q, Act k, Act v, const AttentionSpec& a) {
    const int64_t H = a.n_head, Hkv = a.n_head_kv, D = a.head_dim, Dv = a.head_dim_v;
    const int64_t q_dim = H * D, k_dim = Hkv * D, v_dim = Hkv * Dv, o_dim = H * Dv, group = H / Hkv;
    LF_ASSERT(q.cols == q_dim && k.cols == k_dim && v.cols == v_dim && a.window == 0 && a.lsh == nullptr);
    // Groups of rows: Swin's windows, else whole sequences (an encoder's are all one length); the
    // keys' groups may be another input's (cross-attention), with their own length.
    const int64_t T = a.group > 0 ? a.group : q.rows / n_seqs_, n_groups = q.rows / T;
    const int64_t Tk = a.group > 0 ? a.group : k.rows / n_seqs_;
    LF_ASSERT(n_groups * T == q.rows && n_groups * Tk == k.rows && (a.mask == nullptr || a.n_mask > 0));
    LF_ASSERT((a.bias.data == nullptr && a.mask == nullptr) || T == Tk);
    Act att = take(q.rows, o_dim);
    grow(s_.att_block, static_cast<size_t>(pool_.size() * T * Tk));
    // bf16 encodes (Model::set_encode_type): kernels::attention_bf16 (both products as bf16 ones,
    // AMX tiles where the CPU has them, the softmax in f32 writing P straight into the packed
    // layout; 32 query rows at a time in cache).
    const bool bf16 = m_.encode_type_ == DType::BF16;
    pool_.run(n_groups * H, [&](int64_t item, int tid) {
        const int64_t j = item / H, h = item % H, g = h / group, i0 = j * T, k0 = j * Tk;
        const float* qh = q.data + i0 * q_dim + h * D;
        const float* kh = k.data + k0 * k_dim + g * D;
        const float* vh = v.data + k0 * v_dim + g * Dv;
        float* oh = att.data + i0 * o_dim + h * Dv;
        // Padded text: keys past the sequence's length get no weight.
        const int64_t L = a.group == 0 && lengths_ != nullptr ? lengths_[j] : Tk;
        const float* bias = a.bias.data != nullptr ? a.bias.data + h * T * T : nullptr;
        const float* mask = a.mask != nullptr ? a.mask + (j % a.n_mask) * T * T : nullptr;
        if (bf16) {
            kernels::AttentionBf16 x;
            x.q = qh, x.k = kh, x.v = vh, x.ldq = q_dim, x.ldk = k_dim, x.ldv = v_dim;
            x.T = T, x.Tk = Tk, x.L = L, x.D = D, x.Dv = Dv, x.scale = a.scale;
            x.add[0] = bias, x.add[1] = mask, x.o = oh, x.ldo = o_dim;
            kernels::attention_bf16(x);
            return;
        }
        float* sc = &s_.att_block[static_cast<size_t>(tid) * T * Tk];
        kernels::sgemm(false, true, T, Tk, D, a.scale, qh, q_dim, kh, k_dim, 0.0f, sc, Tk);
        if (bias != nullptr) kt_.add(T * T, bias, sc);
        if (mask != nullptr) kt_.add(T * T, mask, sc);
        for (int64_t r = 0; r < T; ++r) {
            kt_.softmax(sc + r * Tk, L);
            std::fill(sc + r * Tk + L, sc + (r + 1) * Tk, 0.0f);
        }
        kernels::sgemm(false, false, T, Dv, Tk, 1.0f, sc, Tk, vh, v_dim, 0.0f, oh, o_dim);
    });
    return att;
}

Act EagerOps::attention(int64_t l, Act q, Act k, Act v, const AttentionSpec& a) {
    if (!a.causal) return bidirectional_attention(q, k, v, a);
    const int64_t H = a.n_head, Hkv = a.n_head_kv, D = a.head_dim, Dv = a.head_dim_v;
    const int64_t q_dim = H * D, k_dim = Hkv * D, v_dim = Hkv * Dv, o_dim = H * Dv;
    const int64_t group = H / Hkv, W = a.window;
    const float scale = a.scale;
    LF_ASSERT(q.cols == q_dim && k.cols == k_dim && v.cols == v_dim);
    const int64_t* row_pos = s_.row_pos.data();
    if (a.lsh != nullptr) return lsh_attention(l, q, k, v, a);
    bool any_quant = false;
    for (int64_t j = 0; j < n_seqs_; ++j) {
        KvCache* c = seqs_[j].n > 0 ? seqs_[j].cache->rows() : nullptr;
        if (c != nullptr && !c->types().is_f32()) any_quant = true;
    }
    store_kv(l, k, v);
    Act att = take(n_, o_dim);
    const int64_t n_block_items = static_cast<int64_t>(s_.att_blocks.size()) * H;
    const int64_t n_row_items = static_cast<int64_t>(s_.att_rows.size()) * Hkv;
    // Prompt blocks over a non-f32 cache read f32 rows of one head: each thread dequantises the
    // rows a block reads into its own buffer (n_kv x D keys, n_kv x Dv values).
    const size_t deq_per_thread = static_cast<size_t>(max_len_ * (D + Dv));
    if (any_quant && n_block_items > 0) grow(s_.att_kv, static_cast<size_t>(pool_.size()) * deq_per_thread);
    pool_.run(n_block_items + n_row_items, [&](int64_t item, int tid) {
        if (item < n_block_items) {
            const auto [i0, nq] = s_.att_blocks[item / H];
            const int64_t h = item % H, g = h / group;
            KvCache& cache = cache_of(i0, l, k_dim, v_dim);
            const int64_t p0 = row_pos[i0];
            const int64_t k0 = W > 0 ? std::max<int64_t>(0, p0 - W + 1) : 0;  // first key any row reads
            const int64_t n_kv = p0 + nq - k0;
            float* sc = &s_.att_block[static_cast<size_t>(tid) * kAttBlockRows * max_len_];
            // K_g and V_g rows [k0, k0 + n_kv): the cache itself when f32, else dequantised.
            const float* kg;
            const float* vg;
            int64_t ldk = k_dim, ldv = v_dim;
            const KvTypes& kvt = cache.types();
            float* deq = kvt.is_f32() ? nullptr : &s_.att_kv[static_cast<size_t>(tid) * deq_per_thread];
            if (kvt.k == DType::F32) {
                kg = cache.k(l) + k0 * k_dim + g * D;
            } else {
                const auto to_f32 = kt_.dequantize_row[static_cast<int>(kvt.k)];
                const size_t off = row_bytes(kvt.k, g * D);
                for (int64_t t = 0; t < n_kv; ++t) to_f32(cache.k_row(l, k0 + t) + off, deq + t * D, D);
                kg = deq;
                ldk = D;
            }
            if (kvt.v == DType::F32) {
                vg = cache.v(l) + k0 * v_dim + g * Dv;
            } else {
                const auto to_f32 = kt_.dequantize_row[static_cast<int>(kvt.v)];
                const size_t off = row_bytes(kvt.v, g * Dv);
                float* vd = deq + max_len_ * D;
                for (int64_t t = 0; t < n_kv; ++t) to_f32(cache.v_row(l, k0 + t) + off, vd + t * Dv, Dv);
                vg = vd;
                ldv = Dv;
            }
            // scores (nq, n_kv) = scale * Q_h K_g^T; causal (windowed) softmax per row; out_h = P V_g.
            kernels::sgemm(false, true, nq, n_kv, D, scale, q.data + i0 * q_dim + h * D, q_dim, kg, ldk, 0.0f, sc,
                           n_kv);
            for (int64_t r = 0; r < nq; ++r) {
                float* row = sc + r * n_kv;
                const int64_t end = p0 + r + 1 - k0;  // keys [lo, end) in block-local indices
                const int64_t lo = W > 0 ? std::max<int64_t>(0, p0 + r - W + 1 - k0) : 0;
                kt_.softmax(row + lo, end - lo);
                std::fill(row, row + lo, 0.0f);
                std::fill(row + end, row + n_kv, 0.0f);
            }
            kernels::sgemm(false, false, nq, Dv, n_kv, 1.0f, sc, n_kv, vg, ldv, 0.0f, att.data + i0 * o_dim + h * Dv,
                           o_dim);
            return;
        }
        // The kernel table's one-position attention (one head size for keys and values): f32 rows
        // through `attention`, other types through `attention_kv`, which reads them as stored.
        LF_ASSERT(D == Dv);
        const int64_t i = s_.att_rows[(item - n_block_items) / Hkv], g = (item - n_block_items) % Hkv;
        KvCache& cache = cache_of(i, l, k_dim, v_dim);
        const int64_t p = row_pos[i], k0 = W > 0 ? std::max<int64_t>(0, p - W + 1) : 0;
        float* scores = &s_.att_scores[static_cast<size_t>(tid) * max_len_];
        const KvTypes& kvt = cache.types();
        if (kvt.is_f32()) {
            kt_.attention(q.data + i * q_dim + g * group * D, cache.k(l) + k0 * k_dim + g * D,
                          cache.v(l) + k0 * v_dim + g * D, p + 1 - k0, k_dim, group, 1, D, scale,
                          att.data + i * o_dim + g * group * D, scores);
        } else {
            kt_.attention_kv(q.data + i * q_dim + g * group * D, cache.k_row(l, k0) + row_bytes(kvt.k, g * D), kvt.k,
                             cache.k_row_bytes(l), cache.v_row(l, k0) + row_bytes(kvt.v, g * D), kvt.v,
                             cache.v_row_bytes(l), p + 1 - k0, group, 1, D, scale, att.data + i * o_dim + g * group * D,
                             scores);
        }
    });
    return att;
}

// Multi-head latent attention over the compressed cache (DeepSeek MLA, "absorbed" form): each
// cache row holds the normalised latent c (r) and the rotated shared key part k_pe (R). With
// W_UK_h folded into the query, q_abs_h = [q_nope_h · W_UK_h, q_pe_h] (r + R), the score of
// position t is q_abs_h · [c_t, k_pe_t] = q_h · k_h,t exactly, and the output is
// (sum_t p_t c_t) · W_UV_h^T. Attention thus runs as multi-query attention of H heads over one
// (r + R)-wide KV head whose values are the same rows (the last R outputs are ignored): the
// kernel table's one-position attention for single rows, two GEMMs per (block, head) for prompt
// blocks. A row's result depends on that row only (per-row products in batch-invariant mode).
Act EagerOps::mla_attention(int64_t l, Act q, Act kva, const MlaSpec& m) {
    const int64_t H = m.n_head, nope = m.nope, R = m.rope, r = m.kv_rank, Dv = m.v_dim;
    const int64_t Dq = nope + R, Dl = r + R, N = q.rows;
    LF_ASSERT(q.cols == H * Dq && kva.cols == Dl);
    // A LoRA on kv_b (ΔW = s·B·A) stays low-rank after folding: per head, the query's latent part
    // gains q_nope_h · ΔW_K_h and the output gains ΔW_V_h · o_lat_h (LinearDelta::apply_rows_t /
    // apply_rows), row by row for the rows whose sequence has it.
    const bool kvb_delta = any_delta(m.kv_b);
    auto kvb_of = [&](int64_t row) -> const LinearDelta* {
        const LinearDelta* d = seqs_[s_.row_seq[row]].delta;
        return d != nullptr && d->covers(m.kv_b) ? d : nullptr;
    };
    const Model::MlaAbsorbed& ab = m_.mla(l);
    const float* gain = w(m.kv_norm).ptr<float>();
    const bool interleaved = m_.cfg_.rope_interleaved;
    const int64_t* row_seq = s_.row_seq.data();
    const int64_t* row_pos = s_.row_pos.data();
    auto cache_of = [&](int64_t row) -> KvCache& {
        KvCache* c = seqs_[row_seq[row]].cache->rows();
        LF_ASSERT(c != nullptr && c->k_dim(l) == Dl);
        return *c;
    };
    // Latent rows: RMSNorm of c, RoPE of k_pe (in kva, in place), then into each real row's cache.
    pool_.run_range(N, n_grain_, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            float* row = kva.data + i * Dl;
            kt_.rmsnorm(row, gain, row, r, m.eps);
            kt_.rope(row + r, 1, R, &s_.rope_cs[i * R / 2], &s_.rope_sn[i * R / 2], interleaved);
            for (int64_t h = 0; h < H; ++h)
                kt_.rope(q.data + i * q.cols + h * Dq + nope, 1, R, &s_.rope_cs[i * R / 2], &s_.rope_sn[i * R / 2],
                         interleaved);
            if (i >= n_real_) continue;  // the doubled lone row: same position, written once
            KvCache& cache = cache_of(i);
            const DType t = cache.types().k;
            uint8_t* dst = cache.k_row(l, row_pos[i]);
            if (t == DType::F32) {
                std::copy(row, row + Dl, reinterpret_cast<float*>(dst));
            } else {
                kt_.quantize_row[static_cast<int>(t)](row, dst, Dl);
            }
        }
    });
    if (s_.matmul_hook && n_real_ > 0) {  // importance matrices: kv_b multiplies the normalised latent
        std::vector<float> c(static_cast<size_t>(n_real_ * r));
        for (int64_t i = 0; i < n_real_; ++i) std::copy(kva.data + i * Dl, kva.data + i * Dl + r, c.data() + i * r);
        s_.matmul_hook(m_.weight_name(m.kv_b), c.data(), n_real_, r);
    }
    // Per head h: y_h (N rows, ldy apart) = x_h · W_h^T, all heads in one grouped dispatch (in
    // batch-invariant mode the kernels are the row-invariant ones: a row's result is its own).
    auto per_head = [&](const float* x, int64_t ldx, const std::vector<Tensor>& ws, float* y, int64_t ldy,
                        int64_t xh, int64_t yh) {
        std::vector<kernels::GroupedProduct>& ps = grouped_;
        ps.assign(static_cast<size_t>(H), {});
        for (int64_t h = 0; h < H; ++h) {
            ps[h].w = &ws[h];
            ps[h].x = x + h * xh;
            ps[h].m = N;
            ps[h].ldx = ldx;
            ps[h].y = y + h * yh;
            ps[h].ldy = ldy;
        }
        kernels::matmul_grouped(ps.data(), H, pool_, s_.mm);
    };
    // q_abs (N, H, Dl): the latent part q_nope_h · W_UK_h (uk_t_h is W_UK_h^T as (r, nope)), the
    // rotary part copied.
    Act qa = take(N, H * Dl);
    per_head(q.data, q.cols, ab.uk_t, qa.data, H * Dl, Dq, Dl);
    for (int64_t i = 0; i < N; ++i)
        for (int64_t h = 0; h < H; ++h)
            std::copy(q.data + i * q.cols + h * Dq + nope, q.data + i * q.cols + (h + 1) * Dq,
                      qa.data + i * H * Dl + h * Dl + r);
    if (kvb_delta) {
        pool_.run_range(N, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                if (const LinearDelta* d = kvb_of(i))
                    for (int64_t h = 0; h < H; ++h)
                        d->apply_rows_t(m.kv_b, h * (nope + Dv), nope, q.data + i * q.cols + h * Dq,
                                        qa.data + i * H * Dl + h * Dl);
        });
    }
    Act ol = take(N, H * Dl);  // per head: sum_t p_t [c_t, k_pe_t]
    // Work items: (block, head) for prompt blocks, (row, head chunk) for single rows.
    const int64_t chunks = std::min<int64_t>(H, std::max(1, pool_.size()));
    const int64_t per_chunk = (H + chunks - 1) / chunks;
    std::vector<std::pair<int64_t, int64_t>>& blocks = s_.att_blocks;
    int64_t n_items = 0;
    for (const auto& [i0, nq] : blocks) n_items += nq > 1 ? H : chunks;
    for (size_t j = 0; j < s_.att_rows.size(); ++j) n_items += chunks;
    grow(s_.att_kv, static_cast<size_t>(pool_.size()) * static_cast<size_t>(max_len_ * Dl));
    grow(s_.att_scores, static_cast<size_t>(pool_.size()) * static_cast<size_t>(max_len_));
    // Items in order: each block's H or `chunks` items, then each single row's chunks.
    std::vector<int64_t> item_end;
    item_end.reserve(blocks.size() + s_.att_rows.size());
    for (const auto& [i0, nq] : blocks) item_end.push_back((item_end.empty() ? 0 : item_end.back()) + (nq > 1 ? H : chunks));
    for (size_t j = 0; j < s_.att_rows.size(); ++j) item_end.push_back((item_end.empty() ? 0 : item_end.back()) + chunks);
    pool_.run(n_items, [&](int64_t item, int tid) {
        const size_t u = static_cast<size_t>(std::upper_bound(item_end.begin(), item_end.end(), item) - item_end.begin());
        const int64_t sub = item - (u == 0 ? 0 : item_end[u - 1]);
        const bool is_block = u < blocks.size();
        const int64_t i0 = is_block ? blocks[u].first : s_.att_rows[u - blocks.size()];
        const int64_t nq = is_block ? blocks[u].second : 1;
        KvCache& cache = cache_of(i0);
        const DType kt = cache.types().k;
        const int64_t p0 = row_pos[i0];
        if (nq == 1) {
            const int64_t h0 = sub * per_chunk, hn = std::min(H, h0 + per_chunk) - h0;
            if (hn <= 0) return;
            float* scores = &s_.att_scores[static_cast<size_t>(tid) * max_len_];
            const float* qi = qa.data + i0 * H * Dl + h0 * Dl;
            float* oi = ol.data + i0 * H * Dl + h0 * Dl;
            if (kt == DType::F32) {
                const float* lat = cache.k(l);
                kt_.attention(qi, lat, lat, p0 + 1, Dl, hn, 1, Dl, m.scale, oi, scores);
            } else {
                kt_.attention_kv(qi, cache.k_row(l, 0), kt, cache.k_row_bytes(l), cache.k_row(l, 0), kt,
                                 cache.k_row_bytes(l), p0 + 1, hn, 1, Dl, m.scale, oi, scores);
            }
            return;
        }
        // A prompt block: scores (nq, n_kv) = scale · Q_h K^T, causal softmax, O_h = P C.
        const int64_t h = sub, n_kv = p0 + nq;
        const float* lat;
        if (kt == DType::F32) {
            lat = cache.k(l);
        } else {
            float* deq = &s_.att_kv[static_cast<size_t>(tid) * static_cast<size_t>(max_len_ * Dl)];
            const auto to_f32 = kt_.dequantize_row[static_cast<int>(kt)];
            for (int64_t t = 0; t < n_kv; ++t) to_f32(cache.k_row(l, t), deq + t * Dl, Dl);
            lat = deq;
        }
        float* sc = &s_.att_block[static_cast<size_t>(tid) * kAttBlockRows * max_len_];
        kernels::sgemm(false, true, nq, n_kv, Dl, m.scale, qa.data + i0 * H * Dl + h * Dl, H * Dl, lat, Dl, 0.0f, sc,
                       n_kv);
        for (int64_t rr = 0; rr < nq; ++rr) {
            float* row = sc + rr * n_kv;
            const int64_t end = p0 + rr + 1;
            kt_.softmax(row, end);
            std::fill(row + end, row + n_kv, 0.0f);
        }
        kernels::sgemm(false, false, nq, r, n_kv, 1.0f, sc, n_kv, lat, Dl, 0.0f, ol.data + i0 * H * Dl + h * Dl,
                       H * Dl);
    });
    // out_h = o_lat_h · W_UV_h^T.
    Act out = take(N, H * Dv);
    per_head(ol.data, H * Dl, ab.uv, out.data, H * Dv, Dl, Dv);
    if (kvb_delta) {
        pool_.run_range(N, 1, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                if (const LinearDelta* d = kvb_of(i))
                    for (int64_t h = 0; h < H; ++h)
                        d->apply_rows(m.kv_b, h * (nope + Dv) + nope, Dv, ol.data + i * H * Dl + h * Dl,
                                      out.data + i * H * Dv + h * Dv);
        });
    }
    return out;
}

// DeepSeekMoE's routed experts: every row routed (model/moe.h), rows gathered per expert, and
// every expert's SwiGLU (plus the shared experts') run as one grouped product, then every down
// projection as another (two pool dispatches per layer whatever the experts: tokens gathered per
// expert, each expert's weights read once per step). A row's output sums its experts in slot
// order, then the shared experts: a fixed order per row (batch invariant).
Act EagerOps::moe(int64_t l, Act x, const MoeSpec& m) {
    const int64_t N = x.rows, C = x.cols, E = m.n_expert, K = m.n_used;
    Act lg = linear(x, m.router);
    const Tensor* bias_t = m.bias.slot >= 0 ? m_.weight(m.bias) : nullptr;
    const float* bias = bias_t != nullptr ? bias_t->ptr<float>() : nullptr;
    grow(s_.moe_sel, static_cast<size_t>(N * K));
    grow(s_.moe_w, static_cast<size_t>(N * K));
    grow(s_.moe_scores, static_cast<size_t>(N * 3 * E));
    pool_.run_range(N, n_grain_, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i)
            route_experts(lg.data + i * E, bias, m, &s_.moe_sel[i * K], &s_.moe_w[i * K], &s_.moe_scores[i * 3 * E],
                          &s_.moe_scores[i * 3 * E + E]);
    });
    if (s_.moe_hook) s_.moe_hook(l, s_.moe_sel.data(), s_.moe_w.data(), n_real_, K);
    groups_.build(s_.moe_sel.data(), N, K, E);
    const int64_t F = m_.expert(m.gate, 0).dim(0);
    // A lone row through a kernel that sums one row differently from several is doubled in
    // batch-invariant mode, as forward_batch does for a lone batch row.
    const bool pad_lone = s_.batch_invariant && double_lone_row_;
    // Gathered rows: expert by expert (each (row, slot) once; a padded lone row twice).
    int64_t total = 0;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t n = groups_.begin[e + 1] - groups_.begin[e];
        total += pad_lone && n == 1 ? 2 : n;
    }
    const bool shared = m.shared_gate.slot >= 0;
    const bool shared_delta = shared && (any_delta(m.shared_gate) || any_delta(m.shared_up) || any_delta(m.shared_down));
    const bool shared_grouped = shared && !shared_delta;
    const int64_t Fs = shared ? w(m.shared_gate).dim(0) : 0;
    // LoRA on routed experts: gate and up run as separate products so each gathered row's delta
    // for its expert is added before the SwiGLU (the table's swiglu, as the fused product has).
    const bool expert_delta = any_expert_delta(m.gate) || any_expert_delta(m.up) || any_expert_delta(m.down);
    grow(s_.moe_x, static_cast<size_t>(total * C));
    grow(s_.moe_h, static_cast<size_t>(2 * total * F + (shared_grouped ? 2 * N * Fs : 0)));
    grow(s_.moe_y, static_cast<size_t>(total * C + (shared_grouped ? N * C : 0)));
    grow(moe_at_, static_cast<size_t>(N * K));  // (row, slot) -> gathered row
    moe_first_.assign(static_cast<size_t>(E + 1), 0);
    std::vector<kernels::GroupedProduct>& ps = grouped_;
    ps.clear();
    float* hbuf = s_.moe_h.data();
    float* ubuf = hbuf + total * F;
    float* sh_h = ubuf + total * F;
    float* sh_u = sh_h + N * Fs;
    int64_t at = 0;
    for (int64_t e = 0; e < E; ++e) {
        moe_first_[e] = at;
        const int64_t b = groups_.begin[e], n = groups_.begin[e + 1] - b;
        if (n == 0) continue;
        const int64_t rows = pad_lone && n == 1 ? 2 : n;
        for (int64_t j = 0; j < rows; ++j) {
            const int64_t t = groups_.token[b + std::min(j, n - 1)];
            std::copy(x.data + t * C, x.data + (t + 1) * C, s_.moe_x.data() + (at + j) * C);
            if (j < n) moe_at_[t * K + groups_.slot[b + j]] = at + j;
        }
        kernels::GroupedProduct g;
        g.w = &m_.expert(m.gate, e);
        g.w_up = &m_.expert(m.up, e);
        g.x = s_.moe_x.data() + at * C;
        g.m = rows;
        g.y = hbuf + at * F;
        g.y_up = ubuf + at * F;
        if (expert_delta) {
            kernels::GroupedProduct u = g;
            u.w = g.w_up;
            u.w_up = nullptr;
            u.y_up = nullptr;
            u.y = ubuf + at * F;
            g.w_up = nullptr;
            g.y_up = nullptr;
            ps.push_back(u);
        }
        ps.push_back(g);
        at += rows;
        // Importance matrices: each expert's real rows, under the expert's name ("...exps.weight[e]").
        if (s_.matmul_hook) {
            report_expert(g.w->name(), b, n, g.x, C);
            report_expert(m_.expert(m.up, e).name(), b, n, g.x, C);
        }
    }
    moe_first_[E] = at;
    if (shared_grouped) {
        report_input(m.shared_gate, x);
        report_input(m.shared_up, x);
        kernels::GroupedProduct g;
        g.w = &w(m.shared_gate);
        g.w_up = &w(m.shared_up);
        g.x = x.data;
        g.m = N;
        g.y = sh_h;
        g.y_up = sh_u;
        ps.push_back(g);
    }
    kernels::matmul_grouped(ps.data(), static_cast<int64_t>(ps.size()), pool_, s_.mm);
    if (expert_delta) {
        apply_expert_deltas(m.gate, s_.moe_x.data(), C, hbuf, F);
        apply_expert_deltas(m.up, s_.moe_x.data(), C, ubuf, F);
        pool_.run_range(total, n_grain_, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) kt_.swiglu(hbuf + i * F, ubuf + i * F, hbuf + i * F, F);
        });
    }
    // Down projections: the same grouping, the SwiGLU outputs as inputs.
    float* ybuf = s_.moe_y.data();
    float* sh_y = ybuf + total * C;
    ps.clear();
    for (int64_t e = 0; e < E; ++e) {
        const int64_t rows = moe_first_[e + 1] - moe_first_[e];
        if (rows == 0) continue;
        kernels::GroupedProduct g;
        g.w = &m_.expert(m.down, e);
        g.x = hbuf + moe_first_[e] * F;
        g.m = rows;
        if (s_.matmul_hook)
            report_expert(g.w->name(), groups_.begin[e], groups_.begin[e + 1] - groups_.begin[e], g.x, F);
        g.y = ybuf + moe_first_[e] * C;
        ps.push_back(g);
    }
    if (shared_grouped) {
        report_input(m.shared_down, {sh_h, N, Fs});
        kernels::GroupedProduct g;
        g.w = &w(m.shared_down);
        g.x = sh_h;
        g.m = N;
        g.y = sh_y;
        ps.push_back(g);
    }
    kernels::matmul_grouped(ps.data(), static_cast<int64_t>(ps.size()), pool_, s_.mm);
    if (expert_delta) apply_expert_deltas(m.down, hbuf, F, ybuf, C);
    Act sh{};
    if (shared_delta) sh = linear(swiglu(x, m.shared_gate, m.shared_up), m.shared_down);
    Act out = take(N, C);
    pool_.run_range(N, n_grain_, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) {
            float* o = out.data + i * C;
            std::fill(o, o + C, 0.0f);
            for (int64_t k = 0; k < K; ++k) kt_.axpy(C, s_.moe_w[i * K + k], ybuf + moe_at_[i * K + k] * C, o);
            if (shared_grouped) kt_.add(C, sh_y + i * C, o);
            if (shared_delta) kt_.add(C, sh.data + i * C, o);
        }
    });
    return out;
}

void Model::forward_batch(const SeqBatch* seqs, int64_t n_seqs, ThreadPool& pool, ForwardScratch& s) const {
    run_rows(seqs, n_seqs, pool, s, [this](Ops& ops) { run_decoder(ops, *arch_, cfg_); });
}

// The encoders' one run: n_seqs sequences of `rows` rows (each row's sequence and position; token
// ids when given), `inputs` hands the backend its input rows, then run_encoder under config c.
// out gets the pooled output and, with keep_last, the last hidden state.
void Model::run_encoder_rows(const ModelConfig& c, int64_t n_seqs, int64_t rows, const int32_t* tokens,
                             const std::function<void(EagerOps&)>& inputs, bool keep_last, EncodeOutput& out,
                             ThreadPool& pool, ForwardScratch& s) const {
    const int64_t n = n_seqs * rows;
    std::vector<SeqBatch> seqs(static_cast<size_t>(n_seqs));
    for (int64_t j = 0; j < n_seqs; ++j) seqs[j] = SeqBatch{nullptr, tokens != nullptr ? tokens + j * rows : nullptr, rows, 0};
    for (auto* v : {&s.row_seq, &s.row_pos}) v->resize(std::max(v->size(), static_cast<size_t>(n)));
    for (int64_t i = 0; i < n; ++i) s.row_seq[i] = i / rows, s.row_pos[i] = i % rows;
    if (tokens != nullptr) {
        s.row_tok.resize(std::max(s.row_tok.size(), static_cast<size_t>(n)));
        std::copy(tokens, tokens + n, s.row_tok.begin());
    }
    s.mm.allow_blas = true;
    s.mm.row_invariant = false;
    EagerOps ops(*this, seqs.data(), n_seqs, n, n, 0, rows, false, pool, s);
    inputs(ops);
    Act pooled;
    const Act last = run_encoder(ops, *arch_, c, &pooled);
    out.rows = last.rows / n_seqs;
    out.cols = last.cols;
    if (keep_last) {
        out.last.assign(last.data, last.data + last.rows * last.cols);
    } else {
        out.last.clear();
    }
    out.pooled_cols = pooled.data != nullptr ? pooled.cols : 0;
    out.pooled.assign(pooled.data, pooled.data + (pooled.data != nullptr ? pooled.rows * pooled.cols : 0));
}

void Model::encode(const float* input, int64_t n_seqs, int64_t rows, EncodeOutput& out, ThreadPool& pool,
                   ForwardScratch& s, int64_t grid_h, int64_t grid_w) const {
    if (!arch_->encoder || arch_->text_input) {
        fail("%s: %s is %s (hint: images need a vision tower such as a ViT, CLIP vision or Swin model)",
             files_.path.c_str(), cfg_.arch.c_str(), arch_->encoder ? "a text encoder" : "a decoder, not an encoder");
    }
    LF_ASSERT(n_seqs >= 0 && rows > 0);
    if (n_seqs == 0) return;
    if (rows > cfg_.n_ctx_train) {
        fail("%s: %lld input rows per sequence, the model's position table has %lld", files_.path.c_str(),
             (long long)rows, (long long)cfg_.n_ctx_train);
    }
    if (cfg_.enc.projector != Projector::kNone && rows != (cfg_.enc.class_token ? 1 : 0) + cfg_.enc.n_patches()) {
        fail("%s: %lld input rows per image, the vision tower with a projector takes %lld (%s%lld patches of a %lldx%lld "
             "image; hint: vision_input_rows makes them)",
             files_.path.c_str(), (long long)rows, (long long)((cfg_.enc.class_token ? 1 : 0) + cfg_.enc.n_patches()),
             cfg_.enc.class_token ? "a class row + " : "", (long long)cfg_.enc.n_patches(), (long long)cfg_.enc.image_size,
             (long long)cfg_.enc.image_size);
    }
    ModelConfig c = cfg_;  // this call's input grid
    c.enc.grid_h = grid_h;
    c.enc.grid_w = grid_w;
    // With a projector (LLaVA), out.last holds the projected rows: (n_seqs · n_image_tokens(), proj_out).
    run_encoder_rows(c, n_seqs, rows, nullptr, [&](EagerOps& ops) { ops.set_input(input, cfg_.enc.patch_cols()); },
                     true, out, pool, s);
}

void Model::encode_tokens(const int32_t* ids, const int32_t* lengths, int64_t n_seqs, int64_t T, EncodeOutput& out,
                          ThreadPool& pool, ForwardScratch& s) const {
    if (!arch_->encoder || !arch_->text_input) {
        fail("%s: %s is not a text encoder (hint: token ids need an encoder such as RoBERTa)", files_.path.c_str(),
             cfg_.arch.c_str());
    }
    LF_ASSERT(n_seqs >= 0 && T > 0);
    if (n_seqs == 0) return;
    if (T > cfg_.n_ctx_train) {
        fail("%s: %lld tokens per sequence, the model has %lld positions (hint: shorten the text)", files_.path.c_str(),
             (long long)T, (long long)cfg_.n_ctx_train);
    }
    const int64_t n = n_seqs * T;
    for (int64_t j = 0; j < n_seqs; ++j) {
        if (lengths[j] < 1 || lengths[j] > T) {
            fail("sequence %lld has length %d, expected 1..%lld", (long long)j, lengths[j], (long long)T);
        }
    }
    for (int64_t i = 0; i < n; ++i) {
        if (ids[i] < 0 || ids[i] >= cfg_.n_vocab) {
            fail("token id %d at row %lld is out of range (expected 0 <= id < vocab size %lld)", ids[i], (long long)i,
                 (long long)cfg_.n_vocab);
        }
    }
    run_encoder_rows(cfg_, n_seqs, T, ids, [&](EagerOps& ops) { ops.set_text(lengths); }, true, out, pool, s);
}

void Model::fuse(const float* text, int64_t text_rows, const float* image, int64_t image_rows, int64_t n_seqs,
                 EncodeOutput& out, ThreadPool& pool, ForwardScratch& s) const {
    if (arch_->name != "fusion") {
        fail("%s: %s is not a fusion model (hint: a VQA model folder holds vision/, text/ and fusion/)",
             files_.path.c_str(), cfg_.arch.c_str());
    }
    LF_ASSERT(n_seqs > 0 && text_rows > 0 && image_rows > 0);
    run_encoder_rows(
        cfg_, n_seqs, text_rows, nullptr,
        [&](EagerOps& ops) {
            ops.set_input(text, cfg_.fusion.text_width, 0);
            ops.set_input(image, cfg_.fusion.vision_width, 1);
            ops.set_input_rows1(n_seqs * image_rows);
        },
        false, out, pool, s);
}

void image_patch_rows(const float* pixels, int64_t channels, int64_t height, int64_t width, int64_t patch,
                      float* out, bool class_placeholder) {
    LF_ASSERT(patch > 0 && height % patch == 0 && width % patch == 0);
    const int64_t cols = channels * patch * patch, gw = width / patch, n = (height / patch) * gw;
    if (class_placeholder) std::fill(out, out + cols, 0.0f);
    const int64_t first = class_placeholder ? 1 : 0;
    for (int64_t p = 0; p < n; ++p) {
        float* row = out + (first + p) * cols;
        const int64_t y0 = (p / gw) * patch, x0 = (p % gw) * patch;
        for (int64_t c = 0; c < channels; ++c)
            for (int64_t dy = 0; dy < patch; ++dy) {
                const float* src = pixels + (c * height + y0 + dy) * width + x0;
                std::copy(src, src + patch, row + (c * patch + dy) * patch);
            }
    }
}

void Model::forward_mtp(const float* hidden, const int32_t* next_tokens, int64_t n, int64_t pos0, KvMemory& cache,
                        float* logits, int64_t n_out, ThreadPool& pool, ForwardScratch& s) const {
    if (n <= 0) return;
    if (!has_mtp()) {
        fail("%s: the model has no multi-token-prediction weights (expected a DeepSeek-V3-style model with "
             "nextn_predict_layers >= 1; hint: use --draft-model instead)",
             files_.path.c_str());
    }
    LF_ASSERT(n_out >= 0 && n_out <= n);
    const int64_t C = cfg_.n_embd;
    s.mtp_in.assign(hidden, hidden + n * C);  // the caller may pass s.hidden itself
    const bool invariant = s.batch_invariant;
    const bool keep = s.keep_hidden;
    s.batch_invariant = false;  // one sequence: no lone row to double
    s.keep_hidden = false;
    const SeqBatch seq{&cache, next_tokens, n, pos0, logits, n_out};
    try {
        run_rows(&seq, 1, pool, s, [&](Ops& ops) {
            arch_->mtp(ops, cfg_, 1, Act{s.mtp_in.data(), n, C});
        });
    } catch (...) {
        s.batch_invariant = invariant;
        s.keep_hidden = keep;
        throw;
    }
    s.batch_invariant = invariant;
    s.keep_hidden = keep;
}

void Model::run_rows(const SeqBatch* seqs, int64_t n_seqs, ThreadPool& pool, ForwardScratch& s,
                     const std::function<void(Ops&)>& body) const {
    const ModelConfig& c = cfg_;
    const int64_t D = c.rot_dim(), V = c.n_vocab;  // D: rotary width of the RoPE tables
    int64_t n = 0, n_out_total = 0, max_len = 0;
    for (int64_t j = 0; j < n_seqs; ++j) {
        const SeqBatch& sq = seqs[j];
        LF_ASSERT(sq.cache != nullptr && sq.n >= 0 && sq.n_out >= 0 && sq.n_out <= sq.n);
        LF_ASSERT(sq.n_out == 0 || sq.logits != nullptr);
        if (sq.n == 0) continue;
        if (sq.pos0 < 0 || sq.pos0 + sq.n > sq.cache->n_ctx()) {
            fail_kind(ErrorKind::kResource,
                      "context full: positions %lld..%lld do not fit the %lld-token context (hint: raise "
                 "--ctx-size or shorten the prompt)",
                 (long long)sq.pos0, (long long)(sq.pos0 + sq.n - 1), (long long)sq.cache->n_ctx());
        }
        LF_ASSERT(sq.embd != nullptr || sq.tokens != nullptr);
        for (int64_t i = 0; sq.embd == nullptr && i < sq.n; ++i) {
            if (sq.tokens[i] < 0 || sq.tokens[i] >= V) {
                fail("token id %d at position %lld is out of range (expected 0 <= id < vocab size %lld)",
                     sq.tokens[i], (long long)(sq.pos0 + i), (long long)V);
            }
        }
        n += sq.n;
        n_out_total += sq.n_out;
        max_len = std::max(max_len, sq.pos0 + sq.n);
    }
    if (n == 0) return;
    s.mm.allow_blas = !s.batch_invariant;
    s.mm.row_invariant = s.batch_invariant;
    const bool double_lone_row = s.batch_invariant && !rows_invariant_;
    const int64_t n_real = n;
    if (double_lone_row && n == 1) n = 2;

    auto grow = [](auto& v, size_t sz) {
        if (v.size() < sz) v.resize(sz);
    };
    grow(s.rope_cs, n * D / 2);
    grow(s.rope_sn, n * D / 2);
    grow(s.att_scores, static_cast<size_t>(pool.size()) * max_len);
    grow(s.row_seq, n);
    grow(s.row_pos, n);
    grow(s.row_tok, n);
    // Each row's sequence, position and token; a lone row is doubled in batch-invariant mode (the
    // copy writes the same K/V to the same cache row and its outputs are never read).
    int64_t* row_seq = s.row_seq.data();
    int64_t* row_pos = s.row_pos.data();
    int32_t* row_tok = s.row_tok.data();
    for (int64_t j = 0, i = 0; j < n_seqs; ++j) {
        for (int64_t t = 0; t < seqs[j].n; ++t, ++i) {
            row_seq[i] = j;
            row_pos[i] = seqs[j].pos0 + t;
            row_tok[i] = seqs[j].embd != nullptr ? -1 : seqs[j].tokens[t];
        }
    }
    for (int64_t i = n_real; i < n; ++i) {
        row_seq[i] = row_seq[0];
        row_pos[i] = row_pos[0];
        row_tok[i] = row_tok[0];
    }
    s.att_blocks.clear();
    s.att_rows.clear();
    // Keys and values of different head sizes (the kernel table's attention has one): every row
    // is a one-row block (a row's result still depends on that row alone: batch invariant).
    const bool split_v = c.v_dim() != c.head_dim;
    for (int64_t j = 0, i = 0; j < n_seqs; i += seqs[j].n, ++j) {
        const int64_t nj = seqs[j].n;
        if (!s.batch_invariant && nj >= kAttMinRows) {
            for (int64_t b = 0; b < nj; b += kAttBlockRows) s.att_blocks.push_back({i + b, std::min(kAttBlockRows, nj - b)});
        } else {
            for (int64_t t = 0; t < nj; ++t) {
                if (split_v) {
                    s.att_blocks.push_back({i + t, 1});
                } else {
                    s.att_rows.push_back(i + t);
                }
            }
        }
    }
    for (int64_t i = n_real; i < n; ++i) {
        if (split_v) {
            s.att_blocks.push_back({i, 1});
        } else {
            s.att_rows.push_back(i);
        }
    }
    if (!s.att_blocks.empty()) grow(s.att_block, static_cast<size_t>(pool.size() * kAttBlockRows * max_len));
    for (int64_t i = 0; i < n; ++i) rope_tables(row_pos[i], &s.rope_cs[i * D / 2], &s.rope_sn[i * D / 2]);

    // With no logits wanted (a prefill chunk that is not the prompt's last) output_rows() selects
    // no rows and the head does nothing.
    EagerOps ops(*this, seqs, n_seqs, n, n_real, n_out_total, max_len, double_lone_row, pool, s);
    body(ops);
}

}  // namespace llmforge
