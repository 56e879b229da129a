#include "train/ewc.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "io/safetensors.h"
#include "train/data.h"
#include "train/optimizer.h"
#include "train/ops.h"
#include "train/train_model.h"

namespace llmforge::train {

namespace {
constexpr const char* kFisherFormat = "llmforge-fisher-v1";
}

FisherResult compute_fisher(const FisherOptions& o, const std::function<void(int64_t, int64_t)>& progress) {
    if (o.samples < 1) fail("fisher: --samples is %lld, expected >= 1", (long long)o.samples);
    if (o.seq_len < 2) fail("fisher: --seq-len is %lld, expected >= 2", (long long)o.seq_len);
    if (o.out.empty()) fail("fisher: no -o FILE (hint: the Fisher file train --ewc-fisher reads)");
    const auto t0 = std::chrono::steady_clock::now();
    auto model = TrainModel::from_files(open_model_files(o.model));
    model->to_rotate_half();  // the trainer's convention: θ* in the order the trainer holds it
    const TokenData data = TokenData::open(o.data, "train", model->config().n_vocab);
    const int64_t T = o.seq_len;
    if (data.size() < T + 1)
        fail("fisher: %s is too short for --seq-len %lld (needs at least %lld tokens)", data.description().c_str(),
             (long long)T, (long long)(T + 1));
    ThreadPool pool(o.threads > 0 ? o.threads : std::max(1, static_cast<int>(std::thread::hardware_concurrency())));
    Tape tape(pool);
    tape.free_in_backward = true;
    std::vector<Param*> ps;
    for (auto& p : model->params()) ps.push_back(p.get());
    std::vector<std::vector<double>> F(ps.size());
    for (size_t i = 0; i < ps.size(); ++i) F[i].assign(static_cast<size_t>(ps[i]->numel()), 0.0);
    std::vector<int32_t> in(static_cast<size_t>(T)), tg(static_cast<size_t>(T)), doc(static_cast<size_t>(T));
    const BatchPlan plan{1, T, 1, 0, true, o.seed};
    for (int64_t s = 0; s < o.samples; ++s) {
        fill_batch(data, plan, s, in.data(), tg.data(), doc.data());
        zero_grads(ps);
        tape.reset();
        tape.backward(model->forward(tape, in.data(), tg.data(), 1, T, 0.0f, 0, nullptr, data.sft() ? doc.data() : nullptr));
        for (size_t i = 0; i < ps.size(); ++i) {
            const float* g = ps[i]->grad.data();
            double* f = F[i].data();
            pool.run_range(ps[i]->numel(), 1 << 15, [&](int64_t b, int64_t e) {
                for (int64_t j = b; j < e; ++j) f[j] += static_cast<double>(g[j]) * g[j];
            });
        }
        if (progress) progress(s + 1, o.samples);
    }
    tape.reset();
    FisherResult r;
    r.samples = o.samples;
    std::vector<std::vector<float>> fisher(ps.size());
    double total = 0;
    SafetensorsWriter w;
    w.set_metadata("format", kFisherFormat);
    w.set_metadata("samples", std::to_string(o.samples));
    w.set_metadata("data", o.data);
    w.set_metadata("model", o.model);
    for (size_t i = 0; i < ps.size(); ++i) {
        fisher[i].resize(F[i].size());
        for (size_t j = 0; j < F[i].size(); ++j) {
            fisher[i][j] = static_cast<float>(F[i][j] / static_cast<double>(o.samples));
            total += fisher[i][j];
        }
        const size_t nb = fisher[i].size() * sizeof(float);
        w.add_tensor("fisher." + ps[i]->name, DType::F32, ps[i]->shape, fisher[i].data(), nb);
        w.add_tensor("theta." + ps[i]->name, DType::F32, ps[i]->shape, ps[i]->value.data(), nb);
        r.params += ps[i]->numel();
    }
    w.write(o.out);
    r.mean_fisher = total / static_cast<double>(std::max<int64_t>(r.params, 1));
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

EwcPenalty::EwcPenalty(const std::string& path, const std::vector<Param*>& params) {
    SafetensorsFile f(path);
    auto it = f.metadata().find("format");
    if (it == f.metadata().end() || it->second != kFisherFormat)
        fail("--ewc-fisher %s: not a Fisher file (metadata format is '%s', expected %s; hint: write one with llmforge "
             "fisher)", path.c_str(), it == f.metadata().end() ? "" : it->second.c_str(), kFisherFormat);
    for (Param* p : params) {
        Entry e{p, {}, {}};
        for (auto [prefix, dst] : {std::pair<const char*, std::vector<float>*>{"fisher.", &e.fisher}, {"theta.", &e.theta}}) {
            const std::string name = prefix + p->name;
            const SafetensorsTensorInfo* info = f.find_tensor(name);
            if (info == nullptr)
                fail("--ewc-fisher %s: no '%s' for the trained parameter %s (hint: compute the Fisher file on the model "
                     "this run starts from, with the same --peft set-up)", path.c_str(), name.c_str(), p->name.c_str());
            if (info->shape != p->shape || info->dtype_name != "F32")
                fail("--ewc-fisher %s: '%s' is %s %s, expected F32 of the parameter's shape (a file made for another model?)",
                     path.c_str(), name.c_str(), info->dtype_name.c_str(), info->shape_str().c_str());
            const Tensor t = f.tensor(*info);
            dst->assign(t.ptr<float>(), t.ptr<float>() + p->numel());
        }
        entries_.push_back(std::move(e));
    }
}

double EwcPenalty::add_gradient(float lambda, ThreadPool& pool) {
    double penalty = 0;
    for (Entry& e : entries_) {
        const int64_t n = e.p->numel();
        constexpr int64_t kChunk = 1 << 15;
        std::vector<double> part(static_cast<size_t>((n + kChunk - 1) / kChunk), 0.0);
        const float* th = e.p->value.data();
        float* g = e.p->grad.data();
        pool.run(static_cast<int64_t>(part.size()), [&](int64_t c, int) {
            double s = 0;
            for (int64_t j = c * kChunk, end = std::min(n, (c + 1) * kChunk); j < end; ++j) {
                const float d = th[j] - e.theta[j];
                g[j] += lambda * e.fisher[j] * d;
                s += static_cast<double>(e.fisher[j]) * d * d;
            }
            part[c] = s;
        });
        for (double s : part) penalty += s;  // fixed order
    }
    return 0.5 * lambda * penalty;
}

}  // namespace llmforge::train
