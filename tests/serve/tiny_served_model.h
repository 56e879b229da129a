// Test-only: a tiny model as the server serves it, built in process (no files), for the request
// parser tests and the server's fuzz targets. 264 tokens: <unk> <s> </s> ▁ a ▁a <|im_start|>
// <|im_end|> and the 256 byte tokens (SentencePiece with byte fallback), a ChatML template, and
// optionally a 1-layer Llama with zero (or seeded random) weights (C=8, 2 heads, 1 KV head, FFN 16)
// so an Engine can really generate with it.
#pragma once

#include <cstdio>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "model/model.h"
#include "serve/engine.h"

namespace llmforge::test {

inline Vocab tiny_chatml_vocab() {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a", "<|im_start|>", "<|im_end|>"};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
               TokenType::kNormal,  TokenType::kNormal,  TokenType::kUserDefined, TokenType::kUserDefined};
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        v.tokens.push_back(name);
        v.types.push_back(TokenType::kByte);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(-static_cast<float>(i));
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

// The vocabulary's model: a zero-weight Llama (every logit equal, so greedy picks token 0); with
// seed != 0 every weight ~ N(0, 0.5²) instead (outputs that depend on every input row), the norms'
// weights 1.
inline std::unique_ptr<Model> tiny_zero_model(const Vocab& v, uint64_t seed = 0) {
    ModelFiles f;
    f.path = "tiny";
    f.format = "gguf";
    ModelConfig& c = f.config;
    c.n_vocab = static_cast<int64_t>(v.tokens.size());
    c.n_embd = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 4;
    c.n_ff = 16;
    c.n_ctx_train = 64;
    f.vocab = v;
    const int64_t C = c.n_embd, Hq = c.n_head * c.head_dim, Hk = c.n_head_kv * c.head_dim;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
        {"token_embd.weight", {c.n_vocab, C}},  {"output_norm.weight", {C}},
        {"output.weight", {c.n_vocab, C}},      {"blk.0.attn_norm.weight", {C}},
        {"blk.0.attn_q.weight", {Hq, C}},       {"blk.0.attn_k.weight", {Hk, C}},
        {"blk.0.attn_v.weight", {Hk, C}},       {"blk.0.attn_output.weight", {C, Hq}},
        {"blk.0.ffn_norm.weight", {C}},         {"blk.0.ffn_gate.weight", {c.n_ff, C}},
        {"blk.0.ffn_up.weight", {c.n_ff, C}},   {"blk.0.ffn_down.weight", {C, c.n_ff}},
    };
    std::mt19937_64 g(seed);
    std::normal_distribution<float> d(0.0f, 0.5f);
    for (const auto& [name, shape] : shapes) {  // in the list's order: the same weights every run
        Tensor t = Tensor::empty(DType::F32, shape, name);
        if (seed != 0) {
            const bool norm = name.find("norm") != std::string::npos;
            float* p = t.ptr<float>();
            for (int64_t i = 0; i < t.numel(); ++i) p[i] = norm ? 1.0f : d(g);
        }
        f.tensors[name] = std::move(t);
    }
    return Model::from_files(std::move(f));
}

inline std::shared_ptr<serve::ServedModel> tiny_served_model(bool with_weights) {
    const Vocab v = tiny_chatml_vocab();
    auto m = std::make_shared<serve::ServedModel>();
    m->id = "tiny";
    m->path = "tiny";
    if (with_weights) m->model = tiny_zero_model(v);
    m->tokenizer = Tokenizer::create(v);
    m->chat_template.emplace(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "tiny");
    m->extra_stops = {"<|im_end|>"};
    return m;
}

}  // namespace llmforge::test
