// Safetensors reading (single files and sharded Hugging Face folders) and writing.
//
// Format: 8-byte little-endian header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [r, c], "data_offsets": [begin, end]}, ...,
//    "__metadata__": {"k": "v"}}
// then the data section; offsets are relative to its start (byte 8 + N). Shapes are row-major,
// the same as llmforge's Tensor (no reversal, unlike GGUF).
//
// SafetensorsFile memory-maps a file (or wraps caller-owned bytes) and validates the whole header
// at open: header length against the file size (and the format's 100 MiB cap), JSON syntax, every
// entry's fields, dtype names, shape x dtype size == end - begin, offsets inside the data section,
// and no two tensors overlapping. Tensor data is never copied: tensor() returns a view into the
// map (data not aligned for its dtype, which the official writer never produces, is copied).
//
// dtypes: F32, F16 and BF16 load as Tensors. Other dtypes of the format (I8, I64, F64, BOOL,
// F8_*, ...) are accepted in the header, so that a checkpoint carrying an extra integer buffer
// still opens, but tensor() on such a tensor throws an Error naming the tensor and its dtype.
// A dtype name the format does not define fails at open.
//
// SafetensorsSet opens a Hugging Face model folder: model.safetensors.index.json ("weight_map":
// tensor name -> shard file) when present, else model.safetensors; it finds any tensor across
// the shards. Missing shard files, and tensors the index places in a shard that lacks them, are
// errors at open.
//
// SafetensorsWriter writes a single file (temporary file + rename, header padded to 8 bytes).
//
// Errors: llmforge::Error, one line naming the file and tensor, expected vs found, and a hint.
// Thread safety: opened objects are immutable; concurrent reads are safe. Writers are
// single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "core/file.h"
#include "core/tensor.h"

namespace llmforge {

struct SafetensorsTensorInfo {
    std::string name;
    std::string dtype_name;     // as in the header: "F32", "BF16", "I64", ...
    bool loadable = false;      // dtype is F32, F16 or BF16
    DType dtype = DType::F32;   // meaningful only when loadable
    std::vector<int64_t> shape; // row-major; empty for a scalar
    uint64_t begin = 0, end = 0;  // data_offsets, relative to the data section
    std::string shape_str() const;  // "4096x11008", "scalar"
};

class SafetensorsFile {
public:
    // Memory-maps and validates `path`. Throws Error on malformed input.
    explicit SafetensorsFile(const std::string& path);
    // Same from an already opened file (the descriptor may be closed afterwards).
    explicit SafetensorsFile(const RegularFile& file);
    // Parses caller-owned bytes; `owner` (may be null) keeps them alive for this object and its
    // tensors. `name` is used in messages.
    static SafetensorsFile from_memory(const void* data, size_t size, std::string name,
                                       std::shared_ptr<const void> owner = nullptr);

    SafetensorsFile(SafetensorsFile&&) noexcept = default;
    SafetensorsFile& operator=(SafetensorsFile&&) noexcept = default;
    SafetensorsFile(const SafetensorsFile&) = delete;
    SafetensorsFile& operator=(const SafetensorsFile&) = delete;

    const std::string& path() const { return name_; }
    uint64_t data_offset() const { return data_offset_; }  // 8 + header length
    uint64_t file_size() const { return size_; }
    // "__metadata__" entries whose values are strings (others are ignored).
    const std::map<std::string, std::string>& metadata() const { return metadata_; }

    // Sorted by name.
    const std::vector<SafetensorsTensorInfo>& tensor_infos() const { return tensors_; }
    const SafetensorsTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
    bool has_tensor(std::string_view name) const { return find_tensor(name) != nullptr; }
    // A view into the file. Throws if absent or of a dtype llmforge does not load.
    Tensor tensor(std::string_view name) const;
    Tensor tensor(const SafetensorsTensorInfo& info) const;

private:
    SafetensorsFile() = default;
    void parse();

    std::string name_;
    std::shared_ptr<const void> owner_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    uint64_t data_offset_ = 0;
    std::map<std::string, std::string> metadata_;
    std::vector<SafetensorsTensorInfo> tensors_;
};

class SafetensorsSet {
public:
    // `path`: a folder with model.safetensors.index.json or model.safetensors, or one
    // .safetensors file. Opens (maps) every shard.
    explicit SafetensorsSet(const std::string& path);

    const std::string& path() const { return path_; }
    // Every tensor the set holds, sorted.
    const std::vector<std::string>& tensor_names() const { return names_; }
    const SafetensorsTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
    bool has_tensor(std::string_view name) const { return find_tensor(name) != nullptr; }
    // Throws if absent (naming the folder) or of an unloadable dtype.
    Tensor tensor(std::string_view name) const;
    // The shard file holding `name` (throws if absent).
    const SafetensorsFile& shard_of(std::string_view name) const;
    size_t n_shards() const { return shards_.size(); }
    const SafetensorsFile& shard(size_t i) const { return *shards_[i]; }

private:
    std::string path_;
    std::vector<std::unique_ptr<SafetensorsFile>> shards_;
    std::map<std::string, size_t, std::less<>> where_;  // tensor name -> shard index
    std::vector<std::string> names_;
};

class SafetensorsWriter {
public:
    void set_metadata(const std::string& key, const std::string& value);
    // dtype must be F32, F16 or BF16; shape row-major (may be empty for a scalar, dims may be 0).
    // `data` is borrowed: it must stay valid until write() returns; nbytes must match the shape.
    void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                    const void* data, size_t nbytes);
    // Shares ownership of the tensor's storage. `name` defaults to t.name().
    void add_tensor(const Tensor& t, const std::string& name = "");
    size_t n_tensors() const { return tensors_.size(); }
    // Writes the file crash-safely (temporary + rename). May be called again.
    void write(const std::string& path) const;

private:
    struct Pending {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        const void* data;
        uint64_t nbytes;
        std::shared_ptr<const void> keep;
    };
    std::map<std::string, std::string> metadata_;
    std::vector<Pending> tensors_;
    std::map<std::string, size_t, std::less<>> index_;
};

}  // namespace llmforge
