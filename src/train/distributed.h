// Data-parallel training across processes (and machines) with MPI (OpenMPI from Debian).
//
// A run started by `mpirun -np N llmforge train …` has N ranks; each computes gradients on its own
// rows of every global batch, then the gradients are summed with MPI_Allreduce and divided by N,
// so every rank applies the same update to the same weights. Without mpirun (or in a build without
// MPI) there is one rank and every collective is a no-op.
//
// Gradients are reduced in buckets of whole parameters (~kBucketBytes): each bucket starts a
// non-blocking MPI_Iallreduce as soon as the backward pass has finished every parameter in it
// (layers finish last-to-first), so communication overlaps the rest of the backward pass.
//
// Thread safety: call from the training thread only (MPI is initialised with
// MPI_THREAD_FUNNELED).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmforge::train {

struct Param;

class Distributed {
public:
    // The process-wide instance: initialises MPI on first use when the process was started by
    // mpirun (OMPI_COMM_WORLD_SIZE / PMI_SIZE set). Throws Error when started by mpirun with
    // several ranks but built without MPI.
    static Distributed& get();
    ~Distributed();

    int rank() const { return rank_; }
    int size() const { return size_; }
    // Ranks of this run on this machine (for the default thread count).
    int local_size() const { return local_size_; }
    bool active() const { return size_ > 1; }

    // In-place sums over ranks.
    void allreduce_sum(float* data, int64_t n);
    void allreduce_sum(double* data, int64_t n);
    // Ends the run on every rank (after an error on one of them).
    [[noreturn]] void abort(int code);

    // Bucketed gradient reduction. begin() before the backward pass of the last micro-batch;
    // param_ready(p) when p's gradient is final (the bucket holding it starts reducing when all
    // its parameters are ready); finish() waits for every bucket and divides by size().
    void grad_buckets(const std::vector<Param*>& params);
    void begin();
    void param_ready(const Param* p);
    void finish();

private:
    Distributed();
    struct Bucket;
    int rank_ = 0, size_ = 1, local_size_ = 1;
    bool mpi_ = false;
    std::vector<Bucket*> buckets_;
    std::vector<int> bucket_of_;  // param index -> bucket
    std::vector<const Param*> params_;
};

}  // namespace llmforge::train
