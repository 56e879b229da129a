#include "train/qat.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/quantize.h"
#include "model/arch/arch.h"
#include "train/ops.h"
#include "train/train_model.h"

namespace llmforge::train {

QatConfig qat_config(const std::string& qat, const std::string& qat_act) {
    QatConfig c;
    if (qat == "q8_0") c.weights = DType::Q8_0;
    else if (qat == "q4_0") c.weights = DType::Q4_0;
    else if (qat == "q4_k") c.weights = DType::Q4_K;
    else if (qat != "none" && !qat.empty())
        fail("train: --qat is '%s', expected none, q8_0, q4_0 or q4_k (hint: the type you will `llmforge quantize` to)",
             qat.c_str());
    if (qat_act == "int8") c.act_int8 = true;
    else if (qat_act != "none" && !qat_act.empty())
        fail("train: --qat-act is '%s', expected none or int8 (per-token int8 activations)", qat_act.c_str());
    return c;
}

std::string qat_name(DType weights) { return weights == DType::F32 ? "none" : dtype_name(weights); }

DType qat_tensor_type(const std::string& name, const std::vector<int64_t>& shape, bool per_layer, bool tied,
                      DType requested) {
    // Matrices and (E, rows, cols) expert stacks; not the MoE router (quantize keeps it f32, as llama.cpp).
    if (requested == DType::F32 || shape.size() < 2 || name.find("ffn_gate_inp.weight") != std::string::npos)
        return DType::F32;
    const int64_t cols = shape.back();
    auto fits = [cols](DType t) { return cols % dtype_info(t).block_size == 0; };
    // The head (an untied output, or a tied embedding that serves as it): llama.cpp keeps it at
    // 6 bits for the 4-bit types (q8_0 when its rows do not fit q6_k's 256-value blocks).
    const bool head = name == "output.weight" || (tied && name == "token_embd.weight");
    if (head && requested != DType::Q8_0) return fits(DType::Q6_K) ? DType::Q6_K : DType::Q8_0;
    if (!per_layer && !head && name != "token_embd.weight") return DType::F32;  // no other global matrix is quantised
    if (!fits(requested))
        fail("train: --qat %s: tensor '%s' has rows of %lld values, not a multiple of %s's block of %d (hint: --qat "
             "q8_0 and q4_0 take rows of any multiple of 32 values; q4_k needs multiples of 256)",
             dtype_name(requested), name.c_str(), (long long)cols, dtype_name(requested), dtype_info(requested).block_size);
    return requested;
}

void fake_quantize(DType type, const float* w, float* out, int64_t rows, int64_t cols, ThreadPool* pool) {
    const auto deq = kernels::kernels().dequantize_row[static_cast<int>(type)];
    LF_ASSERT(deq != nullptr && kernels::can_quantize_weights(type));
    const size_t rb = row_bytes(type, cols);
    auto span = [&](int64_t r0, int64_t r1) {
        std::vector<uint8_t> block(rb);
        for (int64_t r = r0; r < r1; ++r) {
            // The exact bytes `quantize` writes for this row (rows are quantised independently),
            // read back as the engine reads them.
            kernels::quantize_weights(type, w + r * cols, block.data(), 1, cols, nullptr);
            deq(block.data(), out + r * cols, cols);
        }
    };
    if (pool != nullptr) {
        pool->run_range(rows, 8, span);
    } else {
        span(0, rows);
    }
}

void fake_quantize_rows_int8(const float* x, float* y, int64_t rows, int64_t cols) {
    for (int64_t r = 0; r < rows; ++r) {
        const float* xr = x + r * cols;
        float* yr = y + r * cols;
        float amax = 0;
        for (int64_t j = 0; j < cols; ++j) amax = std::max(amax, std::fabs(xr[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        for (int64_t j = 0; j < cols; ++j) yr[j] = std::round(xr[j] * id) * d;
    }
}

Var fake_quant_act_int8(Tape& t, Var x) {
    const int64_t cols = x->shape.back(), rows = x->numel / cols;
    Var y = t.make(x->shape, t.grad_enabled && x->requires_grad);
    t.pool().run_range(rows, 16, [&](int64_t r0, int64_t r1) {
        fake_quantize_rows_int8(x->data + r0 * cols, y->data + r0 * cols, r1 - r0, cols);
    });
    // Straight-through: the rounding's derivative (zero almost everywhere) is taken as 1.
    if (y->requires_grad) pass_gradient_through(t, x, y);
    return y;
}

Qat::Qat(TrainModel& m, QatConfig c) : m_(m), cfg_(c) {
    if (!m.frozen().empty() && cfg_.weights != DType::F32)
        fail("train: --qat %s trains the f32 masters of every weight, but %zu tensors are frozen (hint: --qat does not "
             "combine with --peft; merge the adapter first, then train with --qat)",
             dtype_name(cfg_.weights), m.frozen().size());
    const bool tied = m.config().tied_embeddings;
    for (const NamedSpec& ns : tensor_list(m.arch(), m.config(), true)) {
        Param* p = m.find(ns.name);
        if (p == nullptr || !p->trainable) continue;
        const DType t = qat_tensor_type(ns.name, p->shape, ns.spec->per_layer, tied, cfg_.weights);
        if (t == DType::F32) continue;
        q_.emplace(p, Entry{t, FloatBuffer(p->numel(), false)});
    }
    m_.weight_values = [this](const Param& p) -> const float* { return values(p); };
    if (cfg_.act_int8) m_.linear_input = [](Tape& t, Var x) { return fake_quant_act_int8(t, x); };
}

Qat::~Qat() {
    m_.weight_values = nullptr;
    m_.linear_input = nullptr;
}

void Qat::refresh(ThreadPool& pool) {
    // Table order for a fixed sequence of work (each row's result is independent of the split).
    for (const NamedSpec& ns : tensor_list(m_.arch(), m_.config(), true)) {
        Param* p = m_.find(ns.name);
        auto it = p == nullptr ? q_.end() : q_.find(p);
        if (it == q_.end()) continue;
        const int64_t cols = p->shape.back();
        fake_quantize(it->second.type, p->value.data(), it->second.values.data(), p->numel() / cols, cols, &pool);
    }
}

float* Qat::values(const Param& p) {
    auto it = q_.find(&p);
    return it == q_.end() ? nullptr : it->second.values.data();
}

DType Qat::type_of(const Param& p) const {
    auto it = q_.find(&p);
    return it == q_.end() ? DType::F32 : it->second.type;
}

int64_t Qat::n_values() const {
    int64_t n = 0;
    for (const auto& [p, e] : q_) n += e.values.size();
    return n;
}

}  // namespace llmforge::train
