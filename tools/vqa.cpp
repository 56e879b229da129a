// llmforge train-vqa: trains a visual question answering model (apps/vqa/vqa.h: ViT + RoBERTa +
// fusion, or a single-modality baseline) on the generated CLEVR-like task and writes its folder.
// llmforge vqa -m DIR --image F.png -q "…": answers a question about an image (and shows the gated
// fusion's trust in the image); with --eval SPLIT, scores the model on a generated split per
// question type.
#include <cstdio>

#include "apps/vqa/vqa.h"
#include "commands.h"
#include "core/error.h"
#include "io/image.h"
#include "train/vqa_data.h"

namespace llmforge::cli {

void add_train_vqa(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("train-vqa", "Train a visual question answering model on the generated scenes");
    static apps::VqaTrainOptions o;
    static std::string fusion = "gated";
    sub->add_option("-o,--out", o.out, "model folder to write (vision/, text/, fusion/)")->required();
    sub->add_option("--fusion", fusion, "gated, concat, cross, text (question only) or image (image only)")
        ->capture_default_str();
    sub->add_option("--steps", o.steps, "optimiser steps")->capture_default_str();
    sub->add_option("--batch", o.batch, "questions per step")->capture_default_str();
    sub->add_option("--lr", o.lr, "peak learning rate (cosine schedule)")->capture_default_str();
    sub->add_option("--warmup", o.warmup, "warm-up steps")->capture_default_str();
    sub->add_option("--scenes", o.train_scenes, "training images")->capture_default_str();
    sub->add_option("--questions-per-scene", o.questions_per_scene, "questions per training image")->capture_default_str();
    sub->add_option("--eval-scenes", o.eval_scenes, "validation images")->capture_default_str();
    sub->add_option("--eval-every", o.eval_every, "validation every N steps (0: at the end)")->capture_default_str();
    sub->add_option("--image-size", o.shape.image_size, "image side (pixels)")->capture_default_str();
    sub->add_option("--patch", o.shape.patch, "ViT patch side")->capture_default_str();
    sub->add_option("--width", o.shape.vision_width, "encoder and fusion width")->capture_default_str();
    sub->add_option("--layers", o.shape.vision_layers, "layers of each encoder")->capture_default_str();
    sub->add_option("--seed", o.seed, "seed")->capture_default_str();
    sub->add_option("-t,--threads", o.threads, "threads")->capture_default_str();
    run = [] {
        if (!fusion_kind_from_name(fusion, &o.shape.fusion)) {
            fail("train-vqa: --fusion is '%s', expected gated, concat, cross, text or image", fusion.c_str());
        }
        if (o.shape.image_size % o.shape.patch != 0) {
            fail("train-vqa: --image-size %lld is not a multiple of --patch %lld", (long long)o.shape.image_size,
                 (long long)o.shape.patch);
        }
        if (o.shape.vision_width % 4 != 0 || o.shape.vision_width <= 0 || o.shape.vision_layers <= 0) {
            fail("train-vqa: --width must be a positive multiple of 4 (4 heads) and --layers >= 1");
        }
        o.shape.text_width = o.shape.fusion_width = o.shape.gate_hidden = o.shape.vision_width;
        o.shape.cls_hidden = 2 * o.shape.vision_width;
        o.shape.text_layers = o.shape.vision_layers;
        const apps::VqaScore s = apps::train_vqa(o, [](const std::string& line) { std::fprintf(stderr, "%s\n", line.c_str()); });
        std::printf("validation accuracy %.3f\n", s.accuracy());
        for (int t = 0; t < train::kVqaTypes; ++t)
            std::printf("  %-12s %.3f\n", train::vqa_type_name(static_cast<train::VqaType>(t)), s.accuracy(t));
        return 0;
    };
}

void add_vqa(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("vqa", "Answer a question about an image with a VQA model (or score it)");
    static std::string model, image, question, eval, encode_type = "f32";
    static int64_t scenes = 400;
    static uint64_t seed = 7;
    static int threads = 2;
    sub->add_option("-m,--model", model, "VQA model folder (llmforge train-vqa)")->required();
    sub->add_option("--encode-type", encode_type,
                    "encoder products in f32 or bf16 (AMX tiles where the CPU has them; docs/PERFORMANCE.md)")
        ->check(CLI::IsMember({"f32", "bf16"}))
        ->capture_default_str();
    sub->add_option("--image", image, "PNG or JPEG image");
    sub->add_option("-q,--question", question, "the question");
    sub->add_option("--eval", eval, "score on a generated split instead: val, test, test_iid");
    sub->add_option("--scenes", scenes, "--eval: images of the split")->capture_default_str();
    sub->add_option("--seed", seed, "--eval: the split's seed")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads")->capture_default_str();
    run = [] {
        const auto m = apps::VqaModel::load(model);
        m->set_encode_type(encode_type == "bf16" ? DType::BF16 : DType::F32);
        ThreadPool pool(threads);
        if (!eval.empty()) {
            if (!image.empty() || !question.empty()) fail("vqa: --eval scores a split; leave out --image and -q");
            train::VqaOptions o;
            o.n_scenes = scenes;
            o.seed = seed;
            o.image_size = m->image_size() > 0 ? m->image_size() : 64;
            const apps::VqaScore s = m->evaluate(train::make_vqa_split(eval, o), pool);
            std::printf("%s\n", s.json().c_str());
            return 0;
        }
        if (image.empty() || question.empty()) fail("vqa: give --image F.png and -q \"question\" (or --eval SPLIT)");
        const Image img = load_image(image);
        const auto ans = m->answer({&img}, {question}, pool);
        std::printf("%s\n", ans[0].answer.c_str());
        std::fprintf(stderr, "vqa: p = %.3f", ans[0].prob);
        if (ans[0].gate_image >= 0) std::fprintf(stderr, "  gate: text %.2f, image %.2f", ans[0].gate_text, ans[0].gate_image);
        std::fprintf(stderr, "\n");
        return 0;
    };
}

}  // namespace llmforge::cli
