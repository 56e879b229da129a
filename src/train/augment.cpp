#include "train/augment.h"

#include <algorithm>
#include <cmath>
#include <utility>

#include "core/error.h"
#include "core/file.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "model/model.h"
#include "runtime/chat.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::train {

namespace {

bool is_space(unsigned char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_punct(unsigned char c) { return c < 128 && std::ispunct(c) != 0; }
bool is_upper(unsigned char c) { return c >= 'A' && c <= 'Z'; }
bool is_lower(unsigned char c) { return c >= 'a' && c <= 'z'; }

std::string ascii_lower(std::string_view s) {
    std::string r(s);
    for (char& c : r)
        if (is_upper(static_cast<unsigned char>(c))) c = static_cast<char>(c - 'A' + 'a');
    return r;
}

std::string trim(std::string_view s) {
    size_t a = 0, b = s.size();
    while (a < b && is_space(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && is_space(static_cast<unsigned char>(s[b - 1]))) --b;
    return std::string(s.substr(a, b - a));
}

// A bounded draw stream over splitmix64 (std:: distributions are implementation-defined).
struct Rng {
    uint64_t s;
    uint64_t next() { return splitmix64(s); }
    // Uniform in [0, n), n > 0 (Lemire's multiply-high; the bias is below 2^-50 for our n).
    size_t below(size_t n) { return static_cast<size_t>((static_cast<unsigned __int128>(next()) * n) >> 64); }
    double uniform() { return uniform53(next()); }
};

// A text as words and the whitespace around them: lead + w[0] + sep[0] + w[1] + sep[1] + ...
// (sep[i] follows w[i]; the last one is the trailing whitespace).
struct Words {
    std::string lead;
    std::vector<std::string> w, sep;

    static Words split(std::string_view t) {
        Words r;
        size_t i = 0;
        while (i < t.size() && is_space(static_cast<unsigned char>(t[i]))) ++i;
        r.lead = std::string(t.substr(0, i));
        while (i < t.size()) {
            size_t j = i;
            while (j < t.size() && !is_space(static_cast<unsigned char>(t[j]))) ++j;
            size_t k = j;
            while (k < t.size() && is_space(static_cast<unsigned char>(t[k]))) ++k;
            r.w.emplace_back(t.substr(i, j - i));
            r.sep.emplace_back(t.substr(j, k - j));
            i = k;
        }
        return r;
    }
    std::string join() const {
        std::string r = lead;
        for (size_t i = 0; i < w.size(); ++i) r += w[i] + sep[i];
        return r;
    }
};

// [begin, end) of a word's core (leading and trailing ASCII punctuation stripped).
std::pair<size_t, size_t> core_range(std::string_view w) {
    size_t a = 0, b = w.size();
    while (a < b && is_punct(static_cast<unsigned char>(w[a]))) ++a;
    while (b > a && is_punct(static_cast<unsigned char>(w[b - 1]))) --b;
    return {a, b};
}

// `repl` written with the capitalisation of `orig`: all capitals (2+ letters, all upper) or a
// capital first letter.
std::string match_case(std::string repl, std::string_view orig) {
    int letters = 0, upper = 0;
    for (unsigned char c : orig) {
        if (is_upper(c) || is_lower(c)) ++letters;
        if (is_upper(c)) ++upper;
    }
    if (letters >= 2 && upper == letters) {
        for (char& c : repl)
            if (is_lower(static_cast<unsigned char>(c))) c = static_cast<char>(c - 'a' + 'A');
    } else if (!orig.empty() && is_upper(static_cast<unsigned char>(orig[0])) && !repl.empty() &&
               is_lower(static_cast<unsigned char>(repl[0]))) {
        repl[0] = static_cast<char>(repl[0] - 'a' + 'A');
    }
    return repl;
}

size_t n_changes(double alpha, size_t words) {
    return std::max<size_t>(1, static_cast<size_t>(std::llround(alpha * static_cast<double>(words))));
}

// "an array", "a string", "an object with keys a, b, c" for messages.
std::string describe(const nlohmann::ordered_json& j) {
    switch (j.type()) {
        case nlohmann::ordered_json::value_t::object: {
            if (j.empty()) return "an empty object";
            std::string keys;
            int n = 0;
            for (auto it = j.begin(); it != j.end(); ++it) {
                if (n == 4) {
                    keys += ", ...";
                    break;
                }
                keys += (n++ ? ", \"" : "\"") + it.key() + "\"";
            }
            return "an object with keys " + keys;
        }
        case nlohmann::ordered_json::value_t::array: return "an array";
        case nlohmann::ordered_json::value_t::string: return "a string";
        case nlohmann::ordered_json::value_t::null: return "null";
        case nlohmann::ordered_json::value_t::boolean: return "a boolean";
        default: return "a number";
    }
}

// Every line of text ('\n'-separated, a last line without '\n' included) with its 1-based number.
std::vector<std::pair<int64_t, std::string_view>> numbered_lines(std::string_view text) {
    std::vector<std::pair<int64_t, std::string_view>> lines;
    size_t pos = 0;
    int64_t no = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        if (nl == std::string_view::npos) nl = text.size();
        lines.emplace_back(++no, text.substr(pos, nl - pos));
        pos = nl + 1;
    }
    return lines;
}

// nlohmann's message without its "[json.exception.parse_error.101] " prefix.
std::string json_message(const std::exception& e) {
    std::string m = e.what();
    if (!m.empty() && m[0] == '[') {
        const size_t p = m.find("] ");
        if (p != std::string::npos) m = m.substr(p + 2);
    }
    return m;
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// Synonym file

SynonymTable SynonymTable::parse(std::string_view text, const std::string& name) {
    SynonymTable t;
    for (auto [line_no, line] : numbered_lines(text)) {
        if (const size_t hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        if (trim(line).empty()) continue;
        std::vector<std::string> group;
        size_t a = 0;
        int col = 1;
        while (true) {
            const size_t comma = line.find(',', a);
            const std::string word = trim(line.substr(a, comma == std::string_view::npos ? std::string_view::npos : comma - a));
            if (word.empty()) {
                fail("%s:%lld: word %d of the group is empty, expected comma-separated words like "
                     "\"order, purchase\" (hint: remove the extra comma)",
                     name.c_str(), (long long)line_no, col);
            }
            for (unsigned char c : word) {
                if (is_space(c)) {
                    fail("%s:%lld: \"%s\" has whitespace inside, expected one word per entry "
                         "(hint: separate synonyms with commas; phrases are not supported)",
                         name.c_str(), (long long)line_no, word.c_str());
                }
            }
            const auto [cb, ce] = core_range(word);
            if (cb != 0 || ce != word.size()) {
                fail("%s:%lld: \"%s\" begins or ends with punctuation, expected a bare word "
                     "(hint: punctuation is stripped from the text's words before they are looked up)",
                     name.c_str(), (long long)line_no, word.c_str());
            }
            const std::string low = ascii_lower(word);
            for (const std::string& g : group) {
                if (ascii_lower(g) == low) {
                    fail("%s:%lld: \"%s\" is listed twice in the group (hint: remove one)", name.c_str(),
                         (long long)line_no, word.c_str());
                }
            }
            group.push_back(word);
            ++col;
            if (comma == std::string_view::npos) break;
            a = comma + 1;
        }
        if (group.size() < 2) {
            fail("%s:%lld: a group of one word (\"%s\"), expected at least two comma-separated synonyms "
                 "(hint: \"order, purchase\")",
                 name.c_str(), (long long)line_no, group[0].c_str());
        }
        for (const std::string& w : group) {
            std::vector<std::string>& syn = t.syn_[ascii_lower(w)];
            for (const std::string& other : group) {
                if (ascii_lower(other) == ascii_lower(w)) continue;
                if (std::find(syn.begin(), syn.end(), other) == syn.end()) syn.push_back(other);
            }
        }
        ++t.n_groups_;
    }
    if (t.n_groups_ == 0) {
        fail("%s: no synonym groups, expected lines of comma-separated synonyms such as \"order, purchase\" "
             "(hint: '#' starts a comment)",
             name.c_str());
    }
    return t;
}

SynonymTable SynonymTable::load(const std::string& path) {
    return parse(read_input(path, "a synonym file", "check the --synonyms path"), path);
}

const std::vector<std::string>* SynonymTable::find(std::string_view word) const {
    auto it = syn_.find(ascii_lower(word));
    return it == syn_.end() ? nullptr : &it->second;
}

// ---------------------------------------------------------------------------------------------
// EDA operations

uint64_t stream_seed(uint64_t seed, uint64_t line, uint64_t copy, AugmentMethod method, uint64_t field, uint64_t leg) {
    uint64_t h = mix64(seed + kGoldenGamma);
    for (uint64_t v : {line, copy, static_cast<uint64_t>(method), field, leg}) h = mix64(h ^ mix64(v + kGoldenGamma));
    return h;
}

std::vector<std::string> split_words(std::string_view text) { return Words::split(text).w; }

std::string_view word_core(std::string_view word) {
    const auto [a, b] = core_range(word);
    return word.substr(a, b - a);
}

std::string synonym_replace(std::string_view text, double alpha, const SynonymTable& syn, uint64_t rng_seed) {
    Words ws = Words::split(text);
    std::vector<size_t> cand;
    for (size_t i = 0; i < ws.w.size(); ++i)
        if (syn.find(word_core(ws.w[i]))) cand.push_back(i);
    if (cand.empty()) return std::string(text);
    Rng rng{rng_seed};
    const size_t n = std::min(cand.size(), n_changes(alpha, ws.w.size()));
    for (size_t k = 0; k < n; ++k) {  // partial Fisher-Yates: the first n of a random order
        std::swap(cand[k], cand[k + rng.below(cand.size() - k)]);
        std::string& w = ws.w[cand[k]];
        const auto [a, b] = core_range(w);
        const std::string core = w.substr(a, b - a);
        const std::vector<std::string>& options = *syn.find(core);
        w = w.substr(0, a) + match_case(options[rng.below(options.size())], core) + w.substr(b);
    }
    return ws.join();
}

std::string random_insert(std::string_view text, double alpha, const SynonymTable& syn, uint64_t rng_seed) {
    Words ws = Words::split(text);
    std::vector<const std::vector<std::string>*> cand;  // synonym lists of the text's own words
    for (const std::string& w : ws.w)
        if (const auto* s = syn.find(word_core(w))) cand.push_back(s);
    if (cand.empty()) return std::string(text);
    Rng rng{rng_seed};
    const size_t n = n_changes(alpha, ws.w.size());
    for (size_t k = 0; k < n; ++k) {
        const std::vector<std::string>& options = *cand[rng.below(cand.size())];
        std::string word = options[rng.below(options.size())];
        const size_t at = rng.below(ws.w.size() + 1);  // a word boundary: before word `at`
        ws.w.insert(ws.w.begin() + static_cast<std::ptrdiff_t>(at), std::move(word));
        // The new word is followed by one space; at the end it takes the old last word's place in
        // front of the trailing whitespace.
        const size_t sep_at = at < ws.w.size() - 1 ? at : at - 1;
        ws.sep.insert(ws.sep.begin() + static_cast<std::ptrdiff_t>(sep_at), " ");
    }
    return ws.join();
}

std::string random_swap(std::string_view text, double alpha, uint64_t rng_seed) {
    Words ws = Words::split(text);
    std::vector<size_t> cand;  // words with a core (not punctuation alone)
    for (size_t i = 0; i < ws.w.size(); ++i)
        if (!word_core(ws.w[i]).empty()) cand.push_back(i);
    if (cand.size() < 2) return std::string(text);
    Rng rng{rng_seed};
    const size_t n = n_changes(alpha, ws.w.size());
    for (size_t k = 0; k < n; ++k) {
        const size_t i = rng.below(cand.size());
        size_t j = rng.below(cand.size() - 1);
        if (j >= i) ++j;
        std::string& a = ws.w[cand[i]];
        std::string& b = ws.w[cand[j]];
        const auto [a0, a1] = core_range(a);
        const auto [b0, b1] = core_range(b);
        const std::string ca = a.substr(a0, a1 - a0), cb = b.substr(b0, b1 - b0);
        a = a.substr(0, a0) + cb + a.substr(a1);
        b = b.substr(0, b0) + ca + b.substr(b1);
    }
    return ws.join();
}

std::string random_delete(std::string_view text, double p, uint64_t rng_seed) {
    const Words ws = Words::split(text);
    const size_t n = ws.w.size();
    if (n <= 1) return std::string(text);
    Rng rng{rng_seed};
    std::vector<char> keep(n);
    size_t kept = 0;
    for (size_t i = 0; i < n; ++i) kept += (keep[i] = rng.uniform() >= p ? 1 : 0);
    if (kept == 0) keep[rng.below(n)] = 1;
    Words r;
    r.lead = ws.lead;
    for (size_t i = 0; i < n; ++i) {
        if (!keep[i]) continue;
        size_t next = i + 1;
        while (next < n && !keep[next]) ++next;
        r.w.push_back(ws.w[i]);
        if (next == n) {
            r.sep.push_back(ws.sep[n - 1]);  // the trailing whitespace stays trailing
        } else {
            // Of the separators the deleted words took with them, keep the one with most newlines.
            size_t best = i;
            auto newlines = [&](size_t s) { return std::count(ws.sep[s].begin(), ws.sep[s].end(), '\n'); };
            for (size_t s = i + 1; s < next; ++s)
                if (newlines(s) > newlines(best)) best = s;
            r.sep.push_back(ws.sep[best]);
        }
    }
    return r.join();
}

std::string translation_prompt(std::string_view text, std::string_view lang) {
    std::string p = "Translate the following text to ";
    p += lang;
    p += ". Reply with the translation only.\n\n";
    p += text;
    return p;
}

// ---------------------------------------------------------------------------------------------
// Back-translation through a chat model

struct ModelTranslator::Impl {
    ModelTranslatorOptions o;
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tok;
    std::unique_ptr<ChatFormat> fmt;
    std::unique_ptr<Context> ctx;
};

ModelTranslator::ModelTranslator(const ModelTranslatorOptions& o) : impl_(std::make_unique<Impl>()) {
    Impl& m = *impl_;
    m.o = o;
    SamplerParams sp;
    sp.temperature = o.temperature;
    sp.top_k = o.top_k;
    sp.top_p = o.top_p;
    Sampler::validate(sp);
    if (o.max_tokens < 1) fail("augment: --max-tokens is %lld, expected at least 1", (long long)o.max_tokens);
    try {
        m.model = Model::load(o.model);
    } catch (const Error& e) {
        throw Error(e.kind(), std::string("augment: --back-translate: ") + e.what());
    }
    if (m.model->vocab().empty()) {
        fail("augment: %s has no tokenizer, expected a model with one (hint: a folder with tokenizer.json or "
             "a GGUF with tokenizer.ggml.* keys)",
             o.model.c_str());
    }
    m.tok = Tokenizer::create(m.model->vocab());
    m.fmt = std::make_unique<ChatFormat>(
        require_chat_format(*m.tok, o.model, o.chat_template, true, "augment", "--chat-template"));
    ContextParams cp;
    cp.n_threads = o.threads;
    cp.n_ctx = o.ctx_size;
    m.ctx = std::make_unique<Context>(*m.model, cp);
}

ModelTranslator::~ModelTranslator() = default;

std::string ModelTranslator::describe() const {
    const Impl& m = *impl_;
    return strfmt("%s (%s, %.1fM parameters, %d threads), template %s", m.o.model.c_str(),
                  m.model->config().arch.c_str(), m.model->n_params() / 1e6, m.ctx->pool().size(),
                  m.o.chat_template.empty() ? "of the model" : m.fmt->name.c_str());
}

std::string ModelTranslator::translate(const std::string& text, const std::string& to_lang, uint64_t seed) {
    Impl& m = *impl_;
    ChatTemplateInputs in;
    in.messages = nlohmann::ordered_json::array();
    in.messages.push_back({{"role", "user"}, {"content", translation_prompt(text, to_lang)}});
    const ChatPrompt prompt = chat_to_tokens(*m.tok, m.fmt->tmpl, std::move(in));
    const int64_t n_prompt = static_cast<int64_t>(prompt.tokens.size());
    if (n_prompt + 1 > m.ctx->n_ctx()) {
        fail_kind(ErrorKind::kResource,
                  "the translation prompt has %lld tokens, the context of %s holds %lld "
                  "(hint: raise --ctx-size or shorten the text)",
                  (long long)n_prompt, m.o.model.c_str(), (long long)m.ctx->n_ctx());
    }
    m.ctx->clear();
    SamplerParams sp;
    sp.temperature = m.o.temperature;
    sp.top_k = m.o.top_k;
    sp.top_p = m.o.top_p;
    sp.seed = seed;
    Sampler sampler(sp, m.tok.get());
    GenerateParams gp;
    gp.stop = m.fmt->stops;
    gp.max_tokens = std::min<int64_t>(m.o.max_tokens, m.ctx->n_ctx() - n_prompt);
    const GenerateResult r = generate(*m.ctx, *m.tok, sampler, prompt.tokens, gp);
    ++generations_;
    return trim(r.text);
}

// ---------------------------------------------------------------------------------------------
// Records and files

Augmenter::Augmenter(AugmentConfig cfg) : cfg_(std::move(cfg)) {
    const EdaParams& e = cfg_.eda;
    const struct {
        const char* flag;
        double v;
        bool open_top;
    } alphas[] = {{"--sr", e.sr, false}, {"--ri", e.ri, false}, {"--rs", e.rs, false}, {"--rd", e.rd, true}};
    for (const auto& a : alphas) {
        if (!(a.v >= 0) || (a.open_top ? a.v >= 1 : a.v > 1)) {
            fail("augment: %s is %g, expected a value in %s (hint: EDA's paper uses 0.1)", a.flag, a.v,
                 a.open_top ? "(0, 1)" : "(0, 1]");
        }
    }
    const bool eda = e.sr > 0 || e.ri > 0 || e.rs > 0 || e.rd > 0;
    if (!eda && !cfg_.translator) {
        fail("augment: no augmentation method chosen, expected at least one of --sr, --ri, --rs, --rd "
             "or --back-translate MODEL --via LANG (hint: --sr 0.1 --synonyms FILE)");
    }
    if ((e.sr > 0 || e.ri > 0) && !cfg_.synonyms) {
        fail("augment: %s needs a synonym file (hint: --synonyms FILE, one comma-separated group per line)",
             e.sr > 0 ? "--sr" : "--ri");
    }
    if (cfg_.translator && trim(cfg_.via).empty()) {
        fail("augment: back-translation needs the language to translate through (hint: --via French)");
    }
    if (cfg_.translator && trim(cfg_.source_lang).empty()) fail("augment: --source-lang is empty (hint: English)");
    if (cfg_.copies < 1) fail("augment: --copies is %d, expected at least 1", cfg_.copies);
    if (cfg_.roles.empty()) fail("augment: --roles is empty, expected roles such as user,assistant");
}

std::string Augmenter::augment_text(const std::string& text, uint64_t line, uint64_t copy, uint64_t field,
                                    AugmentStats* stats) const {
    if (trim(text).empty()) return text;
    const EdaParams& e = cfg_.eda;
    std::string t = text;
    if (cfg_.translator) {
        // There and back; an empty answer on either leg keeps the text (nothing to translate back).
        const std::string there =
            cfg_.translator->translate(t, cfg_.via, stream_seed(cfg_.seed, line, copy, AugmentMethod::kBackTranslate, field, 0));
        std::string back;
        if (!trim(there).empty()) {
            back = cfg_.translator->translate(there, cfg_.source_lang,
                                              stream_seed(cfg_.seed, line, copy, AugmentMethod::kBackTranslate, field, 1));
        }
        if (stats) stats->generations += trim(there).empty() ? 1 : 2;
        if (trim(back).empty()) {
            if (stats) ++stats->bt_empty;
        } else {
            t = back;
        }
    }
    if (e.sr > 0) t = synonym_replace(t, e.sr, *cfg_.synonyms, stream_seed(cfg_.seed, line, copy, AugmentMethod::kSynonymReplace, field));
    if (e.ri > 0) t = random_insert(t, e.ri, *cfg_.synonyms, stream_seed(cfg_.seed, line, copy, AugmentMethod::kRandomInsert, field));
    if (e.rs > 0) t = random_swap(t, e.rs, stream_seed(cfg_.seed, line, copy, AugmentMethod::kRandomSwap, field));
    if (e.rd > 0) t = random_delete(t, e.rd, stream_seed(cfg_.seed, line, copy, AugmentMethod::kRandomDelete, field));
    if (stats) ++stats->texts;
    return t;
}

bool Augmenter::check_record(const nlohmann::ordered_json& r, const std::string& where) {
    const char* hint = "hint: each line is {\"text\": \"...\"} or {\"messages\": [{\"role\": \"user\", \"content\": \"...\"}]}";
    if (r.is_object() && r.contains("text")) {
        if (!r["text"].is_string()) {
            fail("%s: \"text\" is %s, expected a string (%s)", where.c_str(), describe(r["text"]).c_str(), hint);
        }
        if (!r.contains("messages")) return false;
    }
    if (!r.is_object() || !r.contains("messages")) {
        fail("%s: expected an object with a \"text\" string or a \"messages\" array, found %s (%s)", where.c_str(),
             describe(r).c_str(), hint);
    }
    const auto& msgs = r["messages"];
    if (!msgs.is_array()) {
        fail("%s: \"messages\" is %s, expected an array of {\"role\", \"content\"} objects (%s)", where.c_str(),
             describe(msgs).c_str(), hint);
    }
    for (size_t i = 0; i < msgs.size(); ++i) {
        const auto& m = msgs[i];
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) {
            fail("%s: messages[%zu] is %s, expected an object with a \"role\" string (%s)", where.c_str(), i,
                 describe(m).c_str(), hint);
        }
        if (m.contains("content") && !m["content"].is_string() && !m["content"].is_null() && !m["content"].is_array()) {
            fail("%s: messages[%zu].content is %s, expected a string (%s)", where.c_str(), i,
                 describe(m["content"]).c_str(), hint);
        }
    }
    return true;
}

nlohmann::ordered_json Augmenter::augment_record(const nlohmann::ordered_json& record, uint64_t line, uint64_t copy,
                                                 const std::string& where, AugmentStats* stats) const {
    check_record(record, where);
    nlohmann::ordered_json out = record;
    if (out.contains("text")) {
        out["text"] = augment_text(out["text"].get<std::string>(), line, copy, 0, stats);
    }
    if (out.contains("messages")) {
        auto& msgs = out["messages"];
        for (size_t i = 0; i < msgs.size(); ++i) {
            auto& m = msgs[i];
            const std::string role = m["role"].get<std::string>();
            if (std::find(cfg_.roles.begin(), cfg_.roles.end(), role) == cfg_.roles.end()) continue;
            if (!m.contains("content") || !m["content"].is_string()) continue;
            m["content"] = augment_text(m["content"].get<std::string>(), line, copy, i + 1, stats);
        }
    }
    return out;
}

namespace {

// Non-blank lines as (1-based number, text without '\r').
std::vector<std::pair<uint64_t, std::string_view>> jsonl_lines(std::string_view input) {
    std::vector<std::pair<uint64_t, std::string_view>> lines;
    for (auto [no, l] : numbered_lines(input)) {
        if (!l.empty() && l.back() == '\r') l.remove_suffix(1);
        if (!trim(l).empty()) lines.emplace_back(static_cast<uint64_t>(no), l);
    }
    return lines;
}

nlohmann::ordered_json parse_line(std::string_view l, const std::string& where) {
    try {
        return nlohmann::ordered_json::parse(l);
    } catch (const nlohmann::json::exception& e) {
        fail("%s: not valid JSON: %s (hint: one JSON object per line)", where.c_str(), json_message(e).c_str());
    }
}

std::string where_of(const std::string& name, uint64_t line) {
    return strfmt("%s:%llu", name.c_str(), (unsigned long long)line);
}

}  // namespace

AugmentStats Augmenter::check_input(std::string_view input, const std::string& name) {
    AugmentStats st;
    for (const auto& [n, l] : jsonl_lines(input)) {
        const std::string where = where_of(name, n);
        if (check_record(parse_line(l, where), where)) {
            ++st.chat_lines;
        } else {
            ++st.text_lines;
        }
        ++st.lines;
    }
    return st;
}

AugmentStats Augmenter::run(std::string_view input, const std::string& name,
                            const std::function<void(const std::string&)>& out,
                            const std::function<void(int64_t, int64_t)>& progress) const {
    // Every line is checked before the first is augmented: a bad line 10,000 fails at once, not
    // after hours of back-translation.
    AugmentStats st = check_input(input, name);
    const int64_t total = st.lines;
    st.lines = 0;
    for (const auto& [n, l] : jsonl_lines(input)) {
        const std::string where = where_of(name, n);
        const nlohmann::ordered_json j = parse_line(l, where);
        if (cfg_.originals) out(std::string(l));
        for (int c = 0; c < cfg_.copies; ++c) {
            nlohmann::ordered_json v;
            try {
                v = augment_record(j, n, static_cast<uint64_t>(c), where, &st);
            } catch (const Error& e) {  // the translator's errors: say which line
                throw Error(e.kind(), where + ": " + e.what());
            }
            out(v.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace));
            ++st.variants;
        }
        ++st.lines;
        if (progress) progress(st.lines, total);
    }
    return st;
}

AugmentStats augment_to_file(const Augmenter& a, std::string_view input, const std::string& name,
                             const std::string& output, const std::function<void(int64_t, int64_t)>& progress) {
    AtomicFile f(output);
    std::string buf;
    auto flush = [&] {
        f.write(buf.data(), buf.size());
        buf.clear();
    };
    const AugmentStats st = a.run(input, name, [&](const std::string& line) {
        buf += line;
        buf += '\n';
        if (buf.size() >= (size_t{1} << 20)) flush();
    }, progress);
    flush();
    f.commit();
    return st;
}

}  // namespace llmforge::train
