// POST /v1/embeddings (serve --embeddings models/retriever): OpenAI's shape, the two encoders,
// base64 = float, and one clear 4xx for what it does not take (clients: tests/serve/js).
#include <gtest/gtest.h>

#include <cstring>

#include "serve_process.h"
#include "test_util.h"

namespace llmforge::test {
namespace {

std::vector<float> floats_of_base64(const std::string& b64) {
    static const std::string k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    std::string bytes;
    uint32_t v = 0;
    int bits = 0;
    for (char c : b64) {
        if (c == '=') break;
        v = (v << 6) | static_cast<uint32_t>(k.find(c));
        bits += 6;
        if (bits >= 8) bytes += static_cast<char>((v >> (bits - 8)) & 0xff), bits -= 8;
    }
    std::vector<float> f(bytes.size() / 4);
    std::memcpy(f.data(), bytes.data(), f.size() * 4);
    return f;
}

TEST(ServeEmbeddings, OpenAiShapeAndErrors) {
    ServerProcess s({"-m", src_path("models/default"), "--api-key", "test-key", "--threads", "1", "--embeddings",
                     src_path("models/retriever")});
    ASSERT_GT(s.port(), 0) << s.log();
    auto post = [&](const json& body) { return s.client().Post("/v1/embeddings", body.dump(), "application/json"); };
    auto r = post({{"input", {"how do returns work", "query: how do returns work"}}, {"model", "shop-retriever"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    json j = json::parse(r->body);
    EXPECT_EQ(j["object"], "list");
    EXPECT_EQ(j["model"], "shop-retriever");
    ASSERT_EQ(j["data"].size(), 2u);
    EXPECT_EQ(j["data"][1]["index"], 1);
    const auto passage = j["data"][0]["embedding"].get<std::vector<float>>();
    const auto query_prefixed = j["data"][1]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(passage.size(), 128u);
    EXPECT_NE(passage, query_prefixed);  // "query: " selects the query encoder
    r = post({{"input", "how do returns work"}, {"model", "shop-retriever-query"}, {"encoding_format", "base64"}});
    ASSERT_TRUE(r);
    ASSERT_EQ(r->status, 200) << r->body;
    EXPECT_EQ(floats_of_base64(json::parse(r->body)["data"][0]["embedding"]), query_prefixed);
    // What it does not take: 400/404, one clear message each.
    auto status_and = [&](const json& body, int status, const std::string& must) {
        auto e = post(body);
        ASSERT_TRUE(e);
        EXPECT_EQ(e->status, status) << e->body;
        EXPECT_NE(e->body.find(must), std::string::npos) << e->body;
    };
    status_and({{"input", {{1, 2, 3}}}}, 400, "check_embedding_ctx_length");
    status_and({{"input", json::array()}}, 400, "1 to 2048 strings");
    status_and({{"input", "x"}, {"model", "text-embedding-3-small"}}, 404, "shop-retriever");
    status_and({{"input", "x"}, {"encoding_format", "int8"}}, 400, "encoding_format");
    status_and({{"input", "x"}, {"dimensions", 64}}, 400, "'dimensions' must be 128");
}

TEST(ServeEmbeddings, WithoutAnEmbedderIs404) {
    ServerProcess s({"-m", src_path("models/default"), "--api-key", "test-key", "--threads", "1"});
    ASSERT_GT(s.port(), 0) << s.log();
    auto r = s.client().Post("/v1/embeddings", R"({"input": "x"})", "application/json");
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 404);
    EXPECT_NE(r->body.find("--embeddings"), std::string::npos) << r->body;
}

}  // namespace
}  // namespace llmforge::test
