// A fixed pool of worker threads for data-parallel loops inside one forward pass.
//
// run(n, fn) calls fn(i) for every i in [0, n) across the pool (the calling thread takes part)
// and returns when all are done. Work is handed out in chunks from an atomic counter, so uneven
// chunks balance themselves. Workers spin briefly (bounded, ~50 us) for the next job and then
// sleep on a condition variable: a pool never busy-waits without bound for a core that is not
// there (the test machines' second vCPU is sometimes not really parallel).
//
// Thread safety: run() must not be called concurrently from two threads, nor from inside fn.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace llmforge {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);  // total threads including the caller; >= 1
    ~ThreadPool();
    ThreadPool(const ThreadPool&) = delete;
    ThreadPool& operator=(const ThreadPool&) = delete;

    int size() const { return n_threads_; }
    // fn(begin, end) over [0, n) in chunks of `grain` (>= 1) items.
    void run_range(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);
    // fn(i, thread_id) for i in [0, n): one call per i; thread_id in [0, size()).
    void run(int64_t n, const std::function<void(int64_t, int)>& fn);

private:
    void worker(int id);
    void dispatch(int64_t n, int64_t grain);
    void work(int id);

    int n_threads_;
    std::vector<std::thread> threads_;
    std::mutex mu_;
    std::condition_variable cv_start_, cv_done_;
    std::atomic<uint64_t> generation_{0};
    std::atomic<int64_t> next_{0};
    std::atomic<int> active_{0};
    int64_t n_ = 0;
    int64_t grain_ = 1;
    const std::function<void(int64_t, int64_t)>* range_fn_ = nullptr;
    const std::function<void(int64_t, int)>* item_fn_ = nullptr;
    bool stop_ = false;
};

}  // namespace llmforge
