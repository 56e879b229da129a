// open_model_files(): every supported file format mapped onto GGUF tensor names.
#include <sys/mman.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <map>

#include "core/error.h"
#include "core/file.h"
#include "io/gguf.h"
#include "model/gguf_model.h"
#include "model/hf_config.h"
#include "model/llama2c.h"
#include "model/mmproj.h"
#include "io/safetensors.h"
#include "model/arch/arch.h"
#include "model/model.h"
#include "model/vocab_source.h"
#include "tokenizer/hf_tokenizer_json.h"

namespace llmforge {

namespace fs = std::filesystem;

namespace {

// Every file is opened once, through RegularFile (core/file.h): FIFOs, devices, sockets and folders
// where a file belongs are refused before anything could block on them.
constexpr const char* kModelFileWhat =
    "a model file (.gguf or llama2.c .bin) or a Hugging Face model folder";

ModelFiles open_gguf(const RegularFile& file) {
    auto f = std::make_shared<GgufFile>(file);
    if (is_mmproj(*f)) return mmproj_files(*f);  // llama.cpp's image encoder (model/mmproj.h)
    ModelFiles m;
    m.path = file.path();
    m.format = "gguf";
    m.config = gguf_read_config(*f);
    if (f->has("tokenizer.ggml.model")) m.vocab = gguf_read_vocab(*f);
    for (const auto& info : f->tensor_infos()) m.tensors[info.name] = f->tensor(info);
    return m;
}

// Copies experts 0..E-1 (all the same dtype and shape) into one owned (E, rows, cols) tensor.
Tensor stack_experts(const SafetensorsSet& set, const std::string& gguf, const std::map<int64_t, std::string>& by_index,
                     const std::string& dir) {
    const int64_t E = static_cast<int64_t>(by_index.size());
    if (by_index.rbegin()->first != E - 1) {
        for (int64_t e = 0; e < E; ++e)
            if (!by_index.count(e)) {
                fail("%s: expert %lld of %s is missing (found %lld experts up to index %lld; hint: are all "
                     "safetensors shards present?)",
                     dir.c_str(), (long long)e, gguf.c_str(), (long long)E, (long long)by_index.rbegin()->first);
            }
    }
    const Tensor first = set.tensor(by_index.begin()->second);
    if (first.ndim() != 2) {
        fail("%s: %s has shape %s, expected a matrix per expert", dir.c_str(), by_index.begin()->second.c_str(),
             first.shape_str().c_str());
    }
    Tensor out = Tensor::empty(first.dtype(), {E, first.dim(0), first.dim(1)}, gguf);
    const size_t bytes = first.nbytes();
    for (const auto& [e, name] : by_index) {
        const Tensor t = set.tensor(name);
        if (t.dtype() != first.dtype() || t.shape() != first.shape()) {
            fail("%s: %s is %s %s, expected %s %s like expert 0 (experts of one layer must match)", dir.c_str(),
                 name.c_str(), dtype_name(t.dtype()), t.shape_str().c_str(), dtype_name(first.dtype()),
                 first.shape_str().c_str());
        }
        std::memcpy(static_cast<uint8_t*>(out.data()) + static_cast<size_t>(e) * bytes, t.data(), bytes);
    }
    return out;
}

ModelFiles open_hf_folder(const std::string& dir) {
    const fs::path d(dir);
    std::error_code ec;
    if (!fs::exists(d / "config.json", ec)) {
        fail("%s: folder has no config.json (expected a Hugging Face model folder with config.json "
             "and model.safetensors)", dir.c_str());
    }
    ModelFiles m;
    m.path = dir;
    m.format = "safetensors";
    m.config = hf_config_read(RegularFile((d / "config.json").string(), "a Hugging Face config.json"));
    const Arch& arch = arch_of(m.config.arch, dir);
    SafetensorsSet set(dir);
    std::map<std::string, std::map<int64_t, std::string>> experts;  // GGUF name -> expert -> HF name
    for (const auto& name : set.tensor_names()) {
        int64_t e = -1;
        const std::string g = hf_to_gguf_name(arch, name, &e, &m.config);
        if (g.empty()) continue;
        if (e >= 0) {
            experts[g][e] = name;
            continue;
        }
        m.tensors[g] = set.tensor(name);
        m.tensors[g].set_name(g);
    }
    // Routed experts: HF has one matrix per expert, the engine one (E, rows, cols) tensor.
    for (const auto& [g, by_index] : experts) m.tensors[g] = stack_experts(set, g, by_index, dir);
    if (fs::exists(d / "tokenizer.json", ec)) {
        const fs::path cfg = d / "tokenizer_config.json";
        m.vocab = hf_tokenizer_json_load((d / "tokenizer.json").string(),
                                         fs::exists(cfg, ec) ? cfg.string() : std::string());
    }
    return m;
}

ModelFiles open_llama2c(const RegularFile& file) {
    Llama2cCheckpoint ck(file);
    const std::string& path = file.path();
    ModelFiles m;
    m.path = path;
    m.format = "llama2c";
    m.config = ck.config();
    for (const Tensor& t : ck.tensors()) m.tensors[t.name()] = t;
    // llama2.c's own tokenizer usually sits beside the checkpoint as tokenizer.bin.
    const fs::path beside = fs::path(path).parent_path() / "tokenizer.bin";
    std::error_code ec;
    if (fs::exists(beside, ec)) m.vocab = llama2c_read_vocab(beside.string(), m.config.n_vocab);
    return m;
}

}  // namespace

void load_into_memory(ModelFiles& files) {
    constexpr uintptr_t kSlice = uintptr_t{4} << 20, kPage = 4096;
    size_t total = 0;
    for (const auto& [name, t] : files.tensors) total += HugeArena::slice_bytes(t.nbytes());
    HugeArena arena(total);
    for (auto& [name, t] : files.tensors) {
        uint8_t* dst = arena.take(t.nbytes());
        // Copied in slices whose source pages then leave this process (release_pages: PAGEOUT,
        // harmless for heap or aliased bytes), so the arena fills as the mapping empties and the
        // peak stays one copy of the weights plus a slice, not two copies.
        const uint8_t* src = static_cast<const uint8_t*>(t.data());
        const uintptr_t base = reinterpret_cast<uintptr_t>(src);
        for (size_t off = 0, end = 0; off < t.nbytes(); off = end) {
            // Each slice ends on a page boundary of the source, so every page is released whole.
            end = std::min(t.nbytes(), static_cast<size_t>(((base + off + kSlice) & ~(kPage - 1)) - base));
            std::memcpy(dst + off, src + off, end - off);
            release_pages(src + off, end - off);
        }
        t = Tensor::view(t.dtype(), t.shape(), dst, arena.owner(), name);
    }
}

ModelFiles open_model_files(const std::string& path, const std::string& tokenizer_path) {
    std::error_code ec;
    const fs::file_status st = fs::status(path, ec);
    if (ec || !fs::exists(st)) {
        fail_kind(ErrorKind::kNotFound,
                  "%s: no such file or folder (hint: -m takes a .gguf file, a Hugging Face folder or a "
                  "llama2.c .bin)", path.c_str());
    }
    ModelFiles m;
    if (fs::is_directory(st)) {
        m = open_hf_folder(path);
    } else {
        // One open: the magic is probed on the descriptor that is then mapped.
        const RegularFile file(path, kModelFileWhat,
                               "-m takes a .gguf file, a Hugging Face folder or a llama2.c .bin");
        if (file.size() == 0) {
            fail("%s: is empty (0 bytes), expected %s (hint: the download or conversion was cut "
                 "short, truncated file?)",
                 path.c_str(), kModelFileWhat);
        }
        m = file.starts_with("GGUF") ? open_gguf(file) : open_llama2c(file);
    }
    if (!tokenizer_path.empty()) m.vocab = load_vocab(tokenizer_path, m.config.n_vocab);
    if (!m.vocab.empty() && static_cast<int64_t>(m.vocab.tokens.size()) != m.config.n_vocab) {
        fail("%s: tokenizer has %zu tokens, the model's vocabulary is %lld (tokenizer from another "
             "model?)", tokenizer_path.empty() ? path.c_str() : tokenizer_path.c_str(),
             m.vocab.tokens.size(), (long long)m.config.n_vocab);
    }
    return m;
}

}  // namespace llmforge
