// The project's default chat model (models/default, made by `make default-model`): it loads as a
// Hugging Face folder, fits the 20 MB budget, answers shop questions (greedy) with the shop's
// policies from its training corpus, and — run as the shop assistant (`chat --app shop`) on a
// database of orders it never saw — answers an order question with that order's facts: it writes
// slot references ({id}, {eta}, …) that the assistant fills from the order it looked up.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <vector>

#include "cli_run.h"

using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

std::string model_dir() {
    const char* src = std::getenv("LLMFORGE_SRC");
    return std::string(src ? src : ".") + "/models/default";
}

// A seed-2 shop database (orders the model never saw) and one of its customers with an order.
struct Shop {
    std::string db, customer, order;
};
Shop make_shop() {
    Shop s{llmforge::test::temp_dir() + "/shop.db", "", ""};
    EXPECT_EQ(run_cli("shop init --seed 2 --customers 20 --orders 40 --db " + q(s.db)).rc, 0);
    std::string ids;
    EXPECT_EQ(llmforge::test::run_command("python3 -c \"import sqlite3,sys; print(*sqlite3.connect(sys.argv[1]).execute("
                                          "'SELECT id, customer_id FROM orders ORDER BY id LIMIT 1').fetchone())\" " + q(s.db),
                                          &ids),
              0);
    s.order = ids.substr(0, 6), s.customer = ids.substr(7, 6);
    return s;
}

// The assistant's replies (greedy) to `lines`, one session of the shop's customer.
std::vector<std::string> chat_as_customer(const Shop& shop, const std::vector<std::string>& lines, std::string* out = nullptr) {
    std::string input;
    for (const auto& l : lines) input += l + "\n";
    auto r = run_cli_input("chat -m " + q(model_dir()) + " --app shop --db " + q(shop.db) + " --customer " + shop.customer +
                               " --temp 0 -n 96 -t 2",
                           input);
    EXPECT_EQ(r.rc, 0) << r.err;
    if (out) *out = r.out;
    std::vector<std::string> replies;
    std::istringstream in(r.out);
    for (std::string l; std::getline(in, l);)
        if (l.rfind("assistant: ", 0) == 0) replies.push_back(l.substr(11));
    EXPECT_EQ(replies.size(), lines.size()) << r.out;
    replies.resize(lines.size());
    return replies;
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
    const Shop shop = make_shop();
    const auto r = chat_as_customer(shop, {"I want to return the Yoga Mat from order #" + shop.order + ".",
                                           "How much does shipping cost?", "My card was declined. What should I do?"});
    EXPECT_NE(r[0].find("30 days"), std::string::npos) << r[0];
    EXPECT_NE(r[0].find("return label"), std::string::npos) << r[0];
    EXPECT_NE(r[1].find("$4.99"), std::string::npos) << r[1];
    EXPECT_NE(r[1].find("$9.99"), std::string::npos) << r[1];
    EXPECT_NE(r[2].find("billing address"), std::string::npos) << r[2];
}

TEST(DefaultModel, AsTheShopAssistantAnswersWithTheOrdersFacts) {
    const Shop shop = make_shop();
    const auto o = nlohmann::json::parse(run_cli("shop order " + shop.order + " --db " + q(shop.db)).out);
    std::string out;
    const std::string a = chat_as_customer(shop, {"Where is my order #" + shop.order + "?"}, &out)[0];
    EXPECT_NE(out.find("  state: {"), std::string::npos) << out;  // the scripted session shows the state
    EXPECT_NE(out.find("  lookup: order #" + shop.order), std::string::npos) << out;
    EXPECT_NE(a.find("#" + shop.order), std::string::npos) << a;
    static const char* kMonths[] = {"January", "February", "March",     "April",   "May",      "June",
                                    "July",    "August",   "September", "October", "November", "December"};
    const std::string eta = o["eta"];  // 2026-05-14
    const std::string eta_words = std::string(kMonths[std::stoi(eta.substr(5, 2)) - 1]) + " " + std::to_string(std::stoi(eta.substr(8, 2)));
    EXPECT_NE(a.find(eta_words), std::string::npos) << a << " (the order's estimate: " << eta_words << ")";
    EXPECT_EQ(a.find('{'), std::string::npos) << "an unfilled slot reference: " << a;
}

}  // namespace
