// Knowledge distillation (`train --teacher MODEL --distill-temp T --distill-alpha A`, Hinton et al.
// 2015, "Distilling the Knowledge in a Neural Network"): the student learns from a larger
// teacher's softened output distribution as well as from the labels.
//
//   loss = A · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − A) · CE(s, labels)
//
// per counted row, averaged over the counted rows (t: teacher logits, s: student logits). The T²
// factor keeps the soft term's gradient, which scales as 1/T², on the same scale as the label
// term's whatever T is (Hinton et al. §2), so A alone sets the mix.
//
// The teacher runs in inference mode (a `Model`, the runtime's eager forward over its own KV
// memory, no tape): `Teacher::run` fills a (rows, V) logits buffer for one micro-batch only, so
// nothing of the teacher is ever stored for the whole corpus; packed SFT rows are split at their
// document starts so that the teacher sees each dialogue alone, from position 0, exactly as the
// student does.
//
// Thread safety: a Teacher belongs to one training thread (its caches and scratch are reused).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "model/model.h"
#include "tokenizer/vocab.h"
#include "train/tape.h"

namespace llmforge::train {

// The two terms of the last distill_loss forward, each a mean over the counted rows (for logs).
struct DistillParts {
    double kl = 0;  // KL(softmax(t/T) ‖ softmax(s/T)), before the A · T² weight
    double ce = 0;  // cross-entropy against the labels, before the (1 − A) weight
    int64_t counted = 0;
};

// The distillation loss of student logits (N, V) against the teacher's logits (N, V, row-major
// floats) and the labels (N): a (1) node. A negative target marks a row that is not counted by
// either term (SFT prompts, padding, dialogue boundaries: the same masks as cross_entropy); with
// no counted row the loss is 0 with zero gradient. temperature > 0 and alpha in [0, 1] (checked
// by the caller: the trainer validates its flags). With alpha = 0 the value and gradient are
// cross_entropy's bit for bit (the KL term is not computed); with alpha = 1 the labels only
// mask rows (their cross-entropy is still reported in `parts`, with no gradient). `teacher` and
// `targets` must stay valid until backward (the gradient recomputes the softmaxes from them
// instead of keeping (N, V) copies). Sums in double, in row order (the same value for any
// thread count).
Var distill_loss(Tape& t, Var student, const float* teacher, const int32_t* targets, int64_t n, float temperature,
                 float alpha, DistillParts* parts = nullptr);

// Throws Error (one line) unless the teacher's vocabulary is the student's: the same size, and
// the same token texts when both sides know them (an empty `tokens` list means unknown: a
// llama2.c checkpoint without its tok*.bin, a random-init student without a tokenizer).
// `teacher_path` and `student_desc` name the two in the message.
void check_same_vocab(const Vocab& teacher, int64_t teacher_n_vocab, const std::string& teacher_path,
                      const Vocab& student, int64_t student_n_vocab, const std::string& student_desc);

// The tokenizer that goes with the training data: `tokenizer_flag` when given, else the one a
// `llmforge prepare` folder's meta.json names (resolved against the folder when relative); ""
// when neither says.
std::string data_tokenizer_path(const std::string& tokenizer_flag, const std::string& data);

// The teacher of a distillation run: a Model loaded once, its logits for one micro-batch at a time.
class Teacher {
public:
    // Loads MODEL (GGUF, Hugging Face folder or llama2.c file) and checks its vocabulary against
    // the student's (check_same_vocab): the student model's own token texts, else those of
    // `student_tokenizer` (the data's tokenizer, data_tokenizer_path; "" when none is known).
    static std::unique_ptr<Teacher> open(const std::string& path, const Model& student, const std::string& student_desc,
                                         const std::string& student_tokenizer);
    const Model& model() const { return *model_; }

    // The teacher's logits of B rows of T tokens into logits() ((B·T, V), row-major, valid until
    // the next run). doc_start (B·T, optional): packed rows as in TrainModel::logits; each
    // document of a row is run alone from position 0 (its own KV memory), as the student sees it.
    // Token ids must be < V (the data reader checked them against the student's vocabulary,
    // which is the teacher's).
    void run(const int32_t* tokens, int64_t B, int64_t T, const int32_t* doc_start, ThreadPool& pool);
    const float* logits() const { return logits_.data(); }

private:
    explicit Teacher(std::unique_ptr<Model> m) : model_(std::move(m)) {}
    std::unique_ptr<Model> model_;
    std::vector<std::unique_ptr<KvMemory>> caches_;  // reused: at most B sequences per forward_batch call
    int64_t cache_ctx_ = 0;
    ForwardScratch scratch_;
    std::vector<float> logits_;
};

}  // namespace llmforge::train
