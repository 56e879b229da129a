// Swin Transformer (Liu et al. 2021; Hugging Face SwinModel) written once against Ops for the
// engine and the trainer:
//
//   patch rows (no class token) → patch linear + bias → LayerNorm (eps 1e-5, as HF's fixed one)
//   → stages s = 0..S−1, n_embd·2^s wide, depths[s] blocks each, block b of a stage:
//        x = LN_before(h) on the (Hs, Ws) token grid, zero-padded to whole windows (Hp, Wp),
//            cyclically shifted by −shift (shift = window/2 in odd blocks, 0 in even ones and
//            whenever the grid is no larger than one window), cut into windows of G = ws² tokens
//        h += gather back(out(attention within each window: scale·qkᵀ + B[rel. position]
//                                                             + (shifted: −100 across regions))))
//        h += fc2(gelu(fc1(LN_after(h))))
//     and after the last block of every stage but the last, patch merging: the 2×2 neighbours
//     (x0,x1,x2,x3) = ((0,0),(1,0),(0,1),(1,1)) concatenated (zero rows past an odd edge),
//     LayerNorm (eps 1e-5), reduction to 2× width without bias
//   → LayerNorm over every token (last hidden state) → pooled: the mean over tokens.
// Window partition, shift, padding and the merge are row gathers (Ops::gather_rows) whose
// indices are computed here from the grid, so both backends run the same rearrangements.
//
// HF names carry (stage, block): "encoder.layers.<s>.blocks.<b>." and "encoder.layers.<s>.downsample.";
// the table uses the flat "encoder.blocks.{l}." (global block l), mapped by hf_rename. HF's
// relative_position_index buffers are not read (the index is computed here).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "model/arch/arch.h"
#include "model/arch/encoder.h"

namespace llmforge {

namespace {

enum Slot {
    kPatch, kPatchB, kPatchNorm, kPatchNormB, kNorm, kNormB,
    kLn1, kLn1B, kWq, kBq, kWk, kBk, kWv, kBv, kRelBias, kWo, kBo, kLn2, kLn2B, kFc1, kFc1B, kFc2, kFc2B,
    kMergeNorm, kMergeNormB, kMerge,
    kNumSlots
};

constexpr float kFixedEps = 1e-5f;  // HF's embeddings.norm and downsample.norm: nn.LayerNorm's default

using Shape = std::vector<int64_t>;
int64_t width(const ModelConfig& c, int64_t l) { return c.n_embd << c.enc.stage_of(l); }
int64_t heads(const ModelConfig& c, int64_t l) { return c.enc.stage_heads[c.enc.stage_of(l)]; }
int64_t ff(const ModelConfig& c, int64_t l) { return static_cast<int64_t>(c.enc.mlp_ratio * width(c, l)); }
int64_t last_width(const ModelConfig& c) { return c.n_embd << (static_cast<int64_t>(c.enc.depths.size()) - 1); }

Shape s_patch(const ModelConfig& c, int64_t) { return {c.n_embd, c.enc.n_channels, c.enc.patch_size, c.enc.patch_size}; }
Shape s_embd(const ModelConfig& c, int64_t) { return {c.n_embd}; }
Shape s_last(const ModelConfig& c, int64_t) { return {last_width(c)}; }
Shape s_w(const ModelConfig& c, int64_t l) { return {width(c, l)}; }
Shape s_sq(const ModelConfig& c, int64_t l) { return {width(c, l), width(c, l)}; }
Shape s_rel(const ModelConfig& c, int64_t l) { return {(2 * c.enc.window - 1) * (2 * c.enc.window - 1), heads(c, l)}; }
Shape s_up(const ModelConfig& c, int64_t l) { return {ff(c, l), width(c, l)}; }
Shape s_ff(const ModelConfig& c, int64_t l) { return {ff(c, l)}; }
Shape s_down(const ModelConfig& c, int64_t l) { return {width(c, l), ff(c, l)}; }
Shape s_w4(const ModelConfig& c, int64_t l) { return {4 * width(c, l)}; }
Shape s_merge(const ModelConfig& c, int64_t l) { return {2 * width(c, l), 4 * width(c, l)}; }

// Block l ends a stage that is followed by another (its output is merged).
bool merges(const ModelConfig& c, int64_t l) {
    int64_t end = 0;
    for (size_t s = 0; s + 1 < c.enc.depths.size(); ++s) {
        end += c.enc.depths[s];
        if (l == end - 1) return true;
    }
    return false;
}

std::vector<TensorSpec> table() {
    using U = TensorUse;
#define L "encoder.blocks.{l}."
    return {
        {kPatch, "v.patch_embd.weight", "embeddings.patch_embeddings.projection.weight", false, U::kMatrix, Init::kNormal,
         s_patch},
        {kPatchB, "v.patch_embd.bias", "embeddings.patch_embeddings.projection.bias", false, U::kVector, Init::kZeros,
         s_embd},
        {kPatchNorm, "v.patch_norm.weight", "embeddings.norm.weight", false, U::kVector, Init::kOnes, s_embd},
        {kPatchNormB, "v.patch_norm.bias", "embeddings.norm.bias", false, U::kVector, Init::kZeros, s_embd},
        {kNorm, "v.norm.weight", "layernorm.weight", false, U::kVector, Init::kOnes, s_last},
        {kNormB, "v.norm.bias", "layernorm.bias", false, U::kVector, Init::kZeros, s_last},
        {kLn1, "v.blk.{l}.ln1.weight", L "layernorm_before.weight", true, U::kVector, Init::kOnes, s_w},
        {kLn1B, "v.blk.{l}.ln1.bias", L "layernorm_before.bias", true, U::kVector, Init::kZeros, s_w},
        {kWq, "v.blk.{l}.attn_q.weight", L "attention.self.query.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBq, "v.blk.{l}.attn_q.bias", L "attention.self.query.bias", true, U::kVector, Init::kZeros, s_w},
        {kWk, "v.blk.{l}.attn_k.weight", L "attention.self.key.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBk, "v.blk.{l}.attn_k.bias", L "attention.self.key.bias", true, U::kVector, Init::kZeros, s_w},
        {kWv, "v.blk.{l}.attn_v.weight", L "attention.self.value.weight", true, U::kMatrix, Init::kNormal, s_sq},
        {kBv, "v.blk.{l}.attn_v.bias", L "attention.self.value.bias", true, U::kVector, Init::kZeros, s_w},
        // Learned bias per relative position (dy, dx) and head ((2ws−1)², H), read by table_bias.
        {kRelBias, "v.blk.{l}.attn_rel_bias", L "attention.self.relative_position_bias_table", true, U::kVector,
         Init::kNormal, s_rel},
        {kWo, "v.blk.{l}.attn_out.weight", L "attention.output.dense.weight", true, U::kMatrix, Init::kResidualOut, s_sq},
        {kBo, "v.blk.{l}.attn_out.bias", L "attention.output.dense.bias", true, U::kVector, Init::kZeros, s_w},
        {kLn2, "v.blk.{l}.ln2.weight", L "layernorm_after.weight", true, U::kVector, Init::kOnes, s_w},
        {kLn2B, "v.blk.{l}.ln2.bias", L "layernorm_after.bias", true, U::kVector, Init::kZeros, s_w},
        {kFc1, "v.blk.{l}.ffn_up.weight", L "intermediate.dense.weight", true, U::kMatrix, Init::kNormal, s_up},
        {kFc1B, "v.blk.{l}.ffn_up.bias", L "intermediate.dense.bias", true, U::kVector, Init::kZeros, s_ff},
        {kFc2, "v.blk.{l}.ffn_down.weight", L "output.dense.weight", true, U::kMatrix, Init::kResidualOut, s_down},
        {kFc2B, "v.blk.{l}.ffn_down.bias", L "output.dense.bias", true, U::kVector, Init::kZeros, s_w},
        {kMergeNorm, "v.blk.{l}.merge_norm.weight", L "downsample.norm.weight", true, U::kVector, Init::kOnes, s_w4,
         merges},
        {kMergeNormB, "v.blk.{l}.merge_norm.bias", L "downsample.norm.bias", true, U::kVector, Init::kZeros, s_w4,
         merges},
        {kMerge, "v.blk.{l}.merge.weight", L "downsample.reduction.weight", true, U::kMatrix, Init::kNormal, s_merge,
         merges},
    };
#undef L
}

// ---- names: "encoder.layers.<s>.blocks.<b>.x" / "encoder.layers.<s>.downsample.x" <-> "encoder.blocks.<l>.x" ----

// Reads a decimal number at name[*at] up to `stop`; false if there is none.
bool number_at(const std::string& name, size_t* at, char stop, int64_t* out) {
    const size_t end = name.find(stop, *at);
    if (end == std::string::npos || end == *at || end - *at > 6) return false;
    int64_t v = 0;
    for (size_t i = *at; i < end; ++i) {
        if (name[i] < '0' || name[i] > '9') return false;
        v = v * 10 + (name[i] - '0');
    }
    *out = v;
    *at = end + 1;
    return true;
}

std::string rename(const ModelConfig& c, const std::string& name, bool to_hf) {
    const auto& depths = c.enc.depths;
    const int64_t n_stages = static_cast<int64_t>(depths.size());
    auto first_of = [&](int64_t s) {
        int64_t f = 0;
        for (int64_t i = 0; i < s; ++i) f += depths[i];
        return f;
    };
    if (!to_hf) {
        static const std::string pre = "encoder.layers.";
        if (name.rfind(pre, 0) != 0) return name;
        size_t at = pre.size();
        int64_t s = 0, b = 0;
        if (!number_at(name, &at, '.', &s) || s >= n_stages) return name;
        static const std::string blocks = "blocks.", down = "downsample.";
        if (name.compare(at, blocks.size(), blocks) == 0) {
            at += blocks.size();
            if (!number_at(name, &at, '.', &b) || b >= depths[s]) return name;
            return "encoder.blocks." + std::to_string(first_of(s) + b) + "." + name.substr(at);
        }
        if (name.compare(at, down.size(), down) == 0) {
            return "encoder.blocks." + std::to_string(first_of(s) + depths[s] - 1) + "." + name.substr(at);
        }
        return name;
    }
    static const std::string pre = "encoder.blocks.";
    if (name.rfind(pre, 0) != 0) return name;
    size_t at = pre.size();
    int64_t l = 0;
    if (!number_at(name, &at, '.', &l) || l >= c.n_layer) return name;
    const int64_t s = c.enc.stage_of(l);
    const std::string rest = name.substr(at);
    if (rest.rfind("downsample.", 0) == 0) return "encoder.layers." + std::to_string(s) + "." + rest;
    return "encoder.layers." + std::to_string(s) + ".blocks." + std::to_string(l - first_of(s)) + "." + rest;
}

// ---- hyper-parameters (Hugging Face SwinConfig keys) ----

void configure(ModelConfig& c, const ConfigSource& src) {
    using encoder_family::need;
    const std::string& where = src.where();
    c.n_embd = need(src, "embed_dim");
    c.enc.depths = src.integers("depths", "depths").value_or(std::vector<int64_t>{});
    c.enc.stage_heads = src.integers("num_heads", "num_heads").value_or(std::vector<int64_t>{});
    if (c.enc.depths.empty() || c.enc.depths.size() != c.enc.stage_heads.size()) {
        fail("%s: \"depths\" has %zu stages and \"num_heads\" %zu, expected the same number, at least one", where.c_str(),
             c.enc.depths.size(), c.enc.stage_heads.size());
    }
    c.enc.window = need(src, "window_size");
    const double ratio = src.number("mlp_ratio", "mlp_ratio").value_or(4.0);
    if (!(ratio > 0 && ratio <= 64)) fail("%s: \"mlp_ratio\" is %g, expected in (0, 64]", where.c_str(), ratio);
    c.enc.mlp_ratio = static_cast<float>(ratio);
    encoder_family::configure_vision(c, src, "gelu", 1e-5);
    if (src.boolean("use_absolute_embeddings", "use_absolute_embeddings").value_or(false)) {
        fail("%s: \"use_absolute_embeddings\" is true, which llmforge's Swin does not support (expected false)",
             where.c_str());
    }
    if (!src.boolean("qkv_bias", "qkv_bias").value_or(true)) {
        fail("%s: \"qkv_bias\" is false, which llmforge's Swin does not support (expected true)", where.c_str());
    }
    c.n_layer = 0;
    for (int64_t d : c.enc.depths) c.n_layer += d;
    c.n_head = c.n_head_kv = c.enc.stage_heads[0];
    c.head_dim = c.n_embd / c.n_head;
    c.n_ff = static_cast<int64_t>(c.enc.mlp_ratio * c.n_embd);
    c.n_vocab = 0;
    c.n_ctx_train = int64_t{1} << 30;  // no position table: any grid
}

void write_keys(const ModelConfig& c, ConfigSink& sink) {
    sink.integer("embed_dim", "embed_dim", c.n_embd);
    sink.integers("depths", "depths", c.enc.depths);
    sink.integers("num_heads", "num_heads", c.enc.stage_heads);
    sink.integer("num_layers", "num_layers", static_cast<int64_t>(c.enc.depths.size()));
    sink.integer("hidden_size", "hidden_size", last_width(c));
    sink.integer("window_size", "window_size", c.enc.window);
    sink.number("mlp_ratio", "mlp_ratio", c.enc.mlp_ratio);
    sink.integer("image_size", "image_size", c.enc.image_size);
    sink.integer("patch_size", "patch_size", c.enc.patch_size);
    sink.integer("num_channels", "num_channels", c.enc.n_channels);
    sink.string("hidden_act", "hidden_act", activation_name(c.enc.act));
    sink.number("layer_norm_eps", "layer_norm_eps", c.enc.norm_eps);
    sink.boolean("qkv_bias", "qkv_bias", true);
    sink.boolean("use_absolute_embeddings", "use_absolute_embeddings", false);
}

void validate(const ModelConfig& c, const std::string& where) {
    if (c.n_embd <= 0 || c.enc.window <= 0 || c.enc.patch_size <= 0 || c.enc.n_channels <= 0 || c.enc.depths.empty()) {
        fail("%s: bad Swin hyper-parameters: embed_dim %lld, window %lld, patch %lld, channels %lld, %zu stages",
             where.c_str(), (long long)c.n_embd, (long long)c.enc.window, (long long)c.enc.patch_size,
             (long long)c.enc.n_channels, c.enc.depths.size());
    }
    for (size_t s = 0; s < c.enc.depths.size(); ++s) {
        const int64_t w = c.n_embd << s, h = c.enc.stage_heads[s];
        if (h <= 0 || w % h != 0 || c.enc.depths[s] <= 0) {
            fail("%s: Swin stage %zu is %lld wide with %lld heads and %lld blocks (expected whole heads and >= 1 block)",
                 where.c_str(), s, (long long)w, (long long)h, (long long)c.enc.depths[s]);
        }
    }
}

// ---- the forward, once ----

// The token grid of stage s for an input grid (h, w): halved (rounded up) at each merge.
void stage_grid(const ModelConfig& c, int64_t s, int64_t* h, int64_t* w) {
    *h = c.enc.grid_h > 0 ? c.enc.grid_h : c.enc.image_size / c.enc.patch_size;
    *w = c.enc.grid_w > 0 ? c.enc.grid_w : c.enc.image_size / c.enc.patch_size;
    for (int64_t i = 0; i < s; ++i) *h = (*h + 1) / 2, *w = (*w + 1) / 2;
}

Weight G(int slot) { return Weight{-1, slot}; }

Act embed(Ops& o, const ModelConfig& c) {
    Act h = o.linear(o.input(c.enc.patch_cols(), 0), G(kPatch), G(kPatchB));
    return o.layernorm(h, G(kPatchNorm), G(kPatchNormB), kFixedEps);
}

Act layer(Ops& o, const ModelConfig& c, int64_t l, Act h) {
    auto W = [l](int slot) { return Weight{l, slot}; };
    const int64_t s = c.enc.stage_of(l);
    int64_t first = 0;
    for (int64_t i = 0; i < s; ++i) first += c.enc.depths[i];
    int64_t Hs = 0, Ws = 0;
    stage_grid(c, s, &Hs, &Ws);
    const int64_t ws = c.enc.window;
    if (std::min(Hs, Ws) < ws) {
        fail("Swin stage %lld has a %lldx%lld token grid, smaller than the %lld-token window (Hugging Face's Swin "
             "cannot run it either; hint: a larger image)",
             (long long)s, (long long)Hs, (long long)Ws, (long long)ws);
    }
    // No shift when the grid is a single window (HF's set_shift_and_window_size).
    const int64_t shift = (l - first) % 2 == 1 && std::min(Hs, Ws) > ws ? ws / 2 : 0;
    const int64_t Hp = (Hs + ws - 1) / ws * ws, Wp = (Ws + ws - 1) / ws * ws, nwx = Wp / ws;
    const int64_t n_win = (Hp / ws) * nwx, G2 = ws * ws;
    // Window partition of the padded, shifted grid: window (wy, wx), token (iy, ix) reads padded
    // position ((wy·ws + iy + shift) mod Hp, (wx·ws + ix + shift) mod Wp) — a zero row past the grid.
    std::vector<int32_t> to_windows(static_cast<size_t>(n_win * G2)), back(static_cast<size_t>(Hs * Ws));
    for (int64_t w = 0; w < n_win; ++w)
        for (int64_t t = 0; t < G2; ++t) {
            const int64_t y = ((w / nwx) * ws + t / ws + shift) % Hp, x = ((w % nwx) * ws + t % ws + shift) % Wp;
            to_windows[w * G2 + t] = y < Hs && x < Ws ? static_cast<int32_t>(y * Ws + x) : -1;
            if (y < Hs && x < Ws) back[y * Ws + x] = static_cast<int32_t>(w * G2 + t);
        }
    // Relative position index: (iy − jy + ws − 1)·(2ws − 1) + (ix − jx + ws − 1).
    std::vector<int32_t> rel(static_cast<size_t>(G2 * G2));
    for (int64_t i = 0; i < G2; ++i)
        for (int64_t j = 0; j < G2; ++j)
            rel[i * G2 + j] = static_cast<int32_t>((i / ws - j / ws + ws - 1) * (2 * ws - 1) + (i % ws - j % ws + ws - 1));
    // Shifted windows: tokens of different regions of the padded grid (cut at Hp − ws and Hp − shift,
    // likewise across) do not attend to each other (−100, as HF).
    std::vector<float> mask;
    if (shift > 0) {
        auto region = [](int64_t v, int64_t n, int64_t win, int64_t sh) { return v < n - win ? 0 : v < n - sh ? 1 : 2; };
        mask.assign(static_cast<size_t>(n_win * G2 * G2), 0.0f);
        for (int64_t w = 0; w < n_win; ++w) {
            std::vector<int> lab(static_cast<size_t>(G2));
            for (int64_t t = 0; t < G2; ++t)
                lab[t] = region((w / nwx) * ws + t / ws, Hp, ws, shift) * 3 + region((w % nwx) * ws + t % ws, Wp, ws, shift);
            for (int64_t i = 0; i < G2; ++i)
                for (int64_t j = 0; j < G2; ++j)
                    if (lab[i] != lab[j]) mask[(w * G2 + i) * G2 + j] = -100.0f;
        }
    }
    const int64_t C = width(c, l), H = heads(c, l), D = C / H;
    Act x = o.layernorm(h, W(kLn1), W(kLn1B), c.enc.norm_eps);
    x = o.gather_rows(x, to_windows.data(), n_win * G2);
    const Weight wqkv[3] = {W(kWq), W(kWk), W(kWv)}, bqkv[3] = {W(kBq), W(kBk), W(kBv)};
    Act qkv[3];
    o.linear(x, wqkv, bqkv, 3, qkv);
    AttentionSpec spec{H, H, D, D, 0, 1.0f / std::sqrt(static_cast<float>(D)), nullptr};
    spec.causal = false;
    spec.group = G2;
    spec.bias = o.table_bias(W(kRelBias), rel.data(), G2, H);
    if (shift > 0) spec.mask = mask.data(), spec.n_mask = n_win;
    Act a = o.linear(o.attention(l, qkv[0], qkv[1], qkv[2], spec), W(kWo), W(kBo));
    h = o.residual(l, 0, h, o.gather_rows(a, back.data(), Hs * Ws));
    x = o.layernorm(h, W(kLn2), W(kLn2B), c.enc.norm_eps);
    h = encoder_family::mlp_residual(o, l, h, x, W(kFc1), W(kFc1B), W(kFc2), W(kFc2B), c.enc.act);
    if (!merges(c, l)) return h;
    // Patch merging: token (oy, ox) of the halved grid is [x(2oy,2ox), x(2oy+1,2ox), x(2oy,2ox+1), x(2oy+1,2ox+1)].
    const int64_t H2 = (Hs + 1) / 2, W2 = (Ws + 1) / 2;
    std::vector<int32_t> quads(static_cast<size_t>(H2 * W2 * 4));
    static const int kDy[4] = {0, 1, 0, 1}, kDx[4] = {0, 0, 1, 1};
    for (int64_t t = 0; t < H2 * W2; ++t)
        for (int k = 0; k < 4; ++k) {
            const int64_t yy = 2 * (t / W2) + kDy[k], xx = 2 * (t % W2) + kDx[k];
            quads[t * 4 + k] = yy < Hs && xx < Ws ? static_cast<int32_t>(yy * Ws + xx) : -1;
        }
    Act m = o.merge_rows(o.gather_rows(h, quads.data(), H2 * W2 * 4), 4);
    m = o.layernorm(m, W(kMergeNorm), W(kMergeNormB), kFixedEps);
    return o.linear(m, W(kMerge));
}

Act head(Ops& o, const ModelConfig& c, Act h) { return o.layernorm(h, G(kNorm), G(kNormB), c.enc.norm_eps); }

Act pool(Ops& o, const ModelConfig&, Act last) { return o.mean_rows(last); }

Arch make() {
    Arch a = encoder_family::make_arch("swin", {"swin"}, "SwinModel", table(), kNumSlots, configure, write_keys, validate,
                                       embed, layer, head, pool);
    a.hf_rename = rename;
    return a;
}

}  // namespace

extern const Arch kSwinArch = make();

}  // namespace llmforge
