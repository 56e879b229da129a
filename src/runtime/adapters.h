// AdapterSet: the adapters one front end runs a model with (`--adapter DIR[:scale]`, repeatable),
// loaded and checked against that model.
//
// LoRA adapters stack: their terms go into one LowRankDelta (each adapter's own alpha / r times
// its `:scale`, default 1). A `:0` LoRA adds no term at all, so it runs exactly as the base. At
// most one prompt-tuning adapter may be given; its N virtual rows (N, n_embd) go before the real
// tokens (positions 0..N-1; real token t at N + t, PEFT's rule) through Context (runtime/context.h).
//
// Errors (llmforge::Error, one line, naming the spec): a scale that is not a finite number
// ("DIR:abc"), a scale on a prompt adapter, a second prompt adapter, and whatever read_adapter
// refuses (an adapter made for another base names the tensor and both shapes).
//
// Thread safety: immutable after load(); the delta may be shared by every sequence of the model.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "model/adapter.h"
#include "model/low_rank.h"
#include "model/model.h"
#include "runtime/context.h"

namespace llmforge {

// One `--adapter` value: "DIR" or "DIR:SCALE". A spec naming an existing folder is taken whole
// (a folder name may hold ':'); otherwise the text after the last ':' is the scale.
struct AdapterSpec {
    std::string dir;
    double scale = 1.0;
    bool scale_given = false;
};
// Throws Error for an empty folder part or a scale that is not a finite number.
AdapterSpec parse_adapter_spec(const std::string& spec);

class AdapterSet {
public:
    AdapterSet() = default;
    AdapterSet(const AdapterSet&) = delete;
    AdapterSet& operator=(const AdapterSet&) = delete;
    AdapterSet(AdapterSet&&) = default;
    AdapterSet& operator=(AdapterSet&&) = default;

    // Reads every spec for a base of config `c` and architecture `a` (in order).
    static AdapterSet load(const std::vector<std::string>& specs, const Arch& a, const ModelConfig& c);
    static AdapterSet load(const std::vector<std::string>& specs, const Model& m) {
        return load(specs, m.arch(), m.config());
    }

    struct Entry {
        Adapter adapter;
        double scale = 1.0;  // the user's multiplier (the adapter's alpha / r comes on top)
    };
    const std::vector<Entry>& entries() const { return entries_; }
    bool empty() const { return entries_.empty(); }

    // The stacked LoRA delta; nullptr when no LoRA term is active.
    const LinearDelta* delta() const { return delta_ && !delta_->empty() ? delta_.get() : nullptr; }
    // The prompt adapter's rows (n_virtual() x n_embd), empty without one.
    const std::vector<float>& virtual_rows() const { return prompt_; }
    int64_t n_virtual() const { return n_virtual_; }
    // What a Context needs (points into this set: keep it alive while the Context runs).
    SeqAdapter seq_adapter() const;
    // "lora DIR (r 8, alpha 16, scale 1), prompt DIR (20 virtual tokens)" for logs; "" when empty.
    std::string describe() const;

private:
    std::vector<Entry> entries_;
    std::unique_ptr<LowRankDelta> delta_;
    std::vector<float> prompt_;  // (N, C)
    int64_t n_virtual_ = 0;
};

}  // namespace llmforge
