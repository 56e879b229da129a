// Visual question answering (apps/vqa/vqa.h): a short training run writes a folder that loads
// and answers; questions go through the model's own tokenizer; and the shipped models
// (models/vqa, `make vqa-models`) need both modalities — the fused models beat the question-only
// and image-only baselines on the held-out-combination test split.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <map>
#include <filesystem>
#include <string>

#include "apps/vqa/vqa.h"
#include "core/error.h"
#include "model/vocab_source.h"
#include "test_util.h"
#include "train/vqa_data.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

TEST(Vqa, ShortTrainingWritesAFolderThatLoadsAndAnswers) {
    apps::VqaTrainOptions o;
    o.out = test::temp_dir() + "/vqa";
    o.steps = 12;
    o.batch = 8;
    o.warmup = 2;
    o.train_scenes = 32;
    o.eval_scenes = 16;
    o.eval_every = 0;
    o.shape.vision_width = o.shape.text_width = o.shape.fusion_width = o.shape.gate_hidden = 16;
    o.shape.cls_hidden = 32;
    o.shape.vision_layers = o.shape.text_layers = 1;
    const apps::VqaScore trained = apps::train_vqa(o, [](const std::string&) {});
    for (const char* f : {"vision/config.json", "vision/model.safetensors", "vision/preprocessor_config.json",
                          "text/config.json", "text/tokenizer.json", "fusion/config.json", "fusion/answers.json",
                          "eval.json", "loss.svg"}) {
        EXPECT_TRUE(fs::exists(o.out + "/" + f)) << f;
    }
    auto m = apps::VqaModel::load(o.out);
    EXPECT_EQ(m->fusion(), FusionKind::kGated);
    EXPECT_EQ(m->answers(), train::vqa_answers());
    // The loaded folder scores the validation split exactly as the trainer's own models did.
    train::VqaOptions vo;
    vo.n_scenes = 16;
    vo.seed = 1;
    ThreadPool pool(2);
    const apps::VqaScore again = m->evaluate(train::make_vqa_split("val", vo), pool);
    EXPECT_EQ(again.correct, trained.correct);
    EXPECT_EQ(again.total, trained.total);
    // An answer from the closed set with its probability and the gate's two weights.
    const train::VqaSplit one = train::make_vqa_split("test", vo);
    const auto ans = m->answer({&one.images[0]}, {one.examples[0].question}, pool);
    ASSERT_EQ(ans.size(), 1u);
    EXPECT_NE(train::vqa_answer_id(ans[0].answer), -1);
    EXPECT_GT(ans[0].prob, 0.0f);
    EXPECT_NEAR(ans[0].gate_text + ans[0].gate_image, 1.0f, 1e-5f);
    // Bad input: one line each.
    EXPECT_NE(error_of([&] { m->answer({&one.images[0]}, {"   "}, pool); }).find("the question is empty"),
              std::string::npos);
    EXPECT_NE(error_of([&] {
                  m->answer({&one.images[0]}, {std::string(200, 'a') + " " + std::string(50, '?')}, pool);
              }).find("the model takes at most"),
              std::string::npos);
    EXPECT_NE(error_of([&] { apps::VqaModel::load(test::temp_dir()); }).find("not a VQA model folder"),
              std::string::npos);
}

TEST(Vqa, QuestionsUseTheModelsWordPieceTokenizer) {
    const std::string dir = test::src_path("models/vqa/gated/text");
    if (!fs::exists(dir + "/tokenizer.json")) GTEST_SKIP() << "models/vqa missing (make vqa-models)";
    const auto tok = Tokenizer::create(load_vocab(dir + "/tokenizer.json"));
    const std::vector<int32_t> ids = apps::vqa_question_ids(*tok, "How many RED objects are there?", 64);
    ASSERT_EQ(ids.size(), 9u);  // [CLS] how many red objects are there ? [SEP]
    EXPECT_EQ(ids.front(), tok->token_id("[CLS]"));
    EXPECT_EQ(ids.back(), tok->token_id("[SEP]"));
    for (size_t i = 1; i + 1 < ids.size(); ++i) EXPECT_NE(ids[i], tok->token_id("[UNK]")) << i;
    const std::vector<int32_t> odd = apps::vqa_question_ids(*tok, "How many zebras are there?", 64);
    EXPECT_EQ(odd[3], tok->token_id("[UNK]"));  // an unknown word is one [UNK], still answerable
}

// The shipped models on 300 generated test scenes (seed 7, never trained on; condition B: the
// colour–shape combinations training never showed). Measured (docs/vqa-eval.md, 500 scenes) far
// above these bounds; the bounds leave room for the smaller sample.
TEST(Vqa, FusedModelsBeatBothSingleModalityBaselines) {
    const std::string root = test::src_path("models/vqa");
    for (const char* k : {"text", "image", "gated", "concat", "cross"})
        if (!fs::exists(root + "/" + k + "/fusion/config.json")) GTEST_SKIP() << "models/vqa/" << k << " missing";
    train::VqaOptions o;
    o.n_scenes = 300;
    o.seed = 7;
    const train::VqaSplit test = train::make_vqa_split("test", o);
    ThreadPool pool(2);
    std::map<std::string, apps::VqaScore> s;
    for (const char* k : {"text", "image", "gated", "concat", "cross"}) s[k] = apps::VqaModel::load(root + "/" + k)->evaluate(test, pool);
    const double best_single = std::max(s["text"].accuracy(), s["image"].accuracy());
    for (const char* k : {"text", "image", "gated", "concat", "cross"}) std::printf("%-7s %.3f\n", k, s[k].accuracy());
    // Measured on 2,500 questions: gated +0.045, concat +0.067, cross +0.073 over the question-only
    // model; asserted: at least +0.025 (the sample here is 1,500 questions, about ±0.013).
    for (const char* k : {"gated", "concat", "cross"}) {
        EXPECT_GT(s[k].accuracy(), best_single + 0.025) << k << " " << s[k].accuracy() << " vs " << best_single;
    }
    // The question alone is near chance per type (the answers are balanced per template).
    EXPECT_LT(s["text"].accuracy(), 0.40);
    // The image alone cannot know what is asked.
    EXPECT_LT(s["image"].accuracy(), 0.30);
    // The gate's weights are reported per type, each a share in [0, 1].
    ASSERT_TRUE(s["gated"].has_gate);
    for (double g : s["gated"].gate_image) EXPECT_TRUE(g >= 0.0 && g <= 1.0) << g;
}

}  // namespace
}  // namespace llmforge
