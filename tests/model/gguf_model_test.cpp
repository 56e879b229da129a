// GGUF <-> ModelConfig / Vocab: the fixture, llama.cpp vocab files, and write -> read round trips.
#include "model/gguf_model.h"
#include "model/arch/arch.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/io_test_helpers.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

TEST(GgufModel, FixtureConfigAndVocab) {
    LF_REQUIRE_ASSET(path, "gguf-fixtures/llama-2-tiny-random.gguf");
    GgufFile f(path);
    ModelConfig c = gguf_read_config(f);
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.name, "LLaMA v2");
    EXPECT_EQ(c.n_embd, 8);
    EXPECT_EQ(c.n_layer, 1);
    EXPECT_EQ(c.n_head, 2);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 4);
    EXPECT_EQ(c.n_ff, 32);
    EXPECT_EQ(c.n_vocab, 32000);  // from the token list (no llama.vocab_size)
    EXPECT_EQ(c.n_ctx_train, 4096);
    EXPECT_NEAR(c.rms_eps, 1e-5f, 1e-12f);
    EXPECT_FLOAT_EQ(c.rope_theta, 10000.0f);
    EXPECT_TRUE(c.rope_interleaved);
    EXPECT_FALSE(c.tied_embeddings);  // output.weight is present
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);

    Vocab v = gguf_read_vocab(f);
    EXPECT_EQ(v.model, "llama");
    EXPECT_EQ(v.pre, "");
    ASSERT_EQ(v.tokens.size(), 32000u);
    EXPECT_EQ(v.scores.size(), 32000u);
    ASSERT_EQ(v.types.size(), 32000u);
    EXPECT_EQ(v.types[0], TokenType::kUnknown);
    EXPECT_EQ(v.types[1], TokenType::kControl);
    EXPECT_EQ(v.types[3], TokenType::kByte);  // <0x00>
    EXPECT_EQ(v.tokens[3], "<0x00>");
    EXPECT_EQ(v.bos_id, 1);
    EXPECT_EQ(v.eos_id, 2);
    EXPECT_EQ(v.unk_id, 0);
    EXPECT_EQ(v.pad_id, -1);
    EXPECT_TRUE(v.add_bos);  // SentencePiece default
    EXPECT_FALSE(v.add_eos);
    EXPECT_TRUE(v.add_space_prefix);
    EXPECT_TRUE(v.merges.empty());
}

TEST(GgufModel, LlamaCppVocabFiles) {
    const std::string dir = test::asset("llama.cpp-vocab");
    if (dir.empty()) GTEST_SKIP() << "asset missing: llama.cpp-vocab";
    struct Want {
        const char* file;
        const char* model;
        const char* pre;
        size_t n_tokens;
        int32_t bos, eos;
        bool add_bos, space_prefix;
        bool llama_arch;
    };
    const Want want[] = {
        {"ggml-vocab-llama-spm.gguf", "llama", "default", 32000, 1, 2, true, true, true},
        {"ggml-vocab-deepseek-llm.gguf", "gpt2", "deepseek-llm", 102400, 100000, 100001, true, false, true},
        {"ggml-vocab-gpt-2.gguf", "gpt2", "gpt-2", 50257, 50256, 50256, false, false, false},
        {"ggml-vocab-phi-3.gguf", "llama", "default", 32064, 1, 32000, true, true, false},
        {"ggml-vocab-bert-bge.gguf", "bert", "bert-bge", 30522, 101, 102, true, false, false},  // [CLS], [SEP]
        {"ggml-vocab-falcon.gguf", "gpt2", "falcon", 65024, 11, 11, false, false, false},
    };
    for (const Want& w : want) {
        SCOPED_TRACE(w.file);
        const std::string p = dir + "/" + w.file;
        if (!fs::exists(p)) {
            ADD_FAILURE() << "missing " << p;
            continue;
        }
        GgufFile f(p);
        Vocab v = gguf_read_vocab(f);
        EXPECT_EQ(v.model, w.model);
        EXPECT_EQ(v.pre, w.pre);
        EXPECT_EQ(v.tokens.size(), w.n_tokens);
        EXPECT_EQ(v.bos_id, w.bos);
        EXPECT_EQ(v.eos_id, w.eos);
        EXPECT_EQ(v.add_bos, w.add_bos);
        EXPECT_EQ(v.add_space_prefix, w.space_prefix);
        if (v.model == "gpt2") {
            EXPECT_GT(v.merges.size(), 40000u);
        }
        if (w.llama_arch) {
            ModelConfig c = gguf_read_config(f);
            EXPECT_EQ(c.n_embd, 4096);
            EXPECT_EQ(c.head_dim, 128);
            EXPECT_EQ(c.n_vocab, static_cast<int64_t>(w.n_tokens));
        } else {
            EXPECT_LF_ERROR(gguf_read_config(f), {p, "is not supported", "supported: llama, qwen2"});
        }
    }
    // The phi-3 chat template is read.
    GgufFile phi(dir + "/ggml-vocab-phi-3.gguf");
    EXPECT_NE(gguf_read_vocab(phi).chat_template.find("<|user|>"), std::string::npos);
    // Every vocab file yields a vocabulary.
    for (const auto& e : fs::directory_iterator(dir)) {
        if (e.path().extension() != ".gguf") continue;
        SCOPED_TRACE(e.path().string());
        GgufFile f(e.path().string());
        EXPECT_FALSE(gguf_read_vocab(f).empty());
    }
}

ModelConfig small_config(const std::string& arch) {
    ModelConfig c;
    c.arch = arch;
    c.name = "tiny-" + arch;
    c.n_vocab = 10;
    c.n_embd = 16;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 4;
    c.n_ff = 40;
    c.n_ctx_train = 256;
    c.rms_eps = 1e-6f;
    c.rope_theta = 500000.0f;
    c.rope_interleaved = arch == "llama";
    return c;
}

Vocab small_vocab() {
    Vocab v;
    v.model = "gpt2";
    v.pre = "llama-bpe";
    v.tokens = {"a", "b", "c", "ab", "bc", "abc", "<|begin|>", "<|end|>", "<pad>", "\xc4\xa0"};
    v.types = {TokenType::kNormal, TokenType::kNormal, TokenType::kNormal, TokenType::kNormal,
               TokenType::kNormal, TokenType::kNormal, TokenType::kControl, TokenType::kControl,
               TokenType::kUserDefined, TokenType::kByte};
    v.scores = {0, -1, -2, -3, -4, -5, 0, 0, 0, -6};
    v.merges = {"a b", "b c", "ab c"};
    v.bos_id = 6;
    v.eos_id = 7;
    v.pad_id = 8;
    v.unk_id = -1;
    v.add_bos = true;
    v.add_eos = true;
    v.add_space_prefix = false;
    v.chat_template = "{% for m in messages %}{{ m.content }}{% endfor %}";
    return v;
}

void expect_same(const ModelConfig& a, const ModelConfig& b) {
    EXPECT_EQ(a.arch, b.arch);
    EXPECT_EQ(a.name, b.name);
    EXPECT_EQ(a.n_vocab, b.n_vocab);
    EXPECT_EQ(a.n_embd, b.n_embd);
    EXPECT_EQ(a.n_layer, b.n_layer);
    EXPECT_EQ(a.n_head, b.n_head);
    EXPECT_EQ(a.n_head_kv, b.n_head_kv);
    EXPECT_EQ(a.head_dim, b.head_dim);
    EXPECT_EQ(a.v_dim(), b.v_dim());
    EXPECT_EQ(a.sliding_window, b.sliding_window);
    EXPECT_EQ(a.n_ff, b.n_ff);
    EXPECT_EQ(a.n_ctx_train, b.n_ctx_train);
    EXPECT_EQ(a.rms_eps, b.rms_eps);
    EXPECT_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rope_interleaved, b.rope_interleaved);
    EXPECT_EQ(a.rope_scaling, b.rope_scaling);
    if (a.rope_scaling != RopeScaling::kNone) {
        EXPECT_EQ(a.rope_factor, b.rope_factor);
    }
    if (a.rope_scaling == RopeScaling::kLlama3) {
        EXPECT_EQ(a.rope_low_freq_factor, b.rope_low_freq_factor);
        EXPECT_EQ(a.rope_high_freq_factor, b.rope_high_freq_factor);
    }
    if (a.rope_scaling == RopeScaling::kLlama3 || a.rope_scaling == RopeScaling::kYarn) {
        EXPECT_EQ(a.rope_orig_ctx, b.rope_orig_ctx);
    }
    if (a.rope_scaling == RopeScaling::kYarn) {
        EXPECT_EQ(a.yarn_attn_factor, b.yarn_attn_factor);
        EXPECT_EQ(a.yarn_beta_fast, b.yarn_beta_fast);
        EXPECT_EQ(a.yarn_beta_slow, b.yarn_beta_slow);
    }
    EXPECT_EQ(a.tied_embeddings, b.tied_embeddings);
    EXPECT_EQ(a.qkv_bias, b.qkv_bias);
}

TEST(GgufModel, ConfigRoundTrips) {
    const std::string dir = test::temp_dir();
    std::vector<ModelConfig> configs;
    configs.push_back(small_config("llama"));
    {
        ModelConfig c = small_config("llama");
        c.rope_scaling = RopeScaling::kLlama3;
        c.rope_factor = 8;
        c.rope_low_freq_factor = 1;
        c.rope_high_freq_factor = 4;
        c.rope_orig_ctx = 8192;
        c.head_dim = 8;  // != n_embd / n_head: key_length / value_length are written
        configs.push_back(c);
    }
    {
        ModelConfig c = small_config("qwen2");
        c.rope_scaling = RopeScaling::kYarn;
        c.rope_factor = 4;
        c.rope_orig_ctx = 32768;
        c.yarn_attn_factor = 1.5f;
        c.yarn_beta_fast = 16;
        c.qkv_bias = true;
        c.tied_embeddings = true;
        configs.push_back(c);
    }
    {
        ModelConfig c = small_config("qwen2");
        c.rope_scaling = RopeScaling::kLinear;
        c.rope_factor = 2;
        configs.push_back(c);
    }
    {
        ModelConfig c = small_config("mistral");  // its own key: the sliding window
        c.sliding_window = 4096;
        c.head_dim_v = 6;  // values with their own head size: attention.value_length
        configs.push_back(c);
    }
    {
        ModelConfig c = small_config("qwen3");
        c.head_dim = 12;
        configs.push_back(c);
    }
    int i = 0;
    for (const ModelConfig& c : configs) {
        SCOPED_TRACE(i);
        const std::string path = dir + "/c" + std::to_string(i++) + ".gguf";
        GgufWriter w;
        gguf_write_config(w, c);
        // The tensors that decide tied_embeddings / qkv_bias.
        std::vector<float> zeros(c.n_vocab * c.n_embd, 0.0f);
        w.add_tensor("token_embd.weight", DType::F32, {c.n_vocab, c.n_embd}, zeros.data(),
                     zeros.size() * 4);
        if (!c.tied_embeddings) {
            w.add_tensor("output.weight", DType::F32, {c.n_vocab, c.n_embd}, zeros.data(),
                         zeros.size() * 4);
        }
        if (c.qkv_bias) {
            w.add_tensor("blk.0.attn_q.bias", DType::F32, {c.n_head * c.head_dim}, zeros.data(),
                         c.n_head * c.head_dim * 4);
        }
        w.write(path);
        GgufFile f(path);
        expect_same(c, gguf_read_config(f));
        // llama.cpp's key types.
        EXPECT_TRUE(f.find(c.arch + ".context_length")->is<uint32_t>());
        EXPECT_TRUE(f.find(c.arch + ".attention.layer_norm_rms_epsilon")->is<float>());
        EXPECT_TRUE(f.find(c.arch + ".rope.freq_base")->is<float>());
        EXPECT_TRUE(f.find("general.architecture")->is<std::string>());
        if (c.rope_scaling == RopeScaling::kLlama3) {
            // Nothing llama.cpp would misread as linear scaling.
            EXPECT_FALSE(f.has(c.arch + ".rope.scaling.type"));
            EXPECT_FALSE(f.has(c.arch + ".rope.scaling.factor"));
        }
    }
}

TEST(GgufModel, VocabRoundTrips) {
    const std::string path = test::temp_dir() + "/v.gguf";
    const Vocab v = small_vocab();
    GgufWriter w;
    gguf_write_config(w, small_config("llama"));
    gguf_write_vocab(w, v);
    w.write(path);
    GgufFile f(path);
    Vocab r = gguf_read_vocab(f);
    EXPECT_EQ(r.model, v.model);
    EXPECT_EQ(r.pre, v.pre);
    EXPECT_EQ(r.tokens, v.tokens);
    EXPECT_EQ(r.scores, v.scores);
    EXPECT_EQ(r.types, v.types);
    EXPECT_EQ(r.merges, v.merges);
    EXPECT_EQ(r.bos_id, v.bos_id);
    EXPECT_EQ(r.eos_id, v.eos_id);
    EXPECT_EQ(r.unk_id, v.unk_id);
    EXPECT_EQ(r.pad_id, v.pad_id);
    EXPECT_EQ(r.add_bos, v.add_bos);
    EXPECT_EQ(r.add_eos, v.add_eos);
    EXPECT_EQ(r.add_space_prefix, v.add_space_prefix);
    EXPECT_EQ(r.chat_template, v.chat_template);
    // llama.cpp's value types.
    EXPECT_TRUE(f.find("tokenizer.ggml.token_type")->is<std::vector<int32_t>>());
    EXPECT_TRUE(f.find("tokenizer.ggml.scores")->is<std::vector<float>>());
    EXPECT_TRUE(f.find("tokenizer.ggml.bos_token_id")->is<uint32_t>());
    EXPECT_TRUE(f.find("tokenizer.ggml.add_bos_token")->is<bool>());
}

TEST(GgufModel, FixtureRewritesIdentically) {
    // Read the fixture, write config + vocab + tensors with our writer, read back: same config,
    // vocab and tensor bytes; every key both files carry has the same GGUF type.
    LF_REQUIRE_ASSET(path, "gguf-fixtures/llama-2-tiny-random.gguf");
    GgufFile src(path);
    const ModelConfig c = gguf_read_config(src);
    const Vocab v = gguf_read_vocab(src);
    GgufWriter w;
    gguf_write_config(w, c);
    gguf_write_vocab(w, v);
    for (const auto& info : src.tensor_infos()) w.add_tensor(src.tensor(info));
    const std::string out = test::temp_dir() + "/rewritten.gguf";
    w.write(out);
    GgufFile dst(out);
    expect_same(c, gguf_read_config(dst));
    Vocab v2 = gguf_read_vocab(dst);
    EXPECT_EQ(v2.tokens, v.tokens);
    EXPECT_EQ(v2.scores, v.scores);
    EXPECT_EQ(v2.types, v.types);
    ASSERT_EQ(dst.tensor_infos().size(), src.tensor_infos().size());
    for (const auto& info : src.tensor_infos()) {
        SCOPED_TRACE(info.name);
        const GgufTensorInfo* d = dst.find_tensor(info.name);
        ASSERT_NE(d, nullptr);
        EXPECT_EQ(d->dtype, info.dtype);
        EXPECT_EQ(d->shape, info.shape);
        Tensor a = src.tensor(info), b = dst.tensor(*d);
        EXPECT_EQ(std::memcmp(a.data(), b.data(), a.nbytes()), 0);
    }
    for (const auto& kv : src.metadata()) {
        if (const GgufValue* x = dst.find(kv.key)) {
            EXPECT_EQ(x->type_str(), kv.value.type_str()) << kv.key;
        }
    }
}

TEST(GgufModel, RejectsBadMetadata) {
    const std::string dir = test::temp_dir();
    auto write = [&](const std::string& name, const std::function<void(GgufWriter&)>& fill) {
        GgufWriter w;
        fill(w);
        const std::string p = dir + "/" + name;
        w.write(p);
        return p;
    };
    const std::string noarch = write("noarch.gguf", [](GgufWriter& w) { w.set("x", 1); });
    EXPECT_LF_ERROR(gguf_read_config(GgufFile(noarch)), {noarch, "general.architecture", "not found"});
    EXPECT_LF_ERROR(gguf_read_vocab(GgufFile(noarch)), {noarch, "tokenizer.ggml.model", "no vocabulary"});
    const std::string missing = write("missing.gguf", [](GgufWriter& w) {
        w.set("general.architecture", "llama");
        w.set("llama.embedding_length", uint32_t{16});
    });
    EXPECT_LF_ERROR(gguf_read_config(GgufFile(missing)), {missing, "llama.block_count", "not found"});
    const std::string wrong = write("wrongtype.gguf", [](GgufWriter& w) {
        gguf_write_config(w, small_config("llama"));
        w.set("llama.block_count", "two");
    });
    EXPECT_LF_ERROR(gguf_read_config(GgufFile(wrong)), {wrong, "llama.block_count", "string", "integer"});
    const std::string zero = write("zero.gguf", [](GgufWriter& w) {
        gguf_write_config(w, small_config("llama"));
        w.set("llama.attention.head_count", uint32_t{0});
    });
    EXPECT_LF_ERROR(gguf_read_config(GgufFile(zero)), {zero, "llama.attention.head_count", "is 0"});
    const std::string partial = write("partial.gguf", [](GgufWriter& w) {
        gguf_write_config(w, small_config("qwen2"));
        w.set("qwen2.rope.dimension_count", uint32_t{2});
    });
    // Read, then refused by the architecture (DeepSeek's rotate part of each head; Qwen2 does not).
    EXPECT_LF_ERROR(arch_of("qwen2", partial).validate(gguf_read_config(GgufFile(partial)), partial),
                    {partial, "rope.dimension_count is 2", "partial"});
    const std::string longrope = write("longrope.gguf", [](GgufWriter& w) {
        gguf_write_config(w, small_config("llama"));
        w.set("llama.rope.scaling.type", "longrope");
    });
    EXPECT_LF_ERROR(gguf_read_config(GgufFile(longrope)), {longrope, "'longrope'", "none, linear, yarn"});
    const std::string scores = write("scores.gguf", [](GgufWriter& w) {
        w.set("tokenizer.ggml.model", "llama");
        w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b"});
        w.set("tokenizer.ggml.scores", std::vector<float>{1});
    });
    EXPECT_LF_ERROR(gguf_read_vocab(GgufFile(scores)), {scores, "tokenizer.ggml.scores", "1 entries", "expected 2"});
    const std::string nomerges = write("nomerges.gguf", [](GgufWriter& w) {
        w.set("tokenizer.ggml.model", "gpt2");
        w.set("tokenizer.ggml.tokens", std::vector<std::string>{"a", "b"});
    });
    EXPECT_LF_ERROR(gguf_read_vocab(GgufFile(nomerges)), {nomerges, "tokenizer.ggml.merges"});
    // Out-of-range special ids are ignored (as llama.cpp does); the default stays when valid.
    const std::string badid = write("badid.gguf", [](GgufWriter& w) {
        w.set("tokenizer.ggml.model", "llama");
        w.set("tokenizer.ggml.tokens", std::vector<std::string>{"<unk>", "<s>", "</s>"});
        w.set("tokenizer.ggml.bos_token_id", uint32_t{99});
        w.set("tokenizer.ggml.padding_token_id", uint32_t{99});
    });
    Vocab bv = gguf_read_vocab(GgufFile(badid));
    EXPECT_EQ(bv.bos_id, 1);
    EXPECT_EQ(bv.pad_id, -1);
}

TEST(GgufModel, WriterRejectsInconsistentInput) {
    GgufWriter w;
    ModelConfig c = small_config("llama");
    c.rope_interleaved = false;  // an HF checkpoint whose Q/K rows were not permuted
    EXPECT_LF_ERROR(gguf_write_config(w, c), {"llama", "rope_interleaved = false", "permute"});
    ModelConfig q = small_config("qwen2");
    q.rope_interleaved = true;
    EXPECT_LF_ERROR(gguf_write_config(w, q), {"qwen2", "rope_interleaved = true"});
    ModelConfig m = small_config("llama");
    m.arch = "gemma2";  // not registered (model/arch/registry.cpp)
    EXPECT_LF_ERROR(gguf_write_config(w, m), {"'gemma2'", "supported: llama, qwen2, qwen3, mistral"});
    Vocab v = small_vocab();
    v.scores.pop_back();
    EXPECT_LF_ERROR(gguf_write_vocab(w, v), {"9 scores", "10 tokens"});
    v = small_vocab();
    v.bos_id = 10;
    EXPECT_LF_ERROR(gguf_write_vocab(w, v), {"bos_token_id", "10"});
    EXPECT_LF_ERROR(gguf_write_vocab(w, Vocab{}), {"no tokens"});
}

}  // namespace
}  // namespace llmforge
