// llmforge augment end to end: EDA on text and chat JSONL with the example synonym file,
// back-translation through the default model (mechanics only: its translations are poor), and
// bad input as one-line errors that leave the output file alone.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

#include "cli_run.h"

using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

std::string src_dir() {
    const char* s = std::getenv("LLMFORGE_SRC");
    return s ? s : ".";
}

std::string synonyms() { return src_dir() + "/data/shop_synonyms.txt"; }

std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> out;
    std::istringstream ss(text);
    std::string l;
    while (std::getline(ss, l)) out.push_back(l);
    return out;
}

const std::string kText1 = R"({"text": "Hello! My order arrived yesterday, but the package was damaged and the box looked broken.", "label": "complaint"})";
const std::string kChat =
    R"({"id": 7, "messages": [{"role": "system", "content": "You are the assistant of an online shop."}, )"
    R"({"role": "user", "content": "Where is my order? I want a refund because the item was damaged."}, )"
    R"({"role": "assistant", "content": "Sorry about that! I can help you with the refund. What is your order number?"}]})";
const std::string kText2 = R"({"text": "Do you offer free shipping? I need a fast delivery."})";

std::string write_input(const std::string& dir) {
    const std::string in = dir + "/in.jsonl";
    write_file(in, kText1 + "\n" + kChat + "\n\n" + kText2 + "\n");
    return in;
}

// A variant has the structure of its original: the same keys in the same order, the same roles,
// the system message and every non-text key unchanged.
void expect_same_structure(const std::string& variant_line, const std::string& original_line) {
    const auto v = nlohmann::ordered_json::parse(variant_line);
    const auto o = nlohmann::ordered_json::parse(original_line);
    ASSERT_EQ(v.size(), o.size()) << variant_line;
    for (auto a = v.begin(), b = o.begin(); a != v.end(); ++a, ++b) {
        EXPECT_EQ(a.key(), b.key());
        if (a.key() != "text" && a.key() != "messages") {
            EXPECT_EQ(a.value(), b.value());
        }
    }
    if (o.contains("text")) {
        EXPECT_TRUE(v["text"].is_string());
    }
    if (o.contains("messages")) {
        ASSERT_EQ(v["messages"].size(), o["messages"].size());
        for (size_t i = 0; i < o["messages"].size(); ++i) {
            EXPECT_EQ(v["messages"][i]["role"], o["messages"][i]["role"]);
            EXPECT_TRUE(v["messages"][i]["content"].is_string());
            if (o["messages"][i]["role"] == "system") {
                EXPECT_EQ(v["messages"][i], o["messages"][i]);
            }
        }
    }
}

}  // namespace

TEST(AugmentCli, EdaOnTextAndChatIsSeededAndKeepsTheStructure) {
    const std::string d = temp_dir();
    const std::string in = write_input(d);
    const std::string args = "augment -i " + q(in) + " --synonyms " + q(synonyms()) +
                             " --sr 0.2 --ri 0.1 --rs 0.1 --rd 0.1 --copies 3";
    auto r = run_cli(args + " --seed 5 -o " + q(d + "/a.jsonl"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_NE(r.err.find("3 lines (2 text, 1 chat)"), std::string::npos) << r.err;
    EXPECT_NE(r.err.find("3 lines -> 9 variants"), std::string::npos) << r.err;
    const std::string a = read_file(d + "/a.jsonl");
    const auto out = lines_of(a);
    ASSERT_EQ(out.size(), 3u * 4u);
    const std::string originals[] = {kText1, kChat, kText2};
    for (size_t i = 0; i < 3; ++i) {
        EXPECT_EQ(out[4 * i], originals[i]);  // the original line first, as it was
        for (size_t c = 1; c <= 3; ++c) {
            SCOPED_TRACE(out[4 * i + c]);
            expect_same_structure(out[4 * i + c], originals[i]);
            EXPECT_NE(out[4 * i + c], nlohmann::ordered_json::parse(originals[i]).dump());
        }
    }
    // Same seed: the same bytes; another seed: other variants; --no-originals: the variants only.
    ASSERT_EQ(run_cli(args + " --seed 5 -o " + q(d + "/b.jsonl")).rc, 0);
    EXPECT_EQ(read_file(d + "/b.jsonl"), a);
    ASSERT_EQ(run_cli(args + " --seed 6 -o " + q(d + "/c.jsonl")).rc, 0);
    EXPECT_NE(read_file(d + "/c.jsonl"), a);
    ASSERT_EQ(run_cli(args + " --seed 5 --no-originals -o " + q(d + "/n.jsonl")).rc, 0);
    const auto n = lines_of(read_file(d + "/n.jsonl"));
    ASSERT_EQ(n.size(), 9u);
    EXPECT_EQ(n[0], out[1]);
    EXPECT_EQ(n[8], out[11]);
    // --roles user: the assistant's turn is left as it was.
    ASSERT_EQ(run_cli(args + " --seed 5 --roles user -o " + q(d + "/u.jsonl")).rc, 0);
    const auto u = lines_of(read_file(d + "/u.jsonl"));
    const auto chat = nlohmann::ordered_json::parse(kChat);
    for (size_t c = 5; c <= 7; ++c) {
        const auto v = nlohmann::ordered_json::parse(u[c]);
        EXPECT_EQ(v["messages"][2], chat["messages"][2]);
        EXPECT_NE(v["messages"][1], chat["messages"][1]);
    }
}

TEST(AugmentCli, BackTranslationThroughTheDefaultModel) {
    const std::string model = src_dir() + "/models/default";
    if (!fs::exists(model + "/model.safetensors")) GTEST_SKIP() << "no default model at " << model;
    const std::string d = temp_dir();
    const std::string in = write_input(d);
    const std::string args = "augment -i " + q(in) + " --back-translate " + q(model) +
                             " --via French --max-tokens 24 -t 2 --copies 2 --no-originals";
    auto r = run_cli(args + " --seed 3 -o " + q(d + "/a.jsonl"));
    ASSERT_EQ(r.rc, 0) << r.err;
    // 2 text lines + user and assistant of the chat = 4 texts, 2 copies, 2 generations each (one
    // when the first answer is empty, which then keeps the text).
    std::smatch m;
    ASSERT_TRUE(std::regex_search(r.err, m, std::regex(R"((\d+) texts augmented, (\d+) generations, (\d+) empty)")))
        << r.err;
    const int texts = std::stoi(m[1]), generations = std::stoi(m[2]), empty = std::stoi(m[3]);
    EXPECT_EQ(texts, 8);
    EXPECT_LE(generations, 2 * texts);
    EXPECT_GE(generations, 2 * texts - empty);
    if (empty == 0) {
        EXPECT_EQ(generations, 16);
    }
    const std::string a = read_file(d + "/a.jsonl");
    const auto out = lines_of(a);
    ASSERT_EQ(out.size(), 6u);
    const std::string originals[] = {kText1, kChat, kText2};
    for (size_t i = 0; i < 6; ++i) {
        SCOPED_TRACE(out[i]);
        expect_same_structure(out[i], originals[i / 2]);
    }
    // Deterministic for a seed (and thread count); the sampler's seed comes from --seed.
    auto r2 = run_cli(args + " --seed 3 -o " + q(d + "/b.jsonl"));
    ASSERT_EQ(r2.rc, 0) << r2.err;
    EXPECT_EQ(read_file(d + "/b.jsonl"), a);
    ASSERT_EQ(run_cli(args + " --seed 4 -o " + q(d + "/c.jsonl")).rc, 0);
    EXPECT_NE(read_file(d + "/c.jsonl"), a);
    // Chained with EDA (applied after the translation).
    auto r3 = run_cli(args + " --seed 3 --rs 0.2 -o " + q(d + "/e.jsonl"));
    ASSERT_EQ(r3.rc, 0) << r3.err;
    EXPECT_EQ(lines_of(read_file(d + "/e.jsonl")).size(), 6u);
}

TEST(AugmentCli, BadInputIsOneLineAndLeavesTheOutputAlone) {
    const std::string d = temp_dir();
    const std::string in = write_input(d);
    const std::string syn = q(synonyms());
    write_file(d + "/bad_syn.txt", "# groups\norder, purchase\nparcel\n");
    write_file(d + "/bad.jsonl", kText1 + "\n{\"prompt\": \"hi\"}\n");
    write_file(d + "/notjson.jsonl", kText1 + "\n\n{\"text\": \"cut\n");
    fs::create_directories(d + "/garbage_model");
    write_file(d + "/garbage_model/config.json", "{not json");
    // A context too small for line 2's translation prompt: fails after line 1 was written.
    write_file(d + "/long.jsonl", R"({"text": "Hi."})" "\n" + kText1 + "\n");
    const std::string model = q(src_dir() + "/models/default");
    struct Case {
        std::string args, expect;
    } cases[] = {
        {"-i " + q(in) + " --sr 0.1 --synonyms " + q(d + "/missing.txt"), d + "/missing.txt"},
        {"-i " + q(in) + " --sr 0.1 --synonyms " + q(d + "/bad_syn.txt"), d + "/bad_syn.txt:3: a group of one word"},
        {"-i " + q(d + "/bad.jsonl") + " --rs 0.1", d + "/bad.jsonl:2: expected an object with a \"text\" string or a \"messages\" array"},
        {"-i " + q(d + "/notjson.jsonl") + " --rs 0.1", d + "/notjson.jsonl:3: not valid JSON"},
        {"-i " + q(d + "/nope.jsonl") + " --rs 0.1", d + "/nope.jsonl"},
        {"-i " + q(in), "no augmentation method chosen"},
        {"-i " + q(in) + " --sr 1.5 --synonyms " + syn, "--sr is 1.5, expected a value in (0, 1]"},
        {"-i " + q(in) + " --rd 1", "--rd is 1, expected a value in (0, 1)"},
        {"-i " + q(in) + " --sr 0.1", "--sr needs a synonym file"},
        {"-i " + q(in) + " --back-translate " + model, "--via"},
        {"-i " + q(in) + " --rs 0.1 --via French", "--via needs --back-translate"},
        {"-i " + q(in) + " --back-translate " + q(d + "/no_model") + " --via French", d + "/no_model"},
        {"-i " + q(in) + " --back-translate " + q(d + "/garbage_model") + " --via French", "config.json"},
        {"-i " + q(d + "/long.jsonl") + " --back-translate " + model + " --via French -c 56 -n 4",
         d + "/long.jsonl:2: the translation prompt has"},
    };
    for (const Case& c : cases) {
        SCOPED_TRACE(c.args);
        // A fresh output path is not created, an existing one is not replaced, no temporary is left.
        const std::string fresh = d + "/fresh.jsonl", old = d + "/old.jsonl";
        write_file(old, "OLD\n");
        for (const std::string& out : {fresh, old}) {
            auto r = run_cli("augment " + c.args + " -o " + q(out));
            expect_one_line_error(r, c.expect);
        }
        EXPECT_FALSE(fs::exists(fresh));
        EXPECT_EQ(read_file(old), "OLD\n");
        for (const auto& e : fs::directory_iterator(d))
            EXPECT_EQ(e.path().filename().string().find(".tmp-"), std::string::npos) << e.path();
    }
}
