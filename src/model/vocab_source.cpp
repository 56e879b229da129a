#include "model/vocab_source.h"

#include <filesystem>

#include "core/error.h"
#include "io/gguf.h"
#include "io/gguf_model.h"
#include "io/llama2c.h"
#include "tokenizer/hf_tokenizer_json.h"

namespace llmforge {

namespace fs = std::filesystem;

namespace {

Vocab load_tokenizer_json(const fs::path& json) {
    const fs::path cfg = json.parent_path() / "tokenizer_config.json";
    std::error_code ec;
    return hf_tokenizer_json_load(json.string(), fs::exists(cfg, ec) ? cfg.string() : std::string());
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
    if (has_gguf_magic(path)) return gguf_read_vocab(GgufFile(path));
    if (fs::path(path).extension() == ".json") return load_tokenizer_json(path);
    return llama2c_read_vocab(path, n_vocab);
}

}  // namespace llmforge
