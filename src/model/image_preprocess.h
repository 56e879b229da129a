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

struct ModelConfig;
struct ModelFiles;

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
    // llama.cpp clip.cpp's LLaVA-1.5 preprocessing (clip_image_preprocess without
    // image_grid_pinpoints) instead of the Hugging Face steps above (which are then ignored but
    // mean / std and resize_w = resize_h, the output side): see llava_clip_cpp().
    bool clip_cpp = false;
    uint8_t pad_color[3] = {122, 116, 104};  // LLaVA's background: the mean colour · 255

    // openai/clip-vit-*: shortest edge 224, bicubic, center crop 224, OpenAI CLIP mean/std.
    static ImagePreprocess clip();
    // google/vit-base-patch16-224 (ViTImageProcessor): 224 x 224 exact, bilinear, no crop,
    // mean = std = 0.5.
    static ImagePreprocess vit();
    // google/siglip-base-patch16-224 (SiglipImageProcessor): 224 x 224 exact, bicubic, no crop,
    // mean = std = 0.5.
    static ImagePreprocess siglip();
    // What llama.cpp's clip.cpp (c392e50, clip_image_preprocess) does with an mmproj's
    // image_size / image_mean / image_std for LLaVA-1.5, reproduced bit for bit (both in plain f32
    // arithmetic: generic x86-64 code, no FMA contraction):
    //   1. a non-square image is padded to a square of its longer side with pad_color, the image at
    //      the TOP-LEFT (LLaVA's own expand2square centres it; clip.cpp copies it to (0, 0));
    //   2. resized to size × size by clip.cpp's own bilinear sampling: scale = side / size,
    //      source = (x + 0.5) · scale − 0.5, x0 = max(0, floor), x1 = min(x0 + 1, side − 1), the
    //      two-tap lerp in x then y (no antialiasing: a downscale reads 2×2 pixels per output pixel,
    //      unlike Pillow; x0 clamped to 0 with a negative weight extrapolates at the top-left edge,
    //      as clip.cpp does), rounded and clipped to 8 bits;
    //   3. (float(u) / 255 − mean[c]) / std[c] (clip.cpp's float division, not HF's rescale multiply).
    // Hugging Face LLaVA-1.5 differs (CLIPImageProcessor: shortest edge 336 bicubic + centre crop,
    // no padding); llava-1.6's anyres tiling and MiniCPM-V's slicing are not reproduced.
    static ImagePreprocess llava_clip_cpp(int64_t size, const float mean[3], const float std[3]);
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

// A vision tower's input rows for a batch of images (Model::encode's `input`): each image
// preprocessed by `p`, then image_patch_rows (a class placeholder row first when the tower has a
// class token). Fails (one line naming `where`) when the preprocessor's output size is not the
// tower's image_size (preprocessor and tower configs disagree).
std::vector<float> vision_input_rows(const ModelConfig& tower, const ImagePreprocess& p,
                                     const std::vector<const Image*>& images, const std::string& where);

// The preprocessing a loaded vision tower's images need: an mmproj's (model/mmproj.h: its keys,
// clip.cpp's LLaVA-1.5 path), a Hugging Face folder's preprocessor_config.json when it has one,
// else the arch's defaults at the tower's image_size (clip_vision: clip() with shortest edge and
// crop = image_size; vit: vit(); siglip_vision: siglip(), both image_size square).
ImagePreprocess image_preprocess_for(const ModelFiles& files);

// Pillow's Image.resize((w, h), resample) on an 8-bit RGB image, bit-exact: nearest is Pillow's
// affine scale (source = int((x + 0.5) * in / out) accumulated as Pillow does); bilinear and bicubic
// (a = -0.5) are its separable convolution, horizontal pass first into an 8-bit intermediate, the
// filter support widened by the downscale factor (antialiasing), coefficients normalised to sum 1
// and fixed-point with 22 fraction bits, rounded and clipped as Pillow. Same size -> a copy.
Image resize_like_pil(const Image& img, int64_t w, int64_t h, ImagePreprocess::Filter f);

}  // namespace llmforge
