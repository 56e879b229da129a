// The scheduler with quantised KV caches (serve --cache-type-k / --cache-type-v, carried by
// ModelHandle::kv_types): the KV budget counts the cache's real bytes, every slot's memory has
// the handle's types, greedy output through q8_0 / f16 caches matches the f32 cache on a small
// random model, and the prefix cache hands a quantised memory's blocks back.
#include <gtest/gtest.h>

#include <chrono>
#include <random>

#include "runtime/scheduler.h"
#include "serve/tiny_served_model.h"

namespace llmforge {
namespace {

using Clock = std::chrono::steady_clock;

// The tiny ChatML vocabulary with a 1-layer random Llama whose heads are 32 wide (2 query heads,
// 1 KV head: K and V rows of 32 values, one q8_0 block each).
std::shared_ptr<ModelHandle> handle(KvTypes types) {
    const Vocab v = test::tiny_chatml_vocab();
    ModelFiles f;
    f.path = "tiny32";
    f.format = "gguf";
    ModelConfig& c = f.config;
    c.n_vocab = static_cast<int64_t>(v.tokens.size());
    c.n_embd = 64;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 32;
    c.n_ff = 64;
    c.n_ctx_train = 256;
    f.vocab = v;
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.0f, 0.1f);
    const int64_t C = c.n_embd;
    const std::vector<std::pair<std::string, std::vector<int64_t>>> shapes = {
        {"token_embd.weight", {c.n_vocab, C}}, {"output_norm.weight", {C}},       {"output.weight", {c.n_vocab, C}},
        {"blk.0.attn_norm.weight", {C}},       {"blk.0.attn_q.weight", {64, C}},  {"blk.0.attn_k.weight", {32, C}},
        {"blk.0.attn_v.weight", {32, C}},      {"blk.0.attn_output.weight", {C, 64}}, {"blk.0.ffn_norm.weight", {C}},
        {"blk.0.ffn_gate.weight", {64, C}},    {"blk.0.ffn_up.weight", {64, C}},  {"blk.0.ffn_down.weight", {C, 64}},
    };
    for (const auto& [name, shape] : shapes) {
        Tensor t = Tensor::empty(DType::F32, shape, name);
        const bool norm = shape.size() == 1;
        for (int64_t i = 0; i < t.numel(); ++i) t.ptr<float>()[i] = norm ? 1.0f : nd(rng);
        f.tensors[name] = t;
    }
    auto h = std::make_shared<ModelHandle>();
    h->id = "tiny32";
    h->model = Model::from_files(std::move(f));
    h->tokenizer = Tokenizer::create(v);
    h->kv_types = types;
    return h;
}

struct Outcome {
    std::vector<int32_t> tokens;
    std::string finish_reason, error;
    int64_t cached_tokens = -1;
};

Outcome run_one(Scheduler& sched, const std::shared_ptr<const ModelHandle>& m, const std::vector<int32_t>& prompt,
                int64_t max_tokens) {
    auto stream = std::make_shared<RequestStream>();
    SeqRequest r;
    r.model = m;
    r.stream = stream;
    r.prompt = prompt;
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    std::vector<SeqRequest> seqs;
    seqs.push_back(std::move(r));
    Outcome o;
    if (sched.submit(std::move(seqs)) != Scheduler::Submit::kAccepted) {
        o.error = "not accepted";
        return o;
    }
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    SeqEvent e;
    while (Clock::now() < deadline) {
        if (!stream->pop(e, 100)) continue;
        if (e.kind == SeqEvent::kToken) {
            if (e.token.id >= 0) o.tokens.push_back(e.token.id);
            continue;
        }
        if (e.kind == SeqEvent::kDone) {
            o.finish_reason = e.finish_reason;
            o.cached_tokens = e.cached_tokens;
        } else {
            o.error = e.text;
        }
        break;
    }
    return o;
}

SchedulerConfig config(size_t budget) {
    SchedulerConfig c;
    c.slots = 1;
    c.n_ctx = 256;
    c.threads = 1;
    c.kv_budget_bytes = budget;
    return c;
}

std::vector<int32_t> prompt_of(int n) {
    std::vector<int32_t> p = {1};
    for (int i = 1; i < n; ++i) p.push_back(8 + (i * 37) % 256);
    return p;
}

TEST(KvCacheTypesServing, TheBudgetCountsTheRealBytes) {
    auto f32 = handle({}), q8 = handle({DType::Q8_0, DType::Q8_0}), q4 = handle({DType::Q4_0, DType::F16});
    EXPECT_EQ(f32->kv_bytes_per_position(), 2u * 32 * 4);
    EXPECT_EQ(q8->kv_bytes_per_position(), 2u * 34);
    EXPECT_EQ(q4->kv_bytes_per_position(), 18u + 32 * 2);
    // 100 positions of q8_0: a request of 60 positions fits; in f32 it needs 15,360 bytes.
    const size_t budget = 100 * q8->kv_bytes_per_position();
    {
        Scheduler sched(q8, config(budget));
        const Outcome o = run_one(sched, q8, prompt_of(10), 50);
        EXPECT_EQ(o.error, "");
        EXPECT_EQ(o.finish_reason, "length");
        EXPECT_EQ(o.tokens.size(), 50u);
    }
    {
        Scheduler sched(f32, config(budget));
        EXPECT_EQ(run_one(sched, f32, prompt_of(10), 50).error, "not accepted");  // over budget in f32 bytes
    }
}

TEST(KvCacheTypesServing, SlotsUseTheHandlesTypesAndThePrefixCache) {
    const std::vector<int32_t> prompt = prompt_of(140);
    auto f32 = handle({});
    Scheduler ref_sched(f32, config(0));
    const Outcome want = run_one(ref_sched, f32, prompt, 12);
    ASSERT_EQ(want.tokens.size(), 12u) << want.error;
    for (KvTypes t : {KvTypes{DType::F16, DType::F16}, KvTypes{DType::Q8_0, DType::Q8_0}}) {
        auto h = handle(t);
        auto other = handle({DType::Q8_0, DType::Q4_0});
        Scheduler sched(h, config(0));
        const Outcome a = run_one(sched, h, prompt, 12);
        EXPECT_EQ(a.cached_tokens, 0);
        // Random weights of sd 0.1: logits differ by far less than their gaps, so greedy output
        // through the quantised cache is the f32 cache's.
        EXPECT_EQ(a.tokens, want.tokens) << kv_types_name(t);
        const Outcome o = run_one(sched, other, prompt, 12);  // replaces the slot's memory
        EXPECT_EQ(o.cached_tokens, 0);  // another model with other types: nothing reused
        EXPECT_EQ(o.error, "");
        const Outcome b = run_one(sched, h, prompt, 12);
        EXPECT_EQ(b.cached_tokens, 128) << kv_types_name(t);  // two 64-token blocks from the cache
        EXPECT_EQ(b.tokens, a.tokens) << kv_types_name(t);
        const SchedulerStats st = sched.stats();
        EXPECT_EQ(st.kv_cache_bytes, 256u * h->kv_bytes_per_position()) << kv_types_name(t);
    }
}

}  // namespace
}  // namespace llmforge
