#include "model/adapter.h"

#include <cmath>
#include <filesystem>
#include <algorithm>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/cpu/kernels.h"

namespace llmforge {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kConfigFile = "adapter_config.json";
constexpr const char* kWeightsFile = "adapter_model.safetensors";
constexpr const char* kPrefix = "base_model.model.";

const char* peft_type_name(PeftType t) { return t == PeftType::kLora ? "LORA" : "PROMPT_TUNING"; }

std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const std::string& x : v) s += (s.empty() ? "" : ", ") + x;
    return s;
}

// A JSON value that must be null, false, absent or empty for features this engine does not run.
void refuse_feature(const json& j, const char* key, const std::string& where, const char* what) {
    if (!j.contains(key)) return;
    const json& v = j.at(key);
    const bool off = v.is_null() || (v.is_boolean() && !v.get<bool>()) || (v.is_object() && v.empty()) ||
                     (v.is_array() && v.empty()) || (v.is_string() && (v == "none" || v.get<std::string>().empty()));
    if (!off)
        fail("%s: %s = %s: %s is not supported (hint: train the adapter without it, or merge it into the base with "
             "PEFT's merge_and_unload)", where.c_str(), key, v.dump().c_str(), what);
}

template <typename T>
T need(const json& j, const char* key, const std::string& where) {
    if (!j.contains(key) || j.at(key).is_null())
        fail("%s: key '%s' is missing (hint: is this a PEFT adapter_config.json?)", where.c_str(), key);
    try {
        return j.at(key).get<T>();
    } catch (const json::exception&) {
        fail("%s: key '%s' has the wrong type (found %s)", where.c_str(), key, j.at(key).dump().c_str());
    }
}

// Every value of an adapter tensor as f32.
std::vector<float> to_f32(const Tensor& t) {
    std::vector<float> out(static_cast<size_t>(t.numel()));
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(t.dtype())];
    LF_ASSERT(deq != nullptr);
    deq(t.data(), out.data(), t.numel());
    return out;
}

}  // namespace

double AdapterConfig::lora_scale() const {
    return use_rslora ? alpha / std::sqrt(static_cast<double>(r)) : alpha / static_cast<double>(r);
}

json AdapterConfig::to_json() const {
    json j;
    j["peft_type"] = peft_type_name(type);
    j["task_type"] = "CAUSAL_LM";
    j["base_model_name_or_path"] = base_model;
    j["inference_mode"] = true;
    j["revision"] = nullptr;
    j["auto_mapping"] = nullptr;
    if (type == PeftType::kLora) {
        j["r"] = r;
        // PEFT writes an integer alpha as an integer.
        if (alpha == std::floor(alpha) && std::abs(alpha) < 1e15) j["lora_alpha"] = static_cast<int64_t>(alpha);
        else j["lora_alpha"] = alpha;
        j["layer_replication"] = nullptr;
        j["loftq_config"] = json::object();
        j["megatron_config"] = nullptr;
        j["megatron_core"] = "megatron.core";
        j["lora_dropout"] = dropout;
        j["target_modules"] = target_modules;
        j["use_rslora"] = use_rslora;
        j["bias"] = "none";
        j["fan_in_fan_out"] = false;
        j["use_dora"] = false;
        j["init_lora_weights"] = true;
        j["modules_to_save"] = nullptr;
        j["layers_to_transform"] = nullptr;
        j["layers_pattern"] = nullptr;
        j["rank_pattern"] = json::object();
        j["alpha_pattern"] = json::object();
    } else {
        j["num_virtual_tokens"] = num_virtual_tokens;
        j["token_dim"] = token_dim;
        j["num_transformer_submodules"] = 1;
        j["num_attention_heads"] = num_attention_heads;
        j["num_layers"] = num_layers;
        j["prompt_tuning_init"] = init_text.empty() ? "RANDOM" : "TEXT";
        j["prompt_tuning_init_text"] = init_text.empty() ? json(nullptr) : json(init_text);
        j["tokenizer_name_or_path"] = tokenizer.empty() ? json(nullptr) : json(tokenizer);
        j["tokenizer_kwargs"] = nullptr;
    }
    return j;
}

AdapterConfig AdapterConfig::from_json(const json& j, const std::string& where) {
    if (!j.is_object()) fail("%s: expected a JSON object, found %s", where.c_str(), j.type_name());
    AdapterConfig c;
    const std::string type = need<std::string>(j, "peft_type", where);
    if (j.contains("task_type") && !j["task_type"].is_null() && j["task_type"] != "CAUSAL_LM")
        fail("%s: task_type is %s, expected \"CAUSAL_LM\" (a decoder's language-model adapter)", where.c_str(),
             j["task_type"].dump().c_str());
    if (j.contains("base_model_name_or_path") && j["base_model_name_or_path"].is_string())
        c.base_model = j["base_model_name_or_path"].get<std::string>();
    if (type == "LORA") {
        c.type = PeftType::kLora;
        c.r = need<int64_t>(j, "r", where);
        if (c.r <= 0) fail("%s: r = %lld, expected a positive rank", where.c_str(), (long long)c.r);
        c.alpha = j.contains("lora_alpha") && !j["lora_alpha"].is_null() ? need<double>(j, "lora_alpha", where) : 8.0;
        c.dropout = j.contains("lora_dropout") && !j["lora_dropout"].is_null() ? need<double>(j, "lora_dropout", where) : 0.0;
        c.use_rslora = j.value("use_rslora", false);
        if (j.contains("target_modules") && j["target_modules"].is_string()) {
            c.target_modules = {j["target_modules"].get<std::string>()};
        } else if (j.contains("target_modules") && j["target_modules"].is_array()) {
            c.target_modules = need<std::vector<std::string>>(j, "target_modules", where);
        }
        refuse_feature(j, "use_dora", where, "DoRA");
        refuse_feature(j, "bias", where, "training biases");
        refuse_feature(j, "fan_in_fan_out", where, "Conv1D-style (fan_in_fan_out) weights");
        refuse_feature(j, "modules_to_save", where, "fully trained extra modules");
        refuse_feature(j, "rank_pattern", where, "a per-module rank");
        refuse_feature(j, "alpha_pattern", where, "a per-module alpha");
        refuse_feature(j, "layer_replication", where, "layer replication");
    } else if (type == "PROMPT_TUNING") {
        c.type = PeftType::kPromptTuning;
        c.num_virtual_tokens = need<int64_t>(j, "num_virtual_tokens", where);
        c.token_dim = need<int64_t>(j, "token_dim", where);
        if (c.num_virtual_tokens <= 0 || c.token_dim <= 0)
            fail("%s: num_virtual_tokens = %lld and token_dim = %lld, expected both positive", where.c_str(),
                 (long long)c.num_virtual_tokens, (long long)c.token_dim);
        if (j.value("num_transformer_submodules", 1) != 1)
            fail("%s: num_transformer_submodules = %s, expected 1 (a decoder-only model)", where.c_str(),
                 j["num_transformer_submodules"].dump().c_str());
        c.num_attention_heads = j.value("num_attention_heads", int64_t{0});
        c.num_layers = j.value("num_layers", int64_t{0});
        if (j.contains("prompt_tuning_init_text") && j["prompt_tuning_init_text"].is_string())
            c.init_text = j["prompt_tuning_init_text"].get<std::string>();
        if (j.contains("tokenizer_name_or_path") && j["tokenizer_name_or_path"].is_string())
            c.tokenizer = j["tokenizer_name_or_path"].get<std::string>();
    } else {
        fail("%s: peft_type is \"%s\", expected \"LORA\" or \"PROMPT_TUNING\" (the adapter kinds llmforge runs)",
             where.c_str(), type.c_str());
    }
    return c;
}

std::vector<std::string> split_targets(const std::string& list) {
    std::vector<std::string> out;
    size_t i = 0;
    while (i <= list.size()) {
        size_t e = list.find(',', i);
        if (e == std::string::npos) e = list.size();
        std::string t = list.substr(i, e - i);
        const size_t b = t.find_first_not_of(" \t"), f = t.find_last_not_of(" \t");
        if (b != std::string::npos) out.push_back(t.substr(b, f - b + 1));
        i = e + 1;
    }
    return out;
}

std::vector<LoraSite> linear_modules(const Arch& a, const ModelConfig& c) {
    std::vector<LoraSite> out;
    for (const NamedSpec& ns : tensor_list(a, c, false)) {
        const TensorSpec& s = *ns.spec;
        if (!s.per_layer || s.use != TensorUse::kMatrix || (ns.shape.size() != 2 && ns.shape.size() != 3)) continue;
        // A MoE router (DeepSeek's MoEGate holds a bare weight, not an nn.Linear): PEFT cannot target it.
        if (std::string(s.gguf) == "ffn_gate_inp.weight") continue;
        const std::string hf = s.hf_name(ns.layer);
        const std::string suffix = ".weight";
        if (hf.size() <= suffix.size() || hf.compare(hf.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
        // A stack of routed experts is one nn.Linear per expert in the HF model ("experts.*.").
        const bool stacked = ns.shape.size() == 3;
        if (stacked && hf.find('*') == std::string::npos) continue;
        const int64_t n = stacked ? ns.shape[0] : 1;
        for (int64_t e = 0; e < n; ++e) {
            LoraSite site;
            site.w = Weight{ns.layer, s.slot};
            site.expert = stacked ? e : -1;
            const std::string name = stacked ? hf_expert_name(hf, e) : hf;
            site.module = name.substr(0, name.size() - suffix.size());
            site.short_name = site.module.substr(site.module.rfind('.') + 1);
            site.out = ns.shape[ns.shape.size() - 2];
            site.in = ns.shape.back();
            site.rope_rows = s.rope_rows;
            out.push_back(std::move(site));
        }
    }
    return out;
}

std::vector<LoraSite> lora_sites(const Arch& a, const ModelConfig& c, const std::vector<std::string>& targets,
                                 const std::string& where) {
    const std::vector<LoraSite> all = linear_modules(a, c);
    std::vector<std::string> known;
    for (const LoraSite& s : all)
        if (std::find(known.begin(), known.end(), s.short_name) == known.end()) known.push_back(s.short_name);
    if (targets.empty())
        fail("%s: no target modules (hint: e.g. q_proj,v_proj, or all-linear; this %s model has %s)", where.c_str(),
             a.name.c_str(), join(known).c_str());
    auto ends_with = [](const std::string& s, const std::string& t) {
        return s == t || (s.size() > t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0 &&
                          s[s.size() - t.size() - 1] == '.');
    };
    std::vector<bool> picked(all.size(), false);
    for (const std::string& t : targets) {
        bool any = false;
        for (size_t i = 0; i < all.size(); ++i) {
            if (t == "all-linear" || ends_with(all[i].module, t)) {
                picked[i] = true;
                any = true;
            }
        }
        if (!any)
            fail("%s: target module '%s' matches no linear module of this %s model (expected some of: %s, or "
                 "all-linear)", where.c_str(), t.c_str(), a.name.c_str(), join(known).c_str());
    }
    std::vector<LoraSite> out;
    for (size_t i = 0; i < all.size(); ++i)
        if (picked[i]) out.push_back(all[i]);
    return out;
}

std::string lora_a_name(const LoraSite& s) { return kPrefix + s.module + ".lora_A.weight"; }
std::string lora_b_name(const LoraSite& s) { return kPrefix + s.module + ".lora_B.weight"; }

bool is_adapter_folder(const std::string& dir) {
    std::error_code ec;
    return fs::is_regular_file(fs::path(dir) / kConfigFile, ec);
}

Adapter read_adapter(const std::string& dir, const Arch& a, const ModelConfig& c) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec))
        fail_kind(ErrorKind::kNotFound, "adapter %s: not a folder (hint: --adapter takes a PEFT adapter folder with "
                                        "adapter_config.json and adapter_model.safetensors)", dir.c_str());
    const std::string cfg_path = (fs::path(dir) / kConfigFile).string();
    const std::string st_path = (fs::path(dir) / kWeightsFile).string();
    if (!fs::exists(cfg_path, ec))
        fail_kind(ErrorKind::kNotFound, "adapter %s: no %s (hint: is this a PEFT adapter folder?)", dir.c_str(),
                  kConfigFile);
    if (!fs::exists(st_path, ec))
        fail_kind(ErrorKind::kNotFound, "adapter %s: no %s (hint: PEFT writes it with save_pretrained(..., "
                                        "safe_serialization=True); adapter_model.bin is not read)", dir.c_str(), kWeightsFile);
    json j;
    try {
        j = json::parse(read_file(cfg_path, "adapter config"));
    } catch (const json::exception& e) {
        fail("%s: not valid JSON (%s)", cfg_path.c_str(), e.what());
    }
    Adapter ad;
    ad.path = dir;
    ad.cfg = AdapterConfig::from_json(j, cfg_path);
    SafetensorsFile st(st_path);
    const std::string hint = ad.cfg.base_model.empty()
                                 ? "this adapter was made for another base model"
                                 : "this adapter was made for another base model (" + ad.cfg.base_model + ")";
    if (ad.cfg.type == PeftType::kPromptTuning) {
        if (ad.cfg.token_dim != c.n_embd)
            fail("adapter %s: token_dim is %lld but the base model's embeddings have %lld values (hint: %s)",
                 dir.c_str(), (long long)ad.cfg.token_dim, (long long)c.n_embd, hint.c_str());
        const SafetensorsTensorInfo* info = st.find_tensor(kPromptEmbeddings);
        if (info == nullptr) fail("%s: no tensor '%s' (expected a PEFT prompt-tuning adapter)", st_path.c_str(), kPromptEmbeddings);
        const std::vector<int64_t> want = {ad.cfg.num_virtual_tokens, ad.cfg.token_dim};
        if (info->shape != want)
            fail("%s: tensor '%s' has shape %s, expected %s (num_virtual_tokens x token_dim from %s)", st_path.c_str(),
                 kPromptEmbeddings, shape_to_string(info->shape).c_str(), shape_to_string(want).c_str(), kConfigFile);
        ad.prompt = to_f32(st.tensor(*info));
        return ad;
    }
    // LoRA: every tensor must be one of a base module's pair.
    std::map<std::string, const LoraSite*> by_module;
    const std::vector<LoraSite> all = linear_modules(a, c);
    for (const LoraSite& s : all) by_module[s.module] = &s;
    std::map<std::string, std::pair<const SafetensorsTensorInfo*, const SafetensorsTensorInfo*>> pairs;
    const SafetensorsTensorInfo* unknown = nullptr;
    std::string unknown_module;
    for (const SafetensorsTensorInfo& info : st.tensor_infos()) {
        const std::string& n = info.name;
        const std::string pa = ".lora_A.weight", pb = ".lora_B.weight";
        const bool is_a = n.size() > pa.size() && n.compare(n.size() - pa.size(), pa.size(), pa) == 0;
        const bool is_b = n.size() > pb.size() && n.compare(n.size() - pb.size(), pb.size(), pb) == 0;
        if (n.rfind(kPrefix, 0) != 0 || (!is_a && !is_b))
            fail("%s: tensor '%s' is not a LoRA matrix (expected base_model.model.<module>.lora_A.weight / .lora_B.weight; "
                 "hint: DoRA magnitudes, embeddings and modules_to_save are not supported)", st_path.c_str(), n.c_str());
        const std::string module = n.substr(std::string(kPrefix).size(), n.size() - std::string(kPrefix).size() - pa.size());
        if (!by_module.count(module)) {
            // Reported after the shape checks: a shape names both sides, which says more.
            if (unknown == nullptr) unknown = &info, unknown_module = module;
            continue;
        }
        (is_a ? pairs[module].first : pairs[module].second) = &info;
        if (!info.loadable)
            fail("%s: tensor '%s' has dtype %s, expected F32, F16 or BF16", st_path.c_str(), n.c_str(), info.dtype_name.c_str());
    }
    if (pairs.empty() && unknown == nullptr) fail("%s: holds no LoRA matrices", st_path.c_str());
    for (const LoraSite& s : all) {
        auto it = pairs.find(s.module);
        if (it == pairs.end()) continue;
        const auto [ia, ib] = it->second;
        if (ia == nullptr || ib == nullptr)
            fail("%s: module '%s' has %s but no %s", st_path.c_str(), s.module.c_str(), ia ? "lora_A" : "lora_B",
                 ia ? "lora_B" : "lora_A");
        const int64_t r = ia->shape.size() == 2 ? ia->shape[0] : -1;
        if (ia->shape.size() != 2 || ia->shape[1] != s.in || r <= 0)
            fail("adapter %s: tensor '%s' has shape %s but the base's %s takes %lld inputs (expected %lldx%lld; hint: %s)",
                 dir.c_str(), ia->name.c_str(), shape_to_string(ia->shape).c_str(), s.module.c_str(), (long long)s.in,
                 (long long)ad.cfg.r, (long long)s.in, hint.c_str());
        if (ib->shape != std::vector<int64_t>{s.out, r})
            fail("adapter %s: tensor '%s' has shape %s but the base's %s has %lld outputs (expected %lldx%lld; hint: %s)",
                 dir.c_str(), ib->name.c_str(), shape_to_string(ib->shape).c_str(), s.module.c_str(), (long long)s.out,
                 (long long)s.out, (long long)r, hint.c_str());
        if (r != ad.cfg.r)
            fail("adapter %s: tensor '%s' has rank %lld but adapter_config.json says r = %lld (hint: per-module ranks "
                 "(rank_pattern) are not supported)", dir.c_str(), ia->name.c_str(), (long long)r, (long long)ad.cfg.r);
        LoraPair p;
        p.site = s;
        p.r = r;
        p.a = to_f32(st.tensor(*ia));
        p.b = to_f32(st.tensor(*ib));
        ad.lora.push_back(std::move(p));
    }
    if (unknown != nullptr)
        fail("adapter %s: tensor '%s' names module '%s', which this %s base does not have (%lld layers; hint: %s)",
             dir.c_str(), unknown->name.c_str(), unknown_module.c_str(), a.name.c_str(), (long long)c.n_layer, hint.c_str());
    return ad;
}

void write_adapter(const std::string& dir, const Adapter& ad) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("adapter %s: cannot create the folder (%s)", dir.c_str(), ec.message().c_str());
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    if (ad.cfg.type == PeftType::kPromptTuning) {
        LF_ASSERT(static_cast<int64_t>(ad.prompt.size()) == ad.cfg.num_virtual_tokens * ad.cfg.token_dim);
        w.add_tensor(kPromptEmbeddings, DType::F32, {ad.cfg.num_virtual_tokens, ad.cfg.token_dim}, ad.prompt.data(),
                     ad.prompt.size() * sizeof(float));
    } else {
        for (const LoraPair& p : ad.lora) {
            w.add_tensor(lora_a_name(p.site), DType::F32, {p.r, p.site.in}, p.a.data(), p.a.size() * sizeof(float));
            w.add_tensor(lora_b_name(p.site), DType::F32, {p.site.out, p.r}, p.b.data(), p.b.size() * sizeof(float));
        }
    }
    w.write((fs::path(dir) / kWeightsFile).string());
    write_file_atomic((fs::path(dir) / kConfigFile).string(), ad.cfg.to_json().dump(2) + "\n");
}

namespace {

// B (out, r) with Q/K rows moved to the interleaved RoPE order when the base uses it.
std::vector<float> b_for_base(const LoraPair& p, bool base_interleaved, int64_t head_dim) {
    if (!(p.site.rope_rows && base_interleaved)) return p.b;
    std::vector<float> out(p.b.size());
    permute_rope_rows(p.b.data(), out.data(), p.site.out, p.r, head_dim, true);
    return out;
}

}  // namespace

void add_lora(LowRankDelta& d, const Adapter& ad, double user_scale, const ModelConfig& base) {
    LF_ASSERT(ad.cfg.type == PeftType::kLora);
    const float scale = static_cast<float>(ad.cfg.lora_scale() * user_scale);
    for (const LoraPair& p : ad.lora) {
        const std::vector<float> b = b_for_base(p, base.rope_interleaved, base.head_dim);
        if (p.site.expert >= 0) {
            d.add_expert(p.site.w, p.site.expert, p.r, p.site.in, p.site.out, p.a, b, scale);
        } else {
            d.add(p.site.w, p.r, p.site.in, p.site.out, p.a, b, scale);
        }
    }
}

void merge_lora(const LoraPair& p, double scale, bool base_rope_interleaved, int64_t head_dim, float* w) {
    const std::vector<float> b = b_for_base(p, base_rope_interleaved, head_dim);
    const int64_t in = p.site.in, r = p.r;
    // In double per element: the merged weight is W + s·Σ_k B[o,k]·A[k,i], rounded once.
    for (int64_t o = 0; o < p.site.out; ++o) {
        for (int64_t i = 0; i < in; ++i) {
            double s = 0;
            for (int64_t k = 0; k < r; ++k) s += static_cast<double>(b[o * r + k]) * p.a[k * in + i];
            w[o * in + i] = static_cast<float>(w[o * in + i] + scale * s);
        }
    }
}

}  // namespace llmforge
