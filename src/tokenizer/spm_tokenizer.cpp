#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <string>

#include "core/error.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/utf8.h"

namespace llmforge {

namespace {

constexpr std::string_view kSpace = "\xE2\x96\x81";  // U+2581 "▁", SentencePiece's space

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    for (size_t j; (j = s.find(from, i)) != std::string_view::npos; i = j + from.size()) {
        out.append(s.data() + i, j - i);
        out += to;
    }
    out.append(s.data() + i, s.size() - i);
    return out;
}

bool merge_type(TokenType t) {
    return t == TokenType::kNormal || t == TokenType::kUserDefined || t == TokenType::kUnused ||
           t == TokenType::kUndefined;
}

}  // namespace

// Per-call buffers, reused across the words of one encode_text().
struct SpmTokenizer::Scratch {
    // Linked list of symbols; node is the merge-tree node a symbol currently stands for.
    struct Symbol {
        int32_t prev, next;
        uint32_t off, len;
        int32_t node;
        int32_t id;  // mergeable token of the symbol's text, or -1
    };
    struct Node {
        uint32_t off, len;
        int32_t left, right;  // children, -1 for a leaf
        int32_t id;           // mergeable token of the node's text, or -1
    };
    struct Bigram {
        float score;
        int32_t left, right;
        uint32_t len;
        int32_t id;  // the merged token
    };
    std::vector<Symbol> sym;
    std::vector<Node> nodes;
    std::vector<Bigram> heap;
    std::vector<int32_t> stack;
    WordCache cache;
};

SpmTokenizer::SpmTokenizer(const Vocab& vocab) : Tokenizer(vocab) {
    strip_dummy_prefix_ = vocab_.add_space_prefix;
    for (int32_t i = 0; i < n_vocab(); ++i) {
        if (types_[i] == TokenType::kNormal)
            pieces_[i] = replace_all(vocab_.tokens[i], kSpace, " ");
    }
    for (int b = 0; b < 256; ++b) byte_ids_[b] = token_id(strfmt("<0x%02X>", b));

    // A merge across the start of a "▁" that follows a non-"▁" character would make a mergeable
    // token holding that character followed by "▁"; if there is none, words merge independently.
    split_words_ = true;
    std::vector<int32_t> mergeable;
    for (int32_t i = 0; i < n_vocab(); ++i) {
        const std::string_view t = vocab_.tokens[i];
        if (token_id(t) != i || !merge_type(types_[i])) continue;  // duplicates: the last wins
        mergeable.push_back(i);
        max_merge_len_ = std::max(max_merge_len_, t.size());
        for (size_t k = t.find(kSpace, 1); k != std::string_view::npos; k = t.find(kSpace, k + 1)) {
            if (k < kSpace.size() || t.substr(k - kSpace.size(), kSpace.size()) != kSpace) {
                split_words_ = false;
            }
        }
    }

    auto score = [&](int32_t id) { return vocab_.scores.empty() ? 0.0f : vocab_.scores[id]; };
    size_t cap = 16;
    while (cap < 2 * mergeable.size()) cap *= 2;
    table_.assign(cap, Mergeable{0, 0, 0, -1, 0.0f});
    for (int32_t id : mergeable) {
        const std::string_view t = vocab_.tokens[id];
        const uint64_t h = word_hash(t);
        size_t i = h & (cap - 1);
        while (table_[i].id >= 0) i = (i + 1) & (cap - 1);
        table_[i] = {static_cast<uint32_t>(h >> 32), static_cast<uint32_t>(pool_.size()),
                     static_cast<uint32_t>(t.size()), id, score(id)};
        pool_ += t;
    }
    for (int c = 0; c < 0x80; ++c) {
        const char ch = static_cast<char>(c);
        ascii_ids_[c] = mergeable_id(std::string_view(&ch, 1));
    }

    // Every way a mergeable token splits into two mergeable tokens, so that the merge loop looks
    // up (left id, right id) instead of hashing text. A symbol boundary inside a token falls on a
    // character boundary when the token is well-formed UTF-8 (the encoder decodes characters
    // whole), on any byte otherwise.
    struct Split {
        int32_t a, b;
        Pair merged;
    };
    std::vector<Split> splits;
    for (int32_t id : mergeable) {
        const std::string_view t = vocab_.tokens[id];
        const bool valid = utf8_is_valid(t);
        for (size_t k = 1; k < t.size();) {
            const int32_t a = mergeable_id(t.substr(0, k));
            const int32_t b = a >= 0 ? mergeable_id(t.substr(k)) : -1;
            if (b >= 0) splits.push_back({a, b, {id, score(id)}});
            k += valid ? utf8_decode(t.substr(k)).len : 1;
        }
    }
    pairs_.reset(splits.size());  // a pair's text has one id, so pairs are unique
    for (const Split& sp : splits) pairs_.insert(sp.a, sp.b, sp.merged);
}

const SpmTokenizer::Mergeable* SpmTokenizer::find_mergeable(std::string_view s) const {
    if (s.size() > max_merge_len_) return nullptr;
    const uint64_t h = word_hash(s);
    const auto h32 = static_cast<uint32_t>(h >> 32);
    const size_t mask = table_.size() - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const Mergeable& m = table_[i];
        if (m.id < 0) return nullptr;
        if (m.hash == h32 && m.len == s.size() &&
            std::memcmp(pool_.data() + m.off, s.data(), s.size()) == 0) {
            return &m;
        }
    }
}

void SpmTokenizer::byte_fallback(std::string_view s, std::vector<int32_t>& out) const {
    bool bytes_ok = true;
    for (char c : s) bytes_ok = bytes_ok && byte_ids_[static_cast<unsigned char>(c)] >= 0;
    if (bytes_ok) {
        for (char c : s) out.push_back(byte_ids_[static_cast<unsigned char>(c)]);
        return;
    }
    if (unk() < 0) {
        fail(
            "tokenizer: cannot encode the %zu-byte character '%s': the vocabulary has neither "
            "byte tokens <0xHH> nor an unknown token; hint: set tokenizer.ggml.unknown_token_id",
            s.size(), utf8_sanitize(s).c_str());
    }
    // sentencepiece without byte fallback: one unknown token per character.
    for (size_t i = 0; i < s.size();) {
        i += utf8_decode(s.substr(i)).len;
        out.push_back(unk());
    }
}

void SpmTokenizer::encode_text(std::string_view text, bool after_special,
                               std::vector<int32_t>& out) const {
    std::string s;
    s.reserve(text.size() + text.size() / 4 + 3);
    if (after_special && vocab_.add_space_prefix) s += kSpace;
    for (char c : text) {
        if (c == ' ') {
            s += kSpace;
        } else {
            s += c;
        }
    }
    if (s.empty()) return;
    const std::string_view sv(s);
    Scratch scratch;
    if (!split_words_) {
        encode_segment(sv, scratch, out);
        return;
    }
    auto encode_word = [&](std::string_view w) {
        if (scratch.cache.find(w, out)) return;
        const size_t n0 = out.size();
        encode_segment(w, scratch, out);
        scratch.cache.insert(w, out.data() + n0, out.size() - n0);
    };
    // Cut before every "▁" whose previous character is not "▁". 0xE2 is a lead byte, so each
    // E2 96 81 found here starts a character in the symbol split too.
    size_t start = 0;
    for (size_t k = sv.find(kSpace, 1); k != std::string_view::npos; k = sv.find(kSpace, k + 1)) {
        if (k >= start + kSpace.size() && sv.substr(k - kSpace.size(), kSpace.size()) == kSpace) {
            continue;
        }
        if (k > start) {
            encode_word(sv.substr(start, k - start));
            start = k;
        }
    }
    encode_word(sv.substr(start));
}

void SpmTokenizer::encode_segment(std::string_view sv, Scratch& scratch,
                                  std::vector<int32_t>& out) const {
    using Symbol = Scratch::Symbol;
    using Bigram = Scratch::Bigram;
    auto& sym = scratch.sym;
    auto& nodes = scratch.nodes;
    auto& heap = scratch.heap;
    sym.clear();
    nodes.clear();
    heap.clear();
    for (size_t off = 0; off < sv.size();) {
        const auto b0 = static_cast<unsigned char>(sv[off]);
        size_t len = 1;
        int32_t id;
        if (b0 < 0x80) {
            id = ascii_ids_[b0];
        } else {
            len = utf8_decode(sv.substr(off)).len;
            id = mergeable_id(sv.substr(off, len));
        }
        const auto i = static_cast<int32_t>(sym.size());
        sym.push_back({i - 1, off + len < sv.size() ? i + 1 : -1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(len), i, id});
        nodes.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), -1, -1, id});
        off += len;
    }

    // Max-heap: highest score first; equal scores: leftmost first.
    auto worse = [](const Bigram& a, const Bigram& b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t len = sym[l].len + sym[r].len;
        float score;
        int32_t id;
        if (sym[l].id >= 0 && sym[r].id >= 0) {  // both tokens: the pair table has every merge
            const Pair* p = pairs_.find(sym[l].id, sym[r].id);
            if (p == nullptr) return;
            score = p->score, id = p->id;
        } else {
            const Mergeable* m = find_mergeable(sv.substr(sym[l].off, len));
            if (m == nullptr) return;
            score = m->score, id = m->id;
        }
        heap.push_back({score, l, r, len, id});
        std::push_heap(heap.begin(), heap.end(), worse);
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);

    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), worse);
        const Bigram bg = heap.back();
        heap.pop_back();
        Symbol& l = sym[bg.left];
        Symbol& r = sym[bg.right];
        // Stale: one side has been merged away or grown since the pair was queued.
        if (l.len == 0 || r.len == 0 || l.next != bg.right || l.len + r.len != bg.len) continue;
        nodes.push_back({l.off, bg.len, l.node, r.node, bg.id});
        l.node = static_cast<int32_t>(nodes.size()) - 1;
        l.len = bg.len;
        l.id = bg.id;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }

    // Emit; unused tokens are split back into their parts, non-tokens become bytes.
    auto& stack = scratch.stack;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        stack.push_back(sym[i].node);
        while (!stack.empty()) {
            const Scratch::Node nd = nodes[stack.back()];
            stack.pop_back();
            if (nd.id >= 0 && types_[nd.id] != TokenType::kUnused) {
                out.push_back(nd.id);
            } else if (nd.left >= 0) {
                stack.push_back(nd.right);
                stack.push_back(nd.left);
            } else {
                byte_fallback(sv.substr(nd.off, nd.len), out);
            }
        }
    }
}

}  // namespace llmforge
