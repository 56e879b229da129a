// Hugging Face config.json -> ModelConfig on handwritten configs of real models.
#include "model/hf_config.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "io/io_test_helpers.h"
#include "test_util.h"

namespace llmforge {
namespace {

// Meta-Llama-3.1-8B-Instruct's config.json.
const char* kLlama31 = R"({
  "architectures": ["LlamaForCausalLM"],
  "attention_bias": false,
  "attention_dropout": 0.0,
  "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009],
  "hidden_act": "silu",
  "hidden_size": 4096,
  "initializer_range": 0.02,
  "intermediate_size": 14336,
  "max_position_embeddings": 131072,
  "mlp_bias": false,
  "model_type": "llama",
  "num_attention_heads": 32,
  "num_hidden_layers": 32,
  "num_key_value_heads": 8,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-05,
  "rope_scaling": {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
    "rope_type": "llama3"
  },
  "rope_theta": 500000.0,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0",
  "use_cache": true,
  "vocab_size": 128256
})";

// Qwen2.5-0.5B-Instruct's config.json.
const char* kQwen25 = R"({
  "architectures": ["Qwen2ForCausalLM"],
  "attention_dropout": 0.0,
  "bos_token_id": 151643,
  "eos_token_id": 151645,
  "hidden_act": "silu",
  "hidden_size": 896,
  "initializer_range": 0.02,
  "intermediate_size": 4864,
  "max_position_embeddings": 32768,
  "max_window_layers": 21,
  "model_type": "qwen2",
  "num_attention_heads": 14,
  "num_hidden_layers": 24,
  "num_key_value_heads": 2,
  "rms_norm_eps": 1e-06,
  "rope_theta": 1000000.0,
  "sliding_window": 32768,
  "tie_word_embeddings": true,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.43.1",
  "use_cache": true,
  "use_sliding_window": false,
  "vocab_size": 151936
})";

// deepseek-coder-1.3b-instruct's config.json (llama architecture, linear RoPE scaling).
const char* kDeepseekCoder = R"({
  "_name_or_path": "deepseek-ai/deepseek-coder-1.3b-instruct",
  "architectures": ["LlamaForCausalLM"],
  "bos_token_id": 32013,
  "eos_token_id": 32021,
  "hidden_act": "silu",
  "hidden_size": 2048,
  "initializer_range": 0.02,
  "intermediate_size": 5504,
  "max_position_embeddings": 16384,
  "model_type": "llama",
  "num_attention_heads": 16,
  "num_hidden_layers": 24,
  "num_key_value_heads": 16,
  "pretraining_tp": 1,
  "rms_norm_eps": 1e-06,
  "rope_scaling": {"factor": 4.0, "type": "linear"},
  "rope_theta": 100000,
  "tie_word_embeddings": false,
  "torch_dtype": "bfloat16",
  "transformers_version": "4.35.0.dev0",
  "use_cache": true,
  "vocab_size": 32256
})";

TEST(HfConfig, Llama31WithLlama3RopeScaling) {
    ModelConfig c = hf_config_parse(kLlama31, "llama31/config.json");
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.n_embd, 4096);
    EXPECT_EQ(c.n_ff, 14336);
    EXPECT_EQ(c.n_layer, 32);
    EXPECT_EQ(c.n_head, 32);
    EXPECT_EQ(c.n_head_kv, 8);
    EXPECT_EQ(c.head_dim, 128);
    EXPECT_EQ(c.n_vocab, 128256);
    EXPECT_EQ(c.n_ctx_train, 131072);
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
    EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
    EXPECT_FALSE(c.rope_interleaved);  // HF checkpoints are rotate-half
    EXPECT_FALSE(c.tied_embeddings);
    EXPECT_FALSE(c.qkv_bias);
    EXPECT_EQ(c.rope_scaling, RopeScaling::kLlama3);
    EXPECT_FLOAT_EQ(c.rope_factor, 8.0f);
    EXPECT_FLOAT_EQ(c.rope_low_freq_factor, 1.0f);
    EXPECT_FLOAT_EQ(c.rope_high_freq_factor, 4.0f);
    EXPECT_EQ(c.rope_orig_ctx, 8192);
}

TEST(HfConfig, Qwen2TiedWithBias) {
    ModelConfig c = hf_config_parse(kQwen25, "qwen/config.json");
    EXPECT_EQ(c.arch, "qwen2");
    EXPECT_EQ(c.n_embd, 896);
    EXPECT_EQ(c.n_head, 14);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 64);
    EXPECT_EQ(c.n_layer, 24);
    EXPECT_EQ(c.n_ff, 4864);
    EXPECT_EQ(c.n_vocab, 151936);
    EXPECT_EQ(c.n_ctx_train, 32768);
    EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
    EXPECT_FLOAT_EQ(c.rope_theta, 1e6f);
    EXPECT_TRUE(c.tied_embeddings);
    EXPECT_TRUE(c.qkv_bias);
    EXPECT_FALSE(c.rope_interleaved);
    EXPECT_EQ(c.rope_scaling, RopeScaling::kNone);
    // Untied qwen2 (7B-style).
    std::string untied = kQwen25;
    untied.replace(untied.find("\"tie_word_embeddings\": true"), 27, "\"tie_word_embeddings\": false");
    EXPECT_FALSE(hf_config_parse(untied, "q").tied_embeddings);
}

TEST(HfConfig, LinearAndYarnScalingAndDefaults) {
    ModelConfig c = hf_config_parse(kDeepseekCoder, "dsc/config.json");
    EXPECT_EQ(c.name, "deepseek-ai/deepseek-coder-1.3b-instruct");
    EXPECT_EQ(c.rope_scaling, RopeScaling::kLinear);
    EXPECT_FLOAT_EQ(c.rope_factor, 4.0f);
    EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);  // an integer in JSON

    ModelConfig y = hf_config_parse(R"({"model_type": "qwen2", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "vocab_size": 100, "rms_norm_eps": 1e-6, "max_position_embeddings": 32768,
        "num_key_value_heads": null, "head_dim": null,
        "rope_scaling": {"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768,
                         "attention_factor": 1.2}})",
                                    "yarn.json");
    EXPECT_EQ(y.rope_scaling, RopeScaling::kYarn);
    EXPECT_FLOAT_EQ(y.rope_factor, 4.0f);
    EXPECT_EQ(y.rope_orig_ctx, 32768);
    EXPECT_FLOAT_EQ(y.yarn_attn_factor, 1.2f);
    EXPECT_FLOAT_EQ(y.yarn_beta_fast, 32.0f);
    EXPECT_FLOAT_EQ(y.yarn_beta_slow, 1.0f);
    EXPECT_EQ(y.n_head_kv, 4);  // null -> default
    EXPECT_EQ(y.head_dim, 16);
    EXPECT_FLOAT_EQ(y.rope_theta, 10000.0f);
    EXPECT_FALSE(y.tied_embeddings);

    ModelConfig n = hf_config_parse(R"({"model_type": "llama", "hidden_size": 64,
        "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
        "vocab_size": 100, "rms_norm_eps": 1e-6, "max_position_embeddings": 4096,
        "head_dim": 32, "attention_bias": true, "rope_scaling": null})",
                                    "n.json");
    EXPECT_EQ(n.head_dim, 32);
    EXPECT_TRUE(n.qkv_bias);
    EXPECT_EQ(n.rope_scaling, RopeScaling::kNone);
}

TEST(HfConfig, RejectsBadConfigs) {
    std::string missing = kLlama31;
    missing.replace(missing.find("\"num_hidden_layers\""), 19, "\"num_hidden_layerz\"");
    EXPECT_LF_ERROR(hf_config_parse(missing, "m/config.json"),
                    {"m/config.json", "\"num_hidden_layers\"", "missing"});
    std::string gemma = kLlama31;
    gemma.replace(gemma.find("\"llama\""), 7, "\"gemma2\"");  // not registered
    EXPECT_LF_ERROR(hf_config_parse(gemma, "ge/config.json"),
                    {"ge/config.json", "'gemma2'", "supported: llama, qwen2, qwen3, mistral"});
    EXPECT_LF_ERROR(hf_config_parse("{\"model_type\": ", "trunc.json"), {"trunc.json", "not valid JSON"});
    EXPECT_LF_ERROR(hf_config_parse("[1]", "arr.json"), {"arr.json", "JSON object"});
    EXPECT_LF_ERROR(hf_config_parse("{}", "empty.json"), {"empty.json", "\"model_type\""});

    auto with = [](std::string s, const std::string& from, const std::string& to) {
        s.replace(s.find(from), from.size(), to);
        return s;
    };
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"hidden_size\": 896", "\"hidden_size\": \"896\""), "q.json"),
                    {"q.json", "\"hidden_size\"", "positive integer"});
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"hidden_size\": 896", "\"hidden_size\": -896"), "q.json"),
                    {"q.json", "\"hidden_size\" is -896"});
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3"), "q.json"),
                    {"q.json", "num_key_value_heads 3"});
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"use_sliding_window\": false", "\"use_sliding_window\": true"), "q.json"),
                    {"q.json", "use_sliding_window"});
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"hidden_act\": \"silu\"", "\"hidden_act\": \"gelu\""), "q.json"),
                    {"q.json", "'gelu'", "silu"});
    EXPECT_LF_ERROR(hf_config_parse(with(kQwen25, "\"tie_word_embeddings\": true", "\"tie_word_embeddings\": 1"), "q.json"),
                    {"q.json", "tie_word_embeddings", "true or false"});
    EXPECT_LF_ERROR(hf_config_parse(with(kLlama31, "\"rope_type\": \"llama3\"", "\"rope_type\": \"dynamic\""), "l.json"),
                    {"l.json", "'dynamic'", "linear, llama3, yarn"});
    EXPECT_LF_ERROR(hf_config_parse(with(kLlama31, "\"low_freq_factor\": 1.0,", ""), "l.json"),
                    {"l.json", "\"low_freq_factor\"", "missing"});
    EXPECT_LF_ERROR(hf_config_parse(with(kDeepseekCoder, "\"factor\": 4.0", "\"factor\": -4.0"), "d.json"),
                    {"d.json", "factor", "> 0"});
    EXPECT_LF_ERROR(hf_config_parse(with(kDeepseekCoder, "\"rms_norm_eps\": 1e-06", "\"rms_norm_eps\": 0"), "d.json"),
                    {"d.json", "rms_norm_eps"});
}

TEST(HfConfig, ReadsFileOrFolder) {
    const std::string dir = test::temp_dir();
    const std::string model = dir + "/Qwen2.5-0.5B";
    std::filesystem::create_directory(model);
    test::write_bytes(model + "/config.json", kQwen25);
    ModelConfig a = hf_config_read(model);
    EXPECT_EQ(a.name, "Qwen2.5-0.5B");  // no _name_or_path: the folder's name
    EXPECT_EQ(a.n_embd, 896);
    ModelConfig b = hf_config_read(model + "/config.json");
    EXPECT_EQ(b.n_vocab, 151936);
    EXPECT_LF_ERROR(hf_config_read(dir), {dir, "config.json", "not found"});
}

}  // namespace
}  // namespace llmforge

namespace llmforge {
namespace {

// hf_config_write -> hf_config_parse gives the config back, for every registered architecture and
// its own keys (qwen2/qwen3 biases, Mistral's window, a separate value head size).
TEST(HfConfig, WriteParsesBackForEveryArchitecture) {
    for (const char* arch : {"llama", "qwen2", "qwen3", "mistral"}) {
        SCOPED_TRACE(arch);
        ModelConfig c;
        c.arch = arch;
        c.n_vocab = 100;
        c.n_embd = 48;
        c.n_layer = 3;
        c.n_head = 4;
        c.n_head_kv = 2;
        c.head_dim = std::string(arch) == "qwen3" ? 16 : 12;
        c.n_ff = 96;
        c.n_ctx_train = 512;
        c.rms_eps = 1e-6f;
        c.rope_theta = 1e6f;
        c.rope_interleaved = false;
        c.qkv_bias = std::string(arch) == "qwen2";
        if (std::string(arch) == "mistral") {
            c.sliding_window = 256;
            c.head_dim_v = 8;
        }
        const ModelConfig b = hf_config_parse(hf_config_write(c), "written.json");
        EXPECT_EQ(b.arch, c.arch);
        EXPECT_EQ(b.head_dim, c.head_dim);
        EXPECT_EQ(b.v_dim(), c.v_dim());
        EXPECT_EQ(b.sliding_window, c.sliding_window);
        EXPECT_EQ(b.qkv_bias, c.qkv_bias);
        EXPECT_EQ(b.n_head_kv, c.n_head_kv);
        EXPECT_EQ(b.rms_eps, c.rms_eps);
        EXPECT_EQ(b.rope_theta, c.rope_theta);
    }
}

}  // namespace
}  // namespace llmforge
