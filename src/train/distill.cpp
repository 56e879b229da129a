#include "train/distill.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "kernels/cpu/kernels.h"
#include "model/vocab_source.h"

namespace llmforge::train {

namespace fs = std::filesystem;

namespace {

// softmax(x / T) of one row into q (V floats) on the kernel table's softmax; returns the log of
// its largest entry, lq, so that log q_j = (x_j / T − max_k x_k / T) + lq for every j with no
// underflow (q_j itself may be 0 in f32 where its log is a finite large negative number).
double soften(const kernels::KernelTable& kt, const float* x, float inv_t, float* q, int64_t V, float* mx_out) {
    for (int64_t j = 0; j < V; ++j) q[j] = x[j] * inv_t;
    int64_t am = 0;
    for (int64_t j = 1; j < V; ++j)
        if (q[j] > q[am]) am = j;
    *mx_out = q[am];
    kt.softmax(q, V);
    return std::log(static_cast<double>(q[am]));  // = −log Σ exp(z) up to the exp's rounding
}

// −log softmax(row)[target] as cross_entropy computes it (the same arithmetic, so that alpha = 0
// is cross_entropy bit for bit): the table's softmax on a copy, redone in double when the
// target's probability is below 1e-30.
double row_cross_entropy(const kernels::KernelTable& kt, const float* row, int32_t target, float* tmp, int64_t V) {
    std::memcpy(tmp, row, static_cast<size_t>(V) * sizeof(float));
    kt.softmax(tmp, V);
    const float pt = tmp[target];
    if (pt > 1e-30f) return -std::log(static_cast<double>(pt));
    float mx = row[0];
    for (int64_t j = 1; j < V; ++j) mx = std::max(mx, row[j]);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(static_cast<double>(row[j]) - mx);
    return mx + std::log(s) - row[target];
}

// KL(softmax(t/T) ‖ softmax(s/T)) of one row, in double: Σ_j qt_j (log qt_j − log qs_j), with the
// logs from soften's identity. A teacher row equal to the student's gives exactly 0 (every
// term's two logs are the same floats).
double row_kl(const kernels::KernelTable& kt, const float* s, const float* t, float inv_t, float* qs, float* qt, int64_t V) {
    float ms = 0, mt = 0;
    const double lqs = soften(kt, s, inv_t, qs, V, &ms);
    const double lqt = soften(kt, t, inv_t, qt, V, &mt);
    double kl = 0;
    for (int64_t j = 0; j < V; ++j) {
        if (qt[j] == 0.0f) continue;  // 0 · log 0 = 0
        const double log_t = static_cast<double>(t[j] * inv_t - mt) + lqt;
        const double log_s = static_cast<double>(s[j] * inv_t - ms) + lqs;
        kl += static_cast<double>(qt[j]) * (log_t - log_s);
    }
    return kl;
}

struct RowScratch {
    std::vector<float> p, qs, qt;
    void size(int64_t V) {
        p.resize(static_cast<size_t>(V));
        qs.resize(static_cast<size_t>(V));
        qt.resize(static_cast<size_t>(V));
    }
};

}  // namespace

Var distill_loss(Tape& t, Var student, const float* teacher, const int32_t* targets, int64_t n, float temperature,
                 float alpha, DistillParts* parts) {
    const int64_t V = student->shape.back();
    LF_ASSERT(student->numel == n * V);
    LF_ASSERT(temperature > 0 && alpha >= 0 && alpha <= 1);
    const bool use_kl = alpha > 0, use_ce = alpha < 1;
    const float inv_t = 1.0f / temperature;
    Var loss = t.make({1}, t.grad_enabled && student->requires_grad);
    const kernels::KernelTable& kt = kernels::kernels();
    std::vector<double> ce(static_cast<size_t>(n), 0.0), kl(static_cast<size_t>(n), 0.0);
    t.pool().run_range(n, 4, [&](int64_t b, int64_t e) {
        thread_local RowScratch w;
        w.size(V);
        for (int64_t r = b; r < e; ++r) {
            if (targets[r] < 0) continue;  // not counted by either term
            const float* row = student->data + r * V;
            ce[r] = row_cross_entropy(kt, row, targets[r], w.p.data(), V);
            if (use_kl) kl[r] = row_kl(kt, row, teacher + r * V, inv_t, w.qs.data(), w.qt.data(), V);
        }
    });
    int64_t counted = 0;
    for (int64_t r = 0; r < n; ++r) counted += targets[r] >= 0;
    double ce_total = 0, kl_total = 0;
    for (int64_t r = 0; r < n; ++r) ce_total += ce[r], kl_total += kl[r];  // fixed order: any thread count
    const double ce_mean = counted > 0 ? ce_total / static_cast<double>(counted) : 0.0;
    const double kl_mean = counted > 0 ? kl_total / static_cast<double>(counted) : 0.0;
    double value = 0;
    if (use_ce) value += (1.0 - alpha) * ce_mean;  // 1.0 · ce_mean when alpha = 0: cross_entropy's value
    if (use_kl) value += static_cast<double>(alpha) * temperature * temperature * kl_mean;
    loss->data[0] = static_cast<float>(value);
    if (parts != nullptr) *parts = DistillParts{kl_mean, ce_mean, counted};
    if (!loss->requires_grad || counted == 0) return loss;

    t.on_backward([&t, student, loss, teacher, targets, n, V, counted, inv_t, alpha, use_kl, use_ce, temperature] {
        if (loss->grad == nullptr) return;
        const kernels::KernelTable& kt = kernels::kernels();
        const float scale = loss->grad[0] / static_cast<float>(counted);
        // d/ds (1 − A)·CE = (1 − A)·(p − onehot); d/ds A·T²·KL = A·T²·(1/T)·(qs − qt) = A·T·(qs − qt).
        const float cs = scale * static_cast<float>(1.0 - alpha);
        const float ks = scale * static_cast<float>(alpha * temperature);
        // As cross_entropy: when nothing reads the student logits after this closure, the gradient
        // takes their buffer (each row is read into the scratch before it is overwritten).
        const bool in_place = t.free_in_backward && student->grad == nullptr && !student->keep && student->param == nullptr;
        float* dl = in_place ? student->data : t.grad(student);
        t.pool().run_range(n, 4, [&](int64_t b, int64_t e) {
            thread_local RowScratch w;
            w.size(V);
            for (int64_t r = b; r < e; ++r) {
                float* d = dl + r * V;
                if (targets[r] < 0) {  // ignored: zero gradient
                    if (in_place) std::memset(d, 0, static_cast<size_t>(V) * sizeof(float));
                    continue;
                }
                const float* row = student->data + r * V;
                if (use_kl) {
                    float ms = 0, mt = 0;
                    (void)soften(kt, row, inv_t, w.qs.data(), V, &ms);
                    (void)soften(kt, teacher + r * V, inv_t, w.qt.data(), V, &mt);
                }
                if (in_place) {
                    // The same operations as cross_entropy's in-place gradient when alpha = 0.
                    if (use_ce) {
                        kt.softmax(d, V);
                        for (int64_t j = 0; j < V; ++j) d[j] *= cs;
                    } else {
                        std::memset(d, 0, static_cast<size_t>(V) * sizeof(float));
                    }
                } else if (use_ce) {
                    std::memcpy(w.p.data(), row, static_cast<size_t>(V) * sizeof(float));
                    kt.softmax(w.p.data(), V);
                    kt.axpy(V, cs, w.p.data(), d);
                }
                if (use_kl)
                    for (int64_t j = 0; j < V; ++j) d[j] += ks * (w.qs[j] - w.qt[j]);
                if (use_ce) d[targets[r]] -= cs;
            }
        });
        if (in_place) {
            student->grad = student->data;
            student->data = nullptr;
        }
    });
    return loss;
}

void check_same_vocab(const Vocab& teacher, int64_t teacher_n_vocab, const std::string& teacher_path,
                      const Vocab& student, int64_t student_n_vocab, const std::string& student_desc) {
    if (teacher_n_vocab != student_n_vocab)
        fail("train: --teacher %s has a vocabulary of %lld tokens, but the student (%s) has %lld (hint: distillation "
             "compares the two output distributions token by token; the teacher must use the student's tokenizer)",
             teacher_path.c_str(), (long long)teacher_n_vocab, student_desc.c_str(), (long long)student_n_vocab);
    if (teacher.tokens.empty() || student.tokens.empty()) return;  // one side's texts unknown: the sizes agree
    const size_t n = std::min(teacher.tokens.size(), student.tokens.size());
    for (size_t i = 0; i < n; ++i)
        if (teacher.tokens[i] != student.tokens[i])
            fail("train: --teacher %s and the student (%s) have different vocabularies: token %zu is '%s' in the teacher "
                 "but '%s' in the student (hint: the teacher must use the student's tokenizer)", teacher_path.c_str(),
                 student_desc.c_str(), i, teacher.tokens[i].c_str(), student.tokens[i].c_str());
    if (teacher.tokens.size() != student.tokens.size())
        fail("train: --teacher %s lists %zu token texts, the student (%s) %zu (hint: the teacher must use the student's "
             "tokenizer)", teacher_path.c_str(), teacher.tokens.size(), student_desc.c_str(), student.tokens.size());
}

std::string data_tokenizer_path(const std::string& tokenizer_flag, const std::string& data) {
    if (!tokenizer_flag.empty()) return tokenizer_flag;
    std::error_code ec;
    if (data.empty() || !fs::is_directory(data, ec) || !fs::exists(fs::path(data) / "meta.json", ec)) return "";
    try {  // resolved as the trainer resolves it for the checkpoints' tokenizer files
        const nlohmann::json meta =
            nlohmann::json::parse(read_file((fs::path(data) / "meta.json").string(), "data meta", ""));
        std::string tok = meta.value("tokenizer", "");
        if (!tok.empty() && fs::path(tok).is_relative() && !fs::exists(tok, ec)) tok = (fs::path(data) / tok).string();
        return tok;
    } catch (const nlohmann::json::exception&) {
        return "";
    }
}

std::unique_ptr<Teacher> Teacher::open(const std::string& path, const Model& student, const std::string& student_desc,
                                       const std::string& student_tokenizer) {
    const int64_t V = student.config().n_vocab;
    Vocab sv = student.vocab();
    std::string desc = student_desc;
    if (sv.tokens.empty() && !student_tokenizer.empty()) {
        sv = load_vocab(student_tokenizer, V);
        desc += " with tokenizer " + student_tokenizer;
    }
    std::unique_ptr<Teacher> t(new Teacher(Model::load(path)));
    const Model& m = t->model();
    check_same_vocab(m.vocab(), m.config().n_vocab, path, sv, V, desc);
    return t;
}

void Teacher::run(const int32_t* tokens, int64_t B, int64_t T, const int32_t* doc_start, ThreadPool& pool) {
    const int64_t V = model_->config().n_vocab;
    logits_.resize(static_cast<size_t>(B * T * V));
    if (cache_ctx_ < T) {
        caches_.clear();
        cache_ctx_ = T;
    }
    std::vector<SeqBatch> seqs;
    seqs.reserve(static_cast<size_t>(B));
    // At most B sequences per call, so the KV memory is B caches of T positions whatever the
    // number of documents in a packed row.
    auto flush = [&] {
        while (caches_.size() < seqs.size()) caches_.push_back(model_->new_memory(cache_ctx_));
        for (size_t i = 0; i < seqs.size(); ++i) seqs[i].cache = caches_[i].get();
        model_->forward_batch(seqs.data(), static_cast<int64_t>(seqs.size()), pool, scratch_);
        seqs.clear();
    };
    for (int64_t b = 0; b < B; ++b) {
        int64_t s = 0;
        for (int64_t i = 1; i <= T; ++i) {
            if (i < T && (doc_start == nullptr || doc_start[b * T + i] != i)) continue;
            // [s, i) is one document of row b: positions 0..i-s-1 from an empty cache.
            SeqBatch q;
            q.tokens = tokens + b * T + s;
            q.n = i - s;
            q.pos0 = 0;
            q.logits = logits_.data() + (b * T + s) * V;
            q.n_out = i - s;
            seqs.push_back(q);
            if (static_cast<int64_t>(seqs.size()) == B) flush();
            s = i;
        }
    }
    if (!seqs.empty()) flush();
}

}  // namespace llmforge::train
