#include "model/vocab_source.h"

#include <filesystem>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "model/llama2c.h"
#include "tokenizer/hf_tokenizer_json.h"

namespace llmforge {

namespace fs = std::filesystem;

namespace {

Vocab load_tokenizer_json(const fs::path& json) {
    const fs::path cfg = json.parent_path() / "tokenizer_config.json";
    std::error_code ec;
    return hf_tokenizer_json_load(json.string(), fs::exists(cfg, ec) ? cfg.string() : std::string());
}

// A tokenizer.json already opened (its sibling tokenizer_config.json is read when present).
Vocab load_tokenizer_json(const RegularFile& json) {
    const fs::path cfg = fs::path(json.path()).parent_path() / "tokenizer_config.json";
    std::error_code ec;
    const std::string text = json.read_all();
    if (text.empty()) {
        fail("%s: is empty (0 bytes), expected a Hugging Face tokenizer.json (hint: the download "
             "was cut short? fetch it again)",
             json.path().c_str());
    }
    const std::string config =
        fs::exists(cfg, ec) ? read_file(cfg.string(), "tokenizer_config.json") : std::string();
    return hf_tokenizer_json_parse(text, config, "", json.path());
}

}  // namespace

Vocab load_vocab(const std::string& path, int64_t n_vocab) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        fail("%s: no such file or folder (hint: a tokenizer is a .gguf file, a tokenizer.json, a "
             "folder holding one, or a llama2.c tok*.bin)",
             path.c_str());
    }
    if (fs::is_directory(st)) {
        const fs::path json = fs::path(path) / "tokenizer.json";
        if (!fs::exists(json, ec)) {
            fail("%s: folder has no tokenizer.json (hint: point -m at the Hugging Face model "
                 "folder, or at a .gguf file)",
                 path.c_str());
        }
        return load_tokenizer_json(json);
    }
    // One open: the magic is probed on the descriptor that is then read (core/file.h refuses
    // FIFOs, devices and sockets without blocking on them).
    const RegularFile file(path, "a tokenizer (.gguf, tokenizer.json or llama2.c tok*.bin)",
                           "check the path and its permissions");
    if (file.size() == 0) {
        fail("%s: is empty (0 bytes), expected a tokenizer (.gguf, tokenizer.json or llama2.c "
             "tok*.bin) (hint: the download was cut short, truncated file?)",
             path.c_str());
    }
    if (file.starts_with("GGUF")) return gguf_read_vocab(GgufFile(file));
    if (fs::path(path).extension() == ".json") return load_tokenizer_json(file);
    return llama2c_read_vocab(file, n_vocab);
}

}  // namespace llmforge
