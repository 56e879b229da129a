// GGUF (v2 and v3) reading and writing.
//
// GgufFile memory-maps a file (or wraps caller-owned bytes) and parses its header: the ordered
// metadata key/value pairs and the tensor infos. Tensor data is never copied: tensor() returns a
// Tensor view into the map that keeps the map alive. Everything in the header is validated against
// the file size with overflow-checked arithmetic before it is used; a malformed file throws
// llmforge::Error with one line naming the file, the key or tensor, what was expected and what was
// found. Parsing allocates at most a small constant times the file size and never crashes or hangs.
//
// Shapes: GGUF lists dims fastest-first (ne0 = row length). GgufTensorInfo::shape and the Tensor
// shape are row-major, i.e. REVERSED: a [4096 out, 11008 in] weight has GGUF dims {11008, 4096}
// and shape {4096, 11008}.
//
// GgufWriter builds a v3 file: metadata of every GGUF value type, tensors given as borrowed
// pointers, Tensors, or fill callbacks (data is streamed to disk one tensor at a time, never
// gathered in RAM). The file is written to a temporary and renamed over the target (AtomicFile).
// Tensor offsets are laid out exactly as llama.cpp requires (in order, each padded to the
// alignment).
//
// Thread safety: a GgufFile is immutable after construction; concurrent reads are safe. A
// GgufWriter is single-threaded.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "core/file.h"
#include "core/tensor.h"

namespace llmforge {

// GGUF metadata value types; values are the on-disk ids.
enum class GgufType : uint32_t {
    kU8 = 0,
    kI8 = 1,
    kU16 = 2,
    kI16 = 3,
    kU32 = 4,
    kI32 = 5,
    kF32 = 6,
    kBool = 7,
    kString = 8,
    kArray = 9,
    kU64 = 10,
    kI64 = 11,
    kF64 = 12,
};
// "u8", "i32", "f32", "bool", "string", "array", ... ("unknown" otherwise).
const char* gguf_type_name(GgufType t);

// True when the file at `path` starts with the GGUF magic (false when it cannot be read or is not
// a regular file). Loaders that go on to read the file use RegularFile::starts_with instead, so
// that the file is opened once.
bool has_gguf_magic(const std::string& path);

constexpr uint32_t kGgufDefaultAlignment = 32;
constexpr size_t kGgufMaxNameLength = 63;  // llama.cpp's GGML_MAX_NAME - 1 (writer enforces it)

// One metadata value: a scalar, a string, or a homogeneous array of scalars or strings.
// Arrays of arrays are not supported (llama.cpp rejects them too).
class GgufValue {
public:
    using Storage = std::variant<uint8_t, int8_t, uint16_t, int16_t, uint32_t, int32_t, float, bool,
                                 std::string, uint64_t, int64_t, double,  //
                                 std::vector<uint8_t>, std::vector<int8_t>, std::vector<uint16_t>,
                                 std::vector<int16_t>, std::vector<uint32_t>, std::vector<int32_t>,
                                 std::vector<float>, std::vector<bool>, std::vector<std::string>,
                                 std::vector<uint64_t>, std::vector<int64_t>, std::vector<double>>;

    GgufValue() : v_(uint8_t{0}) {}
    GgufValue(uint8_t x) : v_(std::in_place_type<uint8_t>, x) {}
    GgufValue(int8_t x) : v_(std::in_place_type<int8_t>, x) {}
    GgufValue(uint16_t x) : v_(std::in_place_type<uint16_t>, x) {}
    GgufValue(int16_t x) : v_(std::in_place_type<int16_t>, x) {}
    GgufValue(uint32_t x) : v_(std::in_place_type<uint32_t>, x) {}
    GgufValue(int32_t x) : v_(std::in_place_type<int32_t>, x) {}
    GgufValue(float x) : v_(std::in_place_type<float>, x) {}
    GgufValue(bool x) : v_(std::in_place_type<bool>, x) {}
    GgufValue(std::string x) : v_(std::in_place_type<std::string>, std::move(x)) {}
    GgufValue(const char* x) : v_(std::in_place_type<std::string>, x) {}
    GgufValue(uint64_t x) : v_(std::in_place_type<uint64_t>, x) {}
    GgufValue(int64_t x) : v_(std::in_place_type<int64_t>, x) {}
    GgufValue(double x) : v_(std::in_place_type<double>, x) {}
    template <class T>
    GgufValue(std::vector<T> x) : v_(std::in_place_type<std::vector<T>>, std::move(x)) {}

    GgufType type() const;       // kArray for arrays
    GgufType elem_type() const;  // element type of an array; type() for scalars
    bool is_array() const { return type() == GgufType::kArray; }
    size_t array_size() const;   // 0 for scalars
    // "u32", "string", "array of f32", ...
    std::string type_str() const;

    template <class T>
    bool is() const { return std::holds_alternative<T>(v_); }
    // Exact-type access. `what` names the value in the error, e.g. "model.gguf: key 'x'".
    template <class T>
    const T& as(std::string_view what) const {
        if (const T* p = std::get_if<T>(&v_)) return *p;
        type_mismatch(what, GgufValue(T{}).type_str());
    }

    // Lenient access for values whose integer width differs between converters: any integer
    // scalar (not bool) as int64; u64 above INT64_MAX throws.
    int64_t to_int(std::string_view what) const;
    // Any float or integer scalar as double.
    double to_double(std::string_view what) const;
    // Any integer array as int64s / any float array as floats.
    std::vector<int64_t> to_int_array(std::string_view what) const;
    std::vector<float> to_float_array(std::string_view what) const;

    // Short human-readable rendering (arrays show the first `max_elems` elements).
    std::string to_string(size_t max_elems = 8) const;

    const Storage& storage() const { return v_; }

private:
    [[noreturn]] void type_mismatch(std::string_view what, const std::string& expected) const;
    Storage v_;
};

struct GgufKV {
    std::string key;
    GgufValue value;
};

struct GgufTensorInfo {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // row-major (GGUF dims reversed); shape.back() is the row length
    uint64_t offset = 0;         // from the start of the data section
    uint64_t nbytes = 0;
    std::string shape_str() const;  // "4096x11008"
};

class GgufFile {
public:
    // Memory-maps and parses `path`. Throws Error on any malformed input.
    explicit GgufFile(const std::string& path);
    // Maps and parses an already opened file (the descriptor may be closed afterwards).
    explicit GgufFile(const RegularFile& file);
    // Parses bytes owned by the caller; `owner` (may be null) keeps them alive for as long as
    // this object and its tensors live. `name` is used in error messages.
    static GgufFile from_memory(const void* data, size_t size, std::string name,
                                std::shared_ptr<const void> owner = nullptr);

    GgufFile(GgufFile&&) noexcept = default;
    GgufFile& operator=(GgufFile&&) noexcept = default;
    GgufFile(const GgufFile&) = delete;
    GgufFile& operator=(const GgufFile&) = delete;

    const std::string& path() const { return name_; }
    uint32_t version() const { return version_; }
    uint32_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // absolute offset of the data section
    uint64_t file_size() const { return size_; }

    // ---- metadata (file order) ----
    const std::vector<GgufKV>& metadata() const { return kv_; }
    const GgufValue* find(std::string_view key) const;  // nullptr if absent
    bool has(std::string_view key) const { return find(key) != nullptr; }
    const GgufValue& at(std::string_view key) const;    // throws naming the file and key

    // Exact-type getters: throw if the key is missing or has another type.
    template <class T>
    const T& get(std::string_view key) const { return at(key).as<T>(key_ctx(key)); }
    // nullopt if the key is missing; throws if it has another type.
    template <class T>
    std::optional<T> get_opt(std::string_view key) const {
        const GgufValue* v = find(key);
        if (v == nullptr) return std::nullopt;
        return v->as<T>(key_ctx(key));
    }
    uint32_t get_u32(std::string_view key) const { return get<uint32_t>(key); }
    int32_t get_i32(std::string_view key) const { return get<int32_t>(key); }
    uint64_t get_u64(std::string_view key) const { return get<uint64_t>(key); }
    int64_t get_i64(std::string_view key) const { return get<int64_t>(key); }
    float get_f32(std::string_view key) const { return get<float>(key); }
    double get_f64(std::string_view key) const { return get<double>(key); }
    bool get_bool(std::string_view key) const { return get<bool>(key); }
    const std::string& get_string(std::string_view key) const { return get<std::string>(key); }
    template <class T>
    const std::vector<T>& get_array(std::string_view key) const {
        return get<std::vector<T>>(key);
    }
    // Lenient numeric getters (any integer width / any float or integer), see GgufValue::to_int.
    int64_t get_int(std::string_view key) const { return at(key).to_int(key_ctx(key)); }
    std::optional<int64_t> get_int_opt(std::string_view key) const;
    double get_float(std::string_view key) const { return at(key).to_double(key_ctx(key)); }
    std::optional<double> get_float_opt(std::string_view key) const;

    // "<file>: key '<key>'", the prefix used in value errors.
    std::string key_ctx(std::string_view key) const;

    // ---- tensors (file order) ----
    const std::vector<GgufTensorInfo>& tensor_infos() const { return tensors_; }
    const GgufTensorInfo* find_tensor(std::string_view name) const;  // nullptr if absent
    bool has_tensor(std::string_view name) const { return find_tensor(name) != nullptr; }
    // A view into the file (throws naming the file if absent). Data whose address is not aligned
    // for its dtype (possible only with general.alignment < 4) is copied instead.
    Tensor tensor(std::string_view name) const;
    Tensor tensor(const GgufTensorInfo& info) const;

private:
    GgufFile() = default;
    void parse();

    std::string name_;
    std::shared_ptr<const void> owner_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = kGgufDefaultAlignment;
    uint64_t data_offset_ = 0;
    std::vector<GgufKV> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<GgufTensorInfo> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

class GgufWriter {
public:
    // `alignment`: a power of two; written as general.alignment when it is not 32.
    explicit GgufWriter(uint32_t alignment = kGgufDefaultAlignment);

    // Adds a key, or replaces its value keeping its position. "general.alignment" is reserved
    // (pass it to the constructor).
    void set(const std::string& key, GgufValue value);
    const GgufValue* find(std::string_view key) const;
    const std::vector<GgufKV>& metadata() const { return kv_; }

    // Tensors are written in the order added. `shape` is row-major (reversed on disk), 1..4
    // dims, each >= 1, the last a multiple of the dtype's block size; names are unique, 1..63
    // bytes. Each add_* checks these and throws Error.
    //
    // Borrowed bytes: `data` must stay valid until write() returns; nbytes must match the shape.
    void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                    const void* data, size_t nbytes);
    // Shares ownership of the tensor's storage. `name` defaults to t.name().
    void add_tensor(const Tensor& t, const std::string& name = "");
    // Produced at write time: `fill(dst, nbytes)` must write exactly nbytes. Only one such
    // buffer exists at a time, so a converter can quantise tensor by tensor.
    using Fill = std::function<void(uint8_t* dst, size_t nbytes)>;
    void add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape, Fill fill);

    size_t n_tensors() const { return tensors_.size(); }

    // Writes a GGUF v3 file crash-safely (temporary file + rename). May be called again.
    void write(const std::string& path) const;

private:
    struct PendingTensor {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        uint64_t nbytes;
        const void* data = nullptr;
        std::shared_ptr<const void> keep;  // for add_tensor(const Tensor&)
        Fill fill;
    };
    uint64_t check_tensor(const std::string& name, DType dtype,
                          const std::vector<int64_t>& shape) const;

    uint32_t alignment_;
    std::vector<GgufKV> kv_;
    std::map<std::string, size_t, std::less<>> kv_index_;
    std::vector<PendingTensor> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;
};

}  // namespace llmforge
