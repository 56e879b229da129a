// DeepSeek-V3's multi-token-prediction module in the engine: a model with
// num_nextn_predict_layers = 1 loads its MTP block (GGUF nextn.* names, HF model.layers.<n>.*),
// forward_mtp run over all positions at once equals running it one position at a time against
// its KV rows (layer n_layer of the sequence's memory), its input is the main model's last hidden
// state, a GGUF -> HF folder -> GGUF round trip keeps it, and a model without MTP weights says so
// in one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

const char* kConfig = R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":320,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"num_experts_per_tok":2,"first_k_dense_replace":1,
"routed_scaling_factor":2.5,"norm_topk_prob":true,"scoring_func":"sigmoid","topk_method":"noaux_tc","n_group":2,
"topk_group":1,"kv_lora_rank":32,"q_lora_rank":24,"qk_rope_head_dim":8,"qk_nope_head_dim":16,"v_head_dim":16,
"num_nextn_predict_layers":%d,"max_position_embeddings":256,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";

std::string make_model(const std::string& dir, int n_mtp) {
    char cfg[2048];
    std::snprintf(cfg, sizeof cfg, kConfig, n_mtp);
    const std::string json = dir + "/config" + std::to_string(n_mtp) + ".json";
    test::write_file(json, cfg);
    const std::string out = dir + "/mtp" + std::to_string(n_mtp) + ".gguf";
    EXPECT_EQ(test::run_command(test::cli_path() + " init-model --hf-config " + json + " --seed 7 -o " + out +
                                " 2>/dev/null"),
              0);
    return out;
}

// Main model over `toks` keeping every row's hidden state, then MTP logits for positions
// 0..n-2 (each guessing the token at +2), either all at once or one at a time.
std::vector<float> mtp_logits(const Model& m, const std::vector<int32_t>& toks, bool one_by_one) {
    ThreadPool pool(2);
    ForwardScratch s;
    s.keep_hidden = true;
    const int64_t n = static_cast<int64_t>(toks.size()), V = m.config().n_vocab, C = m.config().n_embd;
    auto mem = m.new_memory(64);
    std::vector<float> main_logits(V);
    m.forward(toks.data(), n, 0, *mem, main_logits.data(), 1, pool, s);
    EXPECT_EQ(static_cast<int64_t>(s.hidden.size()), n * C);
    const std::vector<float> hidden = s.hidden;
    std::vector<float> out(static_cast<size_t>((n - 1) * V));
    if (!one_by_one) {
        m.forward_mtp(hidden.data(), toks.data() + 1, n - 1, 0, *mem, out.data(), n - 1, pool, s);
    } else {
        for (int64_t i = 0; i + 1 < n; ++i)
            m.forward_mtp(hidden.data() + i * C, toks.data() + i + 1, 1, i, *mem, out.data() + i * V, 1, pool, s);
    }
    return out;
}

TEST(DeepseekMtp, CachedEqualsFullAndSurvivesConversion) {
    const std::string dir = test::temp_dir();
    const std::string path = make_model(dir, 1);
    auto m = Model::load(path);
    ASSERT_TRUE(m->has_mtp());
    EXPECT_EQ(m->config().n_layer, 2);
    EXPECT_NE(m->files().tensors.count("blk.2.nextn.eh_proj.weight"), 0u);
    EXPECT_NE(m->files().tensors.count("blk.2.ffn_gate_exps.weight"), 0u);  // the module's own MoE block
    const std::vector<int32_t> toks = {1, 17, 250, 33, 90, 4, 311, 28, 77, 5};
    const auto full = mtp_logits(*m, toks, false);
    const auto step = mtp_logits(*m, toks, true);
    double max_d = 0, max_v = 0;
    for (size_t i = 0; i < full.size(); ++i) {
        max_d = std::max(max_d, std::fabs(static_cast<double>(full[i]) - step[i]));
        max_v = std::max(max_v, std::fabs(static_cast<double>(full[i])));
    }
    EXPECT_GT(max_v, 1e-3);  // not all zeros
    EXPECT_LT(max_d, 1e-5 * std::max(1.0, max_v));
    // The MTP logits depend on the main model's hidden state: another history, other logits.
    std::vector<int32_t> other = toks;
    other[0] = 2;
    const auto moved = mtp_logits(*m, other, false);
    const int64_t V = m->config().n_vocab;
    double d_last = 0;
    for (int64_t v = 0; v < V; ++v) d_last = std::max(d_last, std::fabs(double(moved[(toks.size() - 2) * V + v]) -
                                                                         full[(toks.size() - 2) * V + v]));
    EXPECT_GT(d_last, 1e-6);

    // GGUF -> HF folder (model.layers.2.eh_proj.weight ...) -> GGUF keeps the module.
    const std::string hf = dir + "/hf", back = dir + "/back.gguf";
    ASSERT_EQ(test::run_command(test::cli_path() + "  convert -m " + path + " --type f32 -o " + hf + " 2>/dev/null"), 0);
    ASSERT_TRUE(fs::exists(hf + "/config.json"));
    ASSERT_NE(test::read_file(hf + "/config.json").find("\"num_nextn_predict_layers\": 1"), std::string::npos);
    ASSERT_EQ(test::run_command(test::cli_path() + " convert -m " + hf + " --tokenizer " + path + " --type f32 -o " + back + " 2>/dev/null"), 0);
    for (const std::string& p : {hf, back}) {
        SCOPED_TRACE(p);
        auto m2 = Model::load(p);
        ASSERT_TRUE(m2->has_mtp());
        const auto again = mtp_logits(*m2, toks, false);
        ASSERT_EQ(again.size(), full.size());
        for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(again[i], full[i], 1e-5 * std::max(1.0, max_v));
    }
}

TEST(DeepseekMtp, ModelWithoutMtpWeightsSaysSo) {
    const std::string dir = test::temp_dir();
    auto m = Model::load(make_model(dir, 0));
    EXPECT_FALSE(m->has_mtp());
    ThreadPool pool(1);
    ForwardScratch s;
    auto mem = m->new_memory(16);
    std::vector<float> h(static_cast<size_t>(m->config().n_embd)), logits(static_cast<size_t>(m->config().n_vocab));
    const int32_t tok = 5;
    try {
        m->forward_mtp(h.data(), &tok, 1, 0, *mem, logits.data(), 1, pool, s);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("no multi-token-prediction weights"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

}  // namespace
}  // namespace llmforge
