// Every command on DeepSeek-V2/V3 (deepseek2) models, through the binary: random models written
// by `init-model --hf-config` in a V2-Lite shape (no q_lora, softmax routing, latent 32 + rope 8)
// and a V3 shape (q_lora, sigmoid scoring with the selection bias, 4 groups, YaRN; latent 32 +
// rope 32 = 64 wide, widths of 256 so k-quants take the 3-D expert tensors). info (MLA, experts,
// active parameters, KV bytes per token against plain MHA), generate (also --chat), chat, logits,
// perplexity and bench with f32 / f16 / q8_0 latent caches, convert GGUF -> HF folder -> GGUF
// (identical logits), quantize q8_0 / q4_0 / q4_k / q6_k (expert stacks quantised), imatrix, and
// bad input as one line each.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <regex>
#include <sstream>

#include "cli_run.h"
#include "io/gguf.h"
#include "runtime/imatrix.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

// V2-Lite-like: queries straight from the hidden state, softmax greedy routing, 2 shared experts.
const char* kLite = R"({"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2","vocab_size":512,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":2,"n_routed_experts":8,"routed_scaling_factor":1.0,"kv_lora_rank":32,
"q_lora_rank":null,"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"greedy","n_group":1,
"topk_group":1,"num_experts_per_tok":3,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":false,
"scoring_func":"softmax","max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";

// V3-like: q_lora_rank, sigmoid + e_score_correction_bias (noaux_tc), n_group / topk_group, YaRN.
const char* kV3 = R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":512,
"hidden_size":256,"intermediate_size":256,"moe_intermediate_size":256,"num_hidden_layers":2,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":32,
"q_lora_rank":64,"qk_rope_head_dim":32,"v_head_dim":32,"qk_nope_head_dim":32,"topk_method":"noaux_tc","n_group":4,
"topk_group":2,"num_experts_per_tok":3,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
"scoring_func":"sigmoid","max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu","rope_scaling":{"type":"yarn","factor":4.0,
"original_max_position_embeddings":128,"beta_fast":32,"beta_slow":1,"mscale":1.0,"mscale_all_dim":1.0}})";

const char* kIds = "1 300 17 42 99 5 256 511 3 77";

struct Models {
    std::string dir, lite, v3, text;
};

const Models& models() {
    static const Models m = [] {
        Models r;
        r.dir = temp_dir();
        write_file(r.dir + "/lite.json", kLite);
        write_file(r.dir + "/v3.json", kV3);
        r.lite = r.dir + "/lite.gguf";
        r.v3 = r.dir + "/v3.gguf";
        for (const auto& [cfg, out] : {std::pair{r.dir + "/lite.json", r.lite}, std::pair{r.dir + "/v3.json", r.v3}}) {
            const CliRun c = run_cli("init-model --hf-config " + q(cfg) + " -o " + q(out) + " --seed 7");
            EXPECT_EQ(c.rc, 0) << c.err;
        }
        // Calibration / perplexity text of the synthetic vocabulary's letters.
        std::string t;
        const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "and", "runs"};
        uint64_t s = 12345;
        for (int i = 0; i < 700; ++i) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            t += words[(s >> 33) % 11];
            t += ' ';
        }
        r.text = r.dir + "/text.txt";
        write_file(r.text, t);
        return r;
    }();
    return m;
}

std::vector<float> read_f32(const std::string& path) {
    const std::string b = read_file(path);
    std::vector<float> v(b.size() / 4);
    std::memcpy(v.data(), b.data(), v.size() * 4);
    return v;
}

std::vector<float> logits(const std::string& model, const std::string& name, const std::string& extra = "") {
    const std::string out = models().dir + "/" + name + ".f32";
    const CliRun r = run_cli("logits -m " + q(model) + " --ids '" + kIds + "' -o " + q(out) + " -t 2" + extra);
    EXPECT_EQ(r.rc, 0) << r.err;
    return read_f32(out);
}

// ||a - b|| / ||b||
double rel_rms(const std::vector<float>& a, const std::vector<float>& b) {
    EXPECT_EQ(a.size(), b.size());
    double num = 0, den = 0;
    for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
        num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
        den += double(b[i]) * b[i];
    }
    return den > 0 ? std::sqrt(num / den) : 1e9;
}

double perplexity_of(const CliRun& r) {
    std::smatch m;
    static const std::regex re("perplexity: ([0-9.]+)");
    EXPECT_TRUE(std::regex_search(r.out, m, re)) << r.out << r.err;
    return m.empty() ? -1 : std::stod(m[1]);
}

int64_t number_after(const std::string& text, const std::string& label) {
    const size_t p = text.find(label);
    EXPECT_NE(p, std::string::npos) << label << " in " << text;
    return p == std::string::npos ? -1 : std::stoll(text.substr(p + label.size()));
}

TEST(DeepseekCli, InfoTellsTheShapeAndTheKvStory) {
    const Models& m = models();
    const CliRun v3 = run_cli("info -m " + q(m.v3) + " --cache-type-k q8_0");
    ASSERT_EQ(v3.rc, 0) << v3.err;
    const std::string& o = v3.out;
    EXPECT_NE(o.find("architecture:    deepseek2"), std::string::npos) << o;
    EXPECT_NE(o.find("deepseek style:  V3 (q_lora_rank 64, sigmoid scoring + selection bias, group-limited 2 of 4 "
                     "groups)"), std::string::npos) << o;
    EXPECT_NE(o.find("kv_lora_rank 32, q_lora_rank 64, qk head 64 (nope 32 + rope 32), v head 32"), std::string::npos)
        << o;
    EXPECT_NE(o.find("8 routed (3 used per token), 1 shared, expert ffn 256; 1 leading dense layer (ffn 256)"),
              std::string::npos) << o;
    EXPECT_NE(o.find("groups 4 (use 2), scale 2.5, weights normalised"), std::string::npos) << o;
    EXPECT_NE(o.find("yarn scaling x4"), std::string::npos) << o;
    // Active = total - the 5 of 8 routed experts a token does not use: 3 stacks of 8 x 256 x 256 in layer 1.
    const int64_t total = number_after(o, "parameters:      ");
    const int64_t active = number_after(o, "active/token:    ");
    EXPECT_EQ(total - active, 5 * 3 * 256 * 256) << o;
    // MLA latent: 2 layers x 64 values; plain MHA: 2 layers x 4 heads x (64 + 32) values.
    EXPECT_NE(o.find("kv f32           512 B (0.50 KiB) per token; plain MHA (2 layers x 4 heads x (64 + 32)) 3072 B "
                     "(3.00 KiB): 6.0x smaller"), std::string::npos) << o;
    // q8_0: 2 blocks of 34 bytes per row.
    EXPECT_NE(o.find("kv q8_0          136 B (0.13 KiB) per token; plain MHA (2 layers x 4 heads x (64 + 32)) 816 B "
                     "(0.80 KiB): 6.0x smaller"), std::string::npos) << o;

    const CliRun lite = run_cli("info -m " + q(m.lite) + " --cache-type-k q8_0");
    ASSERT_EQ(lite.rc, 0) << lite.err;
    EXPECT_NE(lite.out.find("deepseek style:  V2-Lite (queries without q_lora, softmax scoring)"), std::string::npos)
        << lite.out;
    EXPECT_NE(lite.out.find("8 routed (3 used per token), 2 shared, expert ffn 32; 1 leading dense layer (ffn 96)"),
              std::string::npos) << lite.out;
    EXPECT_NE(lite.out.find("kv f32           480 B (0.47 KiB) per token; plain MHA (3 layers x 4 heads x (24 + 16)) "
                            "1920 B (1.88 KiB): 4.0x smaller"), std::string::npos) << lite.out;
    // Latent 32 + rope 8 = 40 values: no whole q8_0 blocks.
    EXPECT_NE(lite.out.find("kv q8_0          not possible: --cache-type-k q8_0: the model's latent (kv_lora_rank + "
                            "rope) heads are 40 wide"), std::string::npos) << lite.out;
    EXPECT_EQ(total - active > 0, true);
}

TEST(DeepseekCli, GenerateChatBenchAndLogits) {
    const Models& m = models();
    for (const std::string& model : {m.lite, m.v3}) {
        SCOPED_TRACE(model);
        const CliRun g = run_cli("generate -m " + q(model) + " -p 'the quick fox' -n 12 --temp 0 -t 2");
        ASSERT_EQ(g.rc, 0) << g.err;
        EXPECT_FALSE(g.out.empty());
        EXPECT_NE(g.err.find("12 generated"), std::string::npos) << g.err;
        // Greedy decode is deterministic.
        EXPECT_EQ(run_cli("generate -m " + q(model) + " -p 'the quick fox' -n 12 --temp 0 -t 1").out, g.out);
        const CliRun c = run_cli("generate -m " + q(model) + " -p 'hello' -n 6 --temp 0 -t 2 --chat --chat-template chatml");
        ASSERT_EQ(c.rc, 0) << c.err;
        // The synthetic vocabulary has no chat template of its own.
        expect_one_line_error(run_cli("generate -m " + q(model) + " -p 'hello' -n 6 --chat"), "template");
        const CliRun chat = run_cli_input("chat -m " + q(model) + " --chat-template chatml -n 6 --temp 0 -t 2 --echo",
                                          "hello there\nand again\n");
        ASSERT_EQ(chat.rc, 0) << chat.err;
        EXPECT_NE(chat.out.find("and again"), std::string::npos) << chat.out;
        const CliRun b = run_cli("bench -m " + q(model) + " -p 32 -n 8 -r 1 -t 2");
        ASSERT_EQ(b.rc, 0) << b.err;
        EXPECT_NE(b.out.find("| pp32 |"), std::string::npos) << b.out;
        EXPECT_NE(b.out.find("| tg8 |"), std::string::npos) << b.out;
        EXPECT_NE(b.out.find("deepseek2"), std::string::npos) << b.out;
        const std::vector<float> l = logits(model, "gen-logits");
        ASSERT_EQ(l.size(), 10u * 512u);
        for (float x : l) ASSERT_TRUE(std::isfinite(x));
    }
    // The latent cache's bytes: V3 2 layers x 64 f32; V2-Lite 3 layers x 40 f32.
    EXPECT_NE(run_cli("bench -m " + q(m.v3) + " -p 8 -n 2 -r 1 -t 1").out.find("0.5 KiB per position"),
              std::string::npos);
}

TEST(DeepseekCli, LatentCacheTypes) {
    const Models& m = models();
    const std::string base = "perplexity -m " + q(m.v3) + " -f " + q(m.text) + " -c 128 -t 2";
    const CliRun f32 = run_cli(base), f16 = run_cli(base + " --cache-type-k f16"),
                 q8 = run_cli(base + " --cache-type-k q8_0");
    ASSERT_EQ(f32.rc, 0) << f32.err;
    ASSERT_EQ(f16.rc, 0) << f16.err;
    ASSERT_EQ(q8.rc, 0) << q8.err;
    const double p32 = perplexity_of(f32), p16 = perplexity_of(f16), p8 = perplexity_of(q8);
    EXPECT_GT(p32, 1.0);
    EXPECT_LT(p32, 2000.0);  // a random model over 512 tokens: about the vocabulary size
    EXPECT_NEAR(p16, p32, 2e-4 * p32);
    EXPECT_NEAR(p8, p32, 3e-3 * p32);
    EXPECT_NE(q8.err.find("KV cache MLA latent q8_0"), std::string::npos) << q8.err;
    for (const char* t : {"f16", "q8_0"}) {
        const CliRun g = run_cli("generate -m " + q(m.v3) + " -p 'the lazy dog' -n 16 --temp 0 -t 2 --cache-type-k " + t);
        EXPECT_EQ(g.rc, 0) << t << ": " << g.err;
        const CliRun b = run_cli("bench -m " + q(m.v3) + " -p 16 -n 4 -r 1 -t 2 --cache-type-k " + t);
        EXPECT_EQ(b.rc, 0) << t << ": " << b.err;
        // 2 layers x 64 latent values: f16 256 bytes, q8_0 2 x 68 bytes per position.
        EXPECT_NE(b.out.find(std::string("KV cache: MLA latent ") + t + (std::string(t) == "f16" ? ", 0.2 KiB" : ", 0.1 KiB") +
                             " per position"), std::string::npos) << b.out;
    }
    // The V2-Lite latent is 40 wide: q8_0 / q4_0 blocks of 32 do not tile it; f16 does.
    expect_one_line_error(run_cli("generate -m " + q(m.lite) + " -p x -n 2 --cache-type-k q8_0"),
                          "latent (kv_lora_rank + rope) heads are 40 wide");
    expect_one_line_error(run_cli("perplexity -m " + q(m.lite) + " -f " + q(m.text) + " --cache-type-k q4_0"),
                          "multiple of the q4_0 block");
    EXPECT_EQ(run_cli("generate -m " + q(m.lite) + " -p x -n 2 --cache-type-k f16").rc, 0);
}

TEST(DeepseekCli, ConvertToAHuggingFaceFolderAndBackGivesIdenticalLogits) {
    const Models& m = models();
    for (const auto& [model, name] : {std::pair{m.lite, std::string("lite")}, std::pair{m.v3, std::string("v3")}}) {
        SCOPED_TRACE(name);
        const std::string hf = m.dir + "/" + name + "-hf", back = m.dir + "/" + name + "-back.gguf";
        const CliRun a = run_cli("convert -m " + q(model) + " -o " + q(hf) + " --type f32");
        ASSERT_EQ(a.rc, 0) << a.err;
        const std::string cfg = read_file(hf + "/config.json");
        EXPECT_NE(cfg.find("\"kv_lora_rank\": 32"), std::string::npos) << cfg;
        EXPECT_NE(cfg.find(name == "v3" ? "\"deepseek_v3\"" : "\"deepseek_v2\""), std::string::npos) << cfg;
        // One matrix per routed expert in the folder.
        const std::string st = read_file(hf + "/model.safetensors");
        EXPECT_NE(st.find("\"model.layers.1.mlp.experts.7.down_proj.weight\""), std::string::npos);
        EXPECT_EQ(st.find("ffn_up_exps"), std::string::npos);
        const CliRun b = run_cli("convert -m " + q(hf) + " --tokenizer " + q(model) + " -o " + q(back) + " --type f32");
        ASSERT_EQ(b.rc, 0) << b.err;
        const std::vector<float> l0 = logits(model, name + "-0"), l1 = logits(hf, name + "-1"), l2 = logits(back, name + "-2");
        ASSERT_EQ(l0.size(), 10u * 512u);
        EXPECT_EQ(l0, l1);
        EXPECT_EQ(l0, l2);
        GgufFile g(back);
        ASSERT_NE(g.find_tensor("blk.1.ffn_up_exps.weight"), nullptr);
        // Quantised types are refused for a folder, one line.
        expect_one_line_error(run_cli("convert -m " + q(model) + " -o " + q(m.dir + "/x-hf") + " --type q8_0"),
                              "a Hugging Face folder holds f32, f16 or bf16");
    }
}

TEST(DeepseekCli, QuantizeTheExpertStacks) {
    const Models& m = models();
    const std::vector<float> ref = logits(m.v3, "q-ref");
    // (type, expected type of blk.1.ffn_gate_exps, bound on the logits' relative RMS error)
    const struct {
        const char* type;
        const char* exps;
        double tol;
    } cases[] = {{"q8_0", "q8_0", 0.05}, {"q4_0", "q4_0", 0.35}, {"q4_k", "q4_k", 0.3}, {"q6_k", "q6_k", 0.1}};
    for (const auto& c : cases) {
        SCOPED_TRACE(c.type);
        const std::string out = m.dir + "/v3-" + c.type + ".gguf";
        const CliRun r = run_cli("quantize -m " + q(m.v3) + " -o " + q(out) + " --type " + c.type + " --allow-fallback -t 2");
        ASSERT_EQ(r.rc, 0) << r.err;
        GgufFile f(out);
        const GgufTensorInfo* t = f.find_tensor("blk.1.ffn_gate_exps.weight");
        ASSERT_NE(t, nullptr);
        EXPECT_STREQ(dtype_name(t->dtype), c.exps);
        ASSERT_EQ(t->shape.size(), 3u);
        EXPECT_EQ(t->shape, (std::vector<int64_t>{8, 256, 256}));
        const std::vector<float> l = logits(out, std::string("q-") + c.type);
        const double e = rel_rms(l, ref);
        EXPECT_LT(e, c.tol);
        EXPECT_GT(e, 0.0);  // really quantised
        const CliRun g = run_cli("generate -m " + q(out) + " -p 'the dog' -n 8 --temp 0 -t 2");
        EXPECT_EQ(g.rc, 0) << g.err;
    }
}

TEST(DeepseekCli, ImatrixCollectsPerExpertAndQuantizeUsesIt) {
    const Models& m = models();
    const std::string im = m.dir + "/v3.imatrix.gguf", dat = m.dir + "/v3.imatrix.dat";
    const std::string collect = "imatrix -m " + q(m.v3) + " -f " + q(m.text) + " -c 128 --chunks 4 -t 2 -o ";
    const CliRun r = run_cli(collect + q(im));
    ASSERT_EQ(r.rc, 0) << r.err;
    ASSERT_EQ(run_cli(collect + q(dat)).rc, 0);
    GgufFile f(im);
    // Dense products (kv_b: the normalised latent it multiplies) and the router, shared experts.
    for (const char* name : {"blk.0.attn_q_a.weight", "blk.0.attn_kv_a_mqa.weight", "blk.0.attn_kv_b.weight",
                             "blk.1.ffn_gate_inp.weight", "blk.1.ffn_up_shexp.weight", "blk.0.ffn_down.weight",
                             "blk.1.attn_output.weight"}) {
        EXPECT_NE(f.find_tensor(std::string(name) + ".in_sum2"), nullptr) << name;
    }
    // Routed experts: per-expert sums (E, cols) and counts (E, 1), as llama-imatrix's MUL_MAT_ID
    // statistics; every token counted once per expert it uses: 4 chunks x 128 tokens x 3 used.
    for (const auto& [name, cols] : {std::pair{"blk.1.ffn_gate_exps.weight", 256}, std::pair{"blk.1.ffn_up_exps.weight", 256},
                                     std::pair{"blk.1.ffn_down_exps.weight", 256}}) {
        SCOPED_TRACE(name);
        const GgufTensorInfo* s = f.find_tensor(std::string(name) + ".in_sum2");
        const GgufTensorInfo* c = f.find_tensor(std::string(name) + ".counts");
        ASSERT_NE(s, nullptr);
        ASSERT_NE(c, nullptr);
        EXPECT_EQ(s->shape, (std::vector<int64_t>{8, cols}));
        EXPECT_EQ(c->shape, (std::vector<int64_t>{8, 1}));
        const Tensor ct = f.tensor(*c);
        double total = 0;
        int used = 0;
        for (int e = 0; e < 8; ++e) total += ct.ptr<float>()[e], used += ct.ptr<float>()[e] > 0;
        EXPECT_EQ(total, 4 * 128 * 3);
        EXPECT_GE(used, 2);
    }
    // quantize reads either file; the experts' bytes change with their importances.
    auto exps_bytes = [&](const std::string& path) {
        GgufFile g(path);
        const Tensor t = g.tensor(*g.find_tensor("blk.1.ffn_gate_exps.weight"));
        return std::string(static_cast<const char*>(t.data()), t.nbytes());
    };
    std::string plain;
    for (const std::string& imf : {std::string(), im, dat}) {
        const std::string out = m.dir + "/v3-q4_k-im" + std::to_string(imf.size()) + ".gguf";
        const CliRun qz = run_cli("quantize -m " + q(m.v3) + " -o " + q(out) + " --type q4_k --allow-fallback -t 2" +
                                  (imf.empty() ? "" : " --imatrix " + q(imf)));
        ASSERT_EQ(qz.rc, 0) << qz.err;
        EXPECT_LT(rel_rms(logits(out, "q-im"), logits(m.v3, "q-im-ref")), 0.3);
        if (imf.empty()) {
            plain = exps_bytes(out);
        } else {
            EXPECT_NE(exps_bytes(out), plain) << imf;
        }
    }
}

TEST(DeepseekCli, ImatrixEqualsLlamaImatrix) {
    // llama-imatrix's own file for the same model and text (tests/data/deepseek_imatrix/
    // make_fixture.sh): every entry, the routed experts' per-expert statistics included, within
    // float summation error (the fixture's model has no expert groups, which this llama.cpp lacks).
    const std::string fx = src_path("tests/data/deepseek_imatrix");
    const std::string dir = temp_dir(), model = dir + "/m.gguf", ours = dir + "/ours.dat";
    ASSERT_EQ(run_cli("init-model --hf-config " + q(fx + "/config.json") + " --seed 3 -o " + q(model)).rc, 0);
    const CliRun r = run_cli("imatrix -m " + q(model) + " -f " + q(fx + "/calibration.txt") +
                             " -c 128 --chunks 4 -t 1 -o " + q(ours));
    ASSERT_EQ(r.rc, 0) << r.err;
    const Imatrix a = read_imatrix(ours), b = read_imatrix(fx + "/llama-imatrix.dat");
    ASSERT_EQ(a.tensors.size(), b.tensors.size());
    ASSERT_EQ(a.tensors.size(), 20u);
    int experts = 0;
    for (const auto& [name, tb] : b.tensors) {
        SCOPED_TRACE(name);
        auto it = a.tensors.find(name);
        ASSERT_NE(it, a.tensors.end());
        const ImatrixTensor& ta = it->second;
        ASSERT_EQ(ta.sum_sq.size(), tb.sum_sq.size());
        EXPECT_EQ(ta.ncall, tb.ncall);
        experts += name.find("_exps.") != std::string::npos;
        double worst = 0, peak = 0;
        for (size_t j = 0; j < tb.sum_sq.size(); ++j) peak = std::max(peak, std::abs(double(tb.sum_sq[j])));
        for (size_t j = 0; j < tb.sum_sq.size(); ++j) {
            // Both .dat files: mean·ncall per value (rows = ncall on reading).
            const double x = double(ta.sum_sq[j]) / ta.rows, y = double(tb.sum_sq[j]) / tb.rows;
            if (std::abs(y) * tb.rows > 1e-6 * peak) worst = std::max(worst, std::abs(x - y) / std::abs(y));
        }
        EXPECT_LT(worst, 3e-3);
    }
    EXPECT_EQ(experts, 3);
    // Quantised with llama-imatrix's file, each expert with its own columns' importances: the
    // expert stacks are byte for byte llama-quantize's (q4_0 weighs by the importance).
    const std::string want = read_file(fx + "/llama-quantize-q4_0-exps.bin");
    ASSERT_EQ(want.size(), 3u * 9216u);
    auto exps = [](const std::string& path) {
        GgufFile g(path);
        std::string bytes;
        for (const char* n : {"blk.1.ffn_gate_exps.weight", "blk.1.ffn_up_exps.weight", "blk.1.ffn_down_exps.weight"}) {
            const Tensor t = g.tensor(*g.find_tensor(n));
            bytes.append(static_cast<const char*>(t.data()), t.nbytes());
        }
        return bytes;
    };
    const std::string with = dir + "/q4_0-im.gguf", without = dir + "/q4_0.gguf";
    const CliRun qi = run_cli("quantize -m " + q(model) + " -o " + q(with) + " --type q4_0 --allow-fallback --imatrix " +
                              q(fx + "/llama-imatrix.dat"));
    ASSERT_EQ(qi.rc, 0) << qi.err;
    EXPECT_TRUE(exps(with) == want);
    ASSERT_EQ(run_cli("quantize -m " + q(model) + " -o " + q(without) + " --type q4_0 --allow-fallback").rc, 0);
    EXPECT_FALSE(exps(without) == want);  // the importances matter
}

TEST(DeepseekCli, PruneTheExpertStacksPerExpert) {
    const Models& m = models();
    const std::string im = m.dir + "/prune.imatrix.gguf";
    ASSERT_EQ(run_cli("imatrix -m " + q(m.v3) + " -f " + q(m.text) + " -c 128 --chunks 2 -t 2 -o " + q(im)).rc, 0);
    for (const std::string method : {"magnitude", "wanda"}) {
        SCOPED_TRACE(method);
        const std::string out = m.dir + "/pruned-" + method + ".gguf";
        const CliRun r = run_cli("prune -m " + q(m.v3) + " -o " + q(out) + " --sparsity 0.5 --method " + method +
                                 " --imatrix " + q(im) + " -t 2");
        ASSERT_EQ(r.rc, 0) << r.err;
        // Every expert of the stack, the last one included, has half of each row zeroed.
        GgufFile f(out);
        const Tensor t = f.tensor(*f.find_tensor("blk.1.ffn_down_exps.weight"));
        ASSERT_EQ(t.dtype(), DType::F32);
        const int64_t per = t.numel() / 8;
        for (int e = 0; e < 8; ++e) {
            int64_t zeros = 0;
            for (int64_t i = 0; i < per; ++i) zeros += t.ptr<float>()[e * per + i] == 0.0f;
            EXPECT_EQ(zeros, per / 2) << "expert " << e;
        }
        EXPECT_EQ(run_cli("generate -m " + q(out) + " -p 'the dog' -n 4 --temp 0 -t 2").rc, 0);
    }
}

TEST(DeepseekCli, BrokenModelsAreOneLine) {
    const Models& m = models();
    // A config that does not fit: more experts used than exist.
    std::string bad = kLite;
    bad.replace(bad.find("\"num_experts_per_tok\":3"), std::strlen("\"num_experts_per_tok\":3"), "\"num_experts_per_tok\":9");
    write_file(m.dir + "/bad.json", bad);
    expect_one_line_error(run_cli("init-model --hf-config " + q(m.dir + "/bad.json") + " -o " + q(m.dir + "/bad.gguf")),
                          "expert_used_count is larger than expert_count");
    // A folder missing one expert's matrix: remove it from a converted folder's safetensors by
    // renaming it (the header keeps its length).
    const std::string hf = m.dir + "/broken-hf";
    ASSERT_EQ(run_cli("convert -m " + q(m.lite) + " -o " + q(hf) + " --type f32").rc, 0);
    std::string st = read_file(hf + "/model.safetensors");
    const std::string name = "model.layers.2.mlp.experts.5.up_proj.weight";
    const size_t at = st.find(name);
    ASSERT_NE(at, std::string::npos);
    st.replace(at, name.size(), "model.layers.2.mlp.experts.5.up_proj.weighX");
    write_file(hf + "/model.safetensors", st);
    const std::string text = " -f " + q(m.text), out = " -o " + q(m.dir + "/never.gguf");
    for (const std::string& cmd : {std::string("info"), std::string("generate -p x -n 2"), "perplexity" + text,
                                  "quantize --type q8_0" + out, "convert" + out, "imatrix -o x.gguf" + text}) {
        SCOPED_TRACE(cmd);
        const std::string& c = cmd;
        const size_t sp = c.find(' ');
        const std::string sub = sp == std::string::npos ? c : c.substr(0, sp);
        const std::string rest = sp == std::string::npos ? "" : c.substr(sp);
        expect_one_line_error(run_cli(sub + " -m " + q(hf) + rest), "expert 5 of blk.2.ffn_up_exps.weight is missing");
    }
}

}  // namespace
}  // namespace llmforge::test
