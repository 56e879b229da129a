// Image-encode latency of a ViT vision tower (docs/PERFORMANCE.md, "Vision encoder (issue 20)"):
// a random-weight Hugging Face ViTModel shape (f32 weights, no pooler layer: pooled = final
// LayerNorm's class row) through Model::encode, and the trainer's forward + backward of the same
// architecture (TrainModel::encode on a Tape, loss = Σ pooled · r). PyTorch's side is
// bench/torch_vit_bench.py (same shapes, same JSON fields). Prints one JSON line per setting.
//
// The engine's model is written as a Hugging Face folder (config.json + model.safetensors, every
// tensor by the arch table's init rule, model/arch/arch.h) into a temporary directory and loaded
// with Model::load, so the encode figures need only the `llmforge` target. The trainer's figures
// (training step, --tape-encode) need llmforge_train's headers and library: they are compiled in
// when "train/tape.h" is visible (CMakeLists.txt's bench loop links llmforge_train into this
// program), else the program says they are absent.
//
//   vit_encode_bench [--threads 1,2] [--batch 1,8] [--warmup 2] [--reps 10] [--encode-type f32,bf16]
//                    [--shape base|small|tiny] [--image 224] [--patch 16]
//                    [--train 0|1] [--train-shape small|base|tiny] [--train-batch 8] [--train-reps 5]
//                    [--encode 0|1] [--profile 0|1] [--tape-encode 0|1] [--train-precision fp32|bf16]
//
// --encode-type: the precisions of Model::encode's weight products to time (Model::set_encode_type),
// "encode" lines for f32, "encode_bf16" for bf16; with both, an "accuracy" line per batch gives
// bf16's max |bf16 − f32| / max |f32| over the last hidden state and the pooled output (the same
// input). Every timing line lists its reps' times (times_ms) for drivers that pool rounds
// (bench/vit_encode_compare.py).
// Shapes: base = ViT-B/16 (768 wide, 12 layers, 12 heads, ffn 3072), small = ViT-S/16 (384, 12, 6,
// 1536), tiny = ViT-Ti/16 (192, 12, 3, 768); 224 × 224 × 3 images, 197 rows per image.
// --profile 1: after the encode timings, each op of one encode replayed on its own with the
// engine's kernels (the calls EagerOps makes: kernels::matmul for f32 products, gemm_bf16 on weights packed
// once for bf16 (ffn_up with its GELU inside), attention as two sgemms + softmax per (image, head) for
// f32 and kernels::attention_bf16 for bf16, layernorm_row, act_rows (f32),
// kt.add), median ms per encode
// and share of the sum, so the split of Model::encode's time is visible without a profiler.
// --tape-encode 1: also the forward alone through the trainer's ops (TrainModel::encode on a Tape
// with grad_enabled = false) in fp32 and in bf16 (Precision::kBF16: every weight product on AMX
// tiles where the CPU has them), to show what a bf16 product path would give the engine's encode.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/safetensors.h"
#include "kernels/cpu/encoder_math.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_f32.h"
#include "kernels/cpu/kernels.h"
#include "kernels/cpu/matmul.h"
#include "model/hf_config.h"
#include "model/arch/arch.h"
#include "model/model.h"
#if __has_include("train/tape.h")
#include "train/tape.h"
#include "train/train_model.h"
#define VIT_BENCH_TRAIN 1
#else
#define VIT_BENCH_TRAIN 0
#endif

using namespace llmforge;

namespace {

using Clock = std::chrono::steady_clock;
double now_s() { return std::chrono::duration<double>(Clock::now().time_since_epoch()).count(); }

std::vector<int> int_list(const char* s) {
    std::vector<int> v;
    for (const char* p = s; *p != '\0';) {
        v.push_back(std::atoi(p));
        while (*p != '\0' && *p != ',') ++p;
        if (*p == ',') ++p;
    }
    return v;
}

std::vector<std::string> name_list(const char* s) {
    std::vector<std::string> v;
    for (const char* p = s; *p != '\0';) {
        const char* e = std::strchr(p, ',');
        v.emplace_back(p, e != nullptr ? e : p + std::strlen(p));
        p = e != nullptr ? e + 1 : p + std::strlen(p);
    }
    for (const std::string& t : v)
        if (t != "f32" && t != "bf16") {
            std::fprintf(stderr, "--encode-type: %s is not f32 or bf16\n", t.c_str());
            std::exit(2);
        }
    return v;
}

struct Stats {
    double median = 0, min = 0;
};
Stats stats_of(std::vector<double> t) {
    std::sort(t.begin(), t.end());
    return {t[t.size() / 2], t.front()};
}
std::string times_json(const std::vector<double>& t) {
    std::string s = "[";
    for (size_t i = 0; i < t.size(); ++i) {
        char b[32];
        std::snprintf(b, sizeof b, "%s%.2f", i ? ", " : "", t[i] * 1e3);
        s += b;
    }
    return s + "]";
}

// A Hugging Face ViTConfig's keys for a named shape; through hf_config_parse as a config.json.
ModelConfig vit_config(const std::string& shape, int image, int patch) {
    int hidden = 768, layers = 12, heads = 12, ffn = 3072;
    if (shape == "small") hidden = 384, heads = 6, ffn = 1536;
    else if (shape == "tiny") hidden = 192, heads = 3, ffn = 768;
    else if (shape != "base") std::fprintf(stderr, "unknown shape %s; using base\n", shape.c_str());
    char json[1024];
    std::snprintf(json, sizeof json,
                  "{\"model_type\": \"vit\", \"architectures\": [\"ViTModel\"], \"hidden_size\": %d, "
                  "\"intermediate_size\": %d, \"num_hidden_layers\": %d, \"num_attention_heads\": %d, "
                  "\"image_size\": %d, \"patch_size\": %d, \"num_channels\": 3, \"hidden_act\": \"gelu\", "
                  "\"layer_norm_eps\": 1e-12, \"qkv_bias\": true, \"torch_dtype\": \"float32\"}",
                  hidden, ffn, layers, heads, image, patch);
    return hf_config_parse(json, "vit_encode_bench(" + shape + ")");
}

// B random images (uniform in [-1, 1]) as Model::encode's input rows: (B · rows, 3 · P²).
std::vector<float> image_rows(const ModelConfig& c, int64_t B, uint64_t seed) {
    const int64_t S = c.enc.image_size, P = c.enc.patch_size, rows = 1 + c.enc.n_patches(), cols = c.enc.patch_cols();
    std::mt19937_64 rng(seed);
    std::uniform_real_distribution<float> u(-1.0f, 1.0f);
    std::vector<float> pixels(static_cast<size_t>(3 * S * S)), out(static_cast<size_t>(B * rows * cols));
    for (int64_t b = 0; b < B; ++b) {
        for (float& p : pixels) p = u(rng);
        image_patch_rows(pixels.data(), 3, S, S, P, out.data() + b * rows * cols);
    }
    return out;
}

// A random-weight model of `cfg` as the engine loads it: every tensor of the arch table (optional
// ones, e.g. the pooler, left out) filled by its init rule, written under its Hugging Face name
// with config.json into a temporary folder, then Model::load (the folder is removed once mapped).
struct RandomVit {
    ModelConfig cfg;
    std::map<std::string, std::vector<float>> w;  // GGUF name -> values (the --profile replay's weights)
    std::map<std::string, std::vector<int64_t>> shape;
    std::unique_ptr<Model> model;
};
RandomVit random_vit(const ModelConfig& cfg, uint64_t seed) {
    RandomVit r;
    r.cfg = cfg;
    const Arch& arch = arch_of(cfg.arch, "vit_encode_bench");
    SafetensorsWriter st;
    for (const NamedSpec& ns : tensor_list(arch, cfg, false)) {
        int64_t numel = 1;
        for (int64_t d : ns.shape) numel *= d;
        std::vector<float>& v = r.w[ns.name];
        r.shape[ns.name] = ns.shape;
        v.resize(static_cast<size_t>(numel));
        const int64_t cols = ns.shape.back();
        for (int64_t row = 0; row < numel / cols; ++row) init_tensor(*ns.spec, cfg, ns.name, ns.shape, seed, row, v.data() + row * cols);
        st.add_tensor(gguf_to_hf_name(arch, ns.name, &cfg), DType::F32, ns.shape, v.data(), v.size() * sizeof(float));
    }
    char tmpl[] = "/tmp/vit_encode_bench.XXXXXX";
    const char* dir = mkdtemp(tmpl);
    if (dir == nullptr) {
        std::perror("mkdtemp");
        std::exit(1);
    }
    st.write(std::string(dir) + "/model.safetensors");
    write_file_atomic(std::string(dir) + "/config.json", hf_config_write(cfg));
    r.model = Model::load(dir);
    std::filesystem::remove_all(dir);  // the mapping keeps the data
    return r;
}

void print_json(const char* what, const std::string& shape, int threads, int64_t B, const std::vector<double>& t,
                double flops) {
    const Stats s = stats_of(t);
    std::printf("{\"impl\": \"llmforge\", \"what\": \"%s\", \"shape\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                "\"reps\": %d, \"median_ms\": %.2f, \"min_ms\": %.2f, \"images_per_s\": %.3f, \"gflops\": %.1f, "
                "\"times_ms\": %s}\n",
                what, shape.c_str(), threads, (long long)B, (int)t.size(), s.median * 1e3, s.min * 1e3, B / s.median,
                flops / s.median * 1e-9, times_json(t).c_str());
    std::fflush(stdout);
}

// max |a − b| / max |b|
double rel_err(const std::vector<float>& a, const std::vector<float>& b) {
    double d = 0, m = 1e-30;
    for (size_t i = 0; i < b.size(); ++i) {
        d = std::max(d, std::fabs(static_cast<double>(a[i]) - b[i]));
        m = std::max(m, std::fabs(static_cast<double>(b[i])));
    }
    return d / m;
}

// Forward FLOPs of one image (products and attention; the elementwise ops are not counted).
double encode_flops(const ModelConfig& c) {
    const double T = 1 + c.enc.n_patches(), C = c.n_embd, F = c.n_ff, L = c.n_layer;
    return 2 * T * c.enc.patch_cols() * C + L * (2 * T * C * (4 * C + 2 * F) + 4 * T * T * C);
}

// ---- the replayed ops of one encode (--profile) ----

void profile(const RandomVit& m, int threads, int64_t B, int reps, bool bf16) {
    const ModelConfig& c = m.cfg;
    const int64_t T = 1 + c.enc.n_patches(), N = B * T, C = c.n_embd, F = c.n_ff, H = c.n_head, D = C / H,
                  L = c.n_layer, K0 = c.enc.patch_cols();
    ThreadPool pool(threads);
    kernels::MatmulScratch mm;
    mm.allow_blas = true;
    mm.row_invariant = false;
    const auto& kt = kernels::kernels();
    auto values = [&](const char* name) -> const std::vector<float>& {
        const auto it = m.w.find(name);
        if (it == m.w.end()) {
            std::fprintf(stderr, "no tensor %s\n", name);
            std::exit(1);
        }
        return it->second;
    };
    auto matrix = [&](const char* name) {
        const std::vector<float>& v = values(name);
        const int64_t rows = m.shape.at(name)[0];  // a convolution's (out, ch, P, P): (out, ch·P²)
        return Tensor::view(DType::F32, {rows, static_cast<int64_t>(v.size()) / rows}, v.data(), nullptr, name);
    };
    const Tensor wpatch = matrix("v.patch_embd.weight"), wq = matrix("v.blk.0.attn_q.weight"),
                 wk = matrix("v.blk.0.attn_k.weight"), wv = matrix("v.blk.0.attn_v.weight"),
                 wo = matrix("v.blk.0.attn_out.weight"), wup = matrix("v.blk.0.ffn_up.weight"),
                 wdown = matrix("v.blk.0.ffn_down.weight");
    const float* g = values("v.blk.0.ln1.weight").data();
    const float* bias = values("v.blk.0.ln1.bias").data();
    const float* bf = values("v.blk.0.ffn_up.bias").data();
    std::vector<float> in = image_rows(c, B, 7);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    std::vector<float> x(static_cast<size_t>(N * C)), y(static_cast<size_t>(N * C)), q(static_cast<size_t>(N * C)),
        k(static_cast<size_t>(N * C)), v(static_cast<size_t>(N * C)), att(static_cast<size_t>(N * C)),
        u(static_cast<size_t>(N * F)), u0(static_cast<size_t>(N * F)), sc(static_cast<size_t>(threads * T * T));
    for (auto* vec : {&x, &q, &k, &v}) for (float& f : *vec) f = nd(rng);
    for (float& f : u0) f = nd(rng);
    const int64_t grain = std::max<int64_t>(1, N / (4 * threads));
    const float scale = 1.0f / std::sqrt(static_cast<float>(D));
    struct Op {
        const char* name;
        int per_encode;  // calls per encode: once (patch embed) or once per layer
        std::function<void()> run;
    };
    // The products as EagerOps runs them: f32, kernels::matmul (the bias added in a pass of its
    // own: the "bias adds" op); bf16, each weight packed once (Model::encode_pack), q/k/v from one
    // packing of x (gemm_bf16_multi), attn_out accumulated into the stream (Ops::linear_residual),
    // the MLP through bf16 hidden rows (Ops::mlp_residual: gemm_bf16_to_rows with GELU, then
    // gemm_bf16 on the rows, accumulated), biases inside the products.
    std::vector<std::unique_ptr<kernels::PackedBf16>> packs;
    auto mat = [&](const Tensor& w, const float* a, float* out, int act = -1) -> std::function<void()> {
        if (!bf16) return [&, a, out] { kernels::matmul(w, a, N, out, pool, mm); };
        const kernels::PackedBf16* p = packs.emplace_back(std::make_unique<kernels::PackedBf16>(
            kernels::pack_bf16(w.ptr<float>(), w.dim(1), w.dim(0), w.dim(1), true, &pool))).get();
        const float* b = w.dim(0) == F ? bf : bias;  // a bias vector of the output's width
        return [&, p, a, out, b, act] { kernels::gemm_bf16(a, p->K, N, *p, out, p->M, false, &pool, b, act); };
    };
    // packs (bf16): 0 patch, 1-3 q/k/v, 4 attn_out, 5 ffn_up, 6 ffn_down, in the order made here.
    auto patch = mat(wpatch, in.data(), y.data());
    auto mq = mat(wq, x.data(), q.data()), mk = mat(wk, x.data(), k.data()), mv = mat(wv, x.data(), v.data());
    auto mo = mat(wo, att.data(), y.data()), mup = mat(wup, x.data(), u.data()), mdown = mat(wdown, u0.data(), y.data());
    kernels::PackedRowsBf16 hidden_rows;
    std::vector<Op> ops = {
        {"patch_embed matmul", 1, patch},
        {"q,k,v matmuls", (int)L,
         [&] {
             if (bf16) {
                 const kernels::PackedBf16* bs[3] = {packs[1].get(), packs[2].get(), packs[3].get()};
                 float* cs[3] = {q.data(), k.data(), v.data()};
                 const float* biases[3] = {bias, bias, bias};
                 return kernels::gemm_bf16_multi(x.data(), C, N, 3, bs, cs, biases, &pool);
             }
             mq();
             mk();
             mv();
         }},
        {"attn_out matmul", (int)L, mo},
        {bf16 ? "ffn_up matmul + gelu into bf16 rows" : "ffn_up matmul", (int)L,
         bf16 ? std::function<void()>([&] {
             kernels::gemm_bf16_to_rows(x.data(), C, N, *packs[5], hidden_rows, &pool, bf, 0);
         })
              : mup},
        {bf16 ? "ffn_down matmul from bf16 rows" : "ffn_down matmul", (int)L,
         bf16 ? std::function<void()>([&] { kernels::gemm_bf16(hidden_rows, *packs[6], y.data(), C, true, &pool, bias); })
              : mdown},
        {"attention (QK^T, softmax, PV)", (int)L,
         [&] {
             pool.run(B * H, [&](int64_t item, int tid) {  // EagerOps::bidirectional_attention's work item
                 const int64_t j = item / H, h = item % H, i0 = j * T;
                 float* s = sc.data() + tid * T * T;
                 const float *qh = q.data() + i0 * C + h * D, *kh = k.data() + i0 * C + h * D, *vh = v.data() + i0 * C + h * D;
                 float* oh = att.data() + i0 * C + h * D;
                 if (bf16) {
                     kernels::AttentionBf16 a;
                     a.q = qh, a.k = kh, a.v = vh, a.ldq = a.ldk = a.ldv = a.ldo = C, a.o = oh;
                     a.T = a.Tk = a.L = T, a.D = a.Dv = D, a.scale = scale;
                     kernels::attention_bf16(a);
                     return;
                 }
                 kernels::sgemm(false, true, T, T, D, scale, qh, C, kh, C, 0.0f, s, T);
                 for (int64_t r = 0; r < T; ++r) kt.softmax(s + r * T, T);
                 kernels::sgemm(false, false, T, D, T, 1.0f, s, T, vh, C, 0.0f, oh, C);
             });
         }},
        {"layernorm x2", (int)L,
         [&] {
             for (int rep = 0; rep < 2; ++rep)
                 pool.run_range(N, grain, [&](int64_t lo, int64_t hi) {
                     for (int64_t i = lo; i < hi; ++i) kernels::layernorm_row(x.data() + i * C, g, bias, y.data() + i * C, C, 1e-12f);
                 });
         }},
        {bf16 ? "gelu (erf): in ffn_up's epilogue" : "gelu (erf) on ffn_up", bf16 ? 0 : (int)L,
         [&] {
             pool.run_range(N, grain, [&](int64_t lo, int64_t hi) {
                 kernels::act_rows(0, u0.data() + lo * F, u.data() + lo * F, (hi - lo) * F);
             });
         }},
        {"bias adds (6) + residuals (2)", bf16 ? 0 : (int)L,
         [&] {
             for (int rep = 0; rep < 8; ++rep) {
                 const int64_t cols = rep == 4 ? F : C;
                 float* dst = rep == 4 ? u.data() : y.data();
                 const float* src = rep < 6 ? (rep == 4 ? bf : bias) : x.data();
                 pool.run_range(N, grain, [&](int64_t lo, int64_t hi) {
                     for (int64_t i = lo; i < hi; ++i) kt.add(cols, rep < 6 ? src : src + i * cols, dst + i * cols);
                 });
             }
         }},
    };
    (void)K0;
    std::fprintf(stderr, "profile: %d thread(s), batch %lld, %s products, each op's median of %d, scaled to one encode\n",
                 threads, (long long)B, bf16 ? "bf16" : "f32", reps);
    std::vector<double> per_encode(ops.size());
    double total = 0;
    for (size_t i = 0; i < ops.size(); ++i) {
        ops[i].run();  // warm-up
        std::vector<double> t;
        for (int r = 0; r < reps; ++r) {
            const double t0 = now_s();
            ops[i].run();
            t.push_back(now_s() - t0);
        }
        per_encode[i] = stats_of(t).median * ops[i].per_encode;
        total += per_encode[i];
    }
    for (size_t i = 0; i < ops.size(); ++i) {
        std::printf("{\"impl\": \"llmforge\", \"what\": \"profile\", \"type\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                    "\"op\": \"%s\", \"ms_per_encode\": %.2f, \"share\": %.3f}\n",
                    bf16 ? "bf16" : "f32", threads, (long long)B, ops[i].name, per_encode[i] * 1e3, per_encode[i] / total);
    }
    std::printf("{\"impl\": \"llmforge\", \"what\": \"profile\", \"type\": \"%s\", \"threads\": %d, \"batch\": %lld, "
                "\"op\": \"sum\", \"ms_per_encode\": %.2f}\n",
                bf16 ? "bf16" : "f32", threads, (long long)B, total * 1e3);
    std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
    std::vector<int> threads = {1, 2}, batches = {1, 8};
    std::vector<std::string> encode_types = {"f32"};
    int warmup = 2, reps = 10, train_batch = 8, train_reps = 5, image = 224, patch = 16;
    bool do_train = true, do_encode = true, do_profile = false, do_tape = false;
    std::string shape = "base", train_shape = "small", train_precision = "fp32";
    for (int i = 1; i + 1 < argc; i += 2) {
        const std::string k = argv[i];
        const char* v = argv[i + 1];
        if (k == "--threads") threads = int_list(v);
        else if (k == "--batch") batches = int_list(v);
        else if (k == "--encode-type") encode_types = name_list(v);
        else if (k == "--warmup") warmup = std::atoi(v);
        else if (k == "--reps") reps = std::atoi(v);
        else if (k == "--shape") shape = v;
        else if (k == "--image") image = std::atoi(v);
        else if (k == "--patch") patch = std::atoi(v);
        else if (k == "--train") do_train = std::atoi(v) != 0;
        else if (k == "--encode") do_encode = std::atoi(v) != 0;
        else if (k == "--profile") do_profile = std::atoi(v) != 0;
        else if (k == "--tape-encode") do_tape = std::atoi(v) != 0;
        else if (k == "--train-precision") train_precision = v;
        else if (k == "--train-shape") train_shape = v;
        else if (k == "--train-batch") train_batch = std::atoi(v);
        else if (k == "--train-reps") train_reps = std::atoi(v);
        else {
            std::fprintf(stderr, "unknown flag %s (see the comment at the top of bench/vit_encode_bench.cpp)\n", k.c_str());
            return 2;
        }
    }

#if !VIT_BENCH_TRAIN
    if (do_train || do_tape) {
        std::fprintf(stderr, "vit_encode_bench: built without llmforge_train (train/tape.h not visible): no training "
                             "step or --tape-encode figures\n");
        do_train = do_tape = false;
    }
    (void)train_batch, (void)train_reps;
#endif
    if (do_encode || do_profile || do_tape) {
        const ModelConfig cfg = vit_config(shape, image, patch);
        const RandomVit vit = random_vit(cfg, 1234);
        Model& model = *vit.model;
        const int64_t rows = 1 + cfg.enc.n_patches();
        int64_t n_params = 0;
        for (const auto& kv : vit.w) n_params += static_cast<int64_t>(kv.second.size());
        std::fprintf(stderr, "ViT %s: %lld params, %lld rows per image, sgemm %s\n", shape.c_str(), (long long)n_params,
                     (long long)rows, kernels::sgemm_uses_avx512() ? "avx512" : "blas");
#if VIT_BENCH_TRAIN
        std::unique_ptr<train::TrainModel> tm;
        if (do_tape) tm = train::TrainModel::init_random(cfg, 1234);
#endif
        for (int nt : threads) {
            ThreadPool pool(nt);
            for (int B : batches) {
                if (!do_encode) break;
                const std::vector<float> in = image_rows(cfg, B, 42);
                std::map<std::string, EncodeOutput> outs;
                for (const std::string& et : encode_types) {
                    model.set_encode_type(et == "bf16" ? DType::BF16 : DType::F32);
                    ForwardScratch s;
                    EncodeOutput& out = outs[et];
                    for (int w = 0; w < warmup; ++w) model.encode(in.data(), B, rows, out, pool, s);
                    std::vector<double> t;
                    for (int r = 0; r < reps; ++r) {
                        const double t0 = now_s();
                        model.encode(in.data(), B, rows, out, pool, s);
                        t.push_back(now_s() - t0);
                    }
                    for (float f : out.last)
                        if (!std::isfinite(f)) {
                            std::fprintf(stderr, "non-finite output\n");
                            return 1;
                        }
                    print_json(et == "bf16" ? "encode_bf16" : "encode", shape, nt, B, t, encode_flops(cfg) * B);
                }
                if (outs.count("f32") && outs.count("bf16")) {
                    std::printf("{\"impl\": \"llmforge\", \"what\": \"accuracy\", \"shape\": \"%s\", \"threads\": %d, "
                                "\"batch\": %d, \"bf16_vs_f32_last_rel\": %.3g, \"bf16_vs_f32_pooled_rel\": %.3g}\n",
                                shape.c_str(), nt, B, rel_err(outs["bf16"].last, outs["f32"].last),
                                rel_err(outs["bf16"].pooled, outs["f32"].pooled));
                    std::fflush(stdout);
                }
            }
            model.set_encode_type(DType::F32);
            if (do_profile)
                for (const std::string& et : encode_types)
                    for (int B : batches) profile(vit, nt, B, std::max(3, reps), et == "bf16");
#if VIT_BENCH_TRAIN
            for (const char* prec : {"fp32", "bf16"}) {
                if (!do_tape) break;
                train::Tape t(pool);
                t.grad_enabled = false;
                t.precision = train::precision_from_name(prec);
                for (int B : batches) {
                    const std::vector<float> in = image_rows(cfg, B, 42);
                    auto run = [&] {
                        t.reset();
                        train::Var pooled = nullptr;
                        tm->encode(t, in.data(), B, rows, &pooled);
                        return pooled;
                    };
                    for (int w = 0; w < warmup; ++w) run();
                    std::vector<double> times;
                    for (int r = 0; r < reps; ++r) {
                        const double t0 = now_s();
                        run();
                        times.push_back(now_s() - t0);
                    }
                    const std::string what = std::string("tape_encode_") + prec;
                    print_json(what.c_str(), shape, nt, B, times, encode_flops(cfg) * B);
                }
            }
#endif
        }
    }

#if VIT_BENCH_TRAIN
    if (do_train) {
        const ModelConfig cfg = vit_config(train_shape, image, patch);
        auto tm = train::TrainModel::init_random(cfg, 99);
        const int64_t rows = 1 + cfg.enc.n_patches(), B = train_batch;
        const std::vector<float> in = image_rows(cfg, B, 5);
        std::vector<float> r(static_cast<size_t>(B * cfg.n_embd));
        std::mt19937 rng(11);
        std::normal_distribution<float> nd(0.0f, 1.0f);
        for (float& f : r) f = nd(rng);
        std::fprintf(stderr, "train ViT %s: %lld params, batch %lld\n", train_shape.c_str(), (long long)tm->n_params(),
                     (long long)B);
        for (int nt : threads) {
            ThreadPool pool(nt);
            train::Tape t(pool);
            t.free_in_backward = true;  // the training loop's setting
            t.precision = train::precision_from_name(train_precision);
            std::vector<double> times;
            for (int step = 0; step < 1 + train_reps; ++step) {  // the first is a warm-up
                t.reset();
                for (auto& p : tm->params()) p->grad.zero();  // the optimiser's part, outside the timing (as torch's)
                const double t0 = now_s();
                train::Var pooled = nullptr;
                tm->encode(t, in.data(), B, rows, &pooled);
                // loss = Σ pooled · r, as a node whose backward seeds the pooled output's gradient.
                train::Var loss = t.make({1}, true);
                double l = 0;
                for (int64_t i = 0; i < pooled->numel; ++i) l += static_cast<double>(pooled->data[i]) * r[i];
                loss->data[0] = static_cast<float>(l);
                t.on_backward([&t, pooled, loss, &r] {
                    float* dp = t.grad(pooled);
                    for (int64_t i = 0; i < pooled->numel; ++i) dp[i] += r[i] * loss->grad[0];
                });
                t.backward(loss);
                const double el = now_s() - t0;
                if (!std::isfinite(l)) {
                    std::fprintf(stderr, "non-finite loss\n");
                    return 1;
                }
                if (step > 0) times.push_back(el);
                std::fprintf(stderr, "train: %d thread(s) step %d %.1f ms\n", nt, step, el * 1e3);
            }
            print_json(train_precision == "fp32" ? "train_step" : "train_step_bf16", train_shape, nt, B, times,
                       3 * encode_flops(cfg) * B);
        }
    }
#endif
    return 0;
}
