#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <limits>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/spm_tokenizer.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace llmforge {

namespace {

// Token texts that end generation, as llama.cpp's llama_vocab::impl::load decides it (EOT, EOM
// and FIM pad/repo/file-separator tokens, found by text because GGUF files rarely name them).
constexpr std::string_view kEogTexts[] = {
    "<|eot_id|>",   "<|im_end|>",    "<|end|>",     "<end_of_turn>", "<|endoftext|>",
    "<|eom_id|>",   "<EOT>",         "<|fim_pad|>", "<fim-pad>",     "<PAD>",
    "<|fim_repo|>", "<|repo_name|>", "<fim-repo>",  "<REPO>",        "<|file_sep|>",
};

bool hidden_type(TokenType t) {
    return t == TokenType::kControl || t == TokenType::kUnknown || t == TokenType::kUnused ||
           t == TokenType::kUndefined;
}

void check_special_id(int32_t id, size_t n, const char* key) {
    if (id < -1 || (id >= 0 && static_cast<size_t>(id) >= n)) {
        fail(
            "tokenizer: %s is %d, outside the vocabulary of %zu tokens (expected -1 or 0..%zu); "
            "hint: the file's tokenizer metadata is inconsistent",
            key, id, n, n - 1);
    }
}

}  // namespace

int parse_byte_token(std::string_view s) {
    if (s.size() != 6 || s.substr(0, 3) != "<0x" || s[5] != '>') return -1;
    int v = 0;
    for (char c : s.substr(3, 2)) {
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= c - '0';
        else if (c >= 'A' && c <= 'F')
            v |= c - 'A' + 10;
        else if (c >= 'a' && c <= 'f')
            v |= c - 'a' + 10;
        else
            return -1;
    }
    return v;
}

std::unique_ptr<Tokenizer> Tokenizer::create(const Vocab& vocab) {
    if (vocab.model == "llama") return std::make_unique<SpmTokenizer>(vocab);
    if (vocab.model == "gpt2") return std::make_unique<BpeTokenizer>(vocab);
    if (vocab.model == "bert") return std::make_unique<WordPieceTokenizer>(vocab);
    fail(
        "tokenizer: unsupported tokenizer model '%s' (tokenizer.ggml.model); supported: 'llama' "
        "(SentencePiece BPE), 'gpt2' (byte-level BPE), 'bert' (WordPiece); hint: Unigram "
        "('t5') vocabularies are not implemented",
        vocab.model.c_str());
}

Tokenizer::Tokenizer(const Vocab& vocab) : vocab_(vocab) {
    const size_t n = vocab_.tokens.size();
    if (n == 0) {
        fail(
            "tokenizer: vocabulary has no tokens (tokenizer.ggml.tokens is empty or missing); "
            "hint: the model file carries no tokenizer");
    }
    if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
        fail("tokenizer: vocabulary has %zu tokens, more than int32 ids can address", n);
    }
    if (!vocab_.scores.empty() && vocab_.scores.size() != n) {
        fail(
            "tokenizer: tokenizer.ggml.scores has %zu entries, expected %zu (one per token); "
            "hint: the file's tokenizer metadata is inconsistent",
            vocab_.scores.size(), n);
    }
    if (!vocab_.types.empty() && vocab_.types.size() != n) {
        fail(
            "tokenizer: tokenizer.ggml.token_type has %zu entries, expected %zu (one per token); "
            "hint: the file's tokenizer metadata is inconsistent",
            vocab_.types.size(), n);
    }
    check_special_id(vocab_.bos_id, n, "tokenizer.ggml.bos_token_id");
    check_special_id(vocab_.eos_id, n, "tokenizer.ggml.eos_token_id");
    check_special_id(vocab_.unk_id, n, "tokenizer.ggml.unknown_token_id");
    check_special_id(vocab_.pad_id, n, "tokenizer.ggml.padding_token_id");

    // Types: the file's, or derived from the special ids and "<0xHH>" texts when it has none.
    if (!vocab_.types.empty()) {
        types_ = vocab_.types;
        for (TokenType& t : types_) {  // values GGUF does not define count as undefined
            const auto raw = static_cast<int32_t>(t);
            if (raw < 0 || raw > static_cast<int32_t>(TokenType::kByte)) t = TokenType::kUndefined;
        }
    } else {
        types_.assign(n, TokenType::kNormal);
        for (size_t i = 0; i < n; ++i) {
            if (parse_byte_token(vocab_.tokens[i]) >= 0) types_[i] = TokenType::kByte;
        }
        if (vocab_.bos_id >= 0) types_[vocab_.bos_id] = TokenType::kControl;
        if (vocab_.eos_id >= 0) types_[vocab_.eos_id] = TokenType::kControl;
        if (vocab_.unk_id >= 0) types_[vocab_.unk_id] = TokenType::kUnknown;
    }

    ids_.reserve(n);
    for (size_t i = 0; i < n; ++i) {
        const std::string& t = vocab_.tokens[i];
        if (!t.empty()) ids_[t] = static_cast<int32_t>(i);  // duplicates: the last wins (llama.cpp)
    }

    // End of generation; such tokens are control tokens whatever the file says (llama.cpp).
    eog_.assign(n, 0);
    if (vocab_.eos_id >= 0) eog_[vocab_.eos_id] = 1;
    for (std::string_view t : kEogTexts) {
        const int32_t id = token_id(t);
        if (id < 0) continue;
        eog_[id] = 1;
        types_[id] = TokenType::kControl;
    }

    // Pieces of every token that is not normal; derived classes decode the normal ones.
    pieces_.resize(n);
    for (size_t i = 0; i < n; ++i) {
        if (types_[i] == TokenType::kNormal) continue;
        const int b = types_[i] == TokenType::kByte ? parse_byte_token(vocab_.tokens[i]) : -1;
        pieces_[i] = b >= 0 ? std::string(1, static_cast<char>(b)) : vocab_.tokens[i];
    }

    // Trie of added tokens (control, unknown, user-defined), matched before the model runs.
    trie_.emplace_back();
    for (size_t i = 0; i < n; ++i) {
        const TokenType t = types_[i];
        const std::string& text = vocab_.tokens[i];
        if (text.empty() || (t != TokenType::kControl && t != TokenType::kUnknown &&
                             t != TokenType::kUserDefined)) {
            continue;
        }
        trie_first_.set(static_cast<unsigned char>(text[0]));
        int32_t node = 0;
        for (char ch : text) {
            const auto c = static_cast<unsigned char>(ch);
            auto& next = trie_[node].next;
            auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{-1}));
            if (it != next.end() && it->first == c) {
                node = it->second;
            } else {
                const auto child = static_cast<int32_t>(trie_.size());
                next.insert(it, {c, child});
                trie_.emplace_back();  // invalidates `next`; not used after this
                node = child;
            }
        }
        trie_[node].token = static_cast<int32_t>(i);
    }
}

Tokenizer::~Tokenizer() = default;

void Tokenizer::check_id(int32_t id, const char* where) const {
    if (id < 0 || id >= n_vocab()) {
        fail(
            "tokenizer: %s: token id %d is out of range (vocabulary has %d tokens, valid ids "
            "0..%d); hint: ids must come from this model's tokenizer",
            where, id, n_vocab(), n_vocab() - 1);
    }
}

std::pair<int32_t, size_t> Tokenizer::match_added(std::string_view text, size_t pos,
                                                  bool parse_special) const {
    int32_t node = 0;
    std::pair<int32_t, size_t> best{-1, 0};
    for (size_t i = pos; i < text.size(); ++i) {
        const auto c = static_cast<unsigned char>(text[i]);
        const auto& next = trie_[node].next;
        auto it = std::lower_bound(next.begin(), next.end(), std::make_pair(c, int32_t{-1}));
        if (it == next.end() || it->first != c) break;
        node = it->second;
        const int32_t tok = trie_[node].token;
        if (tok >= 0 && (parse_special || types_[tok] == TokenType::kUserDefined)) {
            best = {tok, i + 1 - pos};
        }
    }
    return best;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos,
                                       bool parse_special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 2);
    if (add_bos) {
        if (vocab_.bos_id < 0) {
            fail(
                "tokenizer: encode: add_bos requested but the vocabulary has no BOS token "
                "(tokenizer.ggml.bos_token_id unset); hint: pass add_bos=false");
        }
        out.push_back(vocab_.bos_id);
    }
    size_t start = 0, pos = 0;
    bool after_special = true;
    while (pos < text.size()) {
        if (!trie_first_.test(static_cast<unsigned char>(text[pos]))) {
            ++pos;
            continue;
        }
        const auto [tok, len] = match_added(text, pos, parse_special);
        if (tok < 0) {
            ++pos;
            continue;
        }
        if (pos > start) encode_text(text.substr(start, pos - start), after_special, out);
        out.push_back(tok);
        after_special = true;
        pos += len;
        start = pos;
    }
    if (start < text.size()) encode_text(text.substr(start), after_special, out);
    return out;
}

std::string Tokenizer::token_to_piece(int32_t id, bool render_special) const {
    check_id(id, "token_to_piece");
    if (!render_special && hidden_type(types_[id])) return {};
    return pieces_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool render_special) const {
    std::string out;
    bool at_start = true;
    for (int32_t id : ids) {
        check_id(id, "decode");
        if (!render_special && hidden_type(types_[id])) continue;
        const std::string& piece = pieces_[id];
        if (piece.empty()) continue;
        if (at_start && strip_dummy_prefix_ && piece[0] == ' ') {
            out.append(piece, 1);
        } else {
            out += piece;
        }
        at_start = false;
    }
    return out;
}

bool Tokenizer::is_eog(int32_t id) const {
    check_id(id, "is_eog");
    return eog_[id] != 0;
}

bool Tokenizer::is_hidden(int32_t id) const {
    check_id(id, "is_hidden");
    return hidden_type(types_[id]);
}

int32_t Tokenizer::token_id(std::string_view text) const {
    auto it = ids_.find(text);
    return it == ids_.end() ? -1 : it->second;
}

const std::string& Tokenizer::token_text(int32_t id) const {
    check_id(id, "token_text");
    return vocab_.tokens[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
    check_id(id, "token_type");
    return types_[id];
}

}  // namespace llmforge
