// Parameter-efficient fine-tuning over a frozen base, plugged into TrainModel's seams and written
// once for every architecture:
//   * LoRA (after_linear; expert_lora for routed experts, one pair per expert):
//     y = x·Wᵀ + s·dropout(x)·Aᵀ·Bᵀ on the chosen modules, s = alpha/r (or
//     alpha/√r with rsLoRA); A ~ U(-1/√in, 1/√in) (PEFT's kaiming_uniform(a=√5)), B = 0;
//   * prompt tuning (input_rows): N learned rows placed before every sequence's token rows, at
//     positions 0..N-1 (the tokens follow at N+t); initialised from the base's embeddings of a
//     text's tokens (PEFT's TEXT init: repeated / cut to N) or N(0, 1) (PEFT's RANDOM init).
// The base's tensors are frozen (no gradient, decay or optimiser state); the adapter's are the
// only trainable Params. Saved and loaded in PEFT's files (model/adapter.h), so a checkpoint's
// adapter is what `--adapter DIR` runs and what PEFT loads.
//
// Thread safety: one training thread, like TrainModel.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "train/train_model.h"

namespace llmforge::train {

class PeftAdapter {
public:
    // A new adapter for `m` (its config's type decides which). init_ids: the prompt-tuning TEXT
    // init's token ids (empty: RANDOM). Throws Error for an unknown target module or r < 1.
    static std::unique_ptr<PeftAdapter> create(const TrainModel& m, AdapterConfig cfg, uint64_t seed,
                                               const std::vector<int32_t>& init_ids = {});
    // An adapter saved in PEFT's files (--init-adapter, a checkpoint), checked against m's base.
    static std::unique_ptr<PeftAdapter> load(const TrainModel& m, const std::string& dir);

    const AdapterConfig& config() const { return ad_.cfg; }
    // The trainable parameters (the optimiser's), named by their PEFT tensor names.
    std::vector<Param*> params();
    int64_t n_trainable() const;
    // Installs the adapter on m's seams (after_linear for LoRA, input_rows for prompt tuning).
    void attach(TrainModel& m);
    // LoRA dropout for the next forward: the config's p while training (seeded per micro-batch),
    // none for evaluation.
    void set_training(bool on, uint64_t dropout_seed);
    // The LoRA dropout of this run (saved in the adapter's config).
    void set_lora_dropout(double p) { ad_.cfg.dropout = p; }
    // The adapter with the current values, in PEFT's layout (for saving).
    Adapter snapshot() const;

private:
    PeftAdapter() = default;
    void make_params();

    Adapter ad_;  // config and sites; values live in params_ while training
    std::vector<std::unique_ptr<Param>> params_;  // LoRA: A0, B0, A1, B1, ...; prompt: one (N, C)
    std::vector<int> site_of_slot_;               // (layer + 1) * n_slots + slot -> index into ad_.lora, -1
    std::map<size_t, std::vector<int>> expert_sites_;  // the same index of an expert stack -> per expert, -1
    int n_slots_ = 0;
    bool training_ = false;
    uint64_t dropout_seed_ = 0;
};

}  // namespace llmforge::train
