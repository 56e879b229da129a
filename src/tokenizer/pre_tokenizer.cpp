#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/pre_tokenizer.h"

#include <pcre2.h>

#include <algorithm>
#include <cstring>
#include <utility>

#include "core/error.h"

namespace llmforge {

namespace {

// Regex lists from llama.cpp src/llama-vocab.cpp (llm_tokenizer_bpe), which reproduce the
// Hugging Face tokenizers of those models. The Llama 3 and Qwen 2 lists spell the original
// "(?i:'s|...)" as explicit [sS] classes; PCRE2 would accept either.
const char* const kGpt2 =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)";
const char* const kLlama3 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kQwen2 =
    "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}"
    "| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// BLOOM family: words with their leading space, split at whitespace and a few punctuation marks.
const char* const kBloom = " ?[^(\\s|.,!?…。，、।۔،)]+";

struct PresetRow {
    std::vector<std::string> names;  // first one is canonical
    std::vector<std::string> regexes;
    bool ignore_merges;
};

const std::vector<PresetRow>& preset_table() {
    static const std::vector<PresetRow> table = {
        {{"default"},
         {
             "[\\p{P}\\$\\+<=>\\^~\\|]+",
             kGpt2,
             "\\p{N}+",
             "[0-9][0-9][0-9]",
         },
         false},
        {{"gpt-2", "phi-2", "roberta-bpe", "mpt", "olmo", "jais", "jina-es", "jina-de",
          "jina-v1-en", "jina-v2-es", "jina-v2-de", "jina-v2-code", "gigachat"},
         {kGpt2},
         false},
        {{"llama-bpe", "llama3", "llama-v3", "falcon3"}, {kLlama3}, true},
        {{"dbrx", "smaug-bpe"}, {kLlama3}, false},
        {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"}, {kQwen2}, false},
        {{"starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"},
         {"\\p{N}", kGpt2},
         false},
        {{"falcon"}, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", kGpt2, "[0-9][0-9][0-9]"}, false},
        {{"bloom", "gpt3-finnish", "poro-chat"}, {kBloom}, false},
        {{"viking"}, {kBloom, "\\p{N}"}, false},
        {{"chatglm-bpe"}, {kLlama3}, false},
        // Hugging Face's own regex: PCRE2 has the \p{Lu}/\p{Ll}/... classes it needs.
        {{"tekken"},
         {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+"
          "|[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*"
          "|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
         true},
        {{"chameleon"},
         {
             "<sentinel:[0-9]+>",                     // sentinel tokens
             "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z",   // image tokens
             "([\\t\\n]|    |  )",                     // whitespace runs, as its tokenizer.json
             "\\p{N}",                                // single digits
             "[\\p{P}!-/:-@\\[-`{-~]",                // punctuation, isolated
             "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)",
         },
         false},
        {{"deepseek-llm"},
         {
             "[\r\n]",
             "\\s?[A-Za-z\u00B5\u00C0-\u00D6\u00D8-\u00F6\u00F8-\u01BA\u01BC-\u01BF\u01C4-\u0293"
             "\u0295-\u02AF\u0370-\u0373\u0376\u0377\u037B-\u037D\u037F\u0386\u0388-\u038A\u038C"
             "\u038E-\u03A1\u03A3-\u03F5\u03F7-\u0481\u048A-\u052F\u0531-\u0556\u10A0-\u10C5\u13A0"
             "-\u13F5\u13F8-\u13FD\u1C90-\u1CBA\u1CBD-\u1CBF\u1D00-\u1D2B\u1D6B-\u1D77\u1D79-"
             "\u1D9A\u1E00-\u1F15\u1F18-\u1F1D\u1F20-\u1F45\u1F48-\u1F4D\u1F50-\u1F57\u1F59\u1F5B"
             "\u1F5D\u1F5F-\u1F7D\u1F80-\u1FB4\u1FB6-\u1FBC\u1FBE\u1FC2-\u1FC4\u1FC6-\u1FCC\u1FD0-"
             "\u1FD3\u1FD6-\u1FDB\u1FE0-\u1FEC\u1FF2-\u1FF4\u1FF6-\u1FFC\u2102\u2107\u210A-\u2113"
             "\u2115\u2119-\u211D\u2124\u2126\u2128\u212A-\u212D\u212F-\u2134\u2139\u213C-\u213F"
             "\u2145-\u2149\u214E\u2183\u2184\u2C00-\u2C7B\u2C7E-\u2CE4\u2CEB-\u2CEE\u2CF2\u2CF3"
             "\uA640-\uA66D\uA680-\uA69B\uA722-\uA76F\uA771-\uA787\uA78B-\uA78E\uAB70-\uABBF\uFB00"
             "-\uFB06\uFB13-\uFB17\uFF21-\uFF3A\uFF41-\uFF5A\U00010400-\U0001044F\U000104B0-"
             "\U000104D3\U000104D8-\U000104FB\U00010C80-\U00010CB2\U00010CC0-\U00010CF2\U000118A0-"
             "\U000118DF\U0001E900-\U0001E943]+",
             "\\s?[!-/:-~\uFF01-\uFF0F\uFF1A-\uFF5E\u2018-\u201F\u3000-\u3002]+",
             "\\s+$",
             "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
             "\\p{N}+",
         },
         false},
        {{"deepseek-coder"},
         {
             "[\r\n]",
             "\\s?\\p{L}+",
             "\\s?\\p{P}+",
             "[\u4E00-\u9FA5\u0800-\u4E00\uAC00-\uD7FF]+",
             "\\p{N}",
         },
         false},
        {{"deepseek-v3"},
         {
             "\\p{N}{1,3}",
             "[\u4E00-\u9FA5\u3040-\u309F\u30A0-\u30FF]+",
             "[!\"#$%&'()*+,\\-./"
             ":;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
             "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
         },
         false},
    };
    return table;
}

std::string pcre2_message(int code) {
    PCRE2_UCHAR buf[256];
    if (pcre2_get_error_message(code, buf, sizeof(buf)) < 0) return strfmt("PCRE2 error %d", code);
    return reinterpret_cast<const char*>(buf);
}

}  // namespace

PreTokenizerPreset pre_tokenizer_preset(std::string_view pre) {
    if (pre.empty()) pre = "default";  // llama.cpp's choice for files converted before the key
    for (const PresetRow& row : preset_table()) {
        if (std::find(row.names.begin(), row.names.end(), pre) != row.names.end()) {
            return {row.names.front(), row.regexes, row.ignore_merges};
        }
    }
    std::string known;
    for (const std::string& n : pre_tokenizer_names()) {
        known += known.empty() ? "" : ", ";
        known += n;
    }
    fail(
        "tokenizer: unknown pre-tokenizer '%.*s' (tokenizer.ggml.pre); known: %s; hint: add its "
        "regex list to src/tokenizer/pre_tokenizer.cpp (see llama.cpp src/llama-vocab.cpp)",
        static_cast<int>(pre.size()), pre.data(), known.c_str());
}

std::vector<std::string> pre_tokenizer_names() {
    std::vector<std::string> names;
    for (const PresetRow& row : preset_table())
        names.insert(names.end(), row.names.begin(), row.names.end());
    std::sort(names.begin(), names.end());
    return names;
}

// One compiled regex; PCRE2 handles freed by RAII.
struct PreTokenizer::Compiled {
    struct CodeDeleter {
        void operator()(pcre2_code* c) const { pcre2_code_free(c); }
    };
    std::unique_ptr<pcre2_code, CodeDeleter> code;
    bool jit = false;  // compiled by the JIT: pcre2_jit_match skips pcre2_match's checks
};

PreTokenizer::PreTokenizer(std::vector<std::string> regexes) : regexes_(std::move(regexes)) {
    for (const std::string& re : regexes_) {
        int err = 0;
        PCRE2_SIZE err_off = 0;
        pcre2_code* code =
            pcre2_compile(reinterpret_cast<PCRE2_SPTR>(re.data()), re.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &err, &err_off, nullptr);
        if (code == nullptr) {
            fail(
                "tokenizer: pre-tokenizer regex '%s' does not compile at offset %zu: %s; hint: "
                "the pattern must be PCRE2 syntax",
                re.c_str(), static_cast<size_t>(err_off), pcre2_message(err).c_str());
        }
        auto c = std::make_unique<Compiled>();
        c->code.reset(code);
        // JIT is an optimisation only: where it is unavailable pcre2_match interprets.
        c->jit = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
        compiled_.push_back(std::move(c));
    }
}

PreTokenizer::~PreTokenizer() = default;

namespace {

struct MatchDataDeleter {
    void operator()(pcre2_match_data* m) const { pcre2_match_data_free(m); }
};
struct ContextDeleter {
    void operator()(pcre2_match_context* m) const { pcre2_match_context_free(m); }
};
struct JitStackDeleter {
    void operator()(pcre2_jit_stack* s) const { pcre2_jit_stack_free(s); }
};

}  // namespace

// Per-call scratch (match data, JIT stack) keeps split() const and thread-safe.
struct PreTokenizer::Scratch {
    std::unique_ptr<pcre2_match_context, ContextDeleter> mctx;
    std::unique_ptr<pcre2_jit_stack, JitStackDeleter> jit_stack;
    std::vector<std::unique_ptr<pcre2_match_data, MatchDataDeleter>> md;  // one per regex
};

void PreTokenizer::split(std::string_view text, std::vector<std::string_view>& out) const {
    split(text, [&out](std::string_view piece) { out.push_back(piece); });
}

void PreTokenizer::split(std::string_view text,
                         const std::function<void(std::string_view)>& on_piece) const {
    if (text.empty()) return;
    // The match context and JIT stack are made once per thread and reused: creating a JIT stack
    // maps memory, and mapping + unmapping it for every call dominated encoding many short texts
    // (chat turns, documents) — over half the time in system calls.
    thread_local Scratch tls = [] {
        Scratch sc;
        sc.mctx.reset(pcre2_match_context_create(nullptr));
        // Long runs of one class (a megabyte of spaces) backtrack deeply; give JIT room to do so.
        sc.jit_stack.reset(pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr));
        LF_ASSERT(sc.mctx && sc.jit_stack);
        pcre2_jit_stack_assign(sc.mctx.get(), nullptr, sc.jit_stack.get());
        return sc;
    }();
    Scratch sc;
    sc.mctx.reset(pcre2_match_context_copy(tls.mctx.get()));  // small malloc, no mapping
    LF_ASSERT(sc.mctx);
    for (const auto& c : compiled_) {
        sc.md.emplace_back(pcre2_match_data_create_from_pattern(c->code.get(), nullptr));
        LF_ASSERT(sc.md.back());
    }
    split_piece(text, 0, sc, on_piece);
}

// Depth first: each piece regex `level` makes goes through the later regexes at once, which
// gives the same pieces in the same order as applying each regex to the whole list in turn,
// without lists of every intermediate piece.
void PreTokenizer::split_piece(std::string_view piece, size_t level, Scratch& sc,
                               const std::function<void(std::string_view)>& on_piece) const {
    if (level == compiled_.size()) {
        on_piece(piece);
        return;
    }
    const Compiled& c = *compiled_[level];
    pcre2_match_data* md = sc.md[level].get();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
    size_t pos = 0;   // where the next search starts
    size_t done = 0;  // end of the last emitted piece
    while (pos < piece.size()) {
        const int rc = c.jit ? pcre2_jit_match(c.code.get(), subject, piece.size(), pos,
                                               PCRE2_NO_UTF_CHECK, md, sc.mctx.get())
                             : pcre2_match(c.code.get(), subject, piece.size(), pos,
                                           PCRE2_NO_UTF_CHECK, md, sc.mctx.get());
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            fail(
                "tokenizer: pre-tokenizer regex failed on a %zu-byte piece: %s; hint: "
                "the input may be pathological for this regex",
                piece.size(), pcre2_message(rc).c_str());
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t b = ov[0], e = ov[1];
        if (e == b) {  // empty match: none of the presets produce one; step one char
            size_t step = 1;
            while (pos + step < piece.size() &&
                   (static_cast<unsigned char>(piece[pos + step]) & 0xC0) == 0x80) {
                ++step;
            }
            pos += step;
            continue;
        }
        if (b > done) split_piece(piece.substr(done, b - done), level + 1, sc, on_piece);
        split_piece(piece.substr(b, e - b), level + 1, sc, on_piece);
        done = pos = e;
    }
    if (done < piece.size()) split_piece(piece.substr(done), level + 1, sc, on_piece);
}

uint64_t word_hash(std::string_view s) {
    constexpr uint64_t kMul = 0x9E3779B97F4A7C15ull;
    uint64_t h = s.size() * kMul;
    size_t i = 0;
    for (; i + 8 <= s.size(); i += 8) {
        uint64_t w;
        std::memcpy(&w, s.data() + i, 8);
        h = (h ^ w) * kMul;
        h ^= h >> 29;
    }
    if (i < s.size()) {
        uint64_t w = 0;
        std::memcpy(&w, s.data() + i, s.size() - i);
        h = (h ^ w) * kMul;
        h ^= h >> 29;
    }
    h *= kMul;
    return h ^ (h >> 32);
}

const WordCache::Slot* WordCache::find_slot(std::string_view word, uint64_t h) const {
    const size_t mask = slots_.size() - 1;
    const auto h32 = static_cast<uint32_t>(h >> 32);
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        const Slot& s = slots_[i];
        if (s.text == nullptr || (s.hash == h32 && s.len == word.size() &&
                                  std::memcmp(s.text, word.data(), word.size()) == 0)) {
            return &s;
        }
    }
}

bool WordCache::find(std::string_view word, std::vector<int32_t>& out) const {
    if (size_ == 0 || word.size() > kMaxWordLen) return false;
    const Slot* s = find_slot(word, word_hash(word));
    if (s->text == nullptr) return false;
    out.insert(out.end(), ids_.begin() + s->off, ids_.begin() + s->off + s->n);
    return true;
}

void WordCache::insert(std::string_view word, const int32_t* ids, size_t n) {
    if (size_ >= kMaxWords || word.size() > kMaxWordLen || word.empty()) return;
    if (2 * (size_ + 1) > slots_.size()) grow();
    const uint64_t h = word_hash(word);
    auto* s = const_cast<Slot*>(find_slot(word, h));
    if (s->text != nullptr) return;
    *s = {word.data(), static_cast<uint32_t>(word.size()), static_cast<uint32_t>(h >> 32),
          static_cast<uint32_t>(ids_.size()), static_cast<uint32_t>(n)};
    ids_.insert(ids_.end(), ids, ids + n);
    ++size_;
}

void WordCache::grow() {
    std::vector<Slot> old(slots_.empty() ? 64 : 2 * slots_.size());
    old.swap(slots_);
    const size_t mask = slots_.size() - 1;
    for (const Slot& s : old) {
        if (s.text == nullptr) continue;
        size_t i = word_hash({s.text, s.len}) & mask;
        while (slots_[i].text != nullptr) i = (i + 1) & mask;
        slots_[i] = s;
    }
}

}  // namespace llmforge
