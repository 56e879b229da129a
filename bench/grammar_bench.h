// What bench_grammar and bench_python_grammar share: reading a file, per-token statistics,
// cutting a document into tokens as a model would write it, the random-logit candidates the
// stage masks, and the model's decode step the constraint is compared with.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/error.h"
#include "model/model.h"
#include "runtime/context.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::bench {

using Clock = std::chrono::steady_clock;

inline double us_since(Clock::time_point t) {
    return std::chrono::duration<double, std::micro>(Clock::now() - t).count();
}

// The whole file; `who` prefixes the error.
inline std::string read_text(const std::string& path, const char* who) {
    FILE* f = std::fopen(path.c_str(), "rb");
    if (!f) fail("%s: cannot open '%s'", who, path.c_str());
    std::string s;
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) s.append(buf, n);
    std::fclose(f);
    return s;
}

struct Stats {
    double mean = 0, p50 = 0, p99 = 0, max = 0;
};

inline Stats stats(std::vector<double> v) {
    Stats s;
    if (v.empty()) return s;
    std::sort(v.begin(), v.end());
    for (double x : v) s.mean += x;
    s.mean /= static_cast<double>(v.size());
    s.p50 = v[v.size() / 2];
    s.p99 = v[std::min(v.size() - 1, v.size() * 99 / 100)];
    s.max = v.back();
    return s;
}

// Longest-piece-first cut of `text` into token ids (as a model's output would be).
inline std::vector<int32_t> cut(const Tokenizer& tok, const std::string& text, const char* who) {
    std::unordered_map<std::string, int32_t> by_piece;
    size_t max_len = 0;
    for (int32_t id = 0; id < tok.n_vocab(); ++id) {
        if (tok.is_hidden(id) || tok.is_eog(id)) continue;
        const std::string p = tok.token_to_piece(id);
        if (p.empty()) continue;
        by_piece.emplace(p, id);
        max_len = std::max(max_len, p.size());
    }
    std::vector<int32_t> out;
    for (size_t i = 0; i < text.size();) {
        size_t len = std::min(max_len, text.size() - i);
        for (; len > 0; --len) {
            auto it = by_piece.find(text.substr(i, len));
            if (it != by_piece.end()) {
                out.push_back(it->second);
                break;
            }
        }
        if (len == 0) fail("%s: no token spells byte 0x%02X", who, static_cast<uint8_t>(text[i]));
        i += len;
    }
    return out;
}

// Every token of a V-token vocabulary with a random logit (seeded), in id order.
inline Candidates all_candidates(int32_t V) {
    Candidates all;
    std::mt19937 rng(1);
    std::normal_distribution<float> nd(0, 2);
    for (int32_t i = 0; i < V; ++i) all.items.push_back({i, nd(rng), 0});
    return all;
}

// p50 of Context::decode of one token after a 16-token prompt, 1 thread (printed with the mean).
inline double decode_step_ms(const std::string& model_path, int steps) {
    auto model = Model::load(model_path);
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_batch = 256;
    cp.n_threads = 1;
    Context ctx(*model, cp);
    std::vector<int32_t> prompt(16, 100);
    ctx.decode(prompt);
    std::vector<double> ms;
    for (int s = 0; s < steps; ++s) {
        const auto a = Clock::now();
        ctx.decode({static_cast<int32_t>(200 + s)});
        ms.push_back(us_since(a) / 1000.0);
    }
    const Stats st = stats(ms);
    std::printf("decode step (1 thread, %s): mean %.2f ms, p50 %.2f ms over %d steps\n", model_path.c_str(), st.mean,
                st.p50, steps);
    return st.p50;
}

}  // namespace llmforge::bench
