// Image preprocessing for vision encoders: an RGB image (io/image.h) -> pixel_values, exactly as
// Hugging Face's CLIPImageProcessor / ViTImageProcessor / SiglipImageProcessor compute them (the
// "slow" processors, which resize with Pillow):
//   1. resize (do_resize): shortest_edge > 0 -> the short side becomes shortest_edge and the long
//      side int(shortest_edge * long / short) (get_resize_output_image_size, default_to_square =
//      False; no resize when the short side already matches); else exactly resize_w x resize_h.
//      The resize is Pillow's Image.resize on 8-bit RGB (resize_like_pil below), bit for bit.
//   2. center crop (do_center_crop): top = (H - crop_h) // 2, left = (W - crop_w) // 2 (Python
//      floor division); where the crop is larger than the image, the image is first zero-padded
//      to max(crop, size) with ceil((new - old) / 2) rows/columns before it (image_transforms.
//      center_crop). The output is always crop_h x crop_w; padding is 0 before rescale/normalize.
//   3. rescale (do_rescale): float32(double(x) * rescale) — numpy's float64 multiply, then cast.
//   4. normalize (do_normalize): (x - mean[c]) / std[c] in float32.
//   5. channels first: (3, H, W).
// Pinned against numpy + Pillow 9.4 by tests/data/images/make_image_refs.py.
//
// Only the cropped window of the resized image is computed (Pillow's resampling is separable and
// each output pixel depends only on its own coefficients), so a 1 x 4000 image resized to
// 224 x 896000 before a 224 x 224 crop costs a 224 x 224 resize.
//
// Not reproduced: HF's channel-format guess on images whose height is 1 or 3 (infer_channel_
// dimension_format takes such an (H, W, 3) array for channels-first); here an image is always
// H x W x 3. EXIF orientation is not applied (the processors do not; transformers' load_image does).
//
// Thread safety: pure functions.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "io/image.h"

namespace llmforge {

struct ImagePreprocess {
    enum class Filter { kNearest, kBilinear, kBicubic };  // PIL resample 0, 2, 3
    bool do_resize = true;
    int64_t shortest_edge = 224;         // > 0: the short side becomes this (aspect kept)
    int64_t resize_w = 0, resize_h = 0;  // used when shortest_edge == 0: exact size
    Filter filter = Filter::kBicubic;
    bool do_center_crop = true;
    int64_t crop_w = 224, crop_h = 224;
    bool do_rescale = true;
    double rescale = 1.0 / 255.0;
    bool do_normalize = true;
    float mean[3] = {0.48145466f, 0.4578275f, 0.40821073f};
    float std[3] = {0.26862954f, 0.26130258f, 0.27577711f};

    // openai/clip-vit-*: shortest edge 224, bicubic, center crop 224, OpenAI CLIP mean/std.
    static ImagePreprocess clip();
    // google/vit-base-patch16-224 (ViTImageProcessor): 224 x 224 exact, bilinear, no crop,
    // mean = std = 0.5.
    static ImagePreprocess vit();
    // google/siglip-base-patch16-224 (SiglipImageProcessor): 224 x 224 exact, bicubic, no crop,
    // mean = std = 0.5.
    static ImagePreprocess siglip();
    // Reads a Hugging Face preprocessor_config.json. The processor class (image_processor_type,
    // else feature_extractor_type: CLIP*, ViT*, Siglip*, with or without "Fast") gives the
    // defaults and what an integer "size" means (CLIP: the shortest edge; ViT / SigLIP: a square);
    // then size {shortest_edge | height, width} | int | [h, w], crop_size (CLIP only; int,
    // {height, width} or [h, w]), resample (0, 2, 3), do_resize, do_center_crop, do_rescale,
    // rescale_factor, do_normalize, image_mean, image_std (3 numbers or one) override them. Other
    // keys are ignored. Errors are one line naming the file and the key.
    static ImagePreprocess from_hf_json(const std::string& path);
};

// The pixel_values of one image: (3, H, W) float32, channel-major (as HF returns), H/W after the
// crop (or after the resize when there is no crop). Throws Error for an empty image or settings
// without a size, and kResource when the output would exceed 2^26 pixels.
std::vector<float> preprocess_image(const Image& img, const ImagePreprocess& p, int64_t* out_h, int64_t* out_w);

// Pillow's Image.resize((w, h), resample) on an 8-bit RGB image, bit-exact: nearest is Pillow's
// affine scale (source = int((x + 0.5) * in / out) accumulated as Pillow does); bilinear and bicubic
// (a = -0.5) are its separable convolution, horizontal pass first into an 8-bit intermediate, the
// filter support widened by the downscale factor (antialiasing), coefficients normalised to sum 1
// and fixed-point with 22 fraction bits, rounded and clipped as Pillow. Same size -> a copy.
Image resize_like_pil(const Image& img, int64_t w, int64_t h, ImagePreprocess::Filter f);

}  // namespace llmforge
