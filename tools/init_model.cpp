// llmforge init-model: writes a random-weight GGUF of any registered architecture and shape, with
// a synthetic SentencePiece vocabulary, for benchmarks and tests. Tensors come from the arch's
// table and the project's one init rule (model/arch/arch.h init_tensor: every row reproducible
// from (seed, tensor, row), so rows are produced in parallel).
#include <cmath>
#include <cstdio>
#include <set>

#include "commands.h"
#include "core/error.h"
#include "core/random.h"
#include "model/arch/arch.h"
#include "model/hf_config.h"
#include "model/vocab_source.h"
#include "gguf_export.h"

namespace llmforge::cli {

namespace {

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
        const int len = 1 + static_cast<int>(splitmix64(s) % 7);
        std::string p = (splitmix64(s) % 3 != 0) ? "\xE2\x96\x81" : "";
        for (int i = 0; i < len; ++i) p += letters[splitmix64(s) % (i == 0 ? 26 : 12)];
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
    static std::string out, type = "f32", vocab_from, hf_config;
    static uint64_t seed = 1;
    static int threads = 0;
    static bool tied = false;
    c.n_head_kv = 0;
    sub->add_option("--arch", c.arch, "llama|qwen2|qwen3|mistral")->capture_default_str()->check(CLI::IsMember({"llama", "qwen2", "qwen3", "mistral"}));
    sub->add_option("--head-dim", c.head_dim, "head size (default: dim / heads)")->check(CLI::Range(2, 1 << 12));
    sub->add_option("--sliding-window", c.sliding_window, "mistral: attention window (0: none)")->check(CLI::Range(0, 1 << 30));
    sub->add_option("--dim", c.n_embd, "embedding size")->check(CLI::Range(2, 1 << 16));
    sub->add_option("--layers", c.n_layer, "layers")->check(CLI::Range(1, 1024));
    sub->add_option("--heads", c.n_head, "attention heads")->check(CLI::Range(1, 1024));
    sub->add_option("--kv-heads", c.n_head_kv, "kv heads (default: heads)")->check(CLI::Range(1, 1024));
    sub->add_option("--ffn", c.n_ff, "FFN hidden size")->check(CLI::Range(1, 1 << 20));
    sub->add_option("--vocab", c.n_vocab, "vocabulary size (>= 290)")->check(CLI::Range(290, 1 << 22));
    sub->add_option("--ctx", c.n_ctx_train, "training context length")->capture_default_str();
    sub->add_option("--rope-theta", c.rope_theta, "RoPE base")->capture_default_str();
    sub->add_option("--type", type, "f32|f16|bf16|q8_0|q4_0|q4_1|q5_0|q5_1|q2_k|q3_k|q4_k|q5_k|q6_k")->capture_default_str();
    sub->add_flag("--tied", tied, "tie output and token embeddings");
    sub->add_option("--seed", seed, "random seed")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("-o,--out", out, "output .gguf")->required();
    sub->add_option("--hf-config", hf_config,
                    "every hyper-parameter from a Hugging Face config.json (any supported model_type, e.g. "
                    "deepseek_v2 / deepseek_v3) instead of --arch/--dim/--layers/--heads/--ffn/--vocab")
        ->check(CLI::ExistingFile);
    sub->add_option("--vocab-from", vocab_from,
                    "take the vocabulary from this file (a GGUF, tokenizer.json, ...) instead of a synthetic one; "
                    "--vocab must equal its size");
    run = [] {
        const DType requested = dtype_from_name(type);
        ModelConfig cfg = c;
        if (!hf_config.empty()) {
            cfg = hf_config_read(hf_config);
            const Arch& a = arch_of(cfg.arch, hf_config);
            cfg.rope_interleaved = a.gguf_rope_interleaved;
            cfg.qkv_bias = cfg.qkv_bias || a.qkv_bias;
            tied = cfg.tied_embeddings;
        } else if (cfg.n_embd == 0 || cfg.n_layer == 0 || cfg.n_head == 0 || cfg.n_ff == 0 || cfg.n_vocab == 0) {
            fail("init-model: --dim, --layers, --heads, --ffn and --vocab are required (or --hf-config FILE)");
        }
        if (cfg.n_head_kv == 0) cfg.n_head_kv = cfg.n_head;
        if (cfg.head_dim == 0 && cfg.n_embd % cfg.n_head != 0)
            fail("init-model: --dim %lld is not a multiple of --heads %lld", (long long)cfg.n_embd, (long long)cfg.n_head);
        if (cfg.n_head % cfg.n_head_kv != 0)
            fail("init-model: --heads %lld is not a multiple of --kv-heads %lld", (long long)cfg.n_head,
                 (long long)cfg.n_head_kv);
        if (cfg.head_dim == 0) cfg.head_dim = cfg.n_embd / cfg.n_head;
        if (cfg.head_dim % 2 != 0) fail("init-model: head size %lld must be even", (long long)cfg.head_dim);
        const Arch& arch = arch_of(cfg.arch, "init-model");
        cfg.rope_interleaved = arch.gguf_rope_interleaved;
        if (hf_config.empty()) cfg.qkv_bias = arch.qkv_bias;
        cfg.tied_embeddings = tied;
        if (cfg.name.empty() || hf_config.empty()) cfg.name = "llmforge-random-" + cfg.arch;
        arch.validate(cfg, "init-model");
        const int64_t V = cfg.n_vocab;
        // The arch's tensor table and the project's one init rule (model/arch/arch.h init_tensor).
        std::vector<ExportTensor> ts;
        for (const NamedSpec& ns : tensor_list(arch, cfg, false)) {
            ExportTensor e;
            e.name = ns.name;
            e.shape = ns.shape;
            std::string note;
            e.dtype = export_dtype(ns.name, ns.shape, requested, &note);
            if (!note.empty()) std::fprintf(stderr, "init-model: note: %s\n", note.c_str());
            const TensorSpec* spec = ns.spec;
            const ModelConfig mc = cfg;
            const std::string name = ns.name;
            const std::vector<int64_t> shape = ns.shape;
            e.row = [spec, mc, name, shape](int64_t r, float* dst) { init_tensor(*spec, mc, name, shape, seed, r, dst); };
            ts.push_back(std::move(e));
        }
        Vocab vocab;
        if (vocab_from.empty()) {
            vocab = synthetic_vocab(V, seed);
        } else {
            vocab = load_vocab(vocab_from);
            if (static_cast<int64_t>(vocab.tokens.size()) != V)
                fail("init-model: --vocab-from '%s' has %zu tokens but --vocab is %lld (hint: --vocab %zu)",
                     vocab_from.c_str(), vocab.tokens.size(), static_cast<long long>(V), vocab.tokens.size());
        }
        export_gguf(out, cfg, vocab, requested, std::move(ts), threads, "init-model");
        return 0;
    };
}

}  // namespace llmforge::cli
