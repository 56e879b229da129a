#include "io/safetensors.h"

#include <algorithm>
#include <cinttypes>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "io/atomic_file.h"
#include "io/byte_reader.h"

namespace llmforge {

using io_detail::add_ok;
using io_detail::mul_ok;
using io_detail::printable;
using io_detail::quote_name;
using json = nlohmann::json;
namespace fs = std::filesystem;

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the format's own limit (100 MiB)

struct StDType {
    const char* name;
    int size;        // bytes per element
    bool loadable;   // maps to an llmforge DType
    DType dtype;
};
// Every dtype the safetensors format defines (byte-sized or larger).
constexpr StDType kDTypes[] = {
    {"F32", 4, true, DType::F32},      {"F16", 2, true, DType::F16},
    {"BF16", 2, true, DType::BF16},    {"F64", 8, false, DType::F32},
    {"I64", 8, false, DType::F32},     {"U64", 8, false, DType::F32},
    {"I32", 4, false, DType::F32},     {"U32", 4, false, DType::F32},
    {"I16", 2, false, DType::F32},     {"U16", 2, false, DType::F32},
    {"I8", 1, false, DType::F32},      {"U8", 1, false, DType::F32},
    {"BOOL", 1, false, DType::F32},    {"F8_E4M3", 1, false, DType::F32},
    {"F8_E5M2", 1, false, DType::F32}, {"F8_E8M0", 1, false, DType::F32},
};

const StDType* find_dtype(const std::string& s) {
    for (const StDType& d : kDTypes) {
        if (s == d.name) return &d;
    }
    return nullptr;
}

int elem_size(const SafetensorsTensorInfo& t) {
    const StDType* d = find_dtype(t.dtype_name);
    return d ? d->size : 1;
}


// One line, no control characters: nlohmann's messages may quote raw input.
std::string json_error(const std::exception& e) { return printable(e.what(), 200); }

}  // namespace

std::string SafetensorsTensorInfo::shape_str() const { return shape_to_string(shape); }

// ------------------------------------------------------------------------------------------------
// SafetensorsFile

SafetensorsFile::SafetensorsFile(const std::string& path)
    : SafetensorsFile(RegularFile(path, "a .safetensors file")) {}

SafetensorsFile::SafetensorsFile(const RegularFile& file) : name_(file.path()) {
    auto map = std::make_shared<const FileMap>(file);
    data_ = map->data();
    size_ = map->size();
    owner_ = std::move(map);
    parse();
}

SafetensorsFile SafetensorsFile::from_memory(const void* data, size_t size, std::string name,
                                             std::shared_ptr<const void> owner) {
    SafetensorsFile f;
    f.name_ = std::move(name);
    f.data_ = static_cast<const uint8_t*>(data);
    f.size_ = size;
    f.owner_ = std::move(owner);
    f.parse();
    return f;
}

void SafetensorsFile::parse() {
    const char* file = name_.c_str();
    if (size_ < 8) {
        fail("%s: too small to be a safetensors file: expected at least 8 bytes, file has %zu "
             "(truncated?)",
             file, size_);
    }
    uint64_t n;
    std::memcpy(&n, data_, 8);
    if (n > size_ - 8) {
        fail("%s: header length is %" PRIu64 " bytes, but the file has only %zu bytes after the "
             "8-byte length (truncated, or not a safetensors file?)",
             file, n, size_ - 8);
    }
    if (n > kMaxHeader) {
        fail("%s: header length is %" PRIu64 " bytes, expected at most %" PRIu64
             " (the safetensors limit; corrupt file?)",
             file, n, kMaxHeader);
    }
    if (n < 2 || data_[8] != '{') {
        fail("%s: header does not start with '{' (expected a JSON object; not a safetensors "
             "file?)",
             file);
    }
    data_offset_ = 8 + n;
    const uint64_t data_size = size_ - data_offset_;

    json h;
    try {
        h = json::parse(data_ + 8, data_ + 8 + n);
    } catch (const json::exception& e) {
        fail("%s: header is not valid JSON: %s (corrupt file?)", file, json_error(e).c_str());
    }
    if (!h.is_object()) fail("%s: header is not a JSON object (corrupt file?)", file);

    for (auto it = h.begin(); it != h.end(); ++it) {
        const std::string& key = it.key();
        const json& v = it.value();
        if (key == "__metadata__") {
            if (v.is_object()) {
                for (auto m = v.begin(); m != v.end(); ++m) {
                    if (m.value().is_string()) metadata_[m.key()] = m.value().get<std::string>();
                }
            }
            continue;
        }
        const std::string qn = quote_name(key);
        if (!v.is_object()) {
            fail("%s: tensor %s: expected an object with dtype, shape and data_offsets, found %s "
                 "(corrupt file?)",
                 file, qn.c_str(), v.type_name());
        }
        SafetensorsTensorInfo t;
        t.name = key;
        auto dt = v.find("dtype");
        auto sh = v.find("shape");
        auto off = v.find("data_offsets");
        if (dt == v.end() || !dt->is_string()) {
            fail("%s: tensor %s has no string \"dtype\" (corrupt file?)", file, qn.c_str());
        }
        t.dtype_name = dt->get<std::string>();
        const StDType* d = find_dtype(t.dtype_name);
        if (d == nullptr) {
            fail("%s: tensor %s has dtype '%s', which is not a safetensors dtype (expected F32, "
                 "F16, BF16, F64, I64, I32, I16, I8, U8, BOOL, ...; corrupt file?)",
                 file, qn.c_str(), printable(t.dtype_name).c_str());
        }
        t.loadable = d->loadable;
        t.dtype = d->dtype;
        if (sh == v.end() || !sh->is_array()) {
            fail("%s: tensor %s has no \"shape\" array (corrupt file?)", file, qn.c_str());
        }
        uint64_t numel = 1;
        for (const json& e : *sh) {
            if (!e.is_number_unsigned() || e.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX)) {
                fail("%s: tensor %s has shape entry %s, expected a non-negative integer (corrupt "
                     "file?)",
                     file, qn.c_str(), printable(e.dump(), 40).c_str());
            }
            const uint64_t dim = e.get<uint64_t>();
            if (!mul_ok(numel, dim, &numel) || numel > static_cast<uint64_t>(INT64_MAX)) {
                fail("%s: tensor %s has too many elements (the shape's product overflows; corrupt "
                     "file?)",
                     file, qn.c_str());
            }
            t.shape.push_back(static_cast<int64_t>(dim));
        }
        if (off == v.end() || !off->is_array() || off->size() != 2 ||
            !(*off)[0].is_number_unsigned() || !(*off)[1].is_number_unsigned()) {
            fail("%s: tensor %s: \"data_offsets\" must be [begin, end] with non-negative integers "
                 "(corrupt file?)",
                 file, qn.c_str());
        }
        t.begin = (*off)[0].get<uint64_t>();
        t.end = (*off)[1].get<uint64_t>();
        if (t.begin > t.end || t.end > data_size) {
            fail("%s: tensor %s has data_offsets [%" PRIu64 ", %" PRIu64
                 "], but the data section has %" PRIu64 " bytes (file has %zu; truncated?)",
                 file, qn.c_str(), t.begin, t.end, data_size, size_);
        }
        uint64_t expected;
        if (!mul_ok(numel, static_cast<uint64_t>(d->size), &expected) ||
            expected != t.end - t.begin) {
            fail("%s: tensor %s (%s, shape %s) has %" PRIu64 " bytes of data, expected %" PRIu64
                 " (corrupt file?)",
                 file, qn.c_str(), d->name, t.shape_str().c_str(), t.end - t.begin,
                 mul_ok(numel, static_cast<uint64_t>(d->size), &expected) ? expected : UINT64_MAX);
        }
        tensors_.push_back(std::move(t));
    }
    // nlohmann::json objects iterate in key order, so tensors_ is sorted by name.

    std::vector<const SafetensorsTensorInfo*> by_offset;
    for (const auto& t : tensors_) {
        if (t.end > t.begin) by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const auto* a, const auto* b) { return a->begin < b->begin; });
    for (size_t i = 1; i < by_offset.size(); ++i) {
        const auto* a = by_offset[i - 1];
        const auto* b = by_offset[i];
        if (b->begin < a->end) {
            fail("%s: tensor %s (bytes %" PRIu64 "..%" PRIu64 ") overlaps tensor %s (bytes %" PRIu64
                 "..%" PRIu64 ") (corrupt file?)",
                 file, quote_name(a->name).c_str(), a->begin, a->end, quote_name(b->name).c_str(),
                 b->begin, b->end);
        }
    }
}

const SafetensorsTensorInfo* SafetensorsFile::find_tensor(std::string_view name) const {
    auto it = std::lower_bound(tensors_.begin(), tensors_.end(), name,
                               [](const SafetensorsTensorInfo& t, std::string_view n) {
                                   return std::string_view(t.name) < n;
                               });
    return it != tensors_.end() && it->name == name ? &*it : nullptr;
}

Tensor SafetensorsFile::tensor(std::string_view name) const {
    const SafetensorsTensorInfo* t = find_tensor(name);
    if (t == nullptr) {
        fail("%s: tensor '%s' not found (file has %zu tensors; hint: wrong architecture or a "
             "different shard?)",
             name_.c_str(), printable(name).c_str(), tensors_.size());
    }
    return tensor(*t);
}

Tensor SafetensorsFile::tensor(const SafetensorsTensorInfo& t) const {
    if (!t.loadable) {
        fail("%s: tensor %s has dtype %s, which llmforge does not load (supported: F32, F16, BF16; "
             "hint: convert the checkpoint to one of these)",
             name_.c_str(), quote_name(t.name).c_str(), printable(t.dtype_name).c_str());
    }
    const uint8_t* p = data_ + data_offset_ + t.begin;
    if (reinterpret_cast<uintptr_t>(p) % static_cast<uintptr_t>(elem_size(t)) != 0) {
        Tensor c = Tensor::empty(t.dtype, t.shape, t.name);
        std::memcpy(c.data(), p, static_cast<size_t>(t.end - t.begin));
        return c;
    }
    return Tensor::view(t.dtype, t.shape, p, owner_, t.name);
}

// ------------------------------------------------------------------------------------------------
// SafetensorsSet

SafetensorsSet::SafetensorsSet(const std::string& path) : path_(path) {
    std::error_code ec;
    if (!fs::exists(path, ec)) {
        fail("%s: no such file or folder (hint: pass a Hugging Face model folder or a "
             ".safetensors file)",
             path.c_str());
    }
    if (!fs::is_directory(path, ec)) {
        shards_.push_back(std::make_unique<SafetensorsFile>(path));
        for (const auto& t : shards_[0]->tensor_infos()) {
            where_.emplace(t.name, 0);
            names_.push_back(t.name);
        }
        return;
    }
    const fs::path dir(path);
    const fs::path index = dir / "model.safetensors.index.json";
    if (!fs::exists(index, ec)) {
        const fs::path single = dir / "model.safetensors";
        if (!fs::exists(single, ec)) {
            fail("%s: folder has neither model.safetensors.index.json nor model.safetensors "
                 "(hint: is the download complete? only the safetensors format is supported)",
                 path.c_str());
        }
        shards_.push_back(std::make_unique<SafetensorsFile>(single.string()));
        for (const auto& t : shards_[0]->tensor_infos()) {
            where_.emplace(t.name, 0);
            names_.push_back(t.name);
        }
        return;
    }

    const std::string iname = index.string();
    const char* ifile = iname.c_str();
    const std::string text = RegularFile(iname, "model.safetensors.index.json").read_all();
    json j;
    try {
        j = json::parse(text);
    } catch (const json::exception& e) {
        fail("%s: not valid JSON: %s", ifile, json_error(e).c_str());
    }
    if (!j.is_object() || !j.contains("weight_map") || !j["weight_map"].is_object()) {
        fail("%s: expected an object with a \"weight_map\" object (tensor name -> shard file)",
             ifile);
    }
    std::map<std::string, size_t> shard_index;  // file name -> index into shards_
    std::vector<std::pair<std::string, std::string>> entries;  // tensor, shard file
    for (auto it = j["weight_map"].begin(); it != j["weight_map"].end(); ++it) {
        if (!it.value().is_string()) {
            fail("%s: weight_map entry %s is not a file name string", ifile,
                 quote_name(it.key()).c_str());
        }
        const std::string shard = it.value().get<std::string>();
        const fs::path sp(shard);
        bool bad = shard.empty() || sp.is_absolute();
        for (const auto& part : sp) bad = bad || part == "..";
        if (bad) {
            fail("%s: weight_map entry %s names shard '%s', expected a file name inside the "
                 "folder",
                 ifile, quote_name(it.key()).c_str(), printable(shard).c_str());
        }
        entries.emplace_back(it.key(), shard);
        shard_index.emplace(shard, 0);
    }
    for (auto& [shard, idx] : shard_index) {
        const fs::path sp = dir / shard;
        // Present but not a regular file (a FIFO, a folder): SafetensorsFile says what it is.
        if (!fs::exists(sp, ec)) {
            size_t n = 0;
            std::string example;
            for (const auto& [t, s] : entries) {
                if (s == shard) {
                    if (n++ == 0) example = t;
                }
            }
            fail("%s: shard '%s' (holds %s and %zu other tensors) is missing from %s "
                 "(hint: incomplete download?)",
                 ifile, printable(shard).c_str(), quote_name(example).c_str(), n - 1, path.c_str());
        }
        idx = shards_.size();
        shards_.push_back(std::make_unique<SafetensorsFile>(sp.string()));
    }
    for (const auto& [t, s] : entries) {
        const size_t idx = shard_index.at(s);
        if (!shards_[idx]->has_tensor(t)) {
            fail("%s: weight_map puts tensor %s in shard '%s', but that shard does not contain it "
                 "(hint: the index and shards come from different downloads?)",
                 ifile, quote_name(t).c_str(), printable(s).c_str());
        }
        where_.emplace(t, idx);
        names_.push_back(t);
    }
}

const SafetensorsTensorInfo* SafetensorsSet::find_tensor(std::string_view name) const {
    auto it = where_.find(name);
    return it == where_.end() ? nullptr : shards_[it->second]->find_tensor(name);
}

const SafetensorsFile& SafetensorsSet::shard_of(std::string_view name) const {
    auto it = where_.find(name);
    if (it == where_.end()) {
        fail("%s: tensor '%s' not found in any shard (%zu tensors in %zu files; hint: wrong "
             "architecture?)",
             path_.c_str(), printable(name).c_str(), names_.size(), shards_.size());
    }
    return *shards_[it->second];
}

Tensor SafetensorsSet::tensor(std::string_view name) const { return shard_of(name).tensor(name); }

// ------------------------------------------------------------------------------------------------
// SafetensorsWriter

void SafetensorsWriter::set_metadata(const std::string& key, const std::string& value) {
    metadata_[key] = value;
}

void SafetensorsWriter::add_tensor(const std::string& name, DType dtype,
                                   std::vector<int64_t> shape, const void* data, size_t nbytes) {
    const std::string qn = quote_name(name);
    if (name.empty() || name == "__metadata__") {
        fail("safetensors writer: invalid tensor name %s", qn.c_str());
    }
    if (index_.count(name)) fail("safetensors writer: tensor %s added twice", qn.c_str());
    if (dtype != DType::F32 && dtype != DType::F16 && dtype != DType::BF16) {
        fail("safetensors writer: tensor %s has dtype %s, expected f32, f16 or bf16", qn.c_str(),
             dtype_name(dtype));
    }
    uint64_t numel = 1;
    for (int64_t d : shape) {
        if (d < 0 || !mul_ok(numel, static_cast<uint64_t>(d), &numel)) {
            fail("safetensors writer: tensor %s has an invalid shape", qn.c_str());
        }
    }
    uint64_t expected;
    if (!mul_ok(numel, static_cast<uint64_t>(dtype_info(dtype).type_size), &expected) ||
        expected != nbytes) {
        fail("safetensors writer: tensor %s (%s) is given %zu bytes, expected %" PRIu64,
             qn.c_str(), dtype_name(dtype), nbytes, expected);
    }
    if (data == nullptr && nbytes > 0) fail("safetensors writer: tensor %s has no data", qn.c_str());
    index_.emplace(name, tensors_.size());
    tensors_.push_back(Pending{name, dtype, std::move(shape), data, nbytes, nullptr});
}

void SafetensorsWriter::add_tensor(const Tensor& t, const std::string& name) {
    const std::string& n = name.empty() ? t.name() : name;
    if (!t.defined()) fail("safetensors writer: tensor '%s' has no data", n.c_str());
    auto holder = std::make_shared<Tensor>(t);
    add_tensor(n, t.dtype(), t.shape(), holder->data(), t.nbytes());
    tensors_.back().keep = std::move(holder);
}

void SafetensorsWriter::write(const std::string& path) const {
    nlohmann::ordered_json h = nlohmann::ordered_json::object();
    if (!metadata_.empty()) {
        nlohmann::ordered_json m = nlohmann::ordered_json::object();
        for (const auto& [k, v] : metadata_) m[k] = v;
        h["__metadata__"] = std::move(m);
    }
    uint64_t offset = 0;
    for (const Pending& t : tensors_) {
        const char* dt = t.dtype == DType::F32 ? "F32" : t.dtype == DType::F16 ? "F16" : "BF16";
        h[t.name] = {{"dtype", dt}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.nbytes}}};
        offset += t.nbytes;
    }
    std::string text;
    try {
        text = h.dump();
    } catch (const nlohmann::json::exception& e) {
        fail("%s: cannot encode the header: %s (hint: tensor names and metadata must be UTF-8)",
             path.c_str(), json_error(e).c_str());
    }
    while ((8 + text.size()) % 8 != 0) text += ' ';
    const uint64_t n = text.size();
    AtomicFile out(path);
    out.write(&n, 8);
    out.write(text.data(), text.size());
    for (const Pending& t : tensors_) out.write(t.data, static_cast<size_t>(t.nbytes));
    out.commit();
}

}  // namespace llmforge
