// Fill-in-the-middle prompts in the model's own format, detected from the vocabulary:
// DeepSeek-Coder  <｜fim▁begin｜>PREFIX<｜fim▁hole｜>SUFFIX<｜fim▁end｜>
// StarCoder       <fim_prefix>PREFIX<fim_suffix>SUFFIX<fim_middle>
// (and CodeLlama-style ▁<PRE> ▁<SUF> ▁<MID> / Qwen2.5-Coder <|fim_prefix|>… when present).
//
// Layout (PSM, as llama.cpp's server /infill builds it): [BOS when the vocabulary adds one],
// repository context, PRE, prefix, SUF, suffix, MID; the model writes the middle after MID.
// Prefix, suffix and each context piece are tokenised separately, with no BOS and no special-token
// parsing (SentencePiece vocabularies keep their dummy-prefix space on each piece, as llama.cpp's
// tokenizer gives it). Repository context (FimRequest::files):
//  * vocabularies with a file separator (Qwen2.5-Coder <|file_sep|>, StarCoder2 <file_sep>): the
//    repo-level layout before PRE — [REPO name "\n"] then per file SEP path "\n" text "\n", then
//    SEP current-path "\n" (Qwen2.5-Coder's published repo-level format; llama.cpp's input_extra);
//  * vocabularies with <filename> (StarCoder 1, Refact): after PRE, per file <filename> path "\n"
//    text "\n", then <filename> current-path "\n" before the prefix code;
//    (with no context files there is no repository part at all: the plain PRE/SUF/MID prompt);
//  * otherwise after PRE, per file a path comment in the file's language ("# a/b.py\n",
//    "// a/b.cpp\n") then its text (RepoCoder's prompt), before the prefix code.
//
// Explicit ids from GGUF metadata (tokenizer.ggml.fim_pre_token_id, ...) are not used yet: the
// Vocab does not carry them; detection is by token text (llama.cpp's llama-vocab table).
//
// Thread safety: pure functions over an immutable Tokenizer.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {

class Tokenizer;

struct FimFormat {
    std::string name;                               // "deepseek-coder", "starcoder", ...
    int32_t prefix = -1, suffix = -1, middle = -1;  // token ids of the three markers
    std::vector<int32_t> stop;  // extra tokens that end a middle (<|file_separator|>, EOT...)
    // Repository markers, -1 when the vocabulary has none.
    int32_t file_sep = -1;   // <|file_sep|> (Qwen2.5-Coder), <file_sep> (StarCoder2)
    int32_t repo_name = -1;  // <|repo_name|>, <repo_name>, <reponame>
    int32_t filename = -1;   // <filename> (StarCoder 1, Refact)
};

// The vocabulary's FIM format, or nullopt when it has none.
std::optional<FimFormat> detect_fim(const Tokenizer& tok);

// detect_fim, or Error (kBadInput) naming `source` (the model), the formats and marker texts
// looked for, and a hint to use a code model.
FimFormat require_fim(const Tokenizer& tok, std::string_view source);

// The token ids of a FIM prompt: [BOS] + markers around `prefix` and `suffix`, the middle to be
// generated after it. `context` (repository snippets, may be empty) goes before the prefix's code
// inside the prefix part. Throws Error (kBadInput) when the vocabulary has no FIM format, naming
// the formats looked for.
std::vector<int32_t> fim_prompt(const Tokenizer& tok, const FimFormat& f, std::string_view prefix,
                                std::string_view suffix, std::string_view context = {});

// One repository file (or a part of one) shown to the model before the code being completed.
struct FimFile {
    std::string path;  // relative, '/' separators
    std::string text;  // the code as it is (no path comment)
};

struct FimRequest {
    std::string prefix, suffix;  // code before and after the cursor
    std::vector<FimFile> files;  // context, least relevant first (the nearest to PRE is the best)
    std::string path;            // the current file's relative path ("" = "untitled"); only used
                                 // with context files
    std::string repo;            // the repository's name ("" = none)
    // Upper bound on the prompt's length in tokens (0 = none). Over it, context files are dropped
    // from the front, then the prefix loses its beginning and the suffix its end (the suffix keeps
    // at most a quarter of what is left, as llama.cpp's /infill does); the markers always stay.
    int64_t max_tokens = 0;
};

std::vector<int32_t> fim_prompt(const Tokenizer& tok, const FimFormat& f, const FimRequest& req);

// "# path\n" or "// path\n" (or "-- path\n", ...) by the path's extension: the comment line
// RepoCoder puts above a retrieved snippet.
std::string fim_path_comment(std::string_view path);

}  // namespace llmforge
