// llama.cpp's mmproj GGUF <-> a clip_vision tower with a projector (model/mmproj.h).
#include "model/mmproj.h"

#include <cmath>
#include <cstring>
#include <filesystem>

#include "core/dtype.h"
#include "core/error.h"
#include "io/byte_reader.h"
#include "kernels/cpu/kernels.h"
#include "model/arch/arch.h"

namespace llmforge {

namespace fs = std::filesystem;
using io_detail::printable;

namespace {

constexpr const char* kHint = "hint: llama.cpp's convert_image_encoder_to_gguf.py --llava-projector writes it";

// The converter's names for CLIP's fc1 / fc2 are ffn_down / ffn_up, the table's ffn_up / ffn_down:
// the one rename between a file's tensor names and the table's (both directions).
std::string swap_ffn(const std::string& name) {
    if (name.rfind("v.blk.", 0) != 0) return name;
    for (const auto& [a, b] : {std::pair<const char*, const char*>{".ffn_down.", ".ffn_up."}, {".ffn_up.", ".ffn_down."}}) {
        const size_t at = name.find(a);
        if (at != std::string::npos) return name.substr(0, at) + b + name.substr(at + std::strlen(a));
    }
    return name;
}

std::string shape_str(const std::vector<int64_t>& s) {
    std::string out;
    for (int64_t d : s) {
        if (!out.empty()) out += 'x';
        out += std::to_string(d);
    }
    return out;
}

class Keys {
public:
    explicit Keys(const GgufFile& f) : f_(f) {}
    const char* file() const { return f_.path().c_str(); }
    [[noreturn]] void missing(const std::string& key, const char* what) const {
        fail("%s: mmproj key '%s' is missing (expected %s, as llama.cpp's clip.cpp reads it; %s)", file(), key.c_str(),
             what, kHint);
    }
    int64_t size(const std::string& key, int64_t max = int64_t{1} << 24) const {
        const std::optional<int64_t> v = f_.get_int_opt(key);
        if (!v) missing(key, "a positive integer");
        if (*v < 1 || *v > max) {
            fail("%s: mmproj key '%s' is %lld, expected 1..%lld (corrupt file?)", file(), key.c_str(), (long long)*v,
                 (long long)max);
        }
        return *v;
    }
    bool flag(const std::string& key, std::optional<bool> dflt) const {
        const GgufValue* v = f_.find(key);
        if (v == nullptr) {
            if (!dflt) missing(key, "a bool");
            return *dflt;
        }
        if (!v->is<bool>()) fail("%s: mmproj key '%s' is %s, expected a bool", file(), key.c_str(), v->type_str().c_str());
        return v->as<bool>(key);
    }
    void triple(const std::string& key, float out[3]) const {
        const GgufValue* v = f_.find(key);
        if (v == nullptr) missing(key, "3 floats (one per RGB channel)");
        const std::vector<float> x = v->to_float_array(f_.key_ctx(key));
        if (x.size() < 3) {
            fail("%s: mmproj key '%s' has %zu values, expected 3 (one per RGB channel)", file(), key.c_str(), x.size());
        }
        for (int c = 0; c < 3; ++c) {
            if (!std::isfinite(x[c])) fail("%s: mmproj key '%s' holds %g, expected finite numbers", file(), key.c_str(), x[c]);
            out[c] = x[static_cast<size_t>(c)];
        }
    }

private:
    const GgufFile& f_;
};

}  // namespace

bool is_mmproj(const GgufFile& f) {
    const GgufValue* a = f.find("general.architecture");
    return a != nullptr && a->is<std::string>() && a->as<std::string>("general.architecture") == "clip";
}

ModelFiles mmproj_files(const GgufFile& f) {
    const Keys k(f);
    const char* file = k.file();
    if (!k.flag("clip.has_vision_encoder", std::nullopt)) {
        fail("%s: clip.has_vision_encoder is false: a text-only CLIP file, expected an image encoder (%s)", file, kHint);
    }
    if (k.flag("clip.has_text_encoder", false)) {
        fail("%s: clip.has_text_encoder is true: a two-tower CLIP file, expected a LLaVA image encoder (%s)", file, kHint);
    }
    for (const char* other : {"clip.has_minicpmv_projector", "clip.has_glm_projector", "clip.has_qwen2vl_merger"}) {
        if (k.flag(other, false)) {
            fail("%s: %s is true: llmforge reads LLaVA projectors only (expected clip.has_llava_projector)", file, other);
        }
    }
    if (!k.flag("clip.has_llava_projector", false)) {
        fail("%s: clip.has_llava_projector is false or missing: a vision-only CLIP file without a projector, expected "
             "a LLaVA image encoder (%s)", file, kHint);
    }
    ModelConfig c;
    c.arch = "clip_vision";
    c.name = f.get_opt<std::string>("general.name").value_or(fs::path(f.path()).stem().string());
    EncoderConfig& e = c.enc;
    const std::string type = f.get_opt<std::string>("clip.projector_type").value_or("mlp");
    if (type == "mlp") {
        if (f.has_tensor("mm.3.weight")) {
            fail("%s: tensor mm.3.weight is there: Yi-VL's mlp_norm projector, which llmforge does not support "
                 "(supported clip.projector_type: mlp = LLaVA-1.5's mlp2x_gelu, linear)", file);
        }
        e.projector = Projector::kMlp;
    } else if (type == "linear") {
        e.projector = Projector::kLinear;
    } else {
        fail("%s: clip.projector_type is '%s', which llmforge does not support (supported: mlp = LLaVA-1.5's "
             "mlp2x_gelu, linear; hint: MobileVLM's ldp/ldpv2, MiniCPM-V's resampler, GLM-Edge's adapter and "
             "Qwen2-VL's merger are other projectors)", file, printable(type, 40).c_str());
    }
    if (k.flag("clip.use_silu", false)) fail("%s: clip.use_silu is true: llmforge's CLIP tower has no SiLU (expected gelu or quick_gelu)", file);
    e.act = k.flag("clip.use_gelu", std::nullopt) ? Activation::kGelu : Activation::kQuickGelu;
    c.n_embd = k.size("clip.vision.embedding_length");
    c.n_ff = k.size("clip.vision.feed_forward_length");
    c.n_layer = k.size("clip.vision.block_count", 4096);
    c.n_head = k.size("clip.vision.attention.head_count", 4096);
    c.n_head_kv = c.n_head;
    if (c.n_embd % c.n_head != 0) {
        fail("%s: clip.vision.embedding_length %lld is not a multiple of attention.head_count %lld (corrupt file?)", file,
             (long long)c.n_embd, (long long)c.n_head);
    }
    c.head_dim = c.n_embd / c.n_head;
    e.image_size = k.size("clip.vision.image_size", 16384);
    e.patch_size = k.size("clip.vision.patch_size", 16384);
    e.n_channels = 3;
    const std::string eps_key = "clip.vision.attention.layer_norm_epsilon";
    const std::optional<double> eps = f.get_float_opt(eps_key);
    if (!eps) k.missing(eps_key, "a float");
    if (!(*eps > 0 && *eps < 1)) fail("%s: mmproj key '%s' is %g, expected in (0, 1)", file, eps_key.c_str(), *eps);
    e.norm_eps = static_cast<float>(*eps);
    float unused[3];
    k.triple("clip.vision.image_mean", unused);
    k.triple("clip.vision.image_std", unused);
    if (e.image_size % e.patch_size != 0) {
        fail("%s: clip.vision.image_size %lld is not a multiple of patch_size %lld (expected whole patches)", file,
             (long long)e.image_size, (long long)e.patch_size);
    }
    e.class_token = true;
    e.feature_select_full = false;  // clip.cpp's patches: rows 1..N
    e.feature_layer = -2;           // clip.cpp runs block_count - 1 blocks
    if (const GgufValue* fl = f.find("clip.vision.feature_layer")) {
        const std::vector<int64_t> v = fl->to_int_array(f.key_ctx("clip.vision.feature_layer"));
        if (v.size() != 1 || v[0] < 0 || v[0] > c.n_layer) {
            fail("%s: clip.vision.feature_layer is %s, expected one layer in 0..%lld (concatenated feature layers, "
                 "Granite Vision's, are not supported)", file, fl->to_string().c_str(), (long long)c.n_layer);
        }
        e.feature_layer = v[0];
    }
    if (!f.has_tensor("v.class_embd")) {
        fail("%s: tensor v.class_embd is missing: a tower without a class token (SigLIP?), which clip.cpp's LLaVA path "
             "(class row dropped) does not run as such (expected a CLIP tower; %s)", file, kHint);
    }
    if (f.has_tensor("v.patch_embd.bias")) {
        fail("%s: tensor v.patch_embd.bias is there: a patch embedding with a bias, which llmforge's clip_vision does "
             "not have (expected CLIP's bias-free one)", file);
    }
    e.proj_post_norm = f.has_tensor("v.post_ln.weight");
    const char* out_name = e.projector == Projector::kMlp ? "mm.2.weight" : "mm.0.weight";
    const GgufTensorInfo* out_w = f.find_tensor(out_name);
    if (out_w == nullptr || out_w->shape.size() != 2) {
        fail("%s: tensor %s is %s, expected the projector's (output width, input width) matrix (clip.projector_type "
             "%s)", file, out_name, out_w == nullptr ? "missing" : ("of shape " + out_w->shape_str()).c_str(),
             type.c_str());
    }
    e.proj_out = out_w->shape[0];
    c.n_vocab = 0;
    c.n_ctx_train = 1 + e.n_patches();
    const Arch& arch = arch_of(c.arch, f.path());
    arch.validate(c, f.path());

    ModelFiles m;
    m.path = f.path();
    m.format = "gguf";
    m.config = c;
    for (const NamedSpec& ns : tensor_list(arch, c, true)) {
        const std::string in_file = swap_ffn(ns.name);
        const GgufTensorInfo* info = f.find_tensor(in_file);
        if (info == nullptr) {
            if (ns.spec->optional) continue;
            fail("%s: mmproj tensor '%s' is missing (expected %s for a %lld-block CLIP tower with a %s projector; %s)",
                 file, in_file.c_str(), shape_str(ns.shape).c_str(), (long long)c.n_layer, type.c_str(), kHint);
        }
        if (info->shape != ns.shape) {
            fail("%s: mmproj tensor '%s' has shape %s, expected %s%s", file, in_file.c_str(), shape_str(info->shape).c_str(),
                 shape_str(ns.shape).c_str(),
                 in_file.find(".ffn_") != std::string::npos
                     ? " (the converter's ffn_down is CLIP's fc1: feed_forward_length x embedding_length)"
                     : "");
        }
        Tensor t = f.tensor(*info);
        t.set_name(ns.name);
        m.tensors[ns.name] = t;
    }
    return m;
}

ImagePreprocess mmproj_preprocess(const GgufFile& f) {
    const Keys k(f);
    float mean[3], std[3];
    k.triple("clip.vision.image_mean", mean);
    k.triple("clip.vision.image_std", std);
    for (int c = 0; c < 3; ++c) {
        if (!(std[c] > 0)) fail("%s: clip.vision.image_std[%d] is %g, expected > 0", k.file(), c, std[c]);
    }
    return ImagePreprocess::llava_clip_cpp(k.size("clip.vision.image_size", 4096), mean, std);
}

ImagePreprocess image_preprocess_for(const ModelFiles& files) {
    const ModelConfig& c = files.config;
    std::error_code ec;
    if (files.format == "gguf" && fs::is_regular_file(files.path, ec)) {
        const GgufFile f(files.path);
        if (is_mmproj(f)) return mmproj_preprocess(f);
    }
    if (files.format == "safetensors") {
        const fs::path json = fs::path(files.path) / "preprocessor_config.json";
        if (fs::is_regular_file(json, ec)) return ImagePreprocess::from_hf_json(json.string());
    }
    const int64_t size = c.enc.image_size;
    if (size <= 0) fail("%s: %s is not a vision tower: no image preprocessing", files.path.c_str(), c.arch.c_str());
    ImagePreprocess p;
    if (c.arch == "clip_vision") {
        p = ImagePreprocess::clip();
        p.shortest_edge = p.crop_w = p.crop_h = size;
    } else {
        p = c.arch == "siglip_vision" ? ImagePreprocess::siglip() : ImagePreprocess::vit();
        p.resize_w = p.resize_h = size;
    }
    return p;
}

void write_mmproj(const std::string& path, const ModelConfig& c, const MmprojValues& values, const float mean[3],
                  const float std[3], const MmprojWriteOptions& o) {
    const char* where = path.c_str();
    const EncoderConfig& e = c.enc;
    if (c.arch != "clip_vision") {
        fail("%s: an mmproj holds a CLIP vision tower, this is %s (hint: clip.cpp's LLaVA path runs clip_vision towers "
             "with a class token)", where, c.arch.c_str());
    }
    if (e.projector == Projector::kNone) {
        fail("%s: the vision tower has no projector (expected EncoderConfig::projector mlp or linear: an mmproj feeds "
             "a language model)", where);
    }
    if (e.feature_select_full) {
        fail("%s: vision_feature_select_strategy is full, but clip.cpp always drops the class row (expected default)",
             where);
    }
    if (e.projector == Projector::kMlp && e.projector_act != Activation::kGelu) {
        fail("%s: projector_hidden_act is %s, but clip.cpp's mlp projector applies GELU (expected gelu)", where,
             activation_name(e.projector_act));
    }
    if (e.act != Activation::kGelu && e.act != Activation::kQuickGelu) {
        fail("%s: hidden_act is %s, which clip.use_gelu cannot say (expected quick_gelu or gelu)", where,
             activation_name(e.act));
    }
    const Arch& arch = arch_of(c.arch, path);
    arch.validate(c, path);
    // clip.cpp runs block_count - 1 blocks: the feature depth plus one stored block.
    const int64_t depth = e.feature_depth(c.n_layer), blocks = depth + 1;

    GgufWriter w;
    w.set("general.architecture", "clip");
    w.set("clip.has_text_encoder", false);
    w.set("clip.has_vision_encoder", true);
    w.set("clip.has_llava_projector", true);
    w.set("general.file_type", uint32_t{o.f16 ? 1u : 0u});
    w.set("general.name", o.name);
    w.set("general.description", o.description);
    w.set("clip.projector_type", e.projector == Projector::kMlp ? "mlp" : "linear");
    auto u32 = [&](const char* key, int64_t v) {
        if (v < 1 || v > static_cast<int64_t>(UINT32_MAX)) fail("%s: %s is %lld, expected 1..%u", where, key, (long long)v, UINT32_MAX);
        w.set(key, static_cast<uint32_t>(v));
    };
    u32("clip.vision.image_size", e.image_size);
    u32("clip.vision.patch_size", e.patch_size);
    u32("clip.vision.embedding_length", c.n_embd);
    u32("clip.vision.feed_forward_length", c.n_ff);
    u32("clip.vision.projection_dim", e.projection_dim > 0 ? e.projection_dim : e.proj_out);
    u32("clip.vision.attention.head_count", c.n_head);
    w.set("clip.vision.attention.layer_norm_epsilon", e.norm_eps);
    u32("clip.vision.block_count", blocks);
    w.set("clip.vision.image_mean", std::vector<float>(mean, mean + 3));
    w.set("clip.vision.image_std", std::vector<float>(std, std + 3));
    w.set("clip.use_gelu", e.act == Activation::kGelu);

    for (const NamedSpec& ns : tensor_list(arch, c, false)) {
        if (ns.layer >= blocks) continue;  // past the feature layer: never run
        const bool matrix = ns.shape.size() >= 2 && ns.name.size() > 7 && ns.name.compare(ns.name.size() - 7, 7, ".weight") == 0;
        const bool patch = ns.shape.size() == 4;  // the converter always writes the conv weight in f16
        const DType dt = patch || (matrix && o.f16) ? DType::F16 : DType::F32;
        const std::string name = ns.name;
        const int64_t n = [&] {
            int64_t x = 1;
            for (int64_t d : ns.shape) x *= d;
            return x;
        }();
        w.add_tensor(swap_ffn(name), dt, ns.shape, [values, name, n, dt](uint8_t* dst, size_t nbytes) {
            std::vector<float> v(static_cast<size_t>(n));
            values(name, v.data());
            if (dt == DType::F32) {
                LF_ASSERT(nbytes == v.size() * sizeof(float));
                std::memcpy(dst, v.data(), nbytes);
                return;
            }
            LF_ASSERT(nbytes == v.size() * sizeof(uint16_t));
            for (size_t i = 0; i < v.size(); ++i) {
                const uint16_t h = fp32_to_fp16(v[i]);
                std::memcpy(dst + 2 * i, &h, 2);
            }
        });
    }
    // When the feature layer is the tower's last output, clip.cpp still skips the last stored block:
    // one of zeros (never run) completes the file.
    if (blocks > c.n_layer) {
        for (const NamedSpec& ns : tensor_list(arch, c, false)) {
            if (ns.layer != c.n_layer - 1) continue;
            std::string name = ns.name;
            const std::string from = "v.blk." + std::to_string(c.n_layer - 1) + ".";
            LF_ASSERT(name.rfind(from, 0) == 0);
            name = "v.blk." + std::to_string(c.n_layer) + "." + name.substr(from.size());
            const bool matrix = ns.shape.size() >= 2;
            const DType dt = matrix && o.f16 ? DType::F16 : DType::F32;
            w.add_tensor(swap_ffn(name), dt, ns.shape, [](uint8_t* dst, size_t nbytes) { std::memset(dst, 0, nbytes); });
        }
    }
    w.write(path);
}

void save_mmproj(const std::string& path, const Model& tower, const ImagePreprocess& pre, const MmprojWriteOptions& o) {
    const ModelFiles& files = tower.files();
    const auto& kt = kernels::kernels();
    auto values = [&files, &kt, &path](const std::string& name, float* out) {
        auto it = files.tensors.find(name);
        LF_ASSERT(it != files.tensors.end());
        const Tensor& t = it->second;
        if (t.row_group() != 1) {
            fail("%s: tensor %s is repacked for the engine (%s, interleaved rows): expected the file's layout (hint: "
                 "Model::from_files(files, false), or LLMFORGE_REPACK=0)", path.c_str(), name.c_str(), dtype_name(t.dtype()));
        }
        const auto deq = kt.dequantize_row[static_cast<int>(t.dtype())];
        if (deq == nullptr) fail("%s: tensor %s has dtype %s, which cannot be read back", path.c_str(), name.c_str(), dtype_name(t.dtype()));
        const int64_t cols = t.shape().back(), rows = t.numel() / cols;
        const size_t row_bytes = t.nbytes() / static_cast<size_t>(rows);
        for (int64_t r = 0; r < rows; ++r) deq(static_cast<const uint8_t*>(t.data()) + r * row_bytes, out + r * cols, cols);
    };
    MmprojWriteOptions opt = o;
    if (opt.name == MmprojWriteOptions{}.name && !tower.config().name.empty()) opt.name = tower.config().name;
    write_mmproj(path, tower.config(), values, pre.mean, pre.std, opt);
}

}  // namespace llmforge
