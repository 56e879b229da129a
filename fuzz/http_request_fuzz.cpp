// libFuzzer target: whole HTTP requests — request line, headers and body, possibly several
// pipelined, possibly chunked or malformed — into the server's request handling exactly as a
// connection delivers them (Server::process: the gate's request parser and head checks, then
// cpp-httplib's routing and the OpenAI handlers), against a running engine with a tiny in-memory
// Llama model (zero weights; generation runs for real). The API key is "k"; admin endpoints are
// off (a fuzz input must not load files). Every response must be well-formed HTTP with a known
// status; a crash, sanitizer report or hang is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <algorithm>
#include <cstdlib>
#include <string>

#include "core/error.h"
#include "model/model.h"
#include "serve/server.h"

using namespace llmforge;
using namespace llmforge::serve;

namespace {

std::shared_ptr<const ServedModel> tiny_model() {
    Vocab v;
    v.model = "llama";
    v.tokens = {"<unk>", "<s>", "</s>", "\xE2\x96\x81", "a", "\xE2\x96\x81" "a", "<|im_start|>", "<|im_end|>"};
    v.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kNormal,
               TokenType::kNormal, TokenType::kNormal, TokenType::kUserDefined, TokenType::kUserDefined};
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);
        v.tokens.push_back(name);
        v.types.push_back(TokenType::kByte);
    }
    for (size_t i = 0; i < v.tokens.size(); ++i) v.scores.push_back(-static_cast<float>(i));
    v.unk_id = 0;
    v.bos_id = 1;
    v.eos_id = 2;

    ModelFiles f;
    f.path = "fuzz-tiny";
    f.format = "gguf";
    ModelConfig& c = f.config;
    c.n_vocab = static_cast<int64_t>(v.tokens.size());
    c.n_embd = 8;
    c.n_layer = 1;
    c.n_head = 2;
    c.n_head_kv = 1;
    c.head_dim = 4;
    c.n_ff = 16;
    c.n_ctx_train = 64;
    f.vocab = v;
    auto add = [&](const std::string& name, std::vector<int64_t> shape) {
        f.tensors[name] = Tensor::empty(DType::F32, std::move(shape), name);
    };
    add("token_embd.weight", {c.n_vocab, c.n_embd});
    add("output_norm.weight", {c.n_embd});
    add("output.weight", {c.n_vocab, c.n_embd});
    add("blk.0.attn_norm.weight", {c.n_embd});
    add("blk.0.attn_q.weight", {c.n_head * c.head_dim, c.n_embd});
    add("blk.0.attn_k.weight", {c.n_head_kv * c.head_dim, c.n_embd});
    add("blk.0.attn_v.weight", {c.n_head_kv * c.head_dim, c.n_embd});
    add("blk.0.attn_output.weight", {c.n_embd, c.n_head * c.head_dim});
    add("blk.0.ffn_norm.weight", {c.n_embd});
    add("blk.0.ffn_gate.weight", {c.n_ff, c.n_embd});
    add("blk.0.ffn_up.weight", {c.n_ff, c.n_embd});
    add("blk.0.ffn_down.weight", {c.n_embd, c.n_ff});

    auto m = std::make_shared<ServedModel>();
    m->id = "tiny";
    m->path = f.path;
    m->model = Model::from_files(std::move(f));
    m->tokenizer = Tokenizer::create(v);
    m->chat_template.emplace(
        "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}",
        "fuzz");
    m->extra_stops = {"<|im_end|>"};
    return m;
}

Server& server() {
    static Server* s = [] {
        ServerConfig cfg;
        cfg.api_key = "k";
        cfg.max_body_bytes = 64 << 10;
        cfg.max_tokens_cap = 4;
        cfg.max_n = 2;
        cfg.timeout_s = 5;
        cfg.engine.slots = 2;
        cfg.engine.n_ctx = 64;
        cfg.engine.threads = 1;
        cfg.engine.max_queue = 8;
        auto* srv = new Server(cfg);  // lives for the process: the engine thread keeps running
        srv->start(tiny_model());
        return srv;
    }();
    return *s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string in(reinterpret_cast<const char*>(data), size);
    const std::string out = server().process(in);
    // The output is a sequence of well-formed responses: status line with a status this server
    // sends, headers, and a body framed by Content-Length or chunked coding.
    auto bad = [&](const char* what, size_t at) {
        std::fprintf(stderr, "%s at byte %zu of the output: %.80s\n", what, at, out.c_str() + std::min(at, out.size()));
        std::abort();
    };
    size_t p = 0;
    while (p < out.size()) {
        if (out.compare(p, 9, "HTTP/1.1 ") != 0) bad("no status line", p);
        const int status = std::atoi(out.c_str() + p + 9);
        if (status < 100 || status > 599) bad("bad status", p);
        const size_t he = out.find("\r\n\r\n", p);
        if (he == std::string::npos) bad("unterminated head", p);
        const std::string head = out.substr(p, he - p);
        p = he + 4;
        const size_t cl = head.find("Content-Length: ");
        if (head.find("Transfer-Encoding: chunked") != std::string::npos) {
            while (true) {
                const size_t le = out.find("\r\n", p);
                if (le == std::string::npos) bad("unterminated chunk size", p);
                const size_t n = std::strtoul(out.c_str() + p, nullptr, 16);
                p = le + 2 + n + 2;
                if (p > out.size()) bad("truncated chunk", le);
                if (n == 0) break;
            }
        } else if (cl != std::string::npos) {
            p += std::strtoul(head.c_str() + cl + 16, nullptr, 10);
            if (p > out.size()) bad("truncated body", p);
        } else if (status >= 200 && status != 204) {
            bad("a response without framing", p);
        }
    }
    return 0;
}
