#include "train/data.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/random.h"

namespace llmforge::train {

namespace fs = std::filesystem;

namespace {

int width_of(const std::string& path) {
    const std::string ext = fs::path(path).extension().string();
    if (ext == ".u16") return 2;
    if (ext == ".u32") return 4;
    return 0;
}

}  // namespace

struct TokenData::PackCache {
    std::mutex mu;
    std::map<int64_t, std::shared_ptr<const Packing>> by_seq;
};

TokenData TokenData::open(const std::string& path, const std::string& split, int64_t n_vocab) {
    TokenData d;
    d.cache_ = std::make_shared<PackCache>();
    std::vector<std::string> files, masks;
    std::error_code ec;
    if (fs::is_directory(path, ec)) {
        const std::string meta_path = (fs::path(path) / "meta.json").string();
        if (!fs::exists(meta_path))
            fail("%s: folder has no meta.json (expected the output of llmforge prepare, or give a .u16/.u32 "
                 "token file)", path.c_str());
        nlohmann::json meta;
        try {
            meta = nlohmann::json::parse(read_file(meta_path, "data meta", ""));
        } catch (const nlohmann::json::exception& e) {
            fail("%s: not valid JSON (%s)", meta_path.c_str(), e.what());
        }
        std::string key = split + "_shards";
        // A folder prepared as validation data only (--val-fraction 0: every document in "train")
        // is validation data as a whole when --val-data names it.
        if (split == "val" && meta.contains(key) && meta[key].is_array() && meta[key].empty() &&
            meta.contains("train_shards") && meta["train_shards"].is_array() && !meta["train_shards"].empty() &&
            meta.contains("val_tokens") && meta["val_tokens"] == 0) {
            key = "train_shards";
        }
        const std::string used = key.substr(0, key.size() - 7);
        if (!meta.contains(key) || !meta[key].is_array())
            fail("%s: no \"%s\" list (expected the output of llmforge prepare)", meta_path.c_str(), key.c_str());
        for (const auto& s : meta[key]) {
            if (!s.is_string()) fail("%s: \"%s\" holds a non-string entry", meta_path.c_str(), key.c_str());
            files.push_back((fs::path(path) / s.get<std::string>()).string());
        }
        if (files.empty()) fail("%s: the %s split has no shards (hint: prepare with more text or a larger --val-fraction)",
                                path.c_str(), split.c_str());
        if (meta.contains("sft") && meta["sft"].is_boolean() && meta["sft"].get<bool>()) {
            d.sft_ = true;
            const std::string mkey = used + "_masks";
            if (!meta.contains(mkey) || !meta[mkey].is_array() || meta[mkey].size() != files.size())
                fail("%s: SFT data needs a \"%s\" list of %zu mask files, one per shard (folder written by another "
                     "version of llmforge prepare? hint: prepare --chat again)",
                     meta_path.c_str(), mkey.c_str(), files.size());
            for (const auto& m : meta[mkey]) {
                if (!m.is_string()) fail("%s: \"%s\" holds a non-string entry", meta_path.c_str(), mkey.c_str());
                masks.push_back((fs::path(path) / m.get<std::string>()).string());
            }
            if (meta.contains("eos_id") && meta["eos_id"].is_number_integer() && meta["eos_id"].get<int64_t>() >= 0)
                d.pad_id_ = static_cast<int32_t>(meta["eos_id"].get<int64_t>());
        }
    } else {
        if (!fs::exists(path, ec)) fail("%s: no such data file (expected a .u16/.u32 token file or a prepare folder)", path.c_str());
        files.push_back(path);
    }
    for (size_t fi = 0; fi < files.size(); ++fi) {
        const std::string& f = files[fi];
        const int w = width_of(f);
        if (w == 0)
            fail("%s: unknown token file type '%s', expected .u16 or .u32 (little-endian token ids)", f.c_str(),
                 fs::path(f).extension().string().c_str());
        Shard s;
        s.file = std::make_shared<FileMap>(RegularFile(f, "a token file (.u16/.u32)"));
        s.width = w;
        if (s.file->size() % w != 0)
            fail("%s: size %zu bytes is not a multiple of %d (truncated token file?)", f.c_str(), s.file->size(), w);
        s.n = static_cast<int64_t>(s.file->size() / w);
        s.first = d.n_;
        // Every id must index the embedding table: check once here, not per batch.
        const uint8_t* p = s.file->data();
        for (int64_t i = 0; i < s.n; ++i) {
            uint32_t v;
            if (w == 2) {
                uint16_t x;
                std::memcpy(&x, p + 2 * i, 2);
                v = x;
            } else {
                std::memcpy(&v, p + 4 * i, 4);
            }
            if (static_cast<int64_t>(v) >= n_vocab)
                fail("%s: token %lld is id %u, expected < %lld (the model's vocabulary size; data prepared with "
                     "another tokenizer?)", f.c_str(), (long long)i, v, (long long)n_vocab);
        }
        if (d.sft_) {
            const std::string& mf = masks[fi];
            s.mask = std::make_shared<FileMap>(RegularFile(mf, "an SFT mask file (.mask)"));
            if (static_cast<int64_t>(s.mask->size()) != s.n)
                fail("%s: %zu mask bytes for the %lld tokens of %s, expected one per token (truncated or mixed-up "
                     "files? hint: prepare --chat again)", mf.c_str(), s.mask->size(), (long long)s.n, f.c_str());
            const uint8_t* m = s.mask->data();
            for (int64_t i = 0; i < s.n; ++i) {
                if (m[i] > (kMaskCounted | kMaskDialogueStart))
                    fail("%s: byte %lld is %u, expected 0-3 (bit 0 counted, bit 1 dialogue start; not an SFT mask?)",
                         mf.c_str(), (long long)i, static_cast<unsigned>(m[i]));
                if (m[i] & kMaskDialogueStart) d.dialogue_start_.push_back(d.n_ + i);
                if (m[i] & kMaskCounted) ++d.counted_;
            }
        }
        d.n_ += s.n;
        d.shards_.push_back(std::move(s));
    }
    if (d.n_ == 0) fail("%s: no tokens (empty data)", path.c_str());
    if (d.sft_) {
        if (d.dialogue_start_.empty() || d.dialogue_start_[0] != 0)
            fail("%s: the %s split's first mask byte does not start a dialogue (corrupt SFT mask; hint: prepare --chat "
                 "again)", path.c_str(), split.c_str());
        if (d.counted_ == 0)
            fail("%s: the %s split has no token the loss counts (no assistant replies?; hint: check the chats given to "
                 "prepare --chat)", path.c_str(), split.c_str());
        d.dialogue_start_.push_back(d.n_);
    }
    d.desc_ = path + " (" + std::to_string(d.n_) + " tokens in " + std::to_string(d.shards_.size()) + " file" +
              (d.shards_.size() == 1 ? "" : "s");
    if (d.sft_)
        d.desc_ += ", SFT: " + std::to_string(d.dialogues()) + " dialogues, " + std::to_string(d.counted_) +
                   " counted tokens";
    d.desc_ += ")";
    return d;
}

size_t TokenData::shard_of(int64_t g) const {
    // First shard whose range ends after g (shards are few; a binary search keeps SFT rows cheap).
    size_t lo = 0, hi = shards_.size() - 1;
    while (lo < hi) {
        const size_t mid = (lo + hi) / 2;
        if (shards_[mid].first + shards_[mid].n <= g) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

void TokenData::read_mask(int64_t start, int64_t n, uint8_t* out) const {
    LF_ASSERT(sft_ && start >= 0 && start + n <= n_);
    if (n <= 0) return;
    size_t si = shard_of(start);
    for (int64_t i = 0; i < n; ++i) {
        const int64_t g = start + i;
        while (g >= shards_[si].first + shards_[si].n) ++si;
        out[i] = shards_[si].mask->data()[g - shards_[si].first];
    }
}

std::shared_ptr<const TokenData::Packing> TokenData::packing(int64_t T) const {
    LF_ASSERT(sft_ && T > 0);
    std::lock_guard<std::mutex> lock(cache_->mu);
    auto it = cache_->by_seq.find(T);
    if (it != cache_->by_seq.end()) return it->second;
    auto p = std::make_shared<Packing>();
    p->seq = T;
    const int64_t cap = T + 1, D = dialogues();
    p->row_first.push_back(0);
    int64_t used = 0;
    for (int64_t i = 0; i < D; ++i) {
        int64_t len = dialogue_size(i);
        if (len > cap) len = cap, ++p->truncated;
        if (used > 0 && used + len > cap) {  // greedy: the dialogue opens a new row
            p->row_first.push_back(i);
            used = 0;
        }
        used += len;
    }
    p->row_first.push_back(D);
    if (p->truncated > 0)
        std::fprintf(stderr, "data: %lld of %lld dialogues in %s are longer than %lld tokens (--seq-len + 1) and are cut "
                     "to that length (hint: a larger --seq-len trains on their ends)\n",
                     (long long)p->truncated, (long long)D, desc_.c_str(), (long long)cap);
    cache_->by_seq.emplace(T, p);
    return p;
}

void TokenData::read(int64_t start, int64_t n, int32_t* out) const {
    size_t si = 0;
    while (si + 1 < shards_.size() && shards_[si + 1].first <= start) ++si;
    for (int64_t i = 0; i < n; ++i) {
        const int64_t g = start + i;
        while (g >= shards_[si].first + shards_[si].n) ++si;
        const Shard& s = shards_[si];
        const uint8_t* p = s.file->data() + (g - s.first) * s.width;
        if (s.width == 2) {
            uint16_t x;
            std::memcpy(&x, p, 2);
            out[i] = x;
        } else {
            uint32_t x;
            std::memcpy(&x, p, 4);
            out[i] = static_cast<int32_t>(x);
        }
    }
}

namespace {

// The row index hash of shuffled batches (plain and SFT): a pure function of (seed, k, g).
uint64_t row_hash(const BatchPlan& plan, int64_t k, int64_t g) {
    return mix64(plan.seed ^ mix64(static_cast<uint64_t>(k) * kGoldenGamma + static_cast<uint64_t>(g) + 1));
}

void fill_sft_batch(const TokenData& d, const BatchPlan& plan, int64_t k, int32_t* inputs, int32_t* targets,
                    int32_t* doc_start) {
    const int64_t T = plan.seq, cap = T + 1;
    const auto pk = d.packing(T);
    const int64_t R = pk->rows();
    const int64_t rows_total = static_cast<int64_t>(plan.ranks) * plan.batch;
    std::vector<int32_t> tok(static_cast<size_t>(cap)), start(static_cast<size_t>(cap));  // (T+1)
    std::vector<uint8_t> mask(static_cast<size_t>(cap));                                  // (T+1)
    for (int64_t b = 0; b < plan.batch; ++b) {
        const int64_t g = static_cast<int64_t>(plan.rank) * plan.batch + b;
        const int64_t r = plan.shuffle ? static_cast<int64_t>(row_hash(plan, k, g) % static_cast<uint64_t>(R))
                                       : (k * rows_total + g) % R;
        int64_t pos = 0;
        for (int64_t i = pk->row_first[r]; i < pk->row_first[r + 1]; ++i) {
            const int64_t len = std::min(d.dialogue_size(i), cap);
            d.read(d.dialogue_start(i), len, tok.data() + pos);
            d.read_mask(d.dialogue_start(i), len, mask.data() + pos);
            for (int64_t j = 0; j < len; ++j) start[pos + j] = static_cast<int32_t>(pos);
            pos += len;
        }
        for (int64_t j = pos; j < cap; ++j) {  // padding: its own "dialogue", never counted
            tok[j] = d.pad_id();
            mask[j] = 0;
            start[j] = static_cast<int32_t>(pos);
        }
        for (int64_t t = 0; t < T; ++t) {
            inputs[b * T + t] = tok[t];
            const bool counted = start[t + 1] == start[t] && (mask[t + 1] & TokenData::kMaskCounted);
            targets[b * T + t] = counted ? tok[t + 1] : -1;
            if (doc_start) doc_start[b * T + t] = start[t];
        }
    }
}

}  // namespace

void fill_batch(const TokenData& d, const BatchPlan& plan, int64_t k, int32_t* inputs, int32_t* targets,
                int32_t* doc_start) {
    if (d.sft()) return fill_sft_batch(d, plan, k, inputs, targets, doc_start);
    if (doc_start) std::fill(doc_start, doc_start + plan.batch * plan.seq, 0);
    const int64_t T = plan.seq, n = d.size();
    if (n < T + 1)
        fail("%s: %lld tokens is too short for --seq-len %lld (needs at least %lld tokens)", d.description().c_str(),
             (long long)n, (long long)T, (long long)(T + 1));
    const int64_t rows_total = static_cast<int64_t>(plan.ranks) * plan.batch;
    const int64_t R = (n - 1) / T;
    std::vector<int32_t> row(static_cast<size_t>(T + 1));
    for (int64_t b = 0; b < plan.batch; ++b) {
        const int64_t g = static_cast<int64_t>(plan.rank) * plan.batch + b;
        int64_t start;
        if (plan.shuffle) {
            start = static_cast<int64_t>(row_hash(plan, k, g) % static_cast<uint64_t>(n - T));
        } else {
            start = ((k * rows_total + g) % R) * T;
        }
        d.read(start, T + 1, row.data());
        std::memcpy(inputs + b * T, row.data(), T * sizeof(int32_t));
        std::memcpy(targets + b * T, row.data() + 1, T * sizeof(int32_t));
    }
}

}  // namespace llmforge::train
