#include "train/prepare_data.h"

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "model/vocab_source.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::train {

namespace fs = std::filesystem;

namespace {

// Token shards of one split, each written through AtomicFile.
class ShardWriter {
public:
    ShardWriter(std::string dir, std::string prefix, int width, int64_t max_tokens)
        : dir_(std::move(dir)), prefix_(std::move(prefix)), width_(width), max_(max_tokens) {}
    void add(const std::vector<int32_t>& ids) {
        for (int32_t id : ids) {
            if (!file_ || in_file_ == max_) open_next();
            const uint32_t v = static_cast<uint32_t>(id);
            const auto* p = reinterpret_cast<const uint8_t*>(&v);  // little-endian (x86-64)
            buf_.insert(buf_.end(), p, p + width_);
            if (buf_.size() >= (1u << 20)) flush();
            ++in_file_, ++total_;
        }
    }
    void finish() {
        flush();
        if (file_) file_->commit();
        file_.reset();
    }
    int64_t total() const { return total_; }
    const std::vector<std::string>& names() const { return names_; }

private:
    void flush() {
        if (file_ && !buf_.empty()) file_->write(buf_.data(), buf_.size());
        buf_.clear();
    }
    void open_next() {
        finish();
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s-%05zu.%s", prefix_.c_str(), names_.size(), width_ == 2 ? "u16" : "u32");
        names_.push_back(buf);
        file_ = std::make_unique<AtomicFile>((fs::path(dir_) / buf).string());
        in_file_ = 0;
    }
    std::string dir_, prefix_;
    int width_;
    int64_t max_, in_file_ = 0, total_ = 0;
    std::unique_ptr<AtomicFile> file_;
    std::vector<std::string> names_;
    std::vector<uint8_t> buf_;
};

bool goes_to_val(int64_t i, double fraction) {
    return uniform53(mix64(static_cast<uint64_t>(i) + kGoldenGamma)) < fraction;
}

}  // namespace

PrepareResult prepare_data(const PrepareOptions& o, const std::function<void(double, double)>& progress) {
    const auto t0 = std::chrono::steady_clock::now();
    if (o.inputs.empty()) fail("prepare: no --input files");
    if (!(o.val_fraction >= 0 && o.val_fraction < 1)) fail("prepare: --val-fraction is %g, expected in [0, 1)", o.val_fraction);
    if (o.shard_tokens < 1) fail("prepare: --shard-tokens must be positive");
    double total_bytes = 0;
    for (const std::string& in : o.inputs) {
        std::error_code ec;
        const auto sz = fs::file_size(in, ec);
        if (ec) fail("%s: no such input file (%s)", in.c_str(), ec.message().c_str());
        total_bytes += static_cast<double>(sz);
    }
    Vocab vocab = load_vocab(o.tokenizer);
    auto tok = Tokenizer::create(vocab);
    const int32_t eos = tok->eos();
    if (o.eos && eos < 0)
        fail("prepare: tokenizer %s has no EOS token to end documents with (hint: --no-eos)", o.tokenizer.c_str());
    std::unique_ptr<ChatTemplate> tmpl;
    if (!vocab.chat_template.empty()) tmpl = std::make_unique<ChatTemplate>(vocab.chat_template, o.tokenizer);
    const int width = tok->n_vocab() <= 65536 ? 2 : 4;
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec) fail("prepare: cannot create %s (%s)", o.out.c_str(), ec.message().c_str());
    fs::remove(fs::path(o.out) / "meta.json", ec);  // the folder is incomplete until the end
    ShardWriter train(o.out, "train", width, o.shard_tokens), val(o.out, "val", width, o.shard_tokens);
    PrepareResult res;
    double done_bytes = 0;
    auto add_doc = [&](const std::string& text, bool special) {
        std::vector<int32_t> ids = tok->encode(text, false, special);
        if (o.eos) ids.push_back(eos);
        (goes_to_val(res.documents, o.val_fraction) ? val : train).add(ids);
        ++res.documents;
    };
    for (const std::string& in : o.inputs) {
        const bool jsonl = fs::path(in).extension() == ".jsonl";
        std::ifstream f(in, std::ios::binary);
        if (!f) fail("%s: cannot open", in.c_str());
        std::string line, para;
        int64_t no = 0;
        while (std::getline(f, line)) {
            ++no;
            done_bytes += static_cast<double>(line.size() + 1);
            if (jsonl) {
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                nlohmann::ordered_json j;
                try {
                    j = nlohmann::ordered_json::parse(line);
                } catch (const nlohmann::json::exception& e) {
                    fail("%s:%lld: not valid JSON (%s)", in.c_str(), (long long)no, e.what());
                }
                if (j.is_object() && j.contains(o.field) && j[o.field].is_string()) {
                    add_doc(j[o.field].get<std::string>(), false);
                } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
                    if (!tmpl)
                        fail("%s:%lld: a \"messages\" line needs a chat template, and tokenizer %s has none", in.c_str(),
                             (long long)no, o.tokenizer.c_str());
                    ChatTemplateInputs ci;
                    ci.messages = j["messages"];
                    ci.add_generation_prompt = false;
                    if (tok->bos() >= 0) ci.bos_token = tok->token_text(tok->bos());
                    if (eos >= 0) ci.eos_token = tok->token_text(eos);
                    add_doc(tmpl->render(ci), true);
                } else {
                    fail("%s:%lld: expected an object with a \"%s\" string or a \"messages\" array", in.c_str(),
                         (long long)no, o.field.c_str());
                }
            } else if (line.find_first_not_of(" \t\r") == std::string::npos) {
                if (!para.empty()) add_doc(para, false);
                para.clear();
            } else {
                para += para.empty() ? line : "\n" + line;
            }
            if (progress && no % 256 == 0) progress(done_bytes, total_bytes);
        }
        if (!para.empty()) add_doc(para, false);
        res.bytes += static_cast<int64_t>(done_bytes);
    }
    if (progress) progress(total_bytes, total_bytes);
    train.finish();
    val.finish();
    if (train.total() == 0) fail("prepare: no training tokens (empty input?)");
    res.train_tokens = train.total();
    res.val_tokens = val.total();
    nlohmann::ordered_json meta = {{"format", "llmforge-tokens-v1"},
                                   {"dtype", width == 2 ? "u16" : "u32"},
                                   {"vocab_size", tok->n_vocab()},
                                   {"eos_id", eos},
                                   {"tokenizer", fs::absolute(o.tokenizer).string()},
                                   {"documents", res.documents},
                                   {"train_tokens", res.train_tokens},
                                   {"val_tokens", res.val_tokens},
                                   {"train_shards", train.names()},
                                   {"val_shards", val.names()}};
    const std::string text = meta.dump(1) + "\n";
    AtomicFile mf((fs::path(o.out) / "meta.json").string());
    mf.write(text.data(), text.size());
    mf.commit();
    res.bytes = static_cast<int64_t>(total_bytes);
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace llmforge::train
