// Tokenises a corpus into the token shards `llmforge train` reads (src/train/data.h):
//
//   OUT/train-00000.u16 …   raw little-endian ids (u16 when the vocabulary has ≤ 65536 tokens,
//   OUT/val-00000.u16 …     else .u32), at most shard_tokens per file
//   OUT/meta.json           {"format":"llmforge-tokens-v1","dtype","vocab_size","eos_id",
//                            "tokenizer","documents","train_tokens","val_tokens",
//                            "train_shards":[…],"val_shards":[…]}
//
// Documents: a text file is split on blank lines; a .jsonl line is one document — its "text"
// field, or its "messages" rendered with the tokenizer's chat template (special tokens parsed).
// Each document is followed by the EOS id. Document i goes to validation when
// splitmix64(i) / 2^64 < val_fraction, so the split does not depend on anything but i.
// Files are written atomically, meta.json last: a folder with meta.json is complete.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace llmforge::train {

struct PrepareOptions {
    std::string tokenizer;             // tokenizer.json (or its folder), GGUF, tok*.bin
    std::vector<std::string> inputs;   // text / .jsonl files
    std::string out;                   // output folder
    double val_fraction = 0.01;
    int64_t shard_tokens = int64_t{1} << 27;
    std::string field = "text";
    bool eos = true;
};

struct PrepareResult {
    int64_t documents = 0, train_tokens = 0, val_tokens = 0, bytes = 0;
    double seconds = 0;
};

// progress(bytes read so far, total input bytes). Throws Error naming the file (and line) on bad
// input.
PrepareResult prepare_data(const PrepareOptions& o, const std::function<void(double, double)>& progress = nullptr);

}  // namespace llmforge::train
