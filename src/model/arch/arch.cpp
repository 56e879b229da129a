#include "model/arch/arch.h"

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/random.h"

namespace llmforge {

namespace {

// A per-layer name's pattern: the table's name when it holds "{l}", else prefix + name.
std::string layer_pattern(const char* name, const char* default_prefix) {
    const std::string n(name);
    return n.find("{l}") != std::string::npos ? n : default_prefix + n;
}

std::string fill_layer(const std::string& pattern, int64_t layer) {
    const size_t at = pattern.find("{l}");
    return pattern.substr(0, at) + std::to_string(layer) + pattern.substr(at + 3);
}

}  // namespace

std::string TensorSpec::gguf_name(int64_t layer) const {
    return per_layer ? fill_layer(layer_pattern(gguf, "blk.{l}."), layer) : std::string(gguf);
}

std::string TensorSpec::hf_name(int64_t layer) const {
    if (hf == nullptr || hf[0] == '\0') return "";
    return per_layer ? fill_layer(layer_pattern(hf, "model.layers.{l}."), layer) : std::string(hf);
}

Act run_decoder(Ops& o, const Arch& a, const ModelConfig& c, Act* last_hidden) {
    Act h = a.embed(o, c);
    o.observe("embed", h);
    for (int64_t l = 0; l < c.n_layer; ++l) {
        h = o.run_layer(l, h, [&a, &c, l](Ops& lo, Act x) { return a.layer(lo, c, l, x); });
        if (o.observing()) o.observe("layers." + std::to_string(l) + ".out", h);
    }
    if (last_hidden != nullptr) *last_hidden = h;
    return a.head(o, c, h);
}

Act run_encoder(Ops& o, const Arch& a, const ModelConfig& c, Act* pooled) {
    LF_ASSERT(a.encoder);
    const bool project = c.enc.projector != Projector::kNone;
    if (project && a.project == nullptr) {
        fail("architecture '%s' has no projector into a decoder (expected projector none; the LLaVA projector is "
             "there for vit, clip_vision and siglip_vision)", a.name.c_str());
    }
    const int64_t n_run = project ? c.enc.feature_depth(c.n_layer) : c.n_layer;
    LF_ASSERT(n_run >= 0 && n_run <= c.n_layer);
    Act h = a.embed(o, c);
    o.observe("embed", h);
    for (int64_t l = 0; l < n_run; ++l) {
        h = o.run_layer(l, h, [&a, &c, l](Ops& lo, Act x) { return a.layer(lo, c, l, x); });
        if (o.observing()) o.observe("layers." + std::to_string(l) + ".out", h);
    }
    if (project) {
        if (pooled != nullptr) *pooled = Act{};
        return a.project(o, c, h);
    }
    Act last = a.head(o, c, h);
    if (pooled != nullptr) *pooled = a.pool != nullptr ? a.pool(o, c, last) : Act{};
    return last;
}

const TensorSpec* Arch::find_slot(int slot) const {
    for (const TensorSpec& t : tensors)
        if (t.slot == slot) return &t;
    return nullptr;
}

std::vector<NamedSpec> tensor_list(const Arch& a, const ModelConfig& c, bool include_optional) {
    std::vector<NamedSpec> out;
    auto add = [&](const TensorSpec& t, int64_t l) {
        if (!a.present(t, c, l) || (t.optional && !include_optional)) return;
        out.push_back({t.gguf_name(l), t.shape(c, l), &t, t.per_layer ? l : -1});
    };
    for (const TensorSpec& t : a.tensors)
        if (!t.per_layer) add(t, -1);
    for (int64_t l = 0; l < c.n_block(); ++l)
        for (const TensorSpec& t : a.tensors)
            if (t.per_layer) add(t, l);
    return out;
}

namespace {

// `name` matches `pattern` whose "{l}" stands for a decimal layer number, put in *layer.
bool match_layer(const std::string& name, const std::string& pattern, int64_t* layer) {
    const size_t at = pattern.find("{l}");
    LF_ASSERT(at != std::string::npos);
    const size_t post = pattern.size() - at - 3;
    if (name.size() <= at + post || name.compare(0, at, pattern, 0, at) != 0 ||
        name.compare(name.size() - post, post, pattern, at + 3, post) != 0) {
        return false;
    }
    const size_t digits = name.size() - at - post;
    if (digits > 6) return false;
    int64_t v = 0;
    for (size_t i = at; i < at + digits; ++i) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (name[i] - '0');
    }
    *layer = v;
    return true;
}

}  // namespace

namespace {

// `rest` matches `pattern` whose one '*' stands for a decimal index (an expert's), put in *index.
bool match_indexed(const std::string& rest, const char* pattern, int64_t* index) {
    const char* star = std::strchr(pattern, '*');
    if (star == nullptr) return false;
    const size_t pre = static_cast<size_t>(star - pattern), post = std::strlen(star + 1);
    if (rest.size() <= pre + post || rest.compare(0, pre, pattern, pre) != 0 ||
        rest.compare(rest.size() - post, post, star + 1) != 0) {
        return false;
    }
    const std::string digits = rest.substr(pre, rest.size() - pre - post);
    if (digits.empty() || digits.size() > 6) return false;
    int64_t v = 0;
    for (char ch : digits) {
        if (ch < '0' || ch > '9') return false;
        v = v * 10 + (ch - '0');
    }
    *index = v;
    return true;
}

}  // namespace

std::string hf_to_gguf_name(const Arch& a, const std::string& file_name, int64_t* expert, const ModelConfig* c) {
    if (expert != nullptr) *expert = -1;
    const std::string n = a.hf_rename != nullptr && c != nullptr ? a.hf_rename(*c, file_name, false) : file_name;
    for (const TensorSpec& t : a.tensors) {
        if (t.hf == nullptr || t.hf[0] == '\0') continue;
        if (!t.per_layer) {
            if (n == t.hf) return t.gguf_name(-1);
            continue;
        }
        const std::string pattern = layer_pattern(t.hf, "model.layers.{l}.");
        int64_t layer = -1;
        if (pattern.find('*') == std::string::npos) {
            if (match_layer(n, pattern, &layer)) return t.gguf_name(layer);
            continue;
        }
        // Per-expert names: "<prefix><layer>.<rest with * for the expert>".
        const size_t at = pattern.find("{l}");
        const size_t dot = n.find('.', at);
        int64_t e = -1;
        if (dot == std::string::npos || !match_layer(n.substr(0, dot + 1), pattern.substr(0, at + 4), &layer) ||
            !match_indexed(n.substr(dot + 1), pattern.c_str() + at + 4, &e)) {
            continue;
        }
        if (expert == nullptr) return "";  // a caller that cannot stack experts
        *expert = e;
        return t.gguf_name(layer);
    }
    return "";
}

std::string hf_expert_name(const std::string& pattern, int64_t expert) {
    const size_t star = pattern.find('*');
    LF_ASSERT(star != std::string::npos);
    return pattern.substr(0, star) + std::to_string(expert) + pattern.substr(star + 1);
}

std::string gguf_to_hf_name(const Arch& a, const std::string& n, const ModelConfig* c) {
    auto out = [&](const std::string& hf) {
        return a.hf_rename != nullptr && c != nullptr && !hf.empty() ? a.hf_rename(*c, hf, true) : hf;
    };
    for (const TensorSpec& t : a.tensors) {
        if (!t.per_layer) {
            if (n == t.gguf) return out(t.hf_name(-1));
            continue;
        }
        int64_t layer = -1;
        if (match_layer(n, layer_pattern(t.gguf, "blk.{l}."), &layer)) return out(t.hf_name(layer));
    }
    return "";
}

int64_t rope_row_source(int64_t r, int64_t D, bool to_interleaved) {
    // Interleaved row h·D + 2i + j  <->  rotate-half row h·D + j·D/2 + i.
    const int64_t h = r / D, w = r % D;
    if (to_interleaved) return h * D + (w % 2) * (D / 2) + w / 2;
    const int64_t j = w / (D / 2), i = w % (D / 2);
    return h * D + 2 * i + j;
}

void permute_rope_rows(const float* src, float* dst, int64_t rows, int64_t cols, int64_t D,
                       bool to_interleaved) {
    LF_ASSERT(D % 2 == 0 && rows % D == 0 && src != dst);
    for (int64_t r = 0; r < rows; ++r) {
        std::memcpy(dst + r * cols, src + rope_row_source(r, D, to_interleaved) * cols,
                    static_cast<size_t>(cols) * sizeof(float));
    }
}

void init_tensor(const TensorSpec& spec, const ModelConfig& c, const std::string& name,
                 const std::vector<int64_t>& shape, uint64_t seed, int64_t row, float* out) {
    const int64_t cols = shape.back();
    switch (spec.init) {
        case Init::kOnes:
            for (int64_t i = 0; i < cols; ++i) out[i] = 1.0f;
            return;
        case Init::kZeros:
            for (int64_t i = 0; i < cols; ++i) out[i] = 0.0f;
            return;
        case Init::kNormal:
        case Init::kResidualOut: break;
    }
    const double sd = spec.init == Init::kNormal ? 0.02 : 0.02 / std::sqrt(2.0 * std::max<int64_t>(c.n_layer, 1));
    uint64_t s = name_seed(name, seed) + static_cast<uint64_t>(row) * 0xD1B54A32D192ED03ull;  // every row its own stream
    for (int64_t i = 0; i < cols; i += 2) {  // Box-Muller pairs
        const double u1 = (static_cast<double>(splitmix64(s) >> 11) + 1.0) * 0x1.0p-53;  // (0, 1]
        const double u2 = uniform53(splitmix64(s));
        const double m = std::sqrt(-2.0 * std::log(u1));
        out[i] = static_cast<float>(sd * m * std::cos(2 * M_PI * u2));
        if (i + 1 < cols) out[i + 1] = static_cast<float>(sd * m * std::sin(2 * M_PI * u2));
    }
}

}  // namespace llmforge
