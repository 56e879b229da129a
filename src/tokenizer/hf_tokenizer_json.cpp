#include "tokenizer/hf_tokenizer_json.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "core/file.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece_tokenizer.h"

namespace llmforge {

namespace {

using nlohmann::json;

// Split regexes as Hugging Face spells them where they differ from llama.cpp's lists.
const char* const kHfLlama3 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* const kHfQwen2 =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

constexpr const char* kReadHint = "check the path; gzip'd files must be decompressed first";

// Collects the Split regexes and whether a ByteLevel step splits with its own regex.
void walk_pre_tokenizer(const json& p, std::vector<std::string>& splits, bool& byte_level,
                        bool& byte_level_regex) {
    if (!p.is_object()) return;
    const std::string type = p.value("type", "");
    if (type == "Sequence") {
        for (const json& q : p.value("pretokenizers", json::array())) {
            walk_pre_tokenizer(q, splits, byte_level, byte_level_regex);
        }
    } else if (type == "Split") {
        const json& pat = p.value("pattern", json::object());
        if (pat.contains("Regex")) {
            splits.push_back(pat["Regex"].get<std::string>());
        } else if (pat.contains("String")) {
            splits.push_back("\x01literal:" + pat["String"].get<std::string>());  // never matches
        }
    } else if (type == "ByteLevel") {
        byte_level = true;
        byte_level_regex = byte_level_regex || p.value("use_regex", true);
    } else {
        splits.push_back("\x01" + type);  // an unsupported step: makes detection fail
    }
}

std::string detect_pre(const std::vector<std::string>& splits, bool byte_level_regex,
                       std::string_view source) {
    if (splits.empty() && byte_level_regex) return "gpt-2";
    if (splits.size() == 1 && splits[0] == kHfLlama3) return "llama-bpe";
    if (splits.size() == 1 && splits[0] == kHfQwen2) return "qwen2";
    if (!byte_level_regex) {
        for (const std::string& name : pre_tokenizer_names()) {
            if (pre_tokenizer_preset(name).regexes == splits)
                return pre_tokenizer_preset(name).name;
        }
    }
    std::string found;
    for (const std::string& s : splits) found += (found.empty() ? "" : " | ") + s;
    fail(
        "hf tokenizer: %.*s: pre_tokenizer not recognised (Split regexes: %s); known: Llama 3, "
        "Qwen 2, DeepSeek V3, GPT-2 ByteLevel and llama.cpp's lists; hint: pass the "
        "tokenizer.ggml.pre name explicitly",
        static_cast<int>(source.size()), source.data(), found.empty() ? "none" : found.c_str());
}

// A token named in tokenizer_config.json: "text", {"content": "text"} or null.
std::string config_token(const json& cfg, const char* key) {
    if (!cfg.contains(key)) return {};
    const json& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) {
        return v["content"].get<std::string>();
    }
    return {};
}


// A BPE model over SentencePiece pieces ("▁" for spaces, <0xHH> byte fallback), as Hugging Face
// converts Llama 2, Mistral, TinyLlama and Phi-3 tokenizers.
bool is_sentencepiece_bpe(const json& j, const json& model) {
    if (model.value("byte_fallback", false)) return true;
    const json& dec = j.value("decoder", json());
    if (!dec.is_object()) return false;
    for (const json& d : dec.value("decoders", json::array())) {
        if (d.value("type", "") == "ByteFallback") return true;
    }
    return false;
}

// Checks the normalizer / pre-tokenizer and returns whether a "▁" is prepended (the dummy
// prefix). Legacy form: normalizer Sequence[Prepend("▁"), Replace(" ", "▁")]; newer form:
// pre_tokenizer Metaspace("▁", prepend_scheme "first"|"always"|"never", split false).
bool check_sentencepiece_bpe(const json& j, std::string_view source) {
    const int sl = static_cast<int>(source.size());
    const std::string kSpace = "\xE2\x96\x81";
    bool prepend = false, replace = false, metaspace = false;
    const json& norm = j.value("normalizer", json());
    std::vector<json> steps;
    if (norm.is_object()) {
        if (norm.value("type", "") == "Sequence") {
            for (const json& n : norm.value("normalizers", json::array())) steps.push_back(n);
        } else {
            steps.push_back(norm);
        }
    }
    for (const json& n : steps) {
        const std::string t = n.value("type", "");
        if (t == "Prepend" && n.value("prepend", "") == kSpace) {
            prepend = true;
        } else if (t == "Replace" && n.value("content", "") == kSpace &&
                   n.value("pattern", json::object()).value("String", "") == " ") {
            replace = true;
        } else {
            fail("hf tokenizer: %.*s: normalizer step %s is not supported for a SentencePiece-style "
                 "BPE (expected Prepend(\"\u2581\") and Replace(\" \", \"\u2581\"))",
                 sl, source.data(), n.dump().c_str());
        }
    }
    const json& pt = j.value("pre_tokenizer", json());
    if (pt.is_object()) {
        if (pt.value("type", "") != "Metaspace" || pt.value("replacement", kSpace) != kSpace ||
            pt.value("split", false)) {
            fail("hf tokenizer: %.*s: pre_tokenizer %s is not supported for a SentencePiece-style "
                 "BPE (expected none, or Metaspace(\"\u2581\") without split)",
                 sl, source.data(), pt.dump().c_str());
        }
        metaspace = true;
        prepend = pt.value("prepend_scheme", "always") != "never" && pt.value("add_prefix_space", true);
    }
    if (!metaspace && !replace) {
        fail("hf tokenizer: %.*s: SentencePiece-style BPE without Replace(\" \", \"\u2581\") or "
             "Metaspace; hint: spaces would never become \"\u2581\"",
             sl, source.data());
    }
    return prepend;
}

// model.merges as "left right" strings; Hugging Face writes "a b" strings or ["a", "b"] pairs.
std::vector<std::string> read_merges(const json& model, std::string_view source) {
    std::vector<std::string> out;
    for (const json& m : model.value("merges", json::array())) {
        if (m.is_string()) {
            out.push_back(m.get<std::string>());
        } else if (m.is_array() && m.size() == 2) {
            out.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
        } else {
            fail("hf tokenizer: %.*s: merge '%s' is neither \"a b\" nor [\"a\", \"b\"]",
                 static_cast<int>(source.size()), source.data(), m.dump().c_str());
        }
    }
    return out;
}

// SentencePiece merges by piece score (highest first); Hugging Face's file lists merges by rank
// (lowest first). Giving each merged piece the score -rank of the first merge that builds it
// orders the merges the same way, so SpmTokenizer reproduces the BPE. Pieces no merge builds
// (single characters, bytes, special tokens) keep score 0: their score is never compared.
// Also marks "<0xHH>" pieces as byte tokens.
void scores_from_merges(const std::vector<std::string>& merges, Vocab& v, std::string_view source) {
    std::unordered_map<std::string, int32_t> ids;
    for (size_t i = 0; i < v.tokens.size(); ++i) ids.emplace(v.tokens[i], static_cast<int32_t>(i));
    v.scores.assign(v.tokens.size(), 0.0f);
    std::vector<uint8_t> built(v.tokens.size(), 0);
    float rank = 0;
    for (const std::string& m : merges) {
        const size_t sp = m.find(' ', 1);
        if (sp == std::string::npos) {
            fail("hf tokenizer: %.*s: merge '%s' has no space between its two parts",
                 static_cast<int>(source.size()), source.data(), m.c_str());
        }
        const std::string merged = m.substr(0, sp) + m.substr(sp + 1);
        const auto it = ids.find(merged);
        if (it != ids.end() && !built[it->second]) {
            built[it->second] = 1;
            v.scores[it->second] = -rank;
        }
        ++rank;
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) {
        if (v.types[i] == TokenType::kNormal && parse_byte_token(v.tokens[i]) >= 0) {
            v.types[i] = TokenType::kByte;
        }
    }
}

// Byte-level BPE: checks the pre-tokenizer / decoder / normalizer and returns the pre name.
std::string check_byte_level_bpe(const json& j, std::string_view pre, std::string_view source) {
    const int sl = static_cast<int>(source.size());
    std::vector<std::string> splits;
    bool byte_level = false, byte_level_regex = false;
    walk_pre_tokenizer(j.value("pre_tokenizer", json()), splits, byte_level, byte_level_regex);
    const json& dec = j.value("decoder", json());
    const bool byte_level_decoder = dec.is_object() && dec.value("type", "") == "ByteLevel";
    if (!byte_level && !byte_level_decoder) {
        fail(
            "hf tokenizer: %.*s: BPE without ByteLevel pre-tokenizer or decoder, expected "
            "byte-level BPE; hint: SentencePiece-style tokenizer.json (Llama 2, Mistral) is "
            "not supported yet, use the model's GGUF vocabulary",
            sl, source.data());
    }
    const json& norm = j.value("normalizer", json());
    if (norm.is_object()) {
        const std::string nt = norm.value("type", "");
        const bool empty_seq = nt == "Sequence" && norm.value("normalizers", json::array()).empty();
        if (nt != "NFC" && !empty_seq) {
            fail("hf tokenizer: %.*s: normalizer '%s' is not supported, expected none or NFC", sl,
                 source.data(), nt.c_str());
        }
    }
    return pre.empty() ? detect_pre(splits, byte_level_regex, source) : std::string(pre);
}

// WordPiece: only what WordPieceTokenizer implements (BERT uncased normalisation, "##").
void check_bert(const json& j, const json& model, std::string_view source) {
    const int sl = static_cast<int>(source.size());
    const json& norm = j.value("normalizer", json());
    const bool ok = norm.is_object() && norm.value("type", "") == "BertNormalizer" &&
                    norm.value("lowercase", false) && norm.value("clean_text", true) &&
                    norm.value("handle_chinese_chars", true) &&
                    (!norm.contains("strip_accents") || norm["strip_accents"].is_null() ||
                     norm["strip_accents"] == true);
    if (!ok) {
        fail(
            "hf tokenizer: %.*s: WordPiece normalizer %s is not supported, expected "
            "BertNormalizer with lowercase (uncased BERT); hint: cased WordPiece models are not "
            "implemented",
            sl, source.data(), norm.dump().c_str());
    }
    const json& pt = j.value("pre_tokenizer", json());
    if (!pt.is_object() || pt.value("type", "") != "BertPreTokenizer") {
        fail("hf tokenizer: %.*s: WordPiece pre_tokenizer %s is not supported, expected "
             "BertPreTokenizer",
             sl, source.data(), pt.dump().c_str());
    }
    if (model.value("continuing_subword_prefix", "##") != "##" ||
        model.value("max_input_chars_per_word", json(100)) != json(100)) {
        fail("hf tokenizer: %.*s: WordPiece with continuing_subword_prefix %s and "
             "max_input_chars_per_word %s, expected \"##\" and 100",
             sl, source.data(), model.value("continuing_subword_prefix", json()).dump().c_str(),
             model.value("max_input_chars_per_word", json()).dump().c_str());
    }
}

// Token texts and types by id: model.vocab (normal; WordPiece ones in llama.cpp's phantom-space
// form), added_tokens (control when "special", else user-defined), gaps "[PAD<id>]" unused.
void fill_tokens(const json& j, const json& model, Vocab& v, std::string_view source) {
    const int sl = static_cast<int>(source.size());
    const bool phantom = v.model == "bert";
    // An id must be a JSON integer: converting a float such as 1e300 would be undefined.
    auto id_of = [&](const json& id, const std::string& text) -> int64_t {
        if (!id.is_number_integer()) {
            fail("hf tokenizer: %.*s: token '%s' has id %s, expected an integer", sl,
                 source.data(), text.c_str(), id.dump().c_str());
        }
        return id.get<int64_t>();
    };
    std::vector<std::pair<int64_t, std::string>> entries;
    for (const auto& [text, id] : model.at("vocab").items()) {
        entries.emplace_back(id_of(id, text), phantom ? wordpiece_phantom_form(text) : text);
    }
    std::vector<std::pair<int64_t, std::string>> added;
    std::vector<bool> added_special;
    for (const json& a : j.value("added_tokens", json::array())) {
        std::string content = a.at("content").get<std::string>();
        added.emplace_back(id_of(a.at("id"), content), std::move(content));
        added_special.push_back(a.value("special", false));
    }
    int64_t n = 0;
    for (const auto* list : {&entries, &added}) {
        for (const auto& [id, text] : *list) {
            if (id < 0 || id >= (int64_t{1} << 31)) {
                fail("hf tokenizer: %.*s: token '%s' has id %lld, expected 0 <= id < 2^31", sl,
                     source.data(), text.c_str(), static_cast<long long>(id));
            }
            n = std::max(n, id + 1);
        }
    }
    // Ids a vocabulary leaves unused become "[PADn]" tokens. A few are normal (a model's padded
    // vocabulary); more holes than tokens (and more than 65536) is not a vocabulary but a corrupt
    // id, and would allocate a string per hole.
    const int64_t count = static_cast<int64_t>(entries.size() + added.size());
    if (n - count > std::max<int64_t>(count, int64_t{1} << 16)) {
        const std::pair<int64_t, std::string>* far = nullptr;
        for (const auto* list : {&entries, &added})
            for (const auto& e : *list)
                if (far == nullptr || e.first > far->first) far = &e;
        fail("hf tokenizer: %.*s: token '%s' has id %lld but the vocabulary has %lld tokens (expected ids 0..%lld with "
             "few gaps; hint: the file's ids are corrupt)", sl, source.data(), far->second.c_str(),
             static_cast<long long>(far->first), static_cast<long long>(count), static_cast<long long>(count - 1));
    }
    v.tokens.assign(static_cast<size_t>(n), std::string());
    v.types.assign(static_cast<size_t>(n), TokenType::kUnused);
    std::vector<uint8_t> filled(static_cast<size_t>(n), 0);
    for (auto& [id, text] : entries) {
        v.tokens[id] = std::move(text);
        v.types[id] = TokenType::kNormal;
        filled[id] = 1;
    }
    for (size_t k = 0; k < added.size(); ++k) {
        const int64_t id = added[k].first;
        v.tokens[id] = added[k].second;
        v.types[id] = added_special[k] ? TokenType::kControl : TokenType::kUserDefined;
        filled[id] = 1;
    }
    for (int64_t id = 0; id < n; ++id) {
        if (!filled[id]) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
    }
}

// The TemplateProcessing post-processor (alone or in a Sequence), or null.
const json* template_processing(const json& pp) {
    if (!pp.is_object()) return nullptr;
    if (pp.value("type", "") == "TemplateProcessing") return &pp;
    if (pp.value("type", "") == "Sequence") {
        for (const json& q : pp.value("processors", json::array())) {
            if (const json* t = template_processing(q)) return t;
        }
    }
    return nullptr;
}

// BOS/EOS/UNK/PAD ids and whether encode adds BOS/EOS. Order of authority: tokenizer_config.json
// (bos_token, add_bos_token, ...), then the post-processor's template ("[CLS] $A [SEP]"), then
// model.unk_token; without either, BOS is added when one is named (what llama.cpp does).
void set_special_tokens(const json& j, const json& cfg, Vocab& v) {
    auto find_id = [&](const std::string& text) -> int32_t {
        if (text.empty()) return -1;
        // added tokens first (they override vocabulary entries of the same text)
        for (size_t i = 0; i < v.tokens.size(); ++i) {
            if (v.tokens[i] == text && v.types[i] != TokenType::kNormal) return static_cast<int32_t>(i);
        }
        const auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
        return it == v.tokens.end() ? -1 : static_cast<int32_t>(it - v.tokens.begin());
    };
    std::string tp_bos, tp_eos;
    const json post = j.value("post_processor", json());
    const json* tp = template_processing(post);
    if (tp) {
        const json& single = tp->value("single", json::array());
        auto special_at = [&](const json& item) -> std::string {
            if (item.is_object() && item.contains("SpecialToken")) {
                return item["SpecialToken"].value("id", "");
            }
            return {};
        };
        if (!single.empty()) {
            tp_bos = special_at(single.front());
            if (single.size() > 1) tp_eos = special_at(single.back());
        }
    }
    auto pick = [&](const char* key, const std::string& fallback) {
        const std::string t = config_token(cfg, key);
        return find_id(t.empty() ? fallback : t);
    };
    v.bos_id = pick("bos_token", tp_bos.empty() ? config_token(cfg, "cls_token") : tp_bos);
    v.eos_id = pick("eos_token", tp_eos.empty() ? config_token(cfg, "sep_token") : tp_eos);
    v.unk_id = pick("unk_token", j.at("model").value("unk_token", json()).is_string()
                                     ? j["model"]["unk_token"].get<std::string>()
                                     : std::string());
    v.pad_id = pick("pad_token", "");
    auto flag = [&](const char* key, bool dflt) {
        return cfg.is_object() && cfg.contains(key) && cfg[key].is_boolean() ? cfg[key].get<bool>()
                                                                            : dflt;
    };
    v.add_bos = flag("add_bos_token", tp ? !tp_bos.empty() && v.bos_id >= 0 : v.bos_id >= 0);
    v.add_eos = flag("add_eos_token", tp && !tp_eos.empty() && v.eos_id >= 0);
}

}  // namespace

Vocab hf_tokenizer_json_parse(std::string_view tokenizer_json, std::string_view tokenizer_config,
                              std::string_view pre, std::string_view source) {
    const int sl = static_cast<int>(source.size());
    json j, cfg;
    try {
        j = json::parse(tokenizer_json);
        if (!tokenizer_config.empty()) cfg = json::parse(tokenizer_config);
    } catch (const json::exception& e) {
        fail(
            "hf tokenizer: %.*s: malformed JSON: %s; hint: is the file complete and "
            "decompressed?",
            sl, source.data(), e.what());
    }
    try {
        const json& model = j.at("model");
        const std::string type = model.value("type", "");
        Vocab v;
        if (type == "BPE" && is_sentencepiece_bpe(j, model)) {
            v.model = "llama";
            v.add_space_prefix = check_sentencepiece_bpe(j, source);
        } else if (type == "BPE") {
            v.model = "gpt2";
            v.pre = check_byte_level_bpe(j, pre, source);
        } else if (type == "WordPiece") {
            v.model = "bert";
            v.pre = pre.empty() ? "bert-bge" : std::string(pre);
            check_bert(j, model, source);
        } else {
            fail(
                "hf tokenizer: %.*s: model.type is '%s', expected 'BPE' or 'WordPiece'; hint: "
                "Unigram tokenizer.json files are not supported yet, use the model's GGUF "
                "vocabulary",
                sl, source.data(), type.c_str());
        }
        if (v.model != "llama") v.add_space_prefix = false;
        fill_tokens(j, model, v, source);
        if (v.model == "llama") {
            scores_from_merges(read_merges(model, source), v, source);
        } else if (v.model == "gpt2") {
            v.merges = read_merges(model, source);
        }
        set_special_tokens(j, cfg, v);
        if (cfg.is_object() && cfg.contains("chat_template") && !cfg["chat_template"].is_null()) {
            v.chat_template = chat_template_from_config(cfg);
        }
        return v;
    } catch (const json::exception& e) {
        fail(
            "hf tokenizer: %.*s: unexpected structure: %s; hint: expected a Hugging Face "
            "tokenizers tokenizer.json",
            sl, source.data(), e.what());
    }
}

Vocab hf_tokenizer_json_load(const std::string& tokenizer_json_path,
                             const std::string& tokenizer_config_path, std::string_view pre) {
    // read_file (core/file.h) opens without blocking and refuses FIFOs, devices and sockets.
    const std::string tj = read_file(tokenizer_json_path, "tokenizer.json", kReadHint);
    if (tj.empty()) {
        fail("%s: is empty (0 bytes), expected a Hugging Face tokenizer.json (hint: the download "
             "was cut short? fetch it again)",
             tokenizer_json_path.c_str());
    }
    const std::string tc = tokenizer_config_path.empty()
                               ? std::string()
                               : read_file(tokenizer_config_path, "tokenizer_config.json", kReadHint);
    return hf_tokenizer_json_parse(tj, tc, pre, tokenizer_json_path);
}

}  // namespace llmforge
