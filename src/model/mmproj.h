// llama.cpp's image-encoder GGUF, the "mmproj" of LLaVA-style models, read and written: a CLIP vision
// tower plus a projector into a language model's embedding space (general.architecture "clip",
// clip.* keys, v.* / mm.* tensors), as examples/llava/convert_image_encoder_to_gguf.py writes it
// and examples/llava/clip.cpp runs it (llama.cpp c392e50, Feb 2025).
//
// Reading (open_model_files / Model::load of such a file, through mmproj_files): a clip_vision
// ModelConfig with EncoderConfig::projector set, configured as clip.cpp runs the file:
//   * keys: clip.has_vision_encoder (true), clip.has_text_encoder (false), clip.has_llava_projector
//     (true), clip.projector_type ("mlp", also clip.cpp's default when absent; "linear" is
//     llmforge's own: clip.cpp has no linear projector), clip.use_gelu (true: gelu, false:
//     quick_gelu; clip.use_silu must not be true), clip.vision.{image_size, patch_size,
//     embedding_length, feed_forward_length, attention.head_count, attention.layer_norm_epsilon,
//     block_count, image_mean, image_std}; clip.vision.projection_dim is not used (the converter
//     drops visual_projection for LLaVA).
//   * layers: clip.cpp's LLaVA graph runs block_count − 1 of the stored blocks (its loop is
//     `il < n_layer - 1`, and the converter already stored num_hidden_layers − 1 of them, so a
//     LLaVA-1.5 file runs 22 of CLIP-L's 24 layers, one fewer than HF's vision_feature_layer −2:
//     llama.cpp issue #25817). The loaded config has n_layer = block_count and feature_layer = −2,
//     which is exactly that. A file with the newer clip.vision.feature_layer key (one integer
//     k >= 0: hidden_states[k], HF's meaning) gets feature_layer = k instead; several (Granite's
//     concatenated layers) are refused.
//   * rows: the class row is dropped (clip.cpp's `patches` are rows 1..N: HF's "default").
//   * LayerNorms: v.pre_ln over the embeddings; v.post_ln, when the file has one (the converter
//     leaves it out for LLaVA), over every row before the projector (clip.cpp's has_post_norm:
//     EncoderConfig::proj_post_norm). mlp: mm.0 → GELU → mm.2 (clip.cpp; mm.3 present means
//     Yi-VL's mlp_norm: refused).
//   * tensor names: as the table's (model/arch/vit.cpp) except the feed-forward pair, which the
//     converter swapped: its v.blk.N.ffn_down is CLIP's fc1 (feed_forward_length × embedding_length)
//     and ffn_up is fc2; they are renamed on the way in and out.
//   Differences from clip.cpp's arithmetic (not its structure): clip.cpp computes GELU and
//   quick_gelu from f16 lookup tables and rounds activations to f16 before f16 matrix products;
//   llmforge computes the functions in f32 (gelu in its erf form, the function HF LLaVA's
//   projector and CLIP's "gelu" compute), so embeddings agree to about 1e-2 relative
//   (tests/model/mmproj_test.cpp pins clip.cpp's own output).
//   Bad files fail with one line naming the file and the key or tensor, expected vs found.
//
// Writing (save_mmproj / write_mmproj): a clip_vision tower with a projector (selection "default",
// projector act gelu, tower act quick_gelu or gelu) as a file clip.cpp loads and runs the same
// way: the keys above, block_count = feature_depth + 1 blocks (clip.cpp runs all but the last; when
// the feature layer is the last layer's output, the extra block is zeros and never runs), the
// patch embedding in f16 (the converter always writes it so), other matrices f16 (or f32), 1-D
// tensors f32, v.post_ln only with proj_post_norm, mm.0 / mm.2.
//
// Preprocessing (mmproj_preprocess, image_preprocess_for): what clip_image_preprocess does for a
// LLaVA-1.5 file (no image_grid_pinpoints): ImagePreprocess::llava_clip_cpp (model/image_preprocess.h).
// A llava-1.6 file's anyres keys (clip.vision.image_grid_pinpoints, mm_patch_merge_type) are not
// read: its images get the LLaVA-1.5 path too (one padded, resized image, no tiles).
//
// Thread safety: pure functions of their arguments.
#pragma once

#include <functional>
#include <string>

#include "io/gguf.h"
#include "model/config.h"
#include "model/image_preprocess.h"
#include "model/model.h"

namespace llmforge {

// general.architecture is "clip" (an mmproj, or another clip.cpp file).
bool is_mmproj(const GgufFile& f);

// The ModelFiles of an mmproj: config as above, tensors (views into the file) under the table's
// GGUF names. open_model_files calls it for general.architecture "clip".
ModelFiles mmproj_files(const GgufFile& f);

// The preprocessing clip.cpp gives an mmproj's images (image_size, image_mean, image_std).
ImagePreprocess mmproj_preprocess(const GgufFile& f);

struct MmprojWriteOptions {
    bool f16 = true;  // matrices (2-D weights) in f16, the converter's default; false: f32
    std::string name = "llmforge vision tower";
    std::string description = "image encoder for LLaVA";
};

// Our GGUF-named tensor's values (numel floats, row-major) into out.
using MmprojValues = std::function<void(const std::string& name, float* out)>;

// Writes config `c` (arch clip_vision with a projector) and the tensors `values` gives as an mmproj
// (atomically). mean / std: the images' normalisation (clip.vision.image_mean / image_std). Throws
// Error (one line) for a config clip.cpp cannot run this way.
void write_mmproj(const std::string& path, const ModelConfig& c, const MmprojValues& values, const float mean[3],
                  const float std[3], const MmprojWriteOptions& o = {});
// A loaded tower (a trainer's twin: TrainModel::inference()) and its preprocessing's mean / std.
// Quantised matrices repacked at load (x8 layout) are refused (hint: Model::from_files(files, false)).
void save_mmproj(const std::string& path, const Model& tower, const ImagePreprocess& pre,
                 const MmprojWriteOptions& o = {});

}  // namespace llmforge
