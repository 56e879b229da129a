// Synthetic key-value retrieval on raw token ids, to measure how LSH attention (model/lsh.h) keeps
// long-range retrieval against dense attention and a sliding window of the same cost
// (bench/lsh_retrieval.sh drives it; results in docs/lsh-retrieval.md).
//
// Vocabulary 320: 0 BOS, query keys 1..16, values 17..32, "key=value" tokens 33..288 (33 + 16 k + v),
// filler 289..319. A sequence: BOS, the 16 "key=value" tokens of one random key -> value map (each
// key once, shuffled), F filler tokens, then queries "Qk v" (a query key, then its value: the
// target). Key and value share one token, so one attention layer can answer a query.
// Training rows (gen): F uniform in 0..L/2, queries fill the rest (keys uniform, repeats allowed:
// about half of all targets are answers; a repeated key is also answered by its earlier query).
// Evaluation (eval): F fills the sequence up to 16 queries, one per key, in a new random order:
// each answer's only source is the map, about L positions back; right = the argmax of the logits
// at the query key is its value (chance 1/16).
//
//   lsh_retrieval gen OUT.u16 N_SEQ L SEED
//       N_SEQ training sequences back to back, little-endian u16 (llmforge train --data OUT.u16
//       --seq-len L --no-shuffle: row g then starts at g·L, one sequence per row).
//   lsh_retrieval eval -m MODEL [--lengths 1024,2048,...] [--n 20] [--seed 7] [--label NAME]
//       [--attention dense|lsh|window] [--lsh-buckets B | --lsh-buckets-per P]
//       [--lsh-hashes R] [--lsh-window W] [--lsh-local K] [--window W | --window-from-lsh]
//       [--chunk 512] [--csv FILE]
//       Per length: accuracy over n sequences. --attention lsh runs the model with LSH attention
//       (Model::set_attention; a dense-trained model too); window runs LSH with one bucket, one
//       round, window W and local 0: a causal sliding window of W keys. --window-from-lsh: per
//       length, W = the mean keys LSH (the --lsh-* settings) scored per query there, measured on
//       the same sequences (LshStats) — a sliding window of equal cost. --lsh-buckets-per P: the
//       LSH bucket count per length is L / P (even, at least 2). One thread.
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/lsh.h"
#include "model/model.h"

namespace {

using namespace llmforge;

constexpr int32_t kBos = 0;

struct Seq {
    std::vector<int32_t> tok;
    std::vector<int64_t> qpos;  // positions of the queries' key tokens (predict tok[qpos + 1])
};

constexpr int32_t kPairQ0 = 1, kPairV0 = 17, kPairKV0 = 33, kPairFill0 = 289, kPairNFill = 31, kPairN = 16;

Seq make_pair(int64_t L, std::mt19937_64& rng, bool long_range) {
    Seq s;
    s.tok.assign(static_cast<size_t>(L), kBos);
    int32_t map[kPairN];
    for (auto& v : map) v = static_cast<int32_t>(rng() % kPairN);
    std::vector<int32_t> keys(kPairN);
    for (int i = 0; i < kPairN; ++i) keys[static_cast<size_t>(i)] = i;
    std::shuffle(keys.begin(), keys.end(), rng);
    int64_t p = 1;
    for (int32_t k : keys) s.tok[static_cast<size_t>(p++)] = kPairKV0 + kPairN * k + map[k];
    const int64_t room = L - p;
    const int64_t fill = long_range ? room - 2 * kPairN - (room % 2) : static_cast<int64_t>(rng() % static_cast<uint64_t>(L / 2 + 1));
    for (int64_t i = 0; i < fill && p < L; ++i) s.tok[static_cast<size_t>(p++)] = kPairFill0 + static_cast<int32_t>(rng() % kPairNFill);
    std::shuffle(keys.begin(), keys.end(), rng);
    for (int64_t j = 0; p + 1 < L; ++j) {
        const int32_t k = long_range ? keys[static_cast<size_t>(j % kPairN)] : static_cast<int32_t>(rng() % kPairN);
        s.qpos.push_back(p);
        s.tok[static_cast<size_t>(p++)] = kPairQ0 + k;
        s.tok[static_cast<size_t>(p++)] = kPairV0 + map[k];
    }
    if (p < L) s.tok[static_cast<size_t>(p)] = kPairFill0;
    return s;
}

int cmd_gen(int argc, char** argv) {
    if (argc != 6) {
        std::fprintf(stderr, "usage: lsh_retrieval gen OUT.u16 N_SEQ L SEED\n");
        return 2;
    }
    const char* out = argv[2];
    const int64_t n_seq = std::atoll(argv[3]), L = std::atoll(argv[4]);
    std::mt19937_64 rng(std::strtoull(argv[5], nullptr, 10));
    if (n_seq <= 0 || L < 1 + kPairN + 2) {
        std::fprintf(stderr, "lsh_retrieval: gen N_SEQ %lld and L %lld: expected N_SEQ >= 1 and L >= %d\n",
                     (long long)n_seq, (long long)L, 1 + kPairN + 2);
        return 2;
    }
    FILE* f = std::fopen(out, "wb");
    if (f == nullptr) {
        std::perror(out);
        return 1;
    }
    std::vector<uint16_t> buf;
    for (int64_t i = 0; i < n_seq; ++i) {
        const Seq s = make_pair(L, rng, false);
        buf.assign(s.tok.begin(), s.tok.end());
        std::fwrite(buf.data(), 2, buf.size(), f);
    }
    std::fclose(f);
    std::fprintf(stderr, "lsh_retrieval: wrote %lld sequences of %lld tokens to %s\n", (long long)n_seq, (long long)L, out);
    return 0;
}

struct EvalResult {
    int64_t correct = 0, total = 0;
    double mean_scores = 0;  // per (layer, head, query row); 0 unless stats asked
    double seconds = 0;
};

EvalResult run_eval(const std::string& model_path, const AttentionChoice& choice, int64_t L, int n, uint64_t seed,
                    int64_t chunk, bool want_stats) {
    auto model = Model::load(model_path);
    model->set_attention(choice);
    ThreadPool pool(1);
    ForwardScratch s;
    LshStats stats;
    if (want_stats) s.lsh_stats = &stats;
    const int64_t V = model->config().n_vocab;
    std::mt19937_64 rng(seed * 1000003ULL + static_cast<uint64_t>(L));
    EvalResult r;
    int64_t rows = 0;
    const auto t0 = std::chrono::steady_clock::now();
    std::vector<float> logits;
    for (int i = 0; i < n; ++i) {
        const Seq sq = make_pair(L, rng, true);
        auto mem = model->new_memory(L);
        // The last chunk (all logits) starts at the first query.
        const int64_t q0 = sq.qpos.front();
        int64_t pos = 0;
        while (pos < q0) {
            const int64_t m = std::min(chunk, q0 - pos);
            logits.resize(static_cast<size_t>(V));
            model->forward(sq.tok.data() + pos, m, pos, *mem, logits.data(), 1, pool, s);
            pos += m;
        }
        const int64_t m = L - q0;
        logits.resize(static_cast<size_t>(m * V));
        model->forward(sq.tok.data() + q0, m, q0, *mem, logits.data(), m, pool, s);
        rows += L;
        for (int64_t qp : sq.qpos) {
            const float* row = logits.data() + (qp - q0) * V;
            const int64_t best = std::max_element(row, row + V) - row;
            r.correct += best == sq.tok[qp + 1];
            ++r.total;
        }
    }
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (want_stats && !stats.scores.empty()) {
        double sum = 0;
        for (int64_t v : stats.scores) sum += static_cast<double>(v);
        r.mean_scores = sum / (static_cast<double>(stats.n_layer * stats.n_head) * static_cast<double>(rows));
    }
    return r;
}

std::vector<int64_t> parse_list(const std::string& s) {
    std::vector<int64_t> out;
    size_t b = 0;
    while (b < s.size()) {
        size_t e = s.find(',', b);
        if (e == std::string::npos) e = s.size();
        out.push_back(std::atoll(s.substr(b, e - b).c_str()));
        b = e + 1;
    }
    return out;
}

int cmd_eval(int argc, char** argv) {
    std::string model, kind = "dense", csv, label;
    std::vector<int64_t> lengths = {1024, 2048, 4096, 8192, 16384};
    int n = 20;
    uint64_t seed = 7;
    int64_t buckets = -1, buckets_per = -1, hashes = 2, lwin = 32, local = 16, window = -1, chunk = 512;
    bool window_from_lsh = false;
    for (int i = 2; i < argc; ++i) {
        const std::string a = argv[i];
        auto val = [&]() -> std::string {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "lsh_retrieval: %s needs a value\n", a.c_str());
                std::exit(2);
            }
            return argv[++i];
        };
        if (a == "-m") model = val();
        else if (a == "--lengths") lengths = parse_list(val());
        else if (a == "--n") n = std::atoi(val().c_str());
        else if (a == "--seed") seed = std::strtoull(val().c_str(), nullptr, 10);
        else if (a == "--attention") kind = val();
        else if (a == "--lsh-buckets") buckets = std::atoll(val().c_str());
        else if (a == "--lsh-buckets-per") buckets_per = std::atoll(val().c_str());
        else if (a == "--lsh-hashes") hashes = std::atoll(val().c_str());
        else if (a == "--lsh-window") lwin = std::atoll(val().c_str());
        else if (a == "--lsh-local") local = std::atoll(val().c_str());
        else if (a == "--window") window = std::atoll(val().c_str());
        else if (a == "--window-from-lsh") window_from_lsh = true;
        else if (a == "--chunk") chunk = std::atoll(val().c_str());
        else if (a == "--csv") csv = val();
        else if (a == "--label") label = val();
        else {
            std::fprintf(stderr, "lsh_retrieval: unknown option %s\n", a.c_str());
            return 2;
        }
    }
    if (model.empty()) {
        std::fprintf(stderr, "usage: lsh_retrieval eval -m MODEL [options] (see the file's header)\n");
        return 2;
    }
    if (label.empty()) label = kind;
    FILE* cf = csv.empty() ? nullptr : std::fopen(csv.c_str(), "a");
    std::printf("| attention | length | settings | mean keys scored / query | accuracy | correct / queries | seconds |\n");
    std::printf("|---|---|---|---|---|---|---|\n");
    for (int64_t L : lengths) {
        AttentionChoice lsh;
        lsh.kind = "lsh";
        lsh.n_buckets = buckets_per > 0 ? std::max<int64_t>(2, (L / buckets_per) & ~int64_t(1)) : (buckets > 0 ? buckets : 8);
        lsh.n_hashes = hashes;
        lsh.window = lwin;
        lsh.dense_below = 0;
        lsh.local = local;
        AttentionChoice ch;
        std::string settings;
        EvalResult r;
        if (kind == "dense") {
            ch.kind = "dense";
            settings = "dense";
            r = run_eval(model, ch, L, n, seed, chunk, false);
            r.mean_scores = static_cast<double>(L + 1) / 2;
        } else if (kind == "lsh") {
            ch = lsh;
            settings = "buckets " + std::to_string(lsh.n_buckets) + ", hashes " + std::to_string(hashes) + ", window " +
                       std::to_string(lwin) + ", local " + std::to_string(local);
            r = run_eval(model, ch, L, n, seed, chunk, true);
        } else if (kind == "window") {
            int64_t W = window;
            if (window_from_lsh) {
                // The LSH run's scores per query on the same sequences (forward only, its accuracy unused).
                const EvalResult lr = run_eval(model, lsh, L, n, seed, chunk, true);
                W = std::max<int64_t>(1, static_cast<int64_t>(lr.mean_scores + 0.5));
            }
            ch.kind = "lsh";
            ch.n_buckets = 1;
            ch.n_hashes = 1;
            ch.window = W;
            ch.dense_below = 0;
            ch.local = 0;
            settings = "sliding window " + std::to_string(W) + (window_from_lsh ? " (= LSH mean)" : "");
            r = run_eval(model, ch, L, n, seed, chunk, true);
        } else {
            std::fprintf(stderr, "lsh_retrieval: --attention %s, expected dense, lsh or window\n", kind.c_str());
            return 2;
        }
        const double acc = r.total > 0 ? static_cast<double>(r.correct) / static_cast<double>(r.total) : 0;
        std::printf("| %s | %lld | %s | %.1f | %.3f | %lld / %lld | %.1f |\n", label.c_str(), (long long)L,
                    settings.c_str(), r.mean_scores, acc, (long long)r.correct, (long long)r.total, r.seconds);
        std::fflush(stdout);
        if (cf != nullptr) {
            std::fprintf(cf, "%s,%lld,\"%s\",%.1f,%.4f,%lld,%lld,%.1f\n", label.c_str(), (long long)L, settings.c_str(),
                         r.mean_scores, acc, (long long)r.correct, (long long)r.total, r.seconds);
            std::fflush(cf);
        }
    }
    if (cf != nullptr) std::fclose(cf);
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc >= 2 && std::strcmp(argv[1], "gen") == 0) return cmd_gen(argc, argv);
    if (argc >= 2 && std::strcmp(argv[1], "eval") == 0) {
        try {
            return cmd_eval(argc, argv);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "lsh_retrieval: %s\n", e.what());
            return 1;
        }
    }
    std::fprintf(stderr,
                 "usage: lsh_retrieval gen OUT.u16 N_SEQ L SEED\n"
                 "       lsh_retrieval eval -m MODEL [--lengths ...] [--n 20] [--attention dense|lsh|window] ...\n");
    return 2;
}
