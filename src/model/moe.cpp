#include "model/moe.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"

namespace llmforge {

namespace {

// Index of the largest value among v[0..n) not yet taken; ties: lowest index.
int64_t best_free(const float* v, const std::vector<bool>& taken, int64_t n) {
    int64_t best = -1;
    for (int64_t i = 0; i < n; ++i)
        if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

}  // namespace

void route_experts(const float* logits, const float* bias, const MoeSpec& m, int32_t* sel, float* weight,
                   float* scores, float* work) {
    const int64_t E = m.n_expert, K = m.n_used;
    LF_ASSERT(E > 0 && K > 0 && K <= E && m.n_group >= 1 && E % m.n_group == 0);
    if (m.gating == MoeGating::kSoftmax) {
        float mx = logits[0];
        for (int64_t e = 1; e < E; ++e) mx = std::max(mx, logits[e]);
        double sum = 0;
        for (int64_t e = 0; e < E; ++e) sum += (scores[e] = std::exp(logits[e] - mx));
        const float inv = static_cast<float>(1.0 / sum);
        for (int64_t e = 0; e < E; ++e) scores[e] *= inv;
    } else {
        for (int64_t e = 0; e < E; ++e) scores[e] = 1.0f / (1.0f + std::exp(-logits[e]));
    }
    float* choice = work;
    for (int64_t e = 0; e < E; ++e) choice[e] = scores[e] + (bias != nullptr ? bias[e] : 0.0f);
    if (m.n_group > 1 && m.topk_group < m.n_group) {
        const int64_t G = m.n_group, per = E / G;
        float* gscore = work + E;
        for (int64_t g = 0; g < G; ++g) {
            const float* c = choice + g * per;
            if (m.gating == MoeGating::kSoftmax) {
                gscore[g] = *std::max_element(c, c + per);
            } else {  // sum of the two best (one member: itself)
                float a = -std::numeric_limits<float>::infinity(), b = a;
                for (int64_t i = 0; i < per; ++i) {
                    if (c[i] > a) {
                        b = a;
                        a = c[i];
                    } else if (c[i] > b) {
                        b = c[i];
                    }
                }
                gscore[g] = per > 1 ? a + b : a;
            }
        }
        std::vector<bool> kept(G, false);
        for (int64_t k = 0; k < m.topk_group; ++k) kept[best_free(gscore, kept, G)] = true;
        for (int64_t g = 0; g < G; ++g)
            if (!kept[g]) std::fill(choice + g * per, choice + (g + 1) * per, -std::numeric_limits<float>::infinity());
    }
    std::vector<bool> taken(E, false);
    double sum = 0;
    for (int64_t k = 0; k < K; ++k) {
        const int64_t e = best_free(choice, taken, E);
        taken[e] = true;
        sel[k] = static_cast<int32_t>(e);
        weight[k] = scores[e];
        sum += scores[e];
    }
    if (m.norm && K > 1) {
        const float inv = static_cast<float>(1.0 / (sum + 1e-20));
        for (int64_t k = 0; k < K; ++k) weight[k] *= inv;
    }
    for (int64_t k = 0; k < K; ++k) weight[k] *= m.scale;
}

void ExpertGroups::build(const int32_t* sel, int64_t n_tokens, int64_t n_used, int64_t n_expert) {
    begin.assign(static_cast<size_t>(n_expert + 1), 0);
    for (int64_t i = 0; i < n_tokens * n_used; ++i) ++begin[sel[i] + 1];
    for (int64_t e = 0; e < n_expert; ++e) begin[e + 1] += begin[e];
    token.resize(static_cast<size_t>(n_tokens * n_used));
    slot.resize(token.size());
    std::vector<int64_t> at(begin.begin(), begin.end() - 1);
    for (int64_t t = 0; t < n_tokens; ++t)
        for (int64_t k = 0; k < n_used; ++k) {
            const int64_t e = sel[t * n_used + k];
            token[at[e]] = static_cast<int32_t>(t);
            slot[at[e]++] = static_cast<int32_t>(k);
        }
}

}  // namespace llmforge
