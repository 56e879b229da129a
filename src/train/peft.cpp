#include "train/peft.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/random.h"
#include "kernels/cpu/kernels.h"
#include "train/moe_ops.h"
#include "train/ops.h"

namespace llmforge::train {

std::unique_ptr<PeftAdapter> PeftAdapter::create(const TrainModel& m, AdapterConfig cfg, uint64_t seed,
                                                 const std::vector<int32_t>& init_ids) {
    const ModelConfig& c = m.config();
    std::unique_ptr<PeftAdapter> p(new PeftAdapter());
    if (cfg.type == PeftType::kLora) {
        if (cfg.r < 1) fail("train: --lora-r is %lld, expected a rank >= 1 (hint: 8 or 16 are usual)", (long long)cfg.r);
        if (!(cfg.alpha > 0)) fail("train: --lora-alpha is %g, expected > 0", cfg.alpha);
        if (!(cfg.dropout >= 0 && cfg.dropout < 1)) fail("train: --lora-dropout is %g, expected in [0, 1)", cfg.dropout);
        for (const LoraSite& s : lora_sites(m.arch(), c, cfg.target_modules, "train: --lora-targets")) {
            LoraPair lp;
            lp.site = s;
            lp.r = cfg.r;
            lp.a.resize(static_cast<size_t>(cfg.r * s.in));
            lp.b.assign(static_cast<size_t>(s.out * cfg.r), 0.0f);
            // PEFT: kaiming_uniform_(A, a=√5) = U(-1/√in, 1/√in); B = 0, so the start is the base.
            const double bound = 1.0 / std::sqrt(static_cast<double>(s.in));
            uint64_t st = name_seed(lora_a_name(s), seed);
            for (float& v : lp.a) v = static_cast<float>((2.0 * uniform53(splitmix64(st)) - 1.0) * bound);
            p->ad_.lora.push_back(std::move(lp));
        }
    } else {
        if (cfg.num_virtual_tokens < 1)
            fail("train: --virtual-tokens is %lld, expected >= 1", (long long)cfg.num_virtual_tokens);
        cfg.token_dim = c.n_embd;
        cfg.num_layers = c.n_layer;
        cfg.num_attention_heads = c.n_head;
        const int64_t N = cfg.num_virtual_tokens, C = c.n_embd;
        p->ad_.prompt.resize(static_cast<size_t>(N * C));
        if (!init_ids.empty()) {
            // PEFT's TEXT init: the text's ids repeated to N and cut, their embedding rows.
            const Model& im = m.inference();
            const Tensor& table = im.tok_embd();
            const auto deq = kernels::kernels().dequantize_row[static_cast<int>(table.dtype())];
            for (int64_t i = 0; i < N; ++i)
                deq(table.row(init_ids[static_cast<size_t>(i) % init_ids.size()]), &p->ad_.prompt[i * C], C);
        } else {
            Gaussian g(name_seed(kPromptEmbeddings, seed));  // PEFT's RANDOM init: nn.Embedding's N(0, 1)
            for (float& v : p->ad_.prompt) v = static_cast<float>(g.next());
        }
    }
    p->ad_.cfg = std::move(cfg);
    p->make_params();
    return p;
}

std::unique_ptr<PeftAdapter> PeftAdapter::load(const TrainModel& m, const std::string& dir) {
    std::unique_ptr<PeftAdapter> p(new PeftAdapter());
    p->ad_ = read_adapter(dir, m.arch(), m.config());
    p->make_params();
    return p;
}

void PeftAdapter::make_params() {
    params_.clear();
    auto add = [&](const std::string& name, std::vector<int64_t> shape, const std::vector<float>& v) {
        auto q = std::make_unique<Param>();
        q->name = name;
        q->shape = std::move(shape);
        q->value = FloatBuffer(q->numel(), false);
        q->grad = FloatBuffer(q->numel());
        LF_ASSERT(static_cast<int64_t>(v.size()) == q->numel());
        std::memcpy(q->value.data(), v.data(), v.size() * sizeof(float));
        params_.push_back(std::move(q));
    };
    if (ad_.cfg.type == PeftType::kPromptTuning) {
        add(kPromptEmbeddings, {ad_.cfg.num_virtual_tokens, ad_.cfg.token_dim}, ad_.prompt);
        return;
    }
    for (const LoraPair& lp : ad_.lora) {
        add(lora_a_name(lp.site), {lp.r, lp.site.in}, lp.a);
        add(lora_b_name(lp.site), {lp.site.out, lp.r}, lp.b);
    }
}

std::vector<Param*> PeftAdapter::params() {
    std::vector<Param*> out;
    for (auto& p : params_) out.push_back(p.get());
    return out;
}

int64_t PeftAdapter::n_trainable() const {
    int64_t n = 0;
    for (const auto& p : params_) n += p->numel();
    return n;
}

void PeftAdapter::set_training(bool on, uint64_t dropout_seed) {
    training_ = on;
    dropout_seed_ = dropout_seed;
}

void PeftAdapter::attach(TrainModel& m) {
    if (ad_.cfg.type == PeftType::kPromptTuning) {
        Param* prompt = params_[0].get();
        m.input_rows = [prompt](Tape& t, Var rows, int64_t B) { return prepend_rows(t, t.param(*prompt), rows, B); };
        return;
    }
    n_slots_ = m.arch().n_slots;
    site_of_slot_.assign(static_cast<size_t>((m.config().n_block() + 1) * n_slots_), -1);
    const int64_t E = m.config().ds.n_routed_experts;
    expert_sites_.clear();
    for (size_t i = 0; i < ad_.lora.size(); ++i) {
        const LoraSite& site = ad_.lora[i].site;
        const size_t idx = static_cast<size_t>((site.w.layer + 1) * n_slots_ + site.w.slot);
        if (site.expert >= 0) {
            std::vector<int>& per = expert_sites_[idx];
            per.resize(static_cast<size_t>(E), -1);
            per[static_cast<size_t>(site.expert)] = static_cast<int>(i);
        } else {
            site_of_slot_[idx] = static_cast<int>(i);
        }
    }
    const float scale = static_cast<float>(ad_.cfg.lora_scale());
    if (!expert_sites_.empty()) {
        m.expert_lora = [this, scale](Tape& t, Weight w) -> std::shared_ptr<const ExpertLora> {
            const size_t idx = static_cast<size_t>((w.layer + 1) * n_slots_ + w.slot);
            auto it = expert_sites_.find(idx);
            if (it == expert_sites_.end()) return nullptr;
            auto l = std::make_shared<ExpertLora>();
            l->scale = scale;
            l->dropout = training_ ? static_cast<float>(ad_.cfg.dropout) : 0.0f;
            l->seed = mix64(dropout_seed_ ^ (kGoldenGamma * static_cast<uint64_t>(idx + 1)));
            for (int i : it->second) {
                l->a.push_back(i < 0 ? nullptr : t.param(*params_[2 * static_cast<size_t>(i)]));
                l->b.push_back(i < 0 ? nullptr : t.param(*params_[2 * static_cast<size_t>(i) + 1]));
            }
            return l;
        };
    }
    m.after_linear = [this, scale](Tape& t, Weight w, Var x, Var y) -> Var {
        const size_t idx = static_cast<size_t>((w.layer + 1) * n_slots_ + w.slot);
        if (w.slot < 0 || idx >= site_of_slot_.size() || site_of_slot_[idx] < 0) return y;
        const int i = site_of_slot_[idx];
        const float p = training_ ? static_cast<float>(ad_.cfg.dropout) : 0.0f;
        const uint64_t seed = mix64(dropout_seed_ ^ (kGoldenGamma * static_cast<uint64_t>(idx + 1)));
        Var xd = dropout(t, x, p, seed);
        Var h = linear(t, xd, t.param(*params_[2 * i]));  // (N, r)
        // y += s·h·Bᵀ in place: the base product's backward never reads y, so no (N, out) copy.
        return linear_into(t, y, h, t.param(*params_[2 * i + 1]), scale);
    };
}

Adapter PeftAdapter::snapshot() const {
    Adapter out = ad_;
    out.path.clear();
    auto copy = [](const Param& p, std::vector<float>& v) { v.assign(p.value.data(), p.value.data() + p.numel()); };
    if (out.cfg.type == PeftType::kPromptTuning) {
        copy(*params_[0], out.prompt);
    } else {
        for (size_t i = 0; i < out.lora.size(); ++i) {
            copy(*params_[2 * i], out.lora[i].a);
            copy(*params_[2 * i + 1], out.lora[i].b);
        }
    }
    return out;
}

}  // namespace llmforge::train
