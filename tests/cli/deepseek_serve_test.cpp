// `llmforge serve` with DeepSeek-V3-shaped random models (MLA latent cache, sigmoid-routed experts),
// end to end over HTTP on 127.0.0.1: several concurrent greedy streams (continuous batching, each
// equal to the request run alone), prefix-cache hits on a repeated long prompt (the latent rows
// restored give the same text), /v1/chat/completions streaming, and a q8_0 latent cache. The
// server is a child process; every wait is bounded.
#include <gtest/gtest.h>
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_run.h"
#include "serve_process.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

using nlohmann::json;

// V3 shape, small: latent 32 + rope 32 = 64 (q8_0 blocks tile it), 8 experts in 4 groups.
const char* kV3 = R"({"architectures":["DeepseekV3ForCausalLM"],"model_type":"deepseek_v3","vocab_size":512,
"hidden_size":64,"intermediate_size":96,"moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,
"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":8,"routed_scaling_factor":2.5,"kv_lora_rank":32,
"q_lora_rank":32,"qk_rope_head_dim":32,"v_head_dim":16,"qk_nope_head_dim":16,"topk_method":"noaux_tc","n_group":4,
"topk_group":2,"num_experts_per_tok":3,"moe_layer_freq":1,"first_k_dense_replace":1,"norm_topk_prob":true,
"scoring_func":"sigmoid","max_position_embeddings":512,"rms_norm_eps":1e-6,"rope_theta":10000,
"tie_word_embeddings":false,"hidden_act":"silu"})";

const std::string& model_path() {
    static const std::string p = [] {
        const std::string dir = temp_dir();
        write_file(dir + "/v3.json", kV3);
        const std::string out = dir + "/v3.gguf";
        const CliRun r = run_cli("init-model --hf-config " + q(dir + "/v3.json") + " -o " + q(out) + " --seed 11");
        EXPECT_EQ(r.rc, 0) << r.err;
        return out;
    }();
    return p;
}

std::vector<std::string> args(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"-m", model_path(), "--api-key", "test-key", "--threads", "2", "--ctx-size", "256",
                                  "--chat-template", "chatml"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

// A prompt of the synthetic vocabulary's pieces, long enough for whole 64-token prefix blocks.
std::string long_prompt(int variant) {
    std::string p;
    const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog"};
    for (int i = 0; i < 28; ++i) p += std::string(words[(i * 7 + variant) % 9]) + " ";
    return p;
}

// Streams a chat completion; returns (status, concatenated delta contents, saw [DONE], finish_reason).
struct ChatStream {
    int status = 0;
    std::string text, finish, body;
    bool done = false;
    int events = 0;
};
ChatStream stream_chat(int port, const json& req) {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(60, 0);
    ChatStream r;
    std::string buf;
    httplib::Request hr;
    hr.method = "POST";
    hr.path = "/v1/chat/completions";
    hr.body = req.dump();
    hr.set_header("Content-Type", "application/json");
    hr.set_header("Authorization", "Bearer test-key");
    hr.response_handler = [&](const httplib::Response& res) {
        r.status = res.status;
        return true;
    };
    hr.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
        if (r.status != 200) {
            r.body.append(data, len);
            return true;
        }
        buf.append(data, len);
        size_t p;
        while ((p = buf.find("\n\n")) != std::string::npos) {
            const std::string ev = buf.substr(0, p);
            buf.erase(0, p + 2);
            if (ev.rfind("data: ", 0) != 0) continue;
            const std::string payload = ev.substr(6);
            if (payload == "[DONE]") {
                r.done = true;
                continue;
            }
            ++r.events;
            const json j = json::parse(payload);
            EXPECT_EQ(j.value("object", ""), "chat.completion.chunk") << payload;
            for (const auto& ch : j["choices"]) {
                if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string())
                    r.text += ch["delta"]["content"].get<std::string>();
                if (ch.contains("finish_reason") && ch["finish_reason"].is_string()) r.finish = ch["finish_reason"];
            }
        }
        return true;
    };
    auto res = c.send(hr);
    if (res) r.status = res->status;
    return r;
}

TEST(DeepseekServe, ConcurrentStreamsPrefixCacheAndChat) {
    ServerProcess srv(args({"--parallel", "4"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    const int kClients = 6;
    auto request = [](int i) {
        return json{{"prompt", long_prompt(i % 3)}, {"max_tokens", 12 + 4 * (i % 3)}, {"temperature", 0},
                    {"stream", true}};
    };
    // Alone, one at a time; the second round of the same prompts hits the prefix cache.
    std::vector<std::string> alone(kClients);
    for (int i = 0; i < kClients; ++i) {
        const StreamResult r = stream_completion(srv.port(), request(i));
        ASSERT_EQ(r.status, 200) << r.body;
        ASSERT_TRUE(r.done);
        EXPECT_EQ(r.finish_reason, "length");
        alone[i] = r.text;
        if (i >= 3) {
            EXPECT_EQ(alone[i], alone[i - 3]) << "the repeated prompt " << i;
        }
    }
    const double hits = metric(srv, "llmforge_prefix_cache_hit_tokens_total");
    EXPECT_GE(hits, 3 * 64) << "each repeated ~130-token prompt reuses at least one 64-token block";
    // All at once: continuous batching over the 4 slots, every text as when run alone.
    std::vector<StreamResult> together(kClients);
    std::vector<std::thread> th;
    for (int i = 0; i < kClients; ++i) th.emplace_back([&, i] { together[i] = stream_completion(srv.port(), request(i)); });
    for (auto& t : th) t.join();
    for (int i = 0; i < kClients; ++i) {
        ASSERT_EQ(together[i].status, 200) << together[i].body;
        EXPECT_TRUE(together[i].done);
        EXPECT_EQ(together[i].text, alone[i]) << "request " << i;
    }
    // Chat, streamed: chunks with delta content, a finish reason and [DONE]; the same text as the
    // non-streamed answer.
    const json chat = {{"messages", json::array({{{"role", "user"}, {"content", "the quick brown fox"}}})},
                       {"max_tokens", 10},
                       {"temperature", 0}};
    json streamed = chat;
    streamed["stream"] = true;
    const ChatStream cs = stream_chat(srv.port(), streamed);
    ASSERT_EQ(cs.status, 200) << cs.body;
    EXPECT_TRUE(cs.done);
    EXPECT_GE(cs.events, 2);
    EXPECT_EQ(cs.finish, "length");
    auto cl = srv.client();
    auto res = cl.Post("/v1/chat/completions", chat.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json j = json::parse(res->body);
    EXPECT_EQ(j["choices"][0]["message"]["content"].get<std::string>(), cs.text);
    EXPECT_EQ(j["usage"]["completion_tokens"], 10);
}

TEST(DeepseekServe, Q8LatentCache) {
    ServerProcess srv(args({"--parallel", "2", "--cache-type-k", "q8_0"}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    std::vector<StreamResult> rs(3);
    std::vector<std::thread> th;
    for (int i = 0; i < 3; ++i)
        th.emplace_back([&, i] {
            rs[i] = stream_completion(srv.port(), json{{"prompt", long_prompt(i)}, {"max_tokens", 8}, {"temperature", 0},
                                                       {"stream", true}});
        });
    for (auto& t : th) t.join();
    for (const StreamResult& r : rs) {
        ASSERT_EQ(r.status, 200) << r.body;
        EXPECT_TRUE(r.done);
    }
    // The V2-Lite-style latent of 32 + 8 does not take q8_0: the server refuses to start, one line.
    const std::string dir = temp_dir();
    std::string lite = kV3;
    lite.replace(lite.find("\"qk_rope_head_dim\":32"), 21, "\"qk_rope_head_dim\":8 ");
    write_file(dir + "/lite.json", lite);
    ASSERT_EQ(run_cli("init-model --hf-config " + q(dir + "/lite.json") + " -o " + q(dir + "/lite.gguf")).rc, 0);
    expect_one_line_error(run_cli("serve -m " + q(dir + "/lite.gguf") + " --port 0 --cache-type-k q8_0"),
                          "latent (kv_lora_rank + rope) heads are 40 wide");
}

}  // namespace
}  // namespace llmforge::test
