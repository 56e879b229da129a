// llmforge retrieve -q TEXT [-m MODEL] [-k 5]: the shop's knowledge passages nearest to a question
// (apps/shop/retriever.h: the dual encoder's query against its passage embeddings); --score FILE
// reads {"question", "passages"} lines and prints recall@1/@5 of the dual encoder and of BM25.
// llmforge retrieval-train --out DIR trains the encoders (make retriever-model).
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/shop/retriever.h"
#include "apps/shop/shop_db.h"
#include "commands.h"
#include "core/error.h"

namespace llmforge::cli {

void add_retrieve(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("retrieve", "Find the shop's knowledge passages that answer a question");
    static std::string model, question, score_file;
    static int k = 5;
    sub->add_option("-m,--model", model, "retriever folder (default: the shipped models/retriever)");
    sub->add_option("-q,--question", question, "the question");
    sub->add_option("-k", k, "passages to print")->capture_default_str()->check(CLI::Range(1, 100));
    sub->add_option("--score", score_file, "JSONL of {\"question\", \"passages\": [ids]}: recall@1/@5 on stderr");
    run = [] {
        const apps::DualEncoder enc(model.empty() ? shipped_model("retriever") : model);
        if (!score_file.empty()) {
            std::ifstream in(score_file);
            if (!in) fail("retrieve --score: cannot read %s", score_file.c_str());
            std::vector<std::pair<std::string, std::vector<std::string>>> qs;
            std::string line;
            for (int64_t no = 1; std::getline(in, line); ++no) {
                const auto j = nlohmann::json::parse(line, nullptr, false);
                if (j.is_discarded() || !j.is_object() || !j.contains("question") || !j["question"].is_string() ||
                    !j.contains("passages") || !j["passages"].is_array())
                    fail("retrieve --score: %s line %lld: expected {\"question\": …, \"passages\": [ids]}", score_file.c_str(),
                         (long long)no);
                qs.emplace_back(j["question"].get<std::string>(), j["passages"].get<std::vector<std::string>>());
            }
            std::fprintf(stderr, "%s\n", apps::score_retrieval(enc, qs).to_json().dump().c_str());
            return 0;
        }
        if (question.empty()) fail("retrieve: no question (hint: -q \"how do returns work?\" or --score FILE)");
        const apps::PassageIndex idx(enc, apps::knowledge_texts());
        for (const auto& h : idx.search(question, static_cast<size_t>(k))) {
            const auto& p = apps::shop_knowledge()[h.index];
            std::printf("%s\n", nlohmann::ordered_json{{"id", p.id}, {"score", h.score}, {"title", p.title}}.dump().c_str());
        }
        return 0;
    };
}

void add_retrieval_train(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("retrieval-train", "Train the retriever's query and passage encoders (in-batch negatives)");
    static std::string out;
    static apps::DualEncoder::TrainOptions o;
    sub->add_option("-o,--out", out, "model folder to write")->required();
    sub->add_option("--seed", o.seed, "generator and initialisation seed")->capture_default_str();
    sub->add_option("--per-passage", o.per_passage, "generated questions per passage")->capture_default_str();
    sub->add_option("--epochs", o.epochs, "passes over the questions")->capture_default_str();
    sub->add_option("--batch", o.batch, "passages per batch (one per kind of question)")->capture_default_str();
    sub->add_option("--lr", o.lr, "SGD learning rate (linear decay)")->capture_default_str();
    run = [] {
        if (o.per_passage < 5 || o.epochs < 1 || o.batch < 2)
            fail("retrieval-train: expected --per-passage >= 5, --epochs >= 1, --batch >= 2");
        const double r1 = apps::DualEncoder::train(out, o);
        std::fprintf(stderr, "retrieval-train: recall@1 on held-out generated questions %.4f -> %s\n", r1, out.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
