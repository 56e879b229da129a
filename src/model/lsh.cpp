#include "model/lsh.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/error.h"
#include "core/random.h"
#include "kernels/cpu/kernels.h"
#include "model/arch/arch.h"
#include "model/config.h"

namespace llmforge {

void LshSpec::validate(const std::string& where) const {
    if (n_hashes < 1)
        fail("%s: lsh n_hashes is %lld, expected at least 1 hash round (hint: 2 to 8 are usual)", where.c_str(),
             (long long)n_hashes);
    if (n_buckets < 1 || (n_buckets > 1 && n_buckets % 2 != 0))
        fail("%s: lsh n_buckets is %lld, expected 1 or an even number (angular LSH takes the argmax over [xR, -xR]; "
             "hint: a power of two such as 64)", where.c_str(), (long long)n_buckets);
    if (window < 1)
        fail("%s: lsh window is %lld, expected at least 1 key per round (hint: twice the bucket size, e.g. 128)",
             where.c_str(), (long long)window);
    if (local < 0)
        fail("%s: lsh local is %lld, expected 0 (the query's own position only) or a number of latest positions",
             where.c_str(), (long long)local);
    if (dense_below < 0)
        fail("%s: lsh dense_below is %lld, expected 0 (never) or a positive length", where.c_str(), (long long)dense_below);
}

int64_t LshSpec::max_candidates(int64_t p) const {
    return p < dense_below ? p + 1 : std::min(p + 1, n_hashes * window + std::max<int64_t>(local, 1));
}

std::string LshSpec::describe() const {
    return "lsh " + std::to_string(n_buckets) + " buckets x " + std::to_string(n_hashes) + " rounds, window " +
           std::to_string(window) + ", local " + std::to_string(local) + ", dense below " + std::to_string(dense_below) + ", seed " + std::to_string(seed);
}

LshSpec AttentionChoice::spec(const LshSpec& base) const {
    LshSpec s = base;
    if (n_buckets >= 0) s.n_buckets = n_buckets;
    if (n_hashes >= 0) s.n_hashes = n_hashes;
    if (window >= 0) s.window = window;
    if (local >= 0) s.local = local;
    if (dense_below >= 0) s.dense_below = dense_below;
    if (seed >= 0) s.seed = static_cast<uint64_t>(seed);
    return s;
}

void LshStats::reset(int64_t layers, int64_t heads) {
    const int64_t pe = probe_every;
    *this = LshStats();
    probe_every = pe;
    n_layer = layers;
    n_head = heads;
    scores.assign(static_cast<size_t>(layers * heads), 0);
    dense.assign(static_cast<size_t>(layers * heads), 0);
}

void LshStats::merge(const LshStats& o) {
    if (scores.empty()) {
        *this = o;
        return;
    }
    LF_ASSERT(o.scores.size() == scores.size());
    for (size_t i = 0; i < scores.size(); ++i) scores[i] += o.scores[i], dense[i] += o.dense[i];
    probes += o.probes;
    mass_sum += o.mass_sum;
    err_sum += o.err_sum;
    mass_min = std::min(mass_min, o.mass_min);
    err_max = std::max(err_max, o.err_max);
}

std::string LshStats::report() const {
    int64_t s = 0, d = 0;
    for (size_t i = 0; i < scores.size(); ++i) s += scores[i], d += dense[i];
    char line[256];
    std::string r;
    std::snprintf(line, sizeof line, "lsh attention: %lld query-key scores (%.1f%% of dense's %lld), %lld per (layer, head) on average\n",
                  (long long)s, d > 0 ? 100.0 * static_cast<double>(s) / static_cast<double>(d) : 0.0, (long long)d,
                  (long long)(scores.empty() ? 0 : s / static_cast<int64_t>(scores.size())));
    r += line;
    for (int64_t l = 0; l < n_layer; ++l) {
        int64_t ls = 0, ld = 0, lo = INT64_MAX, hi = 0;
        for (int64_t h = 0; h < n_head; ++h) {
            const int64_t v = scores[static_cast<size_t>(l * n_head + h)];
            ls += v, ld += dense[static_cast<size_t>(l * n_head + h)];
            lo = std::min(lo, v), hi = std::max(hi, v);
        }
        std::snprintf(line, sizeof line, "  layer %lld: %lld scores per head on average (heads %lld..%lld), dense %lld\n",
                      (long long)l, (long long)(ls / std::max<int64_t>(n_head, 1)), (long long)lo, (long long)hi,
                      (long long)(ld / std::max<int64_t>(n_head, 1)));
        r += line;
    }
    if (probes > 0) {
        std::snprintf(line, sizeof line, "lsh probe: %lld (row, head) samples: dense softmax mass kept mean %.4f min %.4f; "
                      "output error vs dense (relative to the largest value entry) mean %.3g max %.3g\n",
                      (long long)probes, mass_sum / static_cast<double>(probes), mass_min,
                      err_sum / static_cast<double>(probes), err_max);
        r += line;
    }
    return r;
}

void lsh_configure(ModelConfig& c, const ConfigSource& src) {
    const std::string where = src.where();
    const std::string type = src.string("llmforge_attention", "attention.kind").value_or("dense");
    if (type != "dense" && type != "lsh")
        fail("%s: attention type \"%s\", expected \"dense\" or \"lsh\"", where.c_str(), type.c_str());
    c.attention_lsh = type == "lsh";
    if (!c.attention_lsh) return;
    LshSpec& s = c.lsh;
    s = LshSpec();
    s.n_buckets = src.integer("lsh_n_buckets", "attention.lsh.n_buckets").value_or(s.n_buckets);
    s.n_hashes = src.integer("lsh_n_hashes", "attention.lsh.n_hashes").value_or(s.n_hashes);
    s.window = src.integer("lsh_window", "attention.lsh.window").value_or(s.window);
    // 0 is a valid dense_below (never) and seed: read as numbers (a config.json integer reader
    // takes positive values only), checked to be whole here.
    auto whole = [&](const char* hf, const char* gguf, const char* what, int64_t dflt, int64_t hi) {
        const double v = src.number(hf, gguf).value_or(static_cast<double>(dflt));
        if (!(v >= 0 && v <= static_cast<double>(hi) && v == std::floor(v)))
            fail("%s: lsh %s is %g, expected a whole number in 0..%lld", where.c_str(), what, v, (long long)hi);
        return static_cast<int64_t>(v);
    };
    s.local = whole("lsh_local", "attention.lsh.local", "local", s.local, 0x7fffffffLL);
    s.dense_below = whole("lsh_dense_below", "attention.lsh.dense_below", "dense_below", s.dense_below, 0x7fffffffLL);
    s.seed = static_cast<uint64_t>(whole("lsh_seed", "attention.lsh.seed", "seed", static_cast<int64_t>(s.seed), 0xffffffffLL));
    s.validate(where);
    if (c.ds.kv_lora_rank > 0)
        fail("%s: LSH attention on a %s model: its multi-head latent attention has no per-head keys to hash "
             "(hint: llmforge_attention \"dense\" for DeepSeek models)", where.c_str(), c.arch.c_str());
}

void lsh_write_keys(const ModelConfig& c, ConfigSink& sink) {
    if (!c.attention_lsh) return;
    sink.string("llmforge_attention", "attention.kind", "lsh");
    sink.integer("lsh_n_buckets", "attention.lsh.n_buckets", c.lsh.n_buckets);
    sink.integer("lsh_n_hashes", "attention.lsh.n_hashes", c.lsh.n_hashes);
    sink.integer("lsh_window", "attention.lsh.window", c.lsh.window);
    sink.integer("lsh_local", "attention.lsh.local", c.lsh.local);
    sink.integer("lsh_dense_below", "attention.lsh.dense_below", c.lsh.dense_below);
    sink.integer("lsh_seed", "attention.lsh.seed", static_cast<int64_t>(c.lsh.seed));
}

namespace {

// n_buckets as one even factor up to 64, else two even factors as equal as can be (f1 <= f2);
// {1}: one bucket. A count with no even factor pair (2 · an odd number above 64) stays one factor.
std::vector<int64_t> bucket_factors(int64_t n) {
    if (n <= 64) return {n};
    int64_t best = 0;
    for (int64_t f = 2; f * f <= n; f += 2)
        if (n % f == 0 && (n / f) % 2 == 0) best = f;
    if (best == 0) return {n};
    return {best, n / best};
}

}  // namespace

LshHash::LshHash(const LshSpec& spec, int64_t layer, int64_t kv_head, int64_t head_dim)
    : n_hashes_(spec.n_hashes), n_buckets_(spec.n_buckets), dim_(head_dim), factors_(bucket_factors(spec.n_buckets)) {
    cols_ = 0;
    if (n_buckets_ > 1)
        for (int64_t f : factors_) cols_ += f / 2;
    rot_.resize(static_cast<size_t>(n_hashes_ * cols_ * dim_));
    for (int64_t r = 0; r < n_hashes_; ++r) {
        // One stream per (seed, layer, kv head, round): any of them can be made alone.
        const uint64_t key = (static_cast<uint64_t>(layer) << 40) ^ (static_cast<uint64_t>(kv_head) << 20) ^
                             static_cast<uint64_t>(r);
        Gaussian g(mix64(spec.seed ^ (kGoldenGamma * (key + 1))));
        float* m = rot_.data() + r * cols_ * dim_;
        for (int64_t i = 0; i < cols_ * dim_; ++i) m[i] = static_cast<float>(g.next());
    }
}

void LshHash::buckets(const float* x, int32_t* out) const {
    if (cols_ == 0) {  // one bucket
        std::fill(out, out + n_hashes_, 0);
        return;
    }
    const auto dot = kernels::kernels().vec_dot[static_cast<int>(DType::F32)];
    float proj[64];
    for (int64_t r = 0; r < n_hashes_; ++r) {
        const float* m = rot_.data() + r * cols_ * dim_;
        int64_t bucket = 0;
        for (int64_t f : factors_) {
            const int64_t half = f / 2;
            float* pj = half <= 64 ? proj : nullptr;
            std::vector<float> big;
            if (pj == nullptr) {
                big.resize(static_cast<size_t>(half));
                pj = big.data();
            }
            for (int64_t j = 0; j < half; ++j) pj[j] = dot(dim_, m + j * dim_, x);
            m += half * dim_;
            // argmax over [proj, -proj]: the first maximum wins (ties to the lower bucket).
            int64_t best = 0;
            float bv = pj[0];
            for (int64_t j = 1; j < half; ++j)
                if (pj[j] > bv) bv = pj[j], best = j;
            for (int64_t j = 0; j < half; ++j)
                if (-pj[j] > bv) bv = -pj[j], best = half + j;
            bucket = bucket * f + best;
        }
        out[r] = static_cast<int32_t>(bucket);
    }
}

std::vector<LshHash> lsh_hashes(const LshSpec& spec, int64_t n_layer, int64_t n_head_kv, int64_t head_dim) {
    std::vector<LshHash> h;
    h.reserve(static_cast<size_t>(n_layer * n_head_kv));
    for (int64_t l = 0; l < n_layer; ++l)
        for (int64_t g = 0; g < n_head_kv; ++g) h.emplace_back(spec, l, g, head_dim);
    return h;
}

LshIndex::LshIndex(int64_t n_hashes, int64_t n_buckets)
    : n_hashes_(n_hashes), n_buckets_(n_buckets), lists_(static_cast<size_t>(n_hashes * n_buckets)) {}

void LshIndex::add(int64_t pos, const int32_t* buckets) {
    LF_ASSERT(pos == n_);
    for (int64_t r = 0; r < n_hashes_; ++r) {
        LF_ASSERT(buckets[r] >= 0 && buckets[r] < n_buckets_);
        lists_[static_cast<size_t>(r * n_buckets_ + buckets[r])].push_back(static_cast<int32_t>(pos));
    }
    ++n_;
}

void LshIndex::truncate(int64_t pos) {
    if (pos >= n_) return;
    for (auto& l : lists_) l.erase(std::lower_bound(l.begin(), l.end(), static_cast<int32_t>(pos)), l.end());
    n_ = std::max<int64_t>(pos, 0);
}

void LshIndex::candidates(int64_t p, const int32_t* qb, const LshSpec& spec, std::vector<int32_t>& out) const {
    LF_ASSERT(p >= 0 && p < n_);
    out.clear();
    if (p < spec.dense_below) {
        out.resize(static_cast<size_t>(p + 1));
        for (int64_t j = 0; j <= p; ++j) out[static_cast<size_t>(j)] = static_cast<int32_t>(j);
        return;
    }
    const int64_t window = spec.window;
    for (int64_t j = std::max<int64_t>(0, p - std::max<int64_t>(spec.local, 1) + 1); j <= p; ++j)
        out.push_back(static_cast<int32_t>(j));
    for (int64_t r = 0; r < n_hashes_; ++r) {
        const std::vector<int32_t>& l = lists_[static_cast<size_t>(r * n_buckets_ + qb[r])];
        const auto end = std::upper_bound(l.begin(), l.end(), static_cast<int32_t>(p));
        const auto begin = end - std::min<int64_t>(window, end - l.begin());
        // Each piece is ascending: merge it in (cheaper than sorting the whole list again).
        const auto mid = static_cast<std::ptrdiff_t>(out.size());
        out.insert(out.end(), begin, end);
        std::inplace_merge(out.begin(), out.begin() + mid, out.end());
    }
    out.erase(std::unique(out.begin(), out.end()), out.end());
}

void lsh_attend_row(const float* q, const float* k, int64_t ldk, const float* v, int64_t ldv, int64_t head_dim,
                    int64_t head_dim_v, const int32_t* cand, int64_t n_cand, float scale, float* out, float* scratch) {
    const kernels::KernelTable& kt = kernels::kernels();
    LF_ASSERT(n_cand > 0);
    const bool contiguous = cand[n_cand - 1] - cand[0] == n_cand - 1;
    if (contiguous && ldk == ldv && head_dim == head_dim_v) {
        kt.attention(q, k + cand[0] * ldk, v + cand[0] * ldv, n_cand, ldk, 1, 1, head_dim, scale, out, scratch);
        return;
    }
    // Gathered rows: keys (n_cand, D) then values (n_cand, D) as one (n_cand, 2D) block the
    // kernel reads with a 2D stride; different key / value sizes: keys padded to Dv.
    const int64_t D = std::max(head_dim, head_dim_v), stride = 2 * D;
    float* kv = scratch + n_cand;
    for (int64_t i = 0; i < n_cand; ++i) {
        float* row = kv + i * stride;
        std::memcpy(row, k + cand[i] * ldk, static_cast<size_t>(head_dim) * sizeof(float));
        std::fill(row + head_dim, row + D, 0.0f);
        std::memcpy(row + D, v + cand[i] * ldv, static_cast<size_t>(head_dim_v) * sizeof(float));
        std::fill(row + D + head_dim_v, row + stride, 0.0f);
    }
    if (head_dim == head_dim_v) {
        kt.attention(q, kv, kv + D, n_cand, stride, 1, 1, D, scale, out, scratch);
        return;
    }
    thread_local std::vector<float> qp, op;
    qp.assign(static_cast<size_t>(D), 0.0f);
    std::memcpy(qp.data(), q, static_cast<size_t>(head_dim) * sizeof(float));
    op.resize(static_cast<size_t>(D));
    kt.attention(qp.data(), kv, kv + D, n_cand, stride, 1, 1, D, scale, op.data(), scratch);
    std::memcpy(out, op.data(), static_cast<size_t>(head_dim_v) * sizeof(float));
}

}  // namespace llmforge
