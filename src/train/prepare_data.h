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
//
// SFT data (chat = true, `prepare --chat`): every input is .jsonl and every line one OpenAI-style
// conversation {"messages": [{"role", "content"}, …]} with at least one assistant message (checked
// for all lines before anything is written). Each is rendered with the chat template (the
// tokenizer's own, or chat_template: a Jinja file or "chatml"), encoded with the BOS rule of
// runtime/chat.h (encode_prompt), and followed by EOS unless it already ends with it. Beside each
// token shard a mask shard of the same index and token count:
//
//   OUT/train-00000.mask …  one byte per token: bit 0 (1) = counted by the loss, bit 1 (2) = the
//   OUT/val-00000.mask …    first token of a dialogue; other bits 0
//
// and meta.json adds "sft": true, "mask_format", "chat_template" (where it came from),
// "train_masks" / "val_masks" (file names, parallel to the shard lists) and
// "train_counted" / "val_counted" (tokens with bit 0). Counted are exactly each assistant message's
// content and the end-of-turn token that closes it (render_sft_example).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::train {

struct PrepareOptions {
    std::string tokenizer;             // tokenizer.json (or its folder), GGUF, tok*.bin
    std::vector<std::string> inputs;   // text / .jsonl files
    std::string out;                   // output folder
    double val_fraction = 0.01;
    int64_t shard_tokens = int64_t{1} << 27;
    std::string field = "text";
    bool eos = true;
    bool chat = false;                 // SFT data: conversations with loss masks (see above)
    std::string chat_template;         // "" (the tokenizer's), a Jinja file, or "chatml"
};

struct PrepareResult {
    int64_t documents = 0, train_tokens = 0, val_tokens = 0, bytes = 0;
    int64_t counted_tokens = 0;  // chat: tokens the loss counts (train + val)
    double seconds = 0;
};

// progress(bytes read so far, total input bytes). Throws Error naming the file (and line) on bad
// input.
PrepareResult prepare_data(const PrepareOptions& o, const std::function<void(double, double)>& progress = nullptr);

// One conversation as SFT data.
struct SftExample {
    std::string text;             // the rendered conversation
    std::vector<int32_t> tokens;  // its ids: encode_prompt(text, BOS rule, special tokens parsed)
    std::vector<uint8_t> mask;    // per token: 1 where the loss counts, else 0
};

// Checks one --chat line: an object whose "messages" is a list of {"role": string, "content":
// string (or null / absent with "tool_calls")}, at least one with role "assistant". Throws Error
// "WHERE: what, expected …, found …; hint: …".
void check_chat_line(const nlohmann::ordered_json& line, const std::string& where);

// Renders `messages` (already checked) with `tmpl` (bos_token / eos_token from tok) and marks what
// the loss counts. For assistant message i: the text before its reply is where the render of
// messages[:i] with the generation prompt stops agreeing with the whole render; its reply begins at
// the first occurrence of its content after that (as written, trimmed, or the part after
// "</think>", the forms templates print it in; so template boilerplate such as Qwen3's
// "<think>\n\n</think>\n\n" is not counted), else where the difference begins; and it ends with
// the first end-of-generation token (Tokenizer::is_eog: "<|im_end|>", "<|eot_id|>",
// "<｜end▁of▁sentence｜>", …) after the content, before the next reply. Tokens are those of the
// whole text (never segment by segment); a token is counted when its bytes (from decoding, special
// tokens rendered) overlap a counted span. Throws Error for a template failure or a tokenizer whose
// tokens do not spell the text back.
SftExample render_sft_example(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                              const std::string& where);

}  // namespace llmforge::train
