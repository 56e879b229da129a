// llmforge train-vlm: trains a vision-language model (apps/vlm/vlm.h: a CLIP-style tower + LLaVA
// projector saved as mmproj.gguf, feeding a small Llama decoder) on the generated scenes.
// llmforge vlm-eval -m DIR --split test: generates answers (and descriptions) for a generated split
// through the runtime's prompt path and prints the accuracy per question type as JSON; with
// --shuffle-images every question is shown another scene's image (what the text alone gives).
// Asking a VLM about one image is `generate -m DIR --image F.png --chat -p "…"` (or `chat`).
#include <cstdio>

#include "apps/vlm/vlm.h"
#include "commands.h"
#include "core/error.h"
#include "runtime/chat.h"
#include "runtime/multimodal.h"

namespace llmforge::cli {

void add_train_vlm(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("train-vlm", "Train a vision-language model (tower + projector + Llama) on the generated scenes");
    static apps::VlmTrainOptions o;
    sub->add_option("-o,--out", o.out, "model folder to write (decoder + mmproj.gguf)")->required();
    sub->add_option("--steps", o.steps, "optimiser steps")->capture_default_str();
    sub->add_option("--batch", o.batch, "sequences per step")->capture_default_str();
    sub->add_option("--lr", o.lr, "peak learning rate (cosine schedule)")->capture_default_str();
    sub->add_option("--warmup", o.warmup, "warm-up steps")->capture_default_str();
    sub->add_option("--scenes", o.train_scenes, "training images")->capture_default_str();
    sub->add_option("--questions-per-scene", o.questions_per_scene, "questions per training image")->capture_default_str();
    sub->add_option("--describe-fraction", o.describe_fraction, "share of examples asking for a description")
        ->capture_default_str();
    sub->add_option("--eval-scenes", o.eval_scenes, "validation images")->capture_default_str();
    sub->add_option("--eval-every", o.eval_every, "validation every N steps (0: at the end)")->capture_default_str();
    sub->add_option("--vision-width", o.shape.vision_width, "tower width")->capture_default_str();
    sub->add_option("--vision-layers", o.shape.vision_layers, "tower layers")->capture_default_str();
    sub->add_option("--width", o.shape.text_width, "decoder width")->capture_default_str();
    sub->add_option("--layers", o.shape.text_layers, "decoder layers")->capture_default_str();
    sub->add_option("--vocab", o.shape.vocab, "BPE vocabulary size")->capture_default_str();
    sub->add_option("--seed", o.seed, "seed")->capture_default_str();
    sub->add_option("-t,--threads", o.threads, "threads")->capture_default_str();
    run = [] {
        if (o.shape.vision_width % o.shape.vision_heads != 0 || o.shape.text_width % o.shape.text_heads != 0)
            fail("train-vlm: --vision-width must be a multiple of %lld heads and --width of %lld",
                 (long long)o.shape.vision_heads, (long long)o.shape.text_heads);
        const apps::VlmScore s = apps::train_vlm(o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
        std::printf("%s\n", s.json().c_str());
        return 0;
    };
}

void add_vlm_eval(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("vlm-eval", "Score a vision-language model on a generated split (JSON)");
    static std::string model, split = "test", mmproj;
    static int64_t scenes = 200, questions = 600;
    static uint64_t seed = 7;
    static bool shuffle = false, describe = true;
    static int threads = 2;
    sub->add_option("-m,--model", model, "the decoder (a folder with its mmproj.gguf)")->required();
    sub->add_option("--mmproj", mmproj, "image encoder (default: the model folder's mmproj.gguf)");
    sub->add_option("--split", split, "val, test or test_iid")->capture_default_str();
    sub->add_option("--scenes", scenes, "images of the split")->capture_default_str();
    sub->add_option("--questions", questions, "questions scored (the first N)")->capture_default_str();
    sub->add_option("--seed", seed, "the split's seed")->capture_default_str();
    sub->add_flag("--shuffle-images", shuffle, "show each question another scene's image");
    sub->add_flag("!--no-describe", describe, "skip the descriptions");
    sub->add_option("-t,--threads", threads, "threads")->capture_default_str();
    run = [] {
        const auto decoder = Model::load(model);
        const std::string enc_path = mmproj.empty() ? ImageEncoder::find_for_model(model) : mmproj;
        if (enc_path.empty()) fail("vlm-eval: %s has no mmproj.gguf (hint: pass --mmproj FILE)", model.c_str());
        const auto enc = ImageEncoder::load(enc_path);
        enc->check_decoder(*decoder, "vlm-eval");
        const auto tok = Tokenizer::create(decoder->vocab());
        const ChatFormat fmt = require_chat_format(*tok, model, "", true, "vlm-eval", "--chat-template");
        train::VqaOptions o;
        o.n_scenes = scenes;
        o.seed = seed;
        o.image_size = enc->tower().config().enc.image_size;
        o.questions_per_scene = 3;
        const train::VqaSplit data = train::make_vqa_split(split, o);
        ThreadPool pool(threads);
        const apps::VlmParts parts{decoder.get(), enc.get(), tok.get(), &fmt};
        const apps::VlmScore s = apps::evaluate_vlm(parts, data, questions, describe, shuffle, pool);
        std::printf("%s\n", s.json().c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
