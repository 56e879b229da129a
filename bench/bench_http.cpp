// What the server's request hardening costs per request, in process (Google Benchmark):
//   BM_ParseChatRequest   — HttpGate's RequestParser on a typical 0.4 KB chat request (head +
//                           Content-Length body), then its re-framed bytes for cpp-httplib
//   BM_ParseChunked       — the same body sent as 64-byte chunks
//   BM_JsonNestingScan    — the depth pre-scan every request body gets before json::parse,
//                           on a 64 KiB chat body (bytes/s), beside json::parse of the same body
//   BM_BearerCheck        — Authorization header parse + constant-time key compare
//
//   build/bin/bench_http [--benchmark_filter=...]
#include <benchmark/benchmark.h>

#include <nlohmann/json.hpp>
#include <string>

#include "core/json_depth.h"
#include "serve/http_request.h"

namespace {

using namespace llmforge;
using namespace llmforge::serve;

const std::string kBody =
    R"({"model":"stories260K","messages":[{"role":"system","content":"You are a helpful assistant."},)"
    R"({"role":"user","content":"Tell me a short story about a dog who finds a ball in the park."}],)"
    R"("max_tokens":128,"temperature":0.7,"top_p":0.95,"stream":true,"stream_options":{"include_usage":true}})";

std::string chat_request() {
    return "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nUser-Agent: OpenAI/Python 1.54.0\r\n"
           "Accept: application/json\r\nContent-Type: application/json\r\nAuthorization: Bearer sk-test-key-0123456789\r\n"
           "Content-Length: " + std::to_string(kBody.size()) + "\r\n\r\n" + kBody;
}

void BM_ParseChatRequest(benchmark::State& st) {
    const std::string req = chat_request();
    for (auto _ : st) {
        RequestParser p;
        p.append(req.data(), req.size());
        RequestParser::Result r = p.step();
        if (r == RequestParser::Result::kHeadReady) r = p.step();
        if (r != RequestParser::Result::kComplete) st.SkipWithError("not complete");
        benchmark::DoNotOptimize(p.request_bytes());
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * req.size()));
}
BENCHMARK(BM_ParseChatRequest);

void BM_ParseChunked(benchmark::State& st) {
    std::string req = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (size_t i = 0; i < kBody.size(); i += 64) {
        const std::string part = kBody.substr(i, 64);
        char size[16];
        std::snprintf(size, sizeof size, "%zx\r\n", part.size());
        req += size + part + "\r\n";
    }
    req += "0\r\n\r\n";
    for (auto _ : st) {
        RequestParser p;
        p.append(req.data(), req.size());
        RequestParser::Result r = p.step();
        if (r == RequestParser::Result::kHeadReady) r = p.step();
        if (r != RequestParser::Result::kComplete || p.body() != kBody) st.SkipWithError("not complete");
    }
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * req.size()));
}
BENCHMARK(BM_ParseChunked);

std::string big_body() {
    nlohmann::json msgs = nlohmann::json::array();
    while (msgs.dump().size() < (64u << 10))
        msgs.push_back({{"role", "user"}, {"content", "Where is my order \"A-1234\"? It was due [last week] {or so}."}});
    return nlohmann::json{{"messages", msgs}, {"max_tokens", 16}}.dump();
}

void BM_JsonNestingScan(benchmark::State& st) {
    const std::string body = big_body();
    for (auto _ : st) benchmark::DoNotOptimize(json_nesting(body));
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * body.size()));
}
BENCHMARK(BM_JsonNestingScan);

void BM_JsonParse(benchmark::State& st) {
    const std::string body = big_body();
    for (auto _ : st) benchmark::DoNotOptimize(nlohmann::json::parse(body));
    st.SetBytesProcessed(static_cast<int64_t>(st.iterations() * body.size()));
}
BENCHMARK(BM_JsonParse);

void BM_BearerCheck(benchmark::State& st) {
    const std::string key = "sk-test-key-0123456789", header = "Bearer sk-test-key-0123456789";
    for (auto _ : st) benchmark::DoNotOptimize(equal_secret(key, bearer_token(header)));
}
BENCHMARK(BM_BearerCheck);

}  // namespace

BENCHMARK_MAIN();
