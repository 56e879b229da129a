// llmforge quantize / imatrix through the binary: every type writes a file the engine runs, the
// same bytes llama-quantize wrote for the fixtures (tests/data/quant/make_fixtures.sh), llama.cpp's
// per-tensor mixes on an 8-layer GQA shape (tests/data/quant/mix_types.json, from llama-quantize),
// other inputs (quantised GGUF, llama2.c), and bad input as one line each.
#include <gtest/gtest.h>

#include <cstring>
#include <map>
#include <sstream>

#include <nlohmann/json.hpp>

#include "cli_run.h"
#include "io/gguf.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

std::string fixture(const std::string& name) { return src_path("tests/data/quant/" + name); }

std::map<std::string, DType> types_of(const std::string& path) {
    GgufFile f(path);
    std::map<std::string, DType> m;
    for (const GgufTensorInfo& ti : f.tensor_infos()) m[ti.name] = ti.dtype;
    return m;
}

std::map<std::string, std::string> names_of(const std::map<std::string, DType>& m) {
    std::map<std::string, std::string> r;
    for (const auto& [n, t] : m) r[n] = dtype_name(t);
    return r;
}

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

// Every tensor of `ref` is in `ours` with the same type, shape and bytes.
void expect_same_tensors(const std::string& ours, const std::string& ref, const std::string& what) {
    GgufFile a(ours), b(ref);
    ASSERT_EQ(a.tensor_infos().size(), b.tensor_infos().size()) << what;
    for (const GgufTensorInfo& tb : b.tensor_infos()) {
        const GgufTensorInfo* ta = a.find_tensor(tb.name);
        ASSERT_NE(ta, nullptr) << what << " " << tb.name;
        EXPECT_EQ(ta->dtype, tb.dtype) << what << " " << tb.name;
        EXPECT_EQ(ta->shape, tb.shape) << what << " " << tb.name;
        if (ta->dtype != tb.dtype || ta->nbytes != tb.nbytes) continue;
        const Tensor x = a.tensor(*ta), y = b.tensor(tb);
        EXPECT_EQ(std::memcmp(x.data(), y.data(), tb.nbytes), 0) << what << " " << tb.name << ": bytes differ";
    }
}

struct Named {
    const char* name;
    DType base;
    uint32_t ftype;
};
// Every name --type takes, its base type and llama.cpp's general.file_type.
const Named kTypes[] = {
    {"f32", DType::F32, 0},       {"f16", DType::F16, 1},       {"bf16", DType::BF16, 32},    {"q8_0", DType::Q8_0, 7},
    {"q4_0", DType::Q4_0, 2},     {"q4_1", DType::Q4_1, 3},     {"q5_0", DType::Q5_0, 8},     {"q5_1", DType::Q5_1, 9},
    {"q2_k", DType::Q2_K, 10},    {"q3_k", DType::Q3_K, 12},    {"q4_k", DType::Q4_K, 15},    {"q5_k", DType::Q5_K, 17},
    {"q6_k", DType::Q6_K, 18},    {"q3_k_s", DType::Q3_K, 11},  {"q3_k_m", DType::Q3_K, 12},  {"q3_k_l", DType::Q3_K, 13},
    {"q4_k_s", DType::Q4_K, 14},  {"q4_k_m", DType::Q4_K, 15},  {"q5_k_s", DType::Q5_K, 16},  {"q5_k_m", DType::Q5_K, 17},
    {"q2_k_s", DType::Q2_K, 21},
};

TEST(QuantizeCli, EveryTypeWritesAFileTheEngineRuns) {
    const std::string dir = temp_dir(), in = fixture("tiny-f32.gguf"), im = fixture("tiny.imatrix.dat");
    for (const Named& t : kTypes) {
        const std::string name = t.name;
        const bool mix_only = name.size() > 4 && name[4] == '_';  // q3_k_s, ..., q2_k_s: pure is its base's
        if (!mix_only) {
            // --pure: every matrix in the base type, 1-D tensors f32; the engine runs the file.
            const std::string out = dir + "/pure-" + name + ".gguf";
            CliRun r = run_cli("quantize -q -m " + q(in) + " -o " + q(out) + " --type " + name + " --pure --imatrix " + q(im));
            ASSERT_EQ(r.rc, 0) << name << ": " << r.err;
            GgufFile f(out);
            EXPECT_EQ(f.get_int("general.file_type"), t.ftype) << name;
            for (const GgufTensorInfo& ti : f.tensor_infos())
                EXPECT_EQ(ti.dtype, ti.shape.size() == 1 ? DType::F32 : t.base) << name << " " << ti.name;
            CliRun g = run_cli("generate -m " + q(out) + " -p 'abc' -n 3 --temp 0");
            EXPECT_EQ(g.rc, 0) << name << ": " << g.err;
        }
        if (!dtype_info(t.base).quantized) continue;  // f32 / f16 / bf16: no mix
        // The mix: what --dry-run says is what is written; output.weight gets q6_k but in q8_0.
        const std::string mix = dir + "/mix-" + name + ".gguf";
        const std::string args = "-m " + q(in) + " --type " + name + " --imatrix " + q(im);
        CliRun w = run_cli("quantize -q " + args + " -o " + q(mix));
        ASSERT_EQ(w.rc, 0) << name << ": " << w.err;
        EXPECT_EQ(GgufFile(mix).get_int("general.file_type"), t.ftype) << name;
        EXPECT_EQ(names_of(types_of(mix)), dry_run(run_cli("quantize " + args + " --dry-run"))) << name;
        EXPECT_EQ(types_of(mix).at("output.weight"), t.base == DType::Q8_0 ? DType::Q8_0 : DType::Q6_K) << name;
    }
    // q2_k_s --pure is refused, as by llama.cpp: output.weight in q2_k has no importance data.
    expect_one_line_error(run_cli("quantize -m " + q(in) + " -o " + q(dir + "/x.gguf") + " --type q2_k_s --pure --imatrix " +
                                  q(im)),
                          "output.weight");
    // --keep-output-f16.
    const std::string k = dir + "/keep.gguf";
    ASSERT_EQ(run_cli("quantize -q -m " + q(in) + " -o " + q(k) + " --type q4_k_m --keep-output-f16").rc, 0);
    EXPECT_EQ(types_of(k).at("output.weight"), DType::F16);
    EXPECT_EQ(types_of(k).at("blk.0.attn_q.weight"), DType::Q4_K);
}

TEST(QuantizeCli, SameBytesAsLlamaQuantize) {
    const std::string dir = temp_dir(), in = fixture("tiny-f32.gguf"), im = fixture("tiny.imatrix.dat");
    for (const char* t : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K", "F16", "BF16"}) {
        const std::string out = dir + "/" + t + ".gguf";
        CliRun r = run_cli("quantize -q --pure -m " + q(in) + " -o " + q(out) + " --type " + t);
        ASSERT_EQ(r.rc, 0) << t << ": " << r.err;
        expect_same_tensors(out, fixture(std::string("tiny-") + t + ".gguf"), t);
    }
    for (const char* t : {"Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q4_K_S", "Q5_K_S", "Q6_K"}) {
        const std::string out = dir + "/" + t + "-imat.gguf";
        CliRun r = run_cli("quantize -q --pure -m " + q(in) + " -o " + q(out) + " --type " + t + " --imatrix " + q(im));
        ASSERT_EQ(r.rc, 0) << t << ": " << r.err;
        expect_same_tensors(out, fixture(std::string("tiny-") + t + "-imat.gguf"), std::string(t) + " imatrix");
    }
}

TEST(QuantizeCli, MixesChooseWhatLlamaQuantizeChooses) {
    const nlohmann::json j = nlohmann::json::parse(read_file(fixture("mix_types.json")));
    const std::string dir = temp_dir(), in = dir + "/gqa8.gguf";
    // The shape llama-quantize saw (weights do not change the choice).
    ASSERT_EQ(run_cli("init-model --dim 256 --layers 8 --heads 8 --kv-heads 2 --ffn 512 --vocab 512 --seed 3 -o " + q(in))
                  .rc,
              0);
    auto expected = [](const nlohmann::json& m) {
        std::map<std::string, std::string> r;
        for (auto it = m.begin(); it != m.end(); ++it) r[it.key()] = it.value().get<std::string>();
        return r;
    };
    ASSERT_GE(j["types"].size(), 12u);
    for (auto it = j["types"].begin(); it != j["types"].end(); ++it) {
        CliRun r = run_cli("quantize -m " + q(in) + " --type " + it.key() + " --dry-run");
        ASSERT_EQ(r.rc, 0) << it.key() << ": " << r.err;
        EXPECT_EQ(dry_run(r), expected(it.value())) << it.key();
    }
    // The written files hold those types.
    for (const char* mix : {"q4_k_m", "q3_k_m", "q2_k"}) {
        const std::string out = dir + "/" + mix + ".gguf";
        CliRun r = run_cli("quantize -q -m " + q(in) + " -o " + q(out) + " --type " + mix);
        ASSERT_EQ(r.rc, 0) << mix << ": " << r.err;
        EXPECT_EQ(names_of(types_of(out)), expected(j["types"][mix])) << mix;
    }
    // With an importance matrix (ours, over the same text as llama-imatrix's): q4_0 / q5_0 take
    // q4_1 / q5_1 for the first ffn_down, q2_k_s needs one.
    const std::string im = dir + "/im.gguf";
    CliRun c = run_cli("imatrix -m " + q(in) + " -f " + q(fixture("calib.txt")) + " -o " + q(im) + " -c 128 --chunks 2");
    ASSERT_EQ(c.rc, 0) << c.err;
    for (auto it = j["imatrix"].begin(); it != j["imatrix"].end(); ++it) {
        CliRun r = run_cli("quantize -m " + q(in) + " --type " + it.key() + " --imatrix " + q(im) + " --dry-run");
        ASSERT_EQ(r.rc, 0) << it.key() << ": " << r.err;
        EXPECT_EQ(dry_run(r), expected(it.value())) << it.key() << " with an imatrix";
    }
}

TEST(QuantizeCli, OtherInputs) {
    const std::string dir = temp_dir();
    // A quantised GGUF: dequantised and requantised; a tensor already in the type keeps its bytes.
    const std::string same = dir + "/same.gguf", other = dir + "/other.gguf";
    ASSERT_EQ(run_cli("quantize -q --pure -m " + q(fixture("tiny-Q8_0.gguf")) + " -o " + q(same) + " --type q8_0").rc, 0);
    expect_same_tensors(same, fixture("tiny-Q8_0.gguf"), "q8_0 -> q8_0");
    CliRun r = run_cli("quantize -q -m " + q(fixture("tiny-Q6_K.gguf")) + " -o " + q(other) + " --type q4_0");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(types_of(other).at("blk.0.attn_q.weight"), DType::Q4_0);
    EXPECT_EQ(run_cli("generate -m " + q(other) + " -p 'abc' -n 3 --temp 0").rc, 0);
    // A llama2.c checkpoint (rows of 64 take q8_0, not the k-quants' 256; ffn_down's rows of 172
    // take neither: f16 with --allow-fallback, an error without).
    const std::string stories = asset("llama2c-stories260K/stories260K.bin"), tok = asset("llama2c-stories260K/tok512.bin");
    if (stories.empty() || tok.empty()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K";
    const std::string s8 = dir + "/stories-q8_0.gguf";
    expect_one_line_error(run_cli("quantize -q -m " + q(stories) + " --tokenizer " + q(tok) + " -o " + q(s8) + " --type q8_0"),
                          "blk.0.ffn_down.weight");
    r = run_cli("quantize -q -m " + q(stories) + " --tokenizer " + q(tok) + " -o " + q(s8) + " --type q8_0 --allow-fallback");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(types_of(s8).at("blk.0.ffn_down.weight"), DType::F16);
    EXPECT_EQ(types_of(s8).at("blk.0.ffn_up.weight"), DType::Q8_0);
    CliRun g = run_cli("generate -m " + q(s8) + " -p 'Once upon a time' -n 8 --temp 0");
    EXPECT_EQ(g.rc, 0) << g.err;
    EXPECT_FALSE(g.out.empty());
}

TEST(QuantizeCli, BadInputIsOneLine) {
    const std::string dir = temp_dir(), in = fixture("tiny-f32.gguf");
    const std::string out = " -o " + q(dir + "/x.gguf");
    expect_one_line_error(run_cli("quantize -m " + q(in) + out + " --type q4_x"), "q4_x");
    expect_one_line_error(run_cli("quantize -m " + q(dir + "/nope.gguf") + out + " --type q8_0"), "nope.gguf");
    expect_one_line_error(run_cli("quantize -m " + q(in) + out + " --type q8_0 --imatrix " + q(dir + "/nope.dat")),
                          "nope.dat");
    expect_one_line_error(run_cli("quantize -m " + q(in) + out + " --type q2_k_s"), "importance matrix");
    // Rows that do not fit the block: named, with their length, the block and the way out.
    const std::string w = dir + "/w288.gguf";
    ASSERT_EQ(run_cli("init-model --dim 288 --layers 1 --heads 6 --ffn 768 --vocab 320 -o " + q(w)).rc, 0);
    CliRun r = run_cli("quantize -m " + q(w) + out + " --type q4_k_s");
    expect_one_line_error(r, "token_embd.weight");
    for (const char* part : {"288", "256", "--allow-fallback"}) EXPECT_NE(r.err.find(part), std::string::npos) << r.err;
    const std::string fb = dir + "/fb.gguf";
    r = run_cli("quantize -q -m " + q(w) + " -o " + q(fb) + " --type q4_k_s --allow-fallback");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("stored as q5_0"), std::string::npos) << r.err;
    EXPECT_EQ(types_of(fb).at("blk.0.attn_q.weight"), DType::Q5_0);  // llama.cpp's q4_k fallback
    EXPECT_EQ(run_cli("generate -m " + q(fb) + " -p 'abc' -n 3 --temp 0").rc, 0);
    // An importance matrix of another model.
    expect_one_line_error(run_cli("quantize -m " + q(w) + out + " --type q4_0 --imatrix " + q(fixture("tiny.imatrix.dat"))),
                          "another model");
    // imatrix: a text shorter than one chunk, and a file that is not an importance matrix.
    write_file(dir + "/short.txt", "a few words");
    expect_one_line_error(run_cli("imatrix -m " + q(in) + " -f " + q(dir + "/short.txt") + " -o " + q(dir + "/i.dat")),
                          "fewer than one chunk");
    expect_one_line_error(run_cli("quantize -m " + q(in) + out + " --type q4_0 --imatrix " + q(dir + "/short.txt")),
                          "short.txt");
}

}  // namespace
}  // namespace llmforge::test
