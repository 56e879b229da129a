// AdapterSet and the Context's adapter path (runtime/adapters.h, runtime/context.h) on the project's
// default model (models/default, a Hugging Face llama folder): "DIR[:scale]" specs, LoRA logits
// against weights merged in f32, stacking with scales, a zero scale running exactly as the base, a
// prompt adapter's virtual rows against one hand-built batch of embedding rows (clear/truncate
// included), perplexity with adapters, and the one-line errors.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <random>
#include <set>

#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "model/adapter.h"
#include "runtime/adapters.h"
#include "runtime/context.h"
#include "runtime/perplexity.h"
#include "test_util.h"
#include "random_adapter.h"

using namespace llmforge;
using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

std::string default_model() {
    const char* src = std::getenv("LLMFORGE_SRC");
    const std::string p = std::string(src ? src : ".") + "/models/default";
    return fs::is_regular_file(p + "/model.safetensors") ? p : "";
}

#define REQUIRE_DEFAULT_MODEL(var)                                                                  \
    const std::string var = default_model();                                                        \
    if (var.empty()) GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: models/default (set LLMFORGE_SRC)"

std::string write(const Adapter& ad, const std::string& name) {
    static const std::string dir = temp_dir();
    const std::string p = dir + "/" + name;
    write_adapter(p, ad);
    return p;
}

std::vector<float> logits(const Model& m, const std::vector<int32_t>& ids, const SeqAdapter& a = {}) {
    ContextParams cp;
    cp.n_ctx = static_cast<int64_t>(ids.size()) + a.n_virtual;
    cp.n_threads = 2;
    cp.adapter = a;
    Context ctx(m, cp);
    return ctx.decode_all(ids);
}

// The base with each (adapter, scale)'s LoRA merged into its f32 weights.
std::unique_ptr<Model> merged_model(const std::string& path, const std::vector<std::pair<const Adapter*, double>>& ads) {
    ModelFiles files = open_model_files(path);
    const ModelConfig cfg = Model::validate(files);
    const Arch& arch = arch_of(cfg.arch, path);
    std::set<std::string> copied;
    for (const auto& [ad, scale] : ads) {
        for (const LoraPair& p : ad->lora) {
            const std::string name = arch.find_slot(p.site.w.slot)->gguf_name(p.site.w.layer);
            Tensor& t = files.tensors.at(name);
            if (!copied.count(name)) {  // an owned f32 copy (the file's tensors are read-only maps)
                Tensor c = Tensor::empty(DType::F32, t.shape(), name);
                for (int64_t r = 0; r < t.shape()[0]; ++r)
                    kernels::kernels().dequantize_row[static_cast<int>(t.dtype())](t.row(r), c.ptr<float>() + r * t.shape()[1],
                                                                                  t.shape()[1]);
                t = c;
                copied.insert(name);
            }
            merge_lora(p, ad->cfg.lora_scale() * scale, cfg.rope_interleaved, cfg.head_dim, t.ptr<float>());
        }
    }
    return Model::from_files(std::move(files));
}

const std::vector<int32_t> kIds = {1, 57, 300, 1021, 9, 44, 2000, 13, 5};

TEST(AdapterSpec, ParsesDirAndScale) {
    AdapterSpec s = parse_adapter_spec("some/dir");
    EXPECT_EQ(s.dir, "some/dir");
    EXPECT_EQ(s.scale, 1.0);
    EXPECT_FALSE(s.scale_given);
    s = parse_adapter_spec("some/dir:0.25");
    EXPECT_EQ(s.dir, "some/dir");
    EXPECT_EQ(s.scale, 0.25);
    EXPECT_TRUE(s.scale_given);
    EXPECT_EQ(parse_adapter_spec("d:-2").scale, -2.0);
    EXPECT_EQ(parse_adapter_spec("d:0").scale, 0.0);
    // An existing folder whose name holds ':' is taken whole.
    const std::string odd = temp_dir() + "/a:1";
    fs::create_directories(odd);
    s = parse_adapter_spec(odd);
    EXPECT_EQ(s.dir, odd);
    EXPECT_FALSE(s.scale_given);
    for (const char* bad : {"d:abc", "d:", "d:1.5x", "d:inf", "d:nan", ":0.5", "d:1e999"}) {
        try {
            parse_adapter_spec(bad);
            ADD_FAILURE() << bad << " accepted";
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
            EXPECT_NE(msg.find(bad), std::string::npos) << msg;
        }
    }
}

TEST(AdapterSet, LoraEqualsMergedWeightsAndStacks) {
    REQUIRE_DEFAULT_MODEL(path);
    auto m = Model::load(path);
    const Adapter a = make_lora(*m, {"q_proj", "k_proj", "v_proj", "o_proj"}, 4, 8, 100);
    const Adapter b = make_lora(*m, {"gate_proj", "up_proj", "down_proj", "q_proj"}, 2, 4, 200);
    const std::string da = write(a, "a"), db = write(b, "b");
    const int64_t V = m->config().n_vocab;
    const std::vector<float> base = logits(*m, kIds);
    {
        const AdapterSet set = AdapterSet::load({da}, *m);
        ASSERT_NE(set.delta(), nullptr);
        EXPECT_EQ(set.n_virtual(), 0);
        const auto got = logits(*m, kIds, set.seq_adapter());
        auto ref_m = merged_model(path, {{&set.entries()[0].adapter, 1.0}});
        const auto ref = logits(*ref_m, kIds);
        EXPECT_LT(rel_err(got.data(), ref.data(), ref.size()), 1e-5);
        EXPECT_GT(rel_err(got.data(), base.data(), base.size()), 1e-2) << "the adapter changes the logits";
    }
    {
        const AdapterSet set = AdapterSet::load({da + ":0.5", db + ":1.5"}, *m);
        ASSERT_EQ(set.entries().size(), 2u);
        EXPECT_EQ(set.entries()[1].scale, 1.5);
        const auto got = logits(*m, kIds, set.seq_adapter());
        auto ref_m = merged_model(path, {{&set.entries()[0].adapter, 0.5}, {&set.entries()[1].adapter, 1.5}});
        const auto ref = logits(*ref_m, kIds);
        EXPECT_LT(rel_err(got.data(), ref.data(), ref.size()), 1e-5);
    }
    {
        // Scale 0: no term at all, exactly the base.
        const AdapterSet set = AdapterSet::load({da + ":0"}, *m);
        EXPECT_EQ(set.delta(), nullptr);
        const auto got = logits(*m, kIds, set.seq_adapter());
        EXPECT_EQ(got, base);
    }
    EXPECT_EQ(static_cast<int64_t>(base.size()), V * static_cast<int64_t>(kIds.size()));
}

TEST(AdapterSet, PromptAdapterRowsComeFirst) {
    REQUIRE_DEFAULT_MODEL(path);
    auto m = Model::load(path);
    const int64_t N = 5, C = m->config().n_embd, V = m->config().n_vocab;
    const int64_t n = static_cast<int64_t>(kIds.size());
    const std::string dp = write(make_prompt(*m, N, 7), "p");
    const AdapterSet set = AdapterSet::load({dp}, *m);
    EXPECT_EQ(set.delta(), nullptr);
    ASSERT_EQ(set.n_virtual(), N);
    // Reference: one batch of N + n embedding rows (the virtual rows, then the tokens' own rows).
    std::vector<float> rows(static_cast<size_t>((N + n) * C));
    std::copy(set.virtual_rows().begin(), set.virtual_rows().end(), rows.begin());
    const Tensor& table = m->tok_embd();
    for (int64_t t = 0; t < n; ++t)
        kernels::kernels().dequantize_row[static_cast<int>(table.dtype())](table.row(kIds[t]), rows.data() + (N + t) * C, C);
    auto cache = m->new_memory(N + n);
    std::vector<float> ref(static_cast<size_t>(n * V));
    SeqBatch sq;
    sq.cache = cache.get();
    sq.n = N + n;
    sq.embd = rows.data();
    sq.logits = ref.data();
    sq.n_out = n;
    ThreadPool pool(2);
    ForwardScratch scratch;
    m->forward_batch(&sq, 1, pool, scratch);

    ContextParams cp;
    cp.n_ctx = N + n + 4;
    cp.n_threads = 2;
    cp.n_batch = 3;  // virtual rows and tokens both in several chunks
    cp.adapter = set.seq_adapter();
    Context ctx(*m, cp);
    const auto got = ctx.decode_all(kIds);
    EXPECT_LT(rel_err(got.data(), ref.data(), ref.size()), 1e-5);
    EXPECT_EQ(ctx.n_past(), N + n);
    EXPECT_EQ(ctx.n_tokens(), n);
    EXPECT_GT(rel_err(got.data(), logits(*m, kIds).data(), got.size()), 1e-2);
    // clear() keeps the virtual rows; truncate(0) drops them and the next decode runs them again.
    ctx.clear();
    EXPECT_EQ(ctx.n_past(), N);
    EXPECT_EQ(ctx.decode_all(kIds), got);
    ctx.truncate(0);
    EXPECT_EQ(ctx.decode_all(kIds), got);
    // Continuing token by token after the first half gives the same last row.
    ctx.truncate(N + 4);
    std::vector<int32_t> rest(kIds.begin() + 4, kIds.end());
    const auto& last = ctx.decode(rest);
    EXPECT_LT(rel_err(last.data(), ref.data() + (n - 1) * V, V), 1e-5);

    // A prompt adapter and a LoRA together.
    const std::string da = write(make_lora(*m, {"v_proj"}, 2, 2, 9), "v");
    const AdapterSet both = AdapterSet::load({da, dp}, *m);
    EXPECT_NE(both.delta(), nullptr);
    EXPECT_EQ(both.n_virtual(), N);
    EXPECT_NE(logits(*m, kIds, both.seq_adapter()), got);
}

TEST(AdapterSet, PerplexityWithAdapters) {
    REQUIRE_DEFAULT_MODEL(path);
    auto m = Model::load(path);
    std::vector<int32_t> toks;
    for (int i = 0; i < 40; ++i) toks.push_back(static_cast<int32_t>((i * 37 + 11) % 2000));
    const PerplexityResult base = perplexity(*m, toks, 16, 2);
    const std::string dp = write(make_prompt(*m, 3, 21), "pp");
    const AdapterSet set = AdapterSet::load({dp}, *m);
    const PerplexityResult withp = perplexity(*m, toks, 16, 2, nullptr, set.seq_adapter());
    EXPECT_EQ(withp.n_scored, base.n_scored);
    EXPECT_EQ(withp.n_windows, base.n_windows);
    EXPECT_NE(withp.ppl, base.ppl);
    const AdapterSet zero = AdapterSet::load({write(make_lora(*m, {"q_proj"}, 2, 2, 5), "z") + ":0"}, *m);
    const PerplexityResult same = perplexity(*m, toks, 16, 2, nullptr, zero.seq_adapter());
    EXPECT_EQ(same.ppl, base.ppl);
}

TEST(AdapterSet, BadInputIsOneLine) {
    REQUIRE_DEFAULT_MODEL(path);
    auto m = Model::load(path);
    const std::string p1 = write(make_prompt(*m, 2, 1), "p1"), p2 = write(make_prompt(*m, 3, 2), "p2");
    const std::string la = write(make_lora(*m, {"q_proj"}, 2, 2, 3), "la");
    // A LoRA made for a base with another width.
    Adapter other = make_lora(*m, {"q_proj"}, 2, 2, 4);
    for (LoraPair& p : other.lora) {
        p.site.in = 128;
        p.a.resize(static_cast<size_t>(p.r * 128));
    }
    const std::string lo = write(other, "other");
    auto expect_error = [&](const std::vector<std::string>& specs, const std::string& want) {
        try {
            AdapterSet::load(specs, *m);
            ADD_FAILURE() << "accepted: " << specs.back();
        } catch (const Error& e) {
            const std::string msg = e.what();
            EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
            EXPECT_NE(msg.find(want), std::string::npos) << msg;
        }
    };
    expect_error({p1, p2}, "second prompt-tuning adapter");
    expect_error({p1 + ":0.5"}, "takes no scale");
    expect_error({la + ":abc"}, "abc");
    expect_error({lo}, "another base model");
    expect_error({temp_dir() + "/missing"}, "not a folder");
    // Two prompt adapters may not be given even with a LoRA between them.
    expect_error({p1, la, p2}, "second prompt-tuning adapter");
}

}  // namespace
