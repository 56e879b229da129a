// llmforge quantize -m IN -o OUT.gguf --type T [--imatrix F] [--pure] [--keep-output-f16]
// [--allow-fallback] [--threads N]: any model the engine loads to a GGUF in a llama.cpp file type,
// with llama.cpp's per-tensor choices (quantize_model.h). --dry-run lists the choice without
// writing.
#include <cstdio>
#include <map>

#include "commands.h"
#include "core/error.h"
#include "model/model.h"
#include "quantize_model.h"
#include "runtime/imatrix.h"

namespace llmforge::cli {

void add_quantize(CLI::App& app, std::function<int()>& run) {
    std::string types;
    for (const QuantFileType& t : quant_file_types()) types += std::string(types.empty() ? "" : "|") + t.name;
    auto* sub = app.add_subcommand(
        "quantize", "Quantise a model to a GGUF file in one of llama.cpp's file types (q4_k_m, q8_0, ...), with "
                    "llama.cpp's per-tensor choices, optionally weighted by an importance matrix");
    static QuantizeOptions o;
    static std::string in, out, imatrix_path;
    static bool dry_run = false, quiet = false;
    sub->add_option("-m,--model", in, "GGUF file (any type), Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("-o,--out", out, "output .gguf");
    sub->add_option("--type", o.type,
                    types + " (llama-quantize's names: q2_k is its Q2_K mix, q3_k/q4_k/q5_k alias the _m mixes; "
                            "--pure for one type everywhere)")
        ->required();
    sub->add_option("--imatrix", imatrix_path, "importance matrix (llama.cpp .dat or GGUF; llmforge imatrix)");
    sub->add_flag("--pure", o.pure, "every quantisable tensor in the type's base type (llama-quantize --pure)");
    sub->add_flag("--keep-output-f16", o.keep_output_f16, "output.weight (or a tied embedding) stays f16");
    sub->add_flag("--allow-fallback", o.allow_fallback,
                  "a tensor whose rows do not fit the type's block takes llama.cpp's fallback type instead of failing");
    sub->add_option("--tokenizer", o.tokenizer, "tokenizer to embed (llama2.c tok*.bin or GGUF)");
    sub->add_option("-t,--threads", o.n_threads, "threads (0 = all cores)");
    sub->add_flag("--dry-run", dry_run, "print each tensor's chosen type and write nothing");
    sub->add_flag("-q,--quiet", quiet, "no progress line");
    run = [] {
        const QuantFileType& ft = find_quant_file_type(o.type);  // an unknown type fails before any reading
        Imatrix im;
        if (!imatrix_path.empty()) {
            im = read_imatrix(imatrix_path);
            o.imatrix = &im;
            o.imatrix_path = imatrix_path;
        }
        if (dry_run) {
            ModelFiles files = open_model_files(in, o.tokenizer);
            const ModelConfig cfg = Model::validate(files);
            std::map<std::string, std::vector<int64_t>> shapes;
            for (const auto& [name, t] : files.tensors) shapes[name] = t.shape();
            if (o.imatrix != nullptr) check_imatrix_matches(im, shapes, "quantize: " + imatrix_path);
            TypeChoiceContext ctx = type_choice_context(cfg);
            ctx.pure = o.pure;
            ctx.has_imatrix = o.imatrix != nullptr;
            ctx.keep_output_f16 = o.keep_output_f16;
            ctx.allow_fallback = o.allow_fallback;
            for (const auto& [name, c] : choose_tensor_types(ft, shapes, ctx))
                std::printf("%s\t%s\t%s\n", name.c_str(), shape_to_string(shapes[name]).c_str(), dtype_name(c.type));
            return 0;
        }
        if (out.empty()) fail("quantize: -o OUT.gguf is required (or --dry-run)");
        o.progress = !quiet;
        const QuantizeResult r = quantize_model(in, out, o);
        std::map<std::string, int> counts;
        for (const auto& [name, t] : r.types) ++counts[dtype_name(t)];
        std::string mix;
        for (const auto& [t, n] : counts) mix += strfmt("%s%s %d", mix.empty() ? "" : ", ", t.c_str(), n);
        std::fprintf(stderr, "quantize: %s -> %s (%s): %.2f MiB -> %.2f MiB, %.3f bits per weight, %.2f s; tensors: %s\n",
                     in.c_str(), out.c_str(), ft.name, r.bytes_in / 1048576.0, r.bytes_out / 1048576.0,
                     r.bits_per_weight, r.seconds, mix.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
