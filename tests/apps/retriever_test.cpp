// The retriever (DPR-style dual encoder, in-batch negatives) on hand-written questions the
// generator did not make, against BM25 on the same passages; and its training and encodings.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/shop/retriever.h"
#include "apps/shop/shop_db.h"
#include "test_util.h"

namespace llmforge::apps {
namespace {

TEST(Retriever, HandWrittenQuestions) {
    const DualEncoder enc(test::src_path("models/retriever"));
    std::ifstream in(test::src_path("tests/apps/data/shop/retrieval_handwritten.jsonl"));
    std::vector<std::pair<std::string, std::vector<std::string>>> qs;
    for (std::string line; std::getline(in, line);) {
        const auto j = nlohmann::json::parse(line);
        qs.emplace_back(j["question"], j["passages"].get<std::vector<std::string>>());
    }
    const RetrievalScore s = score_retrieval(enc, qs);
    std::printf("retrieval (40 hand-written questions, 28 passages): %s\n", s.to_json().dump().c_str());
    ASSERT_EQ(s.questions, 40);
    // Measured: dual encoder 32/40 at 1, 38/40 at 5; BM25 26/40 and 37/40.
    EXPECT_GE(s.dpr_at1, 30);
    EXPECT_GE(s.dpr_at5, 37);
    EXPECT_GE(s.dpr_at1, s.bm25_at1);
}

TEST(Retriever, EncodingsAreUnitAndPrefixesChooseTheEncoder) {
    const DualEncoder enc(test::src_path("models/retriever"));
    const auto q = enc.encode("how do returns work", true), p = enc.encode("how do returns work", false);
    double nq = 0, np = 0, d = 0;
    for (int j = 0; j < DualEncoder::kDims; ++j) nq += q[j] * q[j], np += p[j] * p[j], d += q[j] * p[j];
    EXPECT_NEAR(nq, 1.0, 1e-5);
    EXPECT_NEAR(np, 1.0, 1e-5);
    EXPECT_LT(d, 0.999);  // two encoders
    EXPECT_EQ(enc.encode("query: how do returns work", false), q);
    EXPECT_EQ(enc.encode("passage: how do returns work", true), p);
    const auto e = test::error_of([] { DualEncoder bad(test::temp_dir()); });
    EXPECT_NE(e.find("retriever.safetensors not found (hint:"), std::string::npos) << e;
}

TEST(Retriever, TrainsDeterministically) {
    DualEncoder::TrainOptions o;
    o.per_passage = 30;
    o.epochs = 2;
    const std::string a = test::temp_dir() + "/a", b = test::temp_dir() + "/b";
    const double r = DualEncoder::train(a, o);
    EXPECT_GT(r, 0.3);
    DualEncoder::train(b, o);
    EXPECT_EQ(test::read_file(a + "/retriever.safetensors"), test::read_file(b + "/retriever.safetensors"));
    EXPECT_EQ(retrieval_training_questions(2, 5), retrieval_training_questions(2, 5));
    EXPECT_EQ(knowledge_texts().size(), 28u);
    EXPECT_EQ(knowledge_texts().size(), shop_knowledge().size());
}

}  // namespace
}  // namespace llmforge::apps
