#include "apps/shop/retriever.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>

#include "apps/codegen/repo_context.h"
#include "apps/shop/shop_db.h"
#include "apps/shop/text_classifier.h"
#include "core/dtype.h"
#include "core/error.h"
#include "core/random.h"
#include "io/safetensors.h"

namespace llmforge::apps {

namespace {

constexpr int64_t kRows = int64_t{1} << DualEncoder::kHashBits;
constexpr int kD = DualEncoder::kDims;

// u = Σ_f x_f W[f] over the text's features (x_f = 1/sqrt(n)); returns |u| and writes u.
double project(const std::vector<float>& w, const std::vector<uint32_t>& ids, float* u) {
    std::fill(u, u + kD, 0.0f);
    const float x = ids.empty() ? 0.0f : 1.0f / std::sqrt(static_cast<float>(ids.size()));
    for (uint32_t f : ids) {
        const float* row = w.data() + static_cast<size_t>(f) * kD;
        for (int j = 0; j < kD; ++j) u[j] += x * row[j];
    }
    double n = 0;
    for (int j = 0; j < kD; ++j) n += static_cast<double>(u[j]) * u[j];
    return std::sqrt(n);
}

std::vector<float> unit(const std::vector<float>& w, const std::string& text) {
    std::vector<float> u(kD);
    const double n = project(w, hashed_feature_ids(text, DualEncoder::kHashBits), u.data());
    if (n > 0)
        for (float& v : u) v = static_cast<float>(v / n);
    return u;
}

// Passages that answer the same kind of question share a group; a training batch holds one
// passage per group, so no question is pushed away from a passage that also answers it.
int group_of(const std::string& id) {
    static const std::map<std::string, int> g = {
        {"policy:returns", 0},   {"article:1", 0},  {"policy:exchanges", 1}, {"article:2", 1},
        {"policy:refunds", 2},   {"article:3", 2},  {"policy:shipping", 3},  {"article:4", 3},
        {"article:5", 3},        {"article:6", 4},  {"policy:delivery_problems", 5}, {"article:7", 5},
        {"article:8", 5},        {"article:9", 5},  {"policy:cancellation", 6}, {"article:10", 6},
        {"policy:address_change", 7}, {"article:11", 7}, {"policy:payments", 8}, {"article:12", 8},
        {"article:13", 8},       {"policy:discounts", 9}, {"article:14", 9}, {"policy:account", 10},
        {"article:15", 10},      {"article:16", 10}, {"article:17", 11}, {"article:18", 12}};
    const auto it = g.find(id);
    return it == g.end() ? 13 : it->second;
}

}  // namespace

const std::vector<std::string>& knowledge_texts() {
    static const std::vector<std::string> t = [] {
        std::vector<std::string> v;
        for (const auto& p : shop_knowledge()) v.push_back(p.title + ". " + p.text);
        return v;
    }();
    return t;
}

DualEncoder::DualEncoder(const std::string& dir) {
    const std::string path = dir + "/retriever.safetensors";
    struct stat st;
    if (stat(path.c_str(), &st) != 0)
        fail("retriever: %s not found (hint: -m DIR names a folder made by `llmforge retrieval-train`, e.g. models/retriever)",
             path.c_str());
    const SafetensorsFile f(path);
    for (const char* name : {"query.weight", "passage.weight"}) {
        if (!f.has_tensor(name)) fail("retriever: %s has no tensor '%s' (hint: make retriever-model)", path.c_str(), name);
        const Tensor t = f.tensor(name);
        if (t.dtype() != DType::F16 || t.ndim() != 2 || t.shape()[0] != kRows || t.shape()[1] != kD)
            fail("retriever: %s: '%s' is not f16 (%lld, %d) (hint: make retriever-model)", path.c_str(), name, (long long)kRows, kD);
        std::vector<float>& w = std::string(name) == "query.weight" ? q_ : p_;
        w.resize(static_cast<size_t>(kRows * kD));
        const auto* h = static_cast<const uint16_t*>(t.data());
        for (size_t i = 0; i < w.size(); ++i) w[i] = fp16_to_fp32(h[i]);
    }
}

std::vector<float> DualEncoder::encode(const std::string& text, bool query) const {
    if (text.rfind("query: ", 0) == 0) return unit(q_, text.substr(7));
    if (text.rfind("passage: ", 0) == 0) return unit(p_, text.substr(9));
    return unit(query ? q_ : p_, text);
}

double DualEncoder::train(const std::string& dir, const TrainOptions& o) {
    const auto& passages = shop_knowledge();
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < passages.size(); ++i) index[passages[i].id] = i;
    auto data = retrieval_training_questions(o.seed, o.per_passage);
    uint64_t s = o.seed ^ 0xd9a;
    for (size_t i = data.size(); i > 1; --i) std::swap(data[i - 1], data[splitmix64(s) % i]);
    const size_t n_test = data.size() / 10;
    // Features once.
    std::vector<std::vector<uint32_t>> qf(data.size()), pf(passages.size());
    for (size_t i = 0; i < data.size(); ++i) qf[i] = hashed_feature_ids(data[i].first, kHashBits);
    for (size_t i = 0; i < passages.size(); ++i) pf[i] = hashed_feature_ids(knowledge_texts()[i], kHashBits);
    // Small random start (the two encoders differ from the first step).
    std::vector<float> wq(static_cast<size_t>(kRows * kD)), wp(wq.size());
    Gaussian g(o.seed * 31 + 7);
    for (float& v : wq) v = static_cast<float>(0.1 * g.next());
    for (float& v : wp) v = static_cast<float>(0.1 * g.next());
    // Training questions by group: each batch takes one question of each of (up to) `batch` groups.
    std::map<int, std::vector<size_t>> by_group;
    for (size_t i = n_test; i < data.size(); ++i) by_group[group_of(data[i].second)].push_back(i);
    std::vector<int> groups;
    for (const auto& [gid, v] : by_group) groups.push_back(gid);
    const int B = std::min<int>(o.batch, static_cast<int>(groups.size()));
    const size_t steps_per_epoch = (data.size() - n_test) / static_cast<size_t>(B);
    std::vector<float> U(static_cast<size_t>(B) * kD), V(U.size()), dU(U.size()), dV(U.size()), Eq(U.size()), Ep(U.size());
    std::vector<double> un(B), vn(B), G(static_cast<size_t>(B) * B);
    std::vector<size_t> qi(B), pi(B);
    for (int ep = 0; ep < o.epochs; ++ep) {
        const float lr = o.lr * (1.0f - static_cast<float>(ep) / static_cast<float>(o.epochs));
        for (size_t step = 0; step < steps_per_epoch; ++step) {
            // Pick B distinct groups, a question of each; its passage is the positive.
            std::vector<int> gs = groups;
            for (size_t i = gs.size(); i > 1; --i) std::swap(gs[i - 1], gs[splitmix64(s) % i]);
            for (int b = 0; b < B; ++b) {
                const auto& v = by_group[gs[b]];
                qi[b] = v[splitmix64(s) % v.size()];
                pi[b] = index.at(data[qi[b]].second);
            }
            for (int b = 0; b < B; ++b) {
                un[b] = std::max(project(wq, qf[qi[b]], &U[b * kD]), 1e-9);
                vn[b] = std::max(project(wp, pf[pi[b]], &V[b * kD]), 1e-9);
            }
            // e = u/|u|; S = E_q E_pᵀ / τ; L = mean_b CE(S_b, b); G = (softmax(S) - I) / B.
            for (int b = 0; b < B; ++b)
                for (int j = 0; j < kD; ++j) Eq[b * kD + j] = static_cast<float>(U[b * kD + j] / un[b]), Ep[b * kD + j] = static_cast<float>(V[b * kD + j] / vn[b]);
            for (int a = 0; a < B; ++a) {
                double mx = -1e30;
                for (int b = 0; b < B; ++b) {
                    double d = 0;
                    for (int j = 0; j < kD; ++j) d += static_cast<double>(Eq[a * kD + j]) * Ep[b * kD + j];
                    G[a * B + b] = d / kTau;
                    mx = std::max(mx, G[a * B + b]);
                }
                double z = 0;
                for (int b = 0; b < B; ++b) z += (G[a * B + b] = std::exp(G[a * B + b] - mx));
                for (int b = 0; b < B; ++b) G[a * B + b] = (G[a * B + b] / z - (a == b)) / B;
            }
            // dEq = G Ep / τ, dEp = Gᵀ Eq / τ; through the normalisation: du = (de - e (e·de)) / |u|.
            std::fill(dU.begin(), dU.end(), 0.0f);
            std::fill(dV.begin(), dV.end(), 0.0f);
            for (int a = 0; a < B; ++a)
                for (int b = 0; b < B; ++b) {
                    const float gab = static_cast<float>(G[a * B + b] / kTau);
                    for (int j = 0; j < kD; ++j) dU[a * kD + j] += gab * Ep[b * kD + j], dV[b * kD + j] += gab * Eq[a * kD + j];
                }
            auto back = [](float* de, const float* e, double n) {
                double dot = 0;
                for (int j = 0; j < kD; ++j) dot += static_cast<double>(de[j]) * e[j];
                for (int j = 0; j < kD; ++j) de[j] = static_cast<float>((de[j] - e[j] * dot) / n);
            };
            // SGD on the rows of the features present.
            for (int b = 0; b < B; ++b) {
                back(&dU[b * kD], &Eq[b * kD], un[b]);
                back(&dV[b * kD], &Ep[b * kD], vn[b]);
                const auto& fq = qf[qi[b]];
                const float xq = 1.0f / std::sqrt(static_cast<float>(std::max<size_t>(fq.size(), 1)));
                for (uint32_t f : fq)
                    for (int j = 0; j < kD; ++j) wq[static_cast<size_t>(f) * kD + j] -= lr * xq * dU[b * kD + j];
                const auto& fp = pf[pi[b]];
                const float xp = 1.0f / std::sqrt(static_cast<float>(std::max<size_t>(fp.size(), 1)));
                for (uint32_t f : fp)
                    for (int j = 0; j < kD; ++j) wp[static_cast<size_t>(f) * kD + j] -= lr * xp * dV[b * kD + j];
            }
        }
    }
    // Stored in f16; recall@1 of held-out generated questions measured on what is stored.
    std::vector<uint16_t> hq(wq.size()), hp(wp.size());
    for (size_t i = 0; i < wq.size(); ++i) hq[i] = fp32_to_fp16(wq[i]), hp[i] = fp32_to_fp16(wp[i]);
    mkdir(dir.c_str(), 0755);
    SafetensorsWriter w;
    w.set_metadata("format", "llmforge-retriever-1");
    w.set_metadata("trained", nlohmann::json{{"seed", o.seed}, {"per_passage", o.per_passage}, {"epochs", o.epochs},
                                             {"batch", o.batch}, {"lr", o.lr}}.dump());
    w.add_tensor("query.weight", DType::F16, {kRows, kD}, hq.data(), hq.size() * 2);
    w.add_tensor("passage.weight", DType::F16, {kRows, kD}, hp.data(), hp.size() * 2);
    w.write(dir + "/retriever.safetensors");
    const DualEncoder enc(dir);
    const PassageIndex idx(enc, knowledge_texts());
    int64_t hit = 0;
    for (size_t i = 0; i < n_test; ++i) hit += passages[idx.search(data[i].first, 1)[0].index].id == data[i].second;
    return n_test ? static_cast<double>(hit) / static_cast<double>(n_test) : 0.0;
}

PassageIndex::PassageIndex(const DualEncoder& enc, std::vector<std::string> texts) : enc_(enc), texts_(std::move(texts)) {
    for (const auto& t : texts_) emb_.push_back(enc_.encode(t, false));
}

std::vector<RetrievalHit> PassageIndex::search(const std::string& query, size_t k) const {
    const std::vector<float> q = enc_.encode(query, true);
    std::vector<RetrievalHit> hits;
    for (size_t i = 0; i < emb_.size(); ++i) {
        double d = 0;
        for (int j = 0; j < kD; ++j) d += static_cast<double>(q[j]) * emb_[i][j];
        hits.push_back({i, d});
    }
    std::stable_sort(hits.begin(), hits.end(), [](const RetrievalHit& a, const RetrievalHit& b) { return a.score > b.score; });
    hits.resize(std::min(k, hits.size()));
    return hits;
}

nlohmann::ordered_json RetrievalScore::to_json() const {
    auto r = [this](int64_t k) { return questions ? static_cast<double>(k) / questions : 0.0; };
    return {{"questions", questions},
            {"dual_encoder", {{"recall@1", r(dpr_at1)}, {"recall@5", r(dpr_at5)}}},
            {"bm25", {{"recall@1", r(bm25_at1)}, {"recall@5", r(bm25_at5)}}}};
}

RetrievalScore score_retrieval(const DualEncoder& enc,
                               const std::vector<std::pair<std::string, std::vector<std::string>>>& questions) {
    const auto& passages = shop_knowledge();
    std::vector<std::vector<std::string>> terms;
    for (const auto& t : knowledge_texts()) terms.push_back(feature_tokens(t));
    const PassageIndex idx(enc, knowledge_texts());
    const codegen::Bm25 bm25(terms);
    RetrievalScore s;
    for (const auto& [q, ok] : questions) {
        ++s.questions;
        const std::set<std::string> good(ok.begin(), ok.end());
        const auto hits = idx.search(q, 5);
        for (size_t r = 0; r < hits.size(); ++r)
            if (good.count(passages[hits[r].index].id)) {
                s.dpr_at1 += r == 0;
                ++s.dpr_at5;
                break;
            }
        const std::vector<double> sc = bm25.score_all(feature_tokens(q));
        std::vector<size_t> order(sc.size());
        for (size_t i = 0; i < order.size(); ++i) order[i] = i;
        std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return sc[a] > sc[b]; });
        for (size_t r = 0; r < 5 && r < order.size(); ++r)
            if (good.count(passages[order[r]].id)) {
                s.bm25_at1 += r == 0;
                ++s.bm25_at5;
                break;
            }
    }
    return s;
}

}  // namespace llmforge::apps
