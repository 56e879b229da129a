// Training DeepSeek-V3's multi-token-prediction module (issue 17): forward() with mtp_lambda adds
// lambda · CE of the module's guess of token t+2, and its gradients (into the module, and through
// the main model's hidden state into the trunk) match finite differences; `train --mtp-lambda`
// logs the main loss and the MTP loss apart, and the module learns: loaded in the engine, its
// guesses of token t+2 (Model::forward_mtp) become right where they were chance before; a model
// without MTP weights is refused in one line.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/thread_pool.h"
#include "model/hf_config.h"
#include "model/model.h"
#include "train/checkpoint.h"
#include "train/train_model.h"
#include "train/trainer.h"
#include "test_util.h"

namespace llmforge::train {
namespace {

// V3-shaped, one MTP module. first_k_dense: layers before it are dense (the module's block is
// layer 2 = n_layer: dense when first_k_dense = 3, so finite differences never flip an expert).
std::string config(int first_k_dense, int n_mtp) {
    return R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":256,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":32,
"q_lora_rank":48,"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"noaux_tc","n_group":1,
"topk_group":1,"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":)" +
           std::to_string(first_k_dense) + R"(,"norm_topk_prob":true,"scoring_func":"sigmoid",
"num_nextn_predict_layers":)" + std::to_string(n_mtp) + R"(,"max_position_embeddings":128,"rms_norm_eps":1e-6,
"rope_theta":10000,"tie_word_embeddings":false,"hidden_act":"silu"})";
}

// Triples (a, a + 60, 7a mod 256): token t+2 follows from token t, which only a model that looks
// two back (the MTP module, reading row t) can know from row t.
std::vector<uint16_t> triples(int n, uint32_t seed) {
    std::mt19937 rng(seed);
    std::vector<uint16_t> tok;
    for (int i = 0; i < n; ++i) {
        const uint16_t a = static_cast<uint16_t>(rng() % 60);
        for (uint16_t v : {a, static_cast<uint16_t>(a + 60), static_cast<uint16_t>((a * 7) % 256)}) tok.push_back(v);
    }
    return tok;
}

double loss_of(TrainModel& m, const std::vector<int32_t>& in, const std::vector<int32_t>& tg, ThreadPool& pool) {
    Tape t(pool);
    t.grad_enabled = false;
    return m.forward(t, in.data(), tg.data(), 1, static_cast<int64_t>(in.size()))->data[0];
}

TEST(MtpTrain, GradientsMatchFiniteDifferences) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", config(3, 1));
    auto m = TrainModel::init_random(hf_config_read(d + "/cfg.json"), 11);
    ASSERT_EQ(m->config().ds.n_mtp, 1);
    m->mtp_lambda = 0.7f;
    ThreadPool pool(2);
    const auto tok = triples(6, 3);
    std::vector<int32_t> in(tok.begin(), tok.end() - 1), tg(tok.begin() + 1, tok.end());
    tg[5] = -1;  // a masked target: no MTP loss for rows 4 (its t+2) and 5 (its t+1)
    Tape t(pool);
    Var loss = m->forward(t, in.data(), tg.data(), 1, static_cast<int64_t>(in.size()));
    ASSERT_NE(m->last_mtp_loss, nullptr);
    const double mtp = m->last_mtp_loss->data[0];
    EXPECT_GT(mtp, 1.0);  // ~ln(256) at init
    t.backward(loss, 1.0f);
    int checked = 0;
    for (const char* name : {"blk.2.nextn.eh_proj.weight", "blk.2.nextn.enorm.weight", "blk.2.nextn.hnorm.weight",
                             "blk.2.attn_kv_b.weight", "blk.2.ffn_up.weight", "blk.2.nextn.shared_head_norm.weight",
                             "blk.1.attn_output.weight", "token_embd.weight"}) {
        Param* p = m->find(name);
        ASSERT_NE(p, nullptr) << name;
        ASSERT_EQ(p->grad.size(), p->numel()) << name;
        std::mt19937 rng(7);
        for (int k = 0; k < 3; ++k) {
            const int64_t i = static_cast<int64_t>(rng() % p->numel());
            const float v = p->value[i], h = 1e-2f * std::max(1.0f, std::fabs(v));
            p->value[i] = v + h;
            const double up = loss_of(*m, in, tg, pool);
            p->value[i] = v - h;
            const double down = loss_of(*m, in, tg, pool);
            p->value[i] = v;
            const double fd = (up - down) / (2 * h), g = p->grad[i];
            EXPECT_NEAR(g, fd, 2e-3 + 2e-2 * std::fabs(fd)) << name << "[" << i << "]";
            ++checked;
        }
    }
    EXPECT_EQ(checked, 24);
    // Without lambda the module gets no gradient at all (it is not in the main graph).
    m->mtp_lambda = 0;
    for (auto& p : m->params()) p->grad.zero();
    Tape t2(pool);
    t2.backward(m->forward(t2, in.data(), tg.data(), 1, static_cast<int64_t>(in.size())), 1.0f);
    Param* eh = m->find("blk.2.nextn.eh_proj.weight");
    double s = 0;
    for (int64_t i = 0; i < eh->numel(); ++i) s += std::fabs(eh->grad[i]);
    EXPECT_EQ(s, 0.0);
}

// The share of positions whose MTP guess (argmax of forward_mtp) is the token two ahead.
double mtp_accuracy(const Model& m, const std::vector<uint16_t>& tok) {
    ThreadPool pool(2);
    ForwardScratch s;
    s.keep_hidden = true;
    const int64_t n = 48, V = m.config().n_vocab;
    std::vector<int32_t> ids(tok.begin(), tok.begin() + n);
    auto mem = m.new_memory(n + 1);
    std::vector<float> lg(static_cast<size_t>(V)), mtp(static_cast<size_t>((n - 1) * V));
    m.forward(ids.data(), n, 0, *mem, lg.data(), 1, pool, s);
    const std::vector<float> hidden = s.hidden;
    m.forward_mtp(hidden.data(), ids.data() + 1, n - 1, 0, *mem, mtp.data(), n - 1, pool, s);
    int right = 0, total = 0;
    for (int64_t i = 0; i + 2 < n; ++i) {
        const float* row = mtp.data() + i * V;
        const int64_t best = std::max_element(row, row + V) - row;
        right += best == ids[i + 2];
        ++total;
    }
    return static_cast<double>(right) / total;
}

TEST(MtpTrain, TrainedModuleGuessesTwoAhead) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", config(1, 1));
    const auto tok = triples(4000, 1);
    std::ofstream(d + "/train.u16", std::ios::binary)
        .write(reinterpret_cast<const char*>(tok.data()), static_cast<std::streamsize>(tok.size() * 2));
    TrainArgs a;
    a.config = d + "/cfg.json";
    a.data = d + "/train.u16";
    a.seq_len = 48;
    a.batch = 4;
    a.steps = 120;
    a.lr = 4e-3;
    a.warmup_steps = 5;
    a.threads = 2;
    a.quiet = true;
    a.save = d + "/out";
    a.mtp_lambda = 0.5;
    a.log_jsonl = d + "/log.jsonl";
    run_training(a);
    std::istringstream log(test::read_file(d + "/log.jsonl"));
    std::string line;
    std::vector<double> mtp, main;
    while (std::getline(log, line)) {
        const auto j = nlohmann::json::parse(line);
        if (!j.contains("mtp_loss")) continue;
        mtp.push_back(j["mtp_loss"].get<double>());
        main.push_back(j["loss"].get<double>());
    }
    ASSERT_EQ(mtp.size(), 120u);
    std::printf("MTP loss %.3f -> %.3f, main loss %.3f -> %.3f\n", mtp.front(), mtp.back(), main.front(), main.back());
    EXPECT_LT(mtp.back(), 0.5 * mtp.front());
    EXPECT_NE(mtp.back(), main.back());  // logged apart
    // The engine runs the trained module: its guesses of t+2 are now mostly right (chance: 1/256;
    // a third of the positions are not predictable from the data, see triples()).
    auto trained = Model::load(d + "/out");
    ASSERT_TRUE(trained->has_mtp());
    auto fresh = TrainModel::init_random(hf_config_read(d + "/cfg.json"), 1);
    std::filesystem::create_directories(d + "/fresh");
    write_hf_model(d + "/fresh", *fresh);
    const auto held_out = triples(40, 99);
    const double before = mtp_accuracy(*Model::load(d + "/fresh"), held_out);
    const double after = mtp_accuracy(*trained, held_out);
    std::printf("MTP top-1 accuracy on held-out triples: %.2f before, %.2f after training\n", before, after);
    EXPECT_LT(before, 0.1);
    EXPECT_GT(after, 0.5);
}

TEST(MtpTrain, LambdaWithoutMtpWeightsIsOneLine) {
    const std::string d = test::temp_dir();
    test::write_file(d + "/cfg.json", config(1, 0));
    const auto tok = triples(400, 1);
    std::ofstream(d + "/train.u16", std::ios::binary)
        .write(reinterpret_cast<const char*>(tok.data()), static_cast<std::streamsize>(tok.size() * 2));
    TrainArgs a;
    a.config = d + "/cfg.json";
    a.data = d + "/train.u16";
    a.seq_len = 16;
    a.batch = 2;
    a.steps = 1;
    a.quiet = true;
    a.mtp_lambda = 0.3;
    try {
        run_training(a);
        FAIL() << "expected an Error";
    } catch (const Error& e) {
        const std::string msg = e.what();
        EXPECT_NE(msg.find("--mtp-lambda"), std::string::npos) << msg;
        EXPECT_NE(msg.find("multi-token-prediction weights"), std::string::npos) << msg;
        EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
    }
}

}  // namespace
}  // namespace llmforge::train
