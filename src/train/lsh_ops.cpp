#include "train/lsh_ops.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::train {

std::shared_ptr<LshBuckets> lsh_buckets(const float* q, const float* k, int64_t N, int64_t H, int64_t Hkv, int64_t D,
                                        const LshHash* hashes, ThreadPool& pool) {
    LF_ASSERT(H % Hkv == 0);
    auto b = std::make_shared<LshBuckets>();
    const int64_t R = hashes[0].n_hashes(), group = H / Hkv;
    b->n_hashes = R;
    b->q.resize(static_cast<size_t>(N * H * R));
    b->k.resize(static_cast<size_t>(N * Hkv * R));
    pool.run_range(N, 16, [&](int64_t r0, int64_t r1) {
        for (int64_t i = r0; i < r1; ++i) {
            for (int64_t h = 0; h < H; ++h) hashes[h / group].buckets(q + (i * H + h) * D, &b->q[(i * H + h) * R]);
            for (int64_t g = 0; g < Hkv; ++g) hashes[g].buckets(k + (i * Hkv + g) * D, &b->k[(i * Hkv + g) * R]);
        }
    });
    return b;
}

namespace {

// (position, query head) pairs of sequence b's kv head g, by (first round's bucket, position, head).
std::vector<std::pair<int64_t, int32_t>> query_order(const LshBuckets& bk, int64_t b, int64_t g, int64_t T,
                                                     int64_t H, int64_t group) {
    const int64_t R = bk.n_hashes;
    std::vector<std::pair<int64_t, int32_t>> order;
    order.reserve(static_cast<size_t>(T * group));
    for (int64_t s = 0; s < T; ++s)
        for (int64_t h = g * group; h < (g + 1) * group; ++h) order.emplace_back(s, static_cast<int32_t>(h));
    auto bucket = [&](const std::pair<int64_t, int32_t>& x) { return bk.q[((b * T + x.first) * H + x.second) * R]; };
    std::stable_sort(order.begin(), order.end(), [&](const auto& x, const auto& y) { return bucket(x) < bucket(y); });
    return order;
}

}  // namespace

Var lsh_attention(Tape& t, Var q, Var k, Var v, int64_t B, int64_t T, int64_t H, int64_t Hkv, const LshSpec& spec,
                  std::shared_ptr<const LshBuckets> bk, float scale, const int32_t* doc_start, int64_t sliding) {
    const int64_t N = B * T, D = q->shape.back() / H, Dv = v->shape.back() / Hkv, group = H / Hkv;
    const int64_t R = bk->n_hashes;
    LF_ASSERT(q->numel == N * H * D && k->numel == N * Hkv * D && v->numel == N * Hkv * Dv && H % Hkv == 0);
    LF_ASSERT(static_cast<int64_t>(bk->q.size()) == N * H * R && static_cast<int64_t>(bk->k.size()) == N * Hkv * R);
    if (scale == 0.0f) scale = 1.0f / std::sqrt(static_cast<float>(D));
    // Candidate lists of every (row, head), sequence-local positions, kept for backward.
    struct State {
        std::vector<std::vector<int32_t>> cand;                         // (N · H)
        std::vector<std::vector<std::pair<int64_t, int32_t>>> order;  // (B · H_kv): query_order
    };
    auto st = std::make_shared<State>();
    st->cand.resize(static_cast<size_t>(N * H));
    st->order.resize(static_cast<size_t>(B * Hkv));
    const bool grad = t.grad_enabled && (q->requires_grad || k->requires_grad || v->requires_grad);
    Var out = t.make({N, H * Dv}, grad);
    const int64_t kd = Hkv * D, vd = Hkv * Dv;
    // One item per (sequence, kv head): its index, then its queries.
    t.pool().run(B * Hkv, [&](int64_t item, int) {
        const int64_t b = item / Hkv, g = item % Hkv;
        LshIndex idx(R, spec.n_buckets);
        for (int64_t j = 0; j < T; ++j) idx.add(j, &bk->k[((b * T + j) * Hkv + g) * R]);
        std::vector<float> scratch(static_cast<size_t>(T * (1 + 2 * std::max(D, Dv))));
        const float* kb = k->data + b * T * kd + g * D;
        const float* vb = v->data + b * T * vd + g * Dv;
        // Queries in the order of their first round's bucket, then position: neighbours in that
        // order share most of their candidates, so the rows they gather stay in cache (results
        // do not depend on the order: each query's output is its own).
        // Kept for backward, which walks the queries in the same order.
        std::vector<std::pair<int64_t, int32_t>>& order = st->order[static_cast<size_t>(item)];
        order = query_order(*bk, b, g, T, H, group);
        for (const auto& [s, h] : order) {
            int64_t ds = doc_start != nullptr ? doc_start[b * T + s] : 0;
            if (sliding > 0) ds = std::max(ds, s - sliding + 1);
            const int64_t row = b * T + s;
            std::vector<int32_t>& c = st->cand[static_cast<size_t>(row * H + h)];
            idx.candidates(s, &bk->q[(row * H + h) * R], spec, c);
            if (ds > 0) c.erase(c.begin(), std::lower_bound(c.begin(), c.end(), static_cast<int32_t>(ds)));
            lsh_attend_row(q->data + row * H * D + h * D, kb, kd, vb, vd, D, Dv, c.data(),
                           static_cast<int64_t>(c.size()), scale, out->data + row * H * Dv + h * Dv, scratch.data());
        }
    });
    if (!grad) return out;
    t.on_backward([&t, q, k, v, out, st, B, T, H, Hkv, D, Dv, group, kd, vd, scale] {
        if (out->grad == nullptr) return;
        float* dq = q->requires_grad ? t.grad(q) : nullptr;
        float* dk = k->requires_grad ? t.grad(k) : nullptr;
        float* dv = v->requires_grad ? t.grad(v) : nullptr;
        // Per (sequence, kv head): its queries write dq of their own rows and dk / dv of that
        // sequence's kv head only, so items never share an output.
        const kernels::KernelTable& kt = kernels::kernels();
        const auto dot = kt.vec_dot[static_cast<int>(DType::F32)];
        t.pool().run(B * Hkv, [&](int64_t item, int) {
            const int64_t b = item / Hkv, g = item % Hkv;
            std::vector<float> p, dp;
            for (const auto& [s, h] : st->order[static_cast<size_t>(item)]) {
                const int64_t row = b * T + s;
                const std::vector<int32_t>& c = st->cand[static_cast<size_t>(row * H + h)];
                const int64_t n = static_cast<int64_t>(c.size());
                const float* qr = q->data + row * H * D + h * D;
                const float* go = out->grad + row * H * Dv + h * Dv;
                // P recomputed: softmax of scale · q·k_j over the candidates.
                p.resize(static_cast<size_t>(n));
                dp.resize(static_cast<size_t>(n));
                for (int64_t j = 0; j < n; ++j) p[j] = scale * dot(D, qr, k->data + (b * T + c[j]) * kd + g * D);
                kt.softmax(p.data(), n);
                // dP_j = dO · v_j; dS_j = P_j (dP_j - Σ P dP).
                double sum = 0;
                for (int64_t j = 0; j < n; ++j) {
                    dp[j] = dot(Dv, go, v->data + (b * T + c[j]) * vd + g * Dv);
                    sum += static_cast<double>(p[j]) * dp[j];
                }
                for (int64_t j = 0; j < n; ++j) {
                    const float ds = p[j] * (dp[j] - static_cast<float>(sum)) * scale;
                    const int64_t kr = b * T + c[j];
                    if (dq != nullptr) kt.axpy(D, ds, k->data + kr * kd + g * D, dq + row * H * D + h * D);
                    if (dk != nullptr) kt.axpy(D, ds, qr, dk + kr * kd + g * D);
                    if (dv != nullptr) kt.axpy(Dv, p[j], go, dv + kr * vd + g * Dv);
                }
            }
        });
    });
    return out;
}

}  // namespace llmforge::train
