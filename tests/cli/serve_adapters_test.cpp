// llmforge serve with LoRA adapters, end to end over HTTP with the real TinyStories 260K model
// (llama2.c, interleaved RoPE: the adapters' Q/K rows are permuted on the way in):
//  - `--adapter NAME=DIR` errors are one line each (not NAME=DIR, missing folder, not an adapter,
//    an adapter for another base, a prompt-tuning adapter, a name clash with the base);
//  - /v1/models lists the base and each adapter with its parent;
//  - adapters hot-loaded and unloaded under load: client threads send requests for the base and
//    two adapters loaded for good (every one must succeed, with the text it gets alone), one client
//    asks for an adapter that an admin thread unloads and loads again and again (each of its
//    requests succeeds with the text it gets alone, or, while the adapter is out, gets a clean
//    404 model_not_found), streamed and whole; zero failed requests;
//  - a reload of the base keeps the adapters that still fit, and drops (log line) those that do not.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "cli_run.h"
#include "model/adapter.h"
#include "model/model.h"
#include "serve_process.h"
#include "test_util.h"

namespace llmforge {
namespace {

using nlohmann::json;
using test::ServerProcess;
using test::stream_completion;
using test::StreamResult;
namespace fs = std::filesystem;

void write_lora(const std::string& dir, const Arch& arch, const ModelConfig& c, int64_t r, uint64_t seed,
                const std::vector<std::string>& targets = {"q_proj", "k_proj", "v_proj", "o_proj"}) {
    fs::remove_all(dir);
    Adapter ad;
    ad.cfg.type = PeftType::kLora;
    ad.cfg.r = r;
    ad.cfg.alpha = static_cast<double>(2 * r);
    ad.cfg.target_modules = targets;
    std::mt19937_64 rng(seed);
    std::normal_distribution<float> nd(0.0f, 1.0f);
    for (const LoraSite& s : lora_sites(arch, c, targets, "test")) {
        LoraPair p;
        p.site = s;
        p.r = r;
        p.a.resize(static_cast<size_t>(r * s.in));
        p.b.resize(static_cast<size_t>(s.out * r));
        for (float& x : p.a) x = nd(rng) / std::sqrt(static_cast<float>(s.in));
        for (float& x : p.b) x = nd(rng) * 0.5f;
        ad.lora.push_back(std::move(p));
    }
    write_adapter(dir, ad);
}

struct Fixture {
    std::string assets, model, tok, d1, d2, hot, other_base, prompt_tuning, not_adapter;
};

// Three LoRAs for stories260K, one for a model of another width, a prompt-tuning adapter and a
// folder that is not an adapter.
Fixture make_fixture(const std::string& assets) {
    Fixture f;
    f.assets = assets;
    f.model = assets + "/stories260K.bin";
    f.tok = assets + "/tok512.bin";
    const std::string dir = test::temp_dir();
    f.d1 = dir + "/lora-a1";
    f.d2 = dir + "/lora-a2";
    f.hot = dir + "/lora-hot";
    f.other_base = dir + "/lora-other";
    f.prompt_tuning = dir + "/prompt-tuning";
    f.not_adapter = dir + "/not-an-adapter";
    auto m = Model::load(f.model, f.tok);
    write_lora(f.d1, m->arch(), m->config(), 4, 1);
    write_lora(f.d2, m->arch(), m->config(), 8, 2, {"q_proj", "v_proj", "gate_proj", "up_proj", "down_proj"});
    write_lora(f.hot, m->arch(), m->config(), 4, 3);
    ModelConfig wider = m->config();
    wider.n_embd += 8;
    write_lora(f.other_base, m->arch(), wider, 4, 4);
    Adapter pt;
    pt.cfg.type = PeftType::kPromptTuning;
    pt.cfg.num_virtual_tokens = 2;
    pt.cfg.token_dim = m->config().n_embd;
    pt.prompt.assign(static_cast<size_t>(2 * m->config().n_embd), 0.1f);
    fs::remove_all(f.prompt_tuning);
    write_adapter(f.prompt_tuning, pt);
    fs::create_directories(f.not_adapter);
    return f;
}

TEST(ServeAdapters, BadAdapterOptionsAreOneLineErrors) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    const Fixture f = make_fixture(dir);
    using test::q;
    const std::string base = "serve -m " + q(f.model) + " --tokenizer " + q(f.tok) + " --port 0 --adapter ";
    test::expect_one_line_error(test::run_cli(base + q(f.d1)), "expected NAME=DIR");
    test::expect_one_line_error(test::run_cli(base + q("a=" + f.d1 + "-missing")), "no such folder");
    test::expect_one_line_error(test::run_cli(base + q("a=" + f.not_adapter)), "not a PEFT adapter folder");
    test::expect_one_line_error(test::run_cli(base + q("a=" + f.other_base)), "adapter 'a' on model 'stories260K'");
    test::expect_one_line_error(test::run_cli(base + q("a=" + f.prompt_tuning)), "serve runs LoRA adapters only");
    test::expect_one_line_error(test::run_cli(base + q("stories260K=" + f.d1)), "is the base model's id");
    test::expect_one_line_error(test::run_cli(base + q("a=" + f.d1) + " --adapter " + q("a=" + f.d2)), "given twice");
}

json completion(const std::string& model, int i) {
    const char* starts[] = {"Once upon a time", "The little dog", "Lily and Ben", "One day, a bird"};
    return json{{"model", model}, {"prompt", starts[i % 4]}, {"max_tokens", 20 + (i % 3) * 8}, {"temperature", 0}};
}

struct Outcome {
    int status = 0;
    std::string text, code, error;
};

// One request, streamed or whole.
Outcome send(int port, const json& req, bool stream) {
    Outcome o;
    if (stream) {
        json r = req;
        r["stream"] = true;
        const StreamResult s = stream_completion(port, r);
        o.status = s.status;
        o.text = s.text;
        if (s.status == 200 && (!s.done || !s.body.empty())) {
            o.status = -1;  // an error event inside the stream, or no [DONE]
            o.error = s.body;
        } else if (s.status != 200) {
            o.error = s.body;
            const json e = json::parse(s.body, nullptr, false);
            if (e.is_object() && e.contains("error")) o.code = e["error"].value("code", "");
        }
        return o;
    }
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    c.set_bearer_token_auth("test-key");
    auto res = c.Post("/v1/completions", req.dump(), "application/json");
    if (!res) {
        o.status = -2;
        o.error = httplib::to_string(res.error());
        return o;
    }
    o.status = res->status;
    const json j = json::parse(res->body, nullptr, false);
    if (o.status == 200) {
        o.text = j["choices"][0]["text"];
    } else {
        o.error = res->body;
        if (j.is_object() && j.contains("error")) o.code = j["error"].value("code", "");
    }
    return o;
}

json admin(const ServerProcess& srv, const json& body, int* status) {
    auto c = srv.client("admin-key");
    auto res = c.Post("/admin/adapters", body.dump(), "application/json");
    *status = res ? res->status : -1;
    return res ? json::parse(res->body, nullptr, false) : json();
}

TEST(ServeAdapters, HotLoadAndUnloadUnderLoadFailNoRequest) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    const Fixture f = make_fixture(dir);
    ServerProcess srv(test::stories_args(dir, {"--parallel", "6", "--max-queue", "64", "--adapter", "a1=" + f.d1,
                                               "--adapter", "a2=" + f.d2}));
    ASSERT_GT(srv.port(), 0) << srv.log();
    {
        auto c = srv.client();
        auto res = c.Get("/v1/models");
        ASSERT_TRUE(res);
        const json m = json::parse(res->body);
        ASSERT_EQ(m["data"].size(), 3u) << res->body;
        EXPECT_EQ(m["data"][0]["id"], "stories260K");
        EXPECT_EQ(m["data"][1]["id"], "a1");
        EXPECT_EQ(m["data"][1]["parent"], "stories260K");
        EXPECT_EQ(m["data"][2]["id"], "a2");
    }
    int st = 0;
    admin(srv, {{"action", "load"}, {"name", "hot"}, {"path", f.hot}}, &st);
    ASSERT_EQ(st, 200);
    // Each (model, prompt) alone first.
    const std::vector<std::string> models = {"stories260K", "a1", "a2", "hot"};
    std::map<std::pair<std::string, int>, std::string> alone;
    for (const auto& m : models) {
        for (int i = 0; i < 12; ++i) {
            const Outcome o = send(srv.port(), completion(m, i), false);
            ASSERT_EQ(o.status, 200) << m << ": " << o.error;
            alone[{m, i}] = o.text;
        }
    }
    const std::string base0 = alone[{"stories260K", 0}], a1_0 = alone[{"a1", 0}], hot0 = alone[{"hot", 0}];
    EXPECT_NE(base0, a1_0) << "the adapter should change the output";
    EXPECT_NE(base0, hot0);

    // Under load: 4 clients over the base and the two permanent adapters, 1 client for "hot",
    // while the admin thread unloads and loads "hot" again and again.
    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0}, hot_ok{0}, hot_404{0}, cycles{0};
    std::mutex err_mu;
    std::vector<std::string> errors;
    auto fail = [&](const std::string& what) {
        failed++;
        std::lock_guard<std::mutex> lk(err_mu);
        if (errors.size() < 10) errors.push_back(what);
    };
    std::vector<std::thread> th;
    for (int c = 0; c < 4; ++c) {
        th.emplace_back([&, c] {
            for (int k = 0; k < 30; ++k) {
                const std::string& m = models[(c + k) % 3];
                const int i = (c * 5 + k) % 12;
                const Outcome o = send(srv.port(), completion(m, i), (k + c) % 2 == 0);
                if (o.status != 200) {
                    fail(m + " #" + std::to_string(i) + ": status " + std::to_string(o.status) + " " + o.error);
                } else if (o.text != alone[{m, i}]) {
                    fail(m + " #" + std::to_string(i) + ": text differs from the request alone");
                } else {
                    ok++;
                }
            }
        });
    }
    th.emplace_back([&] {
        for (int k = 0; !stop || k < 8; ++k) {
            const int i = k % 12;
            const Outcome o = send(srv.port(), completion("hot", i), k % 2 == 0);
            if (o.status == 404 && o.code == "model_not_found") {
                hot_404++;
                std::this_thread::sleep_for(std::chrono::milliseconds(10));
            } else if (o.status != 200) {
                fail("hot #" + std::to_string(i) + ": status " + std::to_string(o.status) + " " + o.error);
            } else if (o.text != alone[{"hot", i}]) {
                fail("hot #" + std::to_string(i) + ": text differs from the request alone");
            } else {
                hot_ok++;
            }
            if (stop && k >= 8) break;
        }
    });
    std::thread admin_thread([&] {
        while (!stop) {
            int s1 = 0, s2 = 0;
            admin(srv, {{"action", "unload"}, {"name", "hot"}}, &s1);
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
            admin(srv, {{"action", "load"}, {"name", "hot"}, {"path", f.hot}}, &s2);
            if (s1 != 200 || s2 != 200) fail("admin: unload " + std::to_string(s1) + ", load " + std::to_string(s2));
            cycles++;
            std::this_thread::sleep_for(std::chrono::milliseconds(30));
        }
    });
    for (int c = 0; c < 4; ++c) th[c].join();
    stop = true;
    th[4].join();
    admin_thread.join();
    for (const auto& e : errors) ADD_FAILURE() << e;
    EXPECT_EQ(failed.load(), 0);
    EXPECT_EQ(ok.load(), 120);
    EXPECT_GE(cycles.load(), 5);
    EXPECT_GE(hot_ok.load(), 4);
    std::printf("under load: %d requests ok, 'hot' %d ok / %d clean 404 over %d unload+load cycles\n", ok.load(),
                hot_ok.load(), hot_404.load(), cycles.load());
    EXPECT_EQ(test::metric(srv, "llmforge_sequences_failed_total"), 0);

    // A reload of the base keeps the adapters that fit it (all of them here).
    auto c = srv.client("admin-key");
    auto res = c.Post("/admin/reload", "{}", "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json r = json::parse(res->body);
    EXPECT_EQ(r["adapters"], json::array({"a1", "a2", "hot"})) << res->body;
    EXPECT_TRUE(r["adapters_dropped"].empty());
    const Outcome after = send(srv.port(), completion("a1", 0), false);
    EXPECT_EQ(after.status, 200);
    EXPECT_EQ(after.text, a1_0);

    // A reload onto a base of another shape drops every adapter (each with a log line); the
    // reload itself succeeds and requests naming them get 404.
    const std::string other = test::asset("gguf-fixtures/llama-2-tiny-random.gguf");
    if (other.empty()) return;
    res = c.Post("/admin/reload", json{{"model", other}}.dump(), "application/json");
    ASSERT_TRUE(res);
    ASSERT_EQ(res->status, 200) << res->body;
    const json r2 = json::parse(res->body);
    EXPECT_TRUE(r2["adapters"].empty()) << res->body;
    EXPECT_EQ(r2["adapters_dropped"], json::array({"a1", "a2", "hot"})) << res->body;
    EXPECT_NE(srv.log().find("adapter 'a1' dropped: it does not fit the reloaded model"), std::string::npos);
    const Outcome gone = send(srv.port(), completion("a1", 0), false);
    EXPECT_EQ(gone.status, 404);
    EXPECT_EQ(gone.code, "model_not_found");
}

}  // namespace
}  // namespace llmforge
