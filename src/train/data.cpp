#include "train/data.h"

#include <cstring>
#include <filesystem>
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

TokenData TokenData::open(const std::string& path, const std::string& split, int64_t n_vocab) {
    TokenData d;
    std::vector<std::string> files;
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
        const std::string key = split + "_shards";
        if (!meta.contains(key) || !meta[key].is_array())
            fail("%s: no \"%s\" list (expected the output of llmforge prepare)", meta_path.c_str(), key.c_str());
        for (const auto& s : meta[key]) {
            if (!s.is_string()) fail("%s: \"%s\" holds a non-string entry", meta_path.c_str(), key.c_str());
            files.push_back((fs::path(path) / s.get<std::string>()).string());
        }
        if (files.empty()) fail("%s: the %s split has no shards (hint: prepare with more text or a larger --val-fraction)",
                                path.c_str(), split.c_str());
    } else {
        if (!fs::exists(path, ec)) fail("%s: no such data file (expected a .u16/.u32 token file or a prepare folder)", path.c_str());
        files.push_back(path);
    }
    for (const std::string& f : files) {
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
        d.n_ += s.n;
        d.shards_.push_back(std::move(s));
    }
    if (d.n_ == 0) fail("%s: no tokens (empty data)", path.c_str());
    d.desc_ = path + " (" + std::to_string(d.n_) + " tokens in " + std::to_string(d.shards_.size()) + " file" +
              (d.shards_.size() == 1 ? "" : "s") + ")";
    return d;
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

void fill_batch(const TokenData& d, const BatchPlan& plan, int64_t k, int32_t* inputs, int32_t* targets) {
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
            const uint64_t h =
                mix64(plan.seed ^ mix64(static_cast<uint64_t>(k) * kGoldenGamma + static_cast<uint64_t>(g) + 1));
            start = static_cast<int64_t>(h % static_cast<uint64_t>(n - T));
        } else {
            start = ((k * rows_total + g) % R) * T;
        }
        d.read(start, T + 1, row.data());
        std::memcpy(inputs + b * T, row.data(), T * sizeof(int32_t));
        std::memcpy(targets + b * T, row.data() + 1, T * sizeof(int32_t));
    }
}

}  // namespace llmforge::train
