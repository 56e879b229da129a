// Training DeepSeek-shaped models (MLA + DeepSeekMoE, issue 17): a trained model saved as a
// Hugging Face folder loads back computing the same logits (RoPE stays interleaved: DeepSeek's
// convention in every format); a resumed MoE run (bias balancing and the balance loss on) ends
// with the uninterrupted run's bytes; the auxiliary-loss-free bias balancing moves a skewed
// router's expert load toward uniform. Random models, no shared asset.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <random>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "model/adapter.h"
#include "model/hf_config.h"
#include "model/low_rank.h"
#include "train/peft.h"
#include "train/qat.h"
#include "train/checkpoint.h"
#include "train/train_model.h"
#include "train/trainer.h"
#include "test_util.h"

namespace llmforge::train {
namespace {

// A V3-shaped config: q_a/q_b, sigmoid routing with the selection bias; `groups` expert groups
// (noaux_tc keeps 2 of them).
std::string v3_config(int64_t groups) {
    return std::string(R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":256,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":32,
"q_lora_rank":48,"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"noaux_tc","n_group":)") +
           std::to_string(groups) + R"(,"topk_group":)" + std::to_string(std::min<int64_t>(groups, 2)) +
           R"(,"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
"scoring_func":"sigmoid","max_position_embeddings":128,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";
}

// Tokens with structure (a, a + 60, 7a mod 256 repeated), as the other trainer tests use.
void write_tokens(const std::string& path) {
    std::mt19937 rng(1);
    std::vector<uint16_t> tok;
    for (int i = 0; i < 4000; ++i) {
        const uint16_t a = static_cast<uint16_t>(rng() % 60);
        for (uint16_t v : {a, static_cast<uint16_t>(a + 60), static_cast<uint16_t>((a * 7) % 256)}) tok.push_back(v);
    }
    std::ofstream(path, std::ios::binary)
        .write(reinterpret_cast<const char*>(tok.data()), static_cast<std::streamsize>(tok.size() * 2));
}

std::vector<float> logits_of(TrainModel& m, const std::vector<int32_t>& ids, ThreadPool& pool) {
    Tape t(pool);
    t.grad_enabled = false;
    Var y = m.logits(t, ids.data(), 1, static_cast<int64_t>(ids.size()));
    return std::vector<float>(y->data, y->data + y->numel);
}

// Saved as a HF folder and loaded back (as `train --model` and --resume load it): the same
// tensors, the same convention (interleaved rotary pairs), the same logits bit for bit, also after
// the trainer's to_rotate_half (a no-op for DeepSeek). The V2-Lite shape (no q_lora, softmax) too.
TEST(MoeTrain, HfFolderLoadsBackIdentically) {
    const std::string d = test::temp_dir();
    std::string v2 = v3_config(1);
    for (auto [from, to] : {std::pair<std::string, std::string>{"\"q_lora_rank\":48", "\"q_lora_rank\":null"},
                            {"\"scoring_func\":\"sigmoid\"", "\"scoring_func\":\"softmax\""},
                            {"\"topk_method\":\"noaux_tc\"", "\"topk_method\":\"greedy\""},
                            {"deepseek_v3", "deepseek_v2"}})
        v2.replace(v2.find(from), from.size(), to);
    int k = 0;
    for (const std::string& json : {v3_config(4), v2}) {
        SCOPED_TRACE(k == 0 ? "v3" : "v2-lite");
        const std::string dir = d + "/m" + std::to_string(k++);
        std::filesystem::create_directories(dir);
        test::write_file(dir + "/cfg.json", json);
        auto m = TrainModel::init_random(hf_config_read(dir + "/cfg.json"), 5);
        EXPECT_TRUE(m->config().rope_interleaved) << "DeepSeek rotates adjacent pairs";
        std::mt19937 rng(3);
        std::normal_distribution<float> nd(0.0f, 0.1f);
        for (auto& p : m->params())  // beyond the init (biases and gains not all 0 / 1)
            for (int64_t i = 0; i < p->numel(); ++i) p->value[i] += nd(rng);
        m->to_rotate_half();
        EXPECT_TRUE(m->config().rope_interleaved);
        write_hf_model(dir, *m);
        auto back = TrainModel::from_files(open_model_files(dir));
        EXPECT_TRUE(back->config().rope_interleaved);
        back->to_rotate_half();
        ASSERT_EQ(back->params().size(), m->params().size());
        for (size_t i = 0; i < m->params().size(); ++i) {
            const Param& a = *m->params()[i];
            const Param* b = back->find(a.name);
            ASSERT_NE(b, nullptr) << a.name;
            ASSERT_EQ(b->shape, a.shape) << a.name;
            EXPECT_EQ(std::memcmp(a.value.data(), b->value.data(), a.numel() * sizeof(float)), 0) << a.name;
        }
        ThreadPool pool(2);
        std::vector<int32_t> ids;
        for (int i = 0; i < 23; ++i) ids.push_back((i * 37 + 11) % 256);
        const auto want = logits_of(*m, ids, pool), got = logits_of(*back, ids, pool);
        ASSERT_EQ(want.size(), got.size());
        EXPECT_EQ(std::memcmp(want.data(), got.data(), want.size() * sizeof(float)), 0);
    }
}

TrainArgs run_args(const std::string& d, const std::string& save) {
    TrainArgs a;
    a.config = d + "/cfg.json";
    a.data = d + "/train.u16";
    a.seq_len = 32;
    a.batch = 4;
    a.grad_accum = 2;
    a.steps = 6;
    a.lr = 3e-3;
    a.warmup_steps = 2;
    a.threads = 2;
    a.quiet = true;
    a.save = save;
    a.moe_aux_alpha = 0.01;
    a.moe_bias_gamma = 0.01;
    return a;
}

// A MoE run interrupted after 3 steps and resumed ends with the uninterrupted run's bytes (the
// balanced biases are part of the saved model); the biases moved (balancing is on and saved), and
// without balancing the result differs (the test is not vacuous).
TEST(MoeTrain, ResumedRunIsBitIdentical) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", v3_config(4));
    write_tokens(d + "/train.u16");
    run_training(run_args(d, d + "/full"));
    TrainArgs first = run_args(d, d + "/part");
    first.stop_after = 3;
    run_training(first);
    TrainArgs again;
    again.resume = d + "/part";
    again.quiet = true;
    const TrainResult r = run_training(again, {});
    EXPECT_EQ(r.steps_done, 6);
    const std::string full = test::read_file(d + "/full/model.safetensors");
    ASSERT_FALSE(full.empty());
    EXPECT_TRUE(full == test::read_file(d + "/part/model.safetensors")) << "resumed MoE run differs";
    auto m = TrainModel::from_files(open_model_files(d + "/full"));
    for (int64_t l : {1, 2}) {
        const Param* b = m->find("blk." + std::to_string(l) + ".exp_probs_b.bias");
        ASSERT_NE(b, nullptr);
        double moved = 0;
        for (int64_t e = 0; e < b->numel(); ++e) moved += std::abs(b->value[e]);
        EXPECT_GT(moved, 0.01) << "layer " << l << ": the selection bias never moved";
        for (int64_t e = 0; e < b->numel(); ++e)  // whole multiples of gamma: only the rule changed it
            EXPECT_NEAR(b->value[e] / 0.01, std::round(b->value[e] / 0.01), 1e-3) << "layer " << l << " expert " << e;
    }
    TrainArgs plain = run_args(d, d + "/plain");
    plain.moe_bias_gamma = 0;
    run_training(plain);
    EXPECT_FALSE(full == test::read_file(d + "/plain/model.safetensors")) << "--moe-bias-gamma changed nothing";
}

// The mean over the last `n` steps of --log-jsonl's moe_load_cv.
double final_cv(const std::string& log, int n) {
    std::istringstream in(test::read_file(log));
    std::vector<double> cv;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        if (j.contains("moe_load_cv")) cv.push_back(j["moe_load_cv"].get<double>());
    }
    EXPECT_GE(static_cast<int>(cv.size()), n);
    double s = 0;
    for (int i = 0; i < n && i < static_cast<int>(cv.size()); ++i) s += cv[cv.size() - 1 - i];
    return s / n;
}

// A router skewed toward experts 0 and 1 (a constant channel of every token embedding that their
// router rows read): without balancing they keep most tokens; with --moe-bias-gamma the biases
// push the load toward uniform. Measured on 40 steps: CV ends clearly lower.
TEST(MoeTrain, BiasBalancingMovesLoadTowardUniform) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", v3_config(1));
    write_tokens(d + "/train.u16");
    auto m = TrainModel::init_random(hf_config_read(d + "/cfg.json"), 9);
    Param* emb = m->find("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    const int64_t C = m->config().n_embd;
    for (int64_t v = 0; v < m->config().n_vocab; ++v) emb->value[v * C] = 1.0f;
    for (int64_t l : {1, 2}) {
        Param* r = m->find("blk." + std::to_string(l) + ".ffn_gate_inp.weight");
        ASSERT_NE(r, nullptr);
        for (int64_t e : {0, 1}) r->value[e * C] = 0.15f;
    }
    std::filesystem::create_directories(d + "/skewed");
    write_hf_model(d + "/skewed", *m);
    auto args = [&](double gamma, const std::string& name) {
        TrainArgs a = run_args(d, "");
        a.config.clear();
        a.model = d + "/skewed";
        a.steps = 40;
        a.grad_accum = 1;
        a.moe_aux_alpha = 0;
        a.moe_bias_gamma = gamma;
        a.log_jsonl = d + "/" + name + ".jsonl";
        return a;
    };
    run_training(args(0, "off"));
    run_training(args(0.01, "on"));
    const double first_off = [&] {
        std::istringstream in(test::read_file(d + "/off.jsonl"));
        std::string line;
        std::getline(in, line);
        return nlohmann::json::parse(line)["moe_load_cv"].get<double>();
    }();
    const double off = final_cv(d + "/off.jsonl", 5), on = final_cv(d + "/on.jsonl", 5);
    std::printf("expert load CV: first step %.3f; last 5 steps: gamma 0 %.3f, gamma 0.01 %.3f\n", first_off, off, on);
    EXPECT_GT(first_off, 1.0) << "the router is not skewed";
    EXPECT_LT(on, 0.6 * off);
}


// The engine's logits of every token of one sequence (with per-sequence deltas when given).
std::vector<float> engine_logits(const Model& m, const std::vector<int32_t>& ids, const LinearDelta* delta, ThreadPool& pool) {
    auto mem = m.new_memory(64);
    const int64_t T = static_cast<int64_t>(ids.size());
    std::vector<float> out(static_cast<size_t>(T * m.config().n_vocab));
    SeqBatch b{mem.get(), ids.data(), T, 0, out.data(), T};
    b.delta = delta;
    ForwardScratch s;
    m.forward_batch(&b, 1, pool, s);
    return out;
}

double max_rel(const std::vector<float>& a, const std::vector<float>& b) {
    double md = 0, mr = 0;
    for (size_t i = 0; i < a.size(); ++i) md = std::max(md, std::abs(double(a[i]) - b[i])), mr = std::max(mr, std::abs(double(b[i])));
    return md / mr;
}

// train --peft lora over a frozen DeepSeek base (V3 and V2-Lite shapes) on `targets(v3)`: the
// loss goes down, the adapter names DeepSeek's HF modules (one pair per routed expert, as PEFT
// writes them), its effect through the trainer's seams equals the base with the adapter merged
// into its weights (the engine forward of the merged model), its gradients equal central
// differences, and the engine with the adapter as per-sequence deltas equals the merged model.
// Returns each case's adapter folder.
// fd_dropout > 0: the gradient check runs with that LoRA dropout (its masks are fixed by the seed).
std::vector<std::string> check_lora(const std::string& d, const std::function<std::string(bool)>& targets,
                                    const char* label, double fd_dropout = 0) {
    write_tokens(d + "/train.u16");
    std::string v2 = v3_config(1);
    for (auto [from, to] : {std::pair<std::string, std::string>{"\"q_lora_rank\":48", "\"q_lora_rank\":null"},
                            {"\"scoring_func\":\"sigmoid\"", "\"scoring_func\":\"softmax\""},
                            {"\"topk_method\":\"noaux_tc\"", "\"topk_method\":\"greedy\""}})
        v2.replace(v2.find(from), from.size(), to);
    std::vector<std::string> out;
    int k = 0;
    for (const std::string& json : {v3_config(4), v2}) {
        const bool v3 = k == 0;
        SCOPED_TRACE(v3 ? "v3" : "v2-lite");
        const std::string dir = d + "/run" + std::to_string(k++);
        std::filesystem::create_directories(dir);
        test::write_file(dir + "/cfg.json", json);
        // The base: a few full-training steps from random weights (a random model's logits are
        // flat, and attention alone could hardly move them).
        TrainArgs pre = run_args(d, dir + "/base");
        pre.config = dir + "/cfg.json";
        pre.steps = 30;
        pre.grad_accum = 1;
        pre.moe_aux_alpha = 0;
        run_training(pre);
        TrainArgs a = run_args(d, dir + "/adapter");
        a.config.clear();
        a.model = dir + "/base";
        a.peft = "lora";
        a.lora_r = 4;
        a.lora_alpha = 8;
        a.lr = 1e-2;
        a.warmup_steps = 0;
        a.steps = 30;
        a.grad_accum = 1;
        a.lora_targets = targets(v3);
        run_training(a);
        out.push_back(dir + "/adapter");
        // The adapter lowers the validation loss of the base (fixed batches of the same data).
        TrainArgs ev;
        ev.eval_only = true;
        ev.model = dir + "/base";
        ev.val_data = d + "/train.u16";
        ev.seq_len = 32;
        ev.batch = 4;
        ev.threads = 2;
        ev.quiet = true;
        const double before = run_training(ev).eval_loss;
        ev.peft = "lora";
        ev.init_adapter = dir + "/adapter";
        const double after = run_training(ev).eval_loss;
        std::printf("LoRA on %s: validation loss %.4f -> %.4f\n", label, before, after);
        EXPECT_LT(after, before - 0.003);
        auto base = TrainModel::from_files(open_model_files(dir + "/base"), [](const std::string&) { return false; });
        const Adapter ad = read_adapter(dir + "/adapter", base->arch(), base->config());
        const auto sites = lora_sites(base->arch(), base->config(), split_targets(a.lora_targets), "test");
        if (ad.lora.size() != sites.size()) {
            ADD_FAILURE() << "the adapter has " << ad.lora.size() << " pairs, the targets select " << sites.size();
            return out;
        }
        double b_norm = 0;
        for (size_t i = 0; i < sites.size(); ++i) {
            EXPECT_EQ(ad.lora[i].site.module, sites[i].module);
            for (float v : ad.lora[i].b) b_norm += std::abs(v);
        }
        EXPECT_GT(b_norm, 0.0) << "lora_B never moved";
        // Merged: base weights + scale·B·A (a routed expert's pair into its matrix of the stack).
        auto merged = TrainModel::from_files(open_model_files(dir + "/base"));
        for (const LoraPair& p : ad.lora) {
            Param* w = merged->param(p.site.w);
            const int64_t at = p.site.expert >= 0 ? p.site.expert * p.site.out * p.site.in : 0;
            merge_lora(p, ad.cfg.lora_scale(), merged->config().rope_interleaved, merged->config().head_dim,
                       w->value.data() + at);
        }
        ThreadPool pool(2);
        std::vector<int32_t> ids;
        for (int i = 0; i < 19; ++i) ids.push_back((i * 53 + 7) % 256);
        auto peft = PeftAdapter::load(*base, dir + "/adapter");
        peft->attach(*base);
        const auto seam = logits_of(*base, ids, pool);
        const auto want = engine_logits(merged->inference(), ids, nullptr, pool);
        EXPECT_LT(max_rel(seam, want), 1e-5) << "trainer seam vs merged weights";
        // The adapter's gradients through the block (frozen base) against central differences.
        if (fd_dropout > 0) {
            peft->set_lora_dropout(fd_dropout);
            peft->set_training(true, 1234);
        }
        {
            std::vector<float> r(seam.size());
            for (size_t i = 0; i < r.size(); ++i) r[i] = static_cast<float>((i * 7919) % 13) / 6.0f - 1.0f;
            Tape tape(pool);
            auto loss = [&](bool grad) {
                tape.reset();
                tape.grad_enabled = grad;
                Var y = base->logits(tape, ids.data(), 1, static_cast<int64_t>(ids.size()));
                double l = 0;
                for (int64_t i = 0; i < y->numel; ++i) l += static_cast<double>(y->data[i]) * r[i];
                return std::make_pair(l, y);
            };
            for (Param* p : peft->params()) p->grad.zero();
            base->moe_stats.clear();
            auto [l0, y] = loss(true);
            const auto load0 = base->moe_stats.load;
            std::copy(r.begin(), r.end(), tape.grad(y));
            tape.backward(tape.make({1}, false));
            // A step that changes a token's experts is a jump, not a derivative: skipped (the
            // forwards run with gradients on, untaped, to count the load).
            auto fd_loss = [&](bool* moved) {
                base->moe_stats.clear();
                const double l = loss(true).first;
                tape.reset();
                *moved |= base->moe_stats.load != load0;
                return l;
            };
            int checked = 0, skipped = 0, idle = 0;
            for (Param* p : peft->params()) {
                double md = 0, mr = 0, g = 0;
                int probed = 0;
                for (int64_t i : {int64_t{0}, p->numel() / 2, p->numel() - 1}) {
                    const float orig = p->value[i], h = 1e-2f;
                    bool moved = false;
                    p->value[i] = orig + h;
                    const double lp = fd_loss(&moved);
                    p->value[i] = orig - h;
                    const double lm = fd_loss(&moved);
                    p->value[i] = orig;
                    g = std::max(g, static_cast<double>(std::abs(p->grad[i])));
                    if (moved) {
                        ++skipped;
                        continue;
                    }
                    const double fd = (lp - lm) / (2.0 * h);
                    md = std::max(md, std::abs(fd - p->grad[i]));
                    mr = std::max(mr, std::abs(fd));
                    ++probed;
                }
                if (probed == 0) continue;
                if (mr < 1e-3) {  // an expert no token chose: no gradient either way
                    EXPECT_LT(g, 1e-3) << p->name;
                    ++idle;
                    continue;
                }
                EXPECT_LT(md, 2e-2 * mr + 2e-3) << p->name;
                ++checked;
            }
            std::printf("LoRA on %s: %d adapter matrices checked, %d idle, %d probes skipped\n", label, checked, idle,
                        skipped);
            EXPECT_GT(checked, static_cast<int>(peft->params().size()) / 2);
            EXPECT_LT(skipped, static_cast<int>(peft->params().size()));
        }
        peft->set_training(false, 0);
        // The engine with the adapter as per-sequence deltas (kv_b's folded into the absorbed
        // query / output side) against the merged model.
        LowRankDelta delta;
        add_lora(delta, ad, 1.0, base->config());
        EXPECT_LT(max_rel(engine_logits(base->inference(), ids, &delta, pool), want),
                  1e-5) << "engine deltas vs merged weights";
    }
    return out;
}

// LoRA on the MLA projections (V3: q_a/q_b, V2-Lite: q; kv_a, kv_b, o). all-linear selects every
// projection PEFT can target: not the router (DeepSeek's MoEGate is no nn.Linear), each routed
// expert's matrices one module each.
TEST(MoeTrain, LoraOnMlaProjections) {
    const std::string d = test::temp_dir();
    const auto dirs = check_lora(d, [](bool v3) {
        return std::string(v3 ? "q_a_proj,q_b_proj" : "q_proj") + ",kv_a_proj_with_mqa,kv_b_proj,o_proj";
    }, "MLA");
    auto base = TrainModel::from_files(open_model_files(d + "/run0/base"), [](const std::string&) { return false; });
    EXPECT_EQ(read_adapter(dirs[0], base->arch(), base->config()).lora.size(), 5u * 3u);
}

// LoRA on the routed experts, the shared experts and the first (dense) block's MLP: PEFT's
// gate_proj / up_proj / down_proj select all three, each routed expert a module of its own
// ("model.layers.1.mlp.experts.5.gate_proj"); the gradient check with LoRA dropout on.
TEST(MoeTrain, LoraOnExperts) {
    const std::string d = test::temp_dir();
    const auto dirs = check_lora(d, [](bool) { return std::string("gate_proj,up_proj,down_proj"); }, "experts", 0.2);
    auto base = TrainModel::from_files(open_model_files(d + "/run0/base"), [](const std::string&) { return false; });
    const Adapter ad = read_adapter(dirs[0], base->arch(), base->config());
    // 3 layers: a dense MLP, then 2 MoE layers of 8 routed + 1 shared expert; 3 modules each.
    EXPECT_EQ(ad.lora.size(), 3u * (1 + 2 * 9));
    int routed = 0;
    for (const LoraPair& p : ad.lora) {
        if (p.site.expert < 0) continue;
        ++routed;
        EXPECT_EQ(p.site.module, "model.layers." + std::to_string(p.site.w.layer) + ".mlp.experts." +
                                     std::to_string(p.site.expert) + "." + p.site.short_name);
    }
    EXPECT_EQ(routed, 2 * 8 * 3);
    int all = 0;
    for (const LoraSite& site : lora_sites(base->arch(), base->config(), {"all-linear"}, "test")) {
        EXPECT_NE(site.module.substr(site.module.size() - 9), ".mlp.gate") << site.module;
        all += site.expert >= 0;
    }
    EXPECT_EQ(all, 2 * 8 * 3);
}

// --qat reads the (E, rows, cols) expert stacks quantised like every matrix (the router stays f32,
// as `quantize` keeps it): the QAT forward equals the plain forward of the model whose weights are
// their fake-quantised values, bit for bit.
TEST(MoeTrain, QatCoversExpertStacks) {
    EXPECT_EQ(qat_tensor_type("blk.1.ffn_gate_exps.weight", {8, 32, 64}, true, false, DType::Q8_0), DType::Q8_0);
    EXPECT_EQ(qat_tensor_type("blk.1.ffn_gate_inp.weight", {8, 64}, true, false, DType::Q8_0), DType::F32);
    std::string json = v3_config(4);
    json.replace(json.find("\"q_lora_rank\":48"), 16, "\"q_lora_rank\":64");
    const ModelConfig cfg = hf_config_parse(json, "v3");
    auto make = [&] {
        auto m = TrainModel::init_random(cfg, 8);
        std::mt19937 rng(2);
        std::normal_distribution<float> nd(0.0f, 0.05f);
        for (auto& p : m->params())
            for (int64_t i = 0; i < p->numel(); ++i) p->value[i] += nd(rng);
        return m;
    };
    auto m = make(), plain = make();
    ThreadPool pool(2);
    Qat q(*m, QatConfig{DType::Q8_0, false});
    q.refresh(pool);
    int experts = 0;
    for (auto& p : m->params()) {
        const DType t = q.type_of(*p);
        if (p->name.find("_exps.") != std::string::npos) {
            EXPECT_EQ(t, DType::Q8_0) << p->name;
            ++experts;
        }
        if (t == DType::F32) continue;
        const int64_t cols = p->shape.back();
        fake_quantize(t, p->value.data(), plain->find(p->name)->value.data(), p->numel() / cols, cols);
    }
    EXPECT_EQ(experts, 6);
    std::vector<int32_t> ids;
    for (int i = 0; i < 21; ++i) ids.push_back((i * 31 + 3) % 256);
    const auto got = logits_of(*m, ids, pool), want = logits_of(*plain, ids, pool);
    EXPECT_EQ(std::memcmp(got.data(), want.data(), got.size() * sizeof(float)), 0);
    // Not vacuous: the unquantised model differs.
    auto raw = make();
    const auto r = logits_of(*raw, ids, pool);
    EXPECT_NE(std::memcmp(got.data(), r.data(), got.size() * sizeof(float)), 0);
}

}  // namespace
}  // namespace llmforge::train
