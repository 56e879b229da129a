// The project's default chat model (models/default, made by `make default-model`): it loads as a
// Hugging Face folder, fits the 20 MB budget, and answers shop questions (greedy) with the shop's
// policies from its training corpus. What it does not do reliably — copy the customer's order
// number digit for digit (it keeps the letter, then invents digits) — is not asserted.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <regex>

#include "cli_run.h"

using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

std::string model_dir() {
    const char* src = std::getenv("LLMFORGE_SRC");
    return std::string(src ? src : ".") + "/models/default";
}

std::string ask(const std::string& question) {
    auto r = run_cli_input("chat -m " + q(model_dir()) + " --temp 0 -n 96 -t 2", question + "\n");
    EXPECT_EQ(r.rc, 0) << r.err;
    const size_t p = r.out.find("assistant: ");
    return p == std::string::npos ? r.out : r.out.substr(p + 11);
}

TEST(DefaultModel, IsASmallHuggingFaceFolder) {
    const std::string d = model_dir();
    for (const char* f : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "loss.svg"})
        EXPECT_TRUE(fs::exists(d + "/" + f)) << f;
    size_t total = 0;
    for (const auto& e : fs::directory_iterator(d)) total += e.is_regular_file() ? fs::file_size(e.path()) : 0;
    EXPECT_LE(total, 20u << 20);
    auto r = run_cli("info -m " + q(d));
    EXPECT_EQ(r.rc, 0) << r.err;
}

TEST(DefaultModel, AnswersWithTheShopsPolicies) {
    const std::string ret = ask("I want to return the Yoga Mat from order #C48213.");
    EXPECT_NE(ret.find("30 days"), std::string::npos) << ret;
    EXPECT_NE(ret.find("return label"), std::string::npos) << ret;
    const std::string ship = ask("How much does shipping cost?");
    EXPECT_NE(ship.find("$4.99"), std::string::npos) << ship;
    EXPECT_NE(ship.find("$9.99"), std::string::npos) << ship;
    const std::string card = ask("My card was declined. What should I do?");
    EXPECT_NE(card.find("billing address"), std::string::npos) << card;
}

TEST(DefaultModel, AnswersAnOrderQuestionWithAnOrderStatus) {
    const std::string a = ask("Where is my order #C48213?");
    EXPECT_EQ(a.rfind("Order #", 0), 0u) << a;
    EXPECT_TRUE(a.find("ship") != std::string::npos || a.find("arrive") != std::string::npos) << a;
}

}  // namespace
