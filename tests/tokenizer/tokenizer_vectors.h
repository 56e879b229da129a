// Test-only: runs llama.cpp's per-vocabulary test vectors (NAME.gguf.inp -> NAME.gguf.out,
// Hugging Face encode(text, add_special_tokens=False)) through a Tokenizer.
#pragma once

#include <gtest/gtest.h>

#include <cstdio>
#include <string>
#include <vector>

#include "tokenizer/tokenizer.h"
#include "vocab_loader.h"

namespace llmforge::test {

inline std::string ids_line(const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) {
        s += ' ';
        s += std::to_string(id);
    }
    return s;
}

// Encodes every input (no BOS, special text not parsed) and compares with the expected ids;
// also checks decode(encode(x)) == x unless the vocabulary cannot give the input back (WordPiece
// lowercases). Returns the number of exact matches; prints "name: x/y".
inline size_t run_vocab_vectors(const Tokenizer& tok, const std::string& inp_path,
                                const std::string& out_path, const std::string& name,
                                bool check_round_trip = true) {
    const auto inputs = read_vocab_test_inputs(inp_path);
    const auto expected = read_vocab_test_outputs(out_path);
    EXPECT_EQ(inputs.size(), expected.size()) << name << ": .inp and .out disagree";
    size_t matched = 0;
    for (size_t i = 0; i < inputs.size() && i < expected.size(); ++i) {
        const std::vector<int32_t> got = tok.encode(inputs[i], false, false);
        if (got == expected[i]) {
            ++matched;
        } else {
            ADD_FAILURE() << name << " string " << i << " '" << inputs[i]
                          << "'\n  expected:" << ids_line(expected[i])
                          << "\n  got:     " << ids_line(got);
        }
        if (check_round_trip) {
            EXPECT_EQ(tok.decode(got), inputs[i]) << name << " round trip of string " << i;
        }
    }
    std::printf("[vectors] %s: %zu/%zu strings exact\n", name.c_str(), matched, inputs.size());
    return matched;
}

}  // namespace llmforge::test
