#include "io/gguf.h"

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstring>
#include <limits>

#include "core/file.h"
#include "io/atomic_file.h"
#include "io/byte_reader.h"

namespace llmforge {

using io_detail::add_ok;
using io_detail::align_up_ok;
using io_detail::ByteReader;
using io_detail::mul_ok;
using io_detail::printable;
using io_detail::quote_name;

namespace {

constexpr uint32_t kMagic = 0x46554747;   // "GGUF" read as little-endian u32
constexpr uint64_t kMaxCount = 1u << 24;  // tensors, kv pairs (sanity cap, far above real files)
constexpr uint32_t kMaxDims = 4;

// ggml type names by id, for messages about types llmforge does not load.
const char* ggml_type_name(uint32_t id) {
    static const char* const kNames[] = {
        "f32",     "f16",    "q4_0",    "q4_1",  "q4_2 (removed)", "q4_3 (removed)", "q5_0",
        "q5_1",    "q8_0",   "q8_1",    "q2_k",  "q3_k",           "q4_k",           "q5_k",
        "q6_k",    "q8_k",   "iq2_xxs", "iq2_xs", "iq3_xxs",       "iq1_s",          "iq4_nl",
        "iq3_s",   "iq2_s",  "iq4_xs",  "i8",    "i16",            "i32",            "i64",
        "f64",     "iq1_m",  "bf16",    "q4_0_4_4 (removed)",      "q4_0_4_8 (removed)",
        "q4_0_8_8 (removed)", "tq1_0",  "tq2_0", "iq4_nl_4_4 (removed)",
        "iq4_nl_4_8 (removed)", "iq4_nl_8_8 (removed)"};
    return id < sizeof(kNames) / sizeof(kNames[0]) ? kNames[id] : "not a ggml type";
}

// Minimum alignment of a dtype's elements / block fields, for deciding whether a view is safe.
size_t dtype_alignment(DType t) {
    switch (t) {
        case DType::F32:
        case DType::Q8_K: return 4;
        default: return 2;
    }
}


template <class T>
std::vector<T> read_pod_array(ByteReader& r, uint64_t n, const char* what) {
    uint64_t bytes;
    if (!mul_ok(n, sizeof(T), &bytes)) r.need(UINT64_MAX, what);
    r.need(bytes, what);
    std::vector<T> out(static_cast<size_t>(n));
    if (n > 0) std::memcpy(out.data(), r.here(), static_cast<size_t>(bytes));
    r.read_bytes(bytes, what);
    return out;
}

std::string read_string(ByteReader& r, const char* what) {
    const uint64_t len = r.read<uint64_t>(what);
    if (len > r.remaining()) {
        fail("%s: %s at offset %zu has length %" PRIu64 ", but only %zu bytes remain (file has %zu; "
             "truncated or corrupt?)",
             r.name().c_str(), what, r.pos() - 8, len, r.remaining(), r.size());
    }
    return std::string(r.read_bytes(len, what));
}

}  // namespace

bool has_gguf_magic(const std::string& path) {
    try {
        return RegularFile(path, "a GGUF file").starts_with("GGUF");
    } catch (const Error&) {
        return false;
    }
}

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::kU8: return "u8";
        case GgufType::kI8: return "i8";
        case GgufType::kU16: return "u16";
        case GgufType::kI16: return "i16";
        case GgufType::kU32: return "u32";
        case GgufType::kI32: return "i32";
        case GgufType::kF32: return "f32";
        case GgufType::kBool: return "bool";
        case GgufType::kString: return "string";
        case GgufType::kArray: return "array";
        case GgufType::kU64: return "u64";
        case GgufType::kI64: return "i64";
        case GgufType::kF64: return "f64";
    }
    return "unknown";
}

// ------------------------------------------------------------------------------------------------
// GgufValue

namespace {
// Variant index -> GGUF type of the scalar or of the array element.
constexpr GgufType kIndexType[] = {
    GgufType::kU8,  GgufType::kI8,  GgufType::kU16, GgufType::kI16,    GgufType::kU32,
    GgufType::kI32, GgufType::kF32, GgufType::kBool, GgufType::kString, GgufType::kU64,
    GgufType::kI64, GgufType::kF64,
    // arrays
    GgufType::kU8,  GgufType::kI8,  GgufType::kU16, GgufType::kI16,    GgufType::kU32,
    GgufType::kI32, GgufType::kF32, GgufType::kBool, GgufType::kString, GgufType::kU64,
    GgufType::kI64, GgufType::kF64};
constexpr size_t kFirstArrayIndex = 12;
static_assert(std::variant_size_v<GgufValue::Storage> == 24);
}  // namespace

GgufType GgufValue::type() const {
    return v_.index() >= kFirstArrayIndex ? GgufType::kArray : kIndexType[v_.index()];
}

GgufType GgufValue::elem_type() const { return kIndexType[v_.index()]; }

size_t GgufValue::array_size() const {
    return std::visit(
        [](const auto& x) -> size_t {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, std::string>) {
                return 0;
            } else if constexpr (requires { x.size(); }) {
                return x.size();
            } else {
                return 0;
            }
        },
        v_);
}

std::string GgufValue::type_str() const {
    if (is_array()) return std::string("array of ") + gguf_type_name(elem_type());
    return gguf_type_name(type());
}

void GgufValue::type_mismatch(std::string_view what, const std::string& expected) const {
    fail("%.*s has type %s, expected %s (hint: the file was written by a converter llmforge does "
         "not know, or the key means something else here)",
         static_cast<int>(what.size()), what.data(), type_str().c_str(), expected.c_str());
}

int64_t GgufValue::to_int(std::string_view what) const {
    return std::visit(
        [&](const auto& x) -> int64_t {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_integral_v<X> && !std::is_same_v<X, bool>) {
                if constexpr (std::is_same_v<X, uint64_t>) {
                    if (x > static_cast<uint64_t>(INT64_MAX)) {
                        fail("%.*s is %" PRIu64 ", expected at most %" PRId64,
                             static_cast<int>(what.size()), what.data(), x, INT64_MAX);
                    }
                }
                return static_cast<int64_t>(x);
            } else {
                type_mismatch(what, "an integer");
            }
        },
        v_);
}

double GgufValue::to_double(std::string_view what) const {
    return std::visit(
        [&](const auto& x) -> double {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_arithmetic_v<X> && !std::is_same_v<X, bool>) {
                return static_cast<double>(x);
            } else {
                type_mismatch(what, "a number");
            }
        },
        v_);
}

std::vector<int64_t> GgufValue::to_int_array(std::string_view what) const {
    return std::visit(
        [&](const auto& x) -> std::vector<int64_t> {
            using X = std::decay_t<decltype(x)>;
            if constexpr (requires { typename X::value_type; } && !std::is_same_v<X, std::string>) {
                using E = typename X::value_type;
                if constexpr (std::is_integral_v<E> && !std::is_same_v<E, bool>) {
                    std::vector<int64_t> out;
                    out.reserve(x.size());
                    for (E e : x) {
                        if constexpr (std::is_same_v<E, uint64_t>) {
                            if (e > static_cast<uint64_t>(INT64_MAX)) {
                                fail("%.*s has element %" PRIu64 ", expected at most %" PRId64,
                                     static_cast<int>(what.size()), what.data(), e, INT64_MAX);
                            }
                        }
                        out.push_back(static_cast<int64_t>(e));
                    }
                    return out;
                }
            }
            type_mismatch(what, "an array of integers");
        },
        v_);
}

std::vector<float> GgufValue::to_float_array(std::string_view what) const {
    if (const auto* f = std::get_if<std::vector<float>>(&v_)) return *f;
    if (const auto* d = std::get_if<std::vector<double>>(&v_)) {
        return std::vector<float>(d->begin(), d->end());
    }
    type_mismatch(what, "an array of f32");
}

std::string GgufValue::to_string(size_t max_elems) const {
    auto one = [](const auto& e) -> std::string {
        using E = std::decay_t<decltype(e)>;
        if constexpr (std::is_same_v<E, std::string>) {
            std::string q(1, '"');
            q += printable(e, 60);
            q += '"';
            return q;
        } else if constexpr (std::is_same_v<E, bool>) {
            return e ? "true" : "false";
        } else if constexpr (std::is_floating_point_v<E>) {
            return strfmt("%g", static_cast<double>(e));
        } else if constexpr (std::is_signed_v<E>) {
            return std::to_string(static_cast<long long>(e));
        } else {
            return std::to_string(static_cast<unsigned long long>(e));
        }
    };
    return std::visit(
        [&](const auto& x) -> std::string {
            using X = std::decay_t<decltype(x)>;
            if constexpr (requires { typename X::value_type; } && !std::is_same_v<X, std::string>) {
                std::string s = "[";
                for (size_t i = 0; i < x.size() && i < max_elems; ++i) {
                    if (i) s += ", ";
                    s += one(static_cast<typename X::value_type>(x[i]));
                }
                if (x.size() > max_elems) s += strfmt(", ... (%zu total)", x.size());
                return s + "]";
            } else {
                return one(x);
            }
        },
        v_);
}

// ------------------------------------------------------------------------------------------------
// GgufTensorInfo

std::string GgufTensorInfo::shape_str() const { return shape_to_string(shape); }

// ------------------------------------------------------------------------------------------------
// GgufFile: parsing

GgufFile::GgufFile(const std::string& path) : GgufFile(RegularFile(path, "a GGUF file")) {}

GgufFile::GgufFile(const RegularFile& file) : name_(file.path()) {
    auto map = std::make_shared<const FileMap>(file);
    data_ = map->data();
    size_ = map->size();
    owner_ = std::move(map);
    parse();
}

GgufFile GgufFile::from_memory(const void* data, size_t size, std::string name,
                               std::shared_ptr<const void> owner) {
    GgufFile f;
    f.name_ = std::move(name);
    f.data_ = static_cast<const uint8_t*>(data);
    f.size_ = size;
    f.owner_ = std::move(owner);
    f.parse();
    return f;
}

namespace {

// The magic, with a hint naming what the file is instead (legacy GGML, safetensors, big-endian).
void check_magic(ByteReader& r, const uint8_t* data, size_t size, const char* file) {
    if (size < 4) {
        fail("%s: too small to be a GGUF file: expected at least 24 bytes, file has %zu "
             "(truncated?)",
             file, size);
    }
    const uint32_t magic = r.read<uint32_t>("the magic");
    if (magic != kMagic) {
        const std::string m(reinterpret_cast<const char*>(data), 4);
        const char* hint = "not a GGUF model file";
        if (m == "lmgg" || m == "fmgg" || m == "tjgg" || m == "ggml" || m == "ggmf" || m == "ggjt") {
            hint = "legacy GGML/GGJT file: re-convert it with a current llama.cpp convert script";
        } else if (size >= 9 && data[8] == '{') {
            hint = "this looks like a safetensors file";
        } else if (m == "FUGG") {
            hint = "byte-swapped magic: big-endian GGUF files are not supported";
        }
        fail("%s: bad magic '%s', expected 'GGUF' (%s)", file, printable(m).c_str(), hint);
    }
}

// The version: 2 or 3 (version 1 and byte-swapped versions fail with their own hints).
uint32_t read_version(ByteReader& r, const char* file) {
    const uint32_t version = r.read<uint32_t>("the version");
    if (version == 1) {
        fail("%s: GGUF version 1 is not supported, expected version 2 or 3 (hint: re-convert the "
             "model with a current llama.cpp convert_hf_to_gguf.py)",
             file);
    }
    if (version != 2 && version != 3) {
        const bool swapped = version == 0x02000000u || version == 0x03000000u;
        fail("%s: GGUF version %u is not supported, expected 2 or 3 (%s)", file, version,
             swapped ? "big-endian GGUF files are not supported"
                     : "newer than this llmforge, or a corrupt file");
    }
    return version;
}

struct GgufCounts {
    uint64_t n_tensors = 0, n_kv = 0;
};

// The tensor and metadata counts, each bounded by what the rest of the file can hold, so that a
// corrupt count fails here instead of driving a huge allocation.
GgufCounts read_counts(ByteReader& r, size_t size, const char* file) {
    GgufCounts c;
    c.n_tensors = r.read<uint64_t>("the tensor count");
    c.n_kv = r.read<uint64_t>("the metadata count");
    // Each kv takes >= 12 bytes (8-byte key length + 4-byte type), each tensor info >= 28.
    if (c.n_kv > kMaxCount || c.n_kv > r.remaining() / 12) {
        fail("%s: header claims %" PRIu64 " metadata entries, but at most %" PRIu64
             " fit in the file (%zu bytes; corrupt or truncated?)",
             file, c.n_kv, std::min<uint64_t>(kMaxCount, r.remaining() / 12), size);
    }
    if (c.n_tensors > kMaxCount || c.n_tensors > r.remaining() / 28) {
        fail("%s: header claims %" PRIu64 " tensors, but at most %" PRIu64
             " fit in the file (%zu bytes; corrupt or truncated?)",
             file, c.n_tensors, std::min<uint64_t>(kMaxCount, r.remaining() / 28), size);
    }
    return c;
}

GgufValue read_value(ByteReader& r, uint32_t type, const std::string& key, const char* file) {
    switch (static_cast<GgufType>(type)) {
        case GgufType::kU8: return r.read<uint8_t>("a u8 value");
        case GgufType::kI8: return r.read<int8_t>("an i8 value");
        case GgufType::kU16: return r.read<uint16_t>("a u16 value");
        case GgufType::kI16: return r.read<int16_t>("an i16 value");
        case GgufType::kU32: return r.read<uint32_t>("a u32 value");
        case GgufType::kI32: return r.read<int32_t>("an i32 value");
        case GgufType::kF32: return r.read<float>("an f32 value");
        case GgufType::kU64: return r.read<uint64_t>("a u64 value");
        case GgufType::kI64: return r.read<int64_t>("an i64 value");
        case GgufType::kF64: return r.read<double>("an f64 value");
        case GgufType::kBool: {
            const uint8_t b = r.read<uint8_t>("a bool value");
            if (b > 1) {
                fail("%s: key %s has bool value %u, expected 0 or 1 (corrupt file?)", file,
                     quote_name(key).c_str(), b);
            }
            return b != 0;
        }
        case GgufType::kString: return read_string(r, "a string value");
        case GgufType::kArray: break;
    }
    LF_ASSERT(false);
    return {};
}

// An array value after its type: element type, length, then the elements (bools checked to be 0
// or 1; arrays of arrays and unknown element types rejected).
GgufValue read_array(ByteReader& r, const std::string& key, const char* file) {
    const uint32_t et = r.read<uint32_t>("an array element type");
    const uint64_t n = r.read<uint64_t>("an array length");
    const char* what = "an array";
    switch (static_cast<GgufType>(et)) {
        case GgufType::kU8: return read_pod_array<uint8_t>(r, n, what);
        case GgufType::kI8: return read_pod_array<int8_t>(r, n, what);
        case GgufType::kU16: return read_pod_array<uint16_t>(r, n, what);
        case GgufType::kI16: return read_pod_array<int16_t>(r, n, what);
        case GgufType::kU32: return read_pod_array<uint32_t>(r, n, what);
        case GgufType::kI32: return read_pod_array<int32_t>(r, n, what);
        case GgufType::kF32: return read_pod_array<float>(r, n, what);
        case GgufType::kU64: return read_pod_array<uint64_t>(r, n, what);
        case GgufType::kI64: return read_pod_array<int64_t>(r, n, what);
        case GgufType::kF64: return read_pod_array<double>(r, n, what);
        case GgufType::kBool: {
            const auto raw = read_pod_array<uint8_t>(r, n, what);
            std::vector<bool> b(raw.size());
            for (size_t j = 0; j < raw.size(); ++j) {
                if (raw[j] > 1) {
                    fail("%s: key %s: bool array element %zu is %u, expected 0 or 1 "
                         "(corrupt file?)",
                         file, quote_name(key).c_str(), j, raw[j]);
                }
                b[j] = raw[j] != 0;
            }
            return b;
        }
        case GgufType::kString: {
            // Each string takes >= 8 bytes, which bounds the allocation by the file size.
            if (n > r.remaining() / 8) {
                fail("%s: key %s is an array of %" PRIu64 " strings, but at most %zu fit in "
                     "the remaining %zu bytes (truncated or corrupt?)",
                     file, quote_name(key).c_str(), n, r.remaining() / 8, r.remaining());
            }
            std::vector<std::string> v;
            v.reserve(static_cast<size_t>(n));
            for (uint64_t j = 0; j < n; ++j) v.push_back(read_string(r, "an array string"));
            return v;
        }
        case GgufType::kArray:
            fail("%s: key %s is an array of arrays, which GGUF readers do not support "
                 "(corrupt file?)",
                 file, quote_name(key).c_str());
        default:
            fail("%s: key %s is an array of unknown value type %u, expected 0..12 (corrupt "
                 "file, or a newer GGUF revision?)",
                 file, quote_name(key).c_str(), et);
    }
}

// A metadata value after its key: the value type, then a scalar, a string or an array.
GgufValue read_kv_value(ByteReader& r, const std::string& key, const char* file) {
    const size_t type_pos = r.pos();
    const uint32_t type = r.read<uint32_t>("a metadata value type");
    if (type == static_cast<uint32_t>(GgufType::kArray)) return read_array(r, key, file);
    if (type <= static_cast<uint32_t>(GgufType::kF64)) return read_value(r, type, key, file);
    fail("%s: key %s at offset %zu has unknown value type %u, expected 0..12 (corrupt "
         "file, or a newer GGUF revision?)",
         file, quote_name(key).c_str(), type_pos, type);
}

// general.alignment when the file sets it (a power of two), else `dflt`.
uint32_t read_alignment(const GgufFile& f, uint32_t dflt, const char* file) {
    const GgufValue* a = f.find("general.alignment");
    if (a == nullptr) return dflt;
    const uint32_t al = a->as<uint32_t>(f.key_ctx("general.alignment"));
    if (al == 0 || (al & (al - 1)) != 0) {
        fail("%s: general.alignment is %u, expected a power of two (corrupt file?)", file, al);
    }
    return al;
}

struct TensorDims {
    uint32_t n = 0;
    uint64_t ne[kMaxDims] = {};  // ggml order: ne[0] is the row length
    uint64_t numel = 1;
};

// A tensor's dimension count and dimensions, each >= 1, their product fitting int64 (so that
// later size arithmetic cannot overflow). `qn`: the quoted tensor name, for messages.
TensorDims read_tensor_dims(ByteReader& r, const std::string& qn, const char* file) {
    TensorDims dims;
    dims.n = r.read<uint32_t>("a tensor's dimension count");
    if (dims.n < 1 || dims.n > kMaxDims) {
        fail("%s: tensor %s has %u dimensions, expected 1..%u (corrupt file?)", file,
             qn.c_str(), dims.n, kMaxDims);
    }
    for (uint32_t d = 0; d < dims.n; ++d) {
        dims.ne[d] = r.read<uint64_t>("a tensor dimension");
        if (dims.ne[d] < 1 || dims.ne[d] > static_cast<uint64_t>(INT64_MAX)) {
            fail("%s: tensor %s dimension %u is %" PRIu64 ", expected >= 1 (corrupt file?)",
                 file, qn.c_str(), d, dims.ne[d]);
        }
        if (!mul_ok(dims.numel, dims.ne[d], &dims.numel) ||
            dims.numel > static_cast<uint64_t>(INT64_MAX)) {
            fail("%s: tensor %s has too many elements (the product of its dimensions "
                 "overflows; corrupt file?)",
                 file, qn.c_str());
        }
    }
    return dims;
}

// The rest of a tensor's info after its name: dimensions, a type llmforge loads (rows of whole
// blocks), the byte size, and a data offset on the file's alignment.
void read_tensor_info(ByteReader& r, GgufTensorInfo& t, uint32_t alignment, const char* file) {
    const std::string qn = quote_name(t.name);
    const TensorDims dims = read_tensor_dims(r, qn, file);
    const uint32_t type = r.read<uint32_t>("a tensor type");
    const DTypeInfo* info = dtype_info_or_null(type);
    if (info == nullptr) {
        fail("%s: tensor %s has ggml type %u (%s), which llmforge does not load (supported: "
             "f32, f16, bf16, q4_0, q4_1, q5_0, q5_1, q8_0, q2_k, q3_k, q4_k, q5_k, q6_k; hint: re-quantize with "
             "one of these)",
             file, qn.c_str(), type, ggml_type_name(type));
    }
    t.dtype = static_cast<DType>(type);
    if (dims.ne[0] % static_cast<uint64_t>(info->block_size) != 0) {
        fail("%s: tensor %s of type %s has rows of %" PRIu64
             " elements, expected a multiple of the block size %d (corrupt file?)",
             file, qn.c_str(), info->name, dims.ne[0], info->block_size);
    }
    // numel fits int64 and type_size <= 292, so this cannot overflow u64.
    t.nbytes = dims.numel / static_cast<uint64_t>(info->block_size) *
               static_cast<uint64_t>(info->type_size);
    for (uint32_t d = dims.n; d-- > 0;) t.shape.push_back(static_cast<int64_t>(dims.ne[d]));
    t.offset = r.read<uint64_t>("a tensor offset");
    if (t.offset % alignment != 0) {
        fail("%s: tensor %s has data offset %" PRIu64
             ", expected a multiple of the alignment %u (corrupt file?)",
             file, qn.c_str(), t.offset, alignment);
    }
}

// Every tensor's bytes lie inside the data section, which starts inside the file.
void check_tensor_ranges(const std::vector<GgufTensorInfo>& tensors, uint64_t data_offset,
                         size_t size, const char* file) {
    if (data_offset > size) {
        fail("%s: data section starts at byte %" PRIu64 ", file has %zu (truncated?)", file,
             data_offset, size);
    }
    const uint64_t data_size = size - data_offset;
    for (const GgufTensorInfo& t : tensors) {
        uint64_t end = 0, abs_end = 0;
        if (!add_ok(t.offset, t.nbytes, &end) || !add_ok(data_offset, end, &abs_end)) {
            fail("%s: tensor %s has data offset %" PRIu64 ", far beyond the end of the file (%zu "
                 "bytes; corrupt file?)",
                 file, quote_name(t.name).c_str(), t.offset, size);
        }
        if (end > data_size) {
            fail("%s: tensor %s (%s, %s) ends at byte %" PRIu64 ": expected at least %" PRIu64
                 " bytes, file has %zu (truncated?)",
                 file, quote_name(t.name).c_str(), dtype_name(t.dtype), t.shape_str().c_str(), abs_end,
                 abs_end, size);
        }
    }
}

// Tensor data ranges must not overlap.
void check_no_overlap(const std::vector<GgufTensorInfo>& tensors, const char* file) {
    std::vector<size_t> order(tensors.size());
    for (size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(),
              [&](size_t a, size_t b) { return tensors[a].offset < tensors[b].offset; });
    for (size_t i = 1; i < order.size(); ++i) {
        const GgufTensorInfo& a = tensors[order[i - 1]];
        const GgufTensorInfo& b = tensors[order[i]];
        if (b.offset < a.offset + a.nbytes) {
            fail("%s: tensor %s (data bytes %" PRIu64 "..%" PRIu64 ") overlaps tensor %s (from %" PRIu64
                 ") (corrupt file?)",
                 file, quote_name(a.name).c_str(), a.offset, a.offset + a.nbytes,
                 quote_name(b.name).c_str(), b.offset);
        }
    }
}

}  // namespace

// The file in order: header, metadata, tensor infos, then the data section's checks. Every step
// fails with one line naming the file and, where it matters, the offset, key or tensor.
void GgufFile::parse() {
    const char* file = name_.c_str();
    ByteReader r(data_, size_, name_);

    check_magic(r, data_, size_, file);
    version_ = read_version(r, file);
    const GgufCounts counts = read_counts(r, size_, file);

    kv_.reserve(static_cast<size_t>(counts.n_kv));
    for (uint64_t i = 0; i < counts.n_kv; ++i) {
        std::string key = read_string(r, "a metadata key");
        if (kv_index_.count(key)) {
            fail("%s: metadata key %s appears twice (corrupt file?)", file, quote_name(key).c_str());
        }
        GgufValue value = read_kv_value(r, key, file);
        kv_index_.emplace(key, kv_.size());
        kv_.push_back(GgufKV{std::move(key), std::move(value)});
    }
    alignment_ = read_alignment(*this, alignment_, file);

    tensors_.reserve(static_cast<size_t>(counts.n_tensors));
    for (uint64_t i = 0; i < counts.n_tensors; ++i) {
        GgufTensorInfo t;
        t.name = read_string(r, "a tensor name");
        if (tensor_index_.count(t.name)) {
            fail("%s: tensor %s appears twice (corrupt file?)", file, quote_name(t.name).c_str());
        }
        read_tensor_info(r, t, alignment_, file);
        tensor_index_.emplace(t.name, tensors_.size());
        tensors_.push_back(std::move(t));
    }

    if (!align_up_ok(r.pos(), alignment_, &data_offset_)) {
        fail("%s: data section offset overflows (corrupt file?)", file);
    }
    if (tensors_.empty()) return;
    check_tensor_ranges(tensors_, data_offset_, size_, file);
    check_no_overlap(tensors_, file);
}

// ------------------------------------------------------------------------------------------------
// GgufFile: access

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

const GgufValue& GgufFile::at(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) {
        fail("%s: metadata key '%s' not found (file has %zu keys; hint: is this a model of a "
             "supported architecture, converted by a current llama.cpp?)",
             name_.c_str(), printable(key).c_str(), kv_.size());
    }
    return *v;
}

std::string GgufFile::key_ctx(std::string_view key) const {
    return name_ + ": key '" + printable(key) + "'";
}

std::optional<int64_t> GgufFile::get_int_opt(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    return v->to_int(key_ctx(key));
}

std::optional<double> GgufFile::get_float_opt(std::string_view key) const {
    const GgufValue* v = find(key);
    if (v == nullptr) return std::nullopt;
    return v->to_double(key_ctx(key));
}

const GgufTensorInfo* GgufFile::find_tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

Tensor GgufFile::tensor(std::string_view name) const {
    const GgufTensorInfo* t = find_tensor(name);
    if (t == nullptr) {
        fail("%s: tensor '%s' not found (file has %zu tensors; hint: wrong architecture, or a "
             "partial/vocab-only file?)",
             name_.c_str(), printable(name).c_str(), tensors_.size());
    }
    return tensor(*t);
}

Tensor GgufFile::tensor(const GgufTensorInfo& info) const {
    const uint8_t* p = data_ + data_offset_ + info.offset;
    if (reinterpret_cast<uintptr_t>(p) % dtype_alignment(info.dtype) != 0) {
        Tensor t = Tensor::empty(info.dtype, info.shape, info.name);
        std::memcpy(t.data(), p, static_cast<size_t>(info.nbytes));
        return t;
    }
    return Tensor::view(info.dtype, info.shape, p, owner_, info.name);
}

// ------------------------------------------------------------------------------------------------
// GgufWriter

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0) {
        fail("GGUF writer: alignment %u is not a power of two (hint: use 32)", alignment);
    }
}

void GgufWriter::set(const std::string& key, GgufValue value) {
    if (key.empty()) fail("GGUF writer: empty metadata key");
    if (key == "general.alignment") {
        fail("GGUF writer: 'general.alignment' is written from the alignment given to the "
             "GgufWriter constructor; do not set it as metadata");
    }
    auto it = kv_index_.find(key);
    if (it != kv_index_.end()) {
        kv_[it->second].value = std::move(value);
        return;
    }
    kv_index_.emplace(key, kv_.size());
    kv_.push_back(GgufKV{key, std::move(value)});
}

const GgufValue* GgufWriter::find(std::string_view key) const {
    auto it = kv_index_.find(key);
    return it == kv_index_.end() ? nullptr : &kv_[it->second].value;
}

uint64_t GgufWriter::check_tensor(const std::string& name, DType dtype,
                                  const std::vector<int64_t>& shape) const {
    const std::string qn = quote_name(name);
    if (name.empty() || name.size() > kGgufMaxNameLength) {
        fail("GGUF writer: tensor name %s has %zu bytes, expected 1..%zu (llama.cpp's limit)",
             qn.c_str(), name.size(), kGgufMaxNameLength);
    }
    if (tensor_index_.count(name)) fail("GGUF writer: tensor %s added twice", qn.c_str());
    const DTypeInfo* info = dtype_info_or_null(static_cast<uint32_t>(dtype));
    if (info == nullptr) {
        fail("GGUF writer: tensor %s has unknown dtype id %u", qn.c_str(),
             static_cast<uint32_t>(dtype));
    }
    if (shape.empty() || shape.size() > kMaxDims) {
        fail("GGUF writer: tensor %s has %zu dimensions, expected 1..4", qn.c_str(), shape.size());
    }
    uint64_t numel = 1;
    for (int64_t d : shape) {
        if (d < 1) fail("GGUF writer: tensor %s has a dimension of %lld, expected >= 1", qn.c_str(),
                        static_cast<long long>(d));
        if (!mul_ok(numel, static_cast<uint64_t>(d), &numel) ||
            numel > static_cast<uint64_t>(INT64_MAX)) {
            fail("GGUF writer: tensor %s has too many elements", qn.c_str());
        }
    }
    if (shape.back() % info->block_size != 0) {
        fail("GGUF writer: tensor %s of type %s has rows of %lld elements, expected a multiple of "
             "%d",
             qn.c_str(), info->name, static_cast<long long>(shape.back()), info->block_size);
    }
    return numel / static_cast<uint64_t>(info->block_size) * static_cast<uint64_t>(info->type_size);
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            const void* data, size_t nbytes) {
    const uint64_t expected = check_tensor(name, dtype, shape);
    if (nbytes != expected) {
        fail("GGUF writer: tensor '%s' (%s) is given %zu bytes, expected %" PRIu64, name.c_str(),
             dtype_name(dtype), nbytes, expected);
    }
    if (data == nullptr && nbytes > 0) fail("GGUF writer: tensor '%s' has no data", name.c_str());
    tensor_index_.emplace(name, tensors_.size());
    tensors_.push_back(PendingTensor{name, dtype, std::move(shape), expected, data, nullptr, {}});
}

void GgufWriter::add_tensor(const Tensor& t, const std::string& name) {
    const std::string& n = name.empty() ? t.name() : name;
    if (!t.defined()) fail("GGUF writer: tensor '%s' has no data", n.c_str());
    std::shared_ptr<const void> keep;
    // Share the storage: copying the Tensor handle keeps its owner alive.
    auto holder = std::make_shared<Tensor>(t);
    keep = holder;
    add_tensor(n, t.dtype(), t.shape(), holder->data(), t.nbytes());
    tensors_.back().keep = std::move(keep);
}

void GgufWriter::add_tensor(const std::string& name, DType dtype, std::vector<int64_t> shape,
                            Fill fill) {
    const uint64_t expected = check_tensor(name, dtype, shape);
    if (!fill) fail("GGUF writer: tensor '%s' has an empty fill function", name.c_str());
    tensor_index_.emplace(name, tensors_.size());
    tensors_.push_back(
        PendingTensor{name, dtype, std::move(shape), expected, nullptr, nullptr, std::move(fill)});
}

namespace {

struct Buf {
    std::string s;
    template <class T>
    void pod(T v) {
        s.append(reinterpret_cast<const char*>(&v), sizeof(T));
    }
    void str(const std::string& x) {
        pod<uint64_t>(x.size());
        s += x;
    }
};

void put_value(Buf& b, const GgufValue& v) {
    b.pod<uint32_t>(static_cast<uint32_t>(v.type()));
    std::visit(
        [&](const auto& x) {
            using X = std::decay_t<decltype(x)>;
            if constexpr (std::is_same_v<X, std::string>) {
                b.str(x);
            } else if constexpr (std::is_same_v<X, bool>) {
                b.pod<uint8_t>(x ? 1 : 0);
            } else if constexpr (std::is_arithmetic_v<X>) {
                b.pod<X>(x);
            } else {
                using E = typename X::value_type;
                b.pod<uint32_t>(static_cast<uint32_t>(v.elem_type()));
                b.pod<uint64_t>(x.size());
                if constexpr (std::is_same_v<E, std::string>) {
                    for (const auto& e : x) b.str(e);
                } else if constexpr (std::is_same_v<E, bool>) {
                    for (bool e : x) b.pod<uint8_t>(e ? 1 : 0);
                } else {
                    b.s.append(reinterpret_cast<const char*>(x.data()), x.size() * sizeof(E));
                }
            }
        },
        v.storage());
}

}  // namespace

void GgufWriter::write(const std::string& path) const {
    Buf h;
    const bool custom_alignment = alignment_ != kGgufDefaultAlignment;
    h.pod<uint32_t>(kMagic);
    h.pod<uint32_t>(3);
    h.pod<uint64_t>(tensors_.size());
    h.pod<uint64_t>(kv_.size() + (custom_alignment ? 1 : 0));
    if (custom_alignment) {
        h.str("general.alignment");
        put_value(h, GgufValue(alignment_));
    }
    for (const GgufKV& kv : kv_) {
        h.str(kv.key);
        put_value(h, kv.value);
    }
    uint64_t offset = 0;
    std::vector<uint64_t> padded(tensors_.size());
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const PendingTensor& t = tensors_[i];
        h.str(t.name);
        h.pod<uint32_t>(static_cast<uint32_t>(t.shape.size()));
        for (size_t d = t.shape.size(); d-- > 0;) h.pod<uint64_t>(static_cast<uint64_t>(t.shape[d]));
        h.pod<uint32_t>(static_cast<uint32_t>(t.dtype));
        h.pod<uint64_t>(offset);
        if (!align_up_ok(t.nbytes, alignment_, &padded[i]) || !add_ok(offset, padded[i], &offset)) {
            fail("%s: tensor data too large", path.c_str());
        }
    }
    uint64_t header_end;
    if (!align_up_ok(h.s.size(), alignment_, &header_end)) fail("%s: header too large", path.c_str());
    h.s.resize(static_cast<size_t>(header_end), '\0');

    AtomicFile out(path);
    out.write(h.s.data(), h.s.size());
    std::vector<uint8_t> scratch;
    for (size_t i = 0; i < tensors_.size(); ++i) {
        const PendingTensor& t = tensors_[i];
        const size_t n = static_cast<size_t>(t.nbytes);
        if (t.fill) {
            scratch.assign(n, 0);
            t.fill(scratch.data(), n);
            out.write(scratch.data(), n);
            std::vector<uint8_t>().swap(scratch);
        } else {
            out.write(t.data, n);
        }
        out.write_zeros(static_cast<size_t>(padded[i] - t.nbytes));
    }
    out.commit();
}

}  // namespace llmforge
