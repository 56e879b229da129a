// Long-term memory retrieval for the shop assistant: a DPR-style dual encoder — a query encoder
// and a passage encoder, each a learned projection of a text's hashed word and character n-grams
// (text_classifier.h's features) to a unit vector of kDims — trained here with in-batch negatives
// (a batch holds distinct passages, one question each; each question's softmax over the batch's
// passages, temperature kTau), on questions from a generator (retrieval_data.cpp) and the
// corpus's and the DST generator's customer turns labelled with the passage that answers them.
// Exact search over the index (the shop has tens of passages; a conversation's turns add a few
// per session): a dot product per passage.
//
// Embeddings for other programs (serve --embeddings: OpenAI's /v1/embeddings): encode() with
// `query` chooses the encoder; texts starting "query: " use the query encoder (E5's convention,
// so one-model clients such as LangChain can still ask for either).
//
// Thread safety: a loaded encoder and a built index are immutable; use them from any thread.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace llmforge::apps {

class DualEncoder {
public:
    static constexpr int kDims = 128;
    static constexpr int kHashBits = 14;
    static constexpr float kTau = 0.05f;

    // dir/retriever.safetensors (query.weight, passage.weight: (2^kHashBits, kDims) f16); throws Error.
    explicit DualEncoder(const std::string& dir);
    std::vector<float> encode(const std::string& text, bool query) const;  // unit vector (kDims)

    struct TrainOptions {
        uint64_t seed = 1;
        int64_t per_passage = 400;  // generated questions per passage
        int epochs = 4;
        int batch = 16;
        float lr = 0.5f;
    };
    // Trains and writes dir/retriever.safetensors; returns recall@1 on held-out generated questions.
    static double train(const std::string& dir, const TrainOptions& o);

private:
    std::vector<float> q_, p_;  // (2^kHashBits, kDims) row-major
};

struct RetrievalHit {
    size_t index;  // into the passages given to the index
    double score;
};

// Exact nearest-neighbour search over passage embeddings.
class PassageIndex {
public:
    PassageIndex(const DualEncoder& enc, std::vector<std::string> texts);
    std::vector<RetrievalHit> search(const std::string& query, size_t k) const;
    size_t size() const { return texts_.size(); }

private:
    const DualEncoder& enc_;
    std::vector<std::string> texts_;
    std::vector<std::vector<float>> emb_;
};

// The text the passage encoder reads for each of the shop's knowledge passages (shop_knowledge()
// order): title, ". ", text.
const std::vector<std::string>& knowledge_texts();

// (question, passage id) pairs for training, deterministic in seed (retrieval_data.cpp).
std::vector<std::pair<std::string, std::string>> retrieval_training_questions(uint64_t seed, int64_t per_passage);

// Recall@1 / @5 of the dual encoder and of BM25 on the same passages, for questions with their
// acceptable passage ids (the hand-written sets).
struct RetrievalScore {
    int64_t questions = 0, dpr_at1 = 0, dpr_at5 = 0, bm25_at1 = 0, bm25_at5 = 0;
    nlohmann::ordered_json to_json() const;
};
RetrievalScore score_retrieval(const DualEncoder& enc,
                               const std::vector<std::pair<std::string, std::vector<std::string>>>& questions);

}  // namespace llmforge::apps
