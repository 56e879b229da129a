// Pre-tokenization for byte-level BPE: splitting text into words before merges run, the way the
// model's Hugging Face pre-tokenizer does.
//
// A pre-tokenizer is a list of regexes applied in turn. Each regex splits every piece produced so
// far into its matches and the gaps between them (Hugging Face `Split` with behaviour "Isolated"),
// so later regexes never see across earlier boundaries, and look-arounds and `$` stop at the end
// of the current piece. The regex lists are those llama.cpp keeps per `tokenizer.ggml.pre` value
// (src/llama-vocab.cpp, MIT); they are evaluated with PCRE2 (UTF, UCP: \p{..} and \s are
// Unicode-aware; `$` only matches at the very end; JIT when the platform has it).
//
// Thread safety: a PreTokenizer is immutable after construction; split() may run concurrently.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace llmforge {

// What a `tokenizer.ggml.pre` value stands for.
struct PreTokenizerPreset {
    std::string name;                  // canonical name, e.g. "llama-bpe"
    std::vector<std::string> regexes;  // applied in order
    bool ignore_merges = false;        // a whole word that is a token is taken as is (Llama 3)
};

// The preset of a `tokenizer.ggml.pre` value; "" and "default" are llama.cpp's default list.
// Throws Error naming the value and listing the known ones; never falls back silently.
PreTokenizerPreset pre_tokenizer_preset(std::string_view pre);

// Every accepted `tokenizer.ggml.pre` value (aliases included), sorted.
std::vector<std::string> pre_tokenizer_names();

class PreTokenizer {
  public:
    // Compiles the regexes; a pattern PCRE2 rejects throws Error naming it and the offset.
    explicit PreTokenizer(std::vector<std::string> regexes);
    ~PreTokenizer();
    PreTokenizer(const PreTokenizer&) = delete;
    PreTokenizer& operator=(const PreTokenizer&) = delete;

    // Appends the pieces of `text` to `out` as views into `text`: non-empty, in order, and
    // concatenating to `text`. `text` must be well-formed UTF-8 (checked by the caller).
    void split(std::string_view text, std::vector<std::string_view>& out) const;
    // The same pieces, handed to on_piece one by one as they are found (no list of them all).
    void split(std::string_view text, const std::function<void(std::string_view)>& on_piece) const;

    const std::vector<std::string>& regexes() const { return regexes_; }

  private:
    struct Compiled;
    struct Scratch;
    // Splits piece with regexes [level, end) and appends the results to out.
    void split_piece(std::string_view piece, size_t level, Scratch& scratch,
                     const std::function<void(std::string_view)>& on_piece) const;

    std::vector<std::string> regexes_;
    std::vector<std::unique_ptr<Compiled>> compiled_;
};

// 64-bit hash of a short byte string (a word, a token): 8-byte words folded by multiply and
// xor-shift. Not for untrusted keys in long-lived tables; the encoders' tables are built from the
// vocabulary or live for one call.
uint64_t word_hash(std::string_view s);

// The ids of the words that one encode() call has already merged. Text repeats its words, and a
// lookup (one hash, one probe) is far cheaper than merging the word again. Keys are views into the
// caller's text, so a cache must not outlive that text; the table grows from empty (short inputs
// pay nearly nothing) up to kMaxWords words of at most kMaxWordLen bytes, then stops inserting.
// Not thread-safe: each call makes its own.
class WordCache {
  public:
    static constexpr size_t kMaxWords = size_t{1} << 16;
    static constexpr size_t kMaxWordLen = 64;

    // Appends the cached ids of word to out and returns true, or returns false if absent.
    bool find(std::string_view word, std::vector<int32_t>& out) const;
    // Remembers that word encodes to ids[0..n) (ignored when the cache is full, the word too long
    // or already there).
    void insert(std::string_view word, const int32_t* ids, size_t n);

  private:
    struct Slot {
        const char* text = nullptr;  // nullptr: empty
        uint32_t len = 0, hash = 0;  // hash: high half of word_hash
        uint32_t off = 0, n = 0;     // ids_[off, off + n)
    };
    const Slot* find_slot(std::string_view word, uint64_t h) const;
    void grow();

    std::vector<Slot> slots_;  // size a power of two (or 0), at most half full
    std::vector<int32_t> ids_;
    size_t size_ = 0;
};

}  // namespace llmforge
