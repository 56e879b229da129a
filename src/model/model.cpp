#include "model/model.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numbers>

#include "core/error.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/repack.h"

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

std::unique_ptr<Model> Model::from_files(ModelFiles files) {
    std::unique_ptr<Model> m(new Model(std::move(files)));
    m->bind_weights(false);  // the caller may share these bytes: repack into copies
    return m;
}

ModelConfig Model::validate(const ModelFiles& files) {
    Model m(files);
    m.bind_weights(false, false);
    return m.config();
}

void Model::bind_weights(bool weights_private, bool repack_matrices) {
    const ModelConfig& c = cfg_;
    const std::string& file = files_.path;
    if (c.arch != "llama" && c.arch != "qwen2") {
        fail("%s: architecture '%s' is not supported (expected llama or qwen2)", file.c_str(),
             c.arch.c_str());
    }
    if (c.n_embd <= 0 || c.n_layer <= 0 || c.n_head <= 0 || c.n_head_kv <= 0 || c.n_ff <= 0 ||
        c.n_vocab <= 0 || c.head_dim <= 0 || c.head_dim % 2 != 0) {
        fail("%s: bad hyper-parameters: dim %lld, layers %lld, heads %lld, kv heads %lld, ffn %lld, "
             "vocab %lld, head_dim %lld (expected all > 0 and an even head_dim)",
             file.c_str(), (long long)c.n_embd, (long long)c.n_layer, (long long)c.n_head,
             (long long)c.n_head_kv, (long long)c.n_ff, (long long)c.n_vocab, (long long)c.head_dim);
    }
    if (c.n_head % c.n_head_kv != 0) {
        fail("%s: %lld attention heads are not a multiple of %lld kv heads (grouped-query attention "
             "needs n_head %% n_head_kv == 0)",
             file.c_str(), (long long)c.n_head, (long long)c.n_head_kv);
    }
    const auto& kt = kernels::kernels();
    rows_invariant_ = true;
    // LLMFORGE_REPACK=0 keeps every matrix in the file's layout (for A/B measurements).
    const char* repack_env = std::getenv("LLMFORGE_REPACK");
    const bool repack = repack_matrices && (repack_env == nullptr || std::strcmp(repack_env, "0") != 0);
    auto repackable = [&](const std::string& name, const Tensor& t) {
        return repack && kt.gemm_x8[static_cast<int>(t.dtype())] != nullptr && name != "token_embd.weight" &&
               kernels::x8_can_repack(t);
    };
    // Copies (weights shared with the file map or the caller) go into one huge-page arena: a
    // buffer per matrix would round each up to a 2 MiB page.
    std::unique_ptr<HugeArena> arena;
    if (!weights_private) {
        size_t total = 0;
        for (const auto& [name, t] : files_.tensors) {
            if (repackable(name, t)) total += HugeArena::slice_bytes(t.nbytes());
        }
        if (total > 0) arena = std::make_unique<HugeArena>(total);
    }
    // kMatrix: used by matmul (needs a dot kernel); kRows: rows are looked up (embedding);
    // kVector: small 1-D parameter, converted to f32.
    enum Use { kMatrix, kRows, kVector };
    auto get = [&](const std::string& name, std::vector<int64_t> shape, Use use) -> Tensor {
        auto it = files_.tensors.find(name);
        if (it == files_.tensors.end()) {
            fail("%s: tensor '%s' is missing (expected for %s with %lld layers; file incomplete or "
                 "not a %s model?)",
                 file.c_str(), name.c_str(), c.arch.c_str(), (long long)c.n_layer, c.arch.c_str());
        }
        const Tensor& t = it->second;
        if (t.shape() != shape) {
            Tensor want = Tensor::view(t.dtype(), shape, nullptr, nullptr);
            fail("%s: tensor '%s' has shape %s, expected %s (config and weights disagree)",
                 file.c_str(), name.c_str(), t.shape_str().c_str(), want.shape_str().c_str());
        }
        const int di = static_cast<int>(t.dtype());
        if (use == kMatrix && kt.vec_dot[di] == nullptr) {
            fail("%s: tensor '%s' has dtype %s, which has no matrix kernel (expected f32, f16, bf16, "
                 "q8_0, q4_0, q4_k or q6_k; hint: llmforge convert --type q8_0)",
                 file.c_str(), name.c_str(), dtype_name(t.dtype()));
        }
        if (kt.dequantize_row[di] == nullptr) {
            fail("%s: tensor '%s' has dtype %s, which llmforge cannot read", file.c_str(),
                 name.c_str(), dtype_name(t.dtype()));
        }
        if (use == kVector) return as_f32_vector(t);
        // Q4_0 / Q8_0 matrices go into the interleaved 8-row layout (kernels/cpu/repack.h) when
        // the table has a kernel for it; the embedding stays plain (its rows are looked up).
        if (use == kMatrix && repackable(name, t)) {
            Tensor packed;
            if (weights_private) {
                packed = kernels::repack_x8(t, true);
            } else {
                packed = kernels::repack_x8(t, arena->take(t.nbytes()), arena->owner());
                release_pages(t.data(), t.nbytes());
            }
            it->second = packed;
            return packed;
        }
        if (use == kMatrix) rows_invariant_ = rows_invariant_ && kt.gemm_invariant[di] != nullptr;
        return t;
    };
    const int64_t C = c.n_embd, D = c.head_dim, Hq = c.n_head * D, Hk = c.n_head_kv * D;
    const bool tied = files_.tensors.count("output.weight") == 0;
    tok_embd_ = get("token_embd.weight", {c.n_vocab, C}, tied ? kMatrix : kRows);
    output_norm_ = get("output_norm.weight", {C}, kVector);
    if (!tied) {
        output_ = get("output.weight", {c.n_vocab, C}, kMatrix);
        cfg_.tied_embeddings = false;
    } else {
        output_ = tok_embd_;
        cfg_.tied_embeddings = true;
    }
    layers_.resize(c.n_layer);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const std::string p = "blk." + std::to_string(l) + ".";
        LayerWeights& w = layers_[l];
        w.attn_norm = get(p + "attn_norm.weight", {C}, kVector);
        w.wq = get(p + "attn_q.weight", {Hq, C}, kMatrix);
        w.wk = get(p + "attn_k.weight", {Hk, C}, kMatrix);
        w.wv = get(p + "attn_v.weight", {Hk, C}, kMatrix);
        w.wo = get(p + "attn_output.weight", {C, Hq}, kMatrix);
        if (c.qkv_bias || files_.tensors.count(p + "attn_q.bias")) {
            w.bq = get(p + "attn_q.bias", {Hq}, kVector);
            w.bk = get(p + "attn_k.bias", {Hk}, kVector);
            w.bv = get(p + "attn_v.bias", {Hk}, kVector);
        }
        w.ffn_norm = get(p + "ffn_norm.weight", {C}, kVector);
        w.w_gate = get(p + "ffn_gate.weight", {c.n_ff, C}, kMatrix);
        w.w_up = get(p + "ffn_up.weight", {c.n_ff, C}, kMatrix);
        w.w_down = get(p + "ffn_down.weight", {C, c.n_ff}, kMatrix);
    }

    // RoPE frequencies (double precision; rounded to f32 only when cos/sin are formed).
    inv_freq_.resize(D / 2);
    for (int64_t i = 0; i < D / 2; ++i) {
        inv_freq_[i] = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / static_cast<double>(D));
    }
    const double f = c.rope_factor > 0 ? c.rope_factor : 1.0;
    switch (c.rope_scaling) {
        case RopeScaling::kNone: break;
        case RopeScaling::kLinear:
            for (double& x : inv_freq_) x /= f;
            break;
        case RopeScaling::kLlama3: {
            const double old_ctx = c.rope_orig_ctx > 0 ? c.rope_orig_ctx : 8192;
            const double lo = c.rope_low_freq_factor, hi = c.rope_high_freq_factor;
            const double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
            for (double& x : inv_freq_) {
                const double wavelen = 2 * std::numbers::pi / x;
                if (wavelen < high_wavelen) continue;
                if (wavelen > low_wavelen) {
                    x /= f;
                } else {
                    const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                    x = (1 - smooth) * x / f + smooth * x;
                }
            }
            break;
        }
        case RopeScaling::kYarn: {
            // Hugging Face's YaRN: blend interpolated and extrapolated frequencies over a linear
            // ramp between the correction dims, and scale cos/sin by the attention factor.
            const double old_ctx = c.rope_orig_ctx > 0 ? c.rope_orig_ctx : c.n_ctx_train;
            const double base = c.rope_theta;
            auto corr_dim = [&](double n_rot) {
                return (D * std::log(old_ctx / (n_rot * 2 * std::numbers::pi))) / (2 * std::log(base));
            };
            double low = std::floor(corr_dim(c.yarn_beta_fast));
            double high = std::ceil(corr_dim(c.yarn_beta_slow));
            low = std::max(low, 0.0);
            high = std::min(high, static_cast<double>(D - 1));
            if (low == high) high += 0.001;
            for (int64_t i = 0; i < D / 2; ++i) {
                double ramp = (static_cast<double>(i) - low) / (high - low);
                ramp = std::clamp(ramp, 0.0, 1.0);
                const double extrap_w = 1.0 - ramp;
                const double extrap = inv_freq_[i], interp = inv_freq_[i] / f;
                inv_freq_[i] = interp * (1 - extrap_w) + extrap * extrap_w;
            }
            rope_mscale_ = (f <= 1 ? 1.0 : 0.1 * std::log(f) + 1.0) * c.yarn_attn_factor;
            break;
        }
    }
    // GGUF files of Llama 3.1+ carry their RoPE scaling as per-pair frequency divisors
    // (rope_freqs.weight, D/2 values) instead of metadata, as llama.cpp's converter writes them.
    if (files_.tensors.count("rope_freqs.weight")) {
        const Tensor ff = get("rope_freqs.weight", {D / 2}, kVector);
        for (int64_t i = 0; i < D / 2; ++i) {
            const float d = ff.ptr<float>()[i];
            if (!(d > 0)) {
                fail("%s: rope_freqs.weight[%lld] is %g, expected a positive frequency divisor",
                     file.c_str(), (long long)i, d);
            }
            inv_freq_[i] /= d;
        }
    }
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
    for (size_t i = 0; i < inv_freq_.size(); ++i) {
        const double a = static_cast<double>(pos) * inv_freq_[i];
        cs[i] = static_cast<float>(std::cos(a) * rope_mscale_);
        sn[i] = static_cast<float>(std::sin(a) * rope_mscale_);
    }
}

void Model::forward(const int32_t* tokens, int64_t n, int64_t pos0, KvCache& cache, float* logits,
                    int64_t n_out, ThreadPool& pool, ForwardScratch& s) const {
    if (n <= 0) return;
    LF_ASSERT(n_out >= 1 && n_out <= n);
    const SeqBatch seq{&cache, tokens, n, pos0, logits, n_out};
    forward_batch(&seq, 1, pool, s);
}

void Model::forward_batch(const SeqBatch* seqs, int64_t n_seqs, ThreadPool& pool, ForwardScratch& s) const {
    const ModelConfig& c = cfg_;
    const int64_t C = c.n_embd, D = c.head_dim, H = c.n_head, Hkv = c.n_head_kv, F = c.n_ff;
    const int64_t V = c.n_vocab, kv_dim = Hkv * D, q_dim = H * D;
    int64_t n = 0, n_out_total = 0, max_len = 0;
    for (int64_t j = 0; j < n_seqs; ++j) {
        const SeqBatch& sq = seqs[j];
        LF_ASSERT(sq.cache != nullptr && sq.n >= 0 && sq.n_out >= 0 && sq.n_out <= sq.n);
        LF_ASSERT(sq.n_out == 0 || sq.logits != nullptr);
        if (sq.n == 0) continue;
        if (sq.pos0 < 0 || sq.pos0 + sq.n > sq.cache->n_ctx()) {
            fail("context full: positions %lld..%lld do not fit the %lld-token context (hint: raise "
                 "--ctx-size or shorten the prompt)",
                 (long long)sq.pos0, (long long)(sq.pos0 + sq.n - 1), (long long)sq.cache->n_ctx());
        }
        for (int64_t i = 0; i < sq.n; ++i) {
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
    const auto& kt = kernels::kernels();
    s.mm.allow_blas = !s.batch_invariant;
    s.mm.row_invariant = s.batch_invariant;
    const bool double_lone_row = s.batch_invariant && !rows_invariant_;
    const int64_t n_real = n;
    if (double_lone_row && n == 1) n = 2;

    auto grow = [](auto& v, size_t sz) {
        if (v.size() < sz) v.resize(sz);
    };
    grow(s.x, n * C);
    grow(s.xn, n * C);
    grow(s.q, n * q_dim);
    grow(s.k, n * kv_dim);
    grow(s.v, n * kv_dim);
    grow(s.att, n * q_dim);
    grow(s.gate, n * F);
    grow(s.up, n * F);
    grow(s.rope_cs, n * D / 2);
    grow(s.rope_sn, n * D / 2);
    grow(s.att_scores, static_cast<size_t>(pool.size()) * max_len);
    grow(s.row_seq, n);
    grow(s.row_pos, n);

    float* x = s.x.data();    // (T, C) residual stream
    float* xn = s.xn.data();  // (T, C) normalised
    float* q = s.q.data();    // (T, H*D)
    float* k = s.k.data();    // (T, H_kv*D)
    float* v = s.v.data();    // (T, H_kv*D)
    float* att = s.att.data();  // (T, H*D)
    float* gate = s.gate.data();  // (T, F)
    float* up = s.up.data();      // (T, F)

    // Each row's sequence, position and token; a lone row is doubled in batch-invariant mode (the
    // copy writes the same K/V to the same cache row and its outputs are never read).
    grow(s.row_tok, n);
    int64_t* row_seq = s.row_seq.data();
    int64_t* row_pos = s.row_pos.data();
    int32_t* row_tok = s.row_tok.data();
    for (int64_t j = 0, i = 0; j < n_seqs; ++j) {
        for (int64_t t = 0; t < seqs[j].n; ++t, ++i) {
            row_seq[i] = j;
            row_pos[i] = seqs[j].pos0 + t;
            row_tok[i] = seqs[j].tokens[t];
        }
    }
    for (int64_t i = n_real; i < n; ++i) {
        row_seq[i] = row_seq[0];
        row_pos[i] = row_pos[0];
        row_tok[i] = row_tok[0];
    }
    // Attention work: a sequence's run of at least kAttMinRows prompt rows is cut into blocks of
    // kAttBlockRows query rows that go through BLAS, one item per (block, query head); every
    // other row (decode steps, short chunks, all rows in batch-invariant mode, whose result must
    // not depend on the rows beside it) uses the kernel table's one-position attention, one item
    // per (row, kv head). The per-position kernel reloads every K/V row for each query; as two
    // small GEMMs a block reads them once (measured in docs/PERFORMANCE.md, prompt processing).
    constexpr int64_t kAttMinRows = 16, kAttBlockRows = 64;
    s.att_blocks.clear();
    s.att_rows.clear();
    for (int64_t j = 0, i = 0; j < n_seqs; i += seqs[j].n, ++j) {
        const int64_t nj = seqs[j].n;
        if (!s.batch_invariant && nj >= kAttMinRows) {
            for (int64_t b = 0; b < nj; b += kAttBlockRows) s.att_blocks.push_back({i + b, std::min(kAttBlockRows, nj - b)});
        } else {
            for (int64_t t = 0; t < nj; ++t) s.att_rows.push_back(i + t);
        }
    }
    for (int64_t i = n_real; i < n; ++i) s.att_rows.push_back(i);
    if (!s.att_blocks.empty()) grow(s.att_block, static_cast<size_t>(pool.size() * kAttBlockRows * max_len));
    // Embedding lookup (any dtype: dequantise the row) and RoPE tables.
    const auto deq_embd = kt.dequantize_row[static_cast<int>(tok_embd_.dtype())];
    for (int64_t i = 0; i < n; ++i) {
        deq_embd(tok_embd_.row(row_tok[i]), x + i * C, C);
        rope_tables(row_pos[i], &s.rope_cs[i * D / 2], &s.rope_sn[i * D / 2]);
    }

    if (s.hook) s.hook("embed", x, n_real * C);
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    const int64_t group = H / Hkv;
    const int64_t n_grain = n >= 16 ? 4 : 1;
    for (int64_t l = 0; l < c.n_layer; ++l) {
        const LayerWeights& w = layers_[l];
        pool.run_range(n, n_grain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i)
                kt.rmsnorm(x + i * C, w.attn_norm.ptr<float>(), xn + i * C, C, c.rms_eps);
        });
        {
            // One dispatch for Q, K and V in decode (see matmul_multi).
            const Tensor* qkv_w[3] = {&w.wq, &w.wk, &w.wv};
            float* const qkv_y[3] = {q, k, v};
            kernels::matmul_multi(qkv_w, qkv_y, 3, xn, n, pool, s.mm);
        }
        pool.run_range(n, n_grain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                float* qi = q + i * q_dim;
                float* ki = k + i * kv_dim;
                if (w.bq.defined()) {
                    kt.add(q_dim, w.bq.ptr<float>(), qi);
                    kt.add(kv_dim, w.bk.ptr<float>(), ki);
                    kt.add(kv_dim, w.bv.ptr<float>(), v + i * kv_dim);
                }
                const float* cs = &s.rope_cs[i * D / 2];
                const float* sn = &s.rope_sn[i * D / 2];
                kt.rope(qi, H, D, cs, sn, c.rope_interleaved);
                kt.rope(ki, Hkv, D, cs, sn, c.rope_interleaved);
                KvCache& cache = *seqs[row_seq[i]].cache;
                std::copy(ki, ki + kv_dim, cache.k(l) + row_pos[i] * kv_dim);
                std::copy(v + i * kv_dim, v + (i + 1) * kv_dim, cache.v(l) + row_pos[i] * kv_dim);
            }
        });
        // Attention (see the work split above).
        const int64_t n_block_items = static_cast<int64_t>(s.att_blocks.size()) * H;
        const int64_t n_row_items = static_cast<int64_t>(s.att_rows.size()) * Hkv;
        pool.run(n_block_items + n_row_items, [&](int64_t item, int tid) {
            if (item < n_block_items) {
                const auto [i0, nq] = s.att_blocks[item / H];
                const int64_t h = item % H, g = h / group;
                KvCache& cache = *seqs[row_seq[i0]].cache;
                const int64_t p0 = row_pos[i0], n_kv = p0 + nq;
                float* sc = &s.att_block[static_cast<size_t>(tid) * kAttBlockRows * max_len];
                // scores (nq, n_kv) = scale * Q_h K_g^T; causal softmax per row; out_h = P V_g.
                kernels::sgemm(false, true, nq, n_kv, D, scale, q + i0 * q_dim + h * D, q_dim, cache.k(l) + g * D,
                               kv_dim, 0.0f, sc, n_kv);
                for (int64_t r = 0; r < nq; ++r) {
                    float* row = sc + r * n_kv;
                    const int64_t valid = p0 + r + 1;
                    kt.softmax(row, valid);
                    std::fill(row + valid, row + n_kv, 0.0f);
                }
                kernels::sgemm(false, false, nq, D, n_kv, 1.0f, sc, n_kv, cache.v(l) + g * D, kv_dim, 0.0f,
                               att + i0 * q_dim + h * D, q_dim);
                return;
            }
            const int64_t i = s.att_rows[(item - n_block_items) / Hkv], g = (item - n_block_items) % Hkv;
            KvCache& cache = *seqs[row_seq[i]].cache;
            float* scores = &s.att_scores[static_cast<size_t>(tid) * max_len];
            kt.attention(q + i * q_dim + g * group * D, cache.k(l) + g * D, cache.v(l) + g * D,
                         row_pos[i] + 1, kv_dim, group, 1, D, scale, att + i * q_dim + g * group * D,
                         scores);
        });
        kernels::matmul(w.wo, att, n, xn, pool, s.mm);
        pool.run_range(n, n_grain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) {
                kt.add(C, xn + i * C, x + i * C);
                kt.rmsnorm(x + i * C, w.ffn_norm.ptr<float>(), xn + i * C, C, c.rms_eps);
            }
        });
        kernels::matmul_swiglu(w.w_gate, w.w_up, xn, n, gate, up, pool, s.mm);  // gate = silu(gate) * up
        kernels::matmul(w.w_down, gate, n, xn, pool, s.mm);
        pool.run_range(n, n_grain, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) kt.add(C, xn + i * C, x + i * C);
        });
        if (s.hook) s.hook("layers." + std::to_string(l) + ".out", x, n_real * C);
    }
    if (n_out_total == 0) return;
    // The output rows (each seq's last n_out) go through the final norm and the vocabulary
    // projection together.
    for (int64_t j = 0, i = 0, o = 0; j < n_seqs; i += seqs[j].n, ++j) {
        for (int64_t t = seqs[j].n - seqs[j].n_out; t < seqs[j].n; ++t, ++o)
            kt.rmsnorm(x + (i + t) * C, output_norm_.ptr<float>(), xn + o * C, C, c.rms_eps);
    }
    if (s.hook) s.hook("final_norm", xn, n_out_total * C);
    const SeqBatch* only = nullptr;  // the single seq with logits, written to in place
    for (int64_t j = 0; j < n_seqs; ++j) {
        if (seqs[j].n_out == n_out_total) only = &seqs[j];
    }
    if (only != nullptr && !(double_lone_row && n_out_total == 1)) {
        kernels::matmul(output_, xn, n_out_total, only->logits, pool, s.mm);
        return;
    }
    int64_t m_out = n_out_total;
    if (double_lone_row && n_out_total == 1) {  // a lone row, doubled as above
        std::copy(xn, xn + C, xn + C);
        m_out = 2;
    }
    grow(s.out_logits, m_out * V);
    kernels::matmul(output_, xn, m_out, s.out_logits.data(), pool, s.mm);
    for (int64_t j = 0, o = 0; j < n_seqs; o += seqs[j].n_out, ++j) {
        std::copy(s.out_logits.data() + o * V, s.out_logits.data() + (o + seqs[j].n_out) * V,
                  seqs[j].logits);
    }
}

}  // namespace llmforge
