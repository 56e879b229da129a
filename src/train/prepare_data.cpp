#include "train/prepare_data.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/file.h"
#include "core/random.h"
#include "io/atomic_file.h"
#include "model/vocab_source.h"
#include "runtime/chat.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace llmforge::train {

namespace fs = std::filesystem;

namespace {

// Token shards of one split, each written through AtomicFile; with masks, a mask shard of the
// same token count beside each (SFT data).
class ShardWriter {
public:
    ShardWriter(std::string dir, std::string prefix, int width, int64_t max_tokens, bool masks)
        : dir_(std::move(dir)), prefix_(std::move(prefix)), width_(width), max_(max_tokens), masks_(masks) {}
    // mask: one byte per id (masks only), else nullptr.
    void add(const std::vector<int32_t>& ids, const uint8_t* mask = nullptr) {
        LF_ASSERT(masks_ == (mask != nullptr));
        for (size_t i = 0; i < ids.size(); ++i) {
            if (!file_ || in_file_ == max_) open_next();
            const uint32_t v = static_cast<uint32_t>(ids[i]);
            const auto* p = reinterpret_cast<const uint8_t*>(&v);  // little-endian (x86-64)
            buf_.insert(buf_.end(), p, p + width_);
            if (masks_) mbuf_.push_back(mask[i]);
            if (buf_.size() >= (1u << 20)) flush();
            ++in_file_, ++total_;
            if (mask && (mask[i] & 1)) ++counted_;
        }
    }
    void finish() {
        flush();
        if (file_) file_->commit();
        if (mfile_) mfile_->commit();
        file_.reset();
        mfile_.reset();
    }
    int64_t total() const { return total_; }
    int64_t counted() const { return counted_; }
    const std::vector<std::string>& names() const { return names_; }
    const std::vector<std::string>& mask_names() const { return mask_names_; }

private:
    void flush() {
        if (file_ && !buf_.empty()) file_->write(buf_.data(), buf_.size());
        if (mfile_ && !mbuf_.empty()) mfile_->write(mbuf_.data(), mbuf_.size());
        buf_.clear();
        mbuf_.clear();
    }
    void open_next() {
        finish();
        char buf[64];
        std::snprintf(buf, sizeof buf, "%s-%05zu.%s", prefix_.c_str(), names_.size(), width_ == 2 ? "u16" : "u32");
        names_.push_back(buf);
        file_ = std::make_unique<AtomicFile>((fs::path(dir_) / buf).string());
        if (masks_) {
            std::snprintf(buf, sizeof buf, "%s-%05zu.mask", prefix_.c_str(), mask_names_.size());
            mask_names_.push_back(buf);
            mfile_ = std::make_unique<AtomicFile>((fs::path(dir_) / buf).string());
        }
        in_file_ = 0;
    }
    std::string dir_, prefix_;
    int width_;
    int64_t max_, in_file_ = 0, total_ = 0, counted_ = 0;
    bool masks_;
    std::unique_ptr<AtomicFile> file_, mfile_;
    std::vector<std::string> names_, mask_names_;
    std::vector<uint8_t> buf_, mbuf_;
};

bool goes_to_val(int64_t i, double fraction) {
    return uniform53(mix64(static_cast<uint64_t>(i) + kGoldenGamma)) < fraction;
}

const char* json_type(const nlohmann::ordered_json& j) {
    if (j.is_null()) return "null";
    if (j.is_boolean()) return "a boolean";
    if (j.is_number()) return "a number";
    if (j.is_string()) return "a string";
    if (j.is_array()) return "a list";
    return "an object";
}

size_t common_prefix(const std::string& a, const std::string& b) {
    const size_t n = std::min(a.size(), b.size());
    size_t i = 0;
    while (i < n && a[i] == b[i]) ++i;
    return i;
}

std::string trim_ws(const std::string& s, bool left = true, bool right = true, const char* ws = " \t\r\n") {
    size_t b = 0, e = s.size();
    if (left) b = s.find_first_not_of(ws);
    if (b == std::string::npos) return "";
    if (right) e = s.find_last_not_of(ws) + 1;
    return s.substr(b, e - b);
}

// The forms a template may print an assistant content in, most literal first.
std::vector<std::string> content_forms(const std::string& c) {
    std::vector<std::string> f;
    auto add = [&f](std::string s) {
        if (!s.empty() && std::find(f.begin(), f.end(), s) == f.end()) f.push_back(std::move(s));
    };
    add(c);
    add(trim_ws(c));
    const size_t last = c.rfind("</think>"), first = c.find("</think>");
    if (last != std::string::npos) {
        add(trim_ws(c.substr(last + 8), true, false, "\n"));
        add(trim_ws(c.substr(last + 8)));
        add(c.substr(first + 8));
    }
    return f;
}

// s with control bytes escaped (\n, \t, \xHH), for one-line messages.
std::string printable(const std::string& s) {
    std::string r;
    for (unsigned char c : s) {
        if (c == '\n') r += "\\n";
        else if (c == '\t') r += "\\t";
        else if (c < 0x20 || c == 0x7f) r += strfmt("\\x%02x", c);
        else r += static_cast<char>(c);
    }
    return r;
}

// Byte span [first, second) in `text` of each token: decoded pieces (special tokens rendered) laid
// along the text. A BOS the encoder added (not in the text) and a SentencePiece dummy-prefix space
// take no bytes.
std::vector<std::pair<size_t, size_t>> token_spans(const Tokenizer& tok, const std::string& text,
                                                   const std::vector<int32_t>& ids, const std::string& where) {
    std::vector<std::pair<size_t, size_t>> spans(ids.size());
    size_t at = 0;
    for (size_t i = 0; i < ids.size(); ++i) {
        std::string piece = tok.token_to_piece(ids[i], true);
        if (i == 0 && ids[i] == tok.bos() && text.compare(0, piece.size(), piece) != 0) {
            spans[i] = {0, 0};  // BOS added by encode_prompt
            continue;
        }
        if (text.compare(at, piece.size(), piece) != 0 && !piece.empty() && piece[0] == ' ' &&
            (at >= text.size() || text[at] != ' '))
            piece.erase(0, 1);  // dummy prefix
        if (text.compare(at, piece.size(), piece) != 0)
            fail("%s: token %zu (id %d) decodes to \"%s\" where the rendered chat has \"%s\" at byte %zu, expected the "
                 "tokens to spell the text back (a normalising tokenizer? hint: SFT masks need a tokenizer whose "
                 "pieces are the text's bytes)",
                 where.c_str(), i, ids[i], printable(piece).c_str(),
                 printable(text.substr(at, std::max<size_t>(piece.size(), 1))).c_str(), at);
        spans[i] = {at, at + piece.size()};
        at += piece.size();
    }
    if (at != text.size())
        fail("%s: the tokens spell %zu of the rendered chat's %zu bytes, expected all (hint: a tokenizer that drops "
             "text cannot make SFT masks)", where.c_str(), at, text.size());
    return spans;
}

}  // namespace

void check_chat_line(const nlohmann::ordered_json& j, const std::string& where) {
    if (!j.is_object() || !j.contains("messages"))
        fail("%s: expected an object with a \"messages\" list (an OpenAI-style chat), found %s%s (hint: --chat reads "
             "one {\"messages\": [{\"role\": ..., \"content\": ...}, ...]} per line)",
             where.c_str(), json_type(j), j.is_object() ? " without \"messages\"" : "");
    const auto& m = j["messages"];
    if (!m.is_array())
        fail("%s: \"messages\" is %s, expected a list of {\"role\", \"content\"} objects", where.c_str(), json_type(m));
    std::string roles;
    bool assistant = false;
    for (size_t i = 0; i < m.size(); ++i) {
        const auto& msg = m[i];
        if (!msg.is_object() || !msg.contains("role") || !msg["role"].is_string())
            fail("%s: message %zu is %s%s, expected {\"role\": \"user\"|\"assistant\"|..., \"content\": \"...\"}",
                 where.c_str(), i, json_type(msg), msg.is_object() ? " without a \"role\" string" : "");
        const std::string role = msg["role"].get<std::string>();
        const bool tool_calls = msg.contains("tool_calls") && !msg["tool_calls"].is_null();
        const bool has_content = msg.contains("content") && !msg["content"].is_null();
        if (has_content ? !msg["content"].is_string() : !tool_calls)
            fail("%s: message %zu (%s) has %s \"content\", expected a string (hint: lists of content parts are not "
                 "supported; join them into one string)",
                 where.c_str(), i, role.c_str(), has_content ? json_type(msg["content"]) : "no");
        if (role == "assistant") assistant = true;
        if (roles.find(role) == std::string::npos) roles += (roles.empty() ? "" : ", ") + role;
    }
    if (!assistant)
        fail("%s: the chat has no assistant turn (roles: %s), expected at least one {\"role\": \"assistant\"} message "
             "(hint: SFT learns only from assistant replies: add the reply or drop the line)",
             where.c_str(), roles.empty() ? "none" : roles.c_str());
}

SftExample render_sft_example(const Tokenizer& tok, const ChatTemplate& tmpl, const nlohmann::ordered_json& messages,
                              const std::string& where) {
    ChatTemplateInputs base;
    if (tok.bos() >= 0) base.bos_token = tok.token_text(tok.bos());
    if (tok.eos() >= 0) base.eos_token = tok.token_text(tok.eos());
    auto render = [&](nlohmann::ordered_json msgs, bool generation_prompt) {
        ChatTemplateInputs in = base;
        in.messages = std::move(msgs);
        in.add_generation_prompt = generation_prompt;
        return tmpl.render(in);
    };
    SftExample ex;
    try {
        ex.text = render(messages, false);
    } catch (const Error& e) {
        fail("%s: %s", where.c_str(), e.what());
    }
    const std::string& text = ex.text;
    // Where each assistant reply's turn begins: the whole render agrees with the render of what
    // came before it plus the generation prompt up to there (a prompt the template cannot render
    // alone, e.g. an empty list, starts the search at the previous reply's end).
    struct Turn {
        size_t lo = 0, begin = 0, content_end = 0, end = 0;
        std::vector<std::string> forms;
    };
    std::vector<Turn> turns;
    for (size_t i = 0; i < messages.size(); ++i) {
        const auto& msg = messages[i];
        if (msg.value("role", "") != "assistant") continue;
        Turn t;
        if (i > 0) {
            try {
                t.lo = common_prefix(render(nlohmann::ordered_json(messages.begin(), messages.begin() + i), true), text);
            } catch (const Error&) {
                t.lo = 0;
            }
        }
        if (msg.contains("content") && msg["content"].is_string()) t.forms = content_forms(msg["content"].get<std::string>());
        turns.push_back(std::move(t));
    }
    size_t prev = 0;
    for (size_t j = 0; j < turns.size(); ++j) {
        Turn& t = turns[j];
        t.lo = std::max(t.lo, prev);
        const size_t limit = j + 1 < turns.size() && turns[j + 1].lo >= t.lo ? std::max(turns[j + 1].lo, t.lo) : text.size();
        t.begin = t.content_end = t.lo;
        for (const std::string& f : t.forms) {
            const size_t p = text.find(f, t.lo);
            if (p != std::string::npos && p + f.size() <= limit) {
                t.begin = p, t.content_end = p + f.size();
                break;
            }
        }
        prev = t.content_end;
    }
    ex.tokens = encode_prompt(tok, text, true, true);
    const auto spans = token_spans(tok, text, ex.tokens, where);
    ex.mask.assign(ex.tokens.size(), 0);
    size_t ti = 0;
    for (size_t j = 0; j < turns.size(); ++j) {
        Turn& t = turns[j];
        const size_t limit = j + 1 < turns.size() ? std::max(turns[j + 1].begin, t.content_end) : text.size();
        // The end-of-turn token: the first end-of-generation token after the content.
        t.end = t.content_end;
        while (ti < spans.size() && spans[ti].first < t.content_end) ++ti;
        for (size_t e = ti; e < spans.size() && spans[e].first < limit; ++e)
            if (tok.is_eog(ex.tokens[e]) && spans[e].second > spans[e].first) {
                t.end = spans[e].second;
                break;
            }
        // Spans are in text order: start at the first token ending after the reply begins.
        size_t i = static_cast<size_t>(
            std::partition_point(spans.begin(), spans.end(), [&t](const auto& sp) { return sp.second <= t.begin; }) -
            spans.begin());
        for (; i < spans.size() && spans[i].first < t.end; ++i)
            if (spans[i].second > spans[i].first) ex.mask[i] = 1;
    }
    return ex;
}

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
    std::optional<ChatFormat> chat_format = load_chat_format(*tok, o.tokenizer, o.chat_template, true);
    const ChatTemplate* tmpl = chat_format ? &chat_format->tmpl : nullptr;
    if (o.chat) {
        if (!tmpl) fail("prepare --chat: %s", no_chat_template_message(o.tokenizer, "--chat-template").c_str());
        // Every line is checked before anything is written: a bad chat leaves no folder behind.
        for (const std::string& in : o.inputs) {
            if (fs::path(in).extension() != ".jsonl")
                fail("%s: --chat reads .jsonl files, found a '%s' file (hint: one {\"messages\": [...]} conversation "
                     "per line, in a file named *.jsonl)", in.c_str(), fs::path(in).extension().string().c_str());
            std::ifstream f(in, std::ios::binary);
            if (!f) fail("%s: cannot open", in.c_str());
            std::string line;
            int64_t no = 0;
            while (std::getline(f, line)) {
                ++no;
                if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
                const std::string where = in + ":" + std::to_string(no);
                nlohmann::ordered_json j;
                try {
                    j = nlohmann::ordered_json::parse(line);
                } catch (const nlohmann::json::exception& e) {
                    fail("%s: not valid JSON (%s)", where.c_str(), e.what());
                }
                check_chat_line(j, where);
            }
        }
    }
    const int width = tok->n_vocab() <= 65536 ? 2 : 4;
    std::error_code ec;
    fs::create_directories(o.out, ec);
    if (ec) fail("prepare: cannot create %s (%s)", o.out.c_str(), ec.message().c_str());
    fs::remove(fs::path(o.out) / "meta.json", ec);  // the folder is incomplete until the end
    ShardWriter train(o.out, "train", width, o.shard_tokens, o.chat), val(o.out, "val", width, o.shard_tokens, o.chat);
    PrepareResult res;
    double done_bytes = 0;
    auto add_doc = [&](const std::string& text, bool special) {
        std::vector<int32_t> ids = tok->encode(text, false, special);
        if (o.eos) ids.push_back(eos);
        (goes_to_val(res.documents, o.val_fraction) ? val : train).add(ids);
        ++res.documents;
    };
    auto add_chat = [&](const nlohmann::ordered_json& messages, const std::string& where) {
        SftExample ex = render_sft_example(*tok, *tmpl, messages, where);
        if (o.eos && (ex.tokens.empty() || ex.tokens.back() != eos)) {
            ex.tokens.push_back(eos);
            ex.mask.push_back(0);
        }
        if (ex.tokens.empty()) fail("%s: the chat renders to no tokens", where.c_str());
        ex.mask[0] |= 2;  // the dialogue starts here
        (goes_to_val(res.documents, o.val_fraction) ? val : train).add(ex.tokens, ex.mask.data());
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
                if (o.chat) {
                    add_chat(j["messages"], in + ":" + std::to_string(no));
                } else if (j.is_object() && j.contains(o.field) && j[o.field].is_string()) {
                    add_doc(j[o.field].get<std::string>(), false);
                } else if (j.is_object() && j.contains("messages") && j["messages"].is_array()) {
                    if (!tmpl)
                        fail("%s:%lld: a \"messages\" line needs a chat template, and tokenizer %s has none", in.c_str(),
                             (long long)no, o.tokenizer.c_str());
                    ChatTemplateInputs ci;  // plain data: the rendered chat as one document, no mask
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
    res.counted_tokens = train.counted() + val.counted();
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
    if (o.chat) {
        meta["sft"] = true;
        meta["mask_format"] = "u8 per token: bit 0 counted by the loss, bit 1 first token of a dialogue";
        meta["chat_template"] = chat_format->name;
        meta["train_masks"] = train.mask_names();
        meta["val_masks"] = val.mask_names();
        meta["train_counted"] = train.counted();
        meta["val_counted"] = val.counted();
    }
    const std::string text = meta.dump(1) + "\n";
    AtomicFile mf((fs::path(o.out) / "meta.json").string());
    mf.write(text.data(), text.size());
    mf.commit();
    res.bytes = static_cast<int64_t>(total_bytes);
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return res;
}

}  // namespace llmforge::train
