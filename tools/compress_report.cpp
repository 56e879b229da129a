// llmforge compress-report -m MODEL -f TEXT: quality per byte of every compression method on one
// model. For each type (`--types`, default f16 ... q2_k; llama.cpp's mixes) the model is quantised
// (tools/quantize_model.h), optionally again with `--imatrix F`, and models made by other methods
// (`--extra FILE[:label]`: pruned, QAT, distilled) are added as rows. Each row: file size, bits per
// weight, pp/tg speed (measured in-process as `llmforge bench` does, tools/bench_speed.h), perplexity
// and its ratio to the f32 reference, top-1 agreement with it and the KL divergence from it
// (runtime/kl_stats.h: llama.cpp's `--kl-divergence` statistics). The f32 reference is the input
// model run as given when it is f32, else the input dequantised to an f32 GGUF.
//
// bits per weight = the tensors' bytes * 8 / the reference's parameter count, so a model with fewer
// parameters (structured pruning, a distilled student) shows its real bytes per reference weight.
// Output: the markdown table (stdout or --out-md) and a picture, quality vs bits per weight
// (--out-svg: plain SVG written here, as the other pictures in docs/).
// Matrices a type cannot take (rows not a multiple of its block) fall back as llama-quantize's do,
// counted in a note; a type that fails all the same (no kernel, an importance matrix it needs) is
// skipped with a note under the table.
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "bench_speed.h"
#include "commands.h"
#include "core/error.h"
#include "core/file.h"
#include "gguf_export.h"
#include "io/atomic_file.h"
#include "kernels/cpu/kernels.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "progress.h"
#include "quantize_model.h"
#include "runtime/context.h"
#include "runtime/imatrix.h"
#include "runtime/kl_stats.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::cli {

namespace {

namespace fs = std::filesystem;

const char* kDefaultTypes = "f16,bf16,q8_0,q6_k,q5_k_m,q5_0,q5_1,q4_k_m,q4_0,q4_1,q3_k_m,q2_k";

// Types whose quantiser reads an importance matrix (llama.cpp's q8_0 and the float types do not).
bool uses_imatrix(const std::string& t) { return t != "f32" && t != "f16" && t != "bf16" && t != "q8_0"; }

struct Row {
    std::string method, type;
    bool reference = false;
    double bytes = 0;  // on disk
    double bpw = 0;
    double pp = 0, tg = 0;  // tokens/s, 0: not measured
    KlStats kl;
    double ppl = 0, ppl_unc = 0;  // the reference row's own
    int n_fallback = 0, n_matrices = 0;  // quantised rows: matrices in a fallback type, of all matrices
};

// Bytes of a model on disk: the file, or a Hugging Face folder's weights, config and tokenizer
// (*.safetensors, *.json: not its logs, pictures or README).
double disk_size(const std::string& path) {
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        double n = 0;
        for (const auto& e : fs::directory_iterator(path, ec)) {
            const std::string ext = e.path().extension().string();
            if (e.is_regular_file(ec) && (ext == ".safetensors" || ext == ".json"))
                n += static_cast<double>(e.file_size(ec));
        }
        return n;
    }
    const auto n = fs::file_size(path, ec);
    return ec ? 0.0 : static_cast<double>(n);
}

std::string lower(std::string s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return s;
}

std::vector<std::string> split_types(const std::string& s) {
    std::vector<std::string> out;
    std::stringstream ss(s);
    std::string t;
    while (std::getline(ss, t, ',')) {
        t.erase(0, t.find_first_not_of(" \t"));
        t.erase(t.find_last_not_of(" \t") + 1);
        if (t.empty()) continue;
        t = lower(t);
        try {  // a typo in --types is an error, not a skipped row
            find_quant_file_type(t);
        } catch (const Error& e) {
            std::string m = e.what();
            if (m.rfind("quantize: ", 0) == 0) m.erase(0, 10);
            fail("compress-report: --types: %s", m.c_str());
        }
        if (std::find(out.begin(), out.end(), t) == out.end()) out.push_back(t);
    }
    if (out.empty()) fail("compress-report: --types is empty (expected e.g. %s)", kDefaultTypes);
    return out;
}

// FILE[:label]: a label after the last ':' when what is before it exists.
std::pair<std::string, std::string> split_extra(const std::string& s) {
    std::error_code ec;
    const size_t c = s.rfind(':');
    if (c != std::string::npos && c > 0 && !fs::exists(s, ec) && fs::exists(s.substr(0, c), ec))
        return {s.substr(0, c), s.substr(c + 1)};
    std::string stem = fs::path(s).filename().string();
    if (stem.empty()) stem = fs::path(s).parent_path().filename().string();
    return {s, fs::path(stem).stem().string()};
}

// The dtype holding most of the weights ("q4_k" for a q4_k_m file).
std::string main_dtype(const Model& m) {
    std::map<std::string, int64_t> by;
    for (const auto& [n, t] : m.files().tensors) by[dtype_name(t.dtype())] += t.numel();
    std::string best;
    int64_t most = 0;
    for (const auto& [k, b] : by)
        if (b > most) most = b, best = k;
    return best;
}

bool all_f32(const Model& m) {
    for (const auto& [n, t] : m.files().tensors)
        if (t.dtype() != DType::F32) return false;
    return true;
}

std::string fmt(const char* f, double a) {
    char b[64];
    std::snprintf(b, sizeof b, f, a);
    return b;
}
std::string fmt2(const char* f, double a, double c) {
    char b[96];
    std::snprintf(b, sizeof b, f, a, c);
    return b;
}

std::string human_size(double bytes) {
    if (bytes >= 1024.0 * 1024 * 1024) return fmt("%.2f GiB", bytes / (1024.0 * 1024 * 1024));
    if (bytes >= 1024.0 * 1024) return fmt("%.2f MiB", bytes / (1024.0 * 1024));
    return fmt("%.1f KiB", bytes / 1024.0);
}

std::string md_escape(const std::string& s) {
    std::string o;
    for (char c : s) o += c == '|' ? std::string("\\|") : std::string(1, c);
    return o;
}

std::string xml_escape(const std::string& s) {
    std::string o;
    for (char c : s) o += c == '<' ? "&lt;" : c == '>' ? "&gt;" : c == '&' ? "&amp;" : c == '"' ? "&quot;" : std::string(1, c);
    return o;
}

std::string markdown(const std::vector<Row>& rows, int n_prompt, int n_gen, const std::vector<std::string>& notes) {
    std::string s;
    const std::string pp = n_prompt > 0 ? "pp" + std::to_string(n_prompt) : "pp";
    const std::string tg = n_gen > 0 ? "tg" + std::to_string(n_gen) : "tg";
    s += "| method | type | size | bpw | " + pp + " t/s | " + tg +
         " t/s | PPL | PPL / PPL(f32) | same top-1 as f32 | mean KLD | median KLD | KLD 99% | KLD 99.9% | max KLD |\n";
    s += "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n";
    for (const Row& r : rows) {
        const KlStats& k = r.kl;
        auto speed = [](double v) { return v > 0 ? fmt(v >= 100 ? "%.0f" : "%.1f", v) : std::string("—"); };
        s += "| " + md_escape(r.method) + " | " + md_escape(r.type) + " | " + human_size(r.bytes) + " | " +
             fmt("%.2f", r.bpw) + " | " + speed(r.pp) + " | " + speed(r.tg) + " | ";
        if (r.reference) {
            s += fmt2("%.4f ± %.4f", r.ppl, r.ppl_unc) + " | 1 | 100% | 0 | 0 | 0 | 0 | 0 |\n";
            continue;
        }
        s += fmt2("%.4f ± %.4f", k.ppl, k.ppl_unc) + " | " + fmt2("%.4f ± %.4f", k.ppl_ratio, k.ppl_ratio_unc) + " | " +
             fmt2("%.2f ± %.2f%%", 100 * k.same_top, 100 * k.same_top_unc) + " | " +
             fmt2("%.6f ± %.6f", k.kld_mean, k.kld_unc) + " | " + fmt("%.6f", k.kld_median) + " | " +
             fmt("%.6f", k.kld_p99) + " | " + fmt("%.6f", k.kld_p999) + " | " + fmt("%.6f", k.kld_max) + " |\n";
    }
    if (!notes.empty()) {
        s += "\n";
        for (const auto& n : notes) s += "- " + n + "\n";
    }
    return s;
}

// Two panels side by side over log2(bits per weight): PPL(Q)/PPL(f32) (linear) and mean KLD from
// f32 (log10). One colour per method, each point labelled with its type.
std::string svg(const std::vector<Row>& rows, const std::string& title) {
    constexpr double H = 420, PW = 440, T = 56, B = 56, L0 = 70, GAP = 90, W = L0 + 2 * PW + GAP + 40;
    const double ph = H - T - B;
    std::vector<std::string> series;
    for (const Row& r : rows)
        if (std::find(series.begin(), series.end(), r.method) == series.end()) series.push_back(r.method);
    const char* colors[] = {"#555555", "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2"};
    auto color = [&](const std::string& m) {
        const size_t i = static_cast<size_t>(std::find(series.begin(), series.end(), m) - series.begin());
        return colors[i % 8];
    };
    double bmin = 1e300, bmax = -1e300, rmin = 1.0, rmax = 1.0, kmin = 1e300, kmax = -1e300;
    for (const Row& r : rows) {
        if (!(r.bpw > 0)) continue;
        bmin = std::min(bmin, r.bpw), bmax = std::max(bmax, r.bpw);
        if (r.reference) continue;
        if (std::isfinite(r.kl.ppl_ratio)) rmin = std::min(rmin, r.kl.ppl_ratio), rmax = std::max(rmax, r.kl.ppl_ratio);
        if (r.kl.kld_mean > 0 && std::isfinite(r.kl.kld_mean))
            kmin = std::min(kmin, r.kl.kld_mean), kmax = std::max(kmax, r.kl.kld_mean);
    }
    if (bmin > bmax) bmin = 1, bmax = 32;
    const double x0 = std::floor(std::log2(bmin)), x1 = std::max(x0 + 1, std::ceil(std::log2(bmax)));
    const double pad = std::max(1e-3, (rmax - rmin) * 0.08);
    const double r0 = rmin - pad, r1 = rmax + pad;
    if (kmin > kmax) kmin = 1e-6, kmax = 1e-1;
    // A third of a decade of room above the worst point, for its label.
    const double k0 = std::floor(std::log10(kmin)), k1 = std::max(k0 + 1, std::ceil(std::log10(kmax * 3)));
    std::string s;
    char b[512];
    std::snprintf(b, sizeof b,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
                  "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
                  "<text x=\"%g\" y=\"22\" font-size=\"14\">%s</text>\n",
                  W, H, L0, xml_escape(title).c_str());
    s += b;
    for (int panel = 0; panel < 2; ++panel) {
        const double L = L0 + panel * (PW + GAP);
        auto X = [&](double bpw) { return L + (std::log2(bpw) - x0) / (x1 - x0) * PW; };
        auto Y = [&](double v) {
            const double f = panel == 0 ? (v - r0) / (r1 - r0) : (std::log10(v) - k0) / (k1 - k0);
            return T + (1 - std::clamp(f, 0.0, 1.0)) * ph;
        };
        std::snprintf(b, sizeof b, "<text x=\"%g\" y=\"%g\" font-size=\"13\">%s</text>\n", L, T - 10,
                      panel == 0 ? "perplexity / perplexity(f32) (lower is better)"
                                 : "mean KL divergence from f32, log scale (lower is better)");
        s += b;
        std::snprintf(b, sizeof b, "<rect x=\"%g\" y=\"%g\" width=\"%g\" height=\"%g\" fill=\"none\" stroke=\"#999\"/>\n",
                      L, T, PW, ph);
        s += b;
        for (double e = x0; e <= x1 + 1e-9; e += 1) {  // x ticks at powers of two
            const double x = L + (e - x0) / (x1 - x0) * PW;
            std::snprintf(b, sizeof b,
                          "<line x1=\"%.1f\" y1=\"%g\" x2=\"%.1f\" y2=\"%g\" stroke=\"#eee\"/><text x=\"%.1f\" y=\"%g\" "
                          "text-anchor=\"middle\">%g</text>\n",
                          x, T, x, T + ph, x, T + ph + 16, std::exp2(e));
            s += b;
        }
        std::snprintf(b, sizeof b, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">bits per weight (log scale)</text>\n",
                      L + PW / 2, T + ph + 36);
        s += b;
        if (panel == 0) {
            for (int i = 0; i <= 4; ++i) {
                const double v = r0 + (r1 - r0) * i / 4;
                std::snprintf(b, sizeof b,
                              "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%g\" "
                              "y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n",
                              L, Y(v), L + PW, Y(v), L - 6, Y(v) + 4, v);
                s += b;
            }
            std::snprintf(b, sizeof b,
                          "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"4 3\"/>\n",
                          L, Y(1.0), L + PW, Y(1.0));
            s += b;
        } else {
            for (double e = k0; e <= k1 + 1e-9; e += 1) {
                const double v = std::pow(10.0, e);
                std::snprintf(b, sizeof b,
                              "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#eee\"/><text x=\"%g\" "
                              "y=\"%.1f\" text-anchor=\"end\">1e%d</text>\n",
                              L, Y(v), L + PW, Y(v), L - 6, Y(v) + 4, static_cast<int>(e));
                s += b;
            }
        }
        // Points (one per distinct position and series: rows that land on the same spot, such as
        // types that all fell back to one, share a point and a joined label), then labels placed
        // where they overlap no other label.
        struct Point {
            double x, y;
            std::string series, label, tip;
        };
        std::vector<Point> pts;
        for (const Row& r : rows) {
            if (!(r.bpw > 0) || (r.reference && panel == 1)) continue;  // KLD 0 is not on a log scale
            const double v = r.reference ? 1.0 : panel == 0 ? r.kl.ppl_ratio : r.kl.kld_mean;
            if (!std::isfinite(v) || (panel == 1 && !(v > 0))) continue;
            const double x = X(r.bpw), y = Y(v);
            char tip[160];
            std::snprintf(tip, sizeof tip, "%s %s: %.2f bpw, %.6g", r.method.c_str(), r.type.c_str(), r.bpw, v);
            const std::string label = r.type.substr(0, r.type.find(" (mostly"));
            auto same = std::find_if(pts.begin(), pts.end(), [&](const Point& p) {
                return p.series == r.method && std::fabs(p.x - x) < 1.5 && std::fabs(p.y - y) < 1.5;
            });
            if (same != pts.end()) {
                same->label += "/" + label;
                same->tip += std::string("; ") + tip;
            } else {
                pts.push_back({x, y, r.method, label, tip});
            }
        }
        for (const Point& p : pts) {
            std::snprintf(b, sizeof b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>%s</title></circle>\n",
                          p.x, p.y, color(p.series), xml_escape(p.tip).c_str());
            s += b;
        }
        std::vector<std::array<double, 4>> placed;  // x0, y0, x1, y1 of the labels so far
        for (const Point& p : pts) {
            const double w = 5.6 * static_cast<double>(p.label.size()), h = 10;
            double lx = p.x + 5, ly = p.y - 5;  // baseline
            for (int k = 0; k < 16; ++k) {  // right of the point, then left, going further up and down
                constexpr double dys[] = {-5.0, 9.0, -16.0, 20.0, -27.0, 31.0, -38.0, 42.0};
                lx = k < 8 ? p.x + 5 : p.x - 5 - w;
                ly = p.y + dys[k % 8];
                const bool clash = std::any_of(placed.begin(), placed.end(), [&](const std::array<double, 4>& q) {
                    return lx < q[2] && lx + w > q[0] && ly - h < q[3] && ly > q[1];
                });
                if (!clash) break;
            }
            placed.push_back({lx, ly - h, lx + w, ly});
            std::snprintf(b, sizeof b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"%s\">%s</text>\n", lx, ly,
                          color(p.series), xml_escape(p.label).c_str());
            s += b;
        }
    }
    double lx = L0;
    for (const std::string& m : series) {
        std::snprintf(b, sizeof b,
                      "<rect x=\"%g\" y=\"%g\" width=\"10\" height=\"10\" fill=\"%s\"/><text x=\"%g\" y=\"%g\">%s</text>\n",
                      lx, H - 16, color(m), lx + 14, H - 7, xml_escape(m).c_str());
        s += b;
        lx += 24 + 7.0 * static_cast<double>(m.size());
    }
    s += "</svg>\n";
    return s;
}

void write_out(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

// A scratch folder for the quantised files: removed at the end unless the user named it.
class WorkDir {
public:
    explicit WorkDir(const std::string& keep) : keep_(!keep.empty()) {
        std::error_code ec;
        if (keep_) {
            path_ = keep;
            fs::create_directories(path_, ec);
            if (ec || !fs::is_directory(path_))
                fail("compress-report: --keep-dir %s: cannot create the folder (%s)", keep.c_str(), ec.message().c_str());
            return;
        }
        std::string tmpl = (fs::temp_directory_path(ec) / "llmforge-compress-XXXXXX").string();
        if (!mkdtemp(tmpl.data()))
            fail_kind(ErrorKind::kResource, "compress-report: cannot create a temporary folder %s (hint: set TMPDIR or "
                      "--keep-dir)", tmpl.c_str());
        path_ = tmpl;
    }
    ~WorkDir() {
        std::error_code ec;
        if (!keep_) fs::remove_all(path_, ec);
    }
    WorkDir(const WorkDir&) = delete;
    WorkDir& operator=(const WorkDir&) = delete;
    std::string file(const std::string& name) const { return (fs::path(path_) / name).string(); }
    bool keep() const { return keep_; }

private:
    bool keep_;
    std::string path_;
};

}  // namespace

void add_compress_report(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand(
        "compress-report",
        "Size, speed and quality lost (perplexity, top-1 agreement, KL divergence from f32) of every quantisation "
        "type and compression method on one model: a markdown table and an SVG picture");
    static std::string model, tokenizer, file, types = kDefaultTypes, imatrix_path, out_md, out_svg, keep_dir, title;
    static std::vector<std::string> extras;
    static int64_t n_ctx = 0, chunks = 0;
    static int threads = 0, n_prompt = 64, n_gen = 16, reps = 2;
    static bool second_half = false, special = false;
    sub->add_option("-m,--model", model, "model to compress: GGUF, Hugging Face folder or llama2.c .bin")->required();
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF) when the model has none");
    sub->add_option("-f,--file", file, "text to score (perplexity, KL divergence)")->required();
    sub->add_option("--types", types, "comma-separated types and llama.cpp mixes")->capture_default_str();
    sub->add_option("--imatrix", imatrix_path,
                    "importance matrix (llmforge imatrix / llama-imatrix): adds a '+ imatrix' row for each type that "
                    "uses one");
    sub->add_option("--extra", extras,
                    "FILE[:label] (repeatable): a model made by another method (pruned, QAT, distilled), with the "
                    "same vocabulary, as one more row");
    sub->add_option("-c,--ctx", n_ctx, "window size in tokens (default: min(model context, 512))");
    sub->add_option("--chunks", chunks, "score at most this many windows (0 = the whole text)")->capture_default_str();
    sub->add_flag("--second-half", second_half,
                  "score only the second half of each window, as llama.cpp's perplexity and kl-divergence do");
    sub->add_flag("--special", special,
                  "parse special tokens written in the text (<|im_start|> ...), e.g. chats rendered with the model's "
                  "template");
    sub->add_option("-p,--n-prompt", n_prompt, "pp test: prompt tokens (0 = skip)")->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    sub->add_option("-n,--n-gen", n_gen, "tg test: generated tokens (0 = skip)")->capture_default_str()
        ->check(CLI::Range(0, 1 << 20));
    sub->add_option("-r,--repetitions", reps, "speed repetitions after one warm-up (the table gives their median)")->capture_default_str()
        ->check(CLI::Range(1, 1000));
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("--out-md", out_md, "write the markdown table here (default: stdout)");
    sub->add_option("--out-svg", out_svg, "write the picture (quality vs bits per weight) here");
    sub->add_option("--keep-dir", keep_dir, "keep the quantised files in this folder (default: a temporary one)");
    sub->add_option("--title", title, "title of the picture (default: the model's file name)");
    run = [] {
        const std::vector<std::string> type_list = split_types(types);
        std::vector<std::pair<std::string, std::string>> extra_list;
        for (const auto& e : extras) {
            auto p = split_extra(e);
            std::error_code ec;
            if (!fs::exists(p.first, ec))
                fail("compress-report: --extra %s: no such file or folder (expected FILE or FILE:label)", e.c_str());
            extra_list.push_back(p);
        }
        const std::string text = read_input(file, "text");

        // The reference and the text's tokens.
        auto input = Model::load(model, tokenizer);
        if (input->vocab().empty())
            fail("compress-report: %s has no tokenizer, needed to score the text (hint: --tokenizer)", model.c_str());
        std::vector<int32_t> ids;
        {
            auto tok = Tokenizer::create(input->vocab());
            ids = tok->encode(text, tok->add_bos_default(), special);
        }
        const int64_t train_ctx = input->config().n_ctx_train;
        if (n_ctx == 0) n_ctx = std::min<int64_t>(train_ctx > 0 ? train_ctx : 512, 512);
        if (n_ctx < 2) fail("compress-report: --ctx %lld, expected at least 2 tokens per window", (long long)n_ctx);
        if (train_ctx > 0 && n_ctx > train_ctx)
            fail("compress-report: --ctx %lld is larger than the model's context %lld (hint: --ctx %lld or less)",
                 (long long)n_ctx, (long long)train_ctx, (long long)train_ctx);
        if (chunks < 0) fail("compress-report: --chunks %lld, expected 0 (all) or more", (long long)chunks);
        KlOptions ko;
        ko.n_ctx = n_ctx;
        ko.max_windows = chunks;
        ko.second_half = second_half;
        ko.n_threads = threads;
        if (ids.size() < 2 || kl_windows(static_cast<int64_t>(ids.size()), ko) == 0)
            fail("compress-report: %s gives %zu tokens, too few to score in windows of %lld (hint: a longer text)",
                 file.c_str(), ids.size(), (long long)n_ctx);
        Imatrix imatrix;
        if (!imatrix_path.empty()) {
            imatrix = read_imatrix(imatrix_path);
            std::map<std::string, std::vector<int64_t>> shapes;
            for (const auto& [n, t] : input->files().tensors) shapes[n] = t.shape();
            check_imatrix_matches(imatrix, shapes, "compress-report: " + imatrix_path);
        }

        WorkDir dir(keep_dir);
        const std::string stem = fs::path(model).filename().empty() ? "model"
                                                                    : fs::path(model).stem().string();
        const bool ref_as_given = all_f32(*input);
        std::string ref_path = model;
        std::unique_ptr<Model> ref;
        if (ref_as_given) {
            ref = std::move(input);
        } else {  // the input dequantised: convert --type f32
            ref_path = dir.file(stem + "-f32.gguf");
            std::fprintf(stderr, "compress-report: writing the f32 reference %s\n", ref_path.c_str());
            ModelFiles files = open_model_files(model, tokenizer);
            ModelConfig cfg = Model::validate(files);
            const bool to_interleaved = cfg.rope_interleaved || arch_of(cfg.arch, model).gguf_rope_interleaved;
            std::vector<ExportTensor> tensors =
                model_export_tensors(files, cfg, to_interleaved, DType::F32, {}, "compress-report");
            export_gguf(ref_path, cfg, files.vocab, DType::F32, std::move(tensors), threads, "compress-report");
            input.reset();
            ref = Model::load(ref_path);
        }
        const double ref_params = static_cast<double>(ref->n_params());
        const ModelConfig ref_cfg = ref->config();
        std::map<std::string, std::vector<int64_t>> shapes;  // GGUF name -> row-major shape
        for (const auto& [n, t] : ref->files().tensors) shapes[n] = t.shape();

        const int64_t windows = kl_windows(static_cast<int64_t>(ids.size()), ko);
        const int64_t eval_tokens = std::min<int64_t>(static_cast<int64_t>(ids.size()), windows * n_ctx);
        int64_t n_rows = 1 + static_cast<int64_t>(type_list.size() + extra_list.size());
        if (!imatrix_path.empty())
            for (const auto& t : type_list) n_rows += uses_imatrix(t) ? 1 : 0;
        std::fprintf(stderr,
                     "compress-report: %s: %.2fM parameters, %zu tokens of %s, %lld windows of %lld, %lld rows, "
                     "kernels %s\n",
                     model.c_str(), ref_params / 1e6, ids.size(), file.c_str(), (long long)windows, (long long)n_ctx,
                     (long long)n_rows, kernels::isa_name(kernels::kernels().isa));
        Progress prog("compress-report", static_cast<double>(n_rows * eval_tokens), "tokens");
        int64_t row_index = 0;
        auto on_window = [&](const std::string& what) {
            return [&, what](int64_t w, int64_t nw) {
                const double done = static_cast<double>(row_index * eval_tokens +
                                                        std::min<int64_t>(eval_tokens, w * n_ctx));
                char d[96];
                std::snprintf(d, sizeof d, "%s window %lld/%lld", what.c_str(), (long long)w, (long long)nw);
                prog.update(done, d);
            };
        };
        auto speeds = [&](const Model& m, Row& r) {
            if (n_prompt == 0 && n_gen == 0) return;
            ContextParams cp;
            cp.n_ctx = std::max(n_prompt, n_gen) + 1;
            cp.n_batch = std::max(n_prompt, 1);
            cp.n_threads = threads;
            Context ctx(m, cp);
            std::mt19937 rng(42);
            std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
            for (auto& t : prompt) t = static_cast<int32_t>(rng() % m.config().n_vocab);
            // The median of the runs: one run disturbed by another process does not move it.
            auto median = [](std::vector<double> v) {
                std::sort(v.begin(), v.end());
                const size_t m = v.size() / 2;
                return v.empty() ? 0.0 : v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
            };
            if (n_prompt > 0) r.pp = median(bench_pp(ctx, prompt, reps));
            if (n_gen > 0) r.tg = median(bench_tg(ctx, n_gen, reps, rng));
        };
        auto summary = [&](const Row& r) {
            std::fprintf(stderr, "%scompress-report: %s %s: %s, %.2f bpw, PPL %.4f (x%.4f), top-1 %.2f%%, KLD %.6f, "
                         "pp %.1f t/s, tg %.1f t/s\n", isatty(STDERR_FILENO) ? "\r" : "", r.method.c_str(),
                         r.type.c_str(), human_size(r.bytes).c_str(), r.bpw, r.reference ? r.ppl : r.kl.ppl,
                         r.reference ? 1.0 : r.kl.ppl_ratio, r.reference ? 100.0 : 100 * r.kl.same_top,
                         r.kl.kld_mean, r.pp, r.tg);
        };

        std::vector<Row> rows;
        std::vector<std::string> notes;
        {
            Row r;
            r.method = "reference";
            r.type = "f32";
            r.reference = true;
            r.bytes = disk_size(ref_path);
            r.bpw = static_cast<double>(ref->weight_bytes()) * 8 / ref_params;
            const BaseLogProbs probe = base_log_probs(*ref, ids, ko, on_window("f32"));
            r.ppl = probe.ppl;
            r.ppl_unc = probe.ppl_unc;
            speeds(*ref, r);
            rows.push_back(r);
            summary(r);
            ++row_index;
            // The base stays for every comparison; the reference model itself is not needed any more.
            ref.reset();
            auto compare = [&](Row row, const std::string& path, const std::string& tok_path) {
                auto m = Model::load(path, tok_path);
                row.bytes = disk_size(path);
                row.bpw = static_cast<double>(m->weight_bytes()) * 8 / ref_params;
                if (row.type.empty()) {
                    row.type = main_dtype(*m);
                } else if (row.n_fallback > 0) {  // say so where most bytes are not the type's own
                    const std::string main = main_dtype(*m);
                    if (main != dtype_name(find_quant_file_type(row.type).base)) row.type += " (mostly " + main + ")";
                }
                row.kl = compare_to_base(*m, probe, ids, ko, on_window(row.method + " " + row.type));
                speeds(*m, row);
                rows.push_back(row);
                summary(row);
            };
            std::vector<std::pair<std::string, bool>> jobs;  // (type, with imatrix)
            for (const auto& t : type_list) jobs.emplace_back(t, false);
            if (!imatrix_path.empty())
                for (const auto& t : type_list)
                    if (uses_imatrix(t)) jobs.emplace_back(t, true);
            for (const auto& [t, imat] : jobs) {
                const std::string out = dir.file(stem + "-" + t + (imat ? "-imat" : "") + ".gguf");
                const std::string method = imat ? "quantize + imatrix" : "quantize";
                try {
                    char d[96];
                    std::snprintf(d, sizeof d, "quantizing %s%s", t.c_str(), imat ? " + imatrix" : "");
                    prog.update(static_cast<double>(row_index * eval_tokens), d);
                    QuantizeOptions qo;
                    qo.type = t;
                    qo.imatrix = imat ? &imatrix : nullptr;
                    if (imat) qo.imatrix_path = imatrix_path;
                    qo.n_threads = threads;
                    qo.progress = false;
                    qo.tokenizer = tokenizer;
                    // Rows a type cannot take (a width that is not a multiple of its block) fall back as
                    // llama-quantize's do; the note says how many tensors did.
                    qo.allow_fallback = true;
                    TypeChoiceContext tc = type_choice_context(ref_cfg);
                    tc.has_imatrix = imat;
                    tc.allow_fallback = true;
                    Row r;
                    r.method = method;
                    r.type = t;
                    for (const auto& [name, c] : choose_tensor_types(find_quant_file_type(t), shapes, tc)) {
                        r.n_fallback += c.note.empty() ? 0 : 1;
                        r.n_matrices += shapes.at(name).size() >= 2 ? 1 : 0;
                    }
                    quantize_model(model, out, qo);
                    compare(r, out, "");
                } catch (const std::exception& e) {
                    std::string what = e.what();
                    notes.push_back(method + " " + t + " skipped: " + what);
                    std::fprintf(stderr, "%scompress-report: %s %s skipped: %s\n", isatty(STDERR_FILENO) ? "\r" : "",
                                 method.c_str(), t.c_str(), what.c_str());
                }
                if (!dir.keep()) {
                    std::error_code ec;
                    fs::remove(out, ec);
                }
                ++row_index;
            }
            for (const auto& [path, label] : extra_list) {
                Row r;
                r.method = label;
                compare(r, path, "");  // errors here (another vocabulary, a bad file) are the user's: one line
                ++row_index;
            }
        }
        prog.update(static_cast<double>(n_rows * eval_tokens), "done");
        {
            std::string fb;
            for (const Row& r : rows)
                if (r.n_fallback > 0)
                    fb += (fb.empty() ? "" : ", ") + r.type.substr(0, r.type.find(' ')) +
                          (r.method == "quantize" ? "" : " (" + r.method + ")") + " " + std::to_string(r.n_fallback) +
                          "/" + std::to_string(r.n_matrices);
            if (!fb.empty())
                notes.push_back("Matrices in a fallback type (rows not a multiple of the type's block, as "
                                "llama-quantize falls back): " + fb + ".");
        }

        const int64_t scored = rows.size() > 1 ? rows[1].kl.n : 0;
        notes.insert(notes.begin(),
                     "Text: " + fs::path(file).filename().string() + ", " + std::to_string(ids.size()) +
                         " tokens in " + std::to_string(windows) + (windows == 1 ? " window of " : " windows of ") + std::to_string(n_ctx) +
                         (second_half ? " (the second half of each window scored" : " (every token after a window's "
                                                                                     "first scored") +
                         (scored > 0 ? ": " + std::to_string(scored) + " positions)" : ")") +
                         ". Reference: " + (ref_as_given ? "the model as given (f32)" : "the model dequantised to f32") +
                         ". bpw: tensor bytes × 8 / the reference's " + fmt("%.0f", ref_params) + " parameters. " +
                         (n_prompt == 0 && n_gen == 0
                              ? std::string("Speeds not measured.")
                              : "Speeds: pp" + std::to_string(n_prompt) + " / tg" + std::to_string(n_gen) +
                                    " tokens/s, median of " + std::to_string(reps) + " runs after a warm-up, " +
                                    kernels::isa_name(kernels::kernels().isa) + " kernels, " +
                                    (threads > 0 ? std::to_string(threads) : std::string("all")) + " threads."));
        const std::string md = markdown(rows, n_prompt, n_gen, notes);
        if (out_md.empty())
            std::fputs(md.c_str(), stdout);
        else
            write_out(out_md, md);
        if (!out_svg.empty())
            write_out(out_svg, svg(rows, title.empty() ? "Quality vs bits per weight: " + stem + " on " +
                                                             fs::path(file).filename().string()
                                                       : title));
        if (!out_md.empty()) std::fprintf(stderr, "compress-report: wrote %s\n", out_md.c_str());
        if (!out_svg.empty()) std::fprintf(stderr, "compress-report: wrote %s\n", out_svg.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
