// llama.cpp's mmproj GGUF (model/mmproj.h) against references nobody here wrote:
//   * tests/model/ref/vision/llava_clip_tiny/mmproj-model-f16.gguf was written by llama.cpp's own
//     gguf-py the way convert_image_encoder_to_gguf.py writes a LLaVA image encoder, from the
//     weights of the llava_clip_tiny reference (make_vision_refs.py); out.mmproj_features there is
//     the float64 PyTorch value of what clip.cpp computes from it;
//   * clipcpp_portrait_90x150.{pixels,embedding}.f32 are llama.cpp clip.cpp's own preprocessed
//     image and embedding (clipcpp/run_clipcpp.sh).
// Then writing: save_mmproj round trips, keeps clip.cpp's layer semantics, and bad files fail in
// one line.
#include "model/mmproj.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/gguf.h"
#include "io/image.h"
#include "io/safetensors.h"
#include "test_util.h"

namespace llmforge {
namespace {

using test::error_of;

const std::string kDir = "tests/model/ref/vision/llava_clip_tiny";

std::string ref_path(const std::string& file) { return test::src_path(kDir + "/" + file); }
std::string mmproj_path() { return ref_path("mmproj-model-f16.gguf"); }

std::vector<float> ref_tensor(const std::string& name) {
    const SafetensorsFile f(ref_path("expected.safetensors"));
    const Tensor t = f.tensor(name);
    return std::vector<float>(t.ptr<float>(), t.ptr<float>() + t.numel());
}

std::vector<float> raw_f32(const std::string& path) {
    const std::string bytes = test::read_file(path);
    std::vector<float> v(bytes.size() / 4);
    std::memcpy(v.data(), bytes.data(), v.size() * 4);
    return v;
}

// The reference's pixel_values (B, 3, 32, 32) as the tower's input rows (class placeholder first).
std::vector<float> reference_rows(const ModelConfig& c, int64_t* B) {
    const std::vector<float> px = ref_tensor("input.pixel_values");
    const int64_t S = c.enc.image_size, per = 3 * S * S, T = 1 + c.enc.n_patches(), cols = c.enc.patch_cols();
    *B = static_cast<int64_t>(px.size()) / per;
    std::vector<float> rows(static_cast<size_t>(*B * T * cols));
    for (int64_t b = 0; b < *B; ++b) image_patch_rows(px.data() + b * per, 3, S, S, c.enc.patch_size, rows.data() + b * T * cols);
    return rows;
}

EncodeOutput encode_reference(const Model& m) {
    int64_t B = 0;
    const std::vector<float> rows = reference_rows(m.config(), &B);
    ThreadPool pool(2);
    ForwardScratch s;
    EncodeOutput out;
    m.encode(rows.data(), B, 1 + m.config().enc.n_patches(), out, pool, s);
    return out;
}

TEST(Mmproj, LoadsAsClipCppRunsIt) {
    auto m = Model::load(mmproj_path());
    const ModelConfig& c = m->config();
    EXPECT_EQ(c.arch, "clip_vision");
    EXPECT_EQ(c.enc.projector, Projector::kMlp);
    EXPECT_EQ(c.n_layer, 2);  // the converter stored 2 of the 3 layers; clip.cpp runs 1
    EXPECT_EQ(c.enc.feature_layer, -2);
    EXPECT_EQ(c.enc.feature_depth(c.n_layer), 1);
    EXPECT_FALSE(c.enc.feature_select_full);
    EXPECT_FALSE(c.enc.proj_post_norm);
    EXPECT_EQ(c.enc.act, Activation::kQuickGelu);
    EXPECT_EQ(c.enc.proj_out, 48);
    EXPECT_EQ(c.enc.n_image_tokens(), 16);
    EXPECT_FLOAT_EQ(c.enc.norm_eps, 1e-5f);
    // fc1 is the file's ffn_down: here under the table's name, (feed_forward_length, embedding_length).
    EXPECT_EQ(m->files().tensors.at("v.blk.0.ffn_up.weight").shape(), (std::vector<int64_t>{64, 32}));
    EXPECT_EQ(m->files().tensors.at("v.blk.0.ffn_up.weight").dtype(), DType::F16);

    const EncodeOutput out = encode_reference(*m);
    const std::vector<float> want = ref_tensor("out.mmproj_features");
    EXPECT_EQ(out.rows, 16);
    EXPECT_EQ(out.cols, 48);
    EXPECT_TRUE(out.pooled.empty());
    ASSERT_EQ(out.last.size(), want.size());
    EXPECT_LT(test::rel_err(out.last.data(), want.data(), want.size()), 2e-5);
}

TEST(Mmproj, PreprocessingIsClipCpps) {
    const GgufFile f(mmproj_path());
    const ImagePreprocess p = mmproj_preprocess(f);
    EXPECT_TRUE(p.clip_cpp);
    EXPECT_EQ(p.resize_w, 32);
    EXPECT_FLOAT_EQ(p.mean[0], 0.48145466f);
    EXPECT_FLOAT_EQ(p.std[2], 0.27577711f);
    auto m = Model::load(mmproj_path());
    EXPECT_TRUE(image_preprocess_for(m->files()).clip_cpp);
    // clip.cpp's own pixels of a 90x150 image (padded to 150x150 at the top-left, its bilinear
    // resize, /255, normalised), bit for bit. It holds them HWC.
    const Image img = load_image(test::src_path("tests/data/images/portrait_90x150.png"));
    int64_t h = 0, w = 0;
    const std::vector<float> mine = preprocess_image(img, p, &h, &w);
    ASSERT_EQ(h, 32);
    ASSERT_EQ(w, 32);
    const std::vector<float> theirs = raw_f32(ref_path("clipcpp_portrait_90x150.pixels.f32"));
    ASSERT_EQ(theirs.size(), mine.size());
    int64_t diff = 0;
    for (int64_t c = 0; c < 3; ++c)
        for (int64_t i = 0; i < h * w; ++i) diff += mine[c * h * w + i] != theirs[3 * i + c];
    EXPECT_EQ(diff, 0);
    // A square image is resized without padding.
    Image sq;
    sq.width = sq.height = 64;
    sq.rgb.assign(64 * 64 * 3, 200);
    const std::vector<float> flat = preprocess_image(sq, p, &h, &w);
    EXPECT_FLOAT_EQ(flat[0], (200.0f / 255.0f - p.mean[0]) / p.std[0]);
    EXPECT_FLOAT_EQ(flat[3 * 32 * 32 - 1], (200.0f / 255.0f - p.mean[2]) / p.std[2]);
}

TEST(Mmproj, EmbeddingMatchesClipCppItself) {
    auto m = Model::load(mmproj_path());
    const ImagePreprocess p = image_preprocess_for(m->files());
    const Image img = load_image(test::src_path("tests/data/images/portrait_90x150.png"));
    const std::vector<float> rows = vision_input_rows(m->config(), p, {&img}, "test");
    ThreadPool pool(2);
    ForwardScratch s;
    EncodeOutput out;
    m->encode(rows.data(), 1, 17, out, pool, s);
    const std::vector<float> theirs = raw_f32(ref_path("clipcpp_portrait_90x150.embedding.f32"));
    ASSERT_EQ(out.last.size(), theirs.size());
    // clip.cpp rounds activations to f16 before its f16 products and takes GELU from an f16 table;
    // the float64 value of the same function is 6.5e-4 (relative) from it (make_vision_refs.py).
    EXPECT_LT(test::rel_err(out.last.data(), theirs.data(), theirs.size()), 2e-3);
}

// Every tensor of two GGUF files, by name: same dtype, shape and bytes.
void expect_same_tensors(const GgufFile& a, const GgufFile& b) {
    ASSERT_EQ(a.tensor_infos().size(), b.tensor_infos().size());
    for (const GgufTensorInfo& info : a.tensor_infos()) {
        const GgufTensorInfo* other = b.find_tensor(info.name);
        ASSERT_NE(other, nullptr) << info.name;
        EXPECT_EQ(info.dtype, other->dtype) << info.name;
        EXPECT_EQ(info.shape, other->shape) << info.name;
        const Tensor x = a.tensor(info), y = b.tensor(*other);
        EXPECT_EQ(std::memcmp(x.data(), y.data(), x.nbytes()), 0) << info.name;
    }
}

TEST(Mmproj, SaveRoundTripsTheConvertersFile) {
    auto m = Model::load(mmproj_path());
    const std::string out = test::temp_dir() + "/mmproj.gguf";
    save_mmproj(out, *m, image_preprocess_for(m->files()));
    const GgufFile theirs(mmproj_path()), mine(out);
    expect_same_tensors(theirs, mine);  // f16 matrices, f32 vectors, the ffn names swapped back
    for (const char* key : {"clip.vision.block_count", "clip.vision.image_size", "clip.vision.patch_size",
                            "clip.vision.embedding_length", "clip.vision.feed_forward_length",
                            "clip.vision.attention.head_count"}) {
        EXPECT_EQ(mine.at(key).type(), GgufType::kU32) << key;  // clip.cpp's gguf_get_val_u32 wants u32
        EXPECT_EQ(mine.get_int(key), theirs.get_int(key)) << key;
    }
    for (const char* key : {"clip.has_vision_encoder", "clip.has_llava_projector", "clip.use_gelu"})
        EXPECT_EQ(mine.get_bool(key), theirs.get_bool(key)) << key;
    EXPECT_FALSE(mine.get_bool("clip.has_text_encoder"));
    EXPECT_EQ(mine.get_string("general.architecture"), "clip");
    EXPECT_EQ(mine.get_string("clip.projector_type"), "mlp");
    EXPECT_EQ(mine.get_array<float>("clip.vision.image_mean"), theirs.get_array<float>("clip.vision.image_mean"));
    EXPECT_EQ(mine.get_f32("clip.vision.attention.layer_norm_epsilon"),
              theirs.get_f32("clip.vision.attention.layer_norm_epsilon"));
    const EncodeOutput a = encode_reference(*m), b = encode_reference(*Model::load(out));
    EXPECT_EQ(a.last, b.last);
}

// A Hugging Face CLIPVisionModel folder + LLaVA projector (vision_feature_layer -2 of 3 layers)
// saved as an mmproj: clip.cpp runs block_count - 1 = 2 layers, the same function.
TEST(Mmproj, SavedHfTowerKeepsItsFeatureLayer) {
    auto hf = Model::load(test::src_path(kDir));
    EXPECT_EQ(hf->config().enc.feature_depth(hf->config().n_layer), 2);
    const std::string out = test::temp_dir() + "/hf.gguf";
    const float mean[3] = {0.5f, 0.5f, 0.5f}, stdv[3] = {0.25f, 0.25f, 0.25f};
    save_mmproj(out, *hf, ImagePreprocess::llava_clip_cpp(32, mean, stdv));
    const GgufFile f(out);
    EXPECT_EQ(f.get_int("clip.vision.block_count"), 3);
    EXPECT_EQ(f.get_array<float>("clip.vision.image_std"), std::vector<float>(3, 0.25f));
    EXPECT_EQ(f.find_tensor("v.post_ln.weight"), nullptr);  // the converter leaves it out for LLaVA
    EXPECT_EQ(f.find_tensor("v.blk.0.ffn_down.weight")->shape, (std::vector<int64_t>{64, 32}));  // fc1
    EXPECT_EQ(f.find_tensor("v.blk.0.ffn_down.weight")->dtype, DType::F16);
    EXPECT_EQ(f.find_tensor("v.patch_embd.weight")->dtype, DType::F16);
    EXPECT_EQ(f.find_tensor("v.class_embd")->dtype, DType::F32);
    auto back = Model::load(out);
    EXPECT_EQ(back->config().enc.feature_depth(back->config().n_layer), 2);
    const std::vector<float> want = ref_tensor("out.image_features");
    const EncodeOutput mine = encode_reference(*back);
    EXPECT_LT(test::rel_err(mine.last.data(), want.data(), want.size()), 2e-5);
    // The feature layer as the last layer's output: clip.cpp would skip the last stored block, so a
    // block of zeros is appended (never run).
    ModelFiles files = open_model_files(test::src_path(kDir));
    files.config.enc.feature_layer = -1;
    auto last = Model::from_files(std::move(files));
    const std::string out2 = test::temp_dir() + "/hf_last.gguf";
    save_mmproj(out2, *last, ImagePreprocess::llava_clip_cpp(32, mean, stdv));
    const GgufFile f2(out2);
    EXPECT_EQ(f2.get_int("clip.vision.block_count"), 4);
    const Tensor zero = f2.tensor("v.blk.3.attn_q.weight");
    EXPECT_EQ(zero.dtype(), DType::F16);
    EXPECT_EQ(std::count(zero.ptr<uint16_t>(), zero.ptr<uint16_t>() + zero.numel(), uint16_t{0}), zero.numel());
    auto back2 = Model::load(out2);
    EXPECT_EQ(back2->config().n_layer, 4);
    EXPECT_EQ(back2->config().enc.feature_depth(4), 3);
    EXPECT_LT(test::rel_err(encode_reference(*back2).last.data(), encode_reference(*last).last.data(), want.size()), 1e-6);
}

// A copy of the reference mmproj with metadata or tensors changed: `edit` may change the keys
// (a copy of the file's, in order) and which tensors go in (name -> tensor).
std::string edited_mmproj(const std::string& name, const std::function<void(std::vector<GgufKV>&)>& keys,
                          const std::function<void(std::map<std::string, Tensor>&)>& tensors = nullptr) {
    const GgufFile f(mmproj_path());
    std::vector<GgufKV> kv = f.metadata();
    if (keys) keys(kv);
    std::map<std::string, Tensor> ts;
    for (const GgufTensorInfo& info : f.tensor_infos()) ts[info.name] = f.tensor(info);
    if (tensors) tensors(ts);
    GgufWriter w;
    for (const GgufKV& e : kv)
        if (e.key != "general.alignment") w.set(e.key, e.value);
    for (const auto& [n, t] : ts) w.add_tensor(t, n);
    const std::string path = test::temp_dir() + "/" + name + ".gguf";
    w.write(path);
    return path;
}

void set_key(std::vector<GgufKV>& kv, const std::string& key, GgufValue v) {
    for (GgufKV& e : kv)
        if (e.key == key) {
            e.value = std::move(v);
            return;
        }
    kv.push_back({key, std::move(v)});
}

void drop_key(std::vector<GgufKV>& kv, const std::string& key) {
    kv.erase(std::remove_if(kv.begin(), kv.end(), [&](const GgufKV& e) { return e.key == key; }), kv.end());
}

void expect_one_line_error(const std::string& path, const std::vector<std::string>& parts) {
    const std::string e = error_of([&] { Model::load(path); });
    ASSERT_FALSE(e.empty()) << path << " loaded";
    EXPECT_EQ(e.find('\n'), std::string::npos) << e;
    EXPECT_NE(e.find(path), std::string::npos) << e;
    for (const std::string& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "'" << p << "' not in: " << e;
}

TEST(Mmproj, BadFilesAreOneLineErrors) {
    expect_one_line_error(edited_mmproj("no_patch", [](auto& kv) { drop_key(kv, "clip.vision.patch_size"); }),
                          {"mmproj key 'clip.vision.patch_size' is missing", "convert_image_encoder_to_gguf.py"});
    expect_one_line_error(edited_mmproj("ldp", [](auto& kv) { set_key(kv, "clip.projector_type", "ldp"); }),
                          {"clip.projector_type is 'ldp'", "supported: mlp", "MobileVLM"});
    expect_one_line_error(edited_mmproj("no_llava", [](auto& kv) { set_key(kv, "clip.has_llava_projector", false); }),
                          {"clip.has_llava_projector is false"});
    expect_one_line_error(edited_mmproj("text", [](auto& kv) { set_key(kv, "clip.has_text_encoder", true); }),
                          {"two-tower CLIP"});
    expect_one_line_error(edited_mmproj("gelu_type", [](auto& kv) { set_key(kv, "clip.use_gelu", uint32_t{1}); }),
                          {"clip.use_gelu' is u32, expected a bool"});
    expect_one_line_error(
        edited_mmproj("granite", [](auto& kv) { set_key(kv, "clip.vision.feature_layer", std::vector<int32_t>{1, 2}); }),
        {"clip.vision.feature_layer", "concatenated feature layers"});
    expect_one_line_error(edited_mmproj("yi", nullptr,
                                        [](auto& ts) {
                                            ts["mm.3.weight"] = ts.at("mm.2.weight");
                                        }),
                          {"mm.3.weight", "mlp_norm"});
    expect_one_line_error(edited_mmproj("no_fc1", nullptr, [](auto& ts) { ts.erase("v.blk.1.ffn_down.weight"); }),
                          {"mmproj tensor 'v.blk.1.ffn_down.weight' is missing", "expected 64x32"});
    expect_one_line_error(edited_mmproj("bad_mm0", nullptr,
                                        [](auto& ts) {
                                            Tensor t = Tensor::empty(DType::F16, {48, 16}, "mm.0.weight");
                                            std::memset(t.data(), 0, t.nbytes());
                                            ts["mm.0.weight"] = t;
                                        }),
                          {"mmproj tensor 'mm.0.weight' has shape 48x16, expected 48x32"});
    expect_one_line_error(edited_mmproj("swapped_ffn", nullptr,
                                        [](auto& ts) {
                                            std::swap(ts.at("v.blk.0.ffn_down.weight"), ts.at("v.blk.0.ffn_up.weight"));
                                        }),
                          {"'v.blk.0.ffn_down.weight' has shape 32x64, expected 64x32", "ffn_down is CLIP's fc1"});
    expect_one_line_error(edited_mmproj("siglip_like", nullptr, [](auto& ts) { ts.erase("v.class_embd"); }),
                          {"v.class_embd is missing", "SigLIP"});
    // A later llama.cpp's single feature layer is honoured (HF's meaning: hidden_states[k]).
    auto m = Model::load(edited_mmproj("feature2", [](auto& kv) { set_key(kv, "clip.vision.feature_layer", std::vector<int32_t>{2}); }));
    EXPECT_EQ(m->config().enc.feature_depth(m->config().n_layer), 2);
}

TEST(Mmproj, WritingRefusesWhatClipCppCannotRun) {
    const float mean[3] = {0.5f, 0.5f, 0.5f};
    ModelFiles files = open_model_files(test::src_path(kDir));
    auto values = [](const std::string&, float*) {};
    ModelConfig c = files.config;
    c.enc.feature_select_full = true;
    EXPECT_NE(error_of([&] { write_mmproj(test::temp_dir() + "/x.gguf", c, values, mean, mean); }).find("always drops the class row"),
              std::string::npos);
    c = files.config;
    c.enc.projector = Projector::kNone;
    EXPECT_NE(error_of([&] { write_mmproj(test::temp_dir() + "/x.gguf", c, values, mean, mean); }).find("has no projector"),
              std::string::npos);
    auto siglip = open_model_files(test::src_path("tests/model/ref/vision/siglip_tiny"));
    EXPECT_NE(error_of([&] { write_mmproj(test::temp_dir() + "/x.gguf", siglip.config, values, mean, mean); })
                  .find("this is siglip_vision"),
              std::string::npos);
}

// The same tower as a Hugging Face folder: config keys of the projector, and the folder's
// multi_modal_projector tensors under the table's mm.* names.
TEST(Mmproj, HfFolderWithProjector) {
    const ModelFiles f = open_model_files(test::src_path(kDir));
    EXPECT_EQ(f.config.enc.projector, Projector::kMlp);
    EXPECT_EQ(f.config.enc.feature_layer, -2);
    EXPECT_EQ(f.config.enc.proj_out, 48);
    EXPECT_EQ(f.config.enc.projector_act, Activation::kGelu);
    EXPECT_TRUE(f.tensors.count("mm.2.bias"));
    // CLIP's post-LayerNorm is not in a projector tower's table (HF LLaVA does not read it either).
    for (const NamedSpec& ns : tensor_list(arch_of("clip_vision", "test"), f.config, true))
        EXPECT_EQ(ns.name.find("post_ln"), std::string::npos) << ns.name;
    auto m = Model::from_files(open_model_files(test::src_path(kDir)));
    const EncodeOutput out = encode_reference(*m);
    const std::vector<float> want = ref_tensor("out.image_features");
    EXPECT_LT(test::rel_err(out.last.data(), want.data(), want.size()), 2e-5);
    // A wrong number of input rows is one line.
    std::vector<float> rows(16 * 192, 0.0f);
    ThreadPool pool(1);
    ForwardScratch s;
    EncodeOutput o;
    const std::string e = error_of([&] { m->encode(rows.data(), 1, 16, o, pool, s); });
    EXPECT_NE(e.find("16 input rows per image, the vision tower with a projector takes 17"), std::string::npos) << e;
}

}  // namespace
}  // namespace llmforge
