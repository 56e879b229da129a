// quantize_model (quantize_model.h): llama.cpp's per-tensor type choice (src/llama-quant.cpp
// llama_tensor_get_type at c392e5094, the k-quant and legacy file types; the IQ types are not
// offered) and the streamed, parallel write through export_gguf_file.
#include "quantize_model.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>

#include "core/error.h"
#include "gguf_export.h"
#include "model/arch/arch.h"
#include "model/model.h"

namespace llmforge::cli {

namespace {

// llama_ftype values (llama.h).
enum Ftype : uint32_t {
    kF32 = 0, kF16 = 1, kQ4_0 = 2, kQ4_1 = 3, kQ8_0 = 7, kQ5_0 = 8, kQ5_1 = 9, kQ2_K = 10, kQ3_K_S = 11,
    kQ3_K_M = 12, kQ3_K_L = 13, kQ4_K_S = 14, kQ4_K_M = 15, kQ5_K_S = 16, kQ5_K_M = 17, kQ6_K = 18,
    kQ2_K_S = 21, kBF16 = 32,
};

int block(DType t) { return dtype_info(t).block_size; }

// The layer of "blk.N.*" (-1 for other names): llama.cpp's loader orders tensors by it, then by name.
int layer_of(const std::string& name) {
    int l = -1;
    if (std::sscanf(name.c_str(), "blk.%d.", &l) != 1) return -1;
    return l;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// llama.cpp quantises 2-D+ tensors named "*weight" except norms and a few special ones.
bool quantisable(const std::string& name, const std::vector<int64_t>& shape) {
    if (shape.size() < 2) return false;
    if (name.size() < 6 || name.compare(name.size() - 6, 6, "weight") != 0) return false;
    for (const char* skip : {"_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d.weight", "time_mix_first.weight",
                             "time_mix_w1.weight", "time_mix_w2.weight", "time_mix_decay_w1.weight",
                             "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight"})
        if (contains(name, skip)) return false;
    return name != "position_embd.weight" && name != "token_types.weight";
}

// llama.cpp's counters and model facts (quantize_state_impl).
struct State {
    const TypeChoiceContext& c;
    uint32_t ftype;
    bool has_output = false;
    int n_attention_wv = 0, i_attention_wv = 0, i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
    int n_layer() const { return static_cast<int>(c.n_layer); }
    int n_gqa() const { return c.n_head_kv > 0 ? static_cast<int>(c.n_head / c.n_head_kv) : 0; }
    bool is_70b() const {
        if (c.n_layer != 80) return false;
        if (c.arch == "qwen2") return true;
        return (c.arch == "llama" || c.arch == "mistral") && c.n_head != c.n_head_kv;
    }
};

// More bits for the first and last eighth of the layers and every third one between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

// The layer index llama.cpp uses for ffn_* tensors: its own running counter for dense models
// (the tensors come in layer order), the name's layer for MoE ones.
int ffn_layer(const State& s, int counter, const std::string& name) {
    if (s.c.n_expert > 1) {
        const int l = layer_of(name);
        if (l < 0 || l >= s.n_layer()) fail("quantize: cannot tell the layer of %s", name.c_str());
        return l;
    }
    return counter;
}

// llama_tensor_get_type without the IQ file types: the mix's rule for one tensor.
DType mix_type(State& s, DType t, const std::string& name, int64_t nx) {
    const uint32_t f = s.ftype;
    const int64_t n_expert = s.c.n_expert;
    if (name == "output.weight" || (!s.has_output && name == "token_embd.weight")) {
        // A tied embedding is quantised as the output it also is.
        if (nx % block(t) != 0) {
            t = DType::Q8_0;
        } else if (t != DType::Q8_0) {
            t = DType::Q6_K;
        }
    } else if (name == "token_embd.weight") {
        // only IQ / TQ file types change it
    } else if (contains(name, "attn_v.weight")) {
        if (f == kQ2_K) {
            t = s.n_gqa() >= 4 ? DType::Q4_K : DType::Q3_K;
        } else if (f == kQ2_K_S && s.n_gqa() >= 4) {
            t = DType::Q4_K;
        } else if (f == kQ3_K_M) {
            t = s.i_attention_wv < 2 ? DType::Q5_K : DType::Q4_K;
        } else if (f == kQ3_K_L) {
            t = DType::Q5_K;
        } else if ((f == kQ4_K_M || f == kQ5_K_M) && use_more_bits(s.i_attention_wv, s.n_attention_wv)) {
            t = DType::Q6_K;
        } else if (f == kQ4_K_S && s.i_attention_wv < 4) {
            t = DType::Q5_K;
        }
        // 70B: 8 query heads share each V head, so V is 8x smaller than Q: more bits cost little.
        if (s.is_70b() && (t == DType::Q3_K || t == DType::Q4_K)) t = DType::Q5_K;
        if (n_expert == 8) t = DType::Q8_0;
        ++s.i_attention_wv;
    } else if (contains(name, "attn_k.weight")) {
        if (n_expert == 8) t = DType::Q8_0;
    } else if (contains(name, "attn_q.weight")) {
        // only IQ file types change it
    } else if (contains(name, "ffn_down")) {
        const int i = ffn_layer(s, s.i_ffn_down, name), n = s.n_layer();
        if (f == kQ2_K) {
            t = DType::Q3_K;
        } else if (f == kQ2_K_S) {
            if (i < n / 8) t = DType::Q4_K;
        } else if (f == kQ3_K_M) {
            t = i < n / 16 ? DType::Q5_K : DType::Q4_K;  // (falcon's Q3_K branch: no falcon here)
        } else if (f == kQ3_K_L) {
            t = DType::Q5_K;
        } else if (f == kQ4_K_M) {
            if (use_more_bits(i, n)) t = DType::Q6_K;
        } else if (f == kQ5_K_M && use_more_bits(i, n)) {
            t = DType::Q6_K;
        } else if (f == kQ4_K_S && i < n / 8) {
            t = DType::Q5_K;
        } else if ((f == kQ4_0 || f == kQ5_0) && s.c.has_imatrix && i < n / 8) {
            // llama.cpp guards the first ffn_down layers of q4_0 / q5_0 when an imatrix is given.
            t = f == kQ4_0 ? DType::Q4_1 : DType::Q5_1;
        }
        ++s.i_ffn_down;
    } else if (contains(name, "attn_output.weight")) {
        if (n_expert == 8) {
            if (f == kQ2_K || f == kQ3_K_S || f == kQ3_K_M || f == kQ4_K_S || f == kQ4_K_M) t = DType::Q5_K;
        } else {
            if (f == kQ2_K) {
                t = DType::Q3_K;
            } else if (f == kQ3_K_M) {
                t = DType::Q4_K;
            } else if (f == kQ3_K_L) {
                t = DType::Q5_K;
            }
        }
    } else if (contains(name, "attn_qkv.weight")) {
        if (f == kQ3_K_M || f == kQ3_K_L) {
            t = DType::Q4_K;
        } else if (f == kQ4_K_M) {
            t = DType::Q5_K;
        } else if (f == kQ5_K_M) {
            t = DType::Q6_K;
        }
    } else if (contains(name, "ffn_gate")) {
        ffn_layer(s, s.i_ffn_gate, name);
        ++s.i_ffn_gate;
    } else if (contains(name, "ffn_up")) {
        ffn_layer(s, s.i_ffn_up, name);
        ++s.i_ffn_up;
    }
    return t;
}

}  // namespace

const std::vector<QuantFileType>& quant_file_types() {
    static const std::vector<QuantFileType> kTypes = {
        {"q4_0", kQ4_0, DType::Q4_0, "4.5 bpw; output.weight q6_k"},
        {"q4_1", kQ4_1, DType::Q4_1, "5.0 bpw"},
        {"q5_0", kQ5_0, DType::Q5_0, "5.5 bpw"},
        {"q5_1", kQ5_1, DType::Q5_1, "6.0 bpw"},
        {"q2_k", kQ2_K, DType::Q2_K, "llama.cpp's Q2_K mix (attn_v, ffn_down, attn_output in q3_k/q4_k)"},
        {"q2_k_s", kQ2_K_S, DType::Q2_K, "q2_k with fewer q4_k tensors; needs --imatrix"},
        {"q3_k", kQ3_K_M, DType::Q3_K, "alias of q3_k_m (as in llama.cpp)"},
        {"q3_k_s", kQ3_K_S, DType::Q3_K, "q3_k everywhere but output.weight"},
        {"q3_k_m", kQ3_K_M, DType::Q3_K, "q3_k mix with q4_k/q5_k attn_v, ffn_down, attn_output"},
        {"q3_k_l", kQ3_K_L, DType::Q3_K, "q3_k mix with q5_k attn_v, ffn_down, attn_output"},
        {"q4_k", kQ4_K_M, DType::Q4_K, "alias of q4_k_m (as in llama.cpp)"},
        {"q4_k_s", kQ4_K_S, DType::Q4_K, "q4_k mix, q5_k in the first layers"},
        {"q4_k_m", kQ4_K_M, DType::Q4_K, "q4_k mix, q6_k for half of attn_v and ffn_down"},
        {"q5_k", kQ5_K_M, DType::Q5_K, "alias of q5_k_m (as in llama.cpp)"},
        {"q5_k_s", kQ5_K_S, DType::Q5_K, "q5_k everywhere but output.weight"},
        {"q5_k_m", kQ5_K_M, DType::Q5_K, "q5_k mix, q6_k for half of attn_v and ffn_down"},
        {"q6_k", kQ6_K, DType::Q6_K, "6.56 bpw"},
        {"q8_0", kQ8_0, DType::Q8_0, "8.5 bpw"},
        {"f16", kF16, DType::F16, "16 bpw"},
        {"bf16", kBF16, DType::BF16, "16 bpw"},
        {"f32", kF32, DType::F32, "32 bpw"},
    };
    return kTypes;
}

const QuantFileType& find_quant_file_type(const std::string& name) {
    std::string lower = name;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char c) { return std::tolower(c); });
    std::string all;
    for (const QuantFileType& t : quant_file_types()) {
        if (lower == t.name) return t;
        all += all.empty() ? "" : ", ";
        all += t.name;
    }
    fail("quantize: unknown type '%s', expected one of %s", name.c_str(), all.c_str());
}

DType fallback_dtype(DType t, int64_t row_length) {
    DType fb;
    switch (t) {
        case DType::Q2_K:
        case DType::Q3_K: fb = DType::Q4_0; break;  // llama.cpp: iq4_nl (same block, 4.5 bpw)
        case DType::Q4_K: fb = DType::Q5_0; break;
        case DType::Q5_K: fb = DType::Q5_1; break;
        case DType::Q6_K: fb = DType::Q8_0; break;
        default: fb = DType::F16; break;
    }
    if (row_length % block(fb) != 0) fb = DType::F16;
    return fb;
}

TypeChoiceContext type_choice_context(const ModelConfig& cfg) {
    TypeChoiceContext c;
    c.arch = cfg.arch;
    c.n_layer = cfg.n_layer;
    c.n_head = cfg.n_head;
    c.n_head_kv = cfg.n_head_kv;
    // llama.cpp's hparams.n_expert (deepseek2.expert_count): with more than one expert the
    // ffn_down* layer comes from the tensor's name, not a running counter.
    c.n_expert = std::max<int64_t>(1, cfg.ds.n_routed_experts);
    return c;
}

std::map<std::string, TensorTypeChoice> choose_tensor_types(const QuantFileType& ft,
                                                           const std::map<std::string, std::vector<int64_t>>& shapes,
                                                           const TypeChoiceContext& ctx) {
    // llama.cpp's loader order: by layer (non-layer tensors first), then by name. Its counters
    // (the i-th attn_v, the i-th ffn_down) follow it.
    std::vector<std::string> order;
    for (const auto& [name, shape] : shapes) order.push_back(name);
    std::stable_sort(order.begin(), order.end(), [](const std::string& a, const std::string& b) {
        const int la = layer_of(a), lb = layer_of(b);
        return la != lb ? la < lb : a < b;
    });
    State s{ctx, ft.ftype};
    for (const std::string& name : order) {
        if (contains(name, "attn_v.weight") || contains(name, "attn_qkv.weight") || contains(name, "attn_kv_b.weight"))
            ++s.n_attention_wv;
        if (name == "output.weight") s.has_output = true;
    }
    const bool quantized_base = dtype_info(ft.base).quantized;
    std::map<std::string, TensorTypeChoice> out;
    for (const std::string& name : order) {
        const std::vector<int64_t>& shape = shapes.at(name);
        TensorTypeChoice ch{DType::F32, {}};
        if (!quantisable(name, shape)) {
            out.emplace(name, ch);
            continue;
        }
        const int64_t nx = shape.back();
        DType t = ft.base;
        if (!ctx.pure && quantized_base) t = mix_type(s, t, name, nx);
        if (ctx.keep_output_f16 && (name == "output.weight" || (!s.has_output && name == "token_embd.weight")))
            t = DType::F16;
        if (nx % block(t) != 0) {
            const DType fb = fallback_dtype(t, nx);
            if (!ctx.allow_fallback)
                fail("quantize: %s (%s): its rows of %lld values are not a multiple of %s's block of %d (hint: "
                     "--allow-fallback stores it as %s)",
                     name.c_str(), shape_to_string(shape).c_str(), (long long)nx, dtype_name(t), block(t), dtype_name(fb));
            ch.note = strfmt("%s: rows of %lld values are not a multiple of %s's block of %d; stored as %s", name.c_str(),
                             (long long)nx, dtype_name(t), block(t), dtype_name(fb));
            t = fb;
        }
        ch.type = t;
        out.emplace(name, ch);
    }
    return out;
}

QuantizeResult quantize_model(const std::string& in, const std::string& out, const QuantizeOptions& opt) {
    const auto t0 = std::chrono::steady_clock::now();
    const QuantFileType& ft = find_quant_file_type(opt.type);
    ModelFiles files = open_model_files(in, opt.tokenizer);
    ModelConfig cfg = Model::validate(files);
    const Arch& arch = arch_of(cfg.arch, in);
    // GGUF llama stores Q/K rows in the interleaved-pair order (llama.cpp's converter).
    const bool to_interleaved = cfg.rope_interleaved || arch.gguf_rope_interleaved;
    std::vector<ExportTensor> tensors = model_export_rows(files, cfg, to_interleaved, {});

    std::map<std::string, std::vector<int64_t>> shapes;
    for (const ExportTensor& e : tensors) shapes[e.name] = e.shape;
    if (opt.imatrix != nullptr) check_imatrix_matches(*opt.imatrix, shapes, "quantize: " + (opt.imatrix_path.empty() ? std::string("importance matrix") : opt.imatrix_path));
    TypeChoiceContext ctx = type_choice_context(cfg);
    ctx.pure = opt.pure;
    ctx.has_imatrix = opt.imatrix != nullptr;
    ctx.keep_output_f16 = opt.keep_output_f16;
    ctx.allow_fallback = opt.allow_fallback;
    const std::map<std::string, TensorTypeChoice> choice = choose_tensor_types(ft, shapes, ctx);

    QuantizeResult res;
    int n_with_imatrix = 0;
    for (ExportTensor& e : tensors) {
        const TensorTypeChoice& c = choice.at(e.name);
        if (!c.note.empty()) std::fprintf(stderr, "quantize: note: %s\n", c.note.c_str());
        e.dtype = c.type;
        res.types[e.name] = c.type;
        const bool low_bit = dtype_info(c.type).quantized;
        bool has_entry = false;
        if (opt.imatrix != nullptr && low_bit && opt.imatrix->tensors.count(e.name) > 0) {
            e.importance = std::make_shared<const std::vector<float>>(opt.imatrix->importance(e.name, e.shape.back()));
            has_entry = true;
            ++n_with_imatrix;
        }
        // llama.cpp refuses q2_k_s's q2_k tensors without importance data (the result is garbage).
        if (ft.ftype == kQ2_K_S && c.type == DType::Q2_K && e.name != "token_embd.weight" && !has_entry)
            fail("quantize: q2_k_s needs an importance matrix for %s (hint: --imatrix FILE, made by llmforge imatrix)",
                 e.name.c_str());
        res.bytes_in += files.tensors.at(e.name).nbytes();
    }
    // The file in llama.cpp's tensor order, so listings of both tools' files line up.
    std::stable_sort(tensors.begin(), tensors.end(), [](const ExportTensor& a, const ExportTensor& b) {
        const int la = layer_of(a.name), lb = layer_of(b.name);
        return la != lb ? la < lb : a.name < b.name;
    });

    GgufFileInfo info;
    info.file_type = ft.ftype;
    info.quantized = dtype_info(ft.base).quantized;
    info.progress = opt.progress;
    if (opt.imatrix != nullptr) {
        // The keys llama-quantize writes for an importance matrix.
        if (!opt.imatrix_path.empty()) info.extra.push_back({"quantize.imatrix.file", GgufValue(opt.imatrix_path)});
        if (!opt.imatrix->datasets.empty())
            info.extra.push_back({"quantize.imatrix.dataset", GgufValue(opt.imatrix->datasets.front())});
        info.extra.push_back({"quantize.imatrix.entries_count", GgufValue(static_cast<int32_t>(opt.imatrix->tensors.size()))});
        info.extra.push_back({"quantize.imatrix.chunks_count", GgufValue(static_cast<int32_t>(opt.imatrix->chunks))});
        std::fprintf(stderr, "quantize: importance matrix for %d of %zu tensors\n", n_with_imatrix, tensors.size());
    }
    const GgufExportStats st = export_gguf_file(out, cfg, files.vocab, info, std::move(tensors), opt.n_threads, "quantize");
    res.bytes_out = st.bytes_out;
    res.n_params = st.n_params;
    res.bits_per_weight = st.n_params > 0 ? static_cast<double>(st.bytes_out) * 8.0 / static_cast<double>(st.n_params) : 0;
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace llmforge::cli
