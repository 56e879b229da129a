#include "tokenizer/bpe_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace llmforge {

namespace {

// GPT-2's bytes_to_unicode(): printable Latin-1 bytes stand for themselves, the other 68 bytes
// for U+0100.. in byte order, so that every byte is a visible, non-space character.
struct ByteLevelMap {
    std::array<std::string, 256> to_char;
    std::array<int16_t, 512> to_byte;  // code point -> byte, -1
    ByteLevelMap() {
        to_byte.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable =
                (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const uint32_t cp = printable ? static_cast<uint32_t>(b) : 256u + extra++;
            utf8_append(to_char[b], cp);
            to_byte[cp] = static_cast<int16_t>(b);
        }
    }
};

const ByteLevelMap& byte_level_map() {
    static const ByteLevelMap m;
    return m;
}

}  // namespace

const std::string& byte_to_byte_level(uint8_t b) {
    return byte_level_map().to_char[b];
}

int byte_level_to_byte(uint32_t cp) {
    return cp < 512 ? byte_level_map().to_byte[cp] : -1;
}

// Per-call buffers, reused across the words of one encode().
struct BpeTokenizer::Scratch {
    struct Symbol {
        int32_t prev, next;
        int32_t id;  // token, or -1 (a byte whose character is not in the vocabulary)
    };
    struct Bigram {
        int32_t rank;
        int32_t left, right;
        int32_t left_id, right_id, merged;
    };
    std::vector<Symbol> sym;
    std::vector<Bigram> heap;
    std::string encoded;
    WordCache cache;
};

BpeTokenizer::BpeTokenizer(const Vocab& vocab) : Tokenizer(vocab) {
    PreTokenizerPreset preset = pre_tokenizer_preset(vocab_.pre);
    pre_name_ = preset.name;
    ignore_merges_ = preset.ignore_merges;
    pre_ = std::make_unique<PreTokenizer>(std::move(preset.regexes));

    // Normal tokens are byte-level text; lenient with characters outside the map (kept as is).
    for (int32_t i = 0; i < n_vocab(); ++i) {
        if (types_[i] != TokenType::kNormal) continue;
        const std::string_view t = vocab_.tokens[i];
        std::string& piece = pieces_[i];
        for (size_t k = 0; k < t.size();) {
            const Utf8Char c = utf8_decode(t.substr(k));
            const int b = c.status == Utf8Status::kOk ? byte_level_to_byte(c.cp) : -1;
            if (b >= 0) {
                piece += static_cast<char>(b);
            } else {
                piece.append(t.data() + k, c.len);
            }
            k += c.len;
        }
    }
    // Merging works on the BPE model's own tokens only (Hugging Face keeps added tokens apart):
    // deepseek-llm has user-defined tokens "þ", "ÿ" whose text equals the byte-level character
    // of the bytes 0xFE, 0xFF; those bytes must not turn into the text "þ", "ÿ".
    for (int b = 0; b < 256; ++b) {
        const int32_t id = token_id(byte_to_byte_level(static_cast<uint8_t>(b)));
        byte_ids_[b] = id >= 0 && types_[id] == TokenType::kNormal ? id : -1;
    }

    merges_.reset(vocab_.merges.size());
    for (size_t r = 0; r < vocab_.merges.size(); ++r) {
        const std::string& m = vocab_.merges[r];
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) {
            fail(
                "tokenizer: merge %zu '%s' has no space between its two parts "
                "(tokenizer.ggml.merges, expected \"left right\"); hint: the file's merges are "
                "malformed",
                r, m.c_str());
        }
        const int32_t a = token_id(std::string_view(m).substr(0, sp));
        const int32_t b = token_id(std::string_view(m).substr(sp + 1));
        const int32_t ab = token_id(m.substr(0, sp) + m.substr(sp + 1));
        if (a < 0 || b < 0 || ab < 0) {  // Hugging Face refuses such files too
            const std::string missing = a < 0   ? m.substr(0, sp)
                                        : b < 0 ? m.substr(sp + 1)
                                                : m.substr(0, sp) + m.substr(sp + 1);
            fail(
                "tokenizer: merge %zu '%s' names '%s', which is not in the vocabulary "
                "(tokenizer.ggml.merges, expected both parts and their concatenation to be "
                "tokens); hint: the merges belong to another vocabulary",
                r, m.c_str(), missing.c_str());
        }
        merges_.insert(a, b, {static_cast<int32_t>(r), ab});  // the first rank of a pair wins
    }
}

BpeTokenizer::~BpeTokenizer() = default;

void BpeTokenizer::encode_text(std::string_view text, bool /*after_special*/,
                               std::vector<int32_t>& out) const {
    Scratch scratch;
    // Well-formed runs go through the pre-tokenizer; each ill-formed byte is a word by itself.
    size_t run = 0;
    auto flush_run = [&](size_t end) {
        if (end <= run) return;
        pre_->split(text.substr(run, end - run), [&](std::string_view w) {
            if (w.size() == 1) {  // one byte: its character's token (or nothing, see encode_word)
                const int32_t id = byte_ids_[static_cast<unsigned char>(w[0])];
                if (id >= 0) out.push_back(id);
                return;
            }
            if (scratch.cache.find(w, out)) return;
            const size_t n0 = out.size();
            encode_word(w, scratch, out);
            scratch.cache.insert(w, out.data() + n0, out.size() - n0);
        });
    };
    for (size_t i = 0; i < text.size();) {
        if (static_cast<unsigned char>(text[i]) < 0x80) {
            ++i;
            continue;
        }
        const Utf8Char c = utf8_decode(text.substr(i));
        if (c.status == Utf8Status::kOk) {
            i += c.len;
            continue;
        }
        flush_run(i);
        for (size_t k = 0; k < c.len; ++k) encode_word(text.substr(i + k, 1), scratch, out);
        i += c.len;
        run = i;
    }
    flush_run(text.size());
}

void BpeTokenizer::encode_word(std::string_view word, Scratch& s, std::vector<int32_t>& out) const {
    if (word.empty()) return;
    if (ignore_merges_) {
        s.encoded.clear();
        for (char c : word) s.encoded += byte_to_byte_level(static_cast<uint8_t>(c));
        const int32_t id = token_id(s.encoded);
        if (id >= 0 && types_[id] == TokenType::kNormal) {
            out.push_back(id);
            return;
        }
    }
    const auto n = static_cast<int32_t>(word.size());
    s.sym.clear();
    for (int32_t i = 0; i < n; ++i) {
        s.sym.push_back(
            {i - 1, i + 1 < n ? i + 1 : -1, byte_ids_[static_cast<unsigned char>(word[i])]});
    }

    // Min-heap on (rank, left): lowest rank first, equal ranks leftmost first.
    auto later = [](const Scratch::Bigram& a, const Scratch::Bigram& b) {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    };
    s.heap.clear();
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const int32_t a = s.sym[l].id, b = s.sym[r].id;
        if (a < 0 || b < 0) return;
        const Merge* m = merges_.find(a, b);
        if (m == nullptr) return;
        s.heap.push_back({m->rank, l, r, a, b, m->id});
        std::push_heap(s.heap.begin(), s.heap.end(), later);
    };
    for (int32_t i = 1; i < n; ++i) try_add(i - 1, i);

    while (!s.heap.empty()) {
        std::pop_heap(s.heap.begin(), s.heap.end(), later);
        const Scratch::Bigram bg = s.heap.back();
        s.heap.pop_back();
        Scratch::Symbol& l = s.sym[bg.left];
        Scratch::Symbol& r = s.sym[bg.right];
        // Stale: a side was merged away or grew (ids only ever get longer) since it was queued.
        if (l.next != bg.right || l.id != bg.left_id || r.id != bg.right_id) continue;
        l.id = bg.merged;
        l.next = r.next;
        r.id = -2;  // dead
        if (r.next >= 0) s.sym[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }
    // A byte whose character is not a token is dropped, as llama.cpp does.
    for (int32_t i = 0; i != -1; i = s.sym[i].next) {
        if (s.sym[i].id >= 0) out.push_back(s.sym[i].id);
    }
}

}  // namespace llmforge
