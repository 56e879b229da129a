// Images in a decoder's prompt, LLaVA style: an image encoder (a vision tower + projector, llama.cpp's
// "mmproj") turns an image into rows in the decoder's embedding space, and those rows take the
// place of the image's marker in the prompt, as token embeddings would (SeqBatch::embd).
//
//   prompt text "USER: <image>\nWhat is left of the circle? ASSISTANT:"
//      → [tokens "USER: "] [image rows (n_tokens, n_embd)] [tokens "\nWhat is … ASSISTANT:"]
//
// The markers are Hugging Face LLaVA's "<image>" and llama.cpp's "<__media__>"; a prompt without a
// marker gets its images first (after BOS), which is where LLaVA-style models were trained to see
// them. Each text part is encoded on its own (BOS only before the first), as llama.cpp's mtmd does.
//
// Thread safety: an ImageEncoder is immutable after load; embed() may run concurrently with
// separate pools. The free functions are pure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/thread_pool.h"
#include "io/image.h"
#include "model/image_preprocess.h"
#include "model/model.h"
#include "runtime/context.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge {

class Sampler;

class ImageEncoder {
public:
    // An mmproj GGUF (llama.cpp's vision tower + projector: clip.* keys) or a model folder holding
    // one (mmproj.gguf, else the one mmproj*.gguf). Throws Error (one line) when it is not an image
    // encoder with a projector. encode_type: the tower's weight products (Model::set_encode_type):
    // f32, or bf16 (AMX tiles where the CPU has them: ~4x a f32 ViT-B encode here, rows within
    // ~1e-2 relative; docs/PERFORMANCE.md "Vision encoder").
    static std::unique_ptr<ImageEncoder> load(const std::string& path, DType encode_type = DType::F32);
    // The image encoder that comes with a decoder at `model_path`: its folder's (or, for a file,
    // its directory's) mmproj.gguf / single mmproj*.gguf; "" when there is none.
    static std::string find_for_model(const std::string& model_path);
    // Over a tower already loaded (not owned: it must outlive the encoder), e.g. a trainer's
    // inference twin; `where` names it in messages. Same checks as load().
    static std::unique_ptr<ImageEncoder> from_model(const Model& tower, const ImagePreprocess& pre,
                                                    const std::string& where);

    // Fails (one line naming `where`) when the rows this encoder makes are not the decoder's width.
    void check_decoder(const Model& decoder, const std::string& where) const;
    int64_t n_tokens() const { return n_tokens_; }  // rows per image
    int64_t width() const { return width_; }        // the decoder's n_embd
    const std::string& path() const { return path_; }
    const Model& tower() const { return *tower_; }
    const ImagePreprocess& preprocess() const { return pre_; }
    // One image's rows (n_tokens, width).
    std::vector<float> embed(const Image& image, ThreadPool& pool) const;

private:
    ImageEncoder() = default;
    std::unique_ptr<Model> owned_;
    const Model* tower_ = nullptr;
    ImagePreprocess pre_;
    std::string path_;
    int64_t n_tokens_ = 0, width_ = 0;
};

// An image's place in the prompt: its rows and a hash of its content (prefix-cache keys).
struct PromptImage {
    std::vector<float> rows;  // (n_rows, n_embd)
    int64_t n_rows = 0;
    uint64_t hash = 0;
};

// A prompt of text and images, in order: runs of token ids and images.
struct MultimodalPrompt {
    struct Piece {
        std::vector<int32_t> tokens;  // a run of tokens (empty for an image)
        int image = -1;               // index into images, or -1
    };
    std::vector<Piece> pieces;
    std::vector<PromptImage> images;
    // Positions the prompt takes (tokens + image rows).
    int64_t n_positions() const;
    // Every position's id, with each image row given a stand-in id derived from the image's hash
    // and the row (negative, so never a vocabulary id): equal prompts — images by content — give
    // equal keys, for the prefix cache and for comparing prompts.
    std::vector<int32_t> position_keys() const;
    // The token ids only (the sampler's penalty history), in order.
    std::vector<int32_t> text_tokens() const;
};

// True when text contains an image marker ("<image>" or "<__media__>").
bool has_image_marker(std::string_view text);
// The number of markers in text.
int64_t count_image_markers(std::string_view text);

// Splits `text` at its image markers and encodes the parts (encode_prompt's BOS rule for the first;
// special-token text parsed when parse_special), the i-th marker taking images[i]. With no marker
// the images come first, after BOS. Fails (one line) when markers and images do not pair up.
MultimodalPrompt build_multimodal_prompt(const Tokenizer& tok, std::string_view text, std::vector<PromptImage> images,
                                         bool allow_bos, bool parse_special);

// A conversation with images: rendered with the chat template (render_chat), then split at its
// image markers (build_multimodal_prompt with special-token text parsed). Each image a message
// carries must already be a marker in its content (flatten_content_parts does that for OpenAI
// content parts).
MultimodalPrompt chat_to_multimodal(const Tokenizer& tok, const ChatTemplate& tmpl, ChatTemplateInputs in,
                                    std::vector<PromptImage> images, bool allow_bos = true);

// The image's rows from an encoder, hashed by the image's pixels.
PromptImage prompt_image(const ImageEncoder& enc, const Image& image, ThreadPool& pool);

// Runs the prompt through ctx up to its last run of tokens and returns that run (what generate()
// takes as its prompt, so sampling and timing stay generate()'s); all of it when the prompt ends
// with an image (the empty run then gives generate() the last image row's logits). history: the
// sampler that sees the fed tokens (its penalties' history; generate() adds the rest). from: the
// positions [0, from) are already in ctx's cache (a conversation's earlier turns): only the rest
// is fed (from may fall inside an image: its remaining rows are fed).
std::vector<int32_t> feed_multimodal_prompt(Context& ctx, const MultimodalPrompt& p, Sampler* history = nullptr,
                                            int64_t from = 0);

}  // namespace llmforge
