#include "core/thread_pool.h"

#include <chrono>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace llmforge {

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lk(mu_);
        stop_ = true;
        generation_.fetch_add(1);
    }
    cv_start_.notify_all();
    for (auto& t : threads_) t.join();
}

void ThreadPool::work(int id) {
    for (;;) {
        int64_t b = next_.fetch_add(grain_, std::memory_order_relaxed);
        if (b >= n_) break;
        int64_t e = b + grain_ < n_ ? b + grain_ : n_;
        if (range_fn_ != nullptr) {
            (*range_fn_)(b, e);
        } else {
            for (int64_t i = b; i < e; ++i) (*item_fn_)(i, id);
        }
    }
}

void ThreadPool::worker(int id) {
    uint64_t seen = 0;
    for (;;) {
        // Bounded spin: catches back-to-back jobs of one forward pass without a futex round trip.
        auto t0 = std::chrono::steady_clock::now();
        int spins = 0;
        while (generation_.load(std::memory_order_acquire) == seen) {
#if defined(__x86_64__)
            _mm_pause();
#endif
            if (++spins % 64 == 0 &&
                std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
                std::unique_lock<std::mutex> lk(mu_);
                cv_start_.wait(lk, [&] { return generation_.load() != seen; });
                break;
            }
        }
        seen = generation_.load(std::memory_order_acquire);
        if (stop_) return;
        work(id);
        if (active_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
            std::lock_guard<std::mutex> lk(mu_);
            cv_done_.notify_one();
        }
    }
}

void ThreadPool::dispatch(int64_t n, int64_t grain) {
    {
        std::lock_guard<std::mutex> lk(mu_);
        n_ = n;
        grain_ = grain;
        next_.store(0);
        active_.store(n_threads_ - 1);
        generation_.fetch_add(1, std::memory_order_release);
    }
    cv_start_.notify_all();
    work(0);
    // Wait for the workers: short bounded spin, then sleep.
    auto t0 = std::chrono::steady_clock::now();
    int spins = 0;
    while (active_.load(std::memory_order_acquire) != 0) {
#if defined(__x86_64__)
        _mm_pause();
#endif
        if (++spins % 64 == 0 && std::chrono::steady_clock::now() - t0 > std::chrono::microseconds(50)) {
            std::unique_lock<std::mutex> lk(mu_);
            cv_done_.wait(lk, [&] { return active_.load() == 0; });
            break;
        }
    }
}

void ThreadPool::run_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    if (n_threads_ == 1 || n <= grain) {
        fn(0, n);
        return;
    }
    range_fn_ = &fn;
    item_fn_ = nullptr;
    dispatch(n, grain);
}

void ThreadPool::run(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (n <= 0) return;
    if (n_threads_ == 1) {
        for (int64_t i = 0; i < n; ++i) fn(i, 0);
        return;
    }
    range_fn_ = nullptr;
    item_fn_ = &fn;
    dispatch(n, 1);
}

}  // namespace llmforge
