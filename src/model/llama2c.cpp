#include "model/llama2c.h"

#include <cctype>
#include <cinttypes>
#include <cstring>

#include "core/error.h"
#include "io/byte_reader.h"
#include "model/arch/llama.h"

namespace llmforge {

using io_detail::add_ok;
using io_detail::ByteReader;
using io_detail::mul_ok;
using io_detail::printable;

namespace {

constexpr uint32_t kExportMagic = 0x616b3432;  // "ak42": llama2.c export.py version >= 1

struct Header {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
};

// Floats in the file, excluding the optional classifier.
uint64_t body_floats(const Header& h, int64_t vocab) {
    const uint64_t C = static_cast<uint64_t>(h.dim), F = static_cast<uint64_t>(h.hidden_dim),
                   L = static_cast<uint64_t>(h.n_layers), V = static_cast<uint64_t>(vocab);
    const uint64_t kv = C * static_cast<uint64_t>(h.n_kv_heads) / static_cast<uint64_t>(h.n_heads);
    const uint64_t head = C / static_cast<uint64_t>(h.n_heads);
    // Bounds on the header (checked before) keep every product far below 2^63.
    return V * C + L * C + L * C * C + 2 * L * kv * C + L * C * C + L * C + 3 * L * F * C + C +
           static_cast<uint64_t>(h.seq_len) * head;  // two tables of seq_len * head/2
}

}  // namespace

Llama2cCheckpoint::Llama2cCheckpoint(const std::string& path)
    : Llama2cCheckpoint(RegularFile(path, "a llama2.c checkpoint")) {}

Llama2cCheckpoint::Llama2cCheckpoint(const RegularFile& file) : name_(file.path()) {
    auto map = std::make_shared<const FileMap>(file);
    const uint8_t* d = map->data();
    const size_t n = map->size();
    owner_ = std::move(map);
    parse(d, n);
}

Llama2cCheckpoint Llama2cCheckpoint::from_memory(const void* data, size_t size, std::string name,
                                                 std::shared_ptr<const void> owner) {
    Llama2cCheckpoint c;
    c.name_ = std::move(name);
    c.owner_ = std::move(owner);
    c.parse(static_cast<const uint8_t*>(data), size);
    return c;
}

void Llama2cCheckpoint::parse(const uint8_t* data, size_t size) {
    const char* file = name_.c_str();
    if (size >= 4) {
        uint32_t magic;
        std::memcpy(&magic, data, 4);
        if (magic == kExportMagic) {
            fail("%s: this is a llama2.c export of version >= 1 ('ak42' magic), expected the legacy "
                 "version-0 format (hint: export with `export.py --version 0`)",
                 file);
        }
    }
    if (size < sizeof(Header)) {
        fail("%s: too small for a llama2.c header: expected at least %zu bytes, file has %zu "
             "(truncated?)",
             file, sizeof(Header), size);
    }
    Header h;
    std::memcpy(&h, data, sizeof(Header));
    struct Field {
        const char* name;
        int64_t value, max;
    };
    const int64_t vocab = h.vocab_size < 0 ? -static_cast<int64_t>(h.vocab_size) : h.vocab_size;
    const bool separate = h.vocab_size < 0;
    const Field fields[] = {
        {"dim", h.dim, 1 << 16},           {"hidden_dim", h.hidden_dim, 1 << 18},
        {"n_layers", h.n_layers, 1 << 10}, {"n_heads", h.n_heads, 1 << 10},
        {"n_kv_heads", h.n_kv_heads, 1 << 10}, {"vocab_size", vocab, 1 << 22},
        {"seq_len", h.seq_len, 1 << 22},
    };
    for (const Field& f : fields) {
        if (f.value < 1 || f.value > f.max) {
            fail("%s: header field %s is %lld, expected 1..%lld (not a llama2.c checkpoint, or "
                 "corrupt?)",
                 file, f.name, static_cast<long long>(f.value), static_cast<long long>(f.max));
        }
    }
    if (h.dim % h.n_heads != 0) {
        fail("%s: dim %d is not a multiple of n_heads %d (not a llama2.c checkpoint, or corrupt?)",
             file, h.dim, h.n_heads);
    }
    if (h.n_kv_heads > h.n_heads || h.n_heads % h.n_kv_heads != 0) {
        fail("%s: n_heads %d is not a multiple of n_kv_heads %d (not a llama2.c checkpoint, or "
             "corrupt?)",
             file, h.n_heads, h.n_kv_heads);
    }
    if ((h.dim / h.n_heads) % 2 != 0) {
        fail("%s: head size %d is odd, expected even (RoPE rotates pairs; corrupt?)", file,
             h.dim / h.n_heads);
    }

    const uint64_t floats =
        body_floats(h, vocab) + (separate ? static_cast<uint64_t>(vocab) * static_cast<uint64_t>(h.dim) : 0);
    uint64_t expected;
    if (!mul_ok(floats, 4, &expected) || !add_ok(expected, sizeof(Header), &expected)) {
        fail("%s: header implies an impossibly large file (corrupt?)", file);
    }
    if (size != expected) {
        // The size the other classifier choice would need.
        const uint64_t cls_bytes = 4ull * static_cast<uint64_t>(vocab) * static_cast<uint64_t>(h.dim);
        const uint64_t other = separate ? expected - cls_bytes : expected + cls_bytes;
        std::string hint = size < expected ? "truncated?" : "not a llama2.c checkpoint, or a different format?";
        if (size == other) {
            hint = separate ? "the size fits a shared classifier: is vocab_size's sign wrong?"
                            : "the size fits a separate classifier (negative vocab_size): is "
                              "vocab_size's sign wrong?";
        }
        fail("%s: header (dim %d, hidden_dim %d, %d layers, %d heads, %d kv heads, vocab %lld, "
             "seq_len %d, %s classifier) implies %" PRIu64 " bytes, file has %zu (%s)",
             file, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads,
             static_cast<long long>(vocab), h.seq_len, separate ? "separate" : "shared", expected,
             size, hint.c_str());
    }
    if (reinterpret_cast<uintptr_t>(data) % 4 != 0) {
        fail("%s: data is not 4-byte aligned (internal: pass aligned memory)", file);
    }

    ModelConfig& c = config_;
    c.arch = "llama";
    c.name = name_;
    c.n_vocab = vocab;
    c.n_embd = h.dim;
    c.n_layer = h.n_layers;
    c.n_head = h.n_heads;
    c.n_head_kv = h.n_kv_heads;
    c.head_dim = h.dim / h.n_heads;
    c.n_ff = h.hidden_dim;
    c.n_ctx_train = h.seq_len;
    c.rms_eps = 1e-5f;
    c.rope_theta = 10000.0f;
    c.rope_interleaved = true;
    c.rope_scaling = RopeScaling::kNone;
    c.tied_embeddings = !separate;
    c.qkv_bias = false;

    // Names and shapes come from the llama tensor table (model/arch/llama.cpp); the order is
    // llama2.c's: embedding, the per-layer arrays stacked [L][...], final norm, RoPE tables, wcls.
    namespace lf = llama_family;
    const Arch& arch = arch_of("llama", name_);
    const int64_t C = h.dim, L = h.n_layers;
    const float* p = reinterpret_cast<const float*>(data + sizeof(Header));
    auto add = [&](int slot, int64_t layer) {
        const TensorSpec* t = arch.find_slot(slot);
        std::vector<int64_t> shape = t->shape(c, layer);
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        std::string name = t->gguf_name(layer);
        index_.emplace(name, tensors_.size());
        tensors_.push_back(Tensor::view(DType::F32, std::move(shape), p, owner_, std::move(name)));
        p += n;
    };
    add(lf::kTokEmbd, -1);
    // Per-layer arrays are stored [L][...]: layer l of an array is the l-th slice.
    for (int slot : {lf::kAttnNorm, lf::kWq, lf::kWk, lf::kWv, lf::kWo, lf::kFfnNorm, lf::kGate, lf::kDown, lf::kUp})
        for (int64_t l = 0; l < L; ++l) add(slot, l);
    add(lf::kOutputNorm, -1);
    p += static_cast<int64_t>(h.seq_len) * (C / h.n_heads);  // freq_cis_real + freq_cis_imag
    if (separate) add(lf::kOutput, -1);
    LF_ASSERT(reinterpret_cast<const uint8_t*>(p) == data + size);
}

const Tensor* Llama2cCheckpoint::find_tensor(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

Tensor Llama2cCheckpoint::tensor(std::string_view name) const {
    const Tensor* t = find_tensor(name);
    if (t == nullptr) {
        fail("%s: tensor '%s' not found (a llama2.c checkpoint has %zu tensors%s)", name_.c_str(),
             printable(name).c_str(), tensors_.size(),
             name == "output.weight" ? "; this one shares the classifier with token_embd.weight"
                                     : "");
    }
    return *t;
}

// ------------------------------------------------------------------------------------------------

Vocab llama2c_read_vocab(const std::string& path, int64_t n_vocab) {
    return llama2c_read_vocab(RegularFile(path, "a llama2.c tokenizer (tok*.bin)"), n_vocab);
}

Vocab llama2c_read_vocab(const RegularFile& file, int64_t n_vocab) {
    const FileMap m(file);
    return llama2c_parse_vocab(m.data(), m.size(), file.path(), n_vocab);
}

Vocab llama2c_parse_vocab(const void* data, size_t size, const std::string& name,
                          int64_t n_vocab) {
    const char* file = name.c_str();
    ByteReader r(static_cast<const uint8_t*>(data), size, name);
    const int32_t max_len = r.read<int32_t>("the max_token_length header");
    if (max_len < 1 || max_len > (1 << 16)) {
        fail("%s: max_token_length is %d, expected 1..65536 (not a llama2.c tokenizer file?)",
             file, max_len);
    }
    Vocab v;
    v.model = "llama";
    v.bos_id = 1;
    v.eos_id = 2;
    v.unk_id = 0;
    v.pad_id = -1;
    v.add_bos = true;
    v.add_eos = false;
    v.add_space_prefix = true;
    // Each token takes >= 8 bytes: bounds the reservation by the file size.
    if (n_vocab >= 0 && static_cast<uint64_t>(n_vocab) > r.remaining() / 8) {
        fail("%s: expected %lld tokens (the checkpoint's vocab_size), but the file has room for at "
             "most %zu (truncated, or the tokenizer of another model?)",
             file, static_cast<long long>(n_vocab), r.remaining() / 8);
    }
    while (n_vocab >= 0 ? static_cast<int64_t>(v.tokens.size()) < n_vocab : r.remaining() > 0) {
        const size_t at = r.pos();
        const float score = r.read<float>("a token score");
        const int32_t len = r.read<int32_t>("a token length");
        if (len < 0 || len > max_len) {
            fail("%s: token %zu (at offset %zu) has length %d, expected 0..%d (max_token_length; "
                 "corrupt file?)",
                 file, v.tokens.size(), at, len, max_len);
        }
        std::string piece(r.read_bytes(static_cast<uint64_t>(len), "a token's bytes"));
        const int32_t id = static_cast<int32_t>(v.tokens.size());
        TokenType type = TokenType::kNormal;
        if (id == 0) {
            type = TokenType::kUnknown;
        } else if (id == 1 || id == 2) {
            type = TokenType::kControl;
        } else if (piece.size() == 6 && piece.compare(0, 3, "<0x") == 0 && piece[5] == '>' &&
                   std::isxdigit(static_cast<unsigned char>(piece[3])) &&
                   std::isxdigit(static_cast<unsigned char>(piece[4]))) {
            type = TokenType::kByte;
        }
        if (type == TokenType::kNormal) {
            // llama2.c's exporter wrote SentencePiece's "▁" as a plain space; restore it so the
            // vocabulary is the model's real one (our SPM tokenizer and llama.cpp both expect "▁").
            std::string restored;
            for (char c : piece) restored += c == ' ' ? std::string("\xE2\x96\x81") : std::string(1, c);
            piece = std::move(restored);
        }
        v.tokens.push_back(std::move(piece));
        v.scores.push_back(score);
        v.types.push_back(type);
    }
    if (r.remaining() > 0) {
        fail("%s: %zu bytes remain after %lld tokens, expected none (the tokenizer of a model with "
             "a larger vocabulary?)",
             file, r.remaining(), static_cast<long long>(n_vocab));
    }
    if (v.tokens.size() < 3) {
        fail("%s: has %zu tokens, expected at least 3 (<unk>, <s>, </s>)", file, v.tokens.size());
    }
    return v;
}

}  // namespace llmforge
