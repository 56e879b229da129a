// Hugging Face folders: the PyTorch golden model written as a HF checkpoint (rotate-half RoPE
// convention, so Q/K rows are un-permuted), single-file and sharded, llama and qwen2 — loaded
// directly and after `llmforge convert` to GGUF, the logits must match the float64 reference.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../runtime/golden.h"
#include "io/safetensors.h"
#include "runtime/context.h"

using namespace llmforge;
using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

// Interleaved-pair rows (GGUF/Meta) -> rotate-half rows (HF): hf row j*D/2 + i = row 2i + j.
Tensor unpermute(const Tensor& t, int64_t D) {
    Tensor out = Tensor::empty(DType::F32, t.shape(), t.name());
    const int64_t rows = t.dim(0), cols = t.dim(1);
    for (int64_t r = 0; r < rows; ++r) {
        const int64_t h = r / D, w = r % D;
        const int64_t src = h * D + 2 * (w % (D / 2)) + w / (D / 2);
        std::memcpy(out.row(r), t.row(src), cols * 4);
    }
    return out;
}

Tensor to_bf16(const Tensor& t) {
    Tensor out = Tensor::empty(DType::BF16, t.shape(), t.name());
    for (int64_t i = 0; i < t.numel(); ++i) out.ptr<uint16_t>()[i] = fp32_to_bf16(t.ptr<float>()[i]);
    return out;
}

void write_hf(const std::string& dir, const ModelFiles& g, const std::string& type, bool shard,
              bool bf16) {
    fs::create_directories(dir);
    std::ofstream(dir + "/config.json")
        << "{\"model_type\":\"" << type << "\",\"hidden_size\":64,\"intermediate_size\":192,"
        << "\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,"
        << "\"vocab_size\":256,\"rms_norm_eps\":1e-5,\"rope_theta\":10000.0,"
        << "\"max_position_embeddings\":16,\"tie_word_embeddings\":true,\"hidden_act\":\"silu\"}";
    std::map<std::string, Tensor> hf;
    auto put = [&](const std::string& name, Tensor t) { hf[name] = bf16 ? to_bf16(t) : t; };
    put("model.embed_tokens.weight", g.tensors.at("token_embd.weight"));
    put("model.norm.weight", g.tensors.at("output_norm.weight"));
    for (int l = 0; l < 2; ++l) {
        const std::string s = "model.layers." + std::to_string(l) + ".", d = "blk." + std::to_string(l) + ".";
        put(s + "self_attn.q_proj.weight", unpermute(g.tensors.at(d + "attn_q.weight"), 16));
        put(s + "self_attn.k_proj.weight", unpermute(g.tensors.at(d + "attn_k.weight"), 16));
        put(s + "self_attn.v_proj.weight", g.tensors.at(d + "attn_v.weight"));
        put(s + "self_attn.o_proj.weight", g.tensors.at(d + "attn_output.weight"));
        put(s + "mlp.gate_proj.weight", g.tensors.at(d + "ffn_gate.weight"));
        put(s + "mlp.up_proj.weight", g.tensors.at(d + "ffn_up.weight"));
        put(s + "mlp.down_proj.weight", g.tensors.at(d + "ffn_down.weight"));
        put(s + "input_layernorm.weight", g.tensors.at(d + "attn_norm.weight"));
        put(s + "post_attention_layernorm.weight", g.tensors.at(d + "ffn_norm.weight"));
        if (type == "qwen2") {  // zero biases: same function, exercises the bias path
            put(s + "self_attn.q_proj.bias", Tensor::empty(DType::F32, {64}));
            put(s + "self_attn.k_proj.bias", Tensor::empty(DType::F32, {32}));
            put(s + "self_attn.v_proj.bias", Tensor::empty(DType::F32, {32}));
        }
    }
    if (!shard) {
        SafetensorsWriter w;
        for (auto& [n, t] : hf) w.add_tensor(t, n);
        w.write(dir + "/model.safetensors");
        return;
    }
    SafetensorsWriter a, b;
    std::string index = "{\"metadata\":{},\"weight_map\":{";
    bool first = true;
    for (auto& [n, t] : hf) {
        const bool in_a = n.find("layers.1.") == std::string::npos;
        (in_a ? a : b).add_tensor(t, n);
        index += std::string(first ? "" : ",") + "\"" + n + "\":\"" +
                 (in_a ? "model-00001-of-00002.safetensors" : "model-00002-of-00002.safetensors") + "\"";
        first = false;
    }
    index += "}}";
    a.write(dir + "/model-00001-of-00002.safetensors");
    b.write(dir + "/model-00002-of-00002.safetensors");
    std::ofstream(dir + "/model.safetensors.index.json") << index;
}

double golden_error(const std::string& model_path, const std::map<std::string, GoldenTensor>& g) {
    auto m = Model::load(model_path);
    Context ctx(*m, ContextParams{16, 16, 2});
    std::vector<int32_t> toks;
    for (int t = 0; t < 16; ++t) toks.push_back(static_cast<int32_t>(g.at("inputs").values[t]));
    auto logits = ctx.decode_all(toks);
    return rel_err(logits.data(), g.at("f64.logits").values.data(), 16 * 256);
}

struct Case {
    const char* type;
    bool shard, bf16;
};

class HfFolder : public ::testing::TestWithParam<Case> {};

TEST_P(HfFolder, LoadsDirectlyAndAfterConversionWithGoldenLogits) {
    LF_REQUIRE_ASSET(dir, "torch-golden");
    const Case c = GetParam();
    auto g = read_golden(dir);
    ModelFiles files = golden_model_files(g);
    const std::string out = temp_dir() + "/hf";
    write_hf(out, files, c.type, c.shard, c.bf16);
    // bf16 weights round the model itself: compare against the f32 engine on the same weights
    // would be exact; against the f64 reference allow the rounding (~2^-9 relative per weight).
    const double tol = c.bf16 ? 3e-2 : 1e-5;
    EXPECT_LT(golden_error(out, g), tol);
    auto m = Model::load(out);
    EXPECT_EQ(m->config().arch, c.type);
    EXPECT_FALSE(m->config().rope_interleaved);
    const std::string gguf = out + "/../converted.gguf";
    std::string log;
    const int rc = run_command(cli_path() + " convert -m '" + out + "' -o '" + gguf + "' --type f32 2>&1", &log);
    ASSERT_EQ(rc, 0) << log;
    EXPECT_LT(golden_error(gguf, g), tol);
    // llama GGUF files carry llama.cpp's permuted Q/K and the interleaved convention.
    EXPECT_EQ(Model::load(gguf)->config().rope_interleaved, std::string(c.type) == "llama");
}

INSTANTIATE_TEST_SUITE_P(Variants, HfFolder,
                         ::testing::Values(Case{"llama", false, false}, Case{"llama", true, false},
                                           Case{"qwen2", false, false}, Case{"llama", false, true}),
                         [](const auto& info) {
                             return std::string(info.param.type) + (info.param.shard ? "_sharded" : "") +
                                    (info.param.bf16 ? "_bf16" : "");
                         });

}  // namespace
