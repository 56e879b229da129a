// llmforge quantize on a deepseek2 file chooses llama-quantize's per-tensor types: MoE files take
// an ffn_down* tensor's layer from its name (llama.cpp's n_expert > 1 rule; a running counter
// would see three ffn_down tensors per layer), attn_kv_b counts as an attention V tensor, the
// router stays f32. tests/data/deepseek/mix_types.json was written by llama-quantize
// (c392e5094) for the 27-layer shape of mix.json (tests/data/deepseek/make_fixtures.sh); the
// weights do not change the choice, so the test makes the shape with init-model. The q4_k_m file
// is also written (3-D expert tensors quantised per expert row) and run.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "io/gguf.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

std::string fixture(const std::string& name) { return src_path("tests/data/deepseek/" + name); }

// `--dry-run` lines: name \t shape \t type.
std::map<std::string, std::string> dry_run(const CliRun& r) {
    std::map<std::string, std::string> m;
    std::istringstream ss(r.out);
    std::string line;
    while (std::getline(ss, line)) {
        const size_t a = line.find('\t'), b = line.rfind('\t');
        if (a == std::string::npos || a == b) continue;
        m[line.substr(0, a)] = line.substr(b + 1);
    }
    return m;
}

std::map<std::string, std::string> expected(const nlohmann::json& m) {
    std::map<std::string, std::string> r;
    for (auto it = m.begin(); it != m.end(); ++it) r[it.key()] = it.value().get<std::string>();
    return r;
}

TEST(DeepSeekQuantizeCli, MixesChooseWhatLlamaQuantizeChooses) {
    const nlohmann::json j = nlohmann::json::parse(read_file(fixture("mix_types.json")));
    const std::string dir = temp_dir(), in = dir + "/mix.gguf";
    CliRun init = run_cli("init-model --hf-config " + q(fixture("mix.json")) + " --type q8_0 --seed 1 -o " + q(in));
    ASSERT_EQ(init.rc, 0) << init.err;
    ASSERT_GE(j["types"].size(), 11u);
    for (auto it = j["types"].begin(); it != j["types"].end(); ++it) {
        CliRun r = run_cli("quantize -m " + q(in) + " --type " + it.key() + " --dry-run");
        ASSERT_EQ(r.rc, 0) << it.key() << ": " << r.err;
        const auto want = expected(it.value());
        ASSERT_EQ(want.size(), 377u) << it.key();
        EXPECT_EQ(dry_run(r), want) << it.key();
    }
    // Not vacuous: q4_k_m puts q6_k on ffn_down_exps of the layers use_more_bits picks by name
    // (0-2, 5, 8, ... 23-26 of 27) and q4_k on the others.
    const auto& q4 = j["types"]["q4_k_m"];
    EXPECT_EQ(q4["blk.5.ffn_down_exps.weight"], "q6_k");
    EXPECT_EQ(q4["blk.6.ffn_down_exps.weight"], "q4_k");
    EXPECT_EQ(q4["blk.26.ffn_down_exps.weight"], "q6_k");
    EXPECT_EQ(q4["blk.1.ffn_gate_inp.weight"], "f32");

    // The q4_k_m file holds those types and runs.
    const std::string out = dir + "/q4_k_m.gguf", logits = dir + "/logits.f32";
    CliRun r = run_cli("quantize -q -m " + q(in) + " -o " + q(out) + " --type q4_k_m");
    ASSERT_EQ(r.rc, 0) << r.err;
    GgufFile f(out);
    std::map<std::string, std::string> got;
    for (const GgufTensorInfo& ti : f.tensor_infos()) got[ti.name] = dtype_name(ti.dtype);
    EXPECT_EQ(got, expected(q4));
    CliRun l = run_cli("logits -m " + q(out) + " --ids '1 2 3 4' -t 2 -o " + q(logits));
    ASSERT_EQ(l.rc, 0) << l.err;
    const std::string bytes = read_file(logits);
    ASSERT_EQ(bytes.size(), 4u * 512u * sizeof(float));
    std::vector<float> v(bytes.size() / sizeof(float));
    std::memcpy(v.data(), bytes.data(), bytes.size());
    for (float x : v) ASSERT_TRUE(std::isfinite(x));
}

}  // namespace
}  // namespace llmforge::test
