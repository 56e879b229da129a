#include "apps/vlm/vlm.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "model/hf_config.h"
#include "model/mmproj.h"
#include "model/vocab_source.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "tokenizer/bpe_learner.h"
#include "train/checkpoint.h"
#include "train/ops.h"
#include "train/optimizer.h"
#include "train/train_model.h"

namespace llmforge::apps {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* const kDescribePrompt = "Describe the image.";

namespace {

const std::vector<std::string> kSpecials = {"<|endoftext|>", "<|im_start|>", "<|im_end|>"};

// The user turn's content: the image's marker, then the request.
std::string user_content(const std::string& request) { return "<image>\n" + request; }

std::string object_words(const train::VqaObject& o) {
    return train::vqa_sizes()[static_cast<size_t>(o.size)] + " " + train::vqa_colors()[static_cast<size_t>(o.color)] +
           " " + train::vqa_shapes()[static_cast<size_t>(o.shape)];
}

// ---- the parts' configurations ----

ModelConfig decoder_config(const VlmShape& s, int64_t vocab) {
    const json j = {{"model_type", "llama"},
                    {"hidden_size", s.text_width},
                    {"intermediate_size", s.text_ff},
                    {"num_hidden_layers", s.text_layers},
                    {"num_attention_heads", s.text_heads},
                    {"num_key_value_heads", s.text_heads},
                    {"vocab_size", vocab},
                    {"max_position_embeddings", 512},
                    {"rms_norm_eps", 1e-5},
                    {"rope_theta", 10000.0},
                    {"tie_word_embeddings", true}};
    return hf_config_parse(j.dump(), "vlm decoder config");
}

// A CLIP vision tower (pre- and post-LayerNorm, quick_gelu) whose last layer's rows, class row
// dropped, go through LLaVA-1.5's projector (linear, GELU, linear) into the decoder's width.
ModelConfig tower_config(const VlmShape& s) {
    const json j = {{"model_type", "clip_vision_model"}, {"hidden_size", s.vision_width},
                    {"intermediate_size", 4 * s.vision_width}, {"num_hidden_layers", s.vision_layers},
                    {"num_attention_heads", s.vision_heads}, {"image_size", s.image_size},
                    {"patch_size", s.patch}, {"num_channels", 3},
                    {"hidden_act", "quick_gelu"}, {"layer_norm_eps", 1e-5}};
    ModelConfig c = hf_config_parse(j.dump(), "vlm vision tower config");
    c.enc.projector = Projector::kMlp;
    c.enc.proj_out = s.text_width;
    c.enc.feature_layer = -1;
    c.enc.feature_select_full = false;
    return c;
}

// The tower's preprocessing: the scene resized to the tower's size, mean = std = 0.5 (the scenes
// are already square; what the mmproj records as image_mean / image_std).
ImagePreprocess tower_preprocess(int64_t size) {
    ImagePreprocess p = ImagePreprocess::siglip();
    p.resize_w = p.resize_h = size;
    return p;
}

// The text the tokenizer is learned on: every turn the task can produce, rendered.
std::string corpus_text(const ChatTemplate& tmpl, const train::VqaSplit& data) {
    std::string text;
    auto turn = [&](const std::string& request, const std::string& reply) {
        ChatTemplateInputs in;
        in.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", user_content(request)}},
                                                     {{"role", "assistant"}, {"content", reply}}});
        in.add_generation_prompt = false;
        text += tmpl.render(in);
    };
    for (const train::VqaExample& e : data.examples)
        turn(e.question, train::vqa_answers()[static_cast<size_t>(e.answer)]);
    for (size_t i = 0; i < data.scenes.size(); i += 4) turn(kDescribePrompt, scene_description(data.scenes[i]));
    return text;
}

// One training sequence: the prompt's tokens with the image's place (`at`: tokens before it) and
// the reply's tokens (the loss is on them and on <|im_end|>).
struct Example {
    std::vector<int32_t> tokens;  // prompt text tokens (image removed) + reply tokens
    int32_t at = 0;               // image rows go before tokens[at]
    int32_t reply = 0;            // tokens[reply..] are the reply
    int64_t image = 0;            // scene index
};

Example make_example(const Tokenizer& tok, const ChatFormat& fmt, const std::string& request, const std::string& reply,
                     int64_t image) {
    ChatTemplateInputs in;
    in.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", user_content(request)}}});
    PromptImage stand_in;  // the rows do not matter here, only where they go
    MultimodalPrompt p = chat_to_multimodal(tok, fmt.tmpl, std::move(in), {stand_in});
    Example e;
    e.image = image;
    for (const MultimodalPrompt::Piece& piece : p.pieces) {
        if (piece.image >= 0) e.at = static_cast<int32_t>(e.tokens.size());
        e.tokens.insert(e.tokens.end(), piece.tokens.begin(), piece.tokens.end());
    }
    e.reply = static_cast<int32_t>(e.tokens.size());
    const std::vector<int32_t> r = encode_prompt(tok, reply + "<|im_end|>", false, true);
    e.tokens.insert(e.tokens.end(), r.begin(), r.end());
    return e;
}

bool same_answer(const std::string& reply, const std::string& answer) {
    size_t a = 0, b = reply.size();
    while (a < b && std::isspace(static_cast<unsigned char>(reply[a]))) ++a;
    while (b > a && (std::isspace(static_cast<unsigned char>(reply[b - 1])) || reply[b - 1] == '.')) --b;
    return reply.compare(a, b - a, answer) == 0;
}

}  // namespace

// ---- descriptions ----

std::string scene_description(const train::VqaScene& scene) {
    std::vector<const train::VqaObject*> objs;
    for (const auto& o : scene.objects) objs.push_back(&o);
    std::stable_sort(objs.begin(), objs.end(), [](auto* a, auto* b) { return a->x < b->x; });
    std::string s;
    for (size_t i = 0; i < objs.size(); ++i) {
        if (i > 0) s += i + 1 == objs.size() ? " and " : ", ";
        s += "a " + object_words(*objs[i]);
    }
    return s + ".";
}

double description_f1(const std::string& text, const train::VqaScene& scene) {
    std::map<std::string, int> want, got;
    for (const auto& o : scene.objects) ++want[object_words(o)];
    // Every "size colour shape" run of words in the text names an object.
    std::vector<std::string> words;
    std::string w;
    for (char ch : text + " ") {
        if (std::isalpha(static_cast<unsigned char>(ch))) w += ch;
        else if (!w.empty()) words.push_back(w), w.clear();
    }
    auto in = [](const std::vector<std::string>& list, const std::string& x) {
        return std::find(list.begin(), list.end(), x) != list.end();
    };
    for (size_t i = 0; i + 2 < words.size(); ++i)
        if (in(train::vqa_sizes(), words[i]) && in(train::vqa_colors(), words[i + 1]) && in(train::vqa_shapes(), words[i + 2]))
            ++got[words[i] + " " + words[i + 1] + " " + words[i + 2]];
    int64_t n_want = 0, n_got = 0, hit = 0;
    for (const auto& [k, n] : want) n_want += n;
    for (const auto& [k, n] : got) {
        n_got += n;
        auto it = want.find(k);
        if (it != want.end()) hit += std::min(n, it->second);
    }
    if (n_want == 0 || n_got == 0) return n_want == n_got ? 1.0 : 0.0;
    const double p = static_cast<double>(hit) / static_cast<double>(n_got), r = static_cast<double>(hit) / static_cast<double>(n_want);
    return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

double VlmScore::accuracy() const {
    int64_t c = 0, t = 0;
    for (int i = 0; i < train::kVqaTypes; ++i) c += correct[static_cast<size_t>(i)], t += total[static_cast<size_t>(i)];
    return t > 0 ? static_cast<double>(c) / static_cast<double>(t) : 0;
}

std::string VlmScore::json() const {
    nlohmann::ordered_json j;
    j["accuracy"] = accuracy();
    int64_t n = 0;
    for (int64_t t : total) n += t;
    j["questions"] = n;
    nlohmann::ordered_json per = nlohmann::ordered_json::object();
    for (int i = 0; i < train::kVqaTypes; ++i) {
        const size_t k = static_cast<size_t>(i);
        per[train::vqa_type_name(static_cast<train::VqaType>(i))] = {
            {"accuracy", total[k] > 0 ? static_cast<double>(correct[k]) / static_cast<double>(total[k]) : 0.0},
            {"questions", total[k]}};
    }
    j["per_type"] = per;
    j["descriptions"] = described;
    j["describe_f1"] = describe_f1();
    j["describe_exact"] = described > 0 ? static_cast<double>(describe_exact) / static_cast<double>(described) : 0.0;
    return j.dump();
}

// ---- inference ----

std::string vlm_answer(const VlmParts& p, const Image& image, const std::string& question, ThreadPool& pool,
                       int64_t max_tokens) {
    ChatTemplateInputs in;
    in.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", user_content(question)}}});
    const MultimodalPrompt prompt =
        chat_to_multimodal(*p.tok, p.chat->tmpl, std::move(in), {prompt_image(*p.encoder, image, pool)});
    ContextParams cp;
    cp.n_threads = static_cast<int>(pool.size());
    cp.n_ctx = prompt.n_positions() + max_tokens + 1;
    Context ctx(*p.decoder, cp);
    const std::vector<int32_t> rest = feed_multimodal_prompt(ctx, prompt);
    SamplerParams sp;
    sp.temperature = 0;
    Sampler sampler(sp, p.tok);
    GenerateParams gp;
    gp.max_tokens = max_tokens;
    gp.stop = p.chat->stops;
    return generate(ctx, *p.tok, sampler, rest, gp, nullptr).text;
}

VlmScore evaluate_vlm(const VlmParts& p, const train::VqaSplit& split, int64_t max_questions, bool describe,
                      bool shuffle_images, ThreadPool& pool) {
    VlmScore score;
    const int64_t n_scenes = static_cast<int64_t>(split.scenes.size());
    auto shown = [&](int64_t scene) { return shuffle_images ? (scene + n_scenes / 2 + 1) % n_scenes : scene; };
    std::vector<bool> used(static_cast<size_t>(n_scenes), false);
    const int64_t n = std::min<int64_t>(max_questions, static_cast<int64_t>(split.examples.size()));
    for (int64_t i = 0; i < n; ++i) {
        const train::VqaExample& e = split.examples[static_cast<size_t>(i)];
        const std::string reply = vlm_answer(p, split.images[static_cast<size_t>(shown(e.image))], e.question, pool, 8);
        const size_t k = static_cast<size_t>(e.type);
        ++score.total[k];
        if (same_answer(reply, train::vqa_answers()[static_cast<size_t>(e.answer)])) ++score.correct[k];
        used[static_cast<size_t>(e.image)] = true;
    }
    if (!describe) return score;
    for (int64_t s = 0; s < n_scenes; ++s) {
        if (!used[static_cast<size_t>(s)]) continue;
        const std::string reply = vlm_answer(p, split.images[static_cast<size_t>(shown(s))], kDescribePrompt, pool, 48);
        const double f1 = description_f1(reply, split.scenes[static_cast<size_t>(s)]);
        ++score.described;
        score.describe_f1_sum += f1;
        if (f1 == 1.0) ++score.describe_exact;
    }
    return score;
}

// ---- training ----

VlmScore train_vlm(const VlmTrainOptions& o, const std::function<void(const std::string&)>& log) {
    const VlmShape& s = o.shape;
    if (o.out.empty()) fail("train-vlm: --out is required (the model folder to write)");
    if (o.steps <= 0 || o.batch <= 0) fail("train-vlm: --steps and --batch must be > 0");
    const fs::path out = o.out;
    fs::create_directories(out);

    log("train-vlm: generating " + std::to_string(o.train_scenes) + " training scenes");
    train::VqaOptions dopt;
    dopt.image_size = s.image_size;
    dopt.n_scenes = o.train_scenes;
    dopt.questions_per_scene = o.questions_per_scene;
    dopt.seed = o.seed;
    const train::VqaSplit data = train::make_vqa_split("train", dopt);
    dopt.n_scenes = o.eval_scenes;
    dopt.questions_per_scene = 3;
    const train::VqaSplit val = train::make_vqa_split("val", dopt);

    // The tokenizer: byte-level BPE learned on the task's rendered turns (ChatML from the start).
    const std::string tcfg = bpe_tokenizer_config_json("<|im_end|>", "<|endoftext|>");
    write_file_atomic((out / "tokenizer_config.json").string(), tcfg);
    {
        const ChatTemplate chatml(chat_template_from_config(json::parse(tcfg)), "ChatML");
        BpeLearner learner;
        learner.add_text(corpus_text(chatml, data));
        write_file_atomic((out / "tokenizer.json").string(), bpe_tokenizer_json(learner.learn(s.vocab, kSpecials)));
    }
    const std::unique_ptr<Tokenizer> tok = Tokenizer::create(load_vocab((out / "tokenizer.json").string()));
    const std::optional<ChatFormat> fmt = load_chat_format(*tok, out.string(), "", false);
    LF_ASSERT(fmt.has_value());

    std::vector<Example> examples;
    for (const train::VqaExample& e : data.examples)
        examples.push_back(make_example(*tok, *fmt, e.question, train::vqa_answers()[static_cast<size_t>(e.answer)], e.image));
    const int64_t n_questions = static_cast<int64_t>(examples.size());
    for (size_t i = 0; i < data.scenes.size(); ++i)
        examples.push_back(make_example(*tok, *fmt, kDescribePrompt, scene_description(data.scenes[i]), static_cast<int64_t>(i)));

    std::unique_ptr<train::TrainModel> tower = train::TrainModel::init_random(tower_config(s), o.seed * 2 + 1);
    std::unique_ptr<train::TrainModel> decoder =
        train::TrainModel::init_random(decoder_config(s, tok->n_vocab()), o.seed * 2 + 2);
    decoder->set_vocab(tok->vocab());
    std::vector<train::Param*> params;
    for (auto* m : {tower.get(), decoder.get()})
        for (auto& p : m->params()) params.push_back(p.get());
    int64_t n_params = 0;
    for (auto* p : params) n_params += p->numel();
    const ImagePreprocess pre = tower_preprocess(s.image_size);
    const ModelConfig& tc = tower->config();
    const int64_t T_in = (tc.enc.class_token ? 1 : 0) + tc.enc.n_patches(), N = tc.enc.n_image_tokens();
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "train-vlm: %lld parameters (tower + projector %lld, decoder %lld), %lld questions + %zu descriptions "
                  "on %lld images (%lld rows each), %lld steps of %lld",
                  (long long)n_params, (long long)tower->n_trainable(), (long long)decoder->n_trainable(),
                  (long long)n_questions, data.scenes.size(), (long long)o.train_scenes, (long long)N,
                  (long long)o.steps, (long long)o.batch);
    log(buf);

    ThreadPool pool(o.threads);
    train::Tape tape(pool);
    tape.free_in_backward = true;
    train::AdamWConfig acfg;
    acfg.weight_decay = static_cast<float>(o.weight_decay);
    train::AdamW opt(params, acfg);
    std::vector<json> history;
    std::string log_text;
    const auto t0 = std::chrono::steady_clock::now();
    double loss_avg = 0;
    VlmScore last;
    const int32_t pad = tok->token_id("<|endoftext|>");
    for (int64_t step = 0; step < o.steps; ++step) {
        // The batch: a pure function of (seed, step, row); descriptions at describe_fraction.
        std::vector<const Example*> batch;
        for (int64_t b = 0; b < o.batch; ++b) {
            const uint64_t r = mix64(o.seed ^ mix64(static_cast<uint64_t>(step) * 1315423911ull + static_cast<uint64_t>(b)));
            const bool describe = static_cast<double>(r % 1000) < o.describe_fraction * 1000;
            const size_t i = describe ? static_cast<size_t>(n_questions) + (r >> 10) % data.scenes.size()
                                      : static_cast<size_t>((r >> 10) % static_cast<uint64_t>(n_questions));
            batch.push_back(&examples[i]);
        }
        int64_t T = 0;
        for (const Example* e : batch) T = std::max<int64_t>(T, static_cast<int64_t>(e->tokens.size()));
        // Inputs right-padded to T; the targets per output row (image rows inserted, loss on the reply).
        std::vector<int32_t> ids(static_cast<size_t>(o.batch * T), pad), at(static_cast<size_t>(o.batch));
        std::vector<int32_t> targets(static_cast<size_t>(o.batch * (T + N)), -1);
        std::vector<const Image*> imgs;
        for (int64_t b = 0; b < o.batch; ++b) {
            const Example& e = *batch[static_cast<size_t>(b)];
            std::copy(e.tokens.begin(), e.tokens.end(), ids.begin() + b * T);
            at[static_cast<size_t>(b)] = e.at;
            imgs.push_back(&data.images[static_cast<size_t>(e.image)]);
            // Output row of token j: j (before the image) or j + N (after it); it predicts token j + 1.
            for (int64_t j = e.reply - 1; j + 1 < static_cast<int64_t>(e.tokens.size()); ++j) {
                const int64_t row = j < e.at ? j : j + N;
                targets[static_cast<size_t>(b * (T + N) + row)] = e.tokens[static_cast<size_t>(j + 1)];
            }
        }
        tape.reset();
        const std::vector<float> rows = vision_input_rows(tc, pre, imgs, "train-vlm");
        train::Var image = tower->encode(tape, rows.data(), o.batch, T_in);
        decoder->input_rows = [&](train::Tape& t, train::Var tokens, int64_t B) {
            return train::insert_rows(t, tokens, image, B, at.data());
        };
        train::Var logits = decoder->logits(tape, ids.data(), o.batch, T);
        decoder->input_rows = nullptr;
        train::Var loss = train::cross_entropy(tape, logits, targets.data(), o.batch * (T + N));
        const float l = loss->data[0];
        tape.backward(loss);
        const double lr = train::cosine_step(opt, params, step, o.steps, o.warmup, o.lr, o.min_lr, o.clip, pool);
        loss_avg = step == 0 ? l : 0.98 * loss_avg + 0.02 * l;
        history.push_back(json::array({step + 1, l}));
        const bool eval_now = (o.eval_every > 0 && (step + 1) % o.eval_every == 0) || step + 1 == o.steps;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (eval_now || (step + 1) % 50 == 0) {
            std::string line = train::step_progress("train-vlm", step + 1, o.steps, loss_avg, lr, o.batch, "images", el);
            if (eval_now) {
                const std::unique_ptr<ImageEncoder> enc = ImageEncoder::from_model(tower->inference(), pre, "train-vlm");
                const VlmParts parts{&decoder->inference(), enc.get(), tok.get(), &*fmt};
                last = evaluate_vlm(parts, val, 150, true, false, pool);
                std::snprintf(buf, sizeof buf, "  val accuracy %.3f  describe F1 %.3f", last.accuracy(), last.describe_f1());
                line += buf;
            }
            log(line);
            log_text += line + "\n";
        }
    }
    train::write_hf_model(out.string(), *decoder);
    save_mmproj((out / "mmproj.gguf").string(), tower->inference(), pre);
    train::TrainerState st;
    st.step = o.steps;
    st.history = history;
    train::write_loss_svg((out / "loss.svg").string(), st, "VLM training loss (reply tokens)");
    write_file_atomic((out / "training.log").string(), log_text);
    write_file_atomic((out / "eval.json").string(), "{\"val\": " + last.json() + "}\n");
    return last;
}

}  // namespace llmforge::apps
