#include "model/rope.h"

#include <algorithm>
#include <cmath>
#include <numbers>

namespace llmforge {

std::vector<double> rope_inv_freq(const ModelConfig& c, double* mscale) {
    const int64_t D = c.rot_dim();  // the rotated part of a head (all of it but for DeepSeek)
    std::vector<double> inv(D / 2);
    for (int64_t i = 0; i < D / 2; ++i) {
        inv[i] = std::pow(static_cast<double>(c.rope_theta), -2.0 * i / static_cast<double>(D));
    }
    *mscale = 1.0;
    const double f = c.rope_factor > 0 ? c.rope_factor : 1.0;
    switch (c.rope_scaling) {
        case RopeScaling::kNone: break;
        case RopeScaling::kLinear:
            for (double& x : inv) x /= f;
            break;
        case RopeScaling::kLlama3: {
            const double old_ctx = c.rope_orig_ctx > 0 ? c.rope_orig_ctx : 8192;
            const double lo = c.rope_low_freq_factor, hi = c.rope_high_freq_factor;
            const double low_wavelen = old_ctx / lo, high_wavelen = old_ctx / hi;
            for (double& x : inv) {
                const double wavelen = 2 * std::numbers::pi / x;
                if (wavelen < high_wavelen) continue;
                if (wavelen > low_wavelen) {
                    x /= f;
                } else {
                    const double smooth = (old_ctx / wavelen - lo) / (hi - lo);
                    x = (1 - smooth) * x / f + smooth * x;
                }
            }
            break;
        }
        case RopeScaling::kYarn: {
            // Hugging Face's YaRN: blend interpolated and extrapolated frequencies over a linear
            // ramp between the correction dims, and scale cos/sin by the attention factor.
            const double old_ctx = c.rope_orig_ctx > 0 ? c.rope_orig_ctx : c.n_ctx_train;
            const double base = c.rope_theta;
            auto corr_dim = [&](double n_rot) {
                return (D * std::log(old_ctx / (n_rot * 2 * std::numbers::pi))) / (2 * std::log(base));
            };
            double low = std::floor(corr_dim(c.yarn_beta_fast));
            double high = std::ceil(corr_dim(c.yarn_beta_slow));
            low = std::max(low, 0.0);
            high = std::min(high, static_cast<double>(D - 1));
            if (low == high) high += 0.001;
            for (int64_t i = 0; i < D / 2; ++i) {
                double ramp = (static_cast<double>(i) - low) / (high - low);
                ramp = std::clamp(ramp, 0.0, 1.0);
                const double extrap_w = 1.0 - ramp;
                const double extrap = inv[i], interp = inv[i] / f;
                inv[i] = interp * (1 - extrap_w) + extrap * extrap_w;
            }
            *mscale = (f <= 1 ? 1.0 : 0.1 * std::log(f) + 1.0) * c.yarn_attn_factor;
            break;
        }
    }
    return inv;
}

void rope_cos_sin(const std::vector<double>& inv_freq, double mscale, int64_t pos, float* cs, float* sn) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const double a = static_cast<double>(pos) * inv_freq[i];
        cs[i] = static_cast<float>(std::cos(a) * mscale);
        sn[i] = static_cast<float>(std::sin(a) * mscale);
    }
}

}  // namespace llmforge
