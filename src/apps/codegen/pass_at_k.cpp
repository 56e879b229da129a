#include "apps/codegen/pass_at_k.h"

#include <cstddef>

namespace llmforge::codegen {

double pass_at_k(int64_t n, int64_t c, int64_t k) {
    if (k <= 0 || n < k || c < 0 || c > n) return -1;
    if (n - c < k) return 1.0;
    // 1 - prod_{i=n-c+1}^{n} (1 - k/i)  ==  1 - C(n-c,k)/C(n,k)
    double fail = 1.0;
    for (int64_t i = n - c + 1; i <= n; ++i) fail *= 1.0 - static_cast<double>(k) / static_cast<double>(i);
    return 1.0 - fail;
}

double mean_pass_at_k(const std::vector<int64_t>& n, const std::vector<int64_t>& c, int64_t k) {
    if (n.empty() || n.size() != c.size()) return -1;
    double sum = 0;
    for (size_t i = 0; i < n.size(); ++i) {
        double p = pass_at_k(n[i], c[i], k);
        if (p < 0) return -1;
        sum += p;
    }
    return sum / static_cast<double>(n.size());
}

}  // namespace llmforge::codegen
