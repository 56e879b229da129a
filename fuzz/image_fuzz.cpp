// libFuzzer target: PNG / JPEG decoding (io/image.h) on arbitrary bytes, and what decodes is then
// preprocessed (model/image_preprocess.h): CLIP's resize + center crop, and an exact small resize
// whose size and filter come from the input's last bytes. Small limits keep each run fast. Any
// llmforge::Error is an accepted outcome; a crash, a sanitizer report (libpng / libjpeg longjmps
// included), a hang, a leak or an allocation beyond libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "io/image.h"
#include "model/image_preprocess.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    ImageLimits limits;
    limits.max_pixels = int64_t{1} << 20;
    limits.max_side = 4096;
    Image img;
    try {
        img = decode_image(data, size, "fuzz.img", limits);
    } catch (const Error&) {
        return 0;
    }
    if (img.width < 1 || img.height < 1 || img.rgb.size() != static_cast<size_t>(img.width * img.height * 3)) {
        __builtin_trap();  // a decoded image must be whole
    }
    double sink = 0;
    try {
        int64_t h = 0, w = 0;
        const std::vector<float> v = preprocess_image(img, ImagePreprocess::clip(), &h, &w);
        if (h != 224 || w != 224 || v.size() != 3 * 224 * 224) __builtin_trap();
        sink += v[0] + v[v.size() - 1];
    } catch (const Error&) {
    }
    try {
        ImagePreprocess p = ImagePreprocess::vit();
        const uint8_t a = size > 0 ? data[size - 1] : 0, b = size > 1 ? data[size - 2] : 0;
        p.resize_w = 1 + a % 48;
        p.resize_h = 1 + b % 48;
        p.filter = a % 3 == 0 ? ImagePreprocess::Filter::kNearest
                   : a % 3 == 1 ? ImagePreprocess::Filter::kBilinear
                                : ImagePreprocess::Filter::kBicubic;
        p.do_center_crop = (b & 1) != 0;
        p.crop_w = 1 + b % 40;
        p.crop_h = 1 + a % 40;
        int64_t h = 0, w = 0;
        const std::vector<float> v = preprocess_image(img, p, &h, &w);
        sink += v[0];
    } catch (const Error&) {
    }
    try {  // llama.cpp clip.cpp's LLaVA path (pad to a square, its bilinear resize)
        const uint8_t a = size > 0 ? data[size - 1] : 0;
        const float mean[3] = {0.5f, 0.5f, 0.5f};
        const ImagePreprocess p = ImagePreprocess::llava_clip_cpp(1 + a % 64, mean, mean);
        int64_t h = 0, w = 0;
        const std::vector<float> v = preprocess_image(img, p, &h, &w);
        if (h != p.resize_h || w != p.resize_w || v.size() != static_cast<size_t>(3 * h * w)) __builtin_trap();
        sink += v[0] + v[v.size() - 1];
    } catch (const Error&) {
    }
    (void)sink;
    return 0;
}
