// llmforge init-model: writes a random-weight Llama/Qwen2 GGUF of any shape, with a synthetic
// SentencePiece vocabulary, for benchmarks and tests. Weights are N(0, 0.02²) (norms 1), drawn
// from a counter-based generator so every row is reproducible from (seed, tensor, row) and rows
// can be produced in parallel.
#include <cmath>
#include <cstdio>
#include <set>

#include "commands.h"
#include "core/error.h"
#include "gguf_export.h"

namespace llmforge::cli {

namespace {

uint64_t splitmix(uint64_t& s) {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
uint64_t hash_name(const std::string& s) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

// <unk>, <s>, </s>, the 256 byte tokens, then distinct lowercase pieces ("▁" + letters).
Vocab synthetic_vocab(int64_t n, uint64_t seed) {
    Vocab v;
    v.model = "llama";
    v.pre = "default";
    auto add = [&](std::string t, float score, TokenType ty) {
        v.tokens.push_back(std::move(t));
        v.scores.push_back(score);
        v.types.push_back(ty);
    };
    add("<unk>", 0, TokenType::kUnknown);
    add("<s>", 0, TokenType::kControl);
    add("</s>", 0, TokenType::kControl);
    for (int b = 0; b < 256 && static_cast<int64_t>(v.tokens.size()) < n; ++b) {
        char buf[8];
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        add(buf, 0, TokenType::kByte);
    }
    std::set<std::string> seen;
    uint64_t s = seed;
    const char* letters = "etaoinshrdlucmfwypvbgkjqxz";
    for (int c = 0; c < 26 && static_cast<int64_t>(v.tokens.size()) < n; ++c) {
        std::string one(1, letters[c]);
        seen.insert(one);
        add(one, -1000.0f - c, TokenType::kNormal);
    }
    while (static_cast<int64_t>(v.tokens.size()) < n) {
        const int len = 1 + static_cast<int>(splitmix(s) % 7);
        std::string p = (splitmix(s) % 3 != 0) ? "\xE2\x96\x81" : "";
        for (int i = 0; i < len; ++i) p += letters[splitmix(s) % (i == 0 ? 26 : 12)];
        if (!seen.insert(p).second) continue;
        add(p, -static_cast<float>(v.tokens.size()), TokenType::kNormal);
    }
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.add_bos = true;
    return v;
}

}  // namespace

void add_init_model(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("init-model", "Write a random-weight model (benchmarks, tests)");
    static ModelConfig c;
    static std::string out, type = "f32";
    static uint64_t seed = 1;
    static int threads = 0;
    static bool tied = false;
    c.n_head_kv = 0;
    sub->add_option("--arch", c.arch, "llama|qwen2")->capture_default_str()->check(CLI::IsMember({"llama", "qwen2"}));
    sub->add_option("--dim", c.n_embd, "embedding size")->required()->check(CLI::Range(2, 1 << 16));
    sub->add_option("--layers", c.n_layer, "layers")->required()->check(CLI::Range(1, 1024));
    sub->add_option("--heads", c.n_head, "attention heads")->required()->check(CLI::Range(1, 1024));
    sub->add_option("--kv-heads", c.n_head_kv, "kv heads (default: heads)")->check(CLI::Range(1, 1024));
    sub->add_option("--ffn", c.n_ff, "FFN hidden size")->required()->check(CLI::Range(1, 1 << 20));
    sub->add_option("--vocab", c.n_vocab, "vocabulary size (>= 290)")->required()->check(CLI::Range(290, 1 << 22));
    sub->add_option("--ctx", c.n_ctx_train, "training context length")->capture_default_str();
    sub->add_option("--rope-theta", c.rope_theta, "RoPE base")->capture_default_str();
    sub->add_option("--type", type, "f32|f16|bf16|q8_0|q4_0|q4_k|q6_k")->capture_default_str();
    sub->add_flag("--tied", tied, "tie output and token embeddings");
    sub->add_option("--seed", seed, "random seed")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("-o,--out", out, "output .gguf")->required();
    run = [] {
        const DType requested = dtype_from_name(type);
        ModelConfig cfg = c;
        if (cfg.n_head_kv == 0) cfg.n_head_kv = cfg.n_head;
        if (cfg.n_embd % cfg.n_head != 0)
            fail("init-model: --dim %lld is not a multiple of --heads %lld", (long long)cfg.n_embd, (long long)cfg.n_head);
        if (cfg.n_head % cfg.n_head_kv != 0)
            fail("init-model: --heads %lld is not a multiple of --kv-heads %lld", (long long)cfg.n_head,
                 (long long)cfg.n_head_kv);
        cfg.head_dim = cfg.n_embd / cfg.n_head;
        if (cfg.head_dim % 2 != 0) fail("init-model: head size %lld must be even", (long long)cfg.head_dim);
        cfg.rope_interleaved = cfg.arch == "llama";
        cfg.qkv_bias = cfg.arch == "qwen2";
        cfg.tied_embeddings = tied;
        cfg.name = "llmforge-random-" + cfg.arch;
        const int64_t C = cfg.n_embd, D = cfg.head_dim, F = cfg.n_ff, V = cfg.n_vocab;
        const int64_t Hq = cfg.n_head * D, Hk = cfg.n_head_kv * D;
        std::vector<ExportTensor> ts;
        auto add = [&](const std::string& name, std::vector<int64_t> shape, float stddev, float mean) {
            ExportTensor e;
            e.name = name;
            e.shape = shape;
            std::string note;
            e.dtype = export_dtype(name, shape, requested, &note);
            if (!note.empty()) std::fprintf(stderr, "init-model: note: %s\n", note.c_str());
            const uint64_t base = hash_name(name) ^ (seed * 0x9E3779B97F4A7C15ull);
            const int64_t cols = shape.back();
            e.row = [=](int64_t r, float* dst) {
                uint64_t s = base + static_cast<uint64_t>(r) * 0xD1B54A32D192ED03ull;
                for (int64_t i = 0; i < cols; i += 2) {  // Box-Muller pairs
                    const double u1 = (static_cast<double>(splitmix(s) >> 11) + 1.0) / 9007199254740993.0;
                    const double u2 = static_cast<double>(splitmix(s) >> 11) / 9007199254740992.0;
                    const double m = std::sqrt(-2.0 * std::log(u1));
                    dst[i] = mean + stddev * static_cast<float>(m * std::cos(2 * M_PI * u2));
                    if (i + 1 < cols) dst[i + 1] = mean + stddev * static_cast<float>(m * std::sin(2 * M_PI * u2));
                }
            };
            ts.push_back(std::move(e));
        };
        add("token_embd.weight", {V, C}, 0.02f, 0);
        add("output_norm.weight", {C}, 0, 1);
        if (!tied) add("output.weight", {V, C}, 0.02f, 0);
        for (int64_t l = 0; l < cfg.n_layer; ++l) {
            const std::string p = "blk." + std::to_string(l) + ".";
            add(p + "attn_norm.weight", {C}, 0, 1);
            add(p + "attn_q.weight", {Hq, C}, 0.02f, 0);
            add(p + "attn_k.weight", {Hk, C}, 0.02f, 0);
            add(p + "attn_v.weight", {Hk, C}, 0.02f, 0);
            if (cfg.qkv_bias) {
                add(p + "attn_q.bias", {Hq}, 0.02f, 0);
                add(p + "attn_k.bias", {Hk}, 0.02f, 0);
                add(p + "attn_v.bias", {Hk}, 0.02f, 0);
            }
            add(p + "attn_output.weight", {C, Hq}, 0.02f, 0);
            add(p + "ffn_norm.weight", {C}, 0, 1);
            add(p + "ffn_gate.weight", {F, C}, 0.02f, 0);
            add(p + "ffn_up.weight", {F, C}, 0.02f, 0);
            add(p + "ffn_down.weight", {C, F}, 0.02f, 0);
        }
        export_gguf(out, cfg, synthetic_vocab(V, seed), requested, std::move(ts), threads, "init-model");
        return 0;
    };
}

}  // namespace llmforge::cli
