// generate --draft-model M [--draft-n K] and --speculative mtp on the command line: the text is
// exactly plain `generate`'s (greedy, and seeded sampling) for a Llama pair, DeepSeek-V2-Lite- and
// V3-shaped pairs (MLA + MoE in the verification forward) and the real TinyStories 260K model;
// a model drafting for itself has every token accepted; the statistics line is printed; a draft
// with another vocabulary and --speculative mtp on a model without MTP weights are one-line
// errors. Models are made at test time with init-model (random weights, a synthetic vocabulary
// shared with --vocab-from).
#include <gtest/gtest.h>

#include <regex>

#include "cli_run.h"

namespace llmforge::test {
namespace {

// A DeepSeek-V2-Lite-shaped config (no q_lora, softmax routing, 1 leading dense block) and a
// V3-shaped one (q_lora, sigmoid + selection bias, 2 groups, normalised and scaled weights).
const char* kV2Lite =
    R"({"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2","vocab_size":512,"hidden_size":64,
"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,
"n_shared_experts":2,"n_routed_experts":8,"routed_scaling_factor":1.0,"kv_lora_rank":32,"q_lora_rank":null,
"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"greedy","n_group":1,"topk_group":1,
"num_experts_per_tok":3,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":false,"scoring_func":"softmax",
"max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,"tie_word_embeddings":false,"hidden_act":"silu"})";
const char* kV3 =
    R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":512,"hidden_size":64,
"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,
"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":32,"q_lora_rank":32,
"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"noaux_tc","n_group":2,"topk_group":1,
"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,"scoring_func":"sigmoid",
"max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,"tie_word_embeddings":false,"hidden_act":"silu"})";
// A smaller DeepSeek draft: 2 layers, 2 heads, 4 experts.
const char* kDsDraft =
    R"({"architectures":["DeepseekV2ForCausalLM"],"model_type":"deepseek_v2","vocab_size":512,"hidden_size":32,
"intermediate_size":64,"moe_intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":2,"num_key_value_heads":2,
"n_shared_experts":1,"n_routed_experts":4,"routed_scaling_factor":1.0,"kv_lora_rank":32,"q_lora_rank":null,
"qk_rope_head_dim":8,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"greedy","n_group":1,"topk_group":1,
"num_experts_per_tok":2,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":false,"scoring_func":"softmax",
"max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,"tie_word_embeddings":false,"hidden_act":"silu"})";

// The models, made once.
struct Models {
    std::string dir, llama, llama_draft, other_vocab, other_size, v2l, v2l_q8, v3, ds_draft, v3_mtp;
};

void make(const std::string& args) {
    const CliRun r = run_cli("init-model " + args);
    ASSERT_EQ(r.rc, 0) << args << "\n" << r.err;
}

const Models& models() {
    static Models m = [] {
        Models m;
        m.dir = temp_dir();
        auto p = [&](const char* f) { return m.dir + "/" + f; };
        m.llama = p("llama.gguf");
        m.llama_draft = p("llama-draft.gguf");
        m.other_vocab = p("other-vocab.gguf");
        m.other_size = p("other-size.gguf");
        m.v2l = p("v2l.gguf");
        m.v2l_q8 = p("v2l-q8.gguf");
        m.v3 = p("v3.gguf");
        m.ds_draft = p("ds-draft.gguf");
        m.v3_mtp = p("v3-mtp.gguf");
        write_file(p("v2l.json"), kV2Lite);
        write_file(p("v3.json"), kV3);
        std::string mtp = kV3;  // the same with one MTP module
        mtp.replace(mtp.find("\"max_position_embeddings\""), 0, "\"num_nextn_predict_layers\":1,");
        write_file(p("v3-mtp.json"), mtp);
        write_file(p("ds-draft.json"), kDsDraft);
        make("--dim 64 --layers 2 --heads 4 --ffn 128 --vocab 512 --type q8_0 --seed 1 -o " + q(m.llama));
        make("--dim 32 --layers 1 --heads 2 --ffn 64 --vocab 512 --seed 2 --vocab-from " + q(m.llama) + " -o " +
             q(m.llama_draft));
        // The same size, another synthetic vocabulary (its pieces depend on the seed).
        make("--dim 32 --layers 1 --heads 2 --ffn 64 --vocab 512 --seed 3 -o " + q(m.other_vocab));
        make("--dim 32 --layers 1 --heads 2 --ffn 64 --vocab 600 --seed 1 -o " + q(m.other_size));
        make("--hf-config " + q(p("v2l.json")) + " --seed 1 -o " + q(m.v2l));
        make("--hf-config " + q(p("v2l.json")) + " --seed 1 --type q8_0 -o " + q(m.v2l_q8));
        make("--hf-config " + q(p("v3.json")) + " --seed 1 --vocab-from " + q(m.v2l) + " -o " + q(m.v3));
        make("--hf-config " + q(p("v3-mtp.json")) + " --seed 1 --vocab-from " + q(m.v2l) + " -o " + q(m.v3_mtp));
        make("--hf-config " + q(p("ds-draft.json")) + " --seed 4 --vocab-from " + q(m.v2l) + " -o " + q(m.ds_draft));
        return m;
    }();
    return m;
}

struct Stats {
    long accepted = -1, proposed = -1, forwards = -1, generated = -1;
};

Stats stats_of(const std::string& err) {
    Stats s;
    std::smatch mt;
    if (std::regex_search(err, mt, std::regex(R"((\d+)/(\d+) drafted tokens accepted \(.*\), .* tokens per model forward \((\d+) forwards\))"))) {
        s.accepted = std::stol(mt[1]);
        s.proposed = std::stol(mt[2]);
        s.forwards = std::stol(mt[3]);
    }
    if (std::regex_search(err, mt, std::regex(R"((\d+) generated \()"))) s.generated = std::stol(mt[1]);
    return s;
}

// Plain and speculative generate with the same arguments: the same stdout. `draft`: a model, or
// "mtp" for --speculative mtp.
Stats expect_same_text(const std::string& model, const std::string& draft, const std::string& args) {
    const std::string base = "generate -m " + q(model) + " -t 1 " + args;
    const CliRun plain = run_cli(base);
    const CliRun spec = run_cli(base + (draft == "mtp" ? " --speculative mtp" : " --draft-model " + q(draft)));
    EXPECT_EQ(plain.rc, 0) << plain.err;
    EXPECT_EQ(spec.rc, 0) << spec.err;
    EXPECT_EQ(spec.out, plain.out) << base << " with " << draft << "\n" << spec.err;
    const Stats s = stats_of(spec.err);
    EXPECT_GE(s.proposed, 0) << spec.err;  // the statistics line
    EXPECT_GE(stats_of(plain.err).generated, 40) << plain.err;  // not vacuous: a long text
    EXPECT_EQ(s.generated, stats_of(plain.err).generated);
    EXPECT_EQ(plain.err.find("speculative"), std::string::npos);
    return s;
}

TEST(SpeculativeCli, LlamaPair) {
    const Models& m = models();
    const Stats self = expect_same_text(m.llama, m.llama, "-p 'hello world' --temp 0 -n 80");
    EXPECT_EQ(self.accepted, self.proposed);  // q8_0: verification rows equal plain decoding's
    EXPECT_GT(self.proposed, 40);
    EXPECT_LT(self.forwards, 20);  // ~ 80 / (4 + 1)
    const Stats other = expect_same_text(m.llama, m.llama_draft, "-p 'hello world' --temp 0 -n 80 --draft-n 3");
    EXPECT_LT(other.accepted * 2, other.proposed);  // an unrelated random model
    expect_same_text(m.llama, m.llama_draft, "-p 'abc' --temp 0.9 -s 7 -n 60");
    expect_same_text(m.llama, m.llama, "-p 'abc' --temp 0.9 -s 7 -n 60 --draft-n 8");
    expect_same_text(m.llama, m.llama, "-p 'hello' --temp 0 -n 60 --repeat-penalty 1.5");
}

TEST(SpeculativeCli, DeepSeekPairs) {
    const Models& m = models();
    for (const std::string& main : {m.v2l, m.v2l_q8, m.v3}) {
        const Stats self = expect_same_text(main, main, "-p 'hello world' --temp 0 -n 64 --draft-n 6");
        EXPECT_EQ(self.accepted, self.proposed) << main;
        EXPECT_GT(self.proposed, 40) << main;
        const Stats small = expect_same_text(main, m.ds_draft, "-p 'hello world' --temp 0 -n 64");
        EXPECT_GT(small.proposed, 40) << main;
    }
    // DeepSeek-V3's MTP module as the draft: one guess per round (random weights: rarely right).
    const Stats mtp = expect_same_text(m.v3_mtp, "mtp", "-p 'hello world' --temp 0 -n 64");
    EXPECT_GE(mtp.proposed, 60);
    EXPECT_EQ(mtp.forwards, mtp.proposed + 1);
    expect_same_text(m.v3_mtp, "mtp", "-p 'hello' --temp 0.8 -s 3 -n 48");
    expect_same_text(m.v3_mtp, m.ds_draft, "-p 'hello world' --temp 0 -n 48");
    // A Llama draft with the same vocabulary drafts for a DeepSeek model too.
    expect_same_text(m.v2l, m.llama_draft, "-p 'the' --temp 0 -n 48");
}

TEST(SpeculativeCli, TinyStoriesDraftingForItself) {
    LF_REQUIRE_ASSET(bin, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");
    const Stats s = expect_same_text(bin, bin, "--tokenizer " + q(tok) + " -p 'Once upon a time' --temp 0 -n 256");
    EXPECT_GT(s.accepted, s.proposed * 9 / 10);
}

TEST(SpeculativeCli, BadDraftsAreOneLine) {
    const Models& m = models();
    const std::string g = "generate -m " + q(m.llama) + " -p hi -n 4 -t 1";
    expect_one_line_error(run_cli(g + " --draft-model " + q(m.other_vocab)), "in the draft but");
    expect_one_line_error(run_cli(g + " --draft-model " + q(m.other_size)), "vocabulary has 600 tokens");
    expect_one_line_error(run_cli(g + " --draft-model /nonexistent/draft.gguf"), "/nonexistent/draft.gguf");
}

TEST(SpeculativeCli, MtpWithoutMtpWeightsIsOneLine) {
    const Models& m = models();
    for (const std::string& model : {m.llama, m.v2l, m.v3}) {
        const CliRun r = run_cli("generate -m " + q(model) + " -p hi -n 4 -t 1 --speculative mtp");
        expect_one_line_error(r, "has no multi-token-prediction (MTP) weights");
        EXPECT_NE(r.err.find(model), std::string::npos) << r.err;
    }
    expect_one_line_error(run_cli("generate -m " + q(m.llama) + " -p hi --speculative medusa"), "medusa");
}

}  // namespace
}  // namespace llmforge::test
