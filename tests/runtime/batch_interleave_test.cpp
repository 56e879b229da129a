// Batch invariance under a server-like schedule: sequences join (prompt chunks) and leave while
// others decode, the batch changing every step; in batch-invariant mode each sequence's greedy
// tokens and logits must be bit-identical to running it alone.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

struct Stream {
    std::vector<int32_t> tokens;  // prompt, then generated
    size_t prompt = 0, fed = 0;   // tokens already through the model
    int64_t max_new = 0, start_step = 0;
    std::unique_ptr<KvMemory> mem;
    std::vector<float> logits;
    std::vector<std::vector<float>> history;  // logits of each generated token
};

int32_t argmax(const float* x, int64_t n) { return static_cast<int32_t>(std::max_element(x, x + n) - x); }

// Runs the streams to completion, `together` in one changing batch per step, or one at a time.
void run(const Model& m, std::vector<Stream>& ss, bool together, ThreadPool& pool) {
    const int64_t V = m.config().n_vocab;
    ForwardScratch s;
    s.batch_invariant = true;
    for (auto& st : ss) {
        st.mem = m.new_memory(256);
        st.logits.assign(V, 0.0f);
    }
    auto done = [&](const Stream& st) { return st.tokens.size() >= st.prompt + st.max_new && st.fed == st.tokens.size(); };
    auto step = [&](std::vector<Stream*> active) {
        std::vector<SeqBatch> b;
        for (Stream* st : active) {
            // Prompts go in chunks of 5; then one token per step.
            const int64_t n = std::min<int64_t>(st->fed < st->prompt ? 5 : 1, st->tokens.size() - st->fed);
            const bool last = st->fed + n == st->tokens.size();
            b.push_back({st->mem.get(), st->tokens.data() + st->fed, n, static_cast<int64_t>(st->fed),
                         last ? st->logits.data() : nullptr, last ? 1 : 0});
        }
        m.forward_batch(b.data(), static_cast<int64_t>(b.size()), pool, s);
        for (size_t j = 0; j < active.size(); ++j) {
            Stream* st = active[j];
            st->fed += b[j].n;
            if (b[j].n_out == 1 && st->tokens.size() < st->prompt + st->max_new) {
                st->history.push_back(st->logits);
                st->tokens.push_back(argmax(st->logits.data(), V));
            }
        }
    };
    if (!together) {
        for (auto& st : ss)
            while (!done(st)) step({&st});
        return;
    }
    for (int64_t t = 0;; ++t) {
        std::vector<Stream*> active;
        bool any_left = false;
        for (auto& st : ss) {
            if (done(st)) continue;
            any_left = true;
            if (t >= st.start_step) active.push_back(&st);
        }
        if (!any_left) break;
        if (!active.empty()) step(active);
    }
}

std::vector<Stream> streams() {
    std::vector<Stream> ss(6);
    const std::vector<std::vector<int32_t>> prompts = {
        {1, 400, 261, 35}, {1, 22, 33, 44, 55, 66, 77, 88, 99}, {1, 5}, {1, 300, 301, 302, 303, 304, 305, 306, 307, 308, 309, 310, 311},
        {1, 9, 10}, {1, 77, 78, 79, 80, 81, 82}};
    for (size_t i = 0; i < ss.size(); ++i) {
        ss[i].tokens = prompts[i];
        ss[i].prompt = prompts[i].size();
        ss[i].max_new = 12 + 5 * static_cast<int64_t>(i);
        ss[i].start_step = static_cast<int64_t>(i * 3 % 7);
    }
    return ss;
}

void expect_same(const Model& m) {
    for (int threads : {1, 2}) {
        ThreadPool pool(threads);
        auto alone = streams(), together = streams();
        run(m, alone, false, pool);
        run(m, together, true, pool);
        for (size_t i = 0; i < alone.size(); ++i) {
            EXPECT_EQ(alone[i].tokens, together[i].tokens) << "stream " << i << ", threads " << threads;
            ASSERT_EQ(alone[i].history.size(), together[i].history.size());
            for (size_t k = 0; k < alone[i].history.size(); ++k)
                ASSERT_EQ(std::memcmp(alone[i].history[k].data(), together[i].history[k].data(),
                                      alone[i].history[k].size() * sizeof(float)), 0)
                    << "stream " << i << " token " << k << ", threads " << threads;
        }
    }
}

TEST(BatchInterleave, F32StreamsJoiningAndLeavingAreBitIdenticalToAlone) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    expect_same(*Model::load(dir + "/stories260K.bin", dir + "/tok512.bin"));
}

}  // namespace
}  // namespace llmforge
