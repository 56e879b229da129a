#include "serve/engine.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <list>
#include <unordered_map>

#include "core/error.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "runtime/generator.h"

namespace llmforge::serve {

namespace {

double now_seconds() {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// ChatML, for models that carry no chat template (llama.cpp's server falls back the same way).
constexpr const char* kFallbackTemplate =
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}";

// Log-softmax statistics of one logit row: the log-probability of `id`, the entropy, and the
// top `k` tokens (best first).
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

}  // namespace

std::shared_ptr<const ServedModel> load_served_model(const std::string& path, const ModelOptions& opt) {
    auto sm = std::make_shared<ServedModel>();
    sm->path = path;
    sm->model = Model::load(path, opt.tokenizer_path, opt.use_mmap);
    sm->tokenizer = Tokenizer::create(sm->model->vocab());
    sm->stop_on_bos = sm->model->files().format == "llama2c";
    if (!opt.alias.empty()) {
        sm->id = opt.alias;
    } else {
        std::filesystem::path p(path);
        while (p.has_parent_path() && p.filename().empty()) p = p.parent_path();  // "dir/"
        sm->id = std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
    }
    std::string source, name = path;
    if (!opt.chat_template_path.empty()) {
        source = read_file(opt.chat_template_path, "chat template", "check the --chat-template path");
        name = opt.chat_template_path;
    } else {
        source = sm->model->vocab().chat_template;
    }
    if (source.empty()) {
        source = kFallbackTemplate;
        name = "fallback ChatML template";
        sm->template_is_fallback = true;
        sm->extra_stops.push_back("<|im_end|>");
    }
    sm->chat_template.emplace(source, name);
    return sm;
}

// ------------------------------------------------------------------------------ RequestStream

void RequestStream::push(Event e) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        events_.push_back(std::move(e));
    }
    cv_.notify_one();
}

bool RequestStream::pop(Event& e, int timeout_ms) {
    std::unique_lock<std::mutex> lk(mu_);
    if (!cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return !events_.empty(); })) return false;
    e = std::move(events_.front());
    events_.pop_front();
    return true;
}

// -------------------------------------------------------------------------------- PrefixStore

// K/V of whole 64-token prompt blocks, keyed by a hash of every token up to the block's end (so a
// block is only ever reused after the same prefix), least recently used dropped first.
struct Engine::PrefixStore {
    static constexpr int64_t kBlock = 64;
    struct Block {
        std::vector<int32_t> tokens;  // this block's kBlock tokens (checked on lookup)
        std::vector<float> kv;        // per layer: K rows then V rows, kBlock x kv_dim each
        std::list<uint64_t>::iterator lru;
    };
    size_t budget;
    size_t bytes = 0;
    const ServedModel* owner = nullptr;
    std::unordered_map<uint64_t, Block> blocks;
    std::list<uint64_t> lru;  // front: most recent

    explicit PrefixStore(size_t b) : budget(b) {}

    static uint64_t chain(uint64_t h, const int32_t* t, int64_t n) {
        for (int64_t i = 0; i < n; ++i) h = (h ^ static_cast<uint32_t>(t[i])) * 0x100000001b3ull;
        return h;
    }
    void own(const ServedModel* m) {
        if (owner == m) return;
        blocks.clear();
        lru.clear();
        bytes = 0;
        owner = m;
    }
    // Copies the longest run of stored blocks that starts the prompt (at most `limit` tokens)
    // into cache rows from `from` on; returns the tokens now valid in the cache (>= from).
    int64_t restore(const ServedModel* m, const std::vector<int32_t>& prompt, int64_t limit, int64_t from,
                    KvCache& cache, int64_t n_layer) {
        own(m);
        uint64_t h = 0xcbf29ce484222325ull;
        int64_t n = 0;
        const int64_t kv_dim = cache.kv_dim();
        while (n + kBlock <= limit) {
            h = chain(h, prompt.data() + n, kBlock);
            auto it = blocks.find(h);
            if (it == blocks.end() || !std::equal(it->second.tokens.begin(), it->second.tokens.end(),
                                                  prompt.begin() + n)) {
                break;
            }
            Block& b = it->second;
            lru.splice(lru.begin(), lru, b.lru);
            if (n + kBlock > from) {
                const size_t rows = static_cast<size_t>(kBlock * kv_dim);
                for (int64_t l = 0; l < n_layer; ++l) {
                    std::memcpy(cache.k(l) + n * kv_dim, b.kv.data() + 2 * l * rows, rows * sizeof(float));
                    std::memcpy(cache.v(l) + n * kv_dim, b.kv.data() + (2 * l + 1) * rows, rows * sizeof(float));
                }
            }
            n += kBlock;
        }
        return std::max(n, from);
    }
    // Stores the whole blocks among the first n_valid tokens (their K/V are in the cache).
    void save(const ServedModel* m, const std::vector<int32_t>& tokens, int64_t n_valid, const KvCache& cache,
              int64_t n_layer) {
        own(m);
        const int64_t kv_dim = cache.kv_dim();
        const size_t rows = static_cast<size_t>(kBlock * kv_dim);
        const size_t block_bytes = 2 * n_layer * rows * sizeof(float);
        if (block_bytes > budget) return;
        uint64_t h = 0xcbf29ce484222325ull;
        for (int64_t n = 0; n + kBlock <= n_valid; n += kBlock) {
            h = chain(h, tokens.data() + n, kBlock);
            auto it = blocks.find(h);
            if (it != blocks.end()) {
                lru.splice(lru.begin(), lru, it->second.lru);
                continue;
            }
            while (bytes + block_bytes > budget && !lru.empty()) {
                blocks.erase(lru.back());
                lru.pop_back();
                bytes -= block_bytes;
            }
            Block b;
            b.tokens.assign(tokens.begin() + n, tokens.begin() + n + kBlock);
            b.kv.resize(2 * n_layer * rows);
            for (int64_t l = 0; l < n_layer; ++l) {
                std::memcpy(b.kv.data() + 2 * l * rows, cache.k(l) + n * kv_dim, rows * sizeof(float));
                std::memcpy(b.kv.data() + (2 * l + 1) * rows, cache.v(l) + n * kv_dim, rows * sizeof(float));
            }
            lru.push_front(h);
            b.lru = lru.begin();
            blocks.emplace(h, std::move(b));
            bytes += block_bytes;
        }
    }
};

// ----------------------------------------------------------------------------------------- Slot

struct Engine::Slot {
    std::shared_ptr<const ServedModel> model;  // whose KV cache this is
    std::unique_ptr<KvCache> cache;
    std::vector<int32_t> cached;  // the tokens whose K/V are in cache rows [0, size)
    bool busy = false;
    SeqRequest req;
    std::unique_ptr<Sampler> sampler;
    std::unique_ptr<TextStreamer> text;
    int64_t n_reused = 0;   // prompt tokens that came from a cache
    int32_t pending = -1;   // sampled, not yet fed
    int64_t n_gen = 0;
    double sum_logprob = 0, sum_entropy = 0;
    bool first_token = true;
    std::vector<float> logits;
    int64_t chunk = 0;  // tokens fed in the current step

    int64_t prompt_left() const { return static_cast<int64_t>(req.prompt.size()) - static_cast<int64_t>(cached.size()); }
};

// --------------------------------------------------------------------------------------- Engine

namespace {

// A sequence that never reached a slot ends with a bare done event ("cancelled" when its client
// went away, "shutdown" when the server stops).
void cancel_queued(const SeqRequest& q, const char* reason) {
    Event e;
    e.kind = Event::kDone;
    e.index = q.index;
    e.finish_reason = reason;
    q.stream->push(std::move(e));
}

}  // namespace

Engine::Engine(std::shared_ptr<const ServedModel> model, EngineConfig cfg, DriftMonitor* drift)
    : cfg_(cfg), drift_(drift), model_(std::move(model)) {
    LF_ASSERT(cfg_.slots >= 1 && cfg_.n_ctx >= 1);
    for (int i = 0; i < cfg_.slots; ++i) slots_.push_back(std::make_unique<Slot>());
    prefix_ = std::make_unique<PrefixStore>(cfg_.prefix_cache_bytes);
    stats_.slots = cfg_.slots;
    thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

void Engine::shutdown() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        if (stop_ && !thread_.joinable()) return;
        stop_ = true;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
}

std::shared_ptr<const ServedModel> Engine::model() const {
    std::lock_guard<std::mutex> lk(mu_);
    return model_;
}

void Engine::swap_model(std::shared_ptr<const ServedModel> m) {
    std::lock_guard<std::mutex> lk(mu_);
    model_ = std::move(m);
}

size_t Engine::reservation(const SeqRequest& r) {
    const ModelConfig& c = r.model->model->config();
    const size_t row = 2 * static_cast<size_t>(c.n_layer * c.n_head_kv * c.head_dim) * sizeof(float);
    return row * (r.prompt.size() + static_cast<size_t>(r.max_tokens));
}

Engine::Submit Engine::submit(std::vector<SeqRequest> seqs) {
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

bool Engine::idle() {
    std::lock_guard<std::mutex> lk(mu_);
    if (!queue_.empty()) return false;
    for (auto& s : slots_)
        if (s->busy) return false;
    return true;
}

EngineStats Engine::stats() {
    std::lock_guard<std::mutex> lk(mu_);
    EngineStats out = stats_;
    stats_.ttft_seconds.clear();
    out.slots_busy = 0;
    out.kv_cache_bytes = 0;
    for (auto& s : slots_) {
        out.slots_busy += s->busy;
        if (s->cache) out.kv_cache_bytes += s->cache->bytes();
        if (s->busy) out.kv_reserved_bytes += reservation(s->req);
    }
    out.queue_depth = queue_.size();
    out.prefix_cache_bytes = prefix_->bytes;
    return out;
}

void Engine::loop() {
    ThreadPool pool(cfg_.threads);
    ForwardScratch scratch;
    scratch.batch_invariant = cfg_.batch_invariant;
    std::unique_lock<std::mutex> lk(mu_);
    while (true) {
        // Cancelled sequences leave between steps; queued ones join free slots.
        for (auto& s : slots_) {
            if (s->busy && s->req.stream->cancelled()) finish(*s, "cancelled");
        }
        for (auto it = queue_.begin(); it != queue_.end();) {
            if (it->stream->cancelled()) {
                cancel_queued(*it, "cancelled");
                it = queue_.erase(it);
            } else {
                ++it;
            }
        }
        if (stop_) break;
        admit();
        const bool any = std::any_of(slots_.begin(), slots_.end(), [](auto& s) { return s->busy; });
        if (!any) {
            cv_.wait(lk, [&] { return stop_ || !queue_.empty(); });
            continue;
        }
        lk.unlock();
        const double t0 = now_seconds();
        try {
            // Sequences of one model go through the weights together (two groups only while a
            // reload is draining the old model).
            std::vector<const ServedModel*> models;
            for (auto& s : slots_) {
                if (s->busy && std::find(models.begin(), models.end(), s->model.get()) == models.end())
                    models.push_back(s->model.get());
            }
            for (const ServedModel* m : models) {
                std::vector<SeqBatch> batch;
                std::vector<Slot*> members;
                int64_t budget = cfg_.step_prompt_tokens;
                for (auto& sp : slots_) {  // generating slots first: one token each
                    Slot& s = *sp;
                    if (!s.busy || s.model.get() != m || s.pending < 0) continue;
                    s.chunk = 1;
                    s.logits.resize(m->model->config().n_vocab);
                    batch.push_back({s.cache.get(), &s.pending, 1, static_cast<int64_t>(s.cached.size()),
                                     s.logits.data(), 1});
                    members.push_back(&s);
                }
                std::vector<Slot*> prefilling;  // then prompt chunks, oldest request first
                for (auto& sp : slots_) {
                    if (sp->busy && sp->model.get() == m && sp->pending < 0) prefilling.push_back(sp.get());
                }
                std::stable_sort(prefilling.begin(), prefilling.end(),
                                 [](const Slot* a, const Slot* b) { return a->req.enqueued_at < b->req.enqueued_at; });
                for (Slot* sp : prefilling) {
                    Slot& s = *sp;
                    if (budget <= 0) break;
                    const int64_t left = s.prompt_left();
                    s.chunk = std::min(left, budget);
                    budget -= s.chunk;
                    const bool last = s.chunk == left;
                    s.logits.resize(m->model->config().n_vocab);
                    batch.push_back({s.cache.get(), s.req.prompt.data() + s.cached.size(), s.chunk,
                                     static_cast<int64_t>(s.cached.size()), last ? s.logits.data() : nullptr,
                                     last ? 1 : 0});
                    members.push_back(&s);
                }
                m->model->forward_batch(batch.data(), static_cast<int64_t>(batch.size()), pool, scratch);
                for (size_t j = 0; j < members.size(); ++j) {
                    Slot& s = *members[j];
                    const bool prompt_chunk = s.pending < 0;
                    if (prompt_chunk) {
                        s.cached.insert(s.cached.end(), batch[j].tokens, batch[j].tokens + batch[j].n);
                    } else {
                        s.cached.push_back(s.pending);
                        s.pending = -1;
                    }
                    std::lock_guard<std::mutex> g(mu_);
                    if (prompt_chunk) {
                        stats_.prompt_tokens += batch[j].n;
                        if (s.prompt_left() == 0) {
                            prefix_->save(m, s.req.prompt, static_cast<int64_t>(s.req.prompt.size()), *s.cache,
                                          m->model->config().n_layer);
                        }
                    }
                    if (batch[j].n_out == 0) continue;
                    if (s.req.stream->cancelled()) {
                        finish(s, "cancelled");
                    } else {
                        next_token(s);
                    }
                }
            }
        } catch (const std::exception& e) {
            // An engine error fails the running requests, not the server.
            lk.lock();
            for (auto& s : slots_) {
                if (!s->busy) continue;
                Event ev;
                ev.kind = Event::kError;
                ev.index = s->req.index;
                ev.text = e.what();
                s->req.stream->push(std::move(ev));
                s->busy = false;
                s->cached.clear();
            }
            lk.unlock();
        }
        lk.lock();
        stats_.steps++;
        stats_.busy_seconds += now_seconds() - t0;
    }
    // Shutdown: everything still running or queued ends with "shutdown" (the handlers report it
    // as an error, never as a normal finish).
    for (auto& s : slots_) {
        if (s->busy) finish(*s, "shutdown");
    }
    for (auto& q : queue_) cancel_queued(q, "shutdown");
    queue_.clear();
}

// Called with mu_ held.
void Engine::admit() {
    for (auto& s : slots_) {  // free slots of a replaced model let it go
        if (!s->busy && s->model && s->model != model_) {
            s->cache.reset();
            s->model.reset();
            s->cached.clear();
        }
    }
    size_t reserved = 0;
    for (auto& s : slots_)
        if (s->busy) reserved += reservation(s->req);
    while (!queue_.empty()) {
        SeqRequest& r = queue_.front();
        // First come, first served: the head waits until its reservation fits the budget.
        const size_t need = reservation(r);
        if (cfg_.kv_budget_bytes > 0 && reserved + need > cfg_.kv_budget_bytes) return;
        reserved += need;
        // The free slot whose cached tokens share the longest prefix with the prompt.
        Slot* best = nullptr;
        int64_t best_lcp = -1;
        for (auto& sp : slots_) {
            Slot& s = *sp;
            if (s.busy) continue;
            int64_t lcp = 0;
            if (s.model == r.model) {
                const size_t n = std::min(s.cached.size(), r.prompt.size());
                while (lcp < static_cast<int64_t>(n) && s.cached[lcp] == r.prompt[lcp]) ++lcp;
            }
            if (lcp > best_lcp) {
                best = &s;
                best_lcp = lcp;
            }
        }
        if (best == nullptr) return;
        Slot& s = *best;
        const ModelConfig& mc = r.model->model->config();
        if (s.model != r.model || !s.cache) {
            s.cache.reset();
            s.cache = std::make_unique<KvCache>(mc, cfg_.n_ctx);
            s.model = r.model;
            s.cached.clear();
            best_lcp = 0;
        }
        // At least one prompt token is always run, to get the logits of the next.
        const int64_t limit = static_cast<int64_t>(r.prompt.size()) - 1;
        int64_t reuse = std::min(best_lcp, limit);
        reuse = prefix_->restore(r.model.get(), r.prompt, limit, reuse, *s.cache, mc.n_layer);
        s.cached.assign(r.prompt.begin(), r.prompt.begin() + reuse);
        stats_.prefix_lookup_tokens += r.prompt.size();
        stats_.prefix_hit_tokens += reuse;
        s.n_reused = reuse;
        s.req = std::move(r);
        queue_.pop_front();
        s.busy = true;
        s.pending = -1;
        s.n_gen = 0;
        s.sum_logprob = s.sum_entropy = 0;
        s.first_token = true;
        s.sampler = std::make_unique<Sampler>(s.req.sampling);
        for (int32_t t : s.req.prompt) s.sampler->accept(t);
        s.text = std::make_unique<TextStreamer>(*s.model->tokenizer, s.req.stop,
                                                s.req.prompt.empty() ? -1 : s.req.prompt.back());
    }
}

// Samples the next token from s.logits and streams it (mu_ held).
void Engine::next_token(Slot& s) {
    const Tokenizer& tok = *s.model->tokenizer;
    const int64_t V = static_cast<int64_t>(s.logits.size());
    const int32_t id = s.sampler->sample(s.logits.data(), V);
    const Dist d = distribution(s.logits.data(), V);
    Event e;
    e.kind = Event::kToken;
    e.index = s.req.index;
    e.token = {id, s.logits[id] - d.lse};
    if (s.req.top_logprobs > 0) {
        const int k = std::min<int64_t>(s.req.top_logprobs, V);
        std::vector<int32_t> idx(V);
        for (int32_t i = 0; i < V; ++i) idx[i] = i;
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int32_t a, int32_t b) {
            return s.logits[a] > s.logits[b] || (s.logits[a] == s.logits[b] && a < b);
        });
        for (int i = 0; i < k; ++i) e.top.push_back({idx[i], s.logits[idx[i]] - d.lse});
    }
    if (s.first_token) {
        stats_.ttft_seconds.push_back(now_seconds() - s.req.enqueued_at);
        s.first_token = false;
    }
    if ((s.model->stop_on_bos && id == tok.bos()) || tok.is_eog(id)) {
        finish(s, "stop");
        return;
    }
    s.sampler->accept(id);
    s.n_gen++;
    stats_.generated_tokens++;
    s.sum_logprob += e.token.logprob;
    s.sum_entropy += d.entropy;
    e.text = s.text->feed(id);
    s.req.stream->push(std::move(e));
    if (s.text->stopped()) {
        finish(s, "stop");
    } else if (s.n_gen >= s.req.max_tokens || static_cast<int64_t>(s.cached.size()) >= cfg_.n_ctx) {
        finish(s, "length");
    } else {
        s.pending = id;
    }
}

// Ends the slot's sequence (mu_ held): the rest of the text, the done event, drift and stats.
void Engine::finish(Slot& s, const char* reason) {
    if (std::strcmp(reason, "cancelled") != 0 && std::strcmp(reason, "shutdown") != 0) {
        Event tail;
        tail.kind = Event::kToken;
        tail.index = s.req.index;
        tail.text = s.text->finish();
        if (!tail.text.empty()) s.req.stream->push(std::move(tail));
    }
    Event e;
    e.kind = Event::kDone;
    e.index = s.req.index;
    e.finish_reason = reason;
    e.prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
    e.completion_tokens = s.n_gen;
    e.cached_tokens = s.n_reused;
    s.req.stream->push(std::move(e));
    if (drift_ != nullptr) {
        RequestStats r;
        r.prompt_tokens = static_cast<int64_t>(s.req.prompt.size());
        r.completion_tokens = s.n_gen;
        r.mean_logprob = s.n_gen > 0 ? s.sum_logprob / s.n_gen : std::nan("");
        r.mean_entropy = s.n_gen > 0 ? s.sum_entropy / s.n_gen : std::nan("");
        r.finish_reason = reason;
        int64_t bytes = 0;
        for (int32_t t : s.req.prompt) bytes += s.model->tokenizer->token_type(t) == TokenType::kByte;
        r.byte_fallback_rate = s.req.prompt.empty() ? 0.0 : static_cast<double>(bytes) / s.req.prompt.size();
        for (const auto& name : drift_->record(r)) {
            std::fprintf(stderr, "llmforge serve: warning: drift detected in %s (see GET /admin/drift)\n",
                         name.c_str());
        }
    }
    stats_.sequences_done++;
    s.busy = false;
    s.pending = -1;
    s.req.stream.reset();
    s.sampler.reset();
    s.text.reset();
}

}  // namespace llmforge::serve
