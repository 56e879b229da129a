#include "train/tape.h"

#include <cstdlib>
#include <cstring>

#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/kernels.h"

namespace llmforge::train {

Precision precision_from_name(const std::string& s) {
    if (s == "fp32" || s == "f32") return Precision::kFP32;
    if (s == "bf16") return Precision::kBF16;
    if (s == "fp16" || s == "f16") return Precision::kFP16;
    throw Error("--precision: '" + s + "' is not a precision, expected fp32, bf16 or fp16");
}

const char* precision_name(Precision p) {
    switch (p) {
        case Precision::kFP32: return "fp32";
        case Precision::kBF16: return "bf16";
        case Precision::kFP16: return "fp16";
    }
    return "?";
}

void FloatBuffer::Free::operator()(float* p) const { std::free(p); }

FloatBuffer::FloatBuffer(int64_t n, bool zero) : n_(n) {
    const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) & ~size_t{63};
    auto* p = static_cast<float*>(std::aligned_alloc(64, bytes));
    if (p == nullptr) throw std::bad_alloc();
    p_.reset(p);
    if (zero) this->zero();
}

void FloatBuffer::zero() {
    if (n_ > 0) std::memset(p_.get(), 0, static_cast<size_t>(n_) * sizeof(float));
}

Tape::~Tape() {
    reset();
    for (auto& [n, p] : free_) std::free(p);
}

float* Tape::take(int64_t n) {
    auto it = free_.find(n);
    float* p;
    if (it != free_.end()) {
        p = it->second;
        free_.erase(it);
    } else {
        const size_t bytes = (static_cast<size_t>(std::max<int64_t>(n, 1)) * sizeof(float) + 63) & ~size_t{63};
        p = static_cast<float*>(std::aligned_alloc(64, bytes));
        if (p == nullptr) throw std::bad_alloc();
        bytes_held_ += bytes;
    }
    in_use_.emplace(p, n);
    return p;
}

void Tape::give_back(float* p) {
    auto it = in_use_.find(p);
    LF_ASSERT(it != in_use_.end());
    free_.emplace(it->second, p);
    in_use_.erase(it);
}

Var Tape::param(Param& p) {
    auto n = std::make_unique<Node>();
    n->shape = p.shape;
    n->numel = p.numel();
    if (p.trainable) {
        n->data = p.value.data();
        n->grad = p.grad.data();
        n->requires_grad = grad_enabled;
    } else {
        LF_ASSERT(p.frozen.dtype() == DType::F32);
        n->data = const_cast<float*>(p.frozen.ptr<float>());  // read only: no gradient is written
    }
    n->param = &p;
    n->born = backward_.size();
    nodes_.push_back(std::move(n));
    return nodes_.back().get();
}

Var Tape::make(std::vector<int64_t> shape, bool requires_grad) {
    auto n = std::make_unique<Node>();
    int64_t numel = 1;
    for (int64_t d : shape) numel *= d;
    n->shape = std::move(shape);
    n->numel = numel;
    n->data = take(numel);
    n->requires_grad = requires_grad && grad_enabled;
    n->born = backward_.size();
    nodes_.push_back(std::move(n));
    return nodes_.back().get();
}

float* Tape::buffer(int64_t n) {
    float* p = take(n);
    buffers_.emplace_back(backward_.size(), p);
    return p;
}

float* Tape::scratch(int slot, int64_t n) {
    LF_ASSERT(slot >= 0 && slot < 4);
    FloatBuffer& b = scratch_[slot];
    if (b.size() < n) {
        bytes_held_ += static_cast<size_t>(n - b.size()) * sizeof(float);
        b = FloatBuffer(n, false);
    }
    return b.data();
}

Tape& Tape::sub() {
    if (!sub_) sub_ = std::make_unique<Tape>(pool_);
    return *sub_;
}

float* Tape::grad(Var v) {
    if (v->grad == nullptr) {
        v->grad = take(v->numel);
        std::memset(v->grad, 0, static_cast<size_t>(v->numel) * sizeof(float));
    }
    return v->grad;
}

void Tape::backward(Var loss, float seed) {
    LF_ASSERT(loss->numel == 1);
    loss->keep = true;
    grad(loss)[0] += seed;
    loss_seed_ = seed;
    // Nodes and buffers are in creation order, so `born` never decreases along them: what closure
    // i may free is a tail of each list.
    size_t nn = nodes_.size(), nb = buffers_.size();
    auto free_born_from = [&](size_t i) {
        if (!free_in_backward) return;
        for (; nn > 0 && nodes_[nn - 1]->born >= i; --nn) {
            Node& v = *nodes_[nn - 1];
            if (v.keep || v.param != nullptr) continue;
            if (v.data != nullptr) give_back(v.data);
            if (v.grad != nullptr) give_back(v.grad);
            if (v.half != nullptr) give_back(reinterpret_cast<float*>(v.half)), bf16_bytes_ -= 2 * v.numel;
            v.data = v.grad = nullptr;
            v.half = nullptr;
        }
        for (; nb > 0 && buffers_[nb - 1].first >= i; --nb) give_back(buffers_[nb - 1].second);
    };
    free_born_from(backward_.size());  // made after the last closure: read by none
    for (size_t i = backward_.size(); i-- > 0;) {
        backward_[i]();
        free_born_from(i);
    }
}

void Tape::store_bf16(size_t mark, Var also, Var live) {
    if (!grad_enabled) return;
    const auto to_bf16 = kernels::kernels().quantize_row[static_cast<int>(DType::BF16)];
    const auto from_bf16 = kernels::kernels().dequantize_row[static_cast<int>(DType::BF16)];
    std::vector<Node*> stored;
    auto store = [&](Node* v) {
        if (v == nullptr || v == live || v->param != nullptr || v->keep || v->data == nullptr) return;
        // A bf16 array of numel values in a buffer of ⌈numel / 2⌉ floats from the same free lists.
        auto* h = reinterpret_cast<uint16_t*>(take((v->numel + 1) / 2));
        const float* x = v->data;
        pool_.run_range(v->numel, 1 << 16, [&](int64_t b, int64_t e) { to_bf16(x + b, h + b, e - b); });
        give_back(v->data);
        v->data = nullptr;
        v->half = h;
        bf16_bytes_ += 2 * v->numel;
        stored.push_back(v);
    };
    store(also);
    for (size_t i = mark; i < nodes_.size(); ++i) store(nodes_[i].get());
    if (stored.empty()) return;
    on_backward([this, stored = std::move(stored), from_bf16] {
        for (Node* v : stored) {
            if (v->half == nullptr) continue;
            float* x = take(v->numel);
            const uint16_t* h = v->half;
            pool_.run_range(v->numel, 1 << 16, [&](int64_t b, int64_t e) { from_bf16(h + b, x + b, e - b); });
            give_back(reinterpret_cast<float*>(v->half));
            bf16_bytes_ -= 2 * v->numel;
            v->half = nullptr;
            v->data = x;
        }
    });
}

void Tape::reset() {
    bf16_bytes_ = 0;
    backward_.clear();
    nodes_.clear();
    buffers_.clear();
    for (auto& [p, n] : in_use_) free_.emplace(n, p);
    in_use_.clear();
}

void round_to_precision(Precision p, const float* x, float* y, int64_t n, ThreadPool& pool) {
    if (p == Precision::kFP32) {
        if (x != y) std::memcpy(y, x, static_cast<size_t>(n) * sizeof(float));
        return;
    }
    pool.run_range(n, 1 << 16, [&](int64_t b, int64_t e) {
        if (p == Precision::kBF16) {
            kernels::round_bf16(x + b, y + b, e - b);  // fp32_to_bf16 then back, vectorised
        } else {
            for (int64_t i = b; i < e; ++i) y[i] = fp16_to_fp32(fp32_to_fp16(x[i]));
        }
    });
}

}  // namespace llmforge::train
