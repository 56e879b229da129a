#include "tokenizer/bpe_learner.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <queue>

#include "core/error.h"
#include "tokenizer/bpe_tokenizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace llmforge {

namespace {

uint64_t key(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

const PreTokenizer& gpt2_splitter() {
    static const PreTokenizer p(pre_tokenizer_preset("gpt-2").regexes);
    return p;
}

}  // namespace

void BpeLearner::add_text(std::string_view text) {
    gpt2_splitter().split(text, [&](std::string_view w) { ++words_[std::string(w)]; });
}

BpeLearnResult BpeLearner::learn(int64_t vocab_size, const std::vector<std::string>& special, int64_t min_frequency,
                                 const std::function<void(int64_t, int64_t)>& progress) {
    BpeLearnResult res;
    res.special = special;
    const int32_t base = static_cast<int32_t>(special.size());
    for (const std::string& s : special) res.tokens.push_back(s);
    for (int b = 0; b < 256; ++b) res.tokens.push_back(byte_to_byte_level(static_cast<uint8_t>(b)));
    const int64_t want = vocab_size - static_cast<int64_t>(res.tokens.size());
    if (want < 0)
        fail("train-tokenizer: --vocab-size %lld is too small, expected at least %zu (256 bytes + %zu special tokens)",
             (long long)vocab_size, res.tokens.size(), special.size());

    // Unique words as symbol sequences, with their counts (sorted for a deterministic order).
    std::vector<std::pair<std::string, int64_t>> sorted(words_.begin(), words_.end());
    std::sort(sorted.begin(), sorted.end());
    std::vector<std::vector<int32_t>> seq(sorted.size());
    std::vector<int64_t> freq(sorted.size());
    std::unordered_map<uint64_t, int64_t> count;
    std::unordered_map<uint64_t, std::vector<int32_t>> where;  // pair -> words holding it (may repeat)
    // Digits are never merged: every digit stays its own token (as in the Llama and DeepSeek
    // vocabularies), so numbers — order numbers, prices, dates — are as easy to copy as text.
    auto digit = [&](int32_t id) { return id >= base && id < base + 256 && (id - base) >= '0' && (id - base) <= '9'; };
    for (size_t w = 0; w < sorted.size(); ++w) {
        freq[w] = sorted[w].second;
        for (unsigned char c : sorted[w].first) seq[w].push_back(base + c);
        for (size_t i = 0; i + 1 < seq[w].size(); ++i) {
            if (digit(seq[w][i]) || digit(seq[w][i + 1])) continue;
            const uint64_t k = key(seq[w][i], seq[w][i + 1]);
            count[k] += freq[w];
            where[k].push_back(static_cast<int32_t>(w));
        }
    }
    // Max-heap on (count, then the smaller pair); stale entries are skipped when popped.
    using Entry = std::pair<int64_t, uint64_t>;
    auto cmp = [](const Entry& a, const Entry& b) { return a.first != b.first ? a.first < b.first : a.second > b.second; };
    std::priority_queue<Entry, std::vector<Entry>, decltype(cmp)> heap(cmp);
    for (const auto& [k, c] : count) heap.push({c, k});
    std::vector<int64_t> seen(seq.size(), -1);  // last merge that visited the word
    while (static_cast<int64_t>(res.merges.size()) < want && !heap.empty()) {
        const auto [c, k] = heap.top();
        heap.pop();
        auto it = count.find(k);
        if (it == count.end() || it->second != c) continue;  // stale
        if (c < min_frequency) break;
        const int32_t a = static_cast<int32_t>(k >> 32), b = static_cast<int32_t>(k & 0xffffffffu);
        const int32_t id = static_cast<int32_t>(res.tokens.size());
        res.tokens.push_back(res.tokens[a] + res.tokens[b]);
        res.merges.emplace_back(a, b);
        const int64_t m = static_cast<int64_t>(res.merges.size());
        std::vector<int32_t> ws = std::move(where[k]);
        where.erase(k);
        count.erase(it);
        std::vector<uint64_t> touched;
        auto bump = [&](int32_t x, int32_t y, int64_t d, int32_t w) {
            if (digit(x) || digit(y)) return;
            const uint64_t kk = key(x, y);
            int64_t& v = count[kk];
            v += d;
            if (d > 0) where[kk].push_back(w);
            touched.push_back(kk);
        };
        // Each word holding the pair: remove its old pairs, merge, add its new pairs (words are
        // short, so redoing a whole word is simpler than patching neighbours and just as fast).
        for (int32_t w : ws) {
            if (seen[w] == m) continue;
            seen[w] = m;
            std::vector<int32_t>& s = seq[w];
            std::vector<int32_t> out;
            out.reserve(s.size());
            for (size_t i = 0; i < s.size();) {
                if (i + 1 < s.size() && s[i] == a && s[i + 1] == b) {
                    out.push_back(id);
                    i += 2;
                } else {
                    out.push_back(s[i++]);
                }
            }
            if (out.size() == s.size()) continue;  // a stale entry: the word no longer has the pair
            const int64_t f = freq[w];
            for (size_t i = 0; i + 1 < s.size(); ++i)
                if (key(s[i], s[i + 1]) != k) bump(s[i], s[i + 1], -f, w);
            for (size_t i = 0; i + 1 < out.size(); ++i) bump(out[i], out[i + 1], f, w);
            s = std::move(out);
        }
        std::sort(touched.begin(), touched.end());
        touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
        for (uint64_t kk : touched) {
            auto ci = count.find(kk);
            if (ci == count.end()) continue;
            if (ci->second <= 0) {
                count.erase(ci);
                where.erase(kk);
            } else {
                heap.push({ci->second, kk});
            }
        }
        if (progress && (m % 64 == 0 || m == want)) progress(m, want);
    }
    return res;
}

std::string bpe_tokenizer_json(const BpeLearnResult& r) {
    using oj = nlohmann::ordered_json;
    oj added = oj::array();
    for (size_t i = 0; i < r.special.size(); ++i)
        added.push_back({{"id", i}, {"content", r.special[i]}, {"single_word", false}, {"lstrip", false},
                         {"rstrip", false}, {"normalized", false}, {"special", true}});
    oj vocab = oj::object();
    for (size_t i = 0; i < r.tokens.size(); ++i) vocab[r.tokens[i]] = i;
    oj merges = oj::array();
    for (const auto& [a, b] : r.merges) merges.push_back(r.tokens[a] + " " + r.tokens[b]);
    oj j = {{"version", "1.0"},
            {"truncation", nullptr},
            {"padding", nullptr},
            {"added_tokens", added},
            {"normalizer", nullptr},
            {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}}},
            {"post_processor", nullptr},
            {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}}},
            {"model",
             {{"type", "BPE"},
              {"dropout", nullptr},
              {"unk_token", nullptr},
              {"continuing_subword_prefix", nullptr},
              {"end_of_word_suffix", nullptr},
              {"fuse_unk", false},
              {"byte_fallback", false},
              {"vocab", vocab},
              {"merges", merges}}}};
    return j.dump(1) + "\n";
}

std::string bpe_tokenizer_config_json(const std::string& eos_token, const std::string& pad_token) {
    nlohmann::ordered_json j = {
        {"add_bos_token", false},
        {"add_eos_token", false},
        {"bos_token", nullptr},
        {"eos_token", eos_token},
        {"pad_token", pad_token},
        {"model_max_length", 2048},
        {"tokenizer_class", "PreTrainedTokenizerFast"},
        // ChatML; an assistant's tool_calls as Hermes <tool_call> markup and the tools listed in the
        // system turn, so the server renders OpenAI tool calls with the template and passes "tool"
        // messages through as they are (runtime/tool_calls.h: template_renders_tools). Without
        // tools a conversation renders exactly as plain ChatML.
        {"chat_template",
         "{%- if tools %}{{ '<|im_start|>system\\n' }}{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] "
         "+ '\\n\\n' }}{% endif %}{{ 'You can call these functions:' }}{% for tool in tools %}{{ '\\n' + (tool | tojson)"
         " }}{% endfor %}{{ '\\nTo call one, reply <tool_call>{\"name\": NAME, \"arguments\": {...}}</tool_call><|im_end"
         "|>\\n' }}{% endif %}{% for message in messages %}{% if tools and loop.first and message['role'] == 'system' %}"
         "{% elif message['role'] == 'assistant' and message['tool_calls'] %}{{ '<|im_start|>assistant\\n' }}{% if messa"
         "ge['content'] %}{{ message['content'] }}{% endif %}{% for call in message['tool_calls'] %}{{ '\\n<tool_call>\\n"
         "{\"name\": \"' + call['function']['name'] + '\", \"arguments\": ' + (call['function']['arguments'] | tojson) +"
         " '}\\n</tool_call>' }}{% endfor %}{{ '<|im_end|>\\n' }}{% else %}{{ '<|im_start|>' + message['role'] + '\\n' +"
         " message['content'] + '<|im_end|>' + '\\n' }}{% endif %}{% endfor %}{% if add_generation_prompt %}{{ '<|im_sta"
         "rt|>assistant\\n' }}{% endif %}"}};
    return j.dump(1) + "\n";
}

}  // namespace llmforge
