#include "runtime/scheduler.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>

#include "core/thread_pool.h"
#include "runtime/decode_step.h"
#include "runtime/multimodal.h"

namespace llmforge {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::atomic<uint64_t> g_next_serial{1};

// Log-softmax statistics of one logit row: the log-sum-exp and the entropy.
struct Dist {
    float lse = 0;
    double entropy = 0;
};
Dist distribution(const float* logits, int64_t V) {
    float m = logits[0];
    for (int64_t i = 1; i < V; ++i) m = std::max(m, logits[i]);
    double sum = 0, sum_pl = 0;
    for (int64_t i = 0; i < V; ++i) {
        const double e = std::exp(static_cast<double>(logits[i] - m));
        sum += e;
        sum_pl += e * (logits[i] - m);
    }
    Dist d;
    d.lse = m + static_cast<float>(std::log(sum));
    d.entropy = std::log(sum) - sum_pl / sum;  // H = lse - E[l], both shifted by m
    return d;
}

// A sequence that never reached a slot ends with a bare done event ("cancelled" when its consumer
// went away, "shutdown" when the scheduler stops).
void cancel_queued(const SeqRequest& q, const char* reason) {
    SeqEvent e;
    e.kind = SeqEvent::kDone;
    e.index = q.index;
    e.finish_reason = reason;
    q.stream->push(std::move(e));
}

// Orders a step's sequences so that those sharing a delta (an adapter) are adjacent, groups in
// the order their first member had (so no adapter: first when a generating slot has none), each
// group keeping its members' order. The forward pass applies one delta call per adjacent run;
// results do not depend on the order (batch invariance), only the number of calls does.
template <class Member>
void group_by_delta(std::vector<SeqBatch>& batch, std::vector<Member>& members) {
    std::vector<const LinearDelta*> firsts;
    std::vector<size_t> group(batch.size());
    for (size_t i = 0; i < batch.size(); ++i) {
        auto it = std::find(firsts.begin(), firsts.end(), batch[i].delta);
        group[i] = static_cast<size_t>(it - firsts.begin());
        if (it == firsts.end()) firsts.push_back(batch[i].delta);
    }
    if (firsts.size() < 2) return;
    std::vector<size_t> order(batch.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return group[a] < group[b]; });
    std::vector<SeqBatch> b2;
    std::vector<Member> m2;
    b2.reserve(batch.size());
    m2.reserve(batch.size());
    for (size_t i : order) {
        b2.push_back(batch[i]);
        m2.push_back(members[i]);
    }
    batch.swap(b2);
    members.swap(m2);
}

// Fails (one line) unless a sequence's images fit its model and its prompt is their positions.
void check_images(const SeqRequest& r, const Model& m) {
    if (!r.images) return;
    const MultimodalPrompt& mm = *r.images;
    const int64_t width = m.config().n_embd;
    for (size_t i = 0; i < mm.images.size(); ++i) {
        const PromptImage& im = mm.images[i];
        if (im.n_rows <= 0 || im.rows.size() != static_cast<size_t>(im.n_rows * width)) {
            fail("image %zu of the prompt has %zu values for %lld rows, expected rows of the model's embedding width "
                 "%lld (hint: the image encoder belongs to another model)",
                 i + 1, im.rows.size(), (long long)im.n_rows, (long long)width);
        }
    }
    if (mm.position_keys() != r.prompt) {
        fail_kind(ErrorKind::kInternal, "the sequence's prompt is not its images' position keys (%zu positions, the "
                  "images' prompt has %lld)", r.prompt.size(), (long long)mm.n_positions());
    }
}

// The run of prompt positions from `pos` one forward entry may take: the rest of the prompt, or
// with images the rest of the piece (a run of tokens, or one image) holding `pos`. *rows: the
// embedding row of `pos` when it is an image's, else null.
int64_t prompt_run(const SeqRequest& r, int64_t pos, const float** rows) {
    *rows = nullptr;
    const int64_t n = static_cast<int64_t>(r.prompt.size());
    if (!r.images) return n - pos;
    int64_t begin = 0;
    for (const MultimodalPrompt::Piece& piece : r.images->pieces) {
        const PromptImage* im = piece.image >= 0 ? &r.images->images[static_cast<size_t>(piece.image)] : nullptr;
        const int64_t len = im != nullptr ? im->n_rows : static_cast<int64_t>(piece.tokens.size());
        if (pos < begin + len) {
            if (im != nullptr) *rows = im->rows.data() + (pos - begin) * static_cast<int64_t>(im->rows.size() / im->n_rows);
            return begin + len - pos;
        }
        begin += len;
    }
    return n - pos;
}

}  // namespace

// ---------------------------------------------------------------------------------- ModelHandle

ModelHandle::ModelHandle() : serial(g_next_serial++) {}

size_t ModelHandle::kv_bytes_per_position() const {
    std::call_once(kv_once_, [&] {
        if (model) kv_bytes_ = model->new_memory(1, kv_types)->bytes_per_position();
    });
    return kv_bytes_;
}

// -------------------------------------------------------------------------------- RequestStream

void RequestStream::push(SeqEvent e) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        events_.push_back(std::move(e));
    }
    cv_.notify_one();
}

bool RequestStream::pop(SeqEvent& e, int timeout_ms) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
    e = std::move(events_.front());
    events_.pop_front();
    return true;
}

// ------------------------------------------------------------------------------------------ Slot

// A slot's fields are the loop thread's, except `busy`, `model`, `cache` and `req`, which change
// only under the lock (stats() reads them there).
struct Scheduler::Slot {
    std::shared_ptr<const ModelHandle> model;  // whose KV memory this is
    std::string adapter;                       // the adapter its cached K/V were computed with
    std::unique_ptr<KvMemory> cache;
    std::vector<int32_t> cached;  // the position keys (tokens, image rows) whose K/V are in cache positions [0, size)
    bool busy = false;
    bool ended = false;   // the sequence ended (or failed) this round; released under the lock
    int64_t lcp = 0;      // admission: tokens of `cached` the prompt starts with
    SeqRequest req;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<SeqDecoder> decoder;
    int64_t n_reused = 0;   // prompt tokens that came from a cache
    int32_t pending = -1;   // sampled, not yet fed
    double sum_logprob = 0, sum_entropy = 0;
    bool first_token = true;
    std::vector<float> logits;  // (V)

    int64_t prompt_left() const { return static_cast<int64_t>(req.prompt.size()) - static_cast<int64_t>(cached.size()); }
    bool active() const { return busy && !ended; }
};

// What one round adds to the counters; applied under the lock at the end of the round.
struct Scheduler::StepStats {
    uint64_t prompt_tokens = 0, generated_tokens = 0, prefix_lookup = 0, prefix_hit = 0, done = 0, failed = 0;
    std::vector<double> ttft;
};

// ------------------------------------------------------------------------------------- Scheduler

Scheduler::Scheduler(std::shared_ptr<const ModelHandle> model, SchedulerConfig cfg, FinishHook on_finish)
    : cfg_(cfg), on_finish_(std::move(on_finish)), model_(std::move(model)), prefix_(cfg.prefix_cache_bytes) {
    LF_ASSERT(cfg_.slots >= 1 && cfg_.n_ctx >= 1);
    for (int i = 0; i < cfg_.slots; ++i) slots_.push_back(std::make_unique<Slot>());
    stats_.slots = cfg_.slots;
    thread_ = std::thread([this] { loop(); });
}

Scheduler::~Scheduler() { shutdown(); }

void Scheduler::shutdown() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_ && !thread_.joinable()) return;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ModelHandle> Scheduler::model() const {
    std::lock_guard<std::mutex> lk(mu_);
    return model_;
}

void Scheduler::set_model(std::shared_ptr<const ModelHandle> m) {
    std::lock_guard<std::mutex> lk(mu_);
    model_ = std::move(m);
}

size_t Scheduler::reservation(const SeqRequest& r) {
    return r.model->kv_bytes_per_position() * (r.prompt.size() + static_cast<size_t>(r.max_tokens));
}

Scheduler::Submit Scheduler::submit(std::vector<SeqRequest> seqs) {
    if (cfg_.kv_budget_bytes > 0) {
        for (const auto& s : seqs)
            if (reservation(s) > cfg_.kv_budget_bytes) return Submit::kOverBudget;
    }
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_ || queue_.size() + seqs.size() > cfg_.max_queue) return Submit::kQueueFull;
        const double t = now_seconds();
        for (auto& s : seqs) {
            s.enqueued_at = t;
            queue_.push_back(std::move(s));
        }
    }
    cv_.notify_all();
    return Submit::kAccepted;
}

bool Scheduler::idle() {
    std::lock_guard<std::mutex> lk(mu_);
    if (!queue_.empty()) return false;
    for (auto& s : slots_)
        if (s->busy) return false;
    return true;
}

SchedulerStats Scheduler::stats() {
    std::lock_guard<std::mutex> lk(mu_);
    SchedulerStats out = stats_;
    stats_.ttft_seconds.clear();
    out.slots_busy = 0;
    out.kv_cache_bytes = 0;
    for (auto& s : slots_) {
        out.slots_busy += s->busy;
        if (s->cache) out.kv_cache_bytes += s->cache->bytes();
        if (s->busy) out.kv_reserved_bytes += reservation(s->req);
    }
    out.queue_depth = queue_.size();
    return out;
}

void Scheduler::loop() {
    ThreadPool pool(cfg_.threads);
    ForwardScratch scratch;
    scratch.batch_invariant = cfg_.batch_invariant;
    while (true) {
        std::vector<Slot*> admitted;
        {
            std::unique_lock<std::mutex> lk(mu_);
            for (auto it = queue_.begin(); it != queue_.end();) {
                if (it->stream->cancelled()) {
                    cancel_queued(*it, "cancelled");
                    it = queue_.erase(it);
                } else {
                    ++it;
                }
            }
            if (stop_) break;
            admitted = admit();
            if (std::none_of(slots_.begin(), slots_.end(), [](auto& s) { return s->busy; })) {
                cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
                continue;
            }
        }
        // Outside the lock from here: submit() and stats() never wait for a forward pass.
        const double t0 = now_seconds();
        StepStats st;
        for (Slot* s : admitted) start(*s, st);
        for (auto& s : slots_) {  // cancelled sequences leave between steps
            if (s->active() && s->req.stream->cancelled()) end(*s, "cancelled", st);
        }
        step(pool, scratch, st);
        release(st, now_seconds() - t0);
    }
    // Shutdown: everything still running or queued ends with "shutdown" (front ends report it as
    // an error, never as a normal finish).
    StepStats st;
    for (auto& s : slots_) {
        if (s->active()) end(*s, "shutdown", st);
    }
    release(st, 0);
    std::lock_guard<std::mutex> lk(mu_);
    for (auto& q : queue_) cancel_queued(q, "shutdown");
    queue_.clear();
}

// Called with mu_ held: queued sequences take free slots (first come, first served, within the
// KV budget). Returns the slots that got one; start() sets them up outside the lock.
std::vector<Scheduler::Slot*> Scheduler::admit() {
    for (auto& s : slots_) {  // free slots of a replaced model let it go
        if (!s->busy && s->model && s->model != model_) {
            s->cache.reset();
            s->model.reset();
            s->cached.clear();
        }
    }
    // Prefix blocks of a model that no longer exists (replaced, its last request done) can never
    // be asked for again: they leave at once instead of holding the budget until evicted.
    const auto gone = [](const std::weak_ptr<const ModelHandle>& w) { return w.expired(); };
    if (std::any_of(models_seen_.begin(), models_seen_.end(), gone)) {
        models_seen_.erase(std::remove_if(models_seen_.begin(), models_seen_.end(), gone), models_seen_.end());
        std::vector<uint64_t> live;
        for (const auto& w : models_seen_)
            if (auto m = w.lock()) live.push_back(m->serial);
        prefix_.forget_models_except(live);
    }
    size_t reserved = 0;
    for (auto& s : slots_)
        if (s->busy) reserved += reservation(s->req);
    std::vector<Slot*> admitted;
    while (!queue_.empty()) {
        SeqRequest& r = queue_.front();
        // The head waits until its reservation fits the budget.
        const size_t need = reservation(r);
        if (cfg_.kv_budget_bytes > 0 && reserved + need > cfg_.kv_budget_bytes) break;
        // The free slot whose cached tokens share the longest prefix with the prompt.
        Slot* best = nullptr;
        int64_t best_lcp = -1;
        for (auto& sp : slots_) {
            Slot& s = *sp;
            if (s.busy) continue;
            int64_t lcp = 0;
            if (s.model == r.model && s.adapter == r.adapter) {
                const size_t n = std::min(s.cached.size(), r.prompt.size());
                while (lcp < static_cast<int64_t>(n) && s.cached[lcp] == r.prompt[lcp]) ++lcp;
            }
            if (lcp > best_lcp) {
                best = &s;
                best_lcp = lcp;
            }
        }
        if (best == nullptr) break;
        reserved += need;
        Slot& s = *best;
        if (s.model != r.model || !s.cache) {
            s.cache.reset();
            s.cache = r.model->model->new_memory(cfg_.n_ctx, r.model->kv_types);
            s.model = r.model;
            s.cached.clear();
            best_lcp = 0;
        }
        const auto same = [&](const std::weak_ptr<const ModelHandle>& w) { return w.lock() == r.model; };
        if (std::none_of(models_seen_.begin(), models_seen_.end(), same)) models_seen_.push_back(r.model);
        s.adapter = r.adapter;
        s.lcp = best_lcp;
        s.req = std::move(r);
        queue_.pop_front();
        s.busy = true;
        s.ended = false;
        admitted.push_back(&s);
    }
    return admitted;
}

// A newly admitted sequence (outside the lock): prefix reuse, its sampler chain, its decoder.
void Scheduler::start(Slot& s, StepStats& st) {
    const std::vector<int32_t>& prompt = s.req.prompt;
    s.pending = -1;
    s.sum_logprob = s.sum_entropy = 0;
    s.first_token = true;
    s.n_reused = 0;
    try {
        check_images(s.req, *s.model->model);
        // At least one prompt position is always run, to get the logits of the next.
        const int64_t limit = static_cast<int64_t>(prompt.size()) - 1;
        int64_t reuse = std::min(s.lcp, limit);
        reuse = prefix_.restore(s.model->serial, s.adapter, prompt, limit, reuse, *s.cache);
        s.cached.assign(prompt.begin(), prompt.begin() + reuse);
        st.prefix_lookup += prompt.size();
        st.prefix_hit += reuse;
        s.n_reused = reuse;
        s.sampler = std::make_unique<Sampler>(s.req.sampling, s.model->tokenizer.get());
        if (s.req.constraint) s.sampler->add_stage(s.req.constraint(), StageSlot::kFirst);
        for (int32_t t : prompt)  // the penalties' history: text only (image rows have negative keys)
            if (!s.req.images || t >= 0) s.sampler->accept(t);
        DecodeOptions opt;
        opt.stop = s.req.stop;
        opt.max_tokens = s.req.max_tokens;
        opt.stop_on_bos = s.model->stop_on_bos;
        const int32_t prev = prompt.empty() || prompt.back() < 0 ? -1 : prompt.back();
        s.decoder = std::make_unique<SeqDecoder>(*s.model->tokenizer, *s.sampler, opt, prev);
    } catch (const std::exception& e) {
        fail_seq(s, e, st);
    }
}

// One batched forward per model over the active slots (generating rows first, then prompt chunks
// oldest request first), then each slot's decode step.
void Scheduler::step(ThreadPool& pool, ForwardScratch& scratch, StepStats& st) {
    // Sequences of one model go through the weights together (two groups only while a reload is
    // draining the old model).
    std::vector<const ModelHandle*> models;
    for (auto& s : slots_) {
        if (s->active() && std::find(models.begin(), models.end(), s->model.get()) == models.end())
            models.push_back(s->model.get());
    }
    for (const ModelHandle* m : models) {
        const int64_t V = m->model->config().n_vocab;
        std::vector<SeqBatch> batch;
        std::vector<Slot*> members;
        for (auto& sp : slots_) {  // generating slots first: one token each
            Slot& s = *sp;
            if (!s.active() || s.model.get() != m || s.pending < 0) continue;
            s.logits.resize(V);
            batch.push_back({s.cache.get(), &s.pending, 1, static_cast<int64_t>(s.cached.size()), s.logits.data(), 1});
            batch.back().delta = s.req.delta.get();
            members.push_back(&s);
        }
        std::vector<Slot*> prefilling;
        for (auto& sp : slots_) {
            if (sp->active() && sp->model.get() == m && sp->pending < 0) prefilling.push_back(sp.get());
        }
        std::stable_sort(prefilling.begin(), prefilling.end(),
                         [](const Slot* a, const Slot* b) { return a->req.enqueued_at < b->req.enqueued_at; });
        int64_t budget = cfg_.step_prompt_tokens;
        for (Slot* sp : prefilling) {
            Slot& s = *sp;
            if (budget <= 0) break;
            const int64_t left = s.prompt_left(), pos = static_cast<int64_t>(s.cached.size());
            // Image rows count against the budget like tokens; a chunk ends where its piece does.
            const float* rows = nullptr;
            const int64_t chunk = std::min(prompt_run(s.req, pos, &rows), budget);
            budget -= chunk;
            const bool last = chunk == left;
            s.logits.resize(V);
            batch.push_back({s.cache.get(), rows != nullptr ? nullptr : s.req.prompt.data() + pos, chunk, pos,
                             last ? s.logits.data() : nullptr, last ? 1 : 0});
            batch.back().embd = rows;
            batch.back().delta = s.req.delta.get();
            members.push_back(&s);
        }
        if (batch.empty()) continue;
        group_by_delta(batch, members);
        // A failed step is retried one sequence at a time: positions a failed attempt wrote are
        // not counted as cached, so running them again is safe, and only the sequences that fail
        // on their own are ended.
        std::vector<bool> ok(members.size(), true);
        try {
            m->model->forward_batch(batch.data(), static_cast<int64_t>(batch.size()), pool, scratch);
        } catch (const std::exception&) {
            for (size_t j = 0; j < members.size(); ++j) {
                try {
                    if (members.size() == 1) throw;
                    m->model->forward_batch(&batch[j], 1, pool, scratch);
                } catch (const std::exception& e) {
                    ok[j] = false;
                    fail_seq(*members[j], e, st);
                }
            }
        }
        for (size_t j = 0; j < members.size(); ++j) {
            if (!ok[j]) continue;
            Slot& s = *members[j];
            try {
                if (s.pending < 0) {
                    const auto from = s.req.prompt.begin() + batch[j].pos0;  // the positions' keys (images too)
                    s.cached.insert(s.cached.end(), from, from + batch[j].n);
                    st.prompt_tokens += batch[j].n;
                    if (s.prompt_left() == 0) {
                        prefix_.save(m->serial, s.adapter, s.req.prompt, static_cast<int64_t>(s.req.prompt.size()), *s.cache);
                    }
                } else {
                    s.cached.push_back(s.pending);
                    s.pending = -1;
                }
                if (batch[j].n_out == 0) continue;
                if (s.req.stream->cancelled()) {
                    end(s, "cancelled", st);
                } else {
                    next_token(s, st);
                }
            } catch (const std::exception& e) {
                fail_seq(s, e, st);
            }
        }
    }
}

// The slot's decode step on its fresh logits, and the token event with its log-probabilities.
void Scheduler::next_token(Slot& s, StepStats& st) {
    const int64_t V = static_cast<int64_t>(s.logits.size());
    const StepResult r = s.decoder->step(s.logits.data(), V, cfg_.n_ctx - static_cast<int64_t>(s.cached.size()));
    const Dist d = distribution(s.logits.data(), V);
    if (s.first_token) {
        st.ttft.push_back(now_seconds() - s.req.enqueued_at);
        s.first_token = false;
    }
    if (!r.kept) {
        end(s, "stop", st);
        return;
    }
    SeqEvent e;
    e.kind = SeqEvent::kToken;
    e.index = s.req.index;
    e.token = {r.token, s.logits[r.token] - d.lse};
    if (s.req.top_logprobs > 0) {
        const int k = static_cast<int>(std::min<int64_t>(s.req.top_logprobs, V));
        std::vector<int32_t> idx(V);
        for (int32_t i = 0; i < V; ++i) idx[i] = i;
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
            return s.logits[a] > s.logits[b] || (s.logits[a] == s.logits[b] && a < b);
        });
        for (int i = 0; i < k; ++i) e.top.push_back({idx[i], s.logits[idx[i]] - d.lse});
    }
    st.generated_tokens++;
    s.sum_logprob += e.token.logprob;
    s.sum_entropy += d.entropy;
    e.text = r.text;
    s.req.stream->push(std::move(e));
    if (r.end == StepEnd::kStop) {
        end(s, "stop", st);
    } else if (r.end == StepEnd::kLength) {
        end(s, "length", st);
    } else {
        s.pending = r.token;
    }
}

// Ends the slot's sequence (outside the lock): the rest of the text, the done event, the hook.
// The slot itself is released by release().
void Scheduler::end(Slot& s, const char* reason, StepStats& st) {
    const bool normal = std::strcmp(reason, "cancelled") != 0 && std::strcmp(reason, "shutdown") != 0;
    if (normal && s.decoder) {
        SeqEvent tail;
        tail.kind = SeqEvent::kToken;
        tail.index = s.req.index;
        tail.text = s.decoder->finish();
        if (!tail.text.empty()) s.req.stream->push(std::move(tail));
    }
    const int64_t n_gen = s.decoder ? s.decoder->n_generated() : 0;
    SeqEvent e;
    e.kind = SeqEvent::kDone;
    e.index = s.req.index;
    e.finish_reason = reason;
    e.prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
    e.completion_tokens = n_gen;
    e.cached_tokens = s.n_reused;
    s.req.stream->push(std::move(e));
    if (on_finish_) {
        // An observer's failure must not turn a finished sequence into a failed one (its done
        // event is out already).
        try {
            on_finish_(SeqSummary{*s.model, s.req.prompt, n_gen, s.sum_logprob, s.sum_entropy, reason});
        } catch (const std::exception& e) {
            std::fprintf(stderr, "llmforge: warning: a sequence-finished observer failed: %s\n", e.what());
        }
    }
    st.done++;
    s.ended = true;
}

// Ends the slot's sequence with an error event carrying the error's kind; the other sequences go
// on. Its cached positions are not trusted any more.
void Scheduler::fail_seq(Slot& s, const std::exception& e, StepStats& st) {
    SeqEvent ev;
    ev.kind = SeqEvent::kError;
    ev.index = s.req.index;
    ev.text = e.what();
    ev.error_kind = error_kind_of(e);
    s.req.stream->push(std::move(ev));
    s.cached.clear();
    s.pending = -1;
    st.failed++;
    s.ended = true;
}

// The end of a round, under the lock: counters, and slots whose sequence ended become free.
void Scheduler::release(StepStats& st, double busy_seconds) {
    std::lock_guard<std::mutex> lk(mu_);
    stats_.prompt_tokens += st.prompt_tokens;
    stats_.generated_tokens += st.generated_tokens;
    stats_.prefix_lookup_tokens += st.prefix_lookup;
    stats_.prefix_hit_tokens += st.prefix_hit;
    stats_.sequences_done += st.done;
    stats_.sequences_failed += st.failed;
    stats_.ttft_seconds.insert(stats_.ttft_seconds.end(), st.ttft.begin(), st.ttft.end());
    stats_.prefix_cache_bytes = prefix_.bytes();
    if (busy_seconds > 0) {
        stats_.steps++;
        stats_.busy_seconds += busy_seconds;
    }
    for (auto& s : slots_) {
        if (!s->busy || !s->ended) continue;
        s->decoder.reset();  // before the sampler it refers to
        s->sampler.reset();
        s->req.stream.reset();
        s->req.constraint = nullptr;
        s->pending = -1;
        s->ended = false;
        s->busy = false;
    }
}

}  // namespace llmforge
