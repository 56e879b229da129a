// llmforge train: pretrain, continue training or fine-tune a model (src/train/trainer.h).
//   llmforge train --config CFG.json --data DIR|FILE.u16 --steps N --save DIR …
//   llmforge train --model BASE --peft lora|prompt …   a PEFT adapter over the frozen base
//   mpirun -np 2 llmforge train …            data-parallel over MPI ranks
//   llmforge train --resume DIR [--steps N]   continue a run bit-identically
#include <set>

#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "train/distributed.h"
#include "train/trainer.h"

namespace llmforge::cli {

void add_train(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("train", "Train a Llama-family model (autograd, AdamW, mixed precision, MPI)");
    static train::TrainArgs a;
    static bool no_shuffle = false;
    sub->add_option("--model", a.model, "initial weights: Hugging Face folder, GGUF or llama2.c file");
    sub->add_option("--config", a.config, "config.json for random initial weights (with --model: must match it)");
    sub->add_option("--data", a.data, "training tokens: a .u16/.u32 file or a folder from llmforge prepare");
    sub->add_option("--val-data", a.val_data, "validation tokens (default: the prepare folder's val split)");
    sub->add_option("--tokenizer", a.tokenizer, "tokenizer.json to store with the model (default: the data's)");
    sub->add_option("--seq-len", a.seq_len, "tokens per row (T)")->capture_default_str();
    sub->add_option("--batch", a.batch, "rows per rank per micro-batch (B)")->capture_default_str();
    sub->add_option("--grad-accum", a.grad_accum, "micro-batches per optimiser step")->capture_default_str();
    sub->add_option("--steps", a.steps, "optimiser steps of the run (the schedule's length)")->capture_default_str();
    sub->add_option("--lr", a.lr, "peak learning rate")->capture_default_str();
    sub->add_option("--min-lr", a.min_lr, "final learning rate of cosine/linear decay")->capture_default_str();
    sub->add_option("--warmup-steps", a.warmup_steps, "linear warmup steps")->capture_default_str();
    sub->add_option("--schedule", a.schedule, "cosine | constant | linear")->capture_default_str();
    sub->add_option("--beta1", a.beta1, "AdamW beta1")->capture_default_str();
    sub->add_option("--beta2", a.beta2, "AdamW beta2")->capture_default_str();
    sub->add_option("--eps", a.eps, "AdamW epsilon")->capture_default_str();
    sub->add_option("--weight-decay", a.weight_decay, "decoupled weight decay (tensors of 2+ dims)")->capture_default_str();
    sub->add_option("--grad-clip", a.grad_clip, "global gradient-norm clip (0 = off)")->capture_default_str();
    sub->add_option("--dropout", a.dropout, "dropout on attention and FFN outputs")->capture_default_str();
    sub->add_option("--precision", a.precision, "fp32 | bf16 | fp16 (products in bf16/fp16, fp32 master weights)")
        ->capture_default_str();
    sub->add_option("--seed", a.seed, "seed of initial weights, batch order and dropout")->capture_default_str();
    sub->add_flag("--no-shuffle", no_shuffle, "read rows in file order (see docs: row g of batch k)");
    sub->add_flag("--checkpoint-activations", a.checkpoint_activations, "recompute layer activations in backward");
    sub->add_option("--store-activations", a.store_activations,
                    "auto | f32 | bf16: storage of what layers keep for backward (auto: bf16 under --precision bf16)")
        ->capture_default_str();
    sub->add_option("-t,--threads", a.threads, "threads per rank (0 = cores / ranks on this machine)");
    sub->add_option("--save", a.save, "checkpoint folder (a Hugging Face model folder + optimiser state)");
    sub->add_option("--save-every", a.save_every, "save every N steps (and always at the end)");
    sub->add_option("--keep", a.keep, "checkpoints to keep")->capture_default_str();
    sub->add_option("--resume", a.resume, "continue the run saved in DIR (same settings unless given again; "
                    "a DIR with no completed checkpoint starts at step 0 if --config/--model and --data are given)");
    sub->add_option("--stop-after", a.stop_after, "planned interruption: save and exit once K steps are done");
    sub->add_option("--eval-every", a.eval_every, "validation loss every N steps");
    sub->add_option("--eval-batches", a.eval_batches, "batches per validation")->capture_default_str();
    sub->add_option("--log-jsonl", a.log_jsonl, "one JSON line per step: step, loss, lr, grad_norm, tokens_per_s");
    sub->add_flag("-q,--quiet", a.quiet, "no progress line");
    add_attention_flags(sub, a.attention);
    // Fine-tuning (PEFT) and robustness.
    sub->add_option("--peft", a.peft, "none | lora | prompt: train all tensors, or an adapter over the frozen --model")
        ->capture_default_str();
    sub->add_option("--lora-r", a.lora_r, "LoRA rank")->capture_default_str();
    sub->add_option("--lora-alpha", a.lora_alpha, "LoRA alpha (scale alpha/r)")->capture_default_str();
    sub->add_option("--lora-dropout", a.lora_dropout, "dropout on the LoRA input")->capture_default_str();
    sub->add_option("--lora-targets", a.lora_targets, "modules: q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj "
                    "or all-linear")->capture_default_str();
    sub->add_flag("--use-rslora", a.use_rslora, "rank-stabilised LoRA: scale alpha/sqrt(r)");
    sub->add_option("--init-adapter", a.init_adapter, "start from a saved PEFT adapter folder");
    sub->add_option("--virtual-tokens", a.virtual_tokens, "prompt tuning: learned virtual tokens");
    sub->add_option("--prompt-init-text", a.prompt_init_text, "prompt tuning: initialise from this text's embeddings");
    sub->add_option("--fgm", a.fgm, "FGM adversarial training: epsilon of the embedding perturbation (0 = off)");
    sub->add_option("--replay", a.replay, "rehearsal data (tokens of an earlier task) mixed into the batches");
    sub->add_option("--replay-ratio", a.replay_ratio, "share of batch rows drawn from --replay");
    sub->add_option("--ewc-lambda", a.ewc_lambda, "EWC strength (needs --ewc-fisher)");
    sub->add_option("--ewc-fisher", a.ewc_fisher, "diagonal Fisher file from llmforge fisher");
    sub->add_option("--teacher", a.teacher, "knowledge distillation from this model (same vocabulary), run in inference "
                    "mode on each micro-batch: loss = alpha*T^2*KL(teacher/T || student/T) + (1-alpha)*CE");
    sub->add_option("--distill-temp", a.distill_temp, "distillation temperature T (> 0)")->capture_default_str();
    sub->add_option("--distill-alpha", a.distill_alpha, "weight of the teacher's soft targets, in [0, 1]")
        ->capture_default_str();
    sub->add_option("--qat", a.qat, "quantisation-aware training for `llmforge quantize --type T`: none | q8_0 | q4_0 | "
                    "q4_k (fake-quantised weights in the forward, straight-through gradients, f32 masters)")
        ->capture_default_str();
    sub->add_option("--qat-act", a.qat_act, "none | int8: per-token int8 fake quantisation of every linear's input")
        ->capture_default_str();
    sub->add_flag("--keep-sparsity", a.keep_sparsity, "recovery fine-tuning of a pruned --model (llmforge prune): its "
                  "matrices' zeros stay exactly 0 (gradients masked, weights re-zeroed every step)");
    sub->add_option("--moe-bias-gamma", a.moe_bias_gamma, "MoE models: after each step every expert's selection bias "
                    "(exp_probs_b) moves by +G if it got fewer tokens than the mean, -G if more (DeepSeek-V3's "
                    "aux-loss-free balancing; default 0.001 for sigmoid-gated models with the bias, 0 = off)");
    sub->add_option("--moe-aux-alpha", a.moe_aux_alpha, "MoE models: weight of DeepSeek-V3's sequence-wise balance loss "
                    "(0 = off)")->capture_default_str();
    sub->add_option("--mtp-lambda", a.mtp_lambda, "DeepSeek-V3 models with an MTP module: weight of the "
                    "multi-token-prediction loss (predicting token t+2; 0 = off)")->capture_default_str();
    sub->add_flag("--eval-only", a.eval_only, "print the validation loss of --model (+ --init-adapter) as JSON and exit");
    run = [sub] {
        a.shuffle = !no_shuffle;
        std::set<std::string> given;
        for (const CLI::Option* o : sub->get_options())
            if (o->count() > 0) given.insert(o->get_name(false, true).substr(0, o->get_name(false, true).find(',')));
        for (std::string s : std::vector<std::string>(given.begin(), given.end())) {  // "--seq-len" -> "seq-len"
            given.erase(s);
            while (!s.empty() && s[0] == '-') s.erase(0, 1);
            given.insert(s);
        }
        train::Distributed& dist = train::Distributed::get();
        try {
            train::run_training(a, given);
        } catch (const std::exception& e) {
            if (!dist.active()) throw;
            // Every rank hits the same bad input; one line from rank 0, then end all ranks.
            if (dist.rank() == 0) std::fprintf(stderr, "llmforge: %s\n", e.what());
            dist.abort(1);
        }
        return 0;
    };
}

}  // namespace llmforge::cli
