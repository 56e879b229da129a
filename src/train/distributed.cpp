#include "train/distributed.h"

#include <cstdlib>
#include <cstring>

#include "core/error.h"
#include "train/tape.h"

#if defined(LLMFORGE_HAVE_MPI)
// The C API only (OpenMPI would otherwise pull in its deprecated C++ bindings).
#define OMPI_SKIP_MPICXX 1
#define MPICH_SKIP_MPICXX 1
#include <mpi.h>
#endif

namespace llmforge::train {

namespace {

constexpr int64_t kBucketBytes = 8 << 20;

int env_int(const char* a, const char* b) {
    for (const char* k : {a, b})
        if (k != nullptr)
            if (const char* e = std::getenv(k); e != nullptr && *e) return std::atoi(e);
    return 0;
}

}  // namespace

struct Distributed::Bucket {
    std::vector<int> params;  // indices into params_
    std::vector<float> packed;
    int pending = 0;          // parameters not yet ready
    bool started = false;
#if defined(LLMFORGE_HAVE_MPI)
    MPI_Request req = MPI_REQUEST_NULL;
#endif
};

Distributed& Distributed::get() {
    static Distributed d;
    return d;
}

Distributed::Distributed() {
    const int launched = env_int("OMPI_COMM_WORLD_SIZE", "PMI_SIZE");
#if defined(LLMFORGE_HAVE_MPI)
    if (launched > 0) {
        int provided = 0;
        MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided);
        mpi_ = true;
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
        MPI_Comm local;
        MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &local);
        MPI_Comm_size(local, &local_size_);
        MPI_Comm_free(&local);
    }
#else
    if (launched > 1)
        throw Error("train: started by mpirun with " + std::to_string(launched) +
                    " ranks, but this llmforge was built without MPI (hint: install libopenmpi-dev and rebuild)");
#endif
}

Distributed::~Distributed() {
    for (Bucket* b : buckets_) delete b;
#if defined(LLMFORGE_HAVE_MPI)
    if (mpi_) MPI_Finalize();
#endif
}

void Distributed::allreduce_sum(float* data, int64_t n) {
#if defined(LLMFORGE_HAVE_MPI)
    if (size_ > 1) MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)data, (void)n;
#endif
}

void Distributed::allreduce_sum(double* data, int64_t n) {
#if defined(LLMFORGE_HAVE_MPI)
    if (size_ > 1) MPI_Allreduce(MPI_IN_PLACE, data, static_cast<int>(n), MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)data, (void)n;
#endif
}

void Distributed::abort(int code) {
#if defined(LLMFORGE_HAVE_MPI)
    if (mpi_ && size_ > 1) MPI_Abort(MPI_COMM_WORLD, code);
#endif
    std::exit(code);
}

void Distributed::grad_buckets(const std::vector<Param*>& params) {
    for (Bucket* b : buckets_) delete b;
    buckets_.clear();
    params_.assign(params.begin(), params.end());
    bucket_of_.assign(params.size(), -1);
    // Buckets follow the reverse of the parameter order (the order backward finishes them).
    int64_t bytes = kBucketBytes;
    for (int i = static_cast<int>(params.size()) - 1; i >= 0; --i) {
        const int64_t pb = params[i]->numel() * static_cast<int64_t>(sizeof(float));
        if (bytes + pb > kBucketBytes && !(buckets_.size() > 0 && buckets_.back()->params.empty())) {
            buckets_.push_back(new Bucket());
            bytes = 0;
        }
        buckets_.back()->params.push_back(i);
        bucket_of_[i] = static_cast<int>(buckets_.size()) - 1;
        bytes += pb;
    }
}

void Distributed::begin() {
    for (Bucket* b : buckets_) {
        b->pending = static_cast<int>(b->params.size());
        b->started = false;
    }
}

void Distributed::param_ready(const Param* p) {
    if (size_ <= 1) return;
    int idx = -1;
    for (size_t i = 0; i < params_.size(); ++i)
        if (params_[i] == p) idx = static_cast<int>(i);
    if (idx < 0) return;
    Bucket* b = buckets_[bucket_of_[idx]];
    if (--b->pending > 0 || b->started) return;
    int64_t n = 0;
    for (int i : b->params) n += params_[i]->numel();
    b->packed.resize(static_cast<size_t>(n));
    int64_t off = 0;
    for (int i : b->params) {
        std::memcpy(b->packed.data() + off, params_[i]->grad.data(), params_[i]->numel() * sizeof(float));
        off += params_[i]->numel();
    }
    b->started = true;
#if defined(LLMFORGE_HAVE_MPI)
    MPI_Iallreduce(MPI_IN_PLACE, b->packed.data(), static_cast<int>(n), MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &b->req);
    // Drive progress of the buckets already in flight (OpenMPI progresses inside MPI calls).
    for (Bucket* o : buckets_) {
        if (!o->started || o->req == MPI_REQUEST_NULL) continue;
        int done = 0;
        MPI_Test(&o->req, &done, MPI_STATUS_IGNORE);
    }
#endif
}

void Distributed::finish() {
    if (size_ <= 1) return;
    const float inv = 1.0f / static_cast<float>(size_);
    for (Bucket* b : buckets_) {
        if (!b->started) {  // a parameter nobody reported (kept safe: reduce it now)
            b->pending = 1;
            param_ready(params_[b->params.front()]);
        }
#if defined(LLMFORGE_HAVE_MPI)
        if (b->req != MPI_REQUEST_NULL) MPI_Wait(&b->req, MPI_STATUS_IGNORE);
#endif
        int64_t off = 0;
        for (int i : b->params) {
            float* g = const_cast<Param*>(params_[i])->grad.data();
            const int64_t n = params_[i]->numel();
            for (int64_t j = 0; j < n; ++j) g[j] = b->packed[off + j] * inv;
            off += n;
        }
    }
}

}  // namespace llmforge::train
