// Vision-language generation on the generated scenes (issue 20, item 5): a CLIP-style vision tower
// with LLaVA's two-layer projector feeding a small Llama decoder, trained here end to end to answer
// the VQA task's questions (train/vqa_data.h) and to describe scenes, in words.
//
// A VLM is an ordinary decoder folder plus llama.cpp's image-encoder file, so `generate --image`,
// `chat` and the server run it like any model with an mmproj:
//   config.json, model.safetensors        the Llama decoder (Hugging Face layout)
//   tokenizer.json, tokenizer_config.json byte-level BPE learned on the task's text, ChatML template
//   mmproj.gguf                           the vision tower + projector (clip.* keys, v.* / mm.* tensors)
//   eval.json, training.log, loss.svg     what train_vlm measured
// The prompt is a ChatML user turn whose content is "<image>\n" + the question; the reply is the
// answer word (or the description) and <|im_end|>. Training runs the same tokenisation
// (runtime/multimodal.h chat_to_multimodal) and the same definitions (TrainModel over the decoder
// and the tower; the tower's rows enter through TrainModel::input_rows at the marker's place).
//
// Thread safety: train_vlm is single-threaded apart from its pool; evaluate_vlm reads the models.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "runtime/chat.h"
#include "runtime/multimodal.h"
#include "tokenizer/tokenizer.h"
#include "train/vqa_data.h"

namespace llmforge::apps {

struct VlmShape {
    int64_t image_size = 64, patch = 8;
    int64_t vision_width = 96, vision_layers = 3, vision_heads = 4;
    int64_t text_width = 128, text_layers = 4, text_heads = 4, text_ff = 384;
    int64_t vocab = 512;  // the BPE vocabulary learned on the task's text (specials included)
};

struct VlmTrainOptions {
    VlmShape shape;
    std::string out;  // the model folder to write
    int64_t steps = 7000, batch = 16, warmup = 100;
    double lr = 1e-3, min_lr = 5e-5, weight_decay = 0.05, clip = 1.0;
    uint64_t seed = 1;
    int64_t train_scenes = 4000, questions_per_scene = 5, eval_scenes = 100;
    double describe_fraction = 0.2;  // share of training examples that ask for a description
    int64_t eval_every = 500;        // validation every N steps (0: only at the end)
    int threads = 2;
};

// What a VLM gets right: answers per question type (exact word), and descriptions (objects named
// with size, colour and shape; F1 over the scene's objects).
struct VlmScore {
    std::array<int64_t, train::kVqaTypes> correct{}, total{};
    int64_t described = 0;         // descriptions scored
    double describe_f1_sum = 0;    // sum of their F1
    int64_t describe_exact = 0;    // descriptions naming exactly the scene's objects
    double accuracy() const;
    double describe_f1() const { return described > 0 ? describe_f1_sum / static_cast<double>(described) : 0; }
    std::string json() const;
};

// The request that asks for a description, and the description of a scene: its objects left to
// right, "a large red circle, a small blue square and a small gray triangle".
extern const char* const kDescribePrompt;
std::string scene_description(const train::VqaScene& scene);
// F1 of a description's objects (size, colour, shape triples) against the scene's.
double description_f1(const std::string& text, const train::VqaScene& scene);

// Trains a new VLM into o.out (the folder above) and returns its validation score. Progress lines
// (loss, rate, ETA, validation accuracy) go to `log`.
VlmScore train_vlm(const VlmTrainOptions& o, const std::function<void(const std::string&)>& log);

// A loaded VLM folder (or any decoder + image encoder pair with a chat template).
struct VlmParts {
    const Model* decoder = nullptr;
    const ImageEncoder* encoder = nullptr;
    const Tokenizer* tok = nullptr;
    const ChatFormat* chat = nullptr;
};
// The reply to one question about an image (greedy, at most max_tokens).
std::string vlm_answer(const VlmParts& p, const Image& image, const std::string& question, ThreadPool& pool,
                       int64_t max_tokens = 32);
// Scores `split` (its first max_questions questions, and a description of every scene it uses
// when describe): answers generated greedily through the runtime's prompt path. shuffle_images:
// each question is shown another scene's image (what the model knows without seeing the image).
VlmScore evaluate_vlm(const VlmParts& p, const train::VqaSplit& split, int64_t max_questions, bool describe,
                      bool shuffle_images, ThreadPool& pool);

}  // namespace llmforge::apps
