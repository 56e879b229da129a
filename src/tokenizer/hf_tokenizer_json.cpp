#include "tokenizer/hf_tokenizer_json.h"

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "core/error.h"
#include "tokenizer/pre_tokenizer.h"

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

std::string read_whole_file(const std::string& path, const char* what) {
    std::ifstream f(path, std::ios::binary);
    if (!f) {
        fail(
            "hf tokenizer: cannot open %s '%s'; hint: check the path (gzip'd files must be "
            "decompressed first)",
            what, path.c_str());
    }
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

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
        if (type != "BPE") {
            fail(
                "hf tokenizer: %.*s: model.type is '%s', expected 'BPE'; hint: WordPiece and "
                "Unigram tokenizer.json files are not supported yet",
                sl, source.data(), type.c_str());
        }
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
            const bool empty_seq =
                nt == "Sequence" && norm.value("normalizers", json::array()).empty();
            if (nt != "NFC" && !empty_seq) {
                fail("hf tokenizer: %.*s: normalizer '%s' is not supported, expected none or NFC",
                     sl, source.data(), nt.c_str());
            }
        }

        Vocab v;
        v.model = "gpt2";
        v.pre = pre.empty() ? detect_pre(splits, byte_level_regex, source) : std::string(pre);
        v.add_space_prefix = false;

        // Token texts by id.
        std::vector<std::pair<int64_t, std::string>> entries;
        for (const auto& [text, id] : model.at("vocab").items()) {
            entries.emplace_back(id.get<int64_t>(), text);
        }
        std::vector<std::pair<int64_t, bool>> added;  // id, special
        std::vector<std::string> added_text;
        for (const json& a : j.value("added_tokens", json::array())) {
            added.emplace_back(a.at("id").get<int64_t>(), a.value("special", false));
            added_text.push_back(a.at("content").get<std::string>());
        }
        int64_t n = 0;
        for (const auto& e : entries) n = std::max(n, e.first + 1);
        for (const auto& a : added) n = std::max(n, a.first + 1);
        for (const auto& e : entries) {
            if (e.first < 0)
                fail("hf tokenizer: %.*s: negative token id %lld", sl, source.data(),
                     static_cast<long long>(e.first));
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
            const auto [id, special] = added[k];
            if (id < 0)
                fail("hf tokenizer: %.*s: added token '%s' has negative id", sl, source.data(),
                     added_text[k].c_str());
            v.tokens[id] = added_text[k];
            v.types[id] = special ? TokenType::kControl : TokenType::kUserDefined;
            filled[id] = 1;
        }
        for (int64_t id = 0; id < n; ++id) {
            if (!filled[id]) v.tokens[id] = "[PAD" + std::to_string(id) + "]";
        }

        for (const json& m : model.value("merges", json::array())) {
            if (m.is_string()) {
                v.merges.push_back(m.get<std::string>());
            } else if (m.is_array() && m.size() == 2) {
                v.merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
            } else {
                fail("hf tokenizer: %.*s: merge '%s' is neither \"a b\" nor [\"a\", \"b\"]", sl,
                     source.data(), m.dump().c_str());
            }
        }

        // Special tokens from tokenizer_config.json.
        auto find_id = [&](const std::string& text) -> int32_t {
            if (text.empty()) return -1;
            for (size_t k = 0; k < added.size(); ++k) {
                if (added_text[k] == text) return static_cast<int32_t>(added[k].first);
            }
            const auto it = std::find(v.tokens.begin(), v.tokens.end(), text);
            return it == v.tokens.end() ? -1 : static_cast<int32_t>(it - v.tokens.begin());
        };
        v.bos_id = find_id(config_token(cfg, "bos_token"));
        v.eos_id = find_id(config_token(cfg, "eos_token"));
        v.unk_id = find_id(config_token(cfg, "unk_token"));
        v.pad_id = find_id(config_token(cfg, "pad_token"));
        v.add_bos =
            cfg.is_object() && cfg.contains("add_bos_token") && cfg["add_bos_token"].is_boolean()
                ? cfg["add_bos_token"].get<bool>()
                : v.bos_id >= 0;
        v.add_eos =
            cfg.is_object() && cfg.contains("add_eos_token") && cfg["add_eos_token"].is_boolean()
                ? cfg["add_eos_token"].get<bool>()
                : false;
        if (cfg.is_object() && cfg.contains("chat_template")) {
            const json& t = cfg["chat_template"];
            if (t.is_string()) {
                v.chat_template = t.get<std::string>();
            } else if (t.is_array()) {  // [{"name": ..., "template": ...}]: take "default"
                for (const json& e : t) {
                    if (e.value("name", "") == "default") v.chat_template = e.value("template", "");
                }
            }
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
    const std::string tj = read_whole_file(tokenizer_json_path, "tokenizer.json");
    const std::string tc = tokenizer_config_path.empty()
                               ? std::string()
                               : read_whole_file(tokenizer_config_path, "tokenizer_config.json");
    return hf_tokenizer_json_parse(tj, tc, pre, tokenizer_json_path);
}

}  // namespace llmforge
