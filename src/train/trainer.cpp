#include "train/trainer.h"

#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "core/error.h"
#include "core/file.h"
#include "core/random.h"
#include "model/hf_config.h"
#include "train/checkpoint.h"
#include "train/data.h"
#include "train/distill.h"
#include "train/distributed.h"
#include "train/ops.h"
#include "runtime/chat.h"
#include "train/ewc.h"
#include "train/optimizer.h"
#include "train/peft.h"
#include "train/qat.h"
#include "train/sparsity_mask.h"
#include "train/train_model.h"

namespace llmforge::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One splitmix64 step from state z (the golden gamma added, then mixed): the dropout seed of each
// micro-batch. Kept as it always was so that runs and checkpoints stay reproducible.
uint64_t seed_mix(uint64_t z) { return mix64(z + kGoldenGamma); }

double peak_rss_mb() {
    rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return static_cast<double>(ru.ru_maxrss) / 1024.0;
}

std::string fmt_duration(double s) {
    char buf[64];
    if (s < 0 || !std::isfinite(s)) return "?";
    if (s < 90) std::snprintf(buf, sizeof buf, "%.0fs", s);
    else if (s < 5400) std::snprintf(buf, sizeof buf, "%dm%02ds", static_cast<int>(s) / 60, static_cast<int>(s) % 60);
    else std::snprintf(buf, sizeof buf, "%dh%02dm", static_cast<int>(s) / 3600, (static_cast<int>(s) / 60) % 60);
    return buf;
}

// --model and --config must describe the same network.
void check_same_shapes(const ModelConfig& file, const ModelConfig& cfg, const std::string& model_path,
                       const std::string& config_path) {
    auto check = [&](const char* key, int64_t a, int64_t b) {
        if (a != b)
            fail("train: --model %s has %s = %lld but --config %s says %lld (hint: drop --config to train the model as it "
                 "is, or give a matching config)", model_path.c_str(), key, (long long)a, config_path.c_str(), (long long)b);
    };
    check("hidden_size", file.n_embd, cfg.n_embd);
    check("num_hidden_layers", file.n_layer, cfg.n_layer);
    check("num_attention_heads", file.n_head, cfg.n_head);
    check("num_key_value_heads", file.n_head_kv, cfg.n_head_kv);
    check("intermediate_size", file.n_ff, cfg.n_ff);
    check("vocab_size", file.n_vocab, cfg.n_vocab);
}

// The tokenizer files that belong with the data (stored in every checkpoint so the saved folder
// is a complete model): --tokenizer, else the one named by a prepare folder's meta.json.
std::vector<std::string> tokenizer_files(const TrainArgs& a) {
    std::string tok = a.tokenizer;
    std::error_code ec;
    if (tok.empty() && fs::is_directory(a.data, ec) && fs::exists(fs::path(a.data) / "meta.json")) {
        try {
            json meta = json::parse(read_file((fs::path(a.data) / "meta.json").string(), "data meta", ""));
            tok = meta.value("tokenizer", "");
            if (!tok.empty() && fs::path(tok).is_relative() && !fs::exists(tok)) tok = (fs::path(a.data) / tok).string();
        } catch (const json::exception&) {
        }
    }
    std::vector<std::string> out;
    if (tok.empty()) return out;
    fs::path p(tok);
    if (fs::is_directory(p, ec)) p /= "tokenizer.json";
    if (!fs::exists(p))
        fail("train: tokenizer %s not found (hint: --tokenizer takes a tokenizer.json or its folder)", p.string().c_str());
    if (p.extension() != ".json") return out;  // a GGUF / tok*.bin vocabulary: nothing to copy
    out.push_back(p.string());
    const fs::path cfg = p.parent_path() / "tokenizer_config.json";
    if (fs::exists(cfg)) out.push_back(cfg.string());
    return out;
}

void validate(const TrainArgs& a) {
    auto positive = [](const char* flag, int64_t v) {
        if (v < 1) fail("train: %s is %lld, expected a positive number", flag, (long long)v);
    };
    positive("--seq-len", a.seq_len);
    positive("--batch", a.batch);
    positive("--grad-accum", a.grad_accum);
    positive("--steps", a.steps);
    if (a.data.empty() && !(a.eval_only && !a.val_data.empty()))
        fail("train: no --data (hint: a .u16/.u32 token file or a folder written by llmforge prepare)");
    if (!(a.lr > 0)) fail("train: --lr is %g, expected > 0", a.lr);
    if (a.min_lr < 0 || a.min_lr > a.lr) fail("train: --min-lr is %g, expected 0 <= min-lr <= lr (%g)", a.min_lr, a.lr);
    if (a.warmup_steps < 0) fail("train: --warmup-steps is %lld, expected >= 0", (long long)a.warmup_steps);
    if (!(a.beta1 >= 0 && a.beta1 < 1) || !(a.beta2 >= 0 && a.beta2 < 1))
        fail("train: --beta1/--beta2 are %g/%g, expected each in [0, 1)", a.beta1, a.beta2);
    if (!(a.eps > 0)) fail("train: --eps is %g, expected > 0", a.eps);
    if (!(a.dropout >= 0 && a.dropout < 1)) fail("train: --dropout is %g, expected in [0, 1)", a.dropout);
    if (a.grad_clip < 0) fail("train: --grad-clip is %g, expected >= 0 (0 = no clipping)", a.grad_clip);
    if (a.save_every < 0 || a.eval_every < 0) fail("train: --save-every/--eval-every must be >= 0");
    if (a.eval_only && (!a.save.empty() || !a.resume.empty()))
        fail("train: --eval-only writes nothing and resumes nothing (hint: drop --save / --resume; evaluate a saved "
             "adapter with --peft lora|prompt --init-adapter DIR, a saved model with --model DIR)");
    if (a.moe_bias_gamma < 0 && a.moe_bias_gamma != -1)
        fail("train: --moe-bias-gamma is %g, expected >= 0 (0 = no bias balancing)", a.moe_bias_gamma);
    if (!(a.moe_aux_alpha >= 0)) fail("train: --moe-aux-alpha is %g, expected >= 0 (0 = no balance loss)", a.moe_aux_alpha);
    if (!(a.mtp_lambda >= 0)) fail("train: --mtp-lambda is %g, expected >= 0 (0 = no MTP loss)", a.mtp_lambda);
    if (a.stop_after >= 0 && a.save.empty())
        fail("train: --stop-after %lld needs --save DIR (the interruption saves a checkpoint to resume from)",
             (long long)a.stop_after);
    (void)precision_from_name(a.precision);
    if (a.store_activations != "auto" && a.store_activations != "f32" && a.store_activations != "bf16")
        fail("train: --store-activations is '%s', expected auto, f32 or bf16 (auto: bf16 under --precision bf16)",
             a.store_activations.c_str());
    (void)schedule_from_name(a.schedule);
    if (a.peft != "none" && a.peft != "lora" && a.peft != "prompt")
        fail("train: --peft is '%s', expected none, lora or prompt", a.peft.c_str());
    if (a.peft != "none" && a.model.empty())
        fail("train: --peft %s needs --model BASE (the frozen model the adapter is trained on)", a.peft.c_str());
    if (a.peft == "lora" && a.init_adapter.empty() && a.lora_r < 1)
        fail("train: --lora-r is %lld, expected a rank >= 1 (hint: 8 or 16 are usual)", (long long)a.lora_r);
    if (a.peft == "prompt" && a.init_adapter.empty() && a.virtual_tokens < 1)
        fail("train: --peft prompt needs --virtual-tokens N (N >= 1, found %lld)", (long long)a.virtual_tokens);
    if (!(a.lora_dropout >= 0 && a.lora_dropout < 1)) fail("train: --lora-dropout is %g, expected in [0, 1)", a.lora_dropout);
    if (!(a.fgm >= 0)) fail("train: --fgm is %g, expected >= 0 (0 = off)", a.fgm);
    if (!(a.replay_ratio >= 0 && a.replay_ratio <= 1)) fail("train: --replay-ratio is %g, expected in [0, 1]", a.replay_ratio);
    if (a.replay_ratio > 0 && a.replay.empty()) fail("train: --replay-ratio needs --replay DATA (the earlier task's tokens)");
    if (!(a.ewc_lambda >= 0)) fail("train: --ewc-lambda is %g, expected >= 0", a.ewc_lambda);
    if (a.ewc_lambda > 0 && a.ewc_fisher.empty())
        fail("train: --ewc-lambda needs --ewc-fisher FILE (hint: llmforge fisher -m MODEL --data TASK_A -o FILE)");
    if (!(a.distill_alpha >= 0 && a.distill_alpha <= 1))
        fail("train: --distill-alpha is %g, expected in [0, 1] (the weight of the teacher's soft targets; 1 - alpha "
             "weighs the labels)", a.distill_alpha);
    if (!(a.distill_temp > 0))
        fail("train: --distill-temp is %g, expected > 0 (hint: 1 to 4 are usual; higher softens the teacher more)",
             a.distill_temp);
    if (!a.teacher.empty() && a.peft == "prompt")
        fail("train: --teacher with --peft prompt is not supported (the virtual-token rows have no teacher logits; "
             "hint: --peft lora, or train every tensor)");
    (void)qat_config(a.qat, a.qat_act);
    if (a.keep_sparsity && a.peft != "none")
        fail("train: --keep-sparsity with --peft %s: the base is frozen (its zeros stay) and only the adapter trains, "
             "whose merge would fill them (hint: drop --peft to fine-tune every tensor with the zeros kept)", a.peft.c_str());
    if (a.keep_sparsity && a.model.empty() && !a.eval_only)
        fail("train: --keep-sparsity needs --model PRUNED (the zeros kept are those of its weights; random weights "
             "from --config have none)");
}

class StepLine {
public:
    explicit StepLine(bool enabled) : on_(enabled), tty_(isatty(STDERR_FILENO) != 0) {}
    void show(const std::string& line, bool force) {
        if (!on_) return;
        const auto now = std::chrono::steady_clock::now();
        if (!force && std::chrono::duration<double>(now - last_).count() < (tty_ ? 0.2 : 5.0)) return;
        last_ = now;
        std::fprintf(stderr, tty_ ? "\r%s\033[K" : "%s\n", line.c_str());
        pending_ = tty_;
    }
    void end() {
        if (pending_) std::fputc('\n', stderr);
        pending_ = false;
    }

private:
    bool on_, tty_, pending_ = false;
    std::chrono::steady_clock::time_point last_{};
};

}  // namespace

json args_to_json(const TrainArgs& a) {
    return json{{"model", a.model},
                {"config", a.config},
                {"data", a.data},
                {"val-data", a.val_data},
                {"tokenizer", a.tokenizer},
                {"seq-len", a.seq_len},
                {"batch", a.batch},
                {"grad-accum", a.grad_accum},
                {"steps", a.steps},
                {"warmup-steps", a.warmup_steps},
                {"save-every", a.save_every},
                {"eval-every", a.eval_every},
                {"eval-batches", a.eval_batches},
                {"lr", a.lr},
                {"min-lr", a.min_lr},
                {"beta1", a.beta1},
                {"beta2", a.beta2},
                {"eps", a.eps},
                {"weight-decay", a.weight_decay},
                {"grad-clip", a.grad_clip},
                {"dropout", a.dropout},
                {"schedule", a.schedule},
                {"precision", a.precision},
                {"seed", a.seed},
                {"no-shuffle", !a.shuffle},
                {"checkpoint-activations", a.checkpoint_activations},
                {"store-activations", a.store_activations},
                {"threads", a.threads},
                {"keep", a.keep},
                {"ranks", Distributed::get().size()},
                {"peft", a.peft},
                {"lora-r", a.lora_r},
                {"lora-alpha", a.lora_alpha},
                {"lora-dropout", a.lora_dropout},
                {"lora-targets", a.lora_targets},
                {"use-rslora", a.use_rslora},
                {"init-adapter", a.init_adapter},
                {"virtual-tokens", a.virtual_tokens},
                {"prompt-init-text", a.prompt_init_text},
                {"fgm", a.fgm},
                {"replay", a.replay},
                {"replay-ratio", a.replay_ratio},
                {"ewc-lambda", a.ewc_lambda},
                {"ewc-fisher", a.ewc_fisher},
                {"teacher", a.teacher},
                {"distill-temp", a.distill_temp},
                {"distill-alpha", a.distill_alpha},
                {"qat", a.qat},
                {"qat-act", a.qat_act},
                {"keep-sparsity", a.keep_sparsity},
                {"moe-bias-gamma", a.moe_bias_gamma},
                {"moe-aux-alpha", a.moe_aux_alpha},
                {"mtp-lambda", a.mtp_lambda}};
}

void merge_resumed_args(TrainArgs& a, const json& saved, const std::set<std::string>& given) {
    auto take = [&](const char* key, auto& field) {
        if (!given.count(key) && saved.contains(key)) saved.at(key).get_to(field);
    };
    // What the adapter is cannot change mid-run: a flag given again must say what was saved
    // (checkpoints from before a flag existed saved its default).
    const TrainArgs defaults;
    auto fixed = [&](const char* key, auto TrainArgs::*field) {
        using T = std::decay_t<decltype(a.*field)>;
        const T saved_value = saved.contains(key) ? saved.at(key).get<T>() : defaults.*field;
        if (given.count(key) && saved_value != a.*field)
            fail("train: --resume: the run was started with --%s %s, found --%s %s (hint: a resumed run keeps its --peft "
                 "set-up; drop the flag, or start a new run with another --save folder)", key, json(saved_value).dump().c_str(),
                 key, json(a.*field).dump().c_str());
        a.*field = saved_value;
    };
    fixed("peft", &TrainArgs::peft);
    fixed("lora-r", &TrainArgs::lora_r);
    fixed("lora-alpha", &TrainArgs::lora_alpha);
    fixed("lora-targets", &TrainArgs::lora_targets);
    fixed("use-rslora", &TrainArgs::use_rslora);
    fixed("init-adapter", &TrainArgs::init_adapter);
    fixed("virtual-tokens", &TrainArgs::virtual_tokens);
    fixed("prompt-init-text", &TrainArgs::prompt_init_text);
    take("lora-dropout", a.lora_dropout);
    take("fgm", a.fgm);
    take("replay", a.replay);
    take("replay-ratio", a.replay_ratio);
    take("ewc-lambda", a.ewc_lambda);
    take("ewc-fisher", a.ewc_fisher);
    take("teacher", a.teacher);
    take("distill-temp", a.distill_temp);
    take("distill-alpha", a.distill_alpha);
    take("qat", a.qat);
    take("qat-act", a.qat_act);
    take("moe-bias-gamma", a.moe_bias_gamma);
    take("moe-aux-alpha", a.moe_aux_alpha);
    take("mtp-lambda", a.mtp_lambda);
    // The mask is the initial model's zeros: it cannot be switched on or off mid-run.
    const bool saved_keep = saved.value("keep-sparsity", false);
    if (given.count("keep-sparsity") && a.keep_sparsity != saved_keep)
        fail("train: --resume: the run was started %s --keep-sparsity (hint: drop the flag, or start a new run from the "
             "checkpoint's model with --model and another --save folder)", saved_keep ? "with" : "without");
    a.keep_sparsity = saved_keep;
    take("model", a.model);
    take("config", a.config);
    take("data", a.data);
    take("val-data", a.val_data);
    take("tokenizer", a.tokenizer);
    take("seq-len", a.seq_len);
    take("batch", a.batch);
    take("grad-accum", a.grad_accum);
    take("steps", a.steps);
    take("warmup-steps", a.warmup_steps);
    take("save-every", a.save_every);
    take("eval-every", a.eval_every);
    take("eval-batches", a.eval_batches);
    take("lr", a.lr);
    take("min-lr", a.min_lr);
    take("beta1", a.beta1);
    take("beta2", a.beta2);
    take("eps", a.eps);
    take("weight-decay", a.weight_decay);
    take("grad-clip", a.grad_clip);
    take("dropout", a.dropout);
    take("schedule", a.schedule);
    take("precision", a.precision);
    take("seed", a.seed);
    take("checkpoint-activations", a.checkpoint_activations);
    take("store-activations", a.store_activations);
    take("threads", a.threads);
    take("keep", a.keep);
    if (!given.count("no-shuffle") && saved.contains("no-shuffle")) a.shuffle = !saved["no-shuffle"].get<bool>();
}

namespace {

// --checkpoint-activations and --store-activations onto the model.
void set_activation_storage(TrainModel& m, const TrainArgs& a) {
    m.checkpoint_activations = a.checkpoint_activations;
    m.store_activations_bf16 =
        a.store_activations == "bf16" || (a.store_activations == "auto" && precision_from_name(a.precision) == Precision::kBF16);
}

// The folder a --resume run saves into when --save is not given: the --resume folder, or the run
// folder that holds the checkpoint folder --resume names.
std::string resume_save_folder(const std::string& resume) {
    std::error_code ec;
    fs::path r = fs::path(resume).lexically_normal();
    if (!r.has_filename() && r.has_parent_path()) r = r.parent_path();  // "DIR/" -> "DIR"
    std::string save = fs::exists(r / "trainer_state.json", ec) && !fs::exists(r / "latest", ec)
                           ? r.parent_path().string()
                           : r.string();
    if (save.empty()) save = ".";
    return save;
}

// The trainable parameters (the model's, then an adapter's), in the order the optimiser and the
// gradient buckets use.
std::vector<Param*> param_list(TrainModel& model, PeftAdapter* peft) {
    std::vector<Param*> params;
    for (auto& p : model.params()) params.push_back(p.get());
    if (peft != nullptr)
        for (Param* p : peft->params()) params.push_back(p);
    return params;
}

// "1,234,567" (PEFT's print_trainable_parameters format).
std::string with_commas(int64_t n) {
    const std::string digits = std::to_string(n);
    std::string out;
    for (size_t i = 0; i < digits.size(); ++i) {
        if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
        out += digits[i];
    }
    return out;
}

// AdamW's hyper-parameters from the flags.
AdamWConfig adamw_config(const TrainArgs& a) {
    AdamWConfig oc;
    oc.beta1 = static_cast<float>(a.beta1), oc.beta2 = static_cast<float>(a.beta2);
    oc.eps = static_cast<float>(a.eps), oc.weight_decay = static_cast<float>(a.weight_decay);
    return oc;
}

// What a run starts from: the flags (merged with a resumed checkpoint's), the checkpoint, the
// model, the data and the locked --save folder. run_training calls the steps in the order that
// lets bad input fail before anything is written (except the removal of an interrupted save's
// leftovers in the run's own folder).
struct RunInputs {
    explicit RunInputs(TrainArgs args) : a(std::move(args)) {}
    RunInputs(const RunInputs&) = delete;
    RunInputs& operator=(const RunInputs&) = delete;

    // --resume: the folder to save into (cleaned first), then the checkpoint to continue, or a
    // fresh start when the folder holds none yet.
    void resume(const std::set<std::string>& given);
    // The flags' checks; a fresh run must not overwrite a checkpoint already in --save.
    void check_args() const;
    // The checkpoint's model, --model's (checked against --config) or random weights from --config;
    // with --peft, the frozen --model and its adapter (the checkpoint's, --init-adapter's or new).
    void open_model();
    // Training and validation tokens (checked against the vocabulary and --seq-len), and the
    // tokenizer files that every checkpoint stores.
    void open_data();
    // Rank 0: the --save folder, before the first step so that it fails early (see below).
    void open_save_folder();
    // --keep-sparsity: the zeros of --model's matrices (re-read from the file on resume).
    void open_sparsity_mask();

    Distributed& dist = Distributed::get();
    const bool lead = dist.rank() == 0;
    TrainArgs a;
    std::string ckpt;  // the checkpoint resumed from; empty for a fresh run
    TrainerState state;
    std::optional<SaveFolder> folder;  // rank 0: the --save folder, locked for this run
    std::unique_ptr<TrainModel> model;
    std::unique_ptr<PeftAdapter> peft;  // --peft lora|prompt
    TokenData data;
    std::optional<TokenData> val, replay;
    std::unique_ptr<EwcPenalty> ewc;
    std::unique_ptr<Teacher> teacher;  // --teacher (not for --eval-only)
    std::unique_ptr<Qat> qat;  // --qat / --qat-act (plugged into model; destroyed before it)
    std::unique_ptr<SparsityMask> sparsity;  // --keep-sparsity
    std::vector<std::string> extra;  // tokenizer files copied into every checkpoint

private:
    void open_peft_model();
    void commit_unnamed_checkpoint();
    void start_without_checkpoint();
    void restore(const std::set<std::string>& given);
};

void RunInputs::resume(const std::set<std::string>& given) {
    std::error_code ec;
    const bool own_folder = a.save.empty();
    if (own_folder) a.save = resume_save_folder(a.resume);
    // Clean the leftovers of an interrupted save before reading the folder (it is ours: rank 0
    // alone writes it, under its lock), and fail at once if it is read-only.
    if (lead && own_folder && fs::is_directory(a.save, ec)) folder.emplace(a.save, "--resume");
    if (dist.active()) {  // the other ranks read the folder once rank 0 has cleaned it
        double barrier = 0;
        dist.allreduce_sum(&barrier, 1);
    }
    commit_unnamed_checkpoint();
    if (no_checkpoint_yet(a.resume)) {
        start_without_checkpoint();
    } else {
        restore(given);
    }
}

// Killed between the first checkpoint's rename into place and the first `latest`: the checkpoint
// is complete (it is renamed only once every file is synced); commit it and resume from it.
void RunInputs::commit_unnamed_checkpoint() {
    std::error_code ec;
    if (fs::is_directory(a.resume, ec) && !fs::exists(fs::path(a.resume) / "latest", ec) &&
        !fs::exists(fs::path(a.resume) / "trainer_state.json", ec)) {
        const std::string c = newest_complete_checkpoint(a.resume);
        if (!c.empty()) {
            if (folder) write_latest(a.save, fs::path(c).filename().string());
            if (lead)
                std::fprintf(stderr, "train: note: %s had no 'latest' (a save was interrupted); resuming from %s, "
                                     "its newest complete checkpoint\n", a.resume.c_str(), c.c_str());
            a.resume = c;
        }
    }
}

// Killed before its first save completed (or an empty folder): nothing to resume. With what a
// fresh run needs on the command line, start at step 0; else verify_checkpoint says so in one line.
void RunInputs::start_without_checkpoint() {
    if (a.data.empty() || (a.config.empty() && a.model.empty())) (void)verify_checkpoint(a.resume);
    if (lead)
        std::fprintf(stderr, "train: note: --resume %s holds no completed checkpoint yet (stopped before its "
                             "first save); starting at step 0 with the flags given\n", a.resume.c_str());
    a.resume.clear();
}

// The checkpoint's state, and its saved flags except those given again on the command line.
void RunInputs::restore(const std::set<std::string>& given) {
    ckpt = verify_checkpoint(a.resume);
    state = read_trainer_state(ckpt);
    merge_resumed_args(a, state.args, given);
    const int saved_ranks = state.args.value("ranks", 1);
    if (saved_ranks != dist.size() && lead)
        std::fprintf(stderr, "train: note: checkpoint was written by a %d-rank run, resuming with %d ranks (the "
                             "batch order changes)\n", saved_ranks, dist.size());
}

void RunInputs::check_args() const {
    validate(a);
    if (!a.save.empty() && ckpt.empty() && has_checkpoint(a.save))
        fail("train: --save %s already holds a checkpoint (hint: --resume %s to continue it, or choose a new folder)",
             a.save.c_str(), a.save.c_str());
}

void RunInputs::open_model() {
    if (a.peft != "none") return open_peft_model();
    if (!ckpt.empty()) {
        model = TrainModel::from_files(open_model_files(ckpt));
    } else if (!a.model.empty()) {
        model = TrainModel::from_files(open_model_files(a.model));
        if (!a.config.empty()) check_same_shapes(model->config(), hf_config_read(a.config), a.model, a.config);
    } else if (!a.config.empty()) {
        model = TrainModel::init_random(hf_config_read(a.config), a.seed);
    } else {
        fail("train: no model (hint: --config CFG.json for random weights, --model DIR|FILE to start from weights, "
             "or --resume DIR)");
    }
    model->to_rotate_half();
    set_activation_storage(*model, a);
    model->set_attention(a.attention);
}

void RunInputs::open_peft_model() {
    // Every base tensor frozen: kept in its file's dtype (quantised and mapped included).
    model = TrainModel::from_files(open_model_files(a.model), [](const std::string&) { return false; });
    if (!a.config.empty()) check_same_shapes(model->config(), hf_config_read(a.config), a.model, a.config);
    model->to_rotate_half();
    set_activation_storage(*model, a);
    model->set_attention(a.attention);
    const PeftType want = a.peft == "lora" ? PeftType::kLora : PeftType::kPromptTuning;
    const std::string from = !ckpt.empty() ? ckpt : a.init_adapter;
    if (!from.empty()) {
        peft = PeftAdapter::load(*model, from);
        if (peft->config().type != want)
            fail("train: %s holds a %s adapter, but --peft is %s (hint: --peft %s)", from.c_str(),
                 peft->config().type == PeftType::kLora ? "LoRA" : "prompt-tuning", a.peft.c_str(),
                 peft->config().type == PeftType::kLora ? "lora" : "prompt");
    } else {
        AdapterConfig c;
        c.type = want;
        c.base_model = a.model;
        c.r = a.lora_r;
        c.alpha = a.lora_alpha;
        c.target_modules = split_targets(a.lora_targets);
        c.use_rslora = a.use_rslora;
        c.num_virtual_tokens = a.virtual_tokens;
        c.init_text = a.prompt_init_text;
        c.tokenizer = a.model;
        std::vector<int32_t> ids;
        if (want == PeftType::kPromptTuning && !a.prompt_init_text.empty()) {
            if (model->inference().vocab().tokens.empty())
                fail("train: --prompt-init-text needs the base's tokenizer, and %s has none (hint: a model folder with "
                     "tokenizer.json, or a GGUF with tokenizer keys)", a.model.c_str());
            // PEFT tokenises the text as the tokenizer does by default (BOS included where it adds one).
            ids = encode_prompt(*Tokenizer::create(model->inference().vocab()), a.prompt_init_text, true, false);
            if (ids.empty()) fail("train: --prompt-init-text is empty after tokenisation");
        }
        peft = PeftAdapter::create(*model, c, a.seed, ids);
    }
    peft->set_lora_dropout(a.lora_dropout);
    peft->attach(*model);
}

void RunInputs::open_data() {
    std::error_code ec;
    const int64_t V = model->config().n_vocab, T = a.seq_len;
    if (a.eval_only && !a.val_data.empty()) {
        val = TokenData::open(a.val_data, "val", V);
        if (!val->sft() && val->size() < T + 1)
            fail("train: validation data %s is too short for --seq-len %lld", val->description().c_str(), (long long)T);
        if (val->sft()) model->added_rows_predict_first = false;
        data = *val;
        return;
    }
    data = TokenData::open(a.data, "train", V);
    // (SFT data pads its packed rows: any dialogue fills a row.)
    if (!data.sft() && data.size() < T + 1)
        fail("train: %s is too short for --seq-len %lld (needs at least %lld tokens)", data.description().c_str(),
             (long long)T, (long long)(T + 1));
    if (!a.val_data.empty()) {
        val = TokenData::open(a.val_data, "val", V);
    } else if ((a.eval_every > 0 || a.eval_only) && fs::is_directory(a.data, ec)) {
        val = TokenData::open(a.data, "val", V);
    }
    if (a.eval_every > 0 && !val) fail("train: --eval-every needs validation data (hint: --val-data FILE)");
    if (a.eval_only && !val) fail("train: --eval-only needs validation data (hint: --val-data FILE, or a prepare folder with a val split)");
    if (data.sft()) {
        (void)data.packing(T);  // the packing (and its truncation notice) before the first step
        model->added_rows_predict_first = false;  // a dialogue's first token is template text
    }
    if (!a.replay.empty()) {
        replay = TokenData::open(a.replay, "train", V);
        if (!replay->sft() && replay->size() < T + 1)
            fail("train: --replay %s is too short for --seq-len %lld", replay->description().c_str(), (long long)T);
    }
    if (a.ewc_lambda > 0) {
        ewc = std::make_unique<EwcPenalty>(a.ewc_fisher, param_list(*model, peft.get()));
    }
    if (val && !val->sft() && val->size() < T + 1)
        fail("train: validation data %s is too short for --seq-len %lld", val->description().c_str(), (long long)T);
    extra = tokenizer_files(a);
}

void RunInputs::open_sparsity_mask() {
    const std::vector<Param*> params = param_list(*model, nullptr);
    if (ckpt.empty()) {
        sparsity = std::make_unique<SparsityMask>(params, params, a.model);
        return;
    }
    // Resumed: not the masters' zeros (a weight may have reached 0.0 by training), the initial
    // file's, laid out as open_model lays them out.
    std::unique_ptr<TrainModel> initial = TrainModel::from_files(open_model_files(a.model));
    initial->to_rotate_half();
    sparsity = std::make_unique<SparsityMask>(params, param_list(*initial, nullptr), a.model);
    sparsity->check_resumed(ckpt);
}

// The --save folder: created, locked, checked writable (a read-only folder fails here, not at the
// first save), cleaned of leftovers; its top-level model files re-linked to the checkpoint
// `latest` names if a kill left them behind it.
void RunInputs::open_save_folder() {
    if (!lead || a.save.empty()) return;
    if (!folder) folder.emplace(a.save);
    if (folder->leftovers() > 0)
        std::fprintf(stderr, "train: note: removed %d leftover(s) of an interrupted save from %s\n",
                     folder->leftovers(), a.save.c_str());
    const std::vector<std::string> relinked = sync_top_level(a.save);
    if (!relinked.empty()) {
        std::string names;
        for (const std::string& n : relinked) names += (names.empty() ? "" : ", ") + n;
        std::fprintf(stderr, "train: note: re-linked %s in %s to the checkpoint 'latest' names (a save was "
                             "interrupted)\n", names.c_str(), a.save.c_str());
    }
}

// Closes --log-jsonl however the run ends.
struct FileCloser {
    void operator()(std::FILE* f) const { std::fclose(f); }
};

// The training itself, over opened inputs: threads, the optimiser (restored from the
// checkpoint), the log, and the step loop with its evaluation, logging and checkpoints.
class TrainRun {
public:
    // Builds the optimiser and the tape and opens --log-jsonl (the last input that can fail).
    explicit TrainRun(RunInputs& inputs);
    TrainRun(const TrainRun&) = delete;
    TrainRun& operator=(const TrainRun&) = delete;

    // The model and data summary on stderr.
    void announce() const;
    // Steps from the checkpoint's step (or 0) to --steps, or to --stop-after.
    void train();
    // --eval-only: the validation loss, printed as one JSON line on stdout.
    TrainResult evaluate_only();
    // The final save (unless the last step was saved) and the run's summary.
    TrainResult finish();

private:
    struct StepStats {
        double lr = 0, loss = 0, norm = std::nan(""), tokens_per_s = 0;
        double ewc = 0;  // the EWC penalty (not part of loss)
        bool skipped = false;  // fp16 overflow: no update
        // MoE layers: the step's expert loads (tokens per expert): coefficient of variation averaged
        // over the layers, the largest max/mean load ratio of any layer, per-layer CV; balance loss.
        bool moe = false;
        double moe_cv = 0, moe_max = 0, moe_aux = 0;
        std::vector<double> moe_layer_cv;
    };
    double mtp_sum = 0;  // the step's MTP losses (summed over micro-batches)
    void moe_loads(StepStats& s);
    void balance_experts();
    void run_step(int64_t step);
    double accumulate_grads(int64_t step);
    void fill_rows(int64_t k);
    Var micro_loss(const int32_t* targets_used, uint64_t dropout_seed);
    void fgm_pass(const int32_t* targets_used, uint64_t dropout_seed, float seed_scale);
    bool unscale_grads(int64_t step, double loss);
    void report(int64_t step, const StepStats& s);
    void maybe_evaluate(int64_t step);
    double eval_loss(const TokenData& d);
    void maybe_save(int64_t step);
    void save();

    RunInputs& in;
    Distributed& dist;
    const bool lead;
    const TrainArgs& a;
    TrainerState& state;
    TrainModel& model;
    const ModelConfig& cfg;
    const Precision prec;
    const Schedule sch;
    const int64_t B, T, A;
    const int threads;
    ThreadPool pool;
    std::vector<Param*> params;
    AdamW opt;
    Tape tape;
    bool last_micro = false;  // in the last micro-batch of a step, whose gradients the ranks reduce
    double loss_scale;
    int64_t good_steps;
    std::unique_ptr<std::FILE, FileCloser> log;  // rank 0 with --log-jsonl
    BatchPlan plan;
    std::vector<int32_t> tokens, targets;  // one micro-batch (B, T), shared by training and evaluation
    std::vector<int32_t> replay_tokens, replay_targets;
    std::vector<int32_t> docs, replay_docs;  // packed (SFT) rows: each row's document start
    const int32_t* doc_ptr() { return in.data.sft() || (in.replay && in.replay->sft()) ? docs.data() : nullptr; }
    bool saved = false;
    TrainResult res;
    std::vector<double> rates;  // tokens/s of each step after the first
    StepLine line;
    std::chrono::steady_clock::time_point run_t0{};
    const int64_t first_step;
    int64_t last_saved;
    const int64_t end_step;
    bool moe_bias = false;  // the model has trainable exp_probs_b biases
    double moe_gamma = 0;   // --moe-bias-gamma resolved
};

TrainRun::TrainRun(RunInputs& inputs)
    : in(inputs),
      dist(inputs.dist),
      lead(inputs.lead),
      a(inputs.a),
      state(inputs.state),
      model(*inputs.model),
      cfg(model.config()),
      prec(precision_from_name(a.precision)),
      sch(schedule_from_name(a.schedule)),
      B(a.batch),
      T(a.seq_len),
      A(a.grad_accum),
      threads(a.threads > 0 ? a.threads
                            : std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / dist.local_size())),
      pool(threads),
      params(param_list(model, inputs.peft.get())),
      opt(params, adamw_config(a)),
      tape(pool),
      loss_scale(prec == Precision::kFP16 ? (state.loss_scale > 1 ? state.loss_scale : 65536.0) : 1.0),
      good_steps(state.good_steps),
      plan{B, T, dist.size(), dist.rank(), a.shuffle, a.seed},
      tokens(static_cast<size_t>(B * T)),
      targets(static_cast<size_t>(B * T)),
      docs(static_cast<size_t>(B * T), 0),
      line(lead && !a.quiet),
      first_step(state.step),
      last_saved(in.ckpt.empty() ? -1 : state.step),
      end_step(a.stop_after >= 0 ? std::min(a.steps, a.stop_after) : a.steps) {
    if (!in.ckpt.empty()) load_optimizer_state(in.ckpt, opt, state.step);
    tape.precision = prec;
    tape.free_in_backward = true;  // activations and gradients go back to the free list as backward descends
    if (dist.active()) {
        dist.grad_buckets(params);
        model.on_grad_ready = [this](const Param* p) {
            if (last_micro) dist.param_ready(p);
        };
    }
    state.args = args_to_json(a);
    if (lead && !a.log_jsonl.empty()) {
        std::FILE* f = std::fopen(a.log_jsonl.c_str(), in.ckpt.empty() ? "w" : "a");
        if (f == nullptr) fail("train: cannot write --log-jsonl %s (%s)", a.log_jsonl.c_str(), std::strerror(errno));
        log.reset(f);
    }
    res.n_params = model.n_params() + (in.peft ? in.peft->n_trainable() : 0);
    model.moe_aux_alpha = static_cast<float>(a.moe_aux_alpha);
    if (a.mtp_lambda > 0 && !(cfg.ds.n_mtp > 0)) {
        fail("train: --mtp-lambda %g needs a model with multi-token-prediction weights, but this %s model has none "
             "(hint: a DeepSeek-V3-style config with \"num_nextn_predict_layers\": 1)",
             a.mtp_lambda, cfg.arch.c_str());
    }
    if (a.mtp_lambda > 0 && dist.active()) fail("train: --mtp-lambda is not supported with several MPI ranks yet");
    model.mtp_lambda = static_cast<float>(a.mtp_lambda);
    for (const auto& p : model.params()) moe_bias |= p->name.find("exp_probs_b") != std::string::npos;
    moe_gamma = a.moe_bias_gamma >= 0 ? a.moe_bias_gamma : (cfg.ds.gating == MoeGating::kSigmoid && moe_bias ? 1e-3 : 0.0);
    if (in.qat) in.qat->refresh(pool);  // from the (possibly resumed) masters, as after the step that saved them
}

void TrainRun::announce() const {
    if (!lead) return;
    std::fprintf(stderr,
                 "train: %s model, %.2fM parameters (dim %lld, %lld layers, %lld heads / %lld kv, ffn %lld, vocab %lld), "
                 "%s, %d rank%s x %d thread%s\n",
                 cfg.arch.c_str(), model.n_params() / 1e6, (long long)cfg.n_embd, (long long)cfg.n_layer,
                 (long long)cfg.n_head, (long long)cfg.n_head_kv, (long long)cfg.n_ff, (long long)cfg.n_vocab,
                 precision_name(prec), dist.size(), dist.size() == 1 ? "" : "s", threads, threads == 1 ? "" : "s");
    if (cfg.attention_lsh) std::fprintf(stderr, "train: attention %s\n", cfg.lsh.describe().c_str());
    if (in.peft) {
        // As PEFT's print_trainable_parameters() says it; the base's bytes stay as the file has them.
        const int64_t trainable = in.peft->n_trainable(), all = res.n_params;
        std::fprintf(stderr, "train: %s adapter over the frozen base (%.1f MiB of weights)\n",
                     in.peft->config().type == PeftType::kLora ? "LoRA" : "prompt-tuning",
                     static_cast<double>(model.inference().weight_bytes()) / (1 << 20));
        std::fprintf(stderr, "trainable params: %s || all params: %s || trainable%%: %.4f\n", with_commas(trainable).c_str(),
                     with_commas(all).c_str(), 100.0 * static_cast<double>(trainable) / static_cast<double>(all));
    }
    if (in.teacher)
        std::fprintf(stderr, "train: distilling from %s (%.2fM parameters, dim %lld, %lld layers): alpha %g, temperature %g\n",
                     a.teacher.c_str(), in.teacher->model().n_params() / 1e6, (long long)in.teacher->model().config().n_embd,
                     (long long)in.teacher->model().config().n_layer, a.distill_alpha, a.distill_temp);
    std::fprintf(stderr, "train: data %s; %lld tokens per step (batch %lld x seq %lld x accum %lld x %d ranks)%s\n",
                 in.data.description().c_str(), (long long)(B * T * A * dist.size()), (long long)B, (long long)T,
                 (long long)A, dist.size(), in.ckpt.empty() ? "" : (", resuming at step " + std::to_string(state.step)).c_str());
    if (in.qat)
        std::fprintf(stderr, "train: quantisation-aware: --qat %s (%d matrices, %.2fM values fake-quantised), --qat-act %s\n",
                     qat_name(in.qat->config().weights).c_str(), in.qat->n_tensors(), in.qat->n_values() / 1e6,
                     in.qat->config().act_int8 ? "int8" : "none");
    if (cfg.ds.n_routed_experts > 0 && cfg.ds.first_k_dense < cfg.n_layer)
        std::fprintf(stderr, "train: MoE: %lld layers of %lld experts (%lld used, %lld shared), %s gating; bias balancing %s; "
                     "balance loss alpha %g\n",
                     (long long)(cfg.n_layer - cfg.ds.first_k_dense), (long long)cfg.ds.n_routed_experts,
                     (long long)cfg.ds.n_experts_used, (long long)cfg.ds.n_shared_experts,
                     cfg.ds.gating == MoeGating::kSigmoid ? "sigmoid" : "softmax",
                     moe_gamma > 0 ? ("gamma " + std::to_string(moe_gamma)).c_str()
                                   : (moe_bias ? "off" : "off (no trainable exp_probs_b)"),
                     a.moe_aux_alpha);
    if (in.sparsity)
        std::fprintf(stderr, "train: keeping sparsity: %lld zeros of %lld values (%.2f%%) in %d matrices stay 0\n",
                     (long long)in.sparsity->n_masked(), (long long)in.sparsity->n_values(),
                     in.sparsity->n_values() > 0 ? 100.0 * in.sparsity->n_masked() / in.sparsity->n_values() : 0.0,
                     in.sparsity->n_tensors());
}

void TrainRun::train() {
    run_t0 = std::chrono::steady_clock::now();
    for (int64_t step = state.step; step < end_step; ++step) run_step(step);
    line.end();
}

// One optimiser step: gradients over the micro-batches, the update, then the step's report, and
// evaluation and a checkpoint when due.
void TrainRun::run_step(int64_t step) {
    const auto t0 = std::chrono::steady_clock::now();
    StepStats s;
    s.lr = learning_rate(sch, step, a.steps, a.warmup_steps, a.lr, a.min_lr);
    model.moe_stats.clear();
    s.loss = accumulate_grads(step);
    moe_loads(s);
    s.skipped = unscale_grads(step, s.loss);
    if (!s.skipped) {
        if (in.ewc) s.ewc = in.ewc->add_gradient(static_cast<float>(a.ewc_lambda), pool);
        if (in.sparsity) in.sparsity->mask_grads(pool);  // before the norm: the pruned entries are not parameters
        s.norm = clip_grad_norm(params, a.grad_clip, pool);
        opt.step(static_cast<float>(s.lr), pool);
        if (in.sparsity) in.sparsity->mask_weights(pool);  // exactly 0 again, whatever the update did
        if (in.qat) in.qat->refresh(pool);  // the next step's forward reads the updated weights quantised
        balance_experts();
    }
    const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    s.tokens_per_s = static_cast<double>(B * T * A * dist.size()) / dt;
    if (step > first_step) rates.push_back(s.tokens_per_s);
    state.step = step + 1;
    state.history.push_back({step, s.loss});
    res.last_loss = s.loss;
    report(step, s);
    maybe_evaluate(step);
    maybe_save(step);
}

// The step's expert loads, summed over the ranks (so every rank nudges its biases alike), into s.
void TrainRun::moe_loads(StepStats& s) {
    TrainModel::MoeStats& st = model.moe_stats;
    if (st.load.empty()) return;
    if (dist.active()) {
        for (auto& [l, v] : st.load) {
            std::vector<double> d(v.begin(), v.end());
            dist.allreduce_sum(d.data(), static_cast<int64_t>(d.size()));
            for (size_t i = 0; i < v.size(); ++i) v[i] = std::llround(d[i]);
        }
        dist.allreduce_sum(&st.aux, 1);
        st.aux /= dist.size();
    }
    s.moe = true;
    s.moe_aux = st.aux / static_cast<double>(A);
    double cv_sum = 0;
    for (const auto& [l, v] : st.load) {
        double sum = 0, sq = 0, mx = 0;
        for (int64_t c : v) sum += static_cast<double>(c), mx = std::max(mx, static_cast<double>(c));
        const double mean = sum / static_cast<double>(v.size());
        for (int64_t c : v) sq += (static_cast<double>(c) - mean) * (static_cast<double>(c) - mean);
        const double cv = mean > 0 ? std::sqrt(sq / static_cast<double>(v.size())) / mean : 0.0;
        s.moe_layer_cv.push_back(cv);
        cv_sum += cv;
        s.moe_max = std::max(s.moe_max, mean > 0 ? mx / mean : 0.0);
    }
    s.moe_cv = cv_sum / static_cast<double>(st.load.size());
}

// DeepSeek-V3's auxiliary-loss-free balancing on the step's (reduced) loads.
void TrainRun::balance_experts() {
    if (moe_gamma > 0) model.balance_experts(static_cast<float>(moe_gamma));
}

// Forward and backward over the step's micro-batches, the gradients summed (scaled by
// loss_scale / A) and reduced over the ranks; returns the mean loss over micro-batches and ranks.
double TrainRun::accumulate_grads(int64_t step) {
    zero_grads(params);
    double loss_sum = 0;
    mtp_sum = 0;
    for (int64_t acc = 0; acc < A; ++acc) {
        const int64_t k = step * A + acc;
        fill_rows(k);
        tape.reset();
        // The ranks reduce during the micro-batch's last backward (FGM's second one when on).
        const bool reduce = acc == A - 1;
        last_micro = reduce && a.fgm == 0;
        if (last_micro && dist.active()) dist.begin();
        const uint64_t dropout_seed = seed_mix(a.seed ^ seed_mix(static_cast<uint64_t>(k) * 1315423911ull + dist.rank()));
        if (in.peft) in.peft->set_training(true, dropout_seed);
        model.need_embed_grad = a.fgm > 0;
        if (in.teacher) in.teacher->run(tokens.data(), B, T, doc_ptr(), pool);  // this micro-batch's rows only
        Var loss = micro_loss(targets.data(), dropout_seed);
        loss_sum += loss->data[0];
        if (model.mtp_lambda > 0 && model.last_mtp_loss != nullptr) {  // log the main loss; MTP's apart
            const double m = model.last_mtp_loss->data[0];
            mtp_sum += m;
            loss_sum -= model.mtp_lambda * m;
            model.last_mtp_loss = nullptr;
        }
        const float seed_scale = static_cast<float>(loss_scale / static_cast<double>(A));
        tape.backward(loss, seed_scale);
        if (a.fgm > 0) {
            last_micro = reduce;
            if (last_micro && dist.active()) dist.begin();
            fgm_pass(targets.data(), dropout_seed, seed_scale);
        }
    }
    model.need_embed_grad = false;
    tape.reset();
    if (dist.active()) dist.finish();
    double loss_mean = loss_sum / static_cast<double>(A);
    if (dist.active()) {
        dist.allreduce_sum(&loss_mean, 1);
        loss_mean /= dist.size();
    }
    return loss_mean;
}

// Micro-batch k's rows into tokens/targets: the data's, each row replaced by the --replay data's
// with probability --replay-ratio (a pure function of (seed, k, row), so resume is exact).
void TrainRun::fill_rows(int64_t k) {
    fill_batch(in.data, plan, k, tokens.data(), targets.data(), docs.data());
    if (!in.replay || a.replay_ratio <= 0) return;
    replay_tokens.resize(tokens.size());
    replay_targets.resize(targets.size());
    replay_docs.resize(docs.size());
    BatchPlan rp = plan;
    rp.seed = mix64(plan.seed ^ 0x7265706c6179ull);  // its own row order
    fill_batch(*in.replay, rp, k, replay_tokens.data(), replay_targets.data(), replay_docs.data());
    for (int64_t g = 0; g < B; ++g) {
        const uint64_t h = mix64(mix64(a.seed ^ 0x5245504c4159ull) + static_cast<uint64_t>(k) * kGoldenGamma +
                                 static_cast<uint64_t>(dist.rank() * B + g));
        if (uniform53(h) >= a.replay_ratio) continue;
        std::copy(replay_tokens.begin() + g * T, replay_tokens.begin() + (g + 1) * T, tokens.begin() + g * T);
        std::copy(replay_targets.begin() + g * T, replay_targets.begin() + (g + 1) * T, targets.begin() + g * T);
        std::copy(replay_docs.begin() + g * T, replay_docs.begin() + (g + 1) * T, docs.begin() + g * T);
    }
}

// The micro-batch's loss on the tape: cross-entropy against the labels or, with --teacher, the
// distillation loss against the teacher's logits of the same rows (Teacher::run, kept until backward).
Var TrainRun::micro_loss(const int32_t* targets_used, uint64_t dropout_seed) {
    if (!in.teacher)
        return model.forward(tape, tokens.data(), targets_used, B, T, static_cast<float>(a.dropout), dropout_seed, nullptr,
                             doc_ptr());
    Var lg = model.logits(tape, tokens.data(), B, T, static_cast<float>(a.dropout), dropout_seed, nullptr, doc_ptr());
    LF_ASSERT(lg->numel == B * T * cfg.n_vocab);  // no added rows (--peft prompt is refused with --teacher)
    return distill_loss(tape, lg, in.teacher->logits(), targets_used, B * T, static_cast<float>(a.distill_temp),
                        static_cast<float>(a.distill_alpha));
}

// FGM (Miyato et al.): the token-embedding rows moved by ε·g/‖g‖ along the gradient of the loss
// just computed, then a second forward/backward whose gradients add to the step's; the rows are
// restored (the offset cleared) for the next micro-batch. The same dropout masks are used.
void TrainRun::fgm_pass(const int32_t* targets_used, uint64_t dropout_seed, float seed_scale) {
    Var e = model.last_embed;
    LF_ASSERT(e != nullptr);
    std::vector<float>& off = model.embed_offset;
    off.assign(static_cast<size_t>(e->numel), 0.0f);
    if (e->grad != nullptr) {
        double ss = 0;
        for (int64_t i = 0; i < e->numel; ++i) ss += static_cast<double>(e->grad[i]) * e->grad[i];
        const double norm = std::sqrt(ss);  // the loss scale cancels in g/‖g‖
        if (norm > 0 && std::isfinite(norm))
            for (int64_t i = 0; i < e->numel; ++i) off[i] = static_cast<float>(a.fgm * e->grad[i] / norm);
    }
    tape.reset();
    Var adv = micro_loss(targets_used, dropout_seed);
    tape.backward(adv, seed_scale);
    off.clear();
}

// fp16: an overflow skips the step and halves the loss scale, else the gradients are unscaled and
// the scale doubles after 2000 good steps. Other precisions: a non-finite loss ends the run.
// Returns whether the step is skipped.
bool TrainRun::unscale_grads(int64_t step, double loss) {
    if (prec == Precision::kFP16) {
        if (grads_non_finite(params, pool)) {
            loss_scale = std::max(1.0, loss_scale / 2);
            good_steps = 0;
            return true;
        }
        scale_grads(params, static_cast<float>(1.0 / loss_scale), pool);
        if (++good_steps >= 2000) loss_scale *= 2, good_steps = 0;
    } else if (!std::isfinite(loss)) {
        fail("train: loss is %g at step %lld (diverged; hint: lower --lr, or use --grad-clip)", loss, (long long)step);
    }
    return false;
}

// The step's --log-jsonl line and progress line.
void TrainRun::report(int64_t step, const StepStats& s) {
    if (log) {
        json j = {{"step", step}, {"loss", s.loss}, {"lr", s.lr}, {"grad_norm", s.skipped ? json(nullptr) : json(s.norm)},
                  {"tokens_per_s", s.tokens_per_s}};
        if (s.skipped) j["skipped"] = "fp16 overflow, loss scale now " + std::to_string(loss_scale);
        if (in.ewc) j["ewc_penalty"] = s.ewc;
        if (s.moe) {
            j["moe_load_cv"] = s.moe_cv;
            j["moe_load_max"] = s.moe_max;
            j["moe_layer_cv"] = s.moe_layer_cv;
            if (a.moe_aux_alpha > 0) j["moe_aux_loss"] = s.moe_aux;
        }
        if (a.mtp_lambda > 0) j["mtp_loss"] = mtp_sum / static_cast<double>(A);
        std::fprintf(log.get(), "%s\n", j.dump().c_str());
        std::fflush(log.get());
    }
    const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - run_t0).count();
    const double eta = elapsed / static_cast<double>(step + 1 - first_step) * static_cast<double>(end_step - step - 1);
    char buf[256];
    char moe[64] = "";
    if (s.moe) std::snprintf(moe, sizeof moe, "  experts cv %.2f max/mean %.2f", s.moe_cv, s.moe_max);
    std::snprintf(buf, sizeof buf, "train: step %lld/%lld  loss %.4f  lr %.2e  |g| %.3f  %.0f tok/s%s  ETA %s",
                  (long long)(step + 1), (long long)a.steps, s.loss, s.lr, s.norm, s.tokens_per_s, moe,
                  fmt_duration(eta).c_str());
    line.show(buf, step + 1 == end_step);
}

// Rank 0, every --eval-every steps: the validation loss, on stderr, in the log and the state.
void TrainRun::maybe_evaluate(int64_t step) {
    if (!(in.val && a.eval_every > 0 && (step + 1) % a.eval_every == 0 && lead)) return;
    const double vl = eval_loss(*in.val);
    res.last_val_loss = vl;
    state.val_history.push_back({step, vl});
    line.end();
    std::fprintf(stderr, "train: step %lld  validation loss %.4f\n", (long long)(step + 1), vl);
    if (log) {
        std::fprintf(log.get(), "%s\n", json{{"step", step}, {"val_loss", vl}}.dump().c_str());
        std::fflush(log.get());
    }
}

// The mean loss over --eval-batches fixed batches (file order, no dropout, no gradients), so that
// every evaluation of a run sees the same tokens.
double TrainRun::eval_loss(const TokenData& d) {
    BatchPlan ep{B, T, 1, 0, false, 0};
    tape.grad_enabled = false;
    const float mtp = model.mtp_lambda;  // the validation loss is the main model's
    model.mtp_lambda = 0;
    if (in.peft) in.peft->set_training(false, 0);
    double s = 0;
    for (int64_t k = 0; k < a.eval_batches; ++k) {
        fill_batch(d, ep, k, tokens.data(), targets.data(), docs.data());
        tape.reset();
        s += model.forward(tape, tokens.data(), targets.data(), B, T, 0.0f, 0, nullptr, d.sft() ? docs.data() : nullptr)->data[0];
    }
    tape.reset();
    tape.grad_enabled = true;
    model.mtp_lambda = mtp;
    return s / static_cast<double>(std::max<int64_t>(a.eval_batches, 1));
}

// Every --save-every steps; the last step is left to finish(), which always saves it.
void TrainRun::maybe_save(int64_t step) {
    if (a.save_every > 0 && (step + 1) % a.save_every == 0 && step + 1 != end_step) {
        save();
        last_saved = state.step;
    }
}

// Rank 0 with --save: a checkpoint of the current step, and the loss curve beside it.
void TrainRun::save() {
    if (!lead || a.save.empty()) return;
    saved = true;
    state.loss_scale = loss_scale;
    state.good_steps = good_steps;
    if (in.peft) {
        const Adapter ad = in.peft->snapshot();
        save_checkpoint(a.save, [&](const std::string& folder) { write_adapter(folder, ad); }, res.n_params, opt, state,
                        in.extra, a.keep);
    } else {
        save_checkpoint(a.save, model, opt, state, in.extra, a.keep);
    }
    write_loss_svg((fs::path(a.save) / "loss.svg").string(), state,
                   "llmforge train: " + cfg.arch + " " + std::to_string(res.n_params / 1000) + "K params" +
                       (in.peft ? " (" + a.peft + " adapter)" : ""));
}

TrainResult TrainRun::evaluate_only() {
    if (!in.val) fail("train: --eval-only needs validation data (hint: --val-data FILE, or a prepare folder with a val split)");
    res.eval_loss = eval_loss(*in.val);
    std::printf("%s\n", json{{"model", a.model},
                             {"adapter", a.init_adapter},
                             {"data", in.val->description()},
                             {"batches", a.eval_batches},
                             {"tokens", a.eval_batches * B * T},
                             {"val_loss", res.eval_loss},
                             {"perplexity", std::exp(res.eval_loss)}}
                             .dump()
                             .c_str());
    return res;
}

TrainResult TrainRun::finish() {
    if (state.step != last_saved) save();
    if (saved)
        std::fprintf(stderr, "train: saved step %lld to %s (loss curve: %s/loss.svg)\n", (long long)state.step,
                     a.save.c_str(), a.save.c_str());
    res.steps_done = state.step;
    if (!rates.empty()) {
        std::sort(rates.begin(), rates.end());
        res.tokens_per_s = rates[rates.size() / 2];
    }
    res.peak_rss_mb = peak_rss_mb();
    if (lead)
        std::fprintf(stderr, "train: done: %lld steps, last loss %.4f, median %.0f tok/s, peak RSS %.0f MiB\n",
                     (long long)state.step, res.last_loss, res.tokens_per_s, res.peak_rss_mb);
    return res;
}

}  // namespace

TrainResult run_training(TrainArgs a, const std::set<std::string>& given) {
    // Everything that can fail on bad input happens before anything is written (except the
    // removal of an interrupted save's leftovers in the run's own folder).
    RunInputs in(std::move(a));
    if (!in.a.resume.empty()) in.resume(given);
    in.check_args();
    in.open_model();
    if (const QatConfig qc = qat_config(in.a.qat, in.a.qat_act); qc.enabled()) in.qat = std::make_unique<Qat>(*in.model, qc);
    if (in.a.keep_sparsity && !in.a.eval_only) in.open_sparsity_mask();
    in.open_data();
    if (!in.a.teacher.empty() && !in.a.eval_only)
        in.teacher = Teacher::open(in.a.teacher, in.model->inference(),
                                   !in.ckpt.empty() ? in.ckpt : !in.a.model.empty() ? in.a.model : in.a.config,
                                   data_tokenizer_path(in.a.tokenizer, in.a.data));
    in.open_save_folder();

    TrainRun run(in);
    if (in.a.eval_only) return run.evaluate_only();
    run.announce();
    run.train();
    return run.finish();
}

}  // namespace llmforge::train
