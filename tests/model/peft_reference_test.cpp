// PEFT adapters against independent PyTorch references (tests/train/ref/peft, from
// make_peft_refs.py: a tiny Hugging Face Llama, PEFT LoRA / rsLoRA / prompt-tuning folders as PEFT
// 0.13 writes them, and float64 logits of a plain-torch re-implementation of transformers' Llama
// forward with PEFT's LoRA and prompt-tuning semantics).
//
// Checked here: LoRA logits through SeqBatch::delta (also with the base held in the interleaved
// RoPE row order, in memory and after `llmforge convert` to GGUF), merged weights, prompt-tuning
// logits through SeqBatch::embd, that write_adapter produces the files PEFT reads (tensor names,
// shapes, dtypes, config keys), and one-line errors for adapters that do not fit the base.
// (The 10-step training trajectory, expected_trajectory.json, is checked by the trainer's tests.)
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "core/thread_pool.h"
#include "io/safetensors.h"
#include "model/adapter.h"
#include "model/low_rank.h"
#include "model/model.h"
#include "test_util.h"

namespace llmforge {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Rows = std::vector<std::vector<double>>;

std::string ref_dir(const std::string& name = "") {
    const char* src = std::getenv("LLMFORGE_SRC");
    const std::string d = std::string(src ? src : ".") + "/tests/train/ref/peft";
    return name.empty() ? d : d + "/" + name;
}

json read_json(const std::string& path) {
    return json::parse(test::read_file(path));
}

// max over rows of (max |a - b| over the row / max |b| over the row), as arch_reference_test.
double logits_err(const std::vector<float>& a, const Rows& b) {
    double worst = 0;
    for (size_t t = 0; t < b.size(); ++t) {
        double md = 0, mr = 0;
        for (size_t v = 0; v < b[t].size(); ++v) {
            md = std::max(md, std::abs(a[t * b[t].size() + v] - b[t][v]));
            mr = std::max(mr, std::abs(b[t][v]));
        }
        worst = std::max(worst, md / mr);
    }
    return worst;
}

// Rounding: f32 weights and activations against float64 over the same f32 weights.
constexpr double kLogitTol = 2e-5;

struct LoraRef {
    std::vector<int32_t> tokens;
    Rows base, lora, rslora;
};

LoraRef lora_ref() {
    const json j = read_json(ref_dir("expected_lora.json"));
    return {j.at("tokens").get<std::vector<int32_t>>(), j.at("base_logits").get<Rows>(),
            j.at("lora_logits").get<Rows>(), j.at("lora_rslora_logits").get<Rows>()};
}

// Logits (T, V) of all `tokens` from position 0, with an optional delta.
std::vector<float> run(const Model& m, const std::vector<int32_t>& tokens, const LinearDelta* delta,
                       bool invariant = false) {
    ThreadPool pool(2);
    ForwardScratch s;
    s.batch_invariant = invariant;
    auto mem = m.new_memory(64);
    const int64_t T = static_cast<int64_t>(tokens.size());
    std::vector<float> out(static_cast<size_t>(T * m.config().n_vocab));
    SeqBatch b;
    b.cache = mem.get();
    b.tokens = tokens.data();
    b.n = T;
    b.logits = out.data();
    b.n_out = T;
    b.delta = delta;
    m.forward_batch(&b, 1, pool, s);
    return out;
}

// The error message of fn(), "" when it does not throw llmforge::Error.
template <class F>
std::string error_of(F&& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "";
}

void report(const char* what, double err) {
    std::printf("[peft-ref] %-44s max rel err %.3g\n", what, err);
}

class PeftReference : public testing::Test {
  protected:
    void SetUp() override {
        ASSERT_TRUE(fs::exists(ref_dir("expected_lora.json")))
            << ref_dir()
            << " is missing (it is part of the repository; make_peft_refs.py writes it)";
        model_ = Model::load(ref_dir("base"));
    }
    Adapter read(const std::string& dir) const {
        return read_adapter(dir, model_->arch(), model_->config());
    }
    std::unique_ptr<Model> model_;
};

TEST_F(PeftReference, BaseConfigIsTheTinyLlama) {
    const ModelConfig& c = model_->config();
    EXPECT_EQ(c.arch, "llama");
    EXPECT_EQ(c.n_vocab, 64);
    EXPECT_EQ(c.n_embd, 32);
    EXPECT_EQ(c.n_layer, 2);
    EXPECT_EQ(c.n_head, 4);
    EXPECT_EQ(c.n_head_kv, 2);
    EXPECT_EQ(c.head_dim, 8);
    EXPECT_EQ(c.n_ff, 48);
    EXPECT_FALSE(c.rope_interleaved);  // an HF folder: rotate-half, as PEFT's adapters
}

TEST_F(PeftReference, LoraLogitsMatchPyTorch) {
    const LoraRef ref = lora_ref();
    ASSERT_EQ(ref.tokens.size(), 10u);
    ASSERT_EQ(ref.base[0].size(), 64u);
    const Adapter lora = read(ref_dir("lora"));
    const Adapter rs = read(ref_dir("lora_rslora"));
    ASSERT_EQ(lora.lora.size(), 14u);  // 7 modules x 2 layers
    ASSERT_EQ(rs.lora.size(), 4u);     // q_proj, v_proj x 2 layers
    EXPECT_DOUBLE_EQ(lora.cfg.lora_scale(), 2.0);
    EXPECT_DOUBLE_EQ(rs.cfg.lora_scale(), 4.0);  // use_rslora: alpha / sqrt(r)
    LowRankDelta d_lora, d_rs;
    add_lora(d_lora, lora, 1.0, model_->config());
    add_lora(d_rs, rs, 1.0, model_->config());
    for (bool invariant : {false, true}) {
        SCOPED_TRACE(invariant ? "batch-invariant" : "default");
        const double e_base = logits_err(run(*model_, ref.tokens, nullptr, invariant), ref.base);
        const double e_lora = logits_err(run(*model_, ref.tokens, &d_lora, invariant), ref.lora);
        const double e_rs = logits_err(run(*model_, ref.tokens, &d_rs, invariant), ref.rslora);
        EXPECT_LT(e_base, kLogitTol);
        EXPECT_LT(e_lora, kLogitTol);
        EXPECT_LT(e_rs, kLogitTol);
        if (!invariant) {
            report("base logits", e_base);
            report("base + lora logits", e_lora);
            report("base + lora_rslora logits", e_rs);
        }
    }
    // The adapter matters: the base logits are far from the LoRA reference.
    EXPECT_GT(logits_err(run(*model_, ref.tokens, nullptr), ref.lora), 0.05);
}

TEST_F(PeftReference, LoraStacksAndStaysInItsOwnRows) {
    const LoraRef ref = lora_ref();
    const Adapter lora = read(ref_dir("lora"));
    // Two halves of one adapter add up to the whole (several adapters stack).
    LowRankDelta halves;
    add_lora(halves, lora, 0.5, model_->config());
    add_lora(halves, lora, 0.5, model_->config());
    const double e_halves = logits_err(run(*model_, ref.tokens, &halves), ref.lora);
    EXPECT_LT(e_halves, kLogitTol);
    report("lora added twice at user scale 0.5", e_halves);

    // One batch, three sequences: base, LoRA, base. Each row gets only its own sequence's delta.
    LowRankDelta d;
    add_lora(d, lora, 1.0, model_->config());
    ThreadPool pool(2);
    ForwardScratch s;
    const int64_t T = static_cast<int64_t>(ref.tokens.size()), V = model_->config().n_vocab;
    std::vector<std::unique_ptr<KvMemory>> mem;
    std::vector<std::vector<float>> out(3, std::vector<float>(static_cast<size_t>(T * V)));
    SeqBatch b[3];
    for (int i = 0; i < 3; ++i) {
        mem.push_back(model_->new_memory(64));
        b[i].cache = mem.back().get();
        b[i].tokens = ref.tokens.data();
        b[i].n = T;
        b[i].logits = out[i].data();
        b[i].n_out = T;
        b[i].delta = i == 1 ? &d : nullptr;
    }
    model_->forward_batch(b, 3, pool, s);
    EXPECT_LT(logits_err(out[0], ref.base), kLogitTol);
    EXPECT_LT(logits_err(out[1], ref.lora), kLogitTol);
    EXPECT_LT(logits_err(out[2], ref.base), kLogitTol);
    report("mixed batch (base, lora, base): lora row", logits_err(out[1], ref.lora));
}

// The base with its Q/K rows in the interleaved RoPE order (what GGUF llama files hold): the
// adapter's B rows of q_proj / k_proj must be permuted on the way in.
TEST_F(PeftReference, LoraOnInterleavedBaseInMemory) {
    const LoraRef ref = lora_ref();
    ModelFiles files = open_model_files(ref_dir("base"));
    const Arch& arch = model_->arch();
    const int64_t D = files.config.head_dim;
    int permuted = 0;
    for (const NamedSpec& ns : tensor_list(arch, files.config, true)) {
        if (!ns.spec->rope_rows) continue;
        auto it = files.tensors.find(ns.name);
        ASSERT_NE(it, files.tensors.end()) << ns.name;
        const Tensor& src = it->second;
        ASSERT_EQ(src.dtype(), DType::F32);
        ASSERT_EQ(src.ndim(), 2);
        Tensor dst = Tensor::empty(DType::F32, src.shape(), ns.name);
        permute_rope_rows(src.ptr<float>(), dst.ptr<float>(), src.dim(0), src.dim(1), D, true);
        it->second = dst;
        ++permuted;
    }
    EXPECT_EQ(permuted, 4);  // attn_q, attn_k x 2 layers
    files.config.rope_interleaved = true;
    auto m = Model::from_files(std::move(files));
    ASSERT_TRUE(m->config().rope_interleaved);
    LowRankDelta d_lora, d_rs;
    add_lora(d_lora, read(ref_dir("lora")), 1.0, m->config());
    add_lora(d_rs, read(ref_dir("lora_rslora")), 1.0, m->config());
    const double e_base = logits_err(run(*m, ref.tokens, nullptr), ref.base);
    const double e_lora = logits_err(run(*m, ref.tokens, &d_lora), ref.lora);
    const double e_rs = logits_err(run(*m, ref.tokens, &d_rs), ref.rslora);
    EXPECT_LT(e_base, kLogitTol);
    EXPECT_LT(e_lora, kLogitTol);
    EXPECT_LT(e_rs, kLogitTol);
    report("interleaved base (in memory)", e_base);
    report("interleaved base + lora", e_lora);
    report("interleaved base + lora_rslora", e_rs);
    // The check can see a missing permutation: B rows left in the HF order give other logits.
    ModelConfig as_hf = m->config();
    as_hf.rope_interleaved = false;
    LowRankDelta unpermuted;
    add_lora(unpermuted, read(ref_dir("lora")), 1.0, as_hf);
    EXPECT_GT(logits_err(run(*m, ref.tokens, &unpermuted), ref.lora), 1e-3);
}

// The same through the real tool chain: `llmforge convert` to an f32 GGUF, then Model::load.
TEST_F(PeftReference, LoraOnConvertedGguf) {
    const std::string cli = test::cli_path();
    if (!fs::exists(cli)) GTEST_SKIP() << "no CLI at " << cli << " (set LLMFORGE_BIN)";
    const LoraRef ref = lora_ref();
    const std::string gguf = test::temp_dir() + "/base.gguf";
    std::string out;
    const int rc = test::run_command(
        "'" + cli + "' convert -m '" + ref_dir("base") + "' -o '" + gguf + "' --type f32 2>&1",
        &out);
    ASSERT_EQ(rc, 0) << out;
    auto m = Model::load(gguf);
    ASSERT_TRUE(m->config().rope_interleaved)
        << "a llama GGUF holds Q/K rows in the interleaved order";
    const Adapter lora = read_adapter(ref_dir("lora"), m->arch(), m->config());
    LowRankDelta d;
    add_lora(d, lora, 1.0, m->config());
    const double e_base = logits_err(run(*m, ref.tokens, nullptr), ref.base);
    const double e_lora = logits_err(run(*m, ref.tokens, &d), ref.lora);
    EXPECT_LT(e_base, kLogitTol);
    EXPECT_LT(e_lora, kLogitTol);
    report("converted GGUF base", e_base);
    report("converted GGUF base + lora", e_lora);
}

TEST_F(PeftReference, MergedWeightsMatchPyTorch) {
    const Adapter lora = read(ref_dir("lora"));
    SafetensorsFile base(ref_dir("base/model.safetensors"));
    SafetensorsFile want(ref_dir("expected_merged.safetensors"));
    ASSERT_EQ(want.tensor_infos().size(), lora.lora.size());
    const int64_t D = model_->config().head_dim;
    double worst = 0, worst_il = 0;
    for (const LoraPair& p : lora.lora) {
        const std::string name = p.site.module + ".weight";
        SCOPED_TRACE(name);
        const Tensor w0 = base.tensor(name);
        const Tensor ref = want.tensor(name);
        ASSERT_EQ(w0.shape(), (std::vector<int64_t>{p.site.out, p.site.in}));
        ASSERT_EQ(ref.shape(), w0.shape());
        const size_t n = static_cast<size_t>(w0.numel());
        std::vector<float> w(w0.ptr<float>(), w0.ptr<float>() + n);
        merge_lora(p, lora.cfg.lora_scale(), false, D, w.data());
        const double e = test::rel_err(w.data(), ref.ptr<float>(), n);
        EXPECT_LT(e, 1e-6);
        worst = std::max(worst, e);
        // The same merge into a base whose Q/K rows are interleaved, then back to the HF order.
        std::vector<float> il(n), back(n);
        if (p.site.rope_rows) {
            permute_rope_rows(w0.ptr<float>(), il.data(), p.site.out, p.site.in, D, true);
            merge_lora(p, lora.cfg.lora_scale(), true, D, il.data());
            permute_rope_rows(il.data(), back.data(), p.site.out, p.site.in, D, false);
            const double ei = test::rel_err(back.data(), ref.ptr<float>(), n);
            EXPECT_LT(ei, 1e-6);
            worst_il = std::max(worst_il, ei);
        }
    }
    report("merged weights (14 modules)", worst);
    report("merged weights, interleaved q/k", worst_il);
}

TEST_F(PeftReference, PromptTuningLogitsMatchPyTorch) {
    const json j = read_json(ref_dir("expected_prompt.json"));
    const auto tokens = j.at("tokens").get<std::vector<int32_t>>();
    const Rows want = j.at("logits").get<Rows>();
    const Adapter ad = read(ref_dir("prompt"));
    ASSERT_EQ(ad.cfg.type, PeftType::kPromptTuning);
    const int64_t N = ad.cfg.num_virtual_tokens, T = static_cast<int64_t>(tokens.size());
    ASSERT_EQ(N, j.at("num_virtual_tokens").get<int64_t>());
    ASSERT_EQ(static_cast<int64_t>(ad.prompt.size()), N * model_->config().n_embd);
    ThreadPool pool(2);
    double worst = 0;
    for (bool invariant : {false, true}) {
        SCOPED_TRACE(invariant ? "batch-invariant" : "default");
        ForwardScratch s;
        s.batch_invariant = invariant;
        auto mem = model_->new_memory(64);
        std::vector<float> out(static_cast<size_t>(T * model_->config().n_vocab));
        SeqBatch v;  // the virtual tokens at positions 0..N-1
        v.cache = mem.get();
        v.embd = ad.prompt.data();
        v.n = N;
        model_->forward_batch(&v, 1, pool, s);
        SeqBatch b;  // the real tokens at N..N+T-1
        b.cache = mem.get();
        b.tokens = tokens.data();
        b.n = T;
        b.pos0 = N;
        b.logits = out.data();
        b.n_out = T;
        model_->forward_batch(&b, 1, pool, s);
        const double e = logits_err(out, want);
        EXPECT_LT(e, kLogitTol);
        worst = std::max(worst, e);
        // Without the prompt the logits are far from the reference.
        EXPECT_GT(logits_err(run(*model_, tokens, nullptr), want), 0.05);
    }
    report("prompt tuning logits", worst);
}

// What write_adapter writes is what PEFT reads: same tensor names, shapes and dtypes, and every
// key of PEFT's adapter_config.json with the values that matter.
void expect_same_files(const std::string& ref, const std::string& ours) {
    SafetensorsFile a(ref + "/adapter_model.safetensors"), b(ours + "/adapter_model.safetensors");
    std::set<std::string> ref_names, our_names;
    for (const auto& t : a.tensor_infos()) ref_names.insert(t.name);
    for (const auto& t : b.tensor_infos()) our_names.insert(t.name);
    EXPECT_EQ(our_names, ref_names);
    for (const auto& t : a.tensor_infos()) {
        const SafetensorsTensorInfo* o = b.find_tensor(t.name);
        if (o == nullptr) continue;
        EXPECT_EQ(o->shape, t.shape) << t.name;
        EXPECT_EQ(o->dtype_name, t.dtype_name) << t.name;
        EXPECT_EQ(o->end - o->begin, t.end - t.begin) << t.name;
        const Tensor x = a.tensor(t), y = b.tensor(*o);
        EXPECT_EQ(std::memcmp(x.data(), y.data(), x.nbytes()), 0) << t.name << ": values changed";
    }
    EXPECT_EQ(b.metadata().count("format") ? b.metadata().at("format") : "", "pt");

    const json rc = read_json(ref + "/adapter_config.json"),
               oc = read_json(ours + "/adapter_config.json");
    std::string missing;
    for (const auto& [k, v] : rc.items())
        if (!oc.contains(k)) missing += " " + k;
    EXPECT_TRUE(missing.empty()) << "adapter_config.json written by write_adapter lacks PEFT keys:"
                                 << missing;
    const bool lora = rc.at("peft_type") == "LORA";
    const std::vector<std::string> keys =
        lora ? std::vector<std::string>{"peft_type",      "r",          "lora_alpha",
                                        "lora_dropout",   "use_rslora", "bias",
                                        "fan_in_fan_out", "task_type",  "use_dora"}
             : std::vector<std::string>{"peft_type",
                                        "task_type",
                                        "num_virtual_tokens",
                                        "token_dim",
                                        "num_transformer_submodules",
                                        "prompt_tuning_init"};
    for (const std::string& k : keys) {
        if (!oc.contains(k)) continue;
        EXPECT_EQ(oc.at(k), rc.at(k)) << k;  // numbers compare by value (8 == 8.0)
    }
    if (lora) {
        const auto rt = rc.at("target_modules").get<std::set<std::string>>();
        EXPECT_EQ(oc.at("target_modules").get<std::set<std::string>>(), rt);
    }
}

TEST_F(PeftReference, WrittenAdaptersAreWhatPeftReads) {
    for (const char* name : {"lora", "lora_rslora", "prompt"}) {
        SCOPED_TRACE(name);
        const Adapter ad = read(ref_dir(name));
        const std::string dir = test::temp_dir() + "/" + name;
        write_adapter(dir, ad);
        expect_same_files(ref_dir(name), dir);
        // And it reads back to the same adapter.
        const Adapter back = read(dir);
        EXPECT_EQ(back.cfg.r, ad.cfg.r);
        EXPECT_EQ(back.cfg.use_rslora, ad.cfg.use_rslora);
        EXPECT_EQ(back.cfg.lora_scale(), ad.cfg.lora_scale());
        EXPECT_EQ(back.lora.size(), ad.lora.size());
        EXPECT_EQ(back.prompt, ad.prompt);
    }
}

// --- adapters that do not fit -------------------------------------------------------------------

// A copy of ref folder `name` with adapter_config.json edited by `cfg_edit` and the tensors
// replaced by `tensors` (name -> (shape, values)) when not empty.
std::string edited_copy(
    const std::string& name, const std::function<void(json&)>& cfg_edit,
    const std::map<std::string, std::pair<std::vector<int64_t>, std::vector<float>>>& replace) {
    const std::string dir = test::temp_dir() + "/" + name;
    fs::create_directories(dir);
    json cfg = read_json(ref_dir(name) + "/adapter_config.json");
    cfg_edit(cfg);
    test::write_file(dir + "/adapter_config.json", cfg.dump(2));
    SafetensorsFile src(ref_dir(name) + "/adapter_model.safetensors");
    SafetensorsWriter w;
    w.set_metadata("format", "pt");
    std::vector<Tensor> keep;
    for (const auto& info : src.tensor_infos()) {
        auto it = replace.find(info.name);
        if (it != replace.end()) {
            const auto& [shape, values] = it->second;
            w.add_tensor(info.name, DType::F32, shape, values.data(),
                         values.size() * sizeof(float));
        } else {
            keep.push_back(src.tensor(info));
            w.add_tensor(keep.back(), info.name);
        }
    }
    w.write(dir + "/adapter_model.safetensors");
    return dir;
}

void expect_one_line(const std::string& msg) {
    EXPECT_FALSE(msg.empty()) << "expected an llmforge::Error";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
}

TEST_F(PeftReference, LoraAWithWrongInFeaturesNamesTensorAndShapes) {
    const std::string t = "base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight";
    const std::vector<float> vals(4 * 48, 0.01f);
    const std::string dir = edited_copy("lora", [](json&) {}, {{t, {{4, 48}, vals}}});
    const std::string msg = error_of([&] { read(dir); });
    expect_one_line(msg);
    EXPECT_NE(msg.find(t), std::string::npos) << msg;
    EXPECT_NE(msg.find("4x48"), std::string::npos) << msg;  // found
    EXPECT_NE(msg.find("4x32"), std::string::npos) << msg;  // expected
    std::printf("[peft-ref] error: %s\n", msg.c_str());
}

TEST_F(PeftReference, PromptWithOtherTokenDimNamesTokenDim) {
    const std::vector<float> vals(3 * 48, 0.01f);
    const std::string dir = edited_copy("prompt", [](json& c) { c["token_dim"] = 48; },
                                        {{kPromptEmbeddings, {{3, 48}, vals}}});
    const std::string msg = error_of([&] { read(dir); });
    expect_one_line(msg);
    EXPECT_NE(msg.find("token_dim"), std::string::npos) << msg;
    EXPECT_NE(msg.find("48"), std::string::npos) << msg;
    EXPECT_NE(msg.find("32"), std::string::npos) << msg;
    std::printf("[peft-ref] error: %s\n", msg.c_str());
}

TEST_F(PeftReference, UnknownTargetModuleListsKnownOnes) {
    const std::string msg = error_of([&] {
        lora_sites(model_->arch(), model_->config(), {"q_proj", "qkv_proj"}, "--lora-targets");
    });
    expect_one_line(msg);
    EXPECT_NE(msg.find("qkv_proj"), std::string::npos) << msg;
    for (const char* known :
         {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})
        EXPECT_NE(msg.find(known), std::string::npos) << known << " not listed: " << msg;
    std::printf("[peft-ref] error: %s\n", msg.c_str());
    // The PEFT matching rule: a short name, a full module path, or all-linear.
    EXPECT_EQ(lora_sites(model_->arch(), model_->config(), {"q_proj", "v_proj"}, "t").size(), 4u);
    EXPECT_EQ(
        lora_sites(model_->arch(), model_->config(), {"model.layers.1.mlp.down_proj"}, "t").size(),
        1u);
    EXPECT_EQ(lora_sites(model_->arch(), model_->config(), {"all-linear"}, "t").size(), 14u);
}

TEST_F(PeftReference, ZeroRankIsRejected) {
    const std::string dir = edited_copy("lora", [](json& c) { c["r"] = 0; }, {});
    const std::string msg = error_of([&] { read(dir); });
    expect_one_line(msg);
    EXPECT_NE(msg.find("r = 0"), std::string::npos) << msg;
    std::printf("[peft-ref] error: %s\n", msg.c_str());
}

}  // namespace
}  // namespace llmforge
