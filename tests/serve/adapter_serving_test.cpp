// LoRA adapters in the server's engine (issue 14, "serving adapters"), in process on small
// random-weight Llamas (no files but the adapters' PEFT folders):
//  - mixed-adapter batch invariance: 8 requests over 3 adapters + the base, each run alone and all
//    in one batch, give bit-identical token log-probabilities (so identical greedy output), and the
//    adapters do change the output;
//  - the forward pass: an adapter's rows get the same bits whether they go through in one chunk of
//    150 or in chunks of 7 beside other adapters' rows (OpenBLAS sums a group of >~120 rows
//    differently from a small one: the delta is applied row by row in batch-invariant mode);
//  - the server: /v1/models lists the base and each adapter with its parent, "model" picks an
//    adapter, an unknown one is a 404 listing the known ones, POST /admin/adapters loads and
//    unloads, and bad adapters (missing, not an adapter, another base's, prompt tuning, a name
//    clash) are refused with one line each.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "model/adapter.h"
#include "model/low_rank.h"
#include "runtime/scheduler.h"
#include "serve/openai_api.h"
#include "serve/server.h"
#include "serve/tiny_served_model.h"
#include "test_util.h"

namespace llmforge {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;
namespace fs = std::filesystem;

struct Dims {
    int64_t C = 16, layers = 2, heads = 4, kv_heads = 2, head_dim = 4, ff = 32;
};

// A Llama over the tiny ChatML vocabulary (264 tokens) with random weights.
std::shared_ptr<serve::ServedModel> random_served_model(const Dims& d, uint64_t seed, const std::string& id = "base") {
    auto sm = test::tiny_served_model(false);
    sm->id = id;
    const Vocab v = test::tiny_chatml_vocab();
    ModelFiles f;
    f.path = id;
    f.format = "gguf";
    ModelConfig& c = f.config;
    c.n_vocab = static_cast<int64_t>(v.tokens.size());
    c.n_embd = d.C;
    c.n_layer = d.layers;
    c.n_head = d.heads;
    c.n_head_kv = d.kv_heads;
    c.head_dim = d.head_dim;
    c.n_ff = d.ff;
    c.n_ctx_train = 512;
    f.vocab = v;
    const int64_t C = d.C, Hq = d.heads * d.head_dim, Hk = d.kv_heads * d.head_dim;
    std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
        {"token_embd.weight", {c.n_vocab, C}}, {"output_norm.weight", {C}}, {"output.weight", {c.n_vocab, C}}};
    for (int64_t l = 0; l < d.layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        const std::vector<std::pair<std::string, std::vector<int64_t>>> layer = {
            {b + "attn_norm.weight", {C}},       {b + "attn_q.weight", {Hq, C}},      {b + "attn_k.weight", {Hk, C}},
            {b + "attn_v.weight", {Hk, C}},      {b + "attn_output.weight", {C, Hq}}, {b + "ffn_norm.weight", {C}},
            {b + "ffn_gate.weight", {d.ff, C}},  {b + "ffn_up.weight", {d.ff, C}},    {b + "ffn_down.weight", {C, d.ff}}};
        shapes.insert(shapes.end(), layer.begin(), layer.end());
    }
    std::mt19937_64 rng(seed);
    for (const auto& [name, shape] : shapes) {
        Tensor t = Tensor::empty(DType::F32, shape, name);
        float* p = t.ptr<float>();
        const bool norm = shape.size() == 1;
        std::normal_distribution<float> nd(0.0f, norm ? 0.0f : 1.0f / std::sqrt(static_cast<float>(shape.back())));
        for (int64_t i = 0; i < t.numel(); ++i) p[i] = norm ? 1.0f : nd(rng) * (name == "token_embd.weight" ? 4.0f : 1.0f);
        f.tensors[name] = std::move(t);
    }
    sm->model = Model::from_files(std::move(f));
    return sm;
}

// A random LoRA (r, alpha = 2r) over `targets`, written as PEFT writes it into DIR.
void write_random_lora(const std::string& dir, const Model& m, int64_t r, uint64_t seed,
                       std::vector<std::string> targets = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                           "up_proj", "down_proj"}) {
    Adapter ad;
    ad.cfg.type = PeftType::kLora;
    ad.cfg.r = r;
    ad.cfg.alpha = static_cast<double>(2 * r);
    ad.cfg.target_modules = targets;
    ad.cfg.base_model = "test";
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const LoraSite& s : lora_sites(m.arch(), m.config(), targets, "test")) {
        LoraPair p;
        p.site = s;
        p.r = r;
        p.a.resize(static_cast<size_t>(r * s.in));
        p.b.resize(static_cast<size_t>(s.out * r));
        for (float& x : p.a) x = nd(rng) / std::sqrt(static_cast<float>(s.in));
        for (float& x : p.b) x = nd(rng) * 0.5f / std::sqrt(static_cast<float>(r));
        ad.lora.push_back(std::move(p));
    }
    write_adapter(dir, ad);
}

std::string fresh_dir(const std::string& name) {
    const std::string d = test::temp_dir() + "/" + name;
    fs::remove_all(d);
    return d;
}

struct SeqOut {
    std::vector<int32_t> tokens;
    std::vector<float> logprobs;  // each token's, then its top alternatives', in order
    std::string finish, error;
};

std::vector<SeqOut> collect(RequestStream& stream, size_t n) {
    std::vector<SeqOut> out(n);
    size_t ended = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(120);
    SeqEvent e;
    while (ended < n && Clock::now() < deadline) {
        if (!stream.pop(e, 100)) continue;
        SeqOut& o = out.at(static_cast<size_t>(e.index));
        if (e.kind == SeqEvent::kToken) {
            if (e.token.id < 0) continue;
            o.tokens.push_back(e.token.id);
            o.logprobs.push_back(e.token.logprob);
            for (const auto& t : e.top) o.logprobs.push_back(t.logprob);
        } else {
            ++ended;
            (e.kind == SeqEvent::kDone ? o.finish : o.error) = e.kind == SeqEvent::kDone ? e.finish_reason : e.text;
        }
    }
    EXPECT_EQ(ended, n) << "sequences still running after 120 s";
    return out;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

TEST(AdapterServing, MixedAdapterBatchEqualsEachRequestAlone) {
    auto base = random_served_model(Dims{}, 7);
    std::vector<std::shared_ptr<const serve::ServedAdapter>> ads;
    for (int i = 0; i < 3; ++i) {
        const std::string dir = fresh_dir("lora" + std::to_string(i));
        write_random_lora(dir, *base->model, 4 + 2 * i, 100 + i);
        ads.push_back(serve::load_served_adapter("ad" + std::to_string(i), dir, 1.0, *base));
    }
    // 8 requests over the base (null) and 3 adapters; 0 and 1 share a prompt, as do 2 and 3.
    const int kSeqs = 8;
    const int which[kSeqs] = {-1, 0, 1, -1, 2, 0, 1, 2};
    std::mt19937 rng(3);
    std::vector<std::vector<int32_t>> prompts;
    for (int i = 0; i < kSeqs; ++i) {
        std::vector<int32_t> p = {1};
        const int len = 5 + 3 * i;
        for (int t = 0; t < len; ++t) p.push_back(static_cast<int32_t>(3 + rng() % 261));
        prompts.push_back(p);
    }
    prompts[1] = prompts[0];
    prompts[3] = prompts[2];
    auto make = [&](int i, const std::shared_ptr<RequestStream>& stream, int index) {
        SeqRequest r;
        r.model = base;
        r.stream = stream;
        r.index = index;
        r.prompt = prompts[i];
        r.sampling.temperature = 0;
        r.sampling.logit_bias = {{2, -100.0f}, {7, -100.0f}};  // no end of text: 12 tokens each
        r.max_tokens = 12;
        r.top_logprobs = 4;
        if (which[i] >= 0) {
            r.adapter = ads[which[i]]->key;
            r.delta = ads[which[i]]->delta;
        }
        return r;
    };
    SchedulerConfig cfg;
    cfg.slots = kSeqs;
    cfg.n_ctx = 128;
    cfg.threads = 2;
    cfg.step_prompt_tokens = 9;  // prompts are chunked differently alone and together
    cfg.prefix_cache_bytes = 0;
    std::vector<SeqOut> alone;
    {
        Scheduler sched(base, cfg);
        for (int i = 0; i < kSeqs; ++i) {
            auto stream = std::make_shared<RequestStream>();
            std::vector<SeqRequest> one;
            one.push_back(make(i, stream, 0));
            ASSERT_EQ(sched.submit(std::move(one)), Scheduler::Submit::kAccepted);
            alone.push_back(collect(*stream, 1)[0]);
            ASSERT_TRUE(alone.back().error.empty()) << alone.back().error;
            ASSERT_EQ(alone.back().tokens.size(), 12u);
        }
    }
    // The adapters matter: the same prompt gives other log-probabilities with an adapter.
    EXPECT_FALSE(same_bits(alone[0].logprobs, alone[1].logprobs));
    EXPECT_FALSE(same_bits(alone[2].logprobs, alone[3].logprobs));
    EXPECT_NE(alone[0].tokens, alone[1].tokens) << "the adapter should change the greedy output";
    // All together, in one batch (twice: the second round also reuses the slots' cached K/V).
    for (int round = 0; round < 2; ++round) {
        Scheduler sched(base, cfg);
        auto stream = std::make_shared<RequestStream>();
        std::vector<SeqRequest> all;
        for (int i = 0; i < kSeqs; ++i) all.push_back(make(i, stream, i));
        ASSERT_EQ(sched.submit(std::move(all)), Scheduler::Submit::kAccepted);
        const auto mixed = collect(*stream, kSeqs);
        for (int i = 0; i < kSeqs; ++i) {
            SCOPED_TRACE("request " + std::to_string(i) + " (adapter " + std::to_string(which[i]) + ")");
            ASSERT_TRUE(mixed[i].error.empty()) << mixed[i].error;
            EXPECT_EQ(mixed[i].tokens, alone[i].tokens);
            EXPECT_TRUE(same_bits(mixed[i].logprobs, alone[i].logprobs)) << "log-probabilities differ in bits";
        }
    }
}

// Runs `seqs` through one forward_batch in batch-invariant mode.
void forward(const Model& m, std::vector<SeqBatch> seqs, ThreadPool& pool) {
    ForwardScratch s;
    s.batch_invariant = true;
    m.forward_batch(seqs.data(), static_cast<int64_t>(seqs.size()), pool, s);
}

// A 150-token prompt with deltas[0]: its last logits alone in one chunk equal, bit for bit, those
// from chunks of 7 rows, each chunk beside another sequence with the same delta (one group) and
// one with deltas[1].
void expect_rows_invariant(const Model& m, const std::vector<std::shared_ptr<const LinearDelta>>& ads) {
    const int64_t T = 150, V = m.config().n_vocab;
    std::vector<int32_t> prompt(T), other(T);
    std::mt19937 rng(5);
    for (auto& t : prompt) t = static_cast<int32_t>(3 + rng() % 261);
    for (auto& t : other) t = static_cast<int32_t>(3 + rng() % 261);
    ThreadPool pool(2);
    auto mem = m.new_memory(256);
    std::vector<float> want(V), got(V), scratch(V);
    SeqBatch one{mem.get(), prompt.data(), T, 0, want.data(), 1};
    one.delta = ads[0].get();
    forward(m, {one}, pool);
    auto mem2 = m.new_memory(256), mem_same = m.new_memory(256), mem_other = m.new_memory(256);
    for (int64_t p = 0; p < T; p += 7) {
        const int64_t n = std::min<int64_t>(7, T - p);
        SeqBatch same{mem_same.get(), other.data() + p, n, p, scratch.data(), 1};
        same.delta = ads[0].get();
        SeqBatch mine{mem2.get(), prompt.data() + p, n, p, got.data(), 1};
        mine.delta = ads[0].get();
        SeqBatch diff{mem_other.get(), other.data() + p, n, p, scratch.data(), 1};
        diff.delta = ads[1].get();
        forward(m, {same, mine, diff}, pool);
    }
    EXPECT_EQ(std::memcmp(want.data(), got.data(), V * sizeof(float)), 0) << "last-token logits differ in bits";
    // And the adapter matters.
    auto mem3 = m.new_memory(256);
    std::vector<float> plain(V);
    forward(m, {SeqBatch{mem3.get(), prompt.data(), T, 0, plain.data(), 1}}, pool);
    EXPECT_NE(std::memcmp(want.data(), plain.data(), V * sizeof(float)), 0);
}

TEST(AdapterServing, AnAdaptersRowsGetTheSameBitsInAnyGroup) {
    // in = 512, r = 16: OpenBLAS' small-matrix path covers groups up to ~122 rows, so one chunk of
    // 150 rows and chunks of 7 take different kernels.
    Dims d;
    d.C = 512;
    d.layers = 1;
    d.heads = 8;
    d.kv_heads = 8;
    d.head_dim = 64;
    d.ff = 256;
    auto base = random_served_model(d, 11);
    const Model& m = *base->model;
    // The server's adapters as it loads them (LowRankDelta: the forward pass calls them one row
    // at a time in batch-invariant mode, and a one-row call is a fixed-order dot/axpy).
    std::vector<std::shared_ptr<const LinearDelta>> served;
    for (int i = 0; i < 2; ++i) {
        const std::string dir = fresh_dir("wide-lora" + std::to_string(i));
        write_random_lora(dir, m, 16, 200 + i, {"q_proj", "k_proj", "v_proj", "o_proj"});
        served.push_back(serve::load_served_adapter("w" + std::to_string(i), dir, 1.0, *base)->delta);
    }
    expect_rows_invariant(m, served);
}

// LowRankDelta's one-row path (fixed-order dots, the batch-invariant one) computes what its
// several-row BLAS path does, with the Q/K rows of B permuted for an interleaved base.
TEST(AdapterServing, LowRankDeltaRowPathEqualsItsGemmPath) {
    auto base = random_served_model(Dims{}, 13);
    const std::string dir = fresh_dir("row-vs-gemm");
    write_random_lora(dir, *base->model, 6, 17);
    const Adapter ad = read_adapter(dir, base->model->arch(), base->model->config());
    for (bool interleaved : {false, true}) {
        ModelConfig c = base->model->config();
        c.rope_interleaved = interleaved;
        LowRankDelta low;
        add_lora(low, ad, 0.5, c);
        std::mt19937 rng(1);
        std::normal_distribution<float> nd;
        for (const LoraPair& p : ad.lora) {
            SCOPED_TRACE(p.site.module + (interleaved ? " (interleaved)" : ""));
            ASSERT_TRUE(low.covers(p.site.w));
            const int64_t rows = 5;
            std::vector<float> x(rows * p.site.in), y1(rows * p.site.out), y2;
            for (float& v : x) v = nd(rng);
            for (float& v : y1) v = nd(rng);
            y2 = y1;
            for (int64_t i = 0; i < rows; ++i)
                low.apply(p.site.w, x.data() + i * p.site.in, 1, p.site.in, y1.data() + i * p.site.out, p.site.out);
            low.apply(p.site.w, x.data(), rows, p.site.in, y2.data(), p.site.out);
            for (size_t i = 0; i < y1.size(); ++i) ASSERT_NEAR(y1[i], y2[i], 1e-4f * (1 + std::fabs(y2[i]))) << i;
        }
    }
}

// ------------------------------------------------------------------------------ the HTTP side

struct Reply {
    int status = 0;
    json body;
};

Reply call(serve::Server& s, const std::string& method, const std::string& path, const json& body = nullptr,
           const std::string& key = "") {
    std::string req = method + " " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n";
    if (!key.empty()) req += "Authorization: Bearer " + key + "\r\n";
    const std::string text = body.is_null() ? "" : body.dump();
    if (!text.empty() || method == "POST") req += "Content-Type: application/json\r\nContent-Length: " + std::to_string(text.size()) + "\r\n";
    req += "\r\n" + text;
    const std::string out = s.process(req);
    Reply r;
    if (out.size() > 12) r.status = std::atoi(out.substr(9, 3).c_str());
    const size_t p = out.find("\r\n\r\n");
    if (p != std::string::npos) r.body = json::parse(out.substr(p + 4), nullptr, false);
    return r;
}

TEST(AdapterServing, ServerListsPicksLoadsAndUnloadsAdapters) {
    auto base = random_served_model(Dims{}, 7);
    const std::string d1 = fresh_dir("srv-lora1"), d2 = fresh_dir("srv-lora2");
    write_random_lora(d1, *base->model, 4, 1);
    write_random_lora(d2, *base->model, 8, 2);
    serve::ServerConfig cfg;
    cfg.admin_key = "adm";
    cfg.engine.slots = 4;
    cfg.engine.n_ctx = 128;
    cfg.engine.threads = 1;
    serve::Server srv(cfg);
    serve::AdapterMap start;
    start["one"] = serve::load_served_adapter("one", d1, 1.0, *base);
    srv.start(base, start);

    Reply r = call(srv, "GET", "/v1/models");
    ASSERT_EQ(r.status, 200);
    ASSERT_EQ(r.body["data"].size(), 2u) << r.body.dump();
    EXPECT_EQ(r.body["data"][0]["id"], "base");
    EXPECT_EQ(r.body["data"][1]["id"], "one");
    EXPECT_EQ(r.body["data"][1]["parent"], "base");
    EXPECT_EQ(r.body["data"][1]["root"], d1);
    EXPECT_EQ(call(srv, "GET", "/v1/models/one").body["parent"], "base");

    const json req = {{"prompt", "a a a"}, {"max_tokens", 6}, {"temperature", 0}};
    auto complete = [&](const std::string& model) {
        json j = req;
        j["model"] = model;
        return call(srv, "POST", "/v1/completions", j);
    };
    Reply b = complete("base"), one = complete("one");
    ASSERT_EQ(b.status, 200) << b.body.dump();
    ASSERT_EQ(one.status, 200) << one.body.dump();
    EXPECT_EQ(one.body["model"], "one");

    // Unknown: 404 naming what is served.
    Reply unknown = complete("two");
    EXPECT_EQ(unknown.status, 404);
    EXPECT_EQ(unknown.body["error"]["code"], "model_not_found");
    const std::string msg = unknown.body["error"]["message"];
    EXPECT_NE(msg.find("'two' does not exist"), std::string::npos) << msg;
    EXPECT_NE(msg.find("'base', 'one'"), std::string::npos) << msg;

    // Load at run time (admin key), then it serves; unload, then it is a 404 again.
    EXPECT_EQ(call(srv, "POST", "/admin/adapters", {{"action", "load"}, {"name", "two"}, {"path", d2}}).status, 401);
    Reply load = call(srv, "POST", "/admin/adapters", {{"action", "load"}, {"name", "two"}, {"path", d2}}, "adm");
    ASSERT_EQ(load.status, 200) << load.body.dump();
    EXPECT_EQ(load.body["parent"], "base");
    EXPECT_EQ(call(srv, "GET", "/v1/models").body["data"].size(), 3u);
    Reply two = complete("two");
    ASSERT_EQ(two.status, 200) << two.body.dump();
    EXPECT_EQ(two.body["model"], "two");
    EXPECT_EQ(call(srv, "POST", "/admin/adapters", {{"action", "unload"}, {"name", "two"}}, "adm").status, 200);
    EXPECT_EQ(complete("two").status, 404);
    Reply again = call(srv, "POST", "/admin/adapters", {{"action", "unload"}, {"name", "two"}}, "adm");
    EXPECT_EQ(again.status, 404);
    EXPECT_EQ(again.body["error"]["code"], "adapter_not_found");
    // Per-model request counters.
    const std::string metrics = srv.process("GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    EXPECT_NE(metrics.find("llmforge_model_requests_total{model=\"one\"} 1"), std::string::npos) << metrics;
    EXPECT_NE(metrics.find("llmforge_model_requests_total{model=\"two\"} 1"), std::string::npos);
    EXPECT_NE(metrics.find("llmforge_adapters_loaded 1"), std::string::npos);

    // Bad loads: one-line errors, nothing changes.
    auto bad_load = [&](const json& body, int status, const std::string& needle) {
        Reply e = call(srv, "POST", "/admin/adapters", body, "adm");
        EXPECT_EQ(e.status, status) << e.body.dump();
        const std::string m = e.body["error"]["message"].is_string() ? e.body["error"]["message"].get<std::string>() : "";
        EXPECT_NE(m.find(needle), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    };
    bad_load({{"action", "load"}, {"name", "x"}, {"path", d1 + "-missing"}}, 404, "no such folder");
    const std::string not_adapter = fresh_dir("not-an-adapter");
    fs::create_directories(not_adapter);
    bad_load({{"action", "load"}, {"name", "x"}, {"path", not_adapter}}, 400, "not a PEFT adapter folder");
    bad_load({{"action", "load"}, {"name", "base"}, {"path", d1}}, 400, "is the base model's id");
    Dims wider;
    wider.C = 24;
    auto other = random_served_model(wider, 9, "other");
    const std::string d_other = fresh_dir("srv-lora-other");
    write_random_lora(d_other, *other->model, 4, 3);
    bad_load({{"action", "load"}, {"name", "x"}, {"path", d_other}}, 400, "adapter 'x' on model 'base'");
    Adapter prompt_tuning;
    prompt_tuning.cfg.type = PeftType::kPromptTuning;
    prompt_tuning.cfg.num_virtual_tokens = 2;
    prompt_tuning.cfg.token_dim = 16;
    prompt_tuning.prompt.assign(32, 0.5f);
    const std::string d_pt = fresh_dir("srv-prompt-tuning");
    write_adapter(d_pt, prompt_tuning);
    bad_load({{"action", "load"}, {"name", "x"}, {"path", d_pt}}, 400, "serve runs LoRA adapters only");
    bad_load({{"action", "load"}, {"name", "x"}}, 400, "expected {\"action\": \"load\"");
    bad_load({{"action", "rename"}, {"name", "x"}}, 400, "expected");
    EXPECT_EQ(call(srv, "GET", "/v1/models").body["data"].size(), 2u);
}

TEST(AdapterServing, AdapterOptionParsing) {
    const serve::AdapterOption o = serve::parse_adapter_option("sql=/tmp/a=b");
    EXPECT_EQ(o.name, "sql");
    EXPECT_EQ(o.path, "/tmp/a=b");
    EXPECT_THROW(serve::parse_adapter_option("/tmp/dir"), Error);
    EXPECT_THROW(serve::parse_adapter_option("=dir"), Error);
    EXPECT_THROW(serve::parse_adapter_option("name="), Error);
    EXPECT_THROW(serve::check_adapter_name("has space", "base"), Error);
    EXPECT_NO_THROW(serve::check_adapter_name("org/sql-lora:v2", "base"));
}

}  // namespace
}  // namespace llmforge
