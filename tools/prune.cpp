// llmforge prune -m IN -o OUT.gguf: pruning (the algorithms and their choices: src/model/prune.h).
//   unstructured:    --method magnitude|wanda --sparsity S   (each row of every layer matrix loses
//                    round(S · cols) weights)
//   semi-structured: --method magnitude|wanda --pattern N:M  (keep N of every M consecutive inputs)
//   structured:      --heads K (query heads removed per layer; with grouped-query attention whole
//                    KV groups, so K is a multiple of n_head / n_head_kv), --ffn-fraction F
//                    (share of each layer's FFN channels removed) — a smaller dense model.
// Wanda and the activation-weighted structured scores read calibration statistics: --imatrix FILE
// (`llmforge imatrix`, or llama.cpp's llama-imatrix) or -f TEXT (collected here first, the same
// way). Structured pruning without calibration uses weight norms only.
// The output is a GGUF (f32 by default; f16, bf16, q8_0, q4_0 and q6_k keep a zero exact, q4_k
// stores blocks with a minimum and does not). stdout reports the sparsity counted in the file
// written, not the one asked for (a note on stderr when storing lost zeros).
#include <cstdio>
#include <memory>

#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "gguf_export.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "model/prune.h"
#include "runtime/imatrix.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

namespace {

bool ends_with(const std::string& s, const std::string& t) {
    return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}

// The importance matrix's entries that name a matrix of `files` as mean x_j² per column.
ActivationEnergy energy_from(const Imatrix& im, const ModelFiles& files, const std::string& where) {
    ActivationEnergy act;
    for (const auto& [name, e] : im.tensors) {
        auto it = files.tensors.find(name);
        if (it == files.tensors.end()) continue;  // an entry for a tensor this file does not have
        // Routed experts (E, rows, cols): E x cols per-expert statistics.
        const Tensor& t = it->second;
        const int64_t want = t.ndim() == 3 ? t.shape()[0] * t.shape()[2] : t.ndim() == 2 ? t.shape()[1] : -1;
        if (want != static_cast<int64_t>(e.sum_sq.size()))
            fail("prune: %s: the entry for %s has %zu columns, but the model's matrix is %s (an importance matrix "
                 "of another model?)",
                 where.c_str(), name.c_str(), e.sum_sq.size(), it->second.shape_str().c_str());
        act[name] = im.importance(name, t.shape().back());
    }
    if (act.empty())
        fail("prune: %s names none of the model's matrices (an importance matrix of another model?)", where.c_str());
    return act;
}

}  // namespace

void add_prune(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand(
        "prune", "Prune a model: zeros by magnitude or Wanda (--sparsity, --pattern N:M), or remove attention heads "
                 "and FFN channels (--heads, --ffn-fraction); writes a GGUF");
    static std::string model, tokenizer, out, method = "magnitude", pattern, imatrix_path, calib, type = "f32";
    static double sparsity = 0, ffn_fraction = 0;
    static int64_t heads = 0, chunk = 512, chunks = 0;
    static int threads = 0;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF)");
    sub->add_option("-o,--out", out, "output .gguf")->required();
    sub->add_option("--method", method, "magnitude | wanda (score of a weight: |W| or |W|·||X_col||)")
        ->capture_default_str();
    sub->add_option("--sparsity", sparsity, "share of each row's weights set to zero, in [0, 1)");
    sub->add_option("--pattern", pattern, "N:M: keep N of every M consecutive weights of a row (2:4)");
    sub->add_option("--heads", heads, "attention heads removed per layer (GQA: whole KV groups)");
    sub->add_option("--ffn-fraction", ffn_fraction, "share of each layer's FFN channels removed, in [0, 1)");
    sub->add_option("--imatrix", imatrix_path, "calibration: importance matrix (llmforge imatrix / llama-imatrix)");
    sub->add_option("-f,--file", calib, "calibration: a text to collect activation statistics over");
    sub->add_option("--chunk", chunk, "-f: tokens per calibration chunk")->capture_default_str();
    sub->add_option("--chunks", chunks, "-f: at most this many chunks (0: all)");
    sub->add_option("--type", type, "output type: f32 | f16 | bf16 | q8_0 | q4_0 | q4_k | q6_k")->capture_default_str();
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    run = [] {
        PruneOptions opt;
        if (method == "magnitude") {
            opt.method = PruneMethod::kMagnitude;
        } else if (method == "wanda") {
            opt.method = PruneMethod::kWanda;
        } else {
            fail("prune: --method '%s' is not known (expected magnitude or wanda)", method.c_str());
        }
        if (!ends_with(out, ".gguf"))
            fail("prune: -o %s: the output is a GGUF file (hint: name it *.gguf; `llmforge convert` makes other "
                 "formats from it)",
                 out.c_str());
        opt.sparsity = sparsity;
        if (!pattern.empty()) parse_nm_pattern(pattern, &opt.keep_n, &opt.group_m);
        opt.heads = heads;
        opt.ffn_fraction = ffn_fraction;
        opt.n_threads = threads;
        if (!imatrix_path.empty() && !calib.empty())
            fail("prune: both --imatrix and -f given (hint: one source of calibration data)");
        const DType requested = dtype_from_name(type);

        ModelFiles files = open_model_files(model, tokenizer);
        Model::validate(files);
        // Calibration statistics: read, or collected over the text with the dense model.
        ActivationEnergy act;
        if (!imatrix_path.empty()) {
            act = energy_from(read_imatrix(imatrix_path), files, imatrix_path);
        } else if (!calib.empty()) {
            auto m = Model::load(model, tokenizer);
            if (m->vocab().empty()) fail("prune: -f: %s has no tokenizer (hint: --tokenizer)", model.c_str());
            const std::string text = read_input(calib, "calibration text");
            auto tok = Tokenizer::create(m->vocab());
            const std::vector<int32_t> ids = tok->encode(text, tok->add_bos_default(), false);
            ImatrixOptions io;
            io.chunk = std::min<int64_t>(chunk, m->config().n_ctx_train > 0 ? m->config().n_ctx_train : chunk);
            io.max_chunks = chunks;
            io.n_threads = threads;
            std::fprintf(stderr, "prune: calibration: %s, %zu tokens, chunks of %lld\n", calib.c_str(), ids.size(),
                         (long long)io.chunk);
            act = energy_from(collect_imatrix(*m, ids, io), files, calib);
        }
        if (!act.empty()) opt.act = &act;

        PrunedModel p = prune_model(files, opt);
        const ModelConfig& a = files.config;
        ModelConfig cfg = p.config;
        if (cfg.n_head != a.n_head)
            std::fprintf(stderr, "prune: heads %lld -> %lld (kv %lld -> %lld) per layer\n", (long long)a.n_head,
                         (long long)cfg.n_head, (long long)a.n_head_kv, (long long)cfg.n_head_kv);
        if (cfg.n_ff != a.n_ff || cfg.layer_n_ff != a.layer_n_ff)
            std::fprintf(stderr, "prune: ffn channels %lld -> %lld per layer\n", (long long)a.n_ff, (long long)cfg.n_ff);

        // The result is checked like any file before it is written.
        ModelFiles pruned{files.path, files.format, cfg, files.vocab, p.tensors};
        Model::validate(pruned);
        const Arch& arch = arch_of(cfg.arch, model);
        const bool to_interleaved = cfg.rope_interleaved || arch.gguf_rope_interleaved;
        auto tensors = model_export_tensors(pruned, cfg, to_interleaved, requested, {}, "prune");
        export_gguf(out, cfg, pruned.vocab, requested, std::move(tensors), threads, "prune");

        // The sparsity reported is counted in the file written (a type that stores rows with a
        // minimum, such as q4_k, need not keep a zero exact).
        const PruneStats& s = p.stats;
        if (s.matrices > 0) {
            const ModelFiles written = open_model_files(out);
            int64_t zeros = 0, weights = 0;
            for (const std::string& n : p.pruned_matrices) {
                zeros += count_zeros(written.tensors.at(n));
                weights += written.tensors.at(n).numel();
            }
            if (zeros != s.pruned_zeros)
                std::fprintf(stderr, "prune: note: %s does not keep every zero exact: %.4f of the weights were zero "
                                     "before storing, %.4f are in the file\n",
                             type.c_str(), s.sparsity(), double(zeros) / double(weights));
            std::printf("prune: sparsity %.4f (%lld zeros of %lld weights in %lld matrices of %s, %s)\n",
                        double(zeros) / double(weights), (long long)zeros, (long long)weights, (long long)s.matrices,
                        out.c_str(), opt.group_m > 0 ? (pattern + " " + method).c_str() : method.c_str());
        }
        std::printf("prune: %lld parameters (was %lld), %lld zeros before storing (%.4f of all)\n",
                    (long long)s.params, (long long)s.params_before, (long long)s.zeros,
                    s.params > 0 ? double(s.zeros) / double(s.params) : 0.0);
        return 0;
    };
}

}  // namespace llmforge::cli
