// DeepSeek-V2/V3 (deepseek2) bad input: every broken file is refused at load with one line that
// says what, where, expected vs found. A valid tiny model is written first (GGUF with GgufWriter,
// HF folder with config.json + per-expert safetensors) and loads; each case changes one thing:
// a missing key, expert tensors of the wrong shape, expert_used_count > expert_count, groups that
// do not fit, an HF folder missing one expert's matrix, a kv_b of the wrong shape.
#include <gtest/gtest.h>

#include <filesystem>
#include <functional>
#include <map>
#include <set>

#include "io/gguf.h"
#include "io/io_test_helpers.h"
#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;

// V3-shaped and tiny: q_lora, sigmoid scoring with the selection bias, 4 groups of 2 experts.
const char* kConfig = R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":300,
"hidden_size":32,"intermediate_size":48,"moe_intermediate_size":16,"num_hidden_layers":2,"num_attention_heads":2,
"num_key_value_heads":2,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":16,
"q_lora_rank":24,"qk_rope_head_dim":8,"v_head_dim":8,"qk_nope_head_dim":8,"topk_method":"noaux_tc","n_group":4,
"topk_group":2,"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
"scoring_func":"sigmoid","max_position_embeddings":128,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";

ModelConfig config() { return hf_config_parse(kConfig, "deepseek test config"); }

Vocab vocab(int64_t n) {
    Vocab v;
    v.model = "llama";
    v.pre = "default";
    const char* special[] = {"<unk>", "<s>", "</s>"};
    for (int64_t i = 0; i < n; ++i) {
        std::string t = i < 3 ? std::string(special[i]) : std::string("t");
        if (i >= 3) t += std::to_string(i);
        v.tokens.push_back(std::move(t));
        v.scores.push_back(-static_cast<float>(i));
        v.types.push_back(i == 0 ? TokenType::kUnknown : i < 3 ? TokenType::kControl : TokenType::kNormal);
    }
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;
    return v;
}

// Small deterministic values (norm gains 1), so a model that loads also runs.
std::shared_ptr<std::vector<float>> values(const std::vector<int64_t>& shape, bool ones, uint64_t seed) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    if (ones) return std::make_shared<std::vector<float>>(static_cast<size_t>(n), 1.0f);
    return std::make_shared<std::vector<float>>(test::randn(static_cast<size_t>(n), seed, 0.02f));
}

struct Edits {
    std::set<std::string> drop_keys;                     // GGUF keys left out
    std::function<void(GgufWriter&)> keys;               // keys set after the config's
    std::map<std::string, std::vector<int64_t>> shapes;  // tensor name -> written shape
};
Edits drop(const std::string& key) {
    Edits e;
    e.drop_keys.insert(key);
    return e;
}
Edits set_keys(std::function<void(GgufWriter&)> f) {
    Edits e;
    e.keys = std::move(f);
    return e;
}
Edits reshape(const std::string& name, std::vector<int64_t> shape) {
    Edits e;
    e.shapes[name] = std::move(shape);
    return e;
}

// A deepseek2 GGUF of config() with `e` applied.
std::string write_gguf(const std::string& name, const Edits& e = {}) {
    const ModelConfig c = config();
    GgufWriter cfg;
    gguf_write_config(cfg, c);
    gguf_write_vocab(cfg, vocab(c.n_vocab));
    GgufWriter w;
    for (const GgufKV& kv : cfg.metadata())
        if (!e.drop_keys.count(kv.key)) w.set(kv.key, kv.value);
    if (e.keys) e.keys(w);
    std::vector<std::shared_ptr<std::vector<float>>> keep;  // borrowed by the writer until write()
    uint64_t seed = 1;
    for (const NamedSpec& ns : tensor_list(arch_of("deepseek2", name), c, false)) {
        auto it = e.shapes.find(ns.name);
        const std::vector<int64_t> shape = it != e.shapes.end() ? it->second : ns.shape;
        auto v = values(shape, ns.spec->init == Init::kOnes, seed++);
        keep.push_back(v);
        w.add_tensor(ns.name, DType::F32, shape, v->data(), v->size() * sizeof(float));
    }
    const std::string path = test::temp_dir() + "/" + name;
    w.write(path);
    return path;
}

// The same weights as a Hugging Face folder (one matrix per routed expert), without `skip`.
std::string write_hf(const std::string& name, const std::string& skip = "") {
    const ModelConfig c = config();
    const Arch& arch = arch_of("deepseek2", name);
    const std::string dir = test::temp_dir() + "/" + name;
    fs::create_directories(dir);
    test::write_file(dir + "/config.json", hf_config_write(c));
    SafetensorsWriter st;
    std::vector<std::shared_ptr<std::vector<float>>> keep;
    uint64_t seed = 1;
    for (const NamedSpec& ns : tensor_list(arch, c, false)) {
        auto v = values(ns.shape, ns.spec->init == Init::kOnes, seed++);
        keep.push_back(v);
        const std::string hf = gguf_to_hf_name(arch, ns.name);
        if (hf.find('*') == std::string::npos) {
            if (hf != skip) st.add_tensor(hf, DType::F32, ns.shape, v->data(), v->size() * sizeof(float));
            continue;
        }
        const int64_t E = ns.shape[0], per = ns.shape[1] * ns.shape[2];
        for (int64_t x = 0; x < E; ++x) {
            const std::string one = hf_expert_name(hf, x);
            if (one == skip) continue;
            st.add_tensor(one, DType::F32, {ns.shape[1], ns.shape[2]}, v->data() + x * per,
                          static_cast<size_t>(per) * sizeof(float));
        }
    }
    st.write(dir + "/model.safetensors");
    return dir;
}

TEST(DeepseekErrors, TheUnbrokenFilesLoad) {
    // Guards every case below against passing for an unrelated reason.
    const auto g = Model::load(write_gguf("ok.gguf"));
    EXPECT_EQ(g->config().arch, "deepseek2");
    EXPECT_EQ(g->config().ds.n_routed_experts, 8);
    EXPECT_EQ(g->config().ds.n_group, 4);
    const auto h = Model::load(write_hf("ok-hf"));
    EXPECT_EQ(h->config().ds.kv_lora_rank, 16);
    EXPECT_EQ(h->config().ds.q_lora_rank, 24);
}

TEST(DeepseekErrors, MissingRequiredKeys) {
    const std::string p = write_gguf("no-kv-rank.gguf", drop("deepseek2.attention.kv_lora_rank"));
    EXPECT_LF_ERROR(Model::load(p), {p, "deepseek2.attention.kv_lora_rank", "missing"});
    const std::string r = write_gguf("no-rope-dims.gguf", drop("deepseek2.rope.dimension_count"));
    EXPECT_LF_ERROR(Model::load(r), {r, "deepseek2.rope.dimension_count", "missing"});
    // HF: config.json without kv_lora_rank.
    const std::string dir = write_hf("no-kv-rank-hf");
    std::string cfg = test::read_file(dir + "/config.json");
    const size_t at = cfg.find("\"kv_lora_rank\"");
    ASSERT_NE(at, std::string::npos);
    cfg.replace(at, std::string("\"kv_lora_rank\"").size(), "\"kv_lora_rank_x\"");
    test::write_file(dir + "/config.json", cfg);
    EXPECT_LF_ERROR(Model::load(dir), {"kv_lora_rank", "missing", "DeepSeek config.json"});
}

TEST(DeepseekErrors, ExpertTensorsOfTheWrongShape) {
    const ModelConfig c = config();
    const int64_t F = c.ds.moe_ff, C = c.n_embd;
    const std::string p = write_gguf("up-exps.gguf", reshape("blk.1.ffn_up_exps.weight", {7, F, C}));
    EXPECT_LF_ERROR(Model::load(p), {p, "blk.1.ffn_up_exps.weight", "7x16x32", "expected 8x16x32"});
    const std::string d = write_gguf("down-exps.gguf", reshape("blk.1.ffn_down_exps.weight", {8, C, F + 16}));
    EXPECT_LF_ERROR(Model::load(d), {d, "blk.1.ffn_down_exps.weight", "8x32x32", "expected 8x32x16"});
    // A 2-D tensor where the 3-D stack belongs.
    const std::string flat = write_gguf("flat-exps.gguf", reshape("blk.1.ffn_gate_exps.weight", {8 * F, C}));
    EXPECT_LF_ERROR(Model::load(flat), {flat, "blk.1.ffn_gate_exps.weight", "128x32", "expected 8x16x32"});
}

TEST(DeepseekErrors, WrongKvBShape) {
    const ModelConfig c = config();
    // (H * (nope + v), kv_lora_rank) = (32, 16); rows of another head count, and another rank.
    const std::string rows = write_gguf("kvb-rows.gguf", reshape("blk.0.attn_kv_b.weight", {48, 16}));
    EXPECT_LF_ERROR(Model::load(rows), {rows, "blk.0.attn_kv_b.weight", "48x16", "expected 32x16"});
    const std::string cols = write_gguf("kvb-cols.gguf", reshape("blk.1.attn_kv_b.weight", {32, 32}));
    EXPECT_LF_ERROR(Model::load(cols), {cols, "blk.1.attn_kv_b.weight", "32x32", "expected 32x16"});
    EXPECT_EQ(c.n_head * (c.ds.qk_nope_head_dim + c.v_dim()), 32);
}

TEST(DeepseekErrors, ExpertUsedCountLargerThanExpertCount) {
    const std::string p = write_gguf("used.gguf", set_keys([](GgufWriter& w) {
                                          w.set("deepseek2.expert_used_count", uint32_t{9});
                                          w.set("deepseek2.expert_group_count", uint32_t{1});
                                          w.set("deepseek2.expert_group_used_count", uint32_t{1});
                                      }));
    EXPECT_LF_ERROR(Model::load(p), {p, "expert_used_count is larger than expert_count", "experts 8 used 9"});
}

TEST(DeepseekErrors, GroupSettingsThatDoNotFit) {
    auto groups = [](uint32_t n, uint32_t k) {
        return [n, k](GgufWriter& w) {
            w.set("deepseek2.expert_group_count", n);
            w.set("deepseek2.expert_group_used_count", k);
        };
    };
    const std::string a = write_gguf("groups3.gguf", set_keys(groups(3, 1)));
    EXPECT_LF_ERROR(Model::load(a), {a, "expert_count must be a multiple of the expert groups", "expert groups 3 used 1"});
    const std::string b = write_gguf("groups-used.gguf", set_keys(groups(4, 5)));
    EXPECT_LF_ERROR(Model::load(b), {b, "more expert groups used than there are", "expert groups 4 used 5"});
    // 8 groups of 1 expert, 1 kept: fewer experts than the 2 used per token.
    const std::string c = write_gguf("groups-few.gguf", set_keys(groups(8, 1)));
    EXPECT_LF_ERROR(Model::load(c), {c, "the groups kept hold fewer experts than expert_used_count"});
    const std::string g = write_gguf("gating.gguf", set_keys([](GgufWriter& w) {
                                         w.set("deepseek2.expert_gating_func", uint32_t{3});
                                     }));
    EXPECT_LF_ERROR(Model::load(g), {g, "expert_gating_func is 3", "expected 1 (softmax) or 2 (sigmoid)"});
}

TEST(DeepseekErrors, HfFolderMissingOneExpert) {
    const std::string mid = write_hf("no-expert-3", "model.layers.1.mlp.experts.3.up_proj.weight");
    EXPECT_LF_ERROR(Model::load(mid), {mid, "expert 3", "blk.1.ffn_up_exps.weight", "missing"});
    // The last expert missing leaves 7 stacked: the shape check names the tensor and the count.
    const std::string last = write_hf("no-expert-7", "model.layers.1.mlp.experts.7.down_proj.weight");
    EXPECT_LF_ERROR(Model::load(last), {last, "blk.1.ffn_down_exps.weight", "7x32x16", "expected 8x32x16"});
    // A non-expert tensor missing from the folder.
    const std::string kvb = write_hf("no-kvb", "model.layers.0.self_attn.kv_b_proj.weight");
    EXPECT_LF_ERROR(Model::load(kvb), {kvb, "blk.0.attn_kv_b.weight", "missing"});
}

}  // namespace
}  // namespace llmforge
