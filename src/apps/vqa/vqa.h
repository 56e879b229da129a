// Visual question answering (issue 20, item 4): an image encoder (ViT), a text encoder (RoBERTa)
// and a fusion model with an answer classifier (model/arch/fusion.cpp: gated, concat, cross, or a
// text-only / image-only baseline), trained here end to end on the generated CLEVR-like task
// (train/vqa_data.h), and run by `llmforge vqa`.
//
// A VQA model is a folder:
//   vision/   a ViT (HF ViTModel folder) + preprocessor_config.json (ViTImageProcessor: the
//             image resized to the model's size, mean = std = 0.5)      (absent: text-only)
//   text/     a RoBERTa (HF RobertaModel folder) + tokenizer.json (BERT-uncased WordPiece over
//             the questions' words; [CLS] question [SEP])                (absent: image-only)
//   fusion/   the fusion model (config "fusion": its kind) + answers.json (the closed answer set)
//   tokenizer.json   (image-only models: the question tokenizer, unused by the model)
//   eval.json, training.log, loss.svg (what train_vqa measured)
// All three are ordinary model folders: Model / TrainModel load them, so training and inference
// run the same definitions.
//
// Thread safety: a VqaModel is immutable after load; answer() and evaluate() may run concurrently
// with their own pools.
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/image.h"
#include "model/image_preprocess.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"
#include "train/vqa_data.h"

namespace llmforge::apps {

// The shapes of a new VQA model.
struct VqaShape {
    FusionKind fusion = FusionKind::kGated;
    int64_t image_size = 64, patch = 8;
    int64_t vision_width = 64, vision_layers = 2, vision_heads = 4;
    int64_t text_width = 64, text_layers = 2, text_heads = 4;
    int64_t fusion_width = 64, gate_hidden = 64, cls_hidden = 128, cross_layers = 1, cross_heads = 4;
};

struct VqaTrainOptions {
    VqaShape shape;
    std::string out;  // the model folder to write
    int64_t steps = 2000, batch = 32, warmup = 100;
    double lr = 1e-3, min_lr = 5e-5, weight_decay = 0.05, clip = 1.0;
    uint64_t seed = 1;
    int64_t train_scenes = 4000, questions_per_scene = 5, eval_scenes = 400;
    int64_t eval_every = 500;  // validation accuracy every N steps (0: only at the end)
    int threads = 2;
};

// Accuracy per question type (train::VqaType order) and, for gated fusion, the mean weight the
// gate gave the image per type (−1: no gate).
struct VqaScore {
    std::array<int64_t, train::kVqaTypes> correct{}, total{};
    std::array<double, train::kVqaTypes> gate_image{};
    bool has_gate = false;
    double accuracy() const;
    double accuracy(int type) const;
    std::string json() const;  // {"accuracy": …, "types": {"count": {"accuracy", "n", "gate_image"}, …}}
};

class VqaModel {
public:
    // Throws Error (one line) for a folder that is not a VQA model.
    static std::unique_ptr<VqaModel> load(const std::string& dir);

    struct Answer {
        std::string answer;
        float prob = 0;                  // its softmax probability
        float gate_text = -1, gate_image = -1;  // gated fusion's weights (−1 otherwise)
    };
    // One answer per (image, question) pair (images may repeat); bad questions (empty, too long)
    // are one-line errors.
    std::vector<Answer> answer(const std::vector<const Image*>& images, const std::vector<std::string>& questions,
                               ThreadPool& pool) const;
    // Accuracy of the split's examples, in batches.
    VqaScore evaluate(const train::VqaSplit& split, ThreadPool& pool) const;

    // The precision of the three encoders' products (Model::set_encode_type: f32, the default, or
    // bf16, on AMX tiles where the CPU has them). Call before answering.
    void set_encode_type(DType t) {
        for (Model* m : {vision_.get(), text_.get(), fusion_.get()}) m->set_encode_type(t);
    }
    FusionKind fusion() const { return fusion_->config().fusion.kind; }
    const std::vector<std::string>& answers() const { return answers_; }
    int64_t image_size() const { return image_size_; }

private:
    VqaModel() = default;
    std::unique_ptr<Model> vision_, text_, fusion_;
    std::unique_ptr<Tokenizer> tok_;
    ImagePreprocess pre_;
    std::vector<std::string> answers_;
    int64_t image_size_ = 0, max_tokens_ = 0;
};

// Trains a VQA model of `o.shape` on the generated task and writes it to o.out; returns the
// validation score. `log` gets progress lines (step, loss, accuracy, rate, ETA).
VqaScore train_vqa(const VqaTrainOptions& o, const std::function<void(const std::string&)>& log);

// The question's token ids: [CLS] words [SEP] (the text encoder's input), through the model's
// tokenizer; fails (one line) on an empty question or one over max_tokens.
std::vector<int32_t> vqa_question_ids(const Tokenizer& tok, const std::string& question, int64_t max_tokens);

}  // namespace llmforge::apps
