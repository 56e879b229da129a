// Reader for ../shared/assets/torch-golden (golden.bin + manifest.tsv) and a ModelFiles built
// from its weights, for the whole-model tests. Header-only, test use only.
#pragma once

#include <cstring>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "model/model.h"
#include "test_util.h"

namespace llmforge::test {

struct GoldenTensor {
    std::string dtype;
    std::vector<int64_t> shape;
    std::vector<double> values;  // converted to double
};

inline std::map<std::string, GoldenTensor> read_golden(const std::string& dir) {
    std::map<std::string, GoldenTensor> out;
    std::string bin = read_file(dir + "/golden.bin");
    std::ifstream man(dir + "/manifest.tsv");
    std::string line;
    std::getline(man, line);  // header
    while (std::getline(man, line)) {
        std::istringstream ss(line);
        std::string name, dtype, shape;
        size_t off = 0, nbytes = 0;
        ss >> name >> dtype >> shape >> off >> nbytes;
        GoldenTensor t;
        t.dtype = dtype;
        if (shape != "scalar") {
            std::istringstream sh(shape);
            std::string d;
            while (std::getline(sh, d, ',')) t.shape.push_back(std::stoll(d));
        }
        const char* p = bin.data() + off;
        if (dtype == "f4") {
            for (size_t i = 0; i < nbytes / 4; ++i) {
                float f;
                std::memcpy(&f, p + 4 * i, 4);
                t.values.push_back(f);
            }
        } else if (dtype == "f8") {
            for (size_t i = 0; i < nbytes / 8; ++i) {
                double f;
                std::memcpy(&f, p + 8 * i, 8);
                t.values.push_back(f);
            }
        } else {
            for (size_t i = 0; i < nbytes / 4; ++i) {
                int32_t v;
                std::memcpy(&v, p + 4 * i, 4);
                t.values.push_back(v);
            }
        }
        out[name] = std::move(t);
    }
    return out;
}

// The golden model as ModelFiles (owned f32 tensors under GGUF names; tied embeddings).
inline ModelFiles golden_model_files(const std::map<std::string, GoldenTensor>& g) {
    ModelFiles f;
    f.path = "torch-golden";
    f.format = "test";
    ModelConfig& c = f.config;
    c.arch = "llama";
    c.n_vocab = 256;
    c.n_embd = 64;
    c.n_layer = 2;
    c.n_head = 4;
    c.n_head_kv = 2;
    c.head_dim = 16;
    c.n_ff = 192;
    c.n_ctx_train = 16;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_interleaved = true;
    auto put = [&](const std::string& src, const std::string& dst) {
        const GoldenTensor& t = g.at("param." + src);
        Tensor x = Tensor::empty(DType::F32, t.shape, dst);
        for (size_t i = 0; i < t.values.size(); ++i) x.ptr<float>()[i] = static_cast<float>(t.values[i]);
        f.tensors[dst] = x;
    };
    put("tok_embeddings.weight", "token_embd.weight");
    put("norm.weight", "output_norm.weight");
    for (int l = 0; l < 2; ++l) {
        const std::string s = "layers." + std::to_string(l) + ".", d = "blk." + std::to_string(l) + ".";
        put(s + "attention_norm.weight", d + "attn_norm.weight");
        put(s + "attention.wq.weight", d + "attn_q.weight");
        put(s + "attention.wk.weight", d + "attn_k.weight");
        put(s + "attention.wv.weight", d + "attn_v.weight");
        put(s + "attention.wo.weight", d + "attn_output.weight");
        put(s + "ffn_norm.weight", d + "ffn_norm.weight");
        put(s + "feed_forward.w1.weight", d + "ffn_gate.weight");
        put(s + "feed_forward.w3.weight", d + "ffn_up.weight");
        put(s + "feed_forward.w2.weight", d + "ffn_down.weight");
    }
    return f;
}


}  // namespace llmforge::test
