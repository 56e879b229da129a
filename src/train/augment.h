// Data augmentation for fine-tuning sets (`llmforge augment`): EDA word operations (Wei & Zou
// 2019, "EDA: Easy Data Augmentation Techniques") and back-translation through a chat model,
// over text or chat JSONL, every draw seeded and reproducible.
//
// Input: JSONL, one record per line — {"text": "..."} or {"messages": [{"role", "content"}, ...]}
// (OpenAI chat). Blank lines are skipped. A chat line has the "content" string of each message
// whose role is in `roles` augmented (default user and assistant; system and other roles, and
// non-string content, are left untouched); roles, message order and every other key of the line
// (and of each message) are kept as they are, in their order.
// Output: JSONL; for each input line, the line itself unchanged (unless no_originals), then
// `copies` augmented variants (compact JSON, keys in the input's order).
//
// Words: a text is split on ASCII whitespace; the whitespace between words is kept (a word removed
// takes one neighbouring separator with it, the one with more newlines is kept; an inserted word
// is followed by one space). A word's leading and trailing ASCII punctuation is stripped to look it
// up (case-insensitively, ASCII) and stays at its place: "Hello," -> core "Hello" + ",". A
// replacement keeps the capitalisation of the word it replaces (first letter, or all capitals).
//
// Operations, n = max(1, round(alpha * words)) with words counted before the operation:
//   sr  synonym replacement: n distinct words that have synonyms, drawn at random, each replaced by
//       a random synonym of it;
//   ri  random insertion: n times, a random synonym of a random word of the text (one that has
//       synonyms; inserted words are never drawn from) is inserted at a random word boundary;
//   rs  random swap: n times, the cores of two different random words are swapped (punctuation
//       stays where it was, so the multiset of cores is kept);
//   rd  random deletion: each word is deleted with probability p; never all of them (one random
//       word is kept then), and a one-word text is left as is.
// A variant applies the chosen methods in the order back-translation, sr, ri, rs, rd.
//
// Back-translation: the text is sent as one user turn "Translate the following text to LANG.
// Reply with the translation only.\n\n<text>", rendered with the model's chat template, and the
// (trimmed) answer is sent back the same way to the source language. An empty answer on either
// leg keeps the text as it was (counted in AugmentStats::bt_empty; an empty first answer is not
// sent back). Texts that are empty or whitespace only are left as they are by every method.
//
// Randomness: each (line, copy, method, field) has its own splitmix64 stream, keyed from the seed
// by mix64 (stream_seed): line is the 1-based line number in the input, field the message index
// (0 for "text"), leg 0/1 the two generations of back-translation. Output therefore does not
// depend on threads, on other lines or on which other methods are on; back-translation is
// deterministic for a seed and a thread count (the engine's sums are split by thread).
//
// Synonym file (SynonymTable::parse): UTF-8 text, one group of mutual synonyms per line, words
// separated by commas; spaces around words are ignored; `#` starts a comment to the end of the
// line; blank lines are skipped. A word is one token (no whitespace) that neither begins nor ends
// with ASCII punctuation ("don't", "e-mail" are fine); a group has at least two different words.
// A word in several groups has the union of their synonyms. Matching is case-insensitive (ASCII).
//   # shop words
//   order, purchase
//   buy, purchase, get
// Errors name FILE:LINE, what was expected and what was found.
//
// Thread safety: SynonymTable and Augmenter are immutable after construction and may be shared
// (an Augmenter with a Translator calls it from the calling thread; a ModelTranslator belongs to
// one thread). The free functions are pure.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace llmforge::train {

// Mutual-synonym groups from a synonym file (format above).
class SynonymTable {
public:
    SynonymTable() = default;
    // Parses `text`; `name` (a path) prefixes errors: "NAME:LINE: ...". Throws Error.
    static SynonymTable parse(std::string_view text, const std::string& name);
    // Reads and parses a file (regular file or pipe). Throws Error (missing file, bad line, no group).
    static SynonymTable load(const std::string& path);

    // Synonyms of `word` (looked up in ASCII lower case, without the word itself), or null.
    const std::vector<std::string>* find(std::string_view word) const;
    // Words that have synonyms.
    size_t size() const { return syn_.size(); }
    size_t n_groups() const { return n_groups_; }

private:
    std::unordered_map<std::string, std::vector<std::string>> syn_;  // lower-case word -> synonyms
    size_t n_groups_ = 0;
};

// The methods of one variant; 0 is off.
struct EdaParams {
    double sr = 0, ri = 0, rs = 0, rd = 0;
};

// Method ids for stream_seed.
enum class AugmentMethod : uint64_t { kSynonymReplace = 1, kRandomInsert, kRandomSwap, kRandomDelete, kBackTranslate };

// The seed of the stream of (line, copy, method, field, leg) under `seed` (a mix64 chain).
uint64_t stream_seed(uint64_t seed, uint64_t line, uint64_t copy, AugmentMethod method, uint64_t field, uint64_t leg = 0);

// The EDA operations on one text with the stream `rng_seed` (see above). A text without words (or
// without words that have synonyms, for sr / ri) comes back unchanged.
std::string synonym_replace(std::string_view text, double alpha, const SynonymTable& syn, uint64_t rng_seed);
std::string random_insert(std::string_view text, double alpha, const SynonymTable& syn, uint64_t rng_seed);
std::string random_swap(std::string_view text, double alpha, uint64_t rng_seed);
std::string random_delete(std::string_view text, double p, uint64_t rng_seed);

// Words of a text as the operations see them (whitespace-separated, punctuation attached).
std::vector<std::string> split_words(std::string_view text);
// A word without its leading and trailing ASCII punctuation ("(Hello!)" -> "Hello").
std::string_view word_core(std::string_view word);

// "Translate the following text to LANG. Reply with the translation only.\n\nTEXT".
std::string translation_prompt(std::string_view text, std::string_view lang);

// Translates a text; `seed` seeds the sampler of this one generation.
class Translator {
public:
    virtual ~Translator() = default;
    virtual std::string translate(const std::string& text, const std::string& to_lang, uint64_t seed) = 0;
};

struct ModelTranslatorOptions {
    std::string model;          // anything Model::load reads
    std::string chat_template;  // "" (the model's), "chatml" or a Jinja file
    float temperature = 0.7f;
    int32_t top_k = 40;
    float top_p = 0.95f;
    int64_t max_tokens = 256;   // per generation
    int64_t ctx_size = 0;       // 0: the model's
    int threads = 0;            // 0: all cores
};

// A chat model loaded with the engine; translate() prompts it with translation_prompt() as one
// user turn and returns the generated answer, trimmed. One Context, reused (cleared) per call.
// Throws Error for an unreadable model, a model without tokenizer or chat template, or a prompt
// longer than the context.
class ModelTranslator : public Translator {
public:
    explicit ModelTranslator(const ModelTranslatorOptions& o);
    ~ModelTranslator() override;
    std::string translate(const std::string& text, const std::string& to_lang, uint64_t seed) override;
    // Generations run so far.
    int64_t generations() const { return generations_; }
    // "MODEL (ARCH, 4.2M parameters), template NAME".
    std::string describe() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    int64_t generations_ = 0;
};

struct AugmentConfig {
    EdaParams eda;
    int copies = 1;
    bool originals = true;
    uint64_t seed = 0;
    std::vector<std::string> roles = {"user", "assistant"};
    // Back-translation (on when `translator` is set): via `via`, back to `source_lang`.
    Translator* translator = nullptr;
    std::string via, source_lang = "English";
    const SynonymTable* synonyms = nullptr;  // required for sr / ri
};

struct AugmentStats {
    int64_t lines = 0, text_lines = 0, chat_lines = 0, variants = 0;
    int64_t texts = 0;        // texts augmented (one per text line and per chosen chat message, per copy)
    int64_t generations = 0;  // back-translation generations (two per text, one when the first is empty)
    int64_t bt_empty = 0;     // back-translations that came back empty (text kept)
};

class Augmenter {
public:
    // Checks the configuration (throws Error: no method, alpha out of range, sr/ri without
    // synonyms, copies < 1, back-translation without a language).
    explicit Augmenter(AugmentConfig cfg);
    const AugmentConfig& config() const { return cfg_; }

    // One text of `line` (copy, field) through every chosen method.
    std::string augment_text(const std::string& text, uint64_t line, uint64_t copy, uint64_t field,
                             AugmentStats* stats = nullptr) const;
    // One parsed record: a copy of it with its texts augmented. `where` ("FILE:LINE") prefixes
    // errors for a record that is neither a text nor a chat line.
    nlohmann::ordered_json augment_record(const nlohmann::ordered_json& record, uint64_t line, uint64_t copy,
                                          const std::string& where, AugmentStats* stats = nullptr) const;
    // Checks a record's shape (throws Error naming `where`); returns true for a chat record.
    static bool check_record(const nlohmann::ordered_json& record, const std::string& where);

    // Parses and checks every line of the JSONL text `input` (named `name` in errors: "NAME:LINE:
    // ..."); returns the line counts (lines, text_lines, chat_lines). Throws Error.
    static AugmentStats check_input(std::string_view input, const std::string& name);
    // Augments the JSONL text `input` (checked first, whole), passing each output line (no
    // newline) to `out`.
    // progress(lines done, lines in total) after each line.
    AugmentStats run(std::string_view input, const std::string& name,
                     const std::function<void(const std::string&)>& out,
                     const std::function<void(int64_t, int64_t)>& progress = nullptr) const;

private:
    AugmentConfig cfg_;
};

// Augments the JSONL text `input` (named `name` in errors) into the file `output`, written
// atomically: nothing is created or replaced when an error stops it. Throws Error.
AugmentStats augment_to_file(const Augmenter& a, std::string_view input, const std::string& name,
                             const std::string& output,
                             const std::function<void(int64_t, int64_t)>& progress = nullptr);

}  // namespace llmforge::train
