#include "model/prune.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <thread>

#include "core/error.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"
#include "model/arch/arch.h"

namespace llmforge {

namespace {

int threads_of(int n) { return n > 0 ? n : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())); }

// A tensor as f32 values (dequantised row by row).
std::vector<float> to_f32(const Tensor& t) {
    const int64_t cols = t.shape().back();
    const int64_t rows = t.nrows();
    std::vector<float> v(static_cast<size_t>(rows * cols));
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    LF_ASSERT(deq != nullptr);
    for (int64_t r = 0; r < rows; ++r) deq(t.row(r), v.data() + r * cols, cols);
    return v;
}

Tensor from_f32(const std::vector<float>& v, std::vector<int64_t> shape, const std::string& name) {
    Tensor t = Tensor::empty(DType::F32, std::move(shape), name);
    LF_ASSERT(static_cast<int64_t>(v.size()) == t.numel());
    std::memcpy(t.data(), v.data(), v.size() * sizeof(float));
    return t;
}

}  // namespace

int64_t count_zeros(const Tensor& t) {
    const int64_t cols = t.shape().empty() ? 1 : t.shape().back();
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    std::vector<float> row(static_cast<size_t>(cols));
    int64_t z = 0;
    for (int64_t r = 0; r < t.nrows(); ++r) {
        const float* p;
        if (t.dtype() == DType::F32) {
            p = reinterpret_cast<const float*>(t.row(r));
        } else {
            deq(t.row(r), row.data(), cols);
            p = row.data();
        }
        for (int64_t c = 0; c < cols; ++c) z += p[c] == 0.0f;
    }
    return z;
}

namespace {

// Rows [r * width, (r + 1) * width) for each kept block r of a (blocks * width, cols) matrix.
std::vector<float> keep_row_blocks(const std::vector<float>& w, int64_t cols, int64_t width,
                                   const std::vector<int64_t>& kept) {
    std::vector<float> out;
    out.reserve(kept.size() * static_cast<size_t>(width * cols));
    for (int64_t b : kept) {
        const float* p = w.data() + b * width * cols;
        out.insert(out.end(), p, p + width * cols);
    }
    return out;
}

// Columns [c * width, (c + 1) * width) for each kept block c of a (rows, blocks * width) matrix.
std::vector<float> keep_col_blocks(const std::vector<float>& w, int64_t rows, int64_t cols, int64_t width,
                                   const std::vector<int64_t>& kept) {
    const int64_t nc = static_cast<int64_t>(kept.size()) * width;
    std::vector<float> out(static_cast<size_t>(rows * nc));
    for (int64_t r = 0; r < rows; ++r)
        for (size_t k = 0; k < kept.size(); ++k)
            std::memcpy(out.data() + r * nc + static_cast<int64_t>(k) * width, w.data() + r * cols + kept[k] * width,
                        static_cast<size_t>(width) * sizeof(float));
    return out;
}

std::vector<float> keep_entries(const std::vector<float>& v, int64_t width, const std::vector<int64_t>& kept) {
    std::vector<float> out;
    for (int64_t b : kept) out.insert(out.end(), v.begin() + b * width, v.begin() + (b + 1) * width);
    return out;
}

// The `keep` highest-scoring of n items (ties: the lower index is kept), in ascending index order.
std::vector<int64_t> top_indices(const std::vector<double>& score, int64_t keep) {
    std::vector<int64_t> idx(score.size());
    std::iota(idx.begin(), idx.end(), 0);
    std::stable_sort(idx.begin(), idx.end(), [&](int64_t a, int64_t b) { return score[a] > score[b]; });
    idx.resize(static_cast<size_t>(keep));
    std::sort(idx.begin(), idx.end());
    return idx;
}

// The working set: a tensor replaced by f32 values of a new shape.
struct Work {
    const ModelFiles& files;
    std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>> changed;

    bool has(const std::string& name) const { return changed.count(name) || files.tensors.count(name); }
    std::vector<float>& values(const std::string& name) {
        auto it = changed.find(name);
        if (it != changed.end()) return it->second.second;
        const Tensor& t = files.tensors.at(name);
        auto& e = changed[name];
        e.first = t.shape();
        e.second = to_f32(t);
        return e.second;
    }
    const std::vector<int64_t>& shape(const std::string& name) const {
        auto it = changed.find(name);
        return it != changed.end() ? it->second.first : files.tensors.at(name).shape();
    }
    void set(const std::string& name, std::vector<int64_t> shape, std::vector<float> v) {
        changed[name] = {std::move(shape), std::move(v)};
    }
};

std::string blk(int64_t l, const char* t) { return "blk." + std::to_string(l) + "." + t; }

const std::vector<float>* energy_of(const ActivationEnergy& act, const std::string& name, int64_t cols,
                                    bool required) {
    auto it = act.find(name);
    if (it == act.end()) {
        if (required)
            fail("prune: the calibration data has no entry for %s (hint: an importance matrix of this model, made by "
                 "`llmforge imatrix` over its own text)",
                 name.c_str());
        return nullptr;
    }
    if (static_cast<int64_t>(it->second.size()) != cols)
        fail("prune: the calibration entry of %s has %zu columns, expected %lld (an importance matrix of another "
             "model?)",
             name.c_str(), it->second.size(), (long long)cols);
    return &it->second;
}

void prune_heads(Work& w, ModelConfig& cfg, const PruneOptions& opt, ActivationEnergy& act,
                 std::vector<std::vector<int64_t>>& kept_heads) {
    const int64_t H = cfg.n_head, Hk = cfg.n_head_kv, g = H / Hk, D = cfg.head_dim, Dv = cfg.v_dim();
    const int64_t C = cfg.n_embd;
    const int64_t groups_removed = opt.heads / g;
    const int64_t groups_kept = Hk - groups_removed;
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
        const std::string wo = blk(l, "attn_output.weight");
        if (!w.has(wo) || !w.has(blk(l, "attn_q.weight")))
            fail("prune: --heads: layer %lld has no attn_q / attn_output matrix (architecture %s)", (long long)l,
                 cfg.arch.c_str());
        const std::vector<float>& o = w.values(wo);
        const std::vector<float>* e = energy_of(act, wo, H * Dv, false);
        // Group importance: sum over its columns of ||W_o[:, j]||² · E[x_j²].
        std::vector<double> score(static_cast<size_t>(Hk), 0.0);
        for (int64_t r = 0; r < C; ++r)
            for (int64_t j = 0; j < H * Dv; ++j) {
                const double v = o[r * H * Dv + j];
                score[(j / Dv) / g] += v * v * (e ? (*e)[j] : 1.0);
            }
        const std::vector<int64_t> kg = top_indices(score, groups_kept);
        std::vector<int64_t> kh;  // query heads of the kept groups
        for (int64_t k : kg)
            for (int64_t i = 0; i < g; ++i) kh.push_back(k * g + i);
        kept_heads[l] = kh;
        auto rows = [&](const char* t, int64_t width, const std::vector<int64_t>& kept) {
            const std::string n = blk(l, t);
            if (!w.has(n)) return;
            const std::vector<int64_t> sh = w.shape(n);
            const int64_t cols = sh.size() == 2 ? sh[1] : 1;
            std::vector<float> v = keep_row_blocks(w.values(n), cols, width, kept);
            std::vector<int64_t> ns = sh;
            ns[0] = static_cast<int64_t>(kept.size()) * width;
            w.set(n, ns, std::move(v));
        };
        rows("attn_q.weight", D, kh);
        rows("attn_q.bias", D, kh);
        rows("attn_k.weight", D, kg);
        rows("attn_k.bias", D, kg);
        rows("attn_v.weight", Dv, kg);
        rows("attn_v.bias", Dv, kg);
        std::vector<float> no = keep_col_blocks(w.values(wo), C, H * Dv, Dv, kh);
        w.set(wo, {C, static_cast<int64_t>(kh.size()) * Dv}, std::move(no));
        if (e) act[wo] = keep_entries(*e, Dv, kh);
    }
    cfg.n_head = H - groups_removed * g;
    cfg.n_head_kv = groups_kept;
}

void prune_ffn(Work& w, ModelConfig& cfg, const PruneOptions& opt, ActivationEnergy& act,
               std::vector<std::vector<int64_t>>& kept_channels) {
    const int64_t C = cfg.n_embd;
    std::vector<int64_t> widths;
    for (int64_t l = 0; l < cfg.n_layer; ++l) {
        const int64_t F = cfg.ff_at(l);
        const int64_t keep = F - static_cast<int64_t>(std::llround(opt.ffn_fraction * static_cast<double>(F)));
        if (keep < 1)
            fail("prune: --ffn-fraction %g removes all %lld FFN channels of layer %lld (hint: a smaller fraction)",
                 opt.ffn_fraction, (long long)F, (long long)l);
        const std::string gate = blk(l, "ffn_gate.weight"), up = blk(l, "ffn_up.weight"), down = blk(l, "ffn_down.weight");
        if (!w.has(up) || !w.has(down))
            fail("prune: --ffn-fraction: layer %lld has no ffn_up / ffn_down matrix (architecture %s)", (long long)l,
                 cfg.arch.c_str());
        const std::vector<float>& d = w.values(down);
        const std::vector<float>* e = energy_of(act, down, F, false);
        std::vector<double> dn(static_cast<size_t>(F), 0.0);
        for (int64_t r = 0; r < C; ++r)
            for (int64_t c = 0; c < F; ++c) dn[c] += double(d[r * F + c]) * d[r * F + c];
        std::vector<double> score(static_cast<size_t>(F));
        if (e) {
            for (int64_t c = 0; c < F; ++c) score[c] = dn[c] * (*e)[c];
        } else {
            auto row_norm = [&](const std::string& n, int64_t c) {
                if (!w.has(n)) return 1.0;
                const std::vector<float>& v = w.values(n);
                double s = 0;
                for (int64_t k = 0; k < C; ++k) s += double(v[c * C + k]) * v[c * C + k];
                return std::sqrt(s);
            };
            for (int64_t c = 0; c < F; ++c) score[c] = std::sqrt(dn[c]) * row_norm(gate, c) * row_norm(up, c);
        }
        const std::vector<int64_t> kept = top_indices(score, keep);
        kept_channels[l] = kept;
        for (const std::string& n : {gate, up}) {
            if (!w.has(n)) continue;
            w.set(n, {keep, C}, keep_row_blocks(w.values(n), C, 1, kept));
        }
        w.set(down, {C, keep}, keep_col_blocks(w.values(down), C, F, 1, kept));
        if (e) act[down] = keep_entries(*e, 1, kept);
        widths.push_back(keep);
    }
    if (cfg.layer_n_ff.empty()) {
        cfg.n_ff = widths[0];  // uniform: the same count removed from every layer
    } else {
        cfg.layer_n_ff = widths;
        cfg.n_ff = *std::max_element(widths.begin(), widths.end());
    }
}

}  // namespace

void parse_nm_pattern(const std::string& s, int* n, int* m, const char* flag) {
    const size_t colon = s.find(':');
    auto num = [&](const std::string& t, int* out) {
        if (t.empty() || t.size() > 3 || t.find_first_not_of("0123456789") != std::string::npos) return false;
        *out = std::stoi(t);
        return true;
    };
    int a = 0, b = 0;
    if (colon == std::string::npos || !num(s.substr(0, colon), &a) || !num(s.substr(colon + 1), &b) || a < 1 ||
        b > 256 || a >= b)
        fail("prune: %s '%s' is not an N:M pattern with 1 <= N < M <= 256 (keep N of every M consecutive weights; "
             "hint: 2:4)",
             flag, s.c_str());
    *n = a;
    *m = b;
}

int64_t prune_matrix(float* w, int64_t rows, int64_t cols, const float* col_energy, double sparsity, int keep_n,
                     int group_m, int n_threads) {
    ThreadPool pool(threads_of(n_threads));
    std::vector<int64_t> zeros(static_cast<size_t>(rows), 0);
    std::vector<float> norm;
    if (col_energy) {
        norm.resize(static_cast<size_t>(cols));
        for (int64_t j = 0; j < cols; ++j) norm[j] = std::sqrt(std::max(col_energy[j], 0.0f));
    }
    // round(S · cols) per row: the closest to the request a row can be (short rows, as in small
    // models, would otherwise always fall short); a row keeps at least one weight.
    const int64_t k = std::min<int64_t>(std::llround(sparsity * static_cast<double>(cols)), cols - 1);
    pool.run(rows, [&](int64_t r, int) {
        float* p = w + r * cols;
        std::vector<float> score(static_cast<size_t>(cols));
        for (int64_t j = 0; j < cols; ++j) score[j] = std::fabs(p[j]) * (col_energy ? norm[j] : 1.0f);
        // Lowest score first; equal scores: lower column first (a strict order, so exact counts).
        auto less = [&](int64_t a, int64_t b) { return score[a] < score[b] || (score[a] == score[b] && a < b); };
        if (group_m > 0) {
            int64_t idx[256];
            for (int64_t g0 = 0; g0 < cols; g0 += group_m) {
                for (int i = 0; i < group_m; ++i) idx[i] = g0 + i;
                std::sort(idx, idx + group_m, less);
                for (int i = 0; i < group_m - keep_n; ++i) p[idx[i]] = 0.0f;
            }
        } else if (k > 0) {
            std::vector<int64_t> idx(static_cast<size_t>(cols));
            std::iota(idx.begin(), idx.end(), 0);
            std::nth_element(idx.begin(), idx.begin() + (k - 1), idx.end(), less);
            for (int64_t i = 0; i < k; ++i) p[idx[i]] = 0.0f;
        }
        int64_t z = 0;
        for (int64_t j = 0; j < cols; ++j) z += p[j] == 0.0f;
        zeros[r] = z;
    });
    return std::accumulate(zeros.begin(), zeros.end(), int64_t{0});
}

PrunedModel prune_model(const ModelFiles& files, const PruneOptions& opt) {
    const ModelConfig& src = files.config;
    const Arch& arch = arch_of(src.arch, files.path);
    const bool unstructured = opt.sparsity > 0 || opt.group_m > 0;
    if (!(opt.sparsity >= 0 && opt.sparsity < 1))
        fail("prune: --sparsity %g is outside [0, 1) (the share of each row's weights set to zero; hint: 0.5)",
             opt.sparsity);
    if (!(opt.ffn_fraction >= 0 && opt.ffn_fraction < 1))
        fail("prune: --ffn-fraction %g is outside [0, 1) (the share of each layer's FFN channels removed; hint: 0.25)",
             opt.ffn_fraction);
    if (opt.sparsity > 0 && opt.group_m > 0)
        fail("prune: --sparsity and --pattern both given (hint: one of them: --pattern %d:%d is sparsity %g)",
             opt.keep_n, opt.group_m, 1.0 - double(opt.keep_n) / opt.group_m);
    if (opt.group_m > 0 && !(opt.keep_n >= 1 && opt.keep_n < opt.group_m && opt.group_m <= 256))
        fail("prune: pattern %d:%d, expected N:M with 1 <= N < M <= 256", opt.keep_n, opt.group_m);
    if (opt.heads < 0) fail("prune: --heads %lld, expected >= 0", (long long)opt.heads);
    if (!unstructured && opt.heads == 0 && opt.ffn_fraction == 0)
        fail("prune: nothing to do (hint: --sparsity S, --pattern N:M, --heads K or --ffn-fraction F)");
    if (opt.method == PruneMethod::kWanda && unstructured && opt.act == nullptr)
        fail("prune: --method wanda needs calibration data (hint: --imatrix FILE from `llmforge imatrix`, or -f TEXT "
             "to collect it here)");
    if (opt.heads > 0) {
        const int64_t H = src.n_head, g = src.n_head / src.n_head_kv;
        if (opt.heads >= H)
            fail("prune: --heads %lld: the model has %lld attention heads per layer, so at most %lld can be removed "
                 "(%s must remain)",
                 (long long)opt.heads, (long long)H, (long long)(H - g), g > 1 ? "one KV group" : "one");
        if (opt.heads % g != 0)
            fail("prune: --heads %lld is not a multiple of %lld: the model's %lld query heads share %lld KV heads, and "
                 "a KV head is removed with its whole group of %lld (hint: --heads %lld)",
                 (long long)opt.heads, (long long)g, (long long)H, (long long)src.n_head_kv, (long long)g,
                 (long long)std::max<int64_t>(g, opt.heads / g * g));
    }

    PrunedModel out;
    out.config = src;
    out.kept_heads.resize(static_cast<size_t>(src.n_layer));
    out.kept_channels.resize(static_cast<size_t>(src.n_layer));
    for (const auto& [name, t] : files.tensors) out.stats.params_before += t.numel();
    ActivationEnergy act = opt.act ? *opt.act : ActivationEnergy{};
    Work w{files, {}};
    if (opt.heads > 0) prune_heads(w, out.config, opt, act, out.kept_heads);
    if (opt.ffn_fraction > 0) prune_ffn(w, out.config, opt, act, out.kept_channels);

    if (unstructured) {
        // Every per-layer weight matrix of the arch's table that the file has.
        std::vector<std::string> targets;
        for (const NamedSpec& ns : tensor_list(arch, out.config, true))
            if (ns.layer >= 0 && ns.spec->use == TensorUse::kMatrix && w.has(ns.name)) targets.push_back(ns.name);
        for (const std::string& n : targets) {
            const std::vector<int64_t> sh = w.shape(n);
            // A routed-expert stack (E, rows, cols) is E matrices, each with its own statistics.
            const int64_t n_mat = sh.size() == 3 ? sh[0] : 1;
            const int64_t rows = sh[sh.size() - 2], cols = sh.back();
            if (opt.group_m > 0 && cols % opt.group_m != 0)
                fail("prune: --pattern %d:%d: %s has rows of %lld weights, not a multiple of %d", opt.keep_n,
                     opt.group_m, n.c_str(), (long long)cols, opt.group_m);
            const std::vector<float>* e =
                opt.method == PruneMethod::kWanda ? energy_of(act, n, n_mat * cols, true) : nullptr;
            std::vector<float>& v = w.values(n);
            for (int64_t m = 0; m < n_mat; ++m)
                out.stats.pruned_zeros += prune_matrix(v.data() + m * rows * cols, rows, cols,
                                                       e ? e->data() + m * cols : nullptr, opt.sparsity, opt.keep_n,
                                                       opt.group_m, opt.n_threads);
            out.stats.pruned_params += n_mat * rows * cols;
            ++out.stats.matrices;
            out.pruned_matrices.push_back(n);
        }
    }

    // The result: changed tensors as owned f32 (each working copy freed once moved), the rest the
    // source's own.
    for (const auto& [name, t] : files.tensors) {
        auto it = w.changed.find(name);
        if (it == w.changed.end()) {
            out.tensors[name] = t;
        } else {
            out.tensors[name] = from_f32(it->second.second, it->second.first, name);
            std::vector<float>().swap(it->second.second);
        }
    }
    for (const auto& [name, t] : out.tensors) {
        out.stats.params += t.numel();
        out.stats.zeros += count_zeros(t);
    }
    // The shapes must be the arch's for the new config (what every loader checks).
    for (const NamedSpec& ns : tensor_list(arch, out.config, true)) {
        auto it = out.tensors.find(ns.name);
        if (it != out.tensors.end() && it->second.shape() != ns.shape)
            fail("prune: internal: %s is %s after pruning, the config says %s", ns.name.c_str(),
                 it->second.shape_str().c_str(), shape_to_string(ns.shape).c_str());
    }
    return out;
}

}  // namespace llmforge
