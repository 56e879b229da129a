// The training loop behind `llmforge train`: model set-up (from weights, a config, or a
// checkpoint), data, AdamW with the learning-rate schedule, gradient accumulation and clipping,
// mixed precision with fp16 loss scaling, data-parallel reduction over MPI, evaluation, logging,
// crash-safe checkpoints and bit-identical resume.
//
// Determinism: every random choice (batch rows, dropout masks) is a pure function of (seed, step,
// micro-batch, rank), and the kernels' thread split is fixed for a thread count, so a run resumed
// at step k with the same thread count reproduces the uninterrupted run's losses bit for bit.
//
// Thread safety: one run per process.
#pragma once

#include <cstdint>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "model/lsh.h"

namespace llmforge::train {

struct TrainArgs {
    std::string model;      // initial weights: HF folder, GGUF or llama2.c file
    std::string config;     // HF config.json for random init (or to check --model's shapes)
    std::string data, val_data, tokenizer;
    std::string save, resume, log_jsonl;
    int64_t seq_len = 256, batch = 8, grad_accum = 1, steps = 1000, warmup_steps = 0;
    int64_t save_every = 0, stop_after = -1, eval_every = 0, eval_batches = 8;
    double lr = 3e-4, min_lr = 3e-5, beta1 = 0.9, beta2 = 0.95, eps = 1e-8, weight_decay = 0.1;
    double grad_clip = 1.0, dropout = 0.0;
    std::string schedule = "cosine", precision = "fp32";
    // Storage of the values layers keep for backward: "bf16" (half the bytes; backward reads them
    // rounded), "f32", or "auto" = bf16 under --precision bf16, else f32.
    std::string store_activations = "auto";
    uint64_t seed = 1;
    bool shuffle = true, checkpoint_activations = false;
    int threads = 0, keep = 2;
    bool quiet = false;  // no progress line
    // Fine-tuning (train/peft.h): "none" trains every tensor; "lora" and "prompt" train a PEFT
    // adapter over the frozen --model and save the adapter's files.
    std::string peft = "none";
    int64_t lora_r = 8;
    double lora_alpha = 8, lora_dropout = 0;
    std::string lora_targets = "q_proj,v_proj";
    bool use_rslora = false;
    std::string init_adapter;  // start from a saved adapter (its config replaces the LoRA / prompt flags)
    int64_t virtual_tokens = 0;
    std::string prompt_init_text;
    // FGM adversarial training: the token-embedding rows perturbed by fgm·g/‖g‖, a second
    // forward/backward whose gradients add to the step's (0: off).
    double fgm = 0;
    // Rehearsal: each batch row comes from --replay data with probability replay_ratio.
    std::string replay;
    double replay_ratio = 0;
    // EWC: + ewc_lambda/2 · Σ F_i (θ_i − θ*_i)², F and θ* from `llmforge fisher` (--ewc-fisher).
    double ewc_lambda = 0;
    std::string ewc_fisher;
    // Quantisation-aware training (train/qat.h): "none", "q8_0", "q4_0" or "q4_k" (weights
    // fake-quantised in the forward, straight-through gradient, f32 masters); qat_act "int8":
    // per-token int8 activations at every linear's input.
    std::string qat = "none", qat_act = "none";
    // Knowledge distillation (train/distill.h): with a teacher model, the loss is
    // distill_alpha · T² · KL(softmax(teacher/T) ‖ softmax(student/T)) + (1 − distill_alpha) · CE,
    // T = distill_temp; the teacher runs in inference mode on each micro-batch's rows. The step's
    // logged loss is then this mix; validation (--eval-every) stays the label cross-entropy.
    std::string teacher;
    double distill_temp = 2.0, distill_alpha = 0.5;
    // Recovery fine-tuning of a pruned --model (train/sparsity_mask.h): the exact zeros of every
    // trainable matrix at the start stay exactly 0 (gradients masked, weights re-zeroed each step).
    bool keep_sparsity = false;
    // Mixture-of-experts balancing (DeepSeek-V3 §2.1.2): after each optimiser step every MoE layer's
    // selection bias (exp_probs_b) moves by +gamma for experts that got fewer tokens than the mean
    // in the step and -gamma for those that got more (it is part of the model, saved and resumed,
    // never changed by gradients). Negative: the default, 0.001 for sigmoid-gated models with the
    // bias, else 0 (off).
    double moe_bias_gamma = -1;
    // V3's sequence-wise balance loss weight alpha (eq. 17-19; 0: none). Its gradient is added; the
    // logged loss stays the cross-entropy, the balance loss is logged beside it.
    double moe_aux_alpha = 0;
    // Attention for this run (--attention dense|lsh, --lsh-*): kind "" keeps the model's own; the
    // choice is saved with the model (e.g. a dense model fine-tuned into LSH attention).
    AttentionChoice attention;
    // DeepSeek-V3's multi-token-prediction loss weight lambda (0: none; needs MTP weights). The
    // logged loss stays the main cross-entropy; the MTP loss is logged beside it.
    double mtp_lambda = 0;
    // Only the validation loss of the model (with its adapter: --peft + --init-adapter) on
    // --val-data (or --data's val split) over --eval-batches batches; no step, nothing written.
    bool eval_only = false;
};

nlohmann::json args_to_json(const TrainArgs& a);
// Hyper-parameters from a checkpoint's saved args, except those named in `given` (flags the user
// set again on the command line), which keep their value in `a`.
void merge_resumed_args(TrainArgs& a, const nlohmann::json& saved, const std::set<std::string>& given);

struct TrainResult {
    int64_t steps_done = 0;
    double eval_loss = -1;  // --eval-only
    double last_loss = 0, last_val_loss = -1;
    double tokens_per_s = 0;  // median over the run's steps (after the first)
    double peak_rss_mb = 0;
    int64_t n_params = 0;
};

// Runs training; throws Error (one line: what, where, expected, found, hint) for bad input before
// anything is written (rank 0 only creates and locks the --save folder, checks that it is
// writable and removes an interrupted save's leftovers from it first). `given`: the flags set
// explicitly (for --resume). --resume of a folder that holds no checkpoint yet (empty, or only
// leftovers of a run killed before its first save) starts at step 0 when `given` has what a
// fresh run needs (--data and --config or --model), else throws saying so.
TrainResult run_training(TrainArgs a, const std::set<std::string>& given = {});

}  // namespace llmforge::train
