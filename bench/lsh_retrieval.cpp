// Synthetic multi-needle key-value retrieval on raw token ids, to measure how LSH attention
// (model/lsh.h) keeps long-range retrieval against dense attention and a sliding window of the
// same cost (bench/lsh_retrieval.sh drives it; results in docs/lsh-retrieval.md).
//
// Vocabulary 256: 0 = BOS, 1 = QUERY, keys 2..65, values 66..129, filler 130..255.
// Task "long" (the evaluation; make_long): BOS, n_pairs "key value" pairs with distinct keys S,
// then "key value" pairs whose keys are drawn from the other 64 - n_pairs keys, then one query
// "key value" per key of S (random order) at the end; one key -> value map per sequence. The answer
// to a query is only at the start, about L positions back: the argmax of the logits at the query's
// key must be its value (chance 1/64).
// Training data "stream" (make_stream): BOS, then "key value" pairs with keys uniform over all 64
// and one map per sequence: every repeated key's value is retrievable (induction), so most value
// targets carry the retrieval signal. Task "filler" (make_seq, the first attempt, which did not
// train): uniform filler with n_pairs pairs at random positions, then "QUERY key value" queries.
//
//   lsh_retrieval gen OUT.u16 N_SEQ L SEED [KIND=stream|long|filler] [N_PAIRS=16] [N_Q=N_PAIRS]
//       (stream: N_PAIRS = KMIN, default 64: each sequence uses K keys, K uniform in KMIN..64)
//       N_SEQ sequences back to back, little-endian u16 (llmforge train --data OUT.u16 --seq-len L
//       --no-shuffle: row g then starts at g·L, one sequence per row). N_Q (filler only) > N_PAIRS:
//       every key queried once, then again in a new order, ... until N_Q queries.
//   lsh_retrieval eval -m MODEL [--lengths 1024,2048,...] [--n 20] [--pairs 16] [--seed 7]
//       [--task long|filler|pair] [--attention dense|lsh|window] [--lsh-buckets B | --lsh-buckets-per P]
//       [--lsh-hashes R] [--lsh-window W] [--lsh-local K] [--window W | --window-from-lsh]
//       [--chunk 512] [--csv FILE]
//       Per length: accuracy over n sequences. --attention window runs LSH with one bucket, one
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

constexpr int32_t kBos = 0, kQuery = 1, kKey0 = 2, kNKeys = 64, kVal0 = 66, kNVals = 64, kFill0 = 130, kNFill = 126;

struct Seq {
    std::vector<int32_t> tok;
    std::vector<int64_t> qpos;  // positions of the queries' key tokens (predict tok[qpos + 1])
};

Seq make_seq(int64_t L, int n_pairs, std::mt19937_64& rng, int n_q = 0) {
    Seq s;
    if (n_q <= 0) n_q = n_pairs;
    const int64_t q_len = 3 * static_cast<int64_t>(n_q), body = L - 1 - q_len;  // body: filler and pairs
    if (body < 2 * n_pairs) {
        std::fprintf(stderr, "lsh_retrieval: length %lld too short for %d pairs\n", (long long)L, n_pairs);
        std::exit(2);
    }
    s.tok.assign(static_cast<size_t>(L), 0);
    s.tok[0] = kBos;
    for (int64_t i = 1; i <= body; ++i) s.tok[i] = kFill0 + static_cast<int32_t>(rng() % kNFill);
    std::vector<int32_t> keys(kNKeys);
    for (int i = 0; i < kNKeys; ++i) keys[i] = kKey0 + i;
    std::shuffle(keys.begin(), keys.end(), rng);
    keys.resize(static_cast<size_t>(n_pairs));
    std::vector<int32_t> vals(static_cast<size_t>(n_pairs));
    for (auto& v : vals) v = kVal0 + static_cast<int32_t>(rng() % kNVals);
    // Non-overlapping slots: choose n_pairs distinct starts among body/2 two-token slots.
    const int64_t slots = body / 2;
    std::vector<int64_t> chosen;
    while (static_cast<int>(chosen.size()) < n_pairs) {
        const int64_t c = static_cast<int64_t>(rng() % static_cast<uint64_t>(slots));
        if (std::find(chosen.begin(), chosen.end(), c) == chosen.end()) chosen.push_back(c);
    }
    for (int i = 0; i < n_pairs; ++i) {
        const int64_t p = 1 + 2 * chosen[static_cast<size_t>(i)];
        s.tok[p] = keys[static_cast<size_t>(i)];
        s.tok[p + 1] = vals[static_cast<size_t>(i)];
    }
    // Queries: every inserted key once in random order, again in a new order, ... until n_q.
    std::vector<int> order, perm(static_cast<size_t>(n_pairs));
    while (static_cast<int>(order.size()) < n_q) {
        for (int i = 0; i < n_pairs; ++i) perm[static_cast<size_t>(i)] = i;
        std::shuffle(perm.begin(), perm.end(), rng);
        for (int i = 0; i < n_pairs && static_cast<int>(order.size()) < n_q; ++i) order.push_back(perm[static_cast<size_t>(i)]);
    }
    int64_t p = 1 + body;
    for (int i : order) {
        s.tok[p] = kQuery;
        s.tok[p + 1] = keys[static_cast<size_t>(i)];
        s.tok[p + 2] = vals[static_cast<size_t>(i)];
        s.qpos.push_back(p + 1);
        p += 3;
    }
    return s;
}

// Training ("stream", dense signal): BOS, then "key value" pairs until length L (a last odd
// position holds one more key); keys uniform over all 64 (so they repeat), one random key -> value
// map per sequence (values drawn independently per key): every later occurrence of a key is
// followed by the value of its first occurrence, so those value targets are retrievable by an
// induction head (about 57% of value targets at L = 256, 75% at 512).
// With kmin < 64 each sequence uses a random subset of K keys, K uniform in kmin..64 (more repeats:
// a denser signal while the induction circuit forms).
Seq make_stream(int64_t L, std::mt19937_64& rng, int kmin = kNKeys) {
    Seq s;
    s.tok.assign(static_cast<size_t>(L), kBos);
    int32_t map[kNKeys];
    for (auto& v : map) v = kVal0 + static_cast<int32_t>(rng() % kNVals);
    std::vector<int32_t> keys(kNKeys);
    for (int i = 0; i < kNKeys; ++i) keys[static_cast<size_t>(i)] = i;
    int nk = kNKeys;
    if (kmin < kNKeys) {
        std::shuffle(keys.begin(), keys.end(), rng);
        nk = kmin + static_cast<int>(rng() % static_cast<uint64_t>(kNKeys - kmin + 1));
    }
    for (int64_t p = 1; p < L; p += 2) {
        const int32_t k = keys[static_cast<size_t>(rng() % static_cast<uint64_t>(nk))];
        s.tok[static_cast<size_t>(p)] = kKey0 + k;
        if (p + 1 < L) s.tok[static_cast<size_t>(p + 1)] = map[k];
    }
    return s;
}

// Evaluation ("long"): BOS, n_pairs "key value" pairs with distinct keys S (random order), then a
// body of "key value" pairs whose keys are uniform over the other 64 - n_pairs keys (the same
// consistent map), then n_pairs queries "key value", one per key of S in a new random order, at
// the very end (a last odd position holds one more body key). A query's only earlier occurrence is
// at the start, about L positions back; the argmax at the query's key must be its value.
Seq make_long(int64_t L, int n_pairs, std::mt19937_64& rng) {
    Seq s;
    const int64_t need = 1 + 4 * static_cast<int64_t>(n_pairs) + 2;
    if (L < need || n_pairs >= kNKeys) {
        std::fprintf(stderr, "lsh_retrieval: length %lld too short for %d pairs\n", (long long)L, n_pairs);
        std::exit(2);
    }
    s.tok.assign(static_cast<size_t>(L), kBos);
    int32_t map[kNKeys];
    for (auto& v : map) v = kVal0 + static_cast<int32_t>(rng() % kNVals);
    std::vector<int32_t> keys(kNKeys);
    for (int i = 0; i < kNKeys; ++i) keys[static_cast<size_t>(i)] = i;
    std::shuffle(keys.begin(), keys.end(), rng);
    const std::vector<int32_t> S(keys.begin(), keys.begin() + n_pairs), O(keys.begin() + n_pairs, keys.end());
    int64_t p = 1;
    auto put = [&](int32_t k) {
        s.tok[static_cast<size_t>(p)] = kKey0 + k;
        if (p + 1 < L) s.tok[static_cast<size_t>(p + 1)] = map[k];
        p += 2;
    };
    for (int32_t k : S) put(k);
    const int64_t q_start = L - ((L - 1) % 2) - 2 * static_cast<int64_t>(n_pairs);  // first query key
    while (p < q_start) put(O[static_cast<size_t>(rng() % O.size())]);
    std::vector<int32_t> q = S;
    std::shuffle(q.begin(), q.end(), rng);
    for (int32_t k : q) {
        s.qpos.push_back(p);
        put(k);
    }
    if (p < L) put(O[static_cast<size_t>(rng() % O.size())]);
    return s;
}

// Task "pair" (one attention layer can solve it: key and value in one token). Its own token
// layout, vocabulary 320: 0 BOS, query keys 1..16, values 17..32, "key=value" tokens 33..288
// (33 + 16 k + v), filler 289..319. A sequence: BOS, the 16 "key=value" tokens of one random
// key -> value map (each key once, shuffled), F filler tokens, then queries "Qk v" (the query
// key, then its value: the target). Training: F uniform in 0..L/2, queries fill the rest (keys
// uniform, repeats allowed: about half of all targets are answers). Eval (long = true): F fills
// the sequence up to 16 queries, one per key: each answer sits about L positions back.
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
    if (argc < 6) {
        std::fprintf(stderr, "usage: lsh_retrieval gen OUT.u16 N_SEQ L SEED [KIND=stream|long|filler] [N_PAIRS=16] [N_Q=N_PAIRS]\n");
        return 2;
    }
    const char* out = argv[2];
    const int64_t n_seq = std::atoll(argv[3]), L = std::atoll(argv[4]);
    std::mt19937_64 rng(std::strtoull(argv[5], nullptr, 10));
    const std::string kind = argc > 6 ? argv[6] : "stream";
    const int n_pairs = argc > 7 ? std::atoi(argv[7]) : 16;  // stream: the fewest keys per sequence (64)
    const int n_q = argc > 8 ? std::atoi(argv[8]) : n_pairs;
    if (kind != "stream" && kind != "long" && kind != "filler" && kind != "pair") {
        std::fprintf(stderr, "lsh_retrieval: gen kind %s, expected stream, long, filler or pair\n", kind.c_str());
        return 2;
    }
    FILE* f = std::fopen(out, "wb");
    if (f == nullptr) {
        std::perror(out);
        return 1;
    }
    std::vector<uint16_t> buf;
    for (int64_t i = 0; i < n_seq; ++i) {
        const Seq s = kind == "pair"     ? make_pair(L, rng, false)
                      : kind == "stream" ? make_stream(L, rng, argc > 7 ? n_pairs : kNKeys)
                      : kind == "long" ? make_long(L, n_pairs, rng)
                                       : make_seq(L, n_pairs, rng, n_q);
        buf.assign(s.tok.begin(), s.tok.end());
        std::fwrite(buf.data(), 2, buf.size(), f);
    }
    std::fclose(f);
    std::fprintf(stderr, "lsh_retrieval: wrote %lld %s sequences of %lld tokens to %s\n", (long long)n_seq, kind.c_str(),
                 (long long)L, out);
    return 0;
}

struct EvalResult {
    int64_t correct = 0, total = 0;
    double mean_scores = 0;  // per (layer, head, query row); 0 unless stats asked
    double seconds = 0;
};

EvalResult run_eval(const std::string& model_path, const AttentionChoice& choice, int64_t L, int n, int n_pairs,
                    uint64_t seed, int64_t chunk, bool want_stats, bool filler = false, bool pair = false) {
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
        const Seq sq = pair ? make_pair(L, rng, true) : filler ? make_seq(L, n_pairs, rng) : make_long(L, n_pairs, rng);
        auto mem = model->new_memory(L);
        // The last chunk (all logits) starts at the first query (its QUERY token for filler).
        const int64_t q0 = sq.qpos.front() - (filler ? 1 : 0);
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
    int n = 20, n_pairs = 16;
    uint64_t seed = 7;
    int64_t buckets = -1, buckets_per = -1, hashes = 2, lwin = 32, local = 16, window = -1, chunk = 512;
    bool window_from_lsh = false, filler = false, pair = false;
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
        else if (a == "--pairs") n_pairs = std::atoi(val().c_str());
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
        else if (a == "--task") {
            const std::string t = val();
            if (t != "long" && t != "filler" && t != "pair") {
                std::fprintf(stderr, "lsh_retrieval: --task %s, expected long, filler or pair\n", t.c_str());
                return 2;
            }
            filler = t == "filler";
            pair = t == "pair";
        }
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
            r = run_eval(model, ch, L, n, n_pairs, seed, chunk, false, filler, pair);
            r.mean_scores = static_cast<double>(L + 1) / 2;
        } else if (kind == "lsh") {
            ch = lsh;
            settings = "buckets " + std::to_string(lsh.n_buckets) + ", hashes " + std::to_string(hashes) + ", window " +
                       std::to_string(lwin) + ", local " + std::to_string(local);
            r = run_eval(model, ch, L, n, n_pairs, seed, chunk, true, filler, pair);
        } else if (kind == "window") {
            int64_t W = window;
            if (window_from_lsh) {
                // The LSH run's scores per query on the same sequences (forward only, its accuracy unused).
                const EvalResult lr = run_eval(model, lsh, L, n, n_pairs, seed, chunk, true, filler, pair);
                W = std::max<int64_t>(1, static_cast<int64_t>(lr.mean_scores + 0.5));
            }
            ch.kind = "lsh";
            ch.n_buckets = 1;
            ch.n_hashes = 1;
            ch.window = W;
            ch.dense_below = 0;
            ch.local = 0;
            settings = "sliding window " + std::to_string(W) + (window_from_lsh ? " (= LSH mean)" : "");
            r = run_eval(model, ch, L, n, n_pairs, seed, chunk, true, filler, pair);
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
                 "usage: lsh_retrieval gen OUT.u16 N_SEQ L SEED [N_PAIRS] [N_Q]\n"
                 "       lsh_retrieval eval -m MODEL [--lengths ...] [--n 20] [--attention dense|lsh|window] ...\n");
    return 2;
}
