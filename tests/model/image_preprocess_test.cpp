// Image preprocessing (model/image_preprocess.h) against Pillow 9.4 and Hugging Face's CLIP / ViT /
// SigLIP image processors, pinned in tests/data/images by make_image_refs.py: resize_like_pil is
// bit-exact with Image.resize, preprocess_image with the processors' pixel_values; the processor
// presets and preprocessor_config.json reading.
#include "model/image_preprocess.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>

#include "core/error.h"
#include "image_refs.h"
#include "test_util.h"

namespace llmforge {
namespace {

using Filter = ImagePreprocess::Filter;
using test::error_of;
using test::image_data_path;
using test::ImageRefs;

Filter filter_of(const std::string& name) {
    if (name == "nearest") return Filter::kNearest;
    if (name == "bilinear") return Filter::kBilinear;
    EXPECT_EQ(name, "bicubic");
    return Filter::kBicubic;
}

// The source image of a case: Pillow's decoded RGB (independent of our decoder).
Image pinned_image(const std::string& file) {
    const ImageRefs& refs = ImageRefs::get();
    const nlohmann::json* d = refs.decoded(file);
    EXPECT_NE(d, nullptr) << file;
    Image img;
    if (!d) return img;
    img.width = d->at("width");
    img.height = d->at("height");
    img.rgb = refs.bytes(d->at("offset"), d->at("size"));
    return img;
}

ImagePreprocess from_config(const nlohmann::json& c) {
    ImagePreprocess p;
    p.do_resize = c.at("do_resize");
    p.shortest_edge = c.at("shortest_edge");
    p.resize_w = c.at("resize_w");
    p.resize_h = c.at("resize_h");
    p.filter = filter_of(c.at("filter"));
    p.do_center_crop = c.at("do_center_crop");
    p.crop_w = c.at("crop_w");
    p.crop_h = c.at("crop_h");
    p.do_rescale = c.at("do_rescale");
    p.rescale = c.at("rescale");
    p.do_normalize = c.at("do_normalize");
    for (int i = 0; i < 3; ++i) {
        p.mean[i] = static_cast<float>(c.at("mean")[i].get<double>());  // numpy's float32 cast
        p.std[i] = static_cast<float>(c.at("std")[i].get<double>());
    }
    return p;
}

void expect_same(const ImagePreprocess& a, const ImagePreprocess& b) {
    EXPECT_EQ(a.do_resize, b.do_resize);
    EXPECT_EQ(a.shortest_edge, b.shortest_edge);
    if (a.shortest_edge == 0) {
        EXPECT_EQ(a.resize_w, b.resize_w);
        EXPECT_EQ(a.resize_h, b.resize_h);
    }
    EXPECT_EQ(a.filter, b.filter);
    EXPECT_EQ(a.do_center_crop, b.do_center_crop);
    if (a.do_center_crop) {
        EXPECT_EQ(a.crop_w, b.crop_w);
        EXPECT_EQ(a.crop_h, b.crop_h);
    }
    EXPECT_EQ(a.do_rescale, b.do_rescale);
    EXPECT_EQ(a.rescale, b.rescale);
    EXPECT_EQ(a.do_normalize, b.do_normalize);
    for (int c = 0; c < 3; ++c) {
        EXPECT_EQ(a.mean[c], b.mean[c]) << c;
        EXPECT_EQ(a.std[c], b.std[c]) << c;
    }
}

TEST(ImagePreprocess, ResizeIsBitExactWithPillow) {
    const ImageRefs& refs = ImageRefs::get();
    const auto& cases = refs.index.at("resize");
    ASSERT_GE(cases.size(), 50u);
    int down = 0, up = 0;
    for (const auto& c : cases) {
        const std::string src = c.at("source"), filter = c.at("filter");
        const int64_t w = c.at("width"), h = c.at("height");
        SCOPED_TRACE(src + " -> " + std::to_string(w) + "x" + std::to_string(h) + " " + filter);
        const Image in = pinned_image(src);
        const Image out = resize_like_pil(in, w, h, filter_of(filter));
        EXPECT_EQ(out.width, w);
        EXPECT_EQ(out.height, h);
        EXPECT_EQ(test::first_difference(out.rgb, refs.bytes(c.at("offset"), c.at("size")), w), "");
        down += w < in.width;
        up += w > in.width;
    }
    EXPECT_GE(down, 10);
    EXPECT_GE(up, 10);
}

TEST(ImagePreprocess, PixelValuesEqualHuggingFaces) {
    const ImageRefs& refs = ImageRefs::get();
    const auto& cases = refs.index.at("preprocess");
    ASSERT_GE(cases.size(), 10u);
    int presets = 0, padded = 0;
    for (const auto& c : cases) {
        const std::string src = c.at("source");
        const auto& cfg = c.at("config");
        SCOPED_TRACE(src + " " + (c.at("preset").is_null() ? cfg.dump() : c.at("preset").get<std::string>()));
        ImagePreprocess p = from_config(cfg);
        if (!c.at("preset").is_null()) {
            const std::string name = c.at("preset");
            const ImagePreprocess preset = name == "clip"     ? ImagePreprocess::clip()
                                           : name == "vit"    ? ImagePreprocess::vit()
                                                              : ImagePreprocess::siglip();
            expect_same(preset, p);  // the presets hold the processors' published values
            p = preset;
            ++presets;
        }
        const Image in = pinned_image(src);
        int64_t oh = 0, ow = 0;
        const std::vector<float> got = preprocess_image(in, p, &oh, &ow);
        ASSERT_EQ(oh, c.at("out_h").get<int64_t>());
        ASSERT_EQ(ow, c.at("out_w").get<int64_t>());
        ASSERT_EQ(got.size(), static_cast<size_t>(3 * oh * ow));
        // The reference: pixel_values[c][y][x] = lut[c][u8[y][x][c]] (lossless, see the generator).
        const std::vector<uint8_t> u8 = refs.bytes(c.at("u8_offset"), c.at("u8_size"));
        const std::vector<float> lut = refs.floats(c.at("lut_offset"), 3 * 256);
        ASSERT_EQ(u8.size(), static_cast<size_t>(3 * oh * ow));
        double max_diff = 0;
        size_t not_identical = 0;
        for (int64_t ch = 0; ch < 3; ++ch) {
            for (int64_t i = 0; i < oh * ow; ++i) {
                const float want = lut[static_cast<size_t>(ch * 256 + u8[static_cast<size_t>(i * 3 + ch)])];
                const float g = got[static_cast<size_t>(ch * oh * ow + i)];
                max_diff = std::max(max_diff, std::fabs(static_cast<double>(g) - want));
                not_identical += std::memcmp(&g, &want, 4) != 0;
            }
        }
        EXPECT_LE(max_diff, 1e-6);
        EXPECT_EQ(not_identical, 0u) << "values not bit-identical (max diff " << max_diff << ")";
        padded += cfg.at("do_center_crop").get<bool>() && (ow > in.width || oh > in.height) && !cfg.at("do_resize");
    }
    EXPECT_EQ(presets, 4);
    EXPECT_GE(padded, 1);
}

TEST(ImagePreprocess, CropWindowEqualsFullResizeThenCrop) {
    // preprocess_image resizes only the cropped window; it must equal resizing everything first.
    const Image in = pinned_image("wide_40x1.png");
    for (Filter f : {Filter::kNearest, Filter::kBilinear, Filter::kBicubic}) {
        ImagePreprocess p;
        p.shortest_edge = 16;
        p.crop_w = 20;
        p.crop_h = 9;
        p.filter = f;
        p.do_rescale = p.do_normalize = false;
        int64_t oh = 0, ow = 0;
        const std::vector<float> got = preprocess_image(in, p, &oh, &ow);
        ASSERT_EQ(oh, 9);
        ASSERT_EQ(ow, 20);
        const Image full = resize_like_pil(in, 640, 16, f);  // int(16 * 40 / 1) = 640
        for (int64_t c = 0; c < 3; ++c) {
            for (int64_t y = 0; y < 9; ++y) {
                for (int64_t x = 0; x < 20; ++x) {
                    const uint8_t want = full.rgb[static_cast<size_t>(((y + 3) * 640 + x + 310) * 3 + c)];
                    ASSERT_EQ(got[static_cast<size_t>((c * 9 + y) * 20 + x)], static_cast<float>(want))
                        << c << " " << y << " " << x;
                }
            }
        }
    }
}

TEST(ImagePreprocess, ReadsPublishedPreprocessorConfigs) {
    expect_same(ImagePreprocess::from_hf_json(image_data_path("clip-vit-base-patch32.preprocessor_config.json")),
                ImagePreprocess::clip());
    expect_same(ImagePreprocess::from_hf_json(image_data_path("siglip-base-patch16-224.preprocessor_config.json")),
                ImagePreprocess::siglip());
    const std::string dir = test::temp_dir();
    // google/vit-base-patch16-224 (an integer size means a square for ViT).
    test::write_file(dir + "/vit.json",
                     R"({"do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
                         "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224})");
    expect_same(ImagePreprocess::from_hf_json(dir + "/vit.json"), ImagePreprocess::vit());
    // The older CLIP form: integer size (the shortest edge for CLIP) and crop_size.
    test::write_file(dir + "/clip_old.json",
                     R"({"crop_size": 224, "do_center_crop": true, "do_normalize": true, "do_resize": true,
                         "feature_extractor_type": "CLIPFeatureExtractor",
                         "image_mean": [0.48145466, 0.4578275, 0.40821073],
                         "image_std": [0.26862954, 0.26130258, 0.27577711], "resample": 3, "size": 224})");
    expect_same(ImagePreprocess::from_hf_json(dir + "/clip_old.json"), ImagePreprocess::clip());
    // LLaVA-1.5's CLIP at 336, [h, w] lists, a single-number mean, null meaning "default".
    test::write_file(dir + "/clip336.json",
                     R"({"image_processor_type": "CLIPImageProcessorFast", "size": {"shortest_edge": 336},
                         "crop_size": [336, 300], "do_rescale": null, "image_mean": 0.25, "resample": 0})");
    const ImagePreprocess p = ImagePreprocess::from_hf_json(dir + "/clip336.json");
    EXPECT_EQ(p.shortest_edge, 336);
    EXPECT_EQ(p.crop_h, 336);
    EXPECT_EQ(p.crop_w, 300);
    EXPECT_TRUE(p.do_rescale);
    EXPECT_EQ(p.filter, Filter::kNearest);
    EXPECT_EQ(p.mean[2], 0.25f);
    EXPECT_EQ(p.std[0], ImagePreprocess::clip().std[0]);
}

TEST(ImagePreprocess, BadPreprocessorConfigIsAOneLineErrorNamingFileAndKey) {
    const std::string dir = test::temp_dir();
    struct Case {
        const char* json;
        const char* expect;
    };
    const Case cases[] = {
        {R"({"image_processor_type": "CLIPImageProcessor", "resample": 1})",
         "\"resample\" is 1 (LANCZOS), expected 0 (nearest), 2 (bilinear) or 3 (bicubic)"},
        {R"({"image_processor_type": "CLIPImageProcessor", "size": "big"})",
         "\"size\" is \"big\", expected an integer, [height, width], {\"shortest_edge\": N}"},
        {R"({"image_processor_type": "SiglipImageProcessor", "size": 224})",
         "\"size\" is 224, expected {\"height\": H, \"width\": W} (SiglipImageProcessor)"},
        {R"({"image_processor_type": "ViTImageProcessor", "size": {"shortest_edge": 224}})", "\"size\" is"},
        {R"({"image_processor_type": "CLIPImageProcessor", "crop_size": {"height": 0, "width": 224}})",
         "\"crop_size.height\" is 0, expected a positive integer side length"},
        {R"({"image_processor_type": "CLIPImageProcessor", "image_std": [0.5, 0.5]})",
         "\"image_std\" is [0.5,0.5], expected a list of 3 numbers"},
        {R"({"image_processor_type": "CLIPImageProcessor", "image_std": [0.5, 0, 0.5]})",
         "\"image_std\" has 0 for channel 1"},
        {R"({"image_processor_type": "CLIPImageProcessor", "do_resize": "yes"})",
         "\"do_resize\" is \"yes\", expected true or false"},
        {R"({"image_processor_type": "Qwen2VLImageProcessor"})",
         "\"image_processor_type\" is \"Qwen2VLImageProcessor\", expected CLIPImageProcessor"},
        {R"({"size": 224})", "neither \"image_processor_type\" nor \"feature_extractor_type\" is set"},
        {R"({"size": 224,)", "not valid JSON"},
        {R"([1, 2])", "expected a JSON object"},
    };
    int i = 0;
    for (const Case& c : cases) {
        const std::string path = dir + "/bad" + std::to_string(i++) + ".json";
        test::write_file(path, c.json);
        const std::string m = error_of([&] { ImagePreprocess::from_hf_json(path); });
        EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
        EXPECT_NE(m.find(c.expect), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
    EXPECT_NE(error_of([&] { ImagePreprocess::from_hf_json(dir + "/none.json"); }).find("cannot open"),
              std::string::npos);
}

TEST(ImagePreprocess, RefusesEmptyImagesAndSizelessSettings) {
    Image empty;
    int64_t h = 0, w = 0;
    EXPECT_NE(error_of([&] { preprocess_image(empty, ImagePreprocess::clip(), &h, &w); })
                  .find("preprocess_image: image is 0x0 with 0 bytes"),
              std::string::npos);
    const Image img = pinned_image("small_20x12.png");
    ImagePreprocess p = ImagePreprocess::vit();
    p.resize_w = 0;
    EXPECT_NE(error_of([&] { preprocess_image(img, p, &h, &w); }).find("hint: set shortest_edge > 0"),
              std::string::npos);
    EXPECT_NE(error_of([&] { resize_like_pil(img, 0, 5, Filter::kBilinear); }).find("target size 0x5"),
              std::string::npos);
    // A 1 x 4096 image becomes 917504 x 224 before the crop; without the crop that output is
    // refused, not allocated.
    Image line;
    line.width = 4096;
    line.height = 1;
    line.rgb.assign(3 * 4096, 7);
    p = ImagePreprocess::clip();
    p.do_center_crop = false;
    const std::string m = error_of([&] { preprocess_image(line, p, &h, &w); });
    EXPECT_NE(m.find("output of 917504x224 pixels (width x height), over the limit"), std::string::npos) << m;
    // With the crop it is cheap: only the 224 x 224 window is resized.
    p.do_center_crop = true;
    const std::vector<float> v = preprocess_image(line, p, &h, &w);
    EXPECT_EQ(h, 224);
    EXPECT_EQ(w, 224);
}

}  // namespace
}  // namespace llmforge
