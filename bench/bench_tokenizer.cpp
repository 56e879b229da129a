// Tokenizer encode throughput, in process: the vocabulary of a GGUF file (llama.cpp's vocab-only
// files work), one text file, Tokenizer::encode(text, add_bos=false, parse_special=false) timed
// alone (the file is read and the tokenizer built before the clock starts), one thread.
//
//   build/bin/bench_tokenizer --vocab ggml-vocab-gpt-2.gguf --text prose.txt --reps 5
//
// Prints one line: input bytes, tokens, and MB/s (10^6 input bytes per second) of the median,
// fastest and slowest repetition, after one untimed warm-up encode. Every repetition must give
// the same ids as the warm-up (exit 1 otherwise). --ids-out FILE writes the ids once, separated
// by single spaces on one line (the format of `llmforge tokenize --ids`), for cross-checks with
// llama-tokenize. --pretok times only the pre-tokenizer's split (byte-level BPE vocabularies), to
// tell regex time from merge time. Text corpora: bench/make_text_corpus.sh.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "core/error.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "tokenizer/pre_tokenizer.h"
#include "tokenizer/tokenizer.h"

namespace {

using namespace llmforge;
using Clock = std::chrono::steady_clock;

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("bench_tokenizer: cannot open '%s'", path.c_str());
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

int usage(const char* argv0) {
    std::fprintf(stderr,
                 "usage: %s --vocab GGUF --text FILE [--reps N (default 5)] [--ids-out FILE] "
                 "[--pretok]\n",
                 argv0);
    return 2;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

}  // namespace

int main(int argc, char** argv) {
    std::string vocab_path, text_path, ids_out;
    int reps = 5;
    bool pretok = false;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        auto value = [&]() -> const char* {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "bench_tokenizer: %s needs a value\n", argv[i]);
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "--vocab") {
            vocab_path = value();
        } else if (a == "--text") {
            text_path = value();
        } else if (a == "--reps") {
            reps = std::atoi(value());
        } else if (a == "--ids-out") {
            ids_out = value();
        } else if (a == "--pretok") {
            pretok = true;
        } else {
            return usage(argv[0]);
        }
    }
    if (vocab_path.empty() || text_path.empty() || reps < 1) return usage(argv[0]);

    try {
        const std::string text = read_file(text_path);
        const Vocab vocab = gguf_read_vocab(GgufFile(vocab_path));
        const auto tok = Tokenizer::create(vocab);
        std::vector<double> secs;

        if (pretok) {
            if (vocab.model != "gpt2") fail("bench_tokenizer: --pretok needs a gpt2 vocabulary");
            const PreTokenizer pre(pre_tokenizer_preset(vocab.pre).regexes);
            std::vector<std::string_view> words;
            pre.split(text, words);  // warm-up
            const size_t n_words = words.size();
            for (int r = 0; r < reps; ++r) {
                words.clear();
                const auto t0 = Clock::now();
                pre.split(text, words);
                secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
                if (words.size() != n_words) fail("bench_tokenizer: split is not deterministic");
            }
            const double med = median(secs);
            std::printf("pretok vocab=%s text=%s bytes=%zu words=%zu reps=%d median_s=%.4f "
                        "MB/s=%.2f\n",
                        vocab_path.c_str(), text_path.c_str(), text.size(), n_words, reps, med,
                        text.size() / med / 1e6);
            return 0;
        }

        const std::vector<int32_t> ref = tok->encode(text, false, false);  // warm-up
        for (int r = 0; r < reps; ++r) {
            const auto t0 = Clock::now();
            const std::vector<int32_t> ids = tok->encode(text, false, false);
            secs.push_back(std::chrono::duration<double>(Clock::now() - t0).count());
            if (ids != ref) {
                std::fprintf(stderr, "bench_tokenizer: repetition %d gave other ids\n", r);
                return 1;
            }
        }
        if (!ids_out.empty()) {
            std::FILE* f = std::fopen(ids_out.c_str(), "w");
            if (!f) fail("bench_tokenizer: cannot write '%s'", ids_out.c_str());
            for (size_t i = 0; i < ref.size(); ++i) std::fprintf(f, i ? " %d" : "%d", ref[i]);
            std::fputc('\n', f);
            std::fclose(f);
        }
        const double med = median(secs);
        const auto [lo, hi] = std::minmax_element(secs.begin(), secs.end());
        std::printf("encode vocab=%s text=%s bytes=%zu tokens=%zu reps=%d median_s=%.4f "
                    "MB/s=%.2f (fastest %.2f, slowest %.2f)\n",
                    vocab_path.c_str(), text_path.c_str(), text.size(), ref.size(), reps, med,
                    text.size() / med / 1e6, text.size() / *lo / 1e6, text.size() / *hi / 1e6);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "%s\n", e.what());
        return 1;
    }
    return 0;
}
