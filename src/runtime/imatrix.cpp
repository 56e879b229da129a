#include "runtime/imatrix.h"

#include "core/error.h"

namespace llmforge {

std::vector<float> Imatrix::importance(const std::string& tensor, int64_t n_per_row) const {
    auto it = tensors.find(tensor);
    if (it == tensors.end()) fail("importance matrix: no entry for tensor '%s'", tensor.c_str());
    const ImatrixTensor& e = it->second;
    if (static_cast<int64_t>(e.sum_sq.size()) != n_per_row) {
        fail("importance matrix: tensor '%s' has %zu columns, expected %lld (an imatrix of another model?)",
             tensor.c_str(), e.sum_sq.size(), (long long)n_per_row);
    }
    std::vector<float> v(e.sum_sq);
    const float inv = e.rows > 0 ? 1.0f / static_cast<float>(e.rows) : 1.0f;
    for (float& x : v) x *= inv;
    return v;
}

}  // namespace llmforge
