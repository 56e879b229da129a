// llamacpp_logits MODEL.gguf "ID ID ..." OUT.f32 [THREADS]: llama.cpp's raw float32 logits of every
// position of the given token ids (row-major (n_ids, vocab), little-endian) -- the same layout
// `llmforge logits -o` writes, so the two files compare byte range for byte range.
// The K/V cache is f32 unless LLAMACPP_LOGITS_KV=f16. LLAMACPP_LOGITS_LORA=A.gguf applies a GGUF
// LoRA adapter (llama.cpp's --lora, scale 1).
// Exactly the ids given run, in one batch from an empty cache at position 0 (no BOS added).
// Not part of the project's build: compiled against /work/llamacpp-build's libllama.so by
// bench/build_llamacpp_logits.sh (tests/data/deepseek/make_fixtures.sh uses it).
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "llama.h"

static void quiet(enum ggml_log_level level, const char* text, void*) {
    if (level >= GGML_LOG_LEVEL_WARN || std::getenv("LLAMACPP_LOGITS_VERBOSE")) std::fputs(text, stderr);
}

int main(int argc, char** argv) {
    if (argc < 4) {
        std::fprintf(stderr, "usage: %s MODEL.gguf \"ID ID ...\" OUT.f32 [THREADS]\n", argv[0]);
        return 2;
    }
    std::vector<llama_token> ids;
    for (const char* p = argv[2]; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n') ++p;
        if (!*p) break;
        char* end = nullptr;
        const long v = std::strtol(p, &end, 10);
        if (end == p) {
            std::fprintf(stderr, "llamacpp_logits: '%s' is not a list of token ids\n", argv[2]);
            return 2;
        }
        ids.push_back(static_cast<llama_token>(v));
        p = end;
    }
    if (ids.empty()) {
        std::fprintf(stderr, "llamacpp_logits: no token ids given\n");
        return 2;
    }
    const int threads = argc > 4 ? std::atoi(argv[4]) : 1;
    llama_log_set(quiet, nullptr);
    llama_backend_init();
    llama_model_params mp = llama_model_default_params();
    mp.n_gpu_layers = 0;
    llama_model* model = llama_model_load_from_file(argv[1], mp);
    if (!model) {
        std::fprintf(stderr, "llamacpp_logits: llama.cpp could not load %s\n", argv[1]);
        return 1;
    }
    const llama_vocab* vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);
    for (size_t i = 0; i < ids.size(); ++i)
        if (ids[i] < 0 || ids[i] >= n_vocab) {
            std::fprintf(stderr, "llamacpp_logits: id %d (item %zu) out of range (vocab %d)\n", ids[i], i + 1,
                         n_vocab);
            return 2;
        }
    llama_context_params cp = llama_context_default_params();
    const uint32_t n = static_cast<uint32_t>(ids.size());
    cp.n_ctx = n < 32 ? 32 : n;
    cp.n_batch = cp.n_ctx;
    cp.n_ubatch = cp.n_ctx;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    // f32 K/V cache (llama.cpp's default is f16, which alone costs ~1e-4 relative in the logits);
    // LLAMACPP_LOGITS_KV=f16 keeps llama.cpp's default.
    const char* kv = std::getenv("LLAMACPP_LOGITS_KV");
    if (!kv || std::strcmp(kv, "f16") != 0) cp.type_k = cp.type_v = GGML_TYPE_F32;
    llama_context* ctx = llama_init_from_model(model, cp);
    if (!ctx) {
        std::fprintf(stderr, "llamacpp_logits: could not create a context\n");
        return 1;
    }
    if (const char* lora = std::getenv("LLAMACPP_LOGITS_LORA"); lora && *lora) {
        llama_adapter_lora* ad = llama_adapter_lora_init(model, lora);
        if (!ad || llama_set_adapter_lora(ctx, ad, 1.0f) != 0) {
            std::fprintf(stderr, "llamacpp_logits: llama.cpp could not apply the LoRA adapter %s\n", lora);
            return 1;
        }
    }
    llama_batch batch = llama_batch_init(static_cast<int32_t>(n), 0, 1);
    for (uint32_t i = 0; i < n; ++i) {
        batch.token[i] = ids[i];
        batch.pos[i] = static_cast<llama_pos>(i);
        batch.n_seq_id[i] = 1;
        batch.seq_id[i][0] = 0;
        batch.logits[i] = 1;
    }
    batch.n_tokens = static_cast<int32_t>(n);
    if (llama_decode(ctx, batch) != 0) {
        std::fprintf(stderr, "llamacpp_logits: llama_decode failed\n");
        return 1;
    }
    FILE* f = std::fopen(argv[3], "wb");
    if (!f) {
        std::fprintf(stderr, "llamacpp_logits: cannot write %s\n", argv[3]);
        return 1;
    }
    for (uint32_t i = 0; i < n; ++i) {
        const float* row = llama_get_logits_ith(ctx, static_cast<int32_t>(i));
        if (std::fwrite(row, sizeof(float), static_cast<size_t>(n_vocab), f) != static_cast<size_t>(n_vocab)) {
            std::fprintf(stderr, "llamacpp_logits: write failed\n");
            return 1;
        }
    }
    std::fclose(f);
    std::fprintf(stderr, "llamacpp_logits: wrote %s (%u x %d float32)\n", argv[3], n, n_vocab);
    llama_batch_free(batch);
    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
