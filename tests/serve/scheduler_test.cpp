// The runtime's continuous-batching Scheduler on the tiny zero-weight model (every logit equal,
// so greedy picks token 0, whose text is empty): a failed step fails only the sequence that
// caused it, each sequence carries its own constraint stage, the prefix cache keeps the blocks
// of several models (keyed by model and adapter), and sampling runs outside the scheduler's lock.
// Images (runtime/multimodal.h), on the tiny model with random weights: a prompt of tokens and
// image rows, prefilled in small chunks beside other sequences, gives Context's tokens exactly;
// the prefix cache and slot reuse key image positions by the image's content.
// Every wait is bounded by a generous deadline on an observable event, never a fixed sleep.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <future>
#include <map>
#include <memory>
#include <thread>

#include "runtime/context.h"
#include "runtime/multimodal.h"
#include "runtime/scheduler.h"
#include "serve/tiny_served_model.h"
#include "test_util.h"

namespace llmforge {
namespace {

using Clock = std::chrono::steady_clock;

struct SeqOutcome {
    std::vector<int32_t> tokens;
    std::string text, finish_reason, error;
    ErrorKind error_kind = ErrorKind::kInternal;
    int64_t cached_tokens = -1, completion_tokens = -1;
    bool ended = false;
};

// Collects the events of `n` sequences (indices 0..n-1) until each has ended.
std::vector<SeqOutcome> collect(RequestStream& stream, size_t n) {
    std::vector<SeqOutcome> out(n);
    size_t ended = 0;
    const auto deadline = Clock::now() + std::chrono::seconds(60);
    SeqEvent e;
    while (ended < n && Clock::now() < deadline) {
        if (!stream.pop(e, 100)) continue;
        SeqOutcome& o = out.at(static_cast<size_t>(e.index));
        if (e.kind == SeqEvent::kToken) {
            o.text += e.text;
            if (e.token.id >= 0) o.tokens.push_back(e.token.id);
        } else {
            o.ended = true;
            ++ended;
            if (e.kind == SeqEvent::kDone) {
                o.finish_reason = e.finish_reason;
                o.cached_tokens = e.cached_tokens;
                o.completion_tokens = e.completion_tokens;
            } else {
                o.error = e.text;
                o.error_kind = e.error_kind;
            }
        }
    }
    EXPECT_EQ(ended, n) << "sequences still running after 60 s";
    return out;
}

SeqRequest greedy_seq(const std::shared_ptr<const ModelHandle>& m, const std::shared_ptr<RequestStream>& stream, int index,
                      std::vector<int32_t> prompt, int64_t max_tokens) {
    SeqRequest r;
    r.model = m;
    r.stream = stream;
    r.index = index;
    r.prompt = std::move(prompt);
    r.sampling.temperature = 0;
    r.max_tokens = max_tokens;
    return r;
}

SchedulerConfig small_config(int slots) {
    SchedulerConfig c;
    c.slots = slots;
    c.n_ctx = 256;
    c.threads = 1;
    return c;
}

TEST(Scheduler, AFailedStepFailsOnlyTheSequenceThatCausedIt) {
    std::shared_ptr<const ModelHandle> m = test::tiny_served_model(true);
    Scheduler sched(m, small_config(4));
    auto stream = std::make_shared<RequestStream>();
    // Three prompts go through one batched step; the middle one holds a token id outside the
    // 264-token vocabulary, which the forward pass rejects.
    std::vector<SeqRequest> seqs;
    seqs.push_back(greedy_seq(m, stream, 0, {1, 4, 5, 4}, 6));
    seqs.push_back(greedy_seq(m, stream, 1, {1, 4, 9999, 4}, 6));
    seqs.push_back(greedy_seq(m, stream, 2, {1, 5, 5}, 6));
    ASSERT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
    const std::vector<SeqOutcome> out = collect(*stream, 3);
    EXPECT_EQ(out[1].finish_reason, "");
    EXPECT_NE(out[1].error.find("token id 9999"), std::string::npos) << out[1].error;
    EXPECT_EQ(out[1].error_kind, ErrorKind::kBadInput);
    for (int i : {0, 2}) {
        EXPECT_EQ(out[i].error, "") << "sequence " << i;
        EXPECT_EQ(out[i].finish_reason, "length") << "sequence " << i;
        EXPECT_EQ(out[i].completion_tokens, 6);
        EXPECT_EQ(out[i].tokens, std::vector<int32_t>(6, 0));
    }
    // The scheduler goes on serving.
    auto again = std::make_shared<RequestStream>();
    std::vector<SeqRequest> next;
    next.push_back(greedy_seq(m, again, 0, {1, 4}, 3));
    ASSERT_EQ(sched.submit(std::move(next)), Scheduler::Submit::kAccepted);
    EXPECT_EQ(collect(*again, 1)[0].finish_reason, "length");
    // The counters are updated when the round that ended the sequences releases their slots.
    const auto until = Clock::now() + std::chrono::seconds(60);
    while (!sched.idle() && Clock::now() < until) std::this_thread::yield();
    const SchedulerStats st = sched.stats();
    EXPECT_EQ(st.sequences_failed, 1u);
    EXPECT_EQ(st.sequences_done, 3u);
}

// Allows only the tokens whose text is `text` (a one-token grammar).
class OnlyText : public SamplerStage {
public:
    explicit OnlyText(std::string text) : text_(std::move(text)) {}
    const char* name() const override { return "only-text"; }
    void apply(Candidates& c, const SamplerContext& ctx) override {
        c.remove_if([&](const Candidate& x) { return ctx.tokenizer->token_to_piece(x.id) != text_; });
    }

private:
    std::string text_;
};

TEST(Scheduler, EachSequenceCarriesItsOwnConstraint) {
    std::shared_ptr<const ModelHandle> m = test::tiny_served_model(true);
    Scheduler sched(m, small_config(2));
    auto stream = std::make_shared<RequestStream>();
    std::vector<SeqRequest> seqs;
    seqs.push_back(greedy_seq(m, stream, 0, {1, 4}, 5));
    seqs.push_back(greedy_seq(m, stream, 1, {1, 4}, 5));
    std::vector<OnlyText*> made;
    seqs[0].constraint = [&made] {
        auto s = std::make_unique<OnlyText>("a");
        made.push_back(s.get());
        return s;
    };
    ASSERT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
    const std::vector<SeqOutcome> out = collect(*stream, 2);
    EXPECT_EQ(out[0].tokens, std::vector<int32_t>(5, 4)) << "the constrained sequence only says 'a'";
    EXPECT_EQ(out[0].text, "aaaaa");
    EXPECT_EQ(out[1].tokens, std::vector<int32_t>(5, 0)) << "its neighbour is unconstrained";
    ASSERT_EQ(made.size(), 1u) << "one constraint per sequence that asked for one";
}

TEST(Scheduler, PrefixCacheKeepsTheBlocksOfSeveralModelsAndAdapters) {
    std::shared_ptr<const ModelHandle> a = test::tiny_served_model(true), b = test::tiny_served_model(true);
    ASSERT_NE(a->serial, b->serial);
    // One slot, and never the same (model, adapter) twice in a row: each run replaces the slot's
    // memory, so reuse can only come from the prefix cache.
    Scheduler sched(a, small_config(1));
    std::vector<int32_t> prompt = {1};
    for (int i = 0; i < 150; ++i) prompt.push_back(4 + i % 2);
    auto run = [&](const std::shared_ptr<const ModelHandle>& m, const std::string& adapter) {
        auto stream = std::make_shared<RequestStream>();
        std::vector<SeqRequest> seqs;
        seqs.push_back(greedy_seq(m, stream, 0, prompt, 2));
        seqs[0].adapter = adapter;
        EXPECT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
        const SeqOutcome o = collect(*stream, 1)[0];
        EXPECT_EQ(o.finish_reason, "length") << o.error;
        return o.cached_tokens;
    };
    EXPECT_EQ(run(a, ""), 0);
    EXPECT_EQ(run(b, ""), 0);    // another model: its own blocks, a's stay
    EXPECT_EQ(run(a, ""), 128);  // two whole 64-token blocks back from the cache
    EXPECT_EQ(run(b, ""), 128);
    EXPECT_EQ(run(a, "lora-1"), 0);  // another adapter: other K/V
    EXPECT_EQ(run(b, ""), 128);
    EXPECT_EQ(run(a, "lora-1"), 128);
    EXPECT_EQ(run(a, ""), 128);
    EXPECT_GT(sched.stats().prefix_cache_bytes, 0u);
}

// Calls into the scheduler from inside the sampler chain, on the loop thread: this returns only
// if sampling runs outside the scheduler's lock (the lock is not recursive).
class CallsBack : public SamplerStage {
public:
    CallsBack(Scheduler* s, int* calls) : sched_(s), calls_(calls) {}
    const char* name() const override { return "calls-back"; }
    void apply(Candidates&, const SamplerContext&) override {
        std::promise<size_t> got;
        std::future<size_t> f = got.get_future();
        std::thread t([this, &got] { got.set_value(sched_->stats().queue_depth); });
        if (f.wait_for(std::chrono::seconds(60)) != std::future_status::ready) {
            std::fprintf(stderr, "Scheduler.SamplingRunsOutsideTheLock: stats() blocked while a stage ran: "
                                 "sampling holds the scheduler's lock\n");
            std::abort();  // the blocked thread cannot be joined
        }
        t.join();
        ++*calls_;
    }

private:
    Scheduler* sched_;
    int* calls_;
};

TEST(Scheduler, SamplingRunsOutsideTheLock) {
    std::shared_ptr<const ModelHandle> m = test::tiny_served_model(true);
    Scheduler sched(m, small_config(1));
    auto stream = std::make_shared<RequestStream>();
    std::vector<SeqRequest> seqs;
    seqs.push_back(greedy_seq(m, stream, 0, {1, 4}, 3));
    int calls = 0;  // written on the loop thread, read after the sequence's done event
    seqs[0].constraint = [&] { return std::make_unique<CallsBack>(&sched, &calls); };
    ASSERT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
    const SeqOutcome o = collect(*stream, 1)[0];
    EXPECT_EQ(o.finish_reason, "length");
    EXPECT_EQ(o.completion_tokens, 3);
    EXPECT_EQ(calls, 3);
}

// ----------------------------------------------------------------------------------------- images

// The tiny model with random weights (its outputs depend on every row), as the scheduler runs it.
std::shared_ptr<const ModelHandle> random_tiny_model() {
    auto m = test::tiny_served_model(false);
    m->model = test::tiny_zero_model(test::tiny_chatml_vocab(), 7);
    return m;
}

PromptImage random_image(int64_t rows, uint64_t seed) {
    PromptImage im;
    im.n_rows = rows;
    im.rows = test::randn(static_cast<size_t>(rows * 8), seed, 1.0f);
    im.hash = seed * 0x9e3779b97f4a7c15ull;
    return im;
}

// pieces: token runs, and -1 - i for image i.
std::shared_ptr<const MultimodalPrompt> image_prompt(const std::vector<std::vector<int32_t>>& pieces,
                                                     std::vector<PromptImage> images) {
    auto p = std::make_shared<MultimodalPrompt>();
    for (const auto& piece : pieces) {
        if (piece.size() == 1 && piece[0] < 0) {
            p->pieces.push_back({{}, -1 - piece[0]});
        } else {
            p->pieces.push_back({piece, -1});
        }
    }
    p->images = std::move(images);
    return p;
}

SeqRequest image_seq(const std::shared_ptr<const ModelHandle>& m, const std::shared_ptr<RequestStream>& stream, int index,
                     const std::shared_ptr<const MultimodalPrompt>& p, int64_t max_tokens) {
    SeqRequest r = greedy_seq(m, stream, index, p->position_keys(), max_tokens);
    r.images = p;
    return r;
}

// Greedy tokens from Context, the prompt fed as the CLI feeds it (feed_multimodal_prompt), in
// batch-invariant mode as the scheduler runs.
std::vector<int32_t> context_greedy(const ModelHandle& m, const MultimodalPrompt& p, int64_t n) {
    ContextParams cp;
    cp.n_ctx = 256;
    cp.n_threads = 1;
    Context ctx(*m.model, cp);
    ctx.scratch().batch_invariant = true;
    const std::vector<int32_t> last = feed_multimodal_prompt(ctx, p);
    std::vector<float> logits = last.empty() ? ctx.logits() : ctx.decode(last);
    std::vector<int32_t> out;
    while (static_cast<int64_t>(out.size()) < n) {
        const int32_t t = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (m.tokenizer->is_eog(t)) break;
        out.push_back(t);
        logits = ctx.decode({t});
    }
    return out;
}

TEST(SchedulerImages, ImagePromptsGiveContextsTokensInSmallChunksBesideOthers) {
    const auto m = random_tiny_model();
    SchedulerConfig cfg = small_config(3);
    cfg.step_prompt_tokens = 16;  // images of 40 and 23 rows go in several chunks, shared with the others
    Scheduler sched(m, cfg);
    const auto a = image_prompt({{1, 6, 4}, {-1}, {5, 4, 7, 3, 10, 20}, {-2}, {4, 5, 100}},
                                {random_image(40, 1), random_image(23, 2)});
    const auto b = image_prompt({{1, 6}, {-1}}, {random_image(30, 3)});  // ends with an image
    const std::vector<int32_t> text = {1, 6, 40, 41, 42, 43, 44, 45, 46, 47, 48, 49, 50, 51, 52, 53, 54, 55, 56, 57};
    auto stream = std::make_shared<RequestStream>();
    std::vector<SeqRequest> seqs;
    seqs.push_back(image_seq(m, stream, 0, a, 12));
    seqs.push_back(greedy_seq(m, stream, 1, text, 12));
    seqs.push_back(image_seq(m, stream, 2, b, 12));
    ASSERT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
    const std::vector<SeqOutcome> o = collect(*stream, 3);
    for (const auto& x : o) ASSERT_TRUE(x.error.empty()) << x.error;
    EXPECT_EQ(o[0].tokens, context_greedy(*m, *a, 12));
    EXPECT_EQ(o[1].tokens, context_greedy(*m, *image_prompt({text}, {}), 12));
    EXPECT_EQ(o[2].tokens, context_greedy(*m, *b, 12));
    // The rows matter: other images, other tokens.
    EXPECT_NE(o[0].tokens, context_greedy(*m, *image_prompt({{1, 6, 4}, {-1}, {5, 4, 7, 3, 10, 20}, {-2}, {4, 5, 100}},
                                                            {random_image(40, 5), random_image(23, 6)}), 12));
    const SchedulerStats st = sched.stats();
    EXPECT_EQ(st.prompt_tokens, static_cast<uint64_t>(a->n_positions() + b->n_positions()) + text.size());
}

TEST(SchedulerImages, CachedPositionsFollowTheImagesContent) {
    const auto m = random_tiny_model();
    Scheduler sched(m, small_config(1));  // one slot: it keeps the last sequence's positions
    auto prompt_with = [](PromptImage im) {
        return image_prompt({{1, 6, 4}, {-1}, {5, 4, 7, 3, 10, 20, 4, 5}}, {std::move(im)});
    };
    auto run = [&](const std::shared_ptr<const MultimodalPrompt>& p) {
        auto stream = std::make_shared<RequestStream>();
        std::vector<SeqRequest> seqs;
        seqs.push_back(image_seq(m, stream, 0, p, 2));
        EXPECT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
        const SeqOutcome o = collect(*stream, 1)[0];
        EXPECT_EQ(o.error, "");
        return o.cached_tokens;
    };
    const auto first = prompt_with(random_image(100, 1));  // 111 positions: one whole 64-position block
    EXPECT_EQ(run(first), 0);
    EXPECT_EQ(run(prompt_with(random_image(100, 1))), 110);  // the same image: the slot's positions, all but the last
    EXPECT_EQ(run(prompt_with(random_image(100, 2))), 3);    // another image: only the text before it
    EXPECT_EQ(run(image_prompt({{1, 30, 31}}, {})), 1);      // text: the slot now holds the other image
    EXPECT_EQ(run(prompt_with(random_image(100, 1))), 64);   // the first image's block, from the prefix cache
    // The same rows under another hash are another image (the hash stands for the content).
    PromptImage renamed = random_image(100, 1);
    renamed.hash ^= 1;
    EXPECT_EQ(run(prompt_with(renamed)), 3);
}

TEST(SchedulerImages, RowsOfAnotherWidthFailOnlyTheirSequence) {
    const auto m = random_tiny_model();
    Scheduler sched(m, small_config(2));
    PromptImage wide = random_image(4, 1);
    wide.rows.resize(4 * 16);  // 16 wide; the model's rows are 8
    const auto bad = image_prompt({{1}, {-1}, {4}}, {wide});
    auto stream = std::make_shared<RequestStream>();
    std::vector<SeqRequest> seqs;
    seqs.push_back(image_seq(m, stream, 0, bad, 2));
    seqs.push_back(greedy_seq(m, stream, 1, {1, 4, 5}, 2));
    ASSERT_EQ(sched.submit(std::move(seqs)), Scheduler::Submit::kAccepted);
    const std::vector<SeqOutcome> o = collect(*stream, 2);
    EXPECT_NE(o[0].error.find("image 1 of the prompt has 64 values for 4 rows, expected rows of the model's embedding "
                              "width 8"), std::string::npos) << o[0].error;
    EXPECT_EQ(o[0].error_kind, ErrorKind::kBadInput);
    EXPECT_EQ(o[1].finish_reason, "length") << o[1].error;
}

}  // namespace
}  // namespace llmforge
