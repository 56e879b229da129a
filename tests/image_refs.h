// The Pillow / Hugging Face references of tests/data/images (made by make_image_refs.py):
// refs.json indexes byte ranges of refs.bin. Shared by tests/io/image_test.cpp and
// tests/model/image_preprocess_test.cpp.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "test_util.h"

namespace llmforge::test {

inline std::string image_data_path(const std::string& rel) { return src_path("tests/data/images/" + rel); }

struct ImageRefs {
    nlohmann::json index;
    std::string blob;

    static const ImageRefs& get() {
        static const ImageRefs r = [] {
            ImageRefs x;
            x.index = nlohmann::json::parse(read_file(image_data_path("refs.json")));
            x.blob = read_file(image_data_path("refs.bin"));
            return x;
        }();
        return r;
    }
    std::vector<uint8_t> bytes(uint64_t offset, uint64_t size) const {
        EXPECT_LE(offset + size, blob.size());
        if (offset + size > blob.size()) return {};
        return std::vector<uint8_t>(blob.begin() + static_cast<ptrdiff_t>(offset),
                                    blob.begin() + static_cast<ptrdiff_t>(offset + size));
    }
    std::vector<float> floats(uint64_t offset, uint64_t count) const {
        std::vector<float> v(count);
        EXPECT_LE(offset + 4 * count, blob.size());
        if (offset + 4 * count <= blob.size()) std::memcpy(v.data(), blob.data() + offset, 4 * count);
        return v;
    }
    // The decode entry of `file` (its Pillow RGB bytes), or null.
    const nlohmann::json* decoded(const std::string& file) const {
        for (const auto& d : index.at("decode")) {
            if (d.at("file") == file) return &d;
        }
        return nullptr;
    }
};

// "" when a and b are equal, else where they first differ.
inline std::string first_difference(const std::vector<uint8_t>& got, const std::vector<uint8_t>& want, int64_t width) {
    if (got.size() != want.size()) {
        return "size " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    }
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i]) {
            const int64_t px = static_cast<int64_t>(i / 3);
            size_t n = 0;
            for (size_t j = i; j < got.size(); ++j) n += got[j] != want[j];
            return "first at (x " + std::to_string(px % width) + ", y " + std::to_string(px / width) + ", channel " +
                   std::to_string(i % 3) + "): " + std::to_string(got[i]) + " vs " + std::to_string(want[i]) + "; " +
                   std::to_string(n) + " bytes differ";
        }
    }
    return "";
}

}  // namespace llmforge::test
