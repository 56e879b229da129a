#include "model/hf_config.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/tensor.h"
#include "io/byte_reader.h"
#include "model/arch/arch.h"

namespace llmforge {

using io_detail::printable;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxSize = int64_t{1} << 31;  // any size beyond this is a corrupt config

class ConfigReader {
public:
    ConfigReader(const json& j, const std::string& source) : j_(j), src_(source) {}

    const json* find(const char* key) const {
        auto it = j_.find(key);
        return it == j_.end() || it->is_null() ? nullptr : &*it;
    }
    [[noreturn]] void missing(const char* key) const {
        fail("%s: required key \"%s\" is missing (hint: is this a Hugging Face config.json of a "
             "supported architecture?)",
             src_.c_str(), key);
    }
    // A positive integer in [1, 2^31).
    int64_t size(const char* key) const {
        const json* v = find(key);
        if (v == nullptr) missing(key);
        return size_value(key, *v);
    }
    int64_t size_or(const char* key, int64_t dflt) const {
        const json* v = find(key);
        return v == nullptr ? dflt : size_value(key, *v);
    }
    double number(const char* key) const {
        const json* v = find(key);
        if (v == nullptr) missing(key);
        return number_value(key, *v);
    }
    double number_or(const char* key, double dflt) const {
        const json* v = find(key);
        return v == nullptr ? dflt : number_value(key, *v);
    }
    bool boolean_or(const char* key, bool dflt) const {
        const json* v = find(key);
        if (v == nullptr) return dflt;
        if (!v->is_boolean()) {
            fail("%s: \"%s\" is %s, expected true or false", src_.c_str(), key,
                 printable(v->dump(), 40).c_str());
        }
        return v->get<bool>();
    }
    std::string string_or(const char* key, const std::string& dflt) const {
        const json* v = find(key);
        if (v == nullptr) return dflt;
        if (!v->is_string()) {
            fail("%s: \"%s\" is %s, expected a string", src_.c_str(), key,
                 printable(v->dump(), 40).c_str());
        }
        return v->get<std::string>();
    }

private:
    int64_t size_value(const char* key, const json& v) const {
        // nlohmann parses non-negative integers as unsigned, negative ones as signed.
        if (!v.is_number_unsigned() || v.get<uint64_t>() < 1 ||
            v.get<uint64_t>() >= static_cast<uint64_t>(kMaxSize)) {
            fail("%s: \"%s\" is %s, expected a positive integer below 2^31", src_.c_str(), key,
                 printable(v.dump(), 40).c_str());
        }
        return static_cast<int64_t>(v.get<uint64_t>());
    }
    double number_value(const char* key, const json& v) const {
        if (!v.is_number() || !std::isfinite(v.get<double>())) {
            fail("%s: \"%s\" is %s, expected a number", src_.c_str(), key,
                 printable(v.dump(), 40).c_str());
        }
        return v.get<double>();
    }

    const json& j_;
    const std::string& src_;
};

void parse_rope_scaling(const json& rs, const ConfigReader& top, ModelConfig& c,
                        const std::string& src) {
    if (!rs.is_object()) {
        fail("%s: \"rope_scaling\" is %s, expected an object or null", src.c_str(),
             printable(rs.dump(), 40).c_str());
    }
    const std::string where = src + " rope_scaling";
    ConfigReader r(rs, where);
    std::string type = r.string_or("rope_type", "");
    if (type.empty()) type = r.string_or("type", "");
    if (type.empty()) {
        fail("%s: \"rope_scaling\" has neither \"rope_type\" nor \"type\" (expected linear, "
             "llama3 or yarn)",
             src.c_str());
    }
    auto positive = [&](const char* key, double v) {
        if (!(v > 0)) fail("%s: \"%s\" is %g, expected > 0", where.c_str(), key, v);
        return static_cast<float>(v);
    };
    if (type == "default") {
        c.rope_scaling = RopeScaling::kNone;
    } else if (type == "linear") {
        c.rope_scaling = RopeScaling::kLinear;
        c.rope_factor = positive("factor", r.number("factor"));
    } else if (type == "llama3") {
        c.rope_scaling = RopeScaling::kLlama3;
        c.rope_factor = positive("factor", r.number("factor"));
        c.rope_low_freq_factor = positive("low_freq_factor", r.number("low_freq_factor"));
        c.rope_high_freq_factor = positive("high_freq_factor", r.number("high_freq_factor"));
        c.rope_orig_ctx = r.size("original_max_position_embeddings");
        if (c.rope_low_freq_factor == c.rope_high_freq_factor) {
            fail("%s: low_freq_factor and high_freq_factor are both %g, expected them to differ",
                 where.c_str(), static_cast<double>(c.rope_low_freq_factor));
        }
    } else if (type == "yarn") {
        c.rope_scaling = RopeScaling::kYarn;
        c.rope_factor = positive("factor", r.number("factor"));
        c.rope_orig_ctx = r.size_or("original_max_position_embeddings",
                                    top.size("max_position_embeddings"));
        c.yarn_beta_fast = static_cast<float>(r.number_or("beta_fast", 32.0));
        c.yarn_beta_slow = static_cast<float>(r.number_or("beta_slow", 1.0));
        if (r.find("attention_factor") != nullptr) {
            c.yarn_attn_factor = positive("attention_factor", r.number("attention_factor"));
        }
    } else {
        fail("%s: rope_scaling type '%s' is not supported (supported: linear, llama3, yarn)",
             src.c_str(), printable(type).c_str());
    }
}

}  // namespace

// An architecture's own keys (model/arch/arch.h) read from the config.json.
class HfSource final : public ConfigSource {
public:
    explicit HfSource(const ConfigReader& r, const std::string& src) : r_(r), src_(src) {}
    bool is_gguf() const override { return false; }
    std::optional<int64_t> integer(const char* hf, const char*) const override {
        if (hf == nullptr || r_.find(hf) == nullptr) return std::nullopt;
        return r_.size(hf);
    }
    std::optional<bool> boolean(const char* hf, const char*) const override {
        if (hf == nullptr || r_.find(hf) == nullptr) return std::nullopt;
        return r_.boolean_or(hf, false);
    }
    std::optional<double> number(const char* hf, const char*) const override {
        const json* v = nested(hf);
        if (v == nullptr) return std::nullopt;
        if (!v->is_number() || !std::isfinite(v->get<double>())) {
            fail("%s: \"%s\" is %s, expected a number", src_.c_str(), hf, printable(v->dump(), 40).c_str());
        }
        return v->get<double>();
    }
    std::optional<std::string> string(const char* hf, const char*) const override {
        const json* v = nested(hf);
        if (v == nullptr) return std::nullopt;
        if (!v->is_string()) {
            fail("%s: \"%s\" is %s, expected a string", src_.c_str(), hf, printable(v->dump(), 40).c_str());
        }
        return v->get<std::string>();
    }
    std::optional<std::vector<int64_t>> integers(const char* hf, const char*) const override {
        const json* v = nested(hf);
        if (v == nullptr) return std::nullopt;
        std::vector<int64_t> out;
        if (v->is_array() && v->size() <= 64) {
            for (const json& e : *v) {
                if (!e.is_number_integer() || e.get<int64_t>() <= 0 || e.get<int64_t>() >= (int64_t{1} << 31)) break;
                out.push_back(e.get<int64_t>());
            }
        }
        if (out.empty() || out.size() != v->size()) {
            fail("%s: \"%s\" is %s, expected a list of 1 to 64 positive integers", src_.c_str(), hf,
                 printable(v->dump(), 40).c_str());
        }
        return out;
    }
    bool has_tensor(const std::string&) const override { return false; }
    const std::string& where() const override { return src_; }

private:
    // "a.b": key b of the object a (absent when a is not an object); null counts as absent.
    const json* nested(const char* hf) const {
        if (hf == nullptr) return nullptr;
        const std::string key(hf);
        const size_t dot = key.find('.');
        if (dot == std::string::npos) return r_.find(hf);
        const json* outer = r_.find(key.substr(0, dot).c_str());
        if (outer == nullptr || !outer->is_object()) return nullptr;
        auto it = outer->find(key.substr(dot + 1));
        return it == outer->end() || it->is_null() ? nullptr : &*it;
    }
    const ConfigReader& r_;
    const std::string& src_;
};

ModelConfig hf_config_parse(std::string_view text, const std::string& src) {
    json j;
    try {
        j = json::parse(text.begin(), text.end());
    } catch (const json::exception& e) {
        fail("%s: not valid JSON: %s", src.c_str(), printable(e.what(), 200).c_str());
    }
    if (!j.is_object()) fail("%s: expected a JSON object", src.c_str());
    const ConfigReader r(j, src);

    ModelConfig c;
    const std::string type = r.string_or("model_type", "");
    if (type.empty()) r.missing("model_type");
    const Arch* arch = find_arch_hf(type);
    if (arch == nullptr) {
        fail("%s: model_type '%s' is not supported (supported: %s)", src.c_str(), printable(type).c_str(),
             supported_archs().c_str());
    }
    c.arch = arch->name;
    c.name = r.string_or("_name_or_path", "");
    if (arch->encoder) {  // an encoder's keys are its own (model/arch/vit.cpp)
        arch->configure(c, HfSource(r, src));
        return c;
    }

    const std::string act = r.string_or("hidden_act", "silu");
    if (act != "silu") {
        fail("%s: \"hidden_act\" is '%s', expected 'silu' (the only activation these architectures use)",
             src.c_str(), printable(act).c_str());
    }
    if (r.boolean_or("mlp_bias", false)) {
        fail("%s: \"mlp_bias\" is true, which llmforge does not support (expected false)",
             src.c_str());
    }

    c.n_embd = r.size("hidden_size");
    c.n_ff = r.size("intermediate_size");
    c.n_layer = r.size("num_hidden_layers");
    c.n_head = r.size("num_attention_heads");
    c.n_head_kv = r.size_or("num_key_value_heads", c.n_head);
    c.n_vocab = r.size("vocab_size");
    c.n_ctx_train = r.size("max_position_embeddings");
    if (r.find("head_dim") != nullptr) {
        c.head_dim = r.size("head_dim");
    } else {
        if (c.n_embd % c.n_head != 0) {
            fail("%s: hidden_size %lld is not a multiple of num_attention_heads %lld, and there "
                 "is no head_dim (corrupt config?)",
                 src.c_str(), static_cast<long long>(c.n_embd), static_cast<long long>(c.n_head));
        }
        c.head_dim = c.n_embd / c.n_head;
    }
    if (c.n_head % c.n_head_kv != 0) {
        fail("%s: num_attention_heads %lld is not a multiple of num_key_value_heads %lld",
             src.c_str(), static_cast<long long>(c.n_head), static_cast<long long>(c.n_head_kv));
    }
    // Values may have their own head size (DeepSeek's key name).
    if (r.find("v_head_dim") != nullptr) c.head_dim_v = r.size("v_head_dim");
    if (c.head_dim % 2 != 0) {
        fail("%s: head_dim is %lld, expected an even number (RoPE rotates pairs)", src.c_str(),
             static_cast<long long>(c.head_dim));
    }
    const double eps = r.number("rms_norm_eps");
    if (!(eps > 0 && eps < 1)) fail("%s: \"rms_norm_eps\" is %g, expected in (0, 1)", src.c_str(), eps);
    c.rms_eps = static_cast<float>(eps);
    const double theta = r.number_or("rope_theta", 10000.0);
    if (!(theta > 1)) fail("%s: \"rope_theta\" is %g, expected > 1", src.c_str(), theta);
    c.rope_theta = static_cast<float>(theta);
    c.tied_embeddings = r.boolean_or("tie_word_embeddings", false);
    c.rope_interleaved = false;
    if (const json* rs = r.find("rope_scaling")) parse_rope_scaling(*rs, r, c, src);
    if (arch->configure != nullptr) arch->configure(c, HfSource(r, src));
    lsh_configure(c, HfSource(r, src));
    return c;
}

ModelConfig hf_config_read(const std::string& path) {
    std::error_code ec;
    fs::path p(path);
    if (fs::is_directory(p, ec)) p /= "config.json";
    if (!fs::exists(p, ec)) {
        fail("%s: not found (hint: pass a Hugging Face model folder containing config.json)",
             p.string().c_str());
    }
    return hf_config_read(RegularFile(p.string(), "a Hugging Face config.json"));
}

ModelConfig hf_config_read(const RegularFile& file) {
    const std::string& ps = file.path();
    const std::string text = file.read_all();
    if (text.empty()) {
        fail("%s: is empty (0 bytes), expected a JSON object with the model's hyperparameters "
             "(hint: the download was cut short? fetch config.json again)",
             ps.c_str());
    }
    ModelConfig c = hf_config_parse(text, ps);
    std::error_code ec;
    if (c.name.empty()) c.name = fs::absolute(fs::path(ps), ec).parent_path().filename().string();
    return c;
}

namespace {

// The arch's own keys (its ConfigSink) and the LSH settings into j, then the text.
std::string hf_config_write_keys(json& j, const Arch& arch, const ModelConfig& c) {
    if (!c.name.empty()) j["_name_or_path"] = c.name;
    struct Sink final : ConfigSink {
        json& j;
        explicit Sink(json& jj) : j(jj) {}
        void integer(const char* hf, const char*, std::optional<int64_t> v) override {
            if (hf != nullptr) j[hf] = v ? json(*v) : json(nullptr);
        }
        void boolean(const char* hf, const char*, bool v) override {
            if (hf != nullptr) j[hf] = v;
        }
        void number(const char* hf, const char*, double v) override { at(hf) = v; }
        void integers(const char* hf, const char*, const std::vector<int64_t>& v) override { at(hf) = v; }
        void string(const char* hf, const char*, const std::string& v) override {
            if (hf != nullptr && std::strcmp(hf, "architectures") == 0) {  // the class: a one-entry list
                j[hf] = json::array({v});
            } else {
                at(hf) = v;
            }
        }
        // "a.b" writes b inside the object a.
        json& at(const char* hf) {
            static json ignored;
            if (hf == nullptr) return ignored = nullptr;
            const std::string key(hf);
            const size_t dot = key.find('.');
            if (dot == std::string::npos) return j[key];
            return j[key.substr(0, dot)][key.substr(dot + 1)];
        }
    } sink(j);
    if (arch.write_keys != nullptr) arch.write_keys(c, sink);
    lsh_write_keys(c, sink);
    return j.dump(2) + "\n";
}

}  // namespace

std::string hf_config_write(const ModelConfig& c) {
    json j;
    const Arch& arch = arch_of(c.arch, "config.json writer");
    j["architectures"] = json::array({arch.hf_class});
    j["model_type"] = arch.hf_types.front();
    if (arch.encoder) return hf_config_write_keys(j, arch, c);
    j["hidden_size"] = c.n_embd;
    j["intermediate_size"] = c.n_ff;
    j["num_hidden_layers"] = c.n_layer;
    j["num_attention_heads"] = c.n_head;
    j["num_key_value_heads"] = c.n_head_kv;
    if (c.head_dim != c.n_embd / c.n_head) j["head_dim"] = c.head_dim;
    if (c.v_dim() != c.head_dim) j["v_head_dim"] = c.v_dim();
    j["vocab_size"] = c.n_vocab;
    j["max_position_embeddings"] = c.n_ctx_train;
    j["rms_norm_eps"] = c.rms_eps;
    j["rope_theta"] = c.rope_theta;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["hidden_act"] = "silu";
    j["torch_dtype"] = "float32";
    switch (c.rope_scaling) {
        case RopeScaling::kNone: break;
        case RopeScaling::kLinear: j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", c.rope_factor}}; break;
        case RopeScaling::kLlama3:
            j["rope_scaling"] = {{"rope_type", "llama3"},
                                 {"factor", c.rope_factor},
                                 {"low_freq_factor", c.rope_low_freq_factor},
                                 {"high_freq_factor", c.rope_high_freq_factor},
                                 {"original_max_position_embeddings", c.rope_orig_ctx}};
            break;
        case RopeScaling::kYarn:
            j["rope_scaling"] = {{"rope_type", "yarn"},
                                 {"factor", c.rope_factor},
                                 {"beta_fast", c.yarn_beta_fast},
                                 {"beta_slow", c.yarn_beta_slow},
                                 {"original_max_position_embeddings", c.rope_orig_ctx}};
            if (c.yarn_attn_factor != 1.0f && c.ds.kv_lora_rank == 0) {
                j["rope_scaling"]["attention_factor"] = c.yarn_attn_factor;
            }
            break;
    }
    return hf_config_write_keys(j, arch, c);
}

}  // namespace llmforge
