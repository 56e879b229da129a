#include "tokenizer/spm_tokenizer.h"

#include <algorithm>
#include <queue>
#include <string>

#include "core/error.h"
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

SpmTokenizer::SpmTokenizer(const Vocab& vocab) : Tokenizer(vocab) {
    strip_dummy_prefix_ = vocab_.add_space_prefix;
    for (int32_t i = 0; i < n_vocab(); ++i) {
        if (types_[i] == TokenType::kNormal)
            pieces_[i] = replace_all(vocab_.tokens[i], kSpace, " ");
    }
    for (int b = 0; b < 256; ++b) byte_ids_[b] = token_id(strfmt("<0x%02X>", b));
}

int32_t SpmTokenizer::mergeable_id(std::string_view s) const {
    const int32_t id = token_id(s);
    return id >= 0 && merge_type(types_[id]) ? id : -1;
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

    // Linked list of symbols; node is the merge-tree node a symbol currently stands for.
    struct Symbol {
        int32_t prev, next;
        uint32_t off, len;
        int32_t node;
    };
    struct Node {
        uint32_t off, len;
        int32_t left, right;  // children, -1 for a leaf
    };
    std::vector<Symbol> sym;
    std::vector<Node> nodes;
    sym.reserve(s.size());
    nodes.reserve(s.size() * 2);
    for (size_t off = 0; off < s.size();) {
        const size_t len = utf8_decode(std::string_view(s).substr(off)).len;
        const auto i = static_cast<int32_t>(sym.size());
        sym.push_back({i - 1, off + len < s.size() ? i + 1 : -1, static_cast<uint32_t>(off),
                       static_cast<uint32_t>(len), i});
        nodes.push_back({static_cast<uint32_t>(off), static_cast<uint32_t>(len), -1, -1});
        off += len;
    }

    struct Bigram {
        float score;
        int32_t left, right;
        uint32_t len;
    };
    // Highest score first; equal scores: leftmost first.
    auto worse = [](const Bigram& a, const Bigram& b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    };
    std::priority_queue<Bigram, std::vector<Bigram>, decltype(worse)> queue(worse);
    const std::string_view sv(s);
    auto try_add = [&](int32_t l, int32_t r) {
        if (l < 0 || r < 0) return;
        const uint32_t len = sym[l].len + sym[r].len;
        const int32_t id = mergeable_id(sv.substr(sym[l].off, len));
        if (id < 0) return;
        queue.push({vocab_.scores.empty() ? 0.0f : vocab_.scores[id], l, r, len});
    };
    for (int32_t i = 1; i < static_cast<int32_t>(sym.size()); ++i) try_add(i - 1, i);

    while (!queue.empty()) {
        const Bigram bg = queue.top();
        queue.pop();
        Symbol& l = sym[bg.left];
        Symbol& r = sym[bg.right];
        // Stale: one side has been merged away or grown since the pair was queued.
        if (l.len == 0 || r.len == 0 || l.next != bg.right || l.len + r.len != bg.len) continue;
        nodes.push_back({l.off, bg.len, l.node, r.node});
        l.node = static_cast<int32_t>(nodes.size()) - 1;
        l.len = bg.len;
        r.len = 0;
        l.next = r.next;
        if (r.next >= 0) sym[r.next].prev = bg.left;
        try_add(l.prev, bg.left);
        try_add(bg.left, l.next);
    }

    // Emit; unused tokens are split back into their parts, non-tokens become bytes.
    std::vector<int32_t> stack;
    for (int32_t i = 0; i != -1; i = sym[i].next) {
        stack.push_back(sym[i].node);
        while (!stack.empty()) {
            const Node nd = nodes[stack.back()];
            stack.pop_back();
            const int32_t id = mergeable_id(sv.substr(nd.off, nd.len));
            if (id >= 0 && types_[id] != TokenType::kUnused) {
                out.push_back(id);
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
