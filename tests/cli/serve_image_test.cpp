// Images in chat requests, end to end over HTTP on 127.0.0.1 (docs/MULTIMODAL.md "Server"): a tiny
// vision-language model trained at test time (`llmforge train-vlm`, a few seconds: decoder +
// mmproj.gguf + ChatML tokenizer in a temporary folder) served by the real binary. An image_url
// content part gives the greedy text `llmforge generate --image F --chat` gives, streamed or not;
// the same image reuses cached positions and another image does not; each bad image is a one-line
// 400; a model without an image encoder refuses images; a bad --mmproj stops the server at start.
// Every wait is bounded (ServerProcess, the client's read timeout).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <string>

#include "cli_run.h"
#include "io/image.h"
#include "serve_process.h"

namespace llmforge::test {
namespace {

using nlohmann::json;

// The test model's folder, trained once per process.
const std::string& vlm_dir() {
    static const std::string dir = [] {
        const std::string d = temp_dir() + "/vlm";
        const CliRun r = run_cli("train-vlm --out " + q(d) + " --steps 2 --scenes 16 --eval-scenes 4 --eval-every 0 "
                                 "--vision-layers 1 --layers 1 --width 64 --vision-width 32 -t 2");
        EXPECT_EQ(r.rc, 0) << r.err;
        return r.rc == 0 ? d : std::string();
    }();
    return dir;
}

// A 48 x 40 picture: a background and a rectangle, both from `seed` (distinct seeds, distinct pixels).
std::string png_file(int seed) {
    Image img;
    img.width = 48;
    img.height = 40;
    img.rgb.resize(static_cast<size_t>(img.width * img.height * 3));
    for (int64_t y = 0; y < img.height; ++y) {
        for (int64_t x = 0; x < img.width; ++x) {
            const bool in = x >= 8 + seed && x < 30 + seed && y >= 10 && y < 28;
            uint8_t* p = &img.rgb[static_cast<size_t>((y * img.width + x) * 3)];
            p[0] = static_cast<uint8_t>(in ? 200 : 30 * seed);
            p[1] = static_cast<uint8_t>(in ? 40 * seed : 220);
            p[2] = static_cast<uint8_t>(in ? 90 : 10 + seed);
        }
    }
    const std::string path = temp_dir() + "/image-" + std::to_string(seed) + ".png";
    write_png(path, img);
    return path;
}

// Standard base64 of a file's bytes (coreutils' base64).
std::string base64_of_file(const std::string& path) {
    std::string out;
    EXPECT_EQ(run_command("base64 -w0 " + q(path), &out), 0);
    return out;
}
std::string base64_of(const std::string& bytes) {
    const std::string path = temp_dir() + "/bytes.bin";
    write_file(path, bytes);
    return base64_of_file(path);
}

json image_part(const std::string& b64, const std::string& type = "image/png") {
    return {{"type", "image_url"}, {"image_url", {{"url", "data:" + type + ";base64," + b64}}}};
}

const char* kQuestion = "What shape is in the picture?";

json image_request(const json& image, int max_tokens = 12) {
    return {{"messages", {{{"role", "user"}, {"content", {image, {{"type", "text"}, {"text", kQuestion}}}}}}},
            {"max_tokens", max_tokens},
            {"temperature", 0}};
}

json post(const ServerProcess& srv, const json& body, int* status = nullptr) {
    auto c = srv.client();
    auto res = c.Post("/v1/chat/completions", body.dump(), "application/json");
    EXPECT_TRUE(res);
    if (!res) return json();
    if (status != nullptr) *status = res->status;
    return json::parse(res->body, nullptr, false);
}

std::vector<std::string> vlm_args(std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"-m", vlm_dir(), "--api-key", "test-key", "--admin-key", "admin-key", "--threads", "2",
                                  "--ctx-size", "512"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

TEST(ServeImages, AnImagePromptGivesGeneratesGreedyText) {
    ASSERT_FALSE(vlm_dir().empty());
    const std::string img = png_file(1);
    const CliRun gen = run_cli("generate -m " + q(vlm_dir()) + " --image " + q(img) + " --chat -p " + q(kQuestion) +
                               " -n 12 --temp 0 -t 2");
    ASSERT_EQ(gen.rc, 0) << gen.err;
    ASSERT_FALSE(gen.out.empty());
    // generate ends with a newline and writes the bytes as they are; the server's JSON has invalid
    // UTF-8 (a tiny model's byte tokens) as U+FFFD.
    const std::string expected =
        json::parse(json(gen.out.substr(0, gen.out.size() - 1)).dump(-1, ' ', false, json::error_handler_t::replace));
    std::smatch pm;
    ASSERT_TRUE(std::regex_search(gen.err, pm, std::regex("([0-9]+) prompt positions \\(1 images\\)"))) << gen.err;

    ServerProcess srv(vlm_args());
    ASSERT_GT(srv.port(), 0) << srv.log();
    EXPECT_NE(srv.log().find("image encoder: " + vlm_dir() + "/mmproj.gguf"), std::string::npos) << srv.log();
    int status = 0;
    const json r = post(srv, image_request(image_part(base64_of_file(img))), &status);
    ASSERT_EQ(status, 200) << r.dump();
    EXPECT_EQ(r["choices"][0]["message"]["content"], expected);
    EXPECT_EQ(r["usage"]["prompt_tokens"], std::stoll(pm[1]));  // image rows count as prompt positions
    // Streamed: the same text. The declared type is not trusted: PNG bytes sent as "image/jpeg" decode.
    json sreq = image_request(image_part(base64_of_file(img), "image/jpeg"));
    sreq["stream"] = true;
    const StreamResult s = stream_completion(srv.port(), sreq, 0, "/v1/chat/completions");
    EXPECT_EQ(s.status, 200) << s.body;
    EXPECT_TRUE(s.done);
    EXPECT_EQ(s.text, expected);
    // A hot reload loads the image encoder again (checked against the new decoder); images still work.
    auto admin = srv.client("admin-key");
    auto rl = admin.Post("/admin/reload", json{{"model", vlm_dir()}}.dump(), "application/json");
    ASSERT_TRUE(rl);
    EXPECT_EQ(rl->status, 200) << rl->body;
    const json again = post(srv, image_request(image_part(base64_of_file(img))), &status);
    EXPECT_EQ(status, 200) << again.dump();
    EXPECT_EQ(again["choices"][0]["message"]["content"], expected);
}

TEST(ServeImages, TheSameImageReusesCachedPositionsAnotherDoesNot) {
    ASSERT_FALSE(vlm_dir().empty());
    ServerProcess srv(vlm_args({"--parallel", "1"}));  // one slot: it keeps the last request's positions
    ASSERT_GT(srv.port(), 0) << srv.log();
    const json a = image_part(base64_of_file(png_file(1))), b = image_part(base64_of_file(png_file(2)));
    auto cached = [&](const json& image, int64_t* prompt = nullptr) -> int64_t {
        int status = 0;
        const json r = post(srv, image_request(image, 2), &status);
        EXPECT_EQ(status, 200) << r.dump();
        if (prompt != nullptr) *prompt = r["usage"]["prompt_tokens"];
        return r["usage"]["prompt_tokens_details"]["cached_tokens"];
    };
    int64_t positions = 0;
    EXPECT_EQ(cached(a, &positions), 0);
    EXPECT_EQ(cached(a), positions - 1);  // all but the last position, from the slot
    const int64_t other = cached(b);      // another image: the text before it only
    EXPECT_LT(other, 16);
    // Back to the first image: its whole 64-position blocks come from the prefix cache.
    EXPECT_EQ(cached(a), std::max(other, (positions - 1) / 64 * 64));
}

TEST(ServeImages, BadImagesAreOneLine400s) {
    ASSERT_FALSE(vlm_dir().empty());
    ServerProcess srv(vlm_args());
    ASSERT_GT(srv.port(), 0) << srv.log();
    const std::string png = read_file(png_file(3));
    Image wide;  // 9000 x 1: over the 8192-pixel side limit, refused from its header
    wide.width = 9000;
    wide.height = 1;
    wide.rgb.assign(9000 * 3, 128);
    const std::vector<uint8_t> wide_png = encode_png(wide);
    json nine = json::array();
    for (int i = 0; i < 9; ++i) nine.push_back(image_part(base64_of(png)));
    nine.push_back({{"type", "text"}, {"text", "Which is different?"}});
    json too_long = image_request(image_part(base64_of(png)));
    too_long["max_tokens"] = 500;
    const std::string p0 = "messages[0].content[0].image_url";
    struct Case {
        const char* what;
        json body;
        std::string param, code, must_contain;
    };
    const std::vector<Case> cases = {
        {"remote URL", image_request({{"type", "image_url"}, {"image_url", {{"url", "https://example.com/cat.png"}}}}), p0, "",
         p0 + ": remote image URLs are not fetched (no network); send the image as a data: URI"},
        {"bad base64", image_request(image_part("iVBORw0KGgo*AAA")), p0, "", "the data: URI's base64 is not valid ('*' at offset 11"},
        {"not an image", image_request(image_part(base64_of("hello, this is text"))), p0, "",
         p0 + " (declared \"image/png\"): not a PNG or JPEG image (starts with 68 65 6c 6c 6f 2c 20 74"},
        {"WebP", image_request(image_part(base64_of(std::string("RIFF\x24\0\0\0WEBPVP8 ", 16) + std::string(24, 'x')), "image/webp")),
         p0, "", "(declared \"image/webp\"): not a PNG or JPEG image (starts with 52 49 46 46 24 00 00 00; hint: it looks like a "
         "WebP image; convert it to PNG or JPEG)"},
        {"truncated PNG", image_request(image_part(base64_of(png.substr(0, png.size() / 2)))), p0, "", "PNG"},
        {"too large", image_request(image_part(base64_of(std::string(wide_png.begin(), wide_png.end())))), p0, "",
         "declares 9000×1 pixels, over the limit of 16777216 pixels and 8192 per side"},
        {"nine images", json{{"messages", {{{"role", "user"}, {"content", nine}}}}}, "messages[0].content[8].image_url", "",
         "more than 8 images"},
        {"past the context", too_long, "messages", "context_length_exceeded", "; each image counts as "},
        {"an image in an assistant message",
         json{{"messages", {{{"role", "user"}, {"content", "hi"}}, {{"role", "assistant"}, {"content", {image_part(base64_of(png))}}},
                            {{"role", "user"}, {"content", "and?"}}}}},
         "messages[1].content[0]", "", "only user messages may carry images"},
    };
    for (const Case& k : cases) {
        int status = 0;
        const json r = post(srv, k.body, &status);
        EXPECT_EQ(status, 400) << k.what << ": " << r.dump();
        ASSERT_TRUE(r.contains("error")) << k.what << ": " << r.dump();
        const std::string msg = r["error"]["message"];
        EXPECT_EQ(msg.find('\n'), std::string::npos) << k.what << ": " << msg;
        EXPECT_NE(msg.find(k.must_contain), std::string::npos) << k.what << ": " << msg;
        EXPECT_EQ(r["error"]["type"], "invalid_request_error") << k.what;
        EXPECT_EQ(r["error"]["param"], k.param) << k.what << ": " << msg;
        if (!k.code.empty()) {
            EXPECT_EQ(r["error"]["code"], k.code) << k.what;
        }
    }
    int status = 0;  // still serving
    post(srv, image_request(image_part(base64_of(png)), 2), &status);
    EXPECT_EQ(status, 200);
}

TEST(ServeImages, AModelWithoutAnImageEncoderRefusesImages) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    ServerProcess srv(stories_args(dir));
    ASSERT_GT(srv.port(), 0) << srv.log();
    int status = 0;
    const json r = post(srv, image_request(image_part(base64_of(read_file(png_file(1))))), &status);
    EXPECT_EQ(status, 400) << r.dump();
    EXPECT_EQ(r["error"]["code"], "no_image_encoder");
    EXPECT_EQ(r["error"]["param"], "messages[0].content[0].image_url");
    EXPECT_NE(r["error"]["message"].get<std::string>().find("model 'stories260K' has no image encoder (no mmproj.gguf "
                                                            "beside it"),
              std::string::npos)
        << r.dump();
}

TEST(ServeImages, ABadMmprojStopsTheServerWithOneLine) {
    LF_REQUIRE_ASSET(dir, "llama2c-stories260K");
    const std::string m = " -m " + q(dir + "/stories260K.bin") + " --tokenizer " + q(dir + "/tok512.bin") + " --port 0";
    expect_one_line_error(run_cli("serve" + m + " --mmproj " + q(dir + "/no-such-mmproj.gguf")),
                          "--mmproj " + dir + "/no-such-mmproj.gguf: no such file");
    expect_one_line_error(run_cli("serve" + m + " --mmproj " + q(dir + "/stories260K.bin")),
                          "--mmproj: " + dir + "/stories260K.bin: ");
}

}  // namespace
}  // namespace llmforge::test
