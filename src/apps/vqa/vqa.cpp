#include "apps/vqa/vqa.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "model/hf_config.h"
#include "model/vocab_source.h"
#include "tokenizer/wordpiece_tokenizer.h"
#include "train/checkpoint.h"
#include "train/ops.h"
#include "train/optimizer.h"
#include "train/train_model.h"

namespace llmforge::apps {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr int32_t kCls = 0, kPad = 1, kSep = 2;  // the tokenizer's specials (RoBERTa's pad id 1)
const char* const kSpecials[] = {"[CLS]", "[PAD]", "[SEP]", "[UNK]"};

// ---- the three parts' files ----

// A BERT-uncased WordPiece tokenizer.json whose vocabulary is every word (and punctuation mark)
// of the generated questions: the task's language is closed, so whole words are the right pieces.
std::string tokenizer_json() {
    std::set<std::string> words;
    for (const std::string& split : {std::string("train"), std::string("test")}) {
        train::VqaOptions o;
        o.n_scenes = 1024;
        o.questions_per_scene = 6;
        o.render = false;
        for (const train::VqaExample& e : train::make_vqa_split(split, o).examples) {
            const std::string n = WordPieceTokenizer::normalize(e.question);
            std::string w;
            for (char ch : n + " ") {
                if (std::isalnum(static_cast<unsigned char>(ch))) {
                    w += ch;
                    continue;
                }
                if (!w.empty()) words.insert(w), w.clear();
                if (ch != ' ') words.insert(std::string(1, ch));
            }
        }
    }
    for (const auto& list : {train::vqa_colors(), train::vqa_shapes(), train::vqa_sizes()})
        for (const std::string& a : list) words.insert(a);
    json vocab = json::object(), added = json::array();
    int id = 0;
    for (const char* s : kSpecials) {
        added.push_back({{"id", id}, {"content", s}, {"single_word", false}, {"lstrip", false}, {"rstrip", false},
                         {"normalized", false}, {"special", true}});
        vocab[s] = id++;
    }
    for (const std::string& w : words) vocab[w] = id++;
    json j = {{"version", "1.0"},
              {"truncation", nullptr},
              {"padding", nullptr},
              {"added_tokens", added},
              {"normalizer",
               {{"type", "BertNormalizer"}, {"clean_text", true}, {"handle_chinese_chars", true},
                {"strip_accents", nullptr}, {"lowercase", true}}},
              {"pre_tokenizer", {{"type", "BertPreTokenizer"}}},
              {"post_processor", nullptr},
              {"decoder", {{"type", "WordPiece"}, {"prefix", "##"}, {"cleanup", true}}},
              {"model",
               {{"type", "WordPiece"}, {"unk_token", "[UNK]"}, {"continuing_subword_prefix", "##"},
                {"max_input_chars_per_word", 100}, {"vocab", vocab}}}};
    return j.dump(1) + "\n";
}

std::string preprocessor_json(int64_t size) {
    json j = {{"image_processor_type", "ViTImageProcessor"},
              {"do_resize", true},
              {"size", {{"height", size}, {"width", size}}},
              {"resample", 3},
              {"do_rescale", true},
              {"rescale_factor", 1.0 / 255.0},
              {"do_normalize", true},
              {"image_mean", {0.5, 0.5, 0.5}},
              {"image_std", {0.5, 0.5, 0.5}}};
    return j.dump(2) + "\n";
}

ModelConfig vision_config(const VqaShape& s) {
    const json j = {{"model_type", "vit"},           {"hidden_size", s.vision_width},
                    {"intermediate_size", 2 * s.vision_width}, {"num_hidden_layers", s.vision_layers},
                    {"num_attention_heads", s.vision_heads}, {"image_size", s.image_size},
                    {"patch_size", s.patch},         {"num_channels", 3},
                    {"hidden_act", "gelu"},          {"layer_norm_eps", 1e-6},
                    {"qkv_bias", true}};
    return hf_config_parse(j.dump(), "vqa vision config");
}

ModelConfig text_config(const VqaShape& s, int64_t vocab, int64_t max_tokens) {
    const json j = {{"model_type", "roberta"},       {"vocab_size", vocab},
                    {"hidden_size", s.text_width},   {"intermediate_size", 2 * s.text_width},
                    {"num_hidden_layers", s.text_layers}, {"num_attention_heads", s.text_heads},
                    {"max_position_embeddings", max_tokens + kPad + 1}, {"pad_token_id", kPad},
                    {"type_vocab_size", 1},          {"hidden_act", "gelu"},
                    {"layer_norm_eps", 1e-5}};
    return hf_config_parse(j.dump(), "vqa text config");
}

ModelConfig fusion_config(const VqaShape& s) {
    json j = {{"model_type", "llmforge_fusion"},
              {"fusion", fusion_kind_name(s.fusion)},
              {"hidden_size", s.fusion_width},
              {"text_hidden_size", s.text_width},
              {"vision_hidden_size", s.vision_width},
              {"classifier_hidden_size", s.cls_hidden},
              {"num_answers", static_cast<int64_t>(train::vqa_answers().size())},
              {"layer_norm_eps", 1e-5}};
    if (s.fusion == FusionKind::kGated) j["gate_hidden_size"] = s.gate_hidden;
    if (s.fusion == FusionKind::kCross) {
        j["num_hidden_layers"] = s.cross_layers;
        j["num_attention_heads"] = s.cross_heads;
        j["intermediate_size"] = 2 * s.fusion_width;
    }
    return hf_config_parse(j.dump(), "vqa fusion config");
}

bool uses_text(FusionKind k) { return k != FusionKind::kImage; }
bool uses_image(FusionKind k) { return k != FusionKind::kText; }

// ---- one batch through the engine: the models (loaded, or a trainer's inference twins) ----

struct Parts {
    const Model* vision = nullptr;
    const Model* text = nullptr;
    const Model* fusion = nullptr;
    const Tokenizer* tok = nullptr;
    const ImagePreprocess* pre = nullptr;
    int64_t max_tokens = 0;
};

// Pixel rows (B · (1 + patches), 3·P²) of images (each resized by the preprocessor).
// Token ids right-padded to the batch's longest question, and their lengths.
void text_batch(const std::vector<std::vector<int32_t>>& qs, std::vector<int32_t>& ids, std::vector<int32_t>& lengths,
                int64_t* T) {
    *T = 0;
    for (const auto& q : qs) *T = std::max<int64_t>(*T, static_cast<int64_t>(q.size()));
    ids.assign(qs.size() * static_cast<size_t>(*T), kPad);
    lengths.clear();
    for (size_t b = 0; b < qs.size(); ++b) {
        std::copy(qs[b].begin(), qs[b].end(), ids.begin() + static_cast<int64_t>(b) * *T);
        lengths.push_back(static_cast<int32_t>(qs[b].size()));
    }
}

// Answer logits (B, answers) and the gate's (B, 2) weights (empty without a gate).
std::vector<float> run_parts(const Parts& p, const std::vector<const Image*>& images,
                             const std::vector<std::vector<int32_t>>& questions, ThreadPool& pool,
                             std::vector<float>* gate) {
    const int64_t B = static_cast<int64_t>(questions.size());
    const FusionConfig& fc = p.fusion->config().fusion;
    ForwardScratch s;
    EncodeOutput text_out, image_out, out;
    int64_t Tt = 1, Tv = 1;
    if (uses_text(fc.kind)) {
        std::vector<int32_t> ids, lengths;
        text_batch(questions, ids, lengths, &Tt);
        p.text->encode_tokens(ids.data(), lengths.data(), B, Tt, text_out, pool, s);
    } else {
        text_out.last.assign(static_cast<size_t>(B * fc.text_width), 0.0f);
    }
    if (uses_image(fc.kind)) {
        const std::vector<float> rows = vision_input_rows(p.vision->config(), *p.pre, images, "vqa");
        Tv = 1 + p.vision->config().enc.n_patches();
        p.vision->encode(rows.data(), B, Tv, image_out, pool, s);
    } else {
        image_out.last.assign(static_cast<size_t>(B * fc.vision_width), 0.0f);
    }
    ForwardScratch fs;
    if (gate != nullptr) {
        gate->clear();
        fs.hook = [gate](const std::string& name, const float* x, int64_t n) {
            if (name == "gate") gate->assign(x, x + n);
        };
    }
    p.fusion->fuse(text_out.last.data(), Tt, image_out.last.data(), Tv, B, out, pool, fs);
    return out.pooled;
}

VqaScore score_split(const Parts& p, const train::VqaSplit& split, ThreadPool& pool, int64_t batch = 64) {
    VqaScore sc;
    const size_t A = train::vqa_answers().size();
    for (size_t i0 = 0; i0 < split.examples.size(); i0 += static_cast<size_t>(batch)) {
        const size_t i1 = std::min(split.examples.size(), i0 + static_cast<size_t>(batch));
        std::vector<const Image*> imgs;
        std::vector<std::vector<int32_t>> qs;
        for (size_t i = i0; i < i1; ++i) {
            imgs.push_back(&split.images[static_cast<size_t>(split.examples[i].image)]);
            qs.push_back(vqa_question_ids(*p.tok, split.examples[i].question, p.max_tokens));
        }
        std::vector<float> gate;
        const std::vector<float> lg = run_parts(p, imgs, qs, pool, &gate);
        for (size_t i = i0; i < i1; ++i) {
            const float* row = lg.data() + (i - i0) * A;
            const int best = static_cast<int>(std::max_element(row, row + A) - row);
            const int t = static_cast<int>(split.examples[i].type);
            sc.total[t]++;
            sc.correct[t] += best == split.examples[i].answer;
            if (!gate.empty()) sc.has_gate = true, sc.gate_image[t] += gate[2 * (i - i0) + 1];
        }
    }
    for (int t = 0; t < train::kVqaTypes; ++t)
        if (sc.total[t] > 0) sc.gate_image[t] /= static_cast<double>(sc.total[t]);
    return sc;
}

}  // namespace

// ---- scores ----

double VqaScore::accuracy() const {
    int64_t c = 0, n = 0;
    for (int t = 0; t < train::kVqaTypes; ++t) c += correct[t], n += total[t];
    return n > 0 ? static_cast<double>(c) / static_cast<double>(n) : 0.0;
}

double VqaScore::accuracy(int t) const {
    return total[t] > 0 ? static_cast<double>(correct[t]) / static_cast<double>(total[t]) : 0.0;
}

std::string VqaScore::json() const {
    nlohmann::json j = {{"accuracy", accuracy()}};
    int64_t n = 0;
    for (int t = 0; t < train::kVqaTypes; ++t) {
        n += total[t];
        nlohmann::json e = {{"accuracy", accuracy(t)}, {"n", total[t]}};
        if (has_gate) e["gate_image"] = gate_image[t];
        j["types"][train::vqa_type_name(static_cast<train::VqaType>(t))] = e;
    }
    j["n"] = n;
    return j.dump();
}

// ---- questions ----

std::vector<int32_t> vqa_question_ids(const Tokenizer& tok, const std::string& question, int64_t max_tokens) {
    std::vector<int32_t> ids = tok.encode(question, false, false);
    if (ids.empty()) fail("vqa: the question is empty (hint: ask e.g. \"How many red objects are there?\")");
    ids.insert(ids.begin(), kCls);
    ids.push_back(kSep);
    if (static_cast<int64_t>(ids.size()) > max_tokens) {
        fail("vqa: the question has %zu tokens with [CLS] and [SEP], the model takes at most %lld (hint: ask a shorter "
             "question)",
             ids.size(), (long long)max_tokens);
    }
    return ids;
}

// ---- the model folder ----

std::unique_ptr<VqaModel> VqaModel::load(const std::string& dir) {
    const fs::path d(dir);
    std::error_code ec;
    if (!fs::exists(d / "fusion" / "config.json", ec)) {
        fail("%s: not a VQA model folder (expected fusion/config.json, with vision/ and/or text/ beside it; hint: "
             "llmforge train-vqa makes one)",
             dir.c_str());
    }
    std::unique_ptr<VqaModel> m(new VqaModel());
    m->fusion_ = Model::load((d / "fusion").string());
    if (m->fusion_->config().arch != "fusion") {
        fail("%s/fusion: is a %s model, expected a fusion model", dir.c_str(), m->fusion_->config().arch.c_str());
    }
    const FusionConfig& fc = m->fusion_->config().fusion;
    const json answers = json::parse(RegularFile((d / "fusion" / "answers.json").string(), "answers").read_all(), nullptr,
                                     false);
    if (!answers.is_array() || static_cast<int64_t>(answers.size()) != fc.n_answers) {
        fail("%s/fusion/answers.json: expected a list of %lld answers", dir.c_str(), (long long)fc.n_answers);
    }
    for (const json& a : answers) m->answers_.push_back(a.is_string() ? a.get<std::string>() : a.dump());
    if (uses_image(fc.kind)) {
        m->vision_ = Model::load((d / "vision").string());
        if (m->vision_->config().arch != "vit" && m->vision_->config().arch != "clip_vision") {
            fail("%s/vision: is a %s model, expected a ViT", dir.c_str(), m->vision_->config().arch.c_str());
        }
        if (m->vision_->config().n_embd != fc.vision_width) {
            fail("%s: the vision model is %lld wide, the fusion model expects %lld", dir.c_str(),
                 (long long)m->vision_->config().n_embd, (long long)fc.vision_width);
        }
        m->pre_ = ImagePreprocess::from_hf_json((d / "vision" / "preprocessor_config.json").string());
        m->image_size_ = m->vision_->config().enc.image_size;
    }
    // The tokenizer lives with the text model (text-only and gated/concat/cross models have one;
    // an image-only model still reads the question's... nothing: it has no text part).
    if (uses_text(fc.kind)) {
        m->text_ = Model::load((d / "text").string());
        if (m->text_->config().n_embd != fc.text_width || m->text_->config().arch != "roberta") {
            fail("%s/text: expected a RoBERTa model %lld wide", dir.c_str(), (long long)fc.text_width);
        }
        m->max_tokens_ = m->text_->config().n_ctx_train;
    } else {
        m->max_tokens_ = 64;
    }
    // An image-only model keeps the question tokenizer at the top (inside fusion/ it would be read
    // as the fusion model's own vocabulary).
    const fs::path tok = uses_text(fc.kind) ? d / "text" / "tokenizer.json" : d / "tokenizer.json";
    m->tok_ = Tokenizer::create(load_vocab(tok.string()));
    return m;
}

std::vector<VqaModel::Answer> VqaModel::answer(const std::vector<const Image*>& images,
                                               const std::vector<std::string>& questions, ThreadPool& pool) const {
    LF_ASSERT(images.size() == questions.size());
    std::vector<std::vector<int32_t>> qs;
    for (const std::string& q : questions) qs.push_back(vqa_question_ids(*tok_, q, max_tokens_));
    const Parts p{vision_.get(), text_.get(), fusion_.get(), tok_.get(), &pre_, max_tokens_};
    std::vector<float> gate;
    const std::vector<float> lg = run_parts(p, images, qs, pool, &gate);
    const size_t A = answers_.size();
    std::vector<Answer> out;
    for (size_t b = 0; b < questions.size(); ++b) {
        const float* row = lg.data() + b * A;
        const size_t best = static_cast<size_t>(std::max_element(row, row + A) - row);
        double z = 0;
        for (size_t a = 0; a < A; ++a) z += std::exp(static_cast<double>(row[a] - row[best]));
        Answer ans;
        ans.answer = answers_[best];
        ans.prob = static_cast<float>(1.0 / z);
        if (!gate.empty()) ans.gate_text = gate[2 * b], ans.gate_image = gate[2 * b + 1];
        out.push_back(ans);
    }
    return out;
}

VqaScore VqaModel::evaluate(const train::VqaSplit& split, ThreadPool& pool) const {
    const Parts p{vision_.get(), text_.get(), fusion_.get(), tok_.get(), &pre_, max_tokens_};
    return score_split(p, split, pool);
}

// ---- training ----

VqaScore train_vqa(const VqaTrainOptions& o, const std::function<void(const std::string&)>& log) {
    if (o.out.empty()) fail("train-vqa: --out is required (the model folder to write)");
    if (o.steps <= 0 || o.batch <= 0) fail("train-vqa: --steps and --batch must be > 0");
    const VqaShape& s = o.shape;
    const FusionKind kind = s.fusion;
    const fs::path out(o.out);
    fs::create_directories(out / "fusion");
    // Tokenizer and preprocessor first: training reads its inputs through them, as inference will.
    const fs::path tok_dir = uses_text(kind) ? out / "text" : out;
    fs::create_directories(tok_dir);
    write_file_atomic((tok_dir / "tokenizer.json").string(), tokenizer_json());
    const std::unique_ptr<Tokenizer> tok = Tokenizer::create(load_vocab((tok_dir / "tokenizer.json").string()));
    ImagePreprocess pre;
    if (uses_image(kind)) {
        fs::create_directories(out / "vision");
        write_file_atomic((out / "vision" / "preprocessor_config.json").string(), preprocessor_json(s.image_size));
        pre = ImagePreprocess::from_hf_json((out / "vision" / "preprocessor_config.json").string());
    }
    json answers = json::array();
    for (const std::string& a : train::vqa_answers()) answers.push_back(a);
    write_file_atomic((out / "fusion" / "answers.json").string(), answers.dump() + "\n");

    log("train-vqa: generating " + std::to_string(o.train_scenes) + " training scenes");
    train::VqaOptions dopt;
    dopt.image_size = s.image_size;
    dopt.n_scenes = o.train_scenes;
    dopt.questions_per_scene = o.questions_per_scene;
    dopt.seed = o.seed;
    const train::VqaSplit data = train::make_vqa_split("train", dopt);
    dopt.n_scenes = o.eval_scenes;
    const train::VqaSplit val = train::make_vqa_split("val", dopt);
    int64_t max_tokens = 0;
    std::vector<std::vector<int32_t>> qids;
    for (const auto& e : data.examples) {
        qids.push_back(vqa_question_ids(*tok, e.question, 1 << 20));
        max_tokens = std::max<int64_t>(max_tokens, static_cast<int64_t>(qids.back().size()));
    }
    max_tokens += 8;  // room for longer phrasings at inference

    std::unique_ptr<train::TrainModel> vision, text, fusion;
    std::vector<train::Param*> params;
    if (uses_image(kind)) vision = train::TrainModel::init_random(vision_config(s), o.seed * 3 + 1);
    if (uses_text(kind)) text = train::TrainModel::init_random(text_config(s, tok->n_vocab(), max_tokens), o.seed * 3 + 2);
    fusion = train::TrainModel::init_random(fusion_config(s), o.seed * 3 + 3);
    for (auto* m : {vision.get(), text.get(), fusion.get()})
        if (m != nullptr)
            for (auto& p : m->params()) params.push_back(p.get());
    int64_t n_params = 0;
    for (auto* p : params) n_params += p->numel();
    char buf[512];
    std::snprintf(buf, sizeof buf, "train-vqa: %s fusion, %lld parameters, %zu training questions on %lld images, %lld "
                  "steps of %lld",
                  fusion_kind_name(kind), (long long)n_params, data.examples.size(), (long long)o.train_scenes,
                  (long long)o.steps, (long long)o.batch);
    log(buf);

    ThreadPool pool(o.threads);
    train::Tape tape(pool);
    tape.free_in_backward = true;
    train::AdamWConfig acfg;
    acfg.weight_decay = static_cast<float>(o.weight_decay);
    train::AdamW opt(params, acfg);
    const int64_t Tv = uses_image(kind) ? 1 + vision->config().enc.n_patches() : 1;
    std::vector<json> history;
    std::string log_text;
    auto t0 = std::chrono::steady_clock::now();
    double loss_avg = 0;
    auto evaluate = [&]() {
        const Parts p{vision ? &vision->inference() : nullptr, text ? &text->inference() : nullptr,
                      &fusion->inference(), tok.get(), &pre, max_tokens};
        return score_split(p, val, pool);
    };
    VqaScore last;
    for (int64_t step = 0; step < o.steps; ++step) {
        // The batch: a pure function of (seed, step, row).
        std::vector<const Image*> imgs;
        std::vector<std::vector<int32_t>> qs;
        std::vector<int32_t> targets;
        for (int64_t b = 0; b < o.batch; ++b) {
            const size_t i = static_cast<size_t>(mix64(o.seed ^ mix64(static_cast<uint64_t>(step) * 1315423911ull + b)) %
                                                 data.examples.size());
            imgs.push_back(&data.images[static_cast<size_t>(data.examples[i].image)]);
            qs.push_back(qids[i]);
            targets.push_back(data.examples[i].answer);
        }
        tape.reset();
        train::Var tx = nullptr, vx = nullptr;
        std::vector<int32_t> ids, lengths;
        int64_t Tt = 1;
        if (text) {
            text_batch(qs, ids, lengths, &Tt);
            tx = text->encode_tokens(tape, ids.data(), lengths.data(), o.batch, Tt);
        } else {
            tx = tape.make({o.batch, s.text_width}, false);
            std::fill(tx->data, tx->data + tx->numel, 0.0f);
        }
        std::vector<float> rows;
        if (vision) {
            rows = vision_input_rows(vision->config(), pre, imgs, "train-vqa");
            vx = vision->encode(tape, rows.data(), o.batch, Tv);
        } else {
            vx = tape.make({o.batch, s.vision_width}, false);
            std::fill(vx->data, vx->data + vx->numel, 0.0f);
        }
        train::Var logits = fusion->fuse(tape, tx, vx, o.batch);
        train::Var loss = train::cross_entropy(tape, logits, targets.data(), o.batch);
        const float l = loss->data[0];
        tape.backward(loss);
        const double lr = train::cosine_step(opt, params, step, o.steps, o.warmup, o.lr, o.min_lr, o.clip, pool);
        loss_avg = step == 0 ? l : 0.98 * loss_avg + 0.02 * l;
        history.push_back(json::array({step + 1, l}));
        const bool eval_now = (o.eval_every > 0 && (step + 1) % o.eval_every == 0) || step + 1 == o.steps;
        const double el = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        if (eval_now || (step + 1) % 50 == 0) {
            std::string line = train::step_progress("train-vqa", step + 1, o.steps, loss_avg, lr, o.batch, "images", el);
            if (eval_now) {
                last = evaluate();
                std::snprintf(buf, sizeof buf, "  val accuracy %.3f", last.accuracy());
                line += buf;
            }
            log(line);
            log_text += line + "\n";
        }
    }
    // The folder: each part an ordinary model folder.
    if (vision) train::write_hf_model((out / "vision").string(), *vision);
    if (text) train::write_hf_model((out / "text").string(), *text);
    train::write_hf_model((out / "fusion").string(), *fusion);
    train::TrainerState st;
    st.step = o.steps;
    st.history = history;
    train::write_loss_svg((out / "loss.svg").string(), st, std::string("VQA training loss (") + fusion_kind_name(kind) + ")");
    write_file_atomic((out / "training.log").string(), log_text);
    write_file_atomic((out / "eval.json").string(), "{\"val\": " + last.json() + "}\n");
    return last;
}

}  // namespace llmforge::apps
