#include "tokenizer/wordpiece_tokenizer.h"

#include <utf8proc.h>

#include <algorithm>

#include "core/error.h"
#include "tokenizer/utf8.h"

namespace llmforge {

namespace {

constexpr std::string_view kPhantomSpace = "\xE2\x96\x81";  // "▁"
constexpr size_t kMaxWordChars = 100;  // HF WordPiece max_input_chars_per_word

// Rust's char::is_whitespace (the Unicode White_Space property), which HF's BertNormalizer
// uses, plus the \t \n \r it names explicitly.
bool is_white_space(uint32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

// "Other" characters (Cc Cf Cs Co Cn) that clean_text drops; \t \n \r count as whitespace.
bool is_other(uint32_t c) {
    if (c == '\t' || c == '\n' || c == '\r') return false;
    switch (utf8proc_category(static_cast<utf8proc_int32_t>(c))) {
        case UTF8PROC_CATEGORY_CN:
        case UTF8PROC_CATEGORY_CC:
        case UTF8PROC_CATEGORY_CF:
        case UTF8PROC_CATEGORY_CS:
        case UTF8PROC_CATEGORY_CO:
            return true;
        default:
            return false;
    }
}

// The CJK ideograph blocks BERT pads with spaces (HF normalizers/bert.rs is_chinese_char).
bool is_cjk(uint32_t c) {
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) ||
           (c >= 0x20000 && c <= 0x2A6DF) || (c >= 0x2A700 && c <= 0x2B73F) ||
           (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

// BertPreTokenizer's punctuation: ASCII punctuation or any Unicode P* category.
bool is_punct(uint32_t c) {
    if (c < 0x80) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) ||
                         (c >= 123 && c <= 126);
    const auto cat = utf8proc_category(static_cast<utf8proc_int32_t>(c));
    return cat >= UTF8PROC_CATEGORY_PC && cat <= UTF8PROC_CATEGORY_PO;
}

// Appends c with its accents stripped (NFD, marks of category Mn dropped) and lowercased.
void append_folded(std::string& out, uint32_t c) {
    utf8proc_int32_t parts[8];
    int boundclass = 0;
    const utf8proc_ssize_t n = utf8proc_decompose_char(static_cast<utf8proc_int32_t>(c), parts,
                                                       8, UTF8PROC_DECOMPOSE, &boundclass);
    if (n < 1 || n > 8) {  // cannot happen for NFD of one scalar value; keep the character
        utf8_append(out, utf8proc_tolower(static_cast<utf8proc_int32_t>(c)));
        return;
    }
    for (utf8proc_ssize_t i = 0; i < n; ++i) {
        if (utf8proc_category(parts[i]) == UTF8PROC_CATEGORY_MN) continue;
        utf8_append(out, static_cast<uint32_t>(utf8proc_tolower(parts[i])));
    }
}

}  // namespace

std::string wordpiece_phantom_form(std::string_view t) {
    if (t.size() >= 2 && t.front() == '[' && t.back() == ']') return std::string(t);
    if (t.substr(0, 2) == "##") return std::string(t.substr(2));
    return std::string(kPhantomSpace) + std::string(t);
}

WordPieceTokenizer::WordPieceTokenizer(const Vocab& vocab) : Tokenizer(vocab) {
    if (vocab_.unk_id < 0) {
        vocab_.unk_id = token_id("[UNK]");
        if (vocab_.unk_id < 0) {
            fail("tokenizer: a WordPiece vocabulary needs an unknown token, found no "
                 "tokenizer.ggml.unknown_token_id and no \"[UNK]\"; hint: the file's tokenizer "
                 "metadata is incomplete");
        }
    }
    for (size_t i = 0; i < pieces_.size(); ++i) {
        if (types_[i] != TokenType::kNormal) continue;
        const std::string& t = vocab_.tokens[i];
        if (t.compare(0, kPhantomSpace.size(), kPhantomSpace) == 0) {
            pieces_[i].assign(1, ' ');
            pieces_[i].append(t, kPhantomSpace.size());
        } else {
            pieces_[i] = t;
        }
    }
    strip_dummy_prefix_ = true;
}

std::string WordPieceTokenizer::normalize(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t pos = 0; pos < text.size();) {
        const Utf8Char ch = utf8_decode(text.substr(pos));
        pos += ch.len;
        const uint32_t c = ch.cp;  // ill-formed bytes arrive as U+FFFD and are dropped
        if (c == 0 || c == 0xFFFD || is_other(c)) continue;
        if (is_white_space(c)) {
            out += ' ';
        } else if (is_cjk(c)) {
            out += ' ';
            utf8_append(out, c);
            out += ' ';
        } else {
            append_folded(out, c);
        }
    }
    return out;
}

void WordPieceTokenizer::encode_text(std::string_view text, bool /*after_special*/,
                                     std::vector<int32_t>& out) const {
    const std::string norm = normalize(text);
    size_t word_start = 0;
    auto flush = [&](size_t end) {
        if (end > word_start) encode_word(std::string_view(norm).substr(word_start, end - word_start), out);
    };
    for (size_t pos = 0; pos < norm.size();) {
        const Utf8Char ch = utf8_decode(std::string_view(norm).substr(pos));
        if (ch.cp == ' ') {
            flush(pos);
            word_start = pos + ch.len;
        } else if (is_punct(ch.cp)) {
            flush(pos);
            encode_word(std::string_view(norm).substr(pos, ch.len), out);
            word_start = pos + ch.len;
        }
        pos += ch.len;
    }
    flush(norm.size());
}

void WordPieceTokenizer::encode_word(std::string_view word, std::vector<int32_t>& out) const {
    // Character boundaries: bounds[k] is the byte offset of character k.
    std::vector<size_t> bounds;
    for (size_t pos = 0; pos < word.size(); pos += utf8_decode(word.substr(pos)).len) {
        bounds.push_back(pos);
    }
    const size_t n_chars = bounds.size();
    bounds.push_back(word.size());
    if (n_chars > kMaxWordChars) {
        out.push_back(unk());
        return;
    }
    const size_t first_out = out.size();
    std::string key;
    for (size_t start = 0; start < n_chars;) {
        int32_t found = -1;
        size_t end = n_chars;
        for (; end > start; --end) {
            key.clear();
            if (start == 0) key = kPhantomSpace;
            key.append(word.substr(bounds[start], bounds[end] - bounds[start]));
            found = token_id(key);
            if (found >= 0) break;
        }
        if (found < 0) {  // one unknown piece makes the whole word unknown
            out.resize(first_out);
            out.push_back(unk());
            return;
        }
        out.push_back(found);
        start = end;
    }
}

}  // namespace llmforge
