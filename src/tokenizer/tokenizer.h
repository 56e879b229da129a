// Text <-> token ids for one vocabulary (a llmforge::Vocab, i.e. the GGUF tokenizer.ggml.* view).
//
// Tokenizer::create() picks the algorithm from vocab.model:
//   "llama" -> SentencePiece BPE (spm_tokenizer.h): llama.cpp llm_tokenizer_spm / sentencepiece
//   "gpt2"  -> byte-level BPE (bpe_tokenizer.h) with the regex pre-tokenizer named by vocab.pre
// Other models throw Error listing the supported ones.
//
// encode() first cuts the text at added tokens (leftmost, longest match, as Hugging Face does):
// user-defined tokens always, control and unknown-type tokens (e.g. "<|im_end|>") only with
// parse_special; the text between them goes through the model's algorithm. Results match Hugging
// Face `encode(text, add_special_tokens=False)` for the vocabularies under tests/tokenizer/.
//
// decode() and token_to_piece() return raw bytes: a piece may be part of a UTF-8 character (byte
// tokens); use StreamDecoder (detokenizer.h) to print text as it is generated.
//
// Errors: token ids outside [0, n_vocab()) and inconsistent vocabularies throw llmforge::Error.
// Thread safety: immutable after create(); every const method may run concurrently.
#pragma once

#include <bitset>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizer/vocab.h"

namespace llmforge {

// The byte a "<0xHH>" byte-fallback token stands for, or -1 for any other text.
int parse_byte_token(std::string_view token_text);

class Tokenizer {
  public:
    // Validates the vocabulary (array sizes, special ids in range) and builds the tokenizer.
    static std::unique_ptr<Tokenizer> create(const Vocab& vocab);

    virtual ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    // Token ids of `text`. add_bos prepends bos() (Error when the vocabulary has none);
    // parse_special lets the text of control tokens ("<|eot_id|>") become those tokens. No EOS
    // is appended. Any byte string is accepted; ill-formed UTF-8 is encoded byte by byte.
    std::vector<int32_t> encode(std::string_view text, bool add_bos, bool parse_special) const;

    // The bytes token `id` stands for: SentencePiece "▁" -> " ", "<0xHH>" -> that byte,
    // byte-level BPE characters -> their bytes, user-defined tokens -> their text. Control,
    // unknown, unused and undefined tokens give "" unless render_special (then their text).
    std::string token_to_piece(int32_t id, bool render_special = false) const;

    // Concatenated pieces. For SentencePiece vocabularies with a dummy prefix
    // (add_space_prefix) the first text piece loses one leading space, so that
    // decode(encode(s, add_bos, false)) == s for every s.
    std::string decode(const std::vector<int32_t>& ids, bool render_special = false) const;

    int32_t bos() const { return vocab_.bos_id; }  // -1 when none
    int32_t eos() const { return vocab_.eos_id; }  // -1 when none
    int32_t unk() const { return vocab_.unk_id; }  // -1 when none
    int32_t n_vocab() const { return static_cast<int32_t>(vocab_.tokens.size()); }
    // What the model's files ask for: vocab.add_bos and a BOS id exists.
    bool add_bos_default() const { return vocab_.add_bos && vocab_.bos_id >= 0; }
    // True when decode() drops the dummy-prefix space at the start of the text.
    bool strips_dummy_prefix() const { return strip_dummy_prefix_; }

    // End of generation: EOS, and tokens whose text marks an end of turn or of text
    // ("<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>",
    // "<EOT>", and the FIM pad/repo/file-separator tokens), as llama.cpp decides it.
    bool is_eog(int32_t id) const;
    // True for tokens that decode to "" unless rendered (control, unknown, unused, undefined).
    bool is_hidden(int32_t id) const;

    // Id of the token whose text is exactly `text`, or -1.
    int32_t token_id(std::string_view text) const;
    const std::string& token_text(int32_t id) const;
    // Effective type: the vocabulary's, with BOS/EOS/UNK and end-of-generation tokens treated
    // as control/unknown when the file does not say so.
    TokenType token_type(int32_t id) const;
    const Vocab& vocab() const { return vocab_; }

  protected:
    explicit Tokenizer(const Vocab& vocab);

    // Appends the ids of `text`, which holds no added token. `after_special` is true when the
    // text starts the input or follows an added token (SentencePiece adds its dummy prefix then).
    virtual void encode_text(std::string_view text, bool after_special,
                             std::vector<int32_t>& out) const = 0;

    // Throws Error unless 0 <= id < n_vocab(); `where` names the caller.
    void check_id(int32_t id, const char* where) const;

    Vocab vocab_;
    std::vector<TokenType> types_;  // one per token (see token_type())
    // Decoded bytes of each token. The base class fills every non-normal token; the derived
    // constructor fills the normal ones.
    std::vector<std::string> pieces_;
    std::unordered_map<std::string_view, int32_t> ids_;  // text -> id (views into vocab_)
    bool strip_dummy_prefix_ = false;

  private:
    // Trie over the text of added tokens, for leftmost-longest matching.
    struct TrieNode {
        std::vector<std::pair<unsigned char, int32_t>> next;  // sorted by byte
        int32_t token = -1;
    };
    // Longest added token allowed at text[pos], {id, length}; {-1, 0} when none.
    std::pair<int32_t, size_t> match_added(std::string_view text, size_t pos,
                                           bool parse_special) const;

    std::vector<TrieNode> trie_;
    std::bitset<256> trie_first_;  // first bytes of added tokens
    std::vector<uint8_t> eog_;     // per token
};

}  // namespace llmforge
