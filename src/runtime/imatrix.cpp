// Importance matrices (runtime/imatrix.h): collection over a calibration text through the
// forward pass's matmul_hook, and llama.cpp's two file formats.
//
// What llama-imatrix does, and so what this does (examples/imatrix/imatrix.cpp at c392e5094):
// - tokens = tokenize(text, add_special = true) (BOS first when the vocabulary adds one);
//   chunk i is tokens[i·n_ctx, (i+1)·n_ctx) with its first token replaced by BOS, evaluated from
//   an empty KV cache in micro-batches of 512 tokens;
// - for every matrix product whose weight is named "blk.*" (or output.weight with
//   --process-output) and whose input has at least 16 rows: values[j] += x_j² over the rows,
//   counts[j] += rows, ncall += 1;
// - legacy .dat: int32 n_entries, then per entry int32 name length, name bytes, int32 ncall,
//   int32 nval, nval floats = values / counts · ncall; then int32 the last ncall and int32
//   length + bytes of the calibration file's name. llama-quantize divides each value by ncall.
// - routed experts (MUL_MAT_ID, every batch size): values and counts per expert and column,
//   ncall += 1 per product; the .dat stores E x columns values, each expert's values / its count ·
//   ncall; llama-quantize gives expert e the columns [e·cols, (e+1)·cols);
// - GGUF (llama.cpp PR #9400, newer than our reference build): general.type = "imatrix",
//   imatrix.datasets (array of strings), imatrix.chunk_count and imatrix.chunk_size (u32); per
//   entry "<name>.in_sum2" (f32, the raw sums, ne0 = columns, ne1 = experts) and "<name>.counts"
//   (f32, rows per expert); llama-quantize uses in_sum2 / counts. Other tensors (".in_sum",
//   ".stats" of later versions) are ignored.
#include "runtime/imatrix.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <thread>

#include "core/error.h"
#include "core/file.h"
#include "core/thread_pool.h"
#include "io/atomic_file.h"
#include "io/gguf.h"
#include "model/kv_cache.h"

namespace llmforge {

namespace {

constexpr int64_t kMicroBatch = 512;  // llama.cpp's default n_ubatch: one product per piece
constexpr int64_t kMinRows = 16;      // llama-imatrix ignores smaller products (decode steps)

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// A little-endian cursor over a legacy .dat with bounds checks (bad input is one error, never a
// crash or a huge allocation).
struct DatReader {
    const std::string& bytes;
    const std::string& path;
    size_t pos = 0;
    int32_t i32(const char* what) {
        if (bytes.size() - pos < 4) fail("%s: truncated importance matrix: %s at byte %zu is missing", path.c_str(), what, pos);
        int32_t v;
        std::memcpy(&v, bytes.data() + pos, 4);
        pos += 4;
        return v;
    }
    std::string str(size_t n, const char* what) {
        if (bytes.size() - pos < n) fail("%s: truncated importance matrix: %s at byte %zu is missing", path.c_str(), what, pos);
        std::string s = bytes.substr(pos, n);
        pos += n;
        return s;
    }
};

Imatrix read_dat(const std::string& path, const std::string& bytes) {
    DatReader r{bytes, path};
    Imatrix m;
    const int32_t n = r.i32("the entry count");
    if (n < 1 || static_cast<size_t>(n) > bytes.size() / 12)
        fail("%s: not an importance matrix (%d entries at the start; expected a llama.cpp imatrix .dat or GGUF)",
             path.c_str(), n);
    for (int32_t i = 0; i < n; ++i) {
        const int32_t len = r.i32("a name length");
        if (len < 1 || len > 4096)
            fail("%s: entry %d: name length %d, expected 1..4096 (not a llama.cpp importance matrix?)", path.c_str(), i + 1, len);
        std::string name = r.str(static_cast<size_t>(len), "a name");
        const int32_t ncall = r.i32("ncall");
        const int32_t nval = r.i32("the value count");
        if (nval < 1 || static_cast<size_t>(nval) > (bytes.size() - r.pos) / 4)
            fail("%s: entry '%s': %d values, but the file has %zu bytes left", path.c_str(), name.c_str(), nval,
                 bytes.size() - r.pos);
        if (ncall < 0) fail("%s: entry '%s': ncall %d, expected >= 0", path.c_str(), name.c_str(), ncall);
        ImatrixTensor t;
        t.sum_sq.resize(static_cast<size_t>(nval));
        std::memcpy(t.sum_sq.data(), bytes.data() + r.pos, static_cast<size_t>(nval) * 4);
        r.pos += static_cast<size_t>(nval) * 4;
        // mean·ncall with ncall as the count: importance() divides exactly as llama-quantize does.
        t.rows = ncall;
        t.ncall = ncall;
        if (!m.tensors.emplace(std::move(name), std::move(t)).second)
            fail("%s: entry %d repeats a name", path.c_str(), i + 1);
    }
    // Newer writers append the last ncall and the calibration file's name.
    if (r.pos < bytes.size()) {
        m.chunks = r.i32("the chunk count");
        const int32_t len = r.i32("the dataset name length");
        if (len < 0 || static_cast<size_t>(len) > bytes.size() - r.pos)
            fail("%s: dataset name length %d, but the file has %zu bytes left", path.c_str(), len, bytes.size() - r.pos);
        const std::string ds = r.str(static_cast<size_t>(len), "the dataset name");
        if (!ds.empty()) m.datasets.push_back(ds);
    }
    return m;
}

Imatrix read_gguf(const std::string& path) {
    GgufFile f(path);
    Imatrix m;
    if (const GgufValue* v = f.find("imatrix.datasets"); v != nullptr && v->is<std::vector<std::string>>())
        m.datasets = v->as<std::vector<std::string>>(f.key_ctx("imatrix.datasets"));
    if (auto c = f.get_int_opt("imatrix.chunk_count")) m.chunks = *c;
    if (auto c = f.get_int_opt("imatrix.chunk_size")) m.chunk_size = *c;
    const std::string sums = ".in_sum2", counts = ".counts";
    for (const GgufTensorInfo& ti : f.tensor_infos()) {
        if (!ends_with(ti.name, sums)) continue;
        const std::string name = ti.name.substr(0, ti.name.size() - sums.size());
        const GgufTensorInfo* ci = f.find_tensor(name + counts);
        if (ci == nullptr) fail("%s: '%s' has no '%s%s' beside it", path.c_str(), ti.name.c_str(), name.c_str(), counts.c_str());
        if (ti.dtype != DType::F32 || ci->dtype != DType::F32)
            fail("%s: '%s': sums and counts must be f32, found %s and %s", path.c_str(), name.c_str(), dtype_name(ti.dtype),
                 dtype_name(ci->dtype));
        const Tensor s = f.tensor(ti), c = f.tensor(*ci);
        const int64_t n_mat = c.numel();
        if (n_mat < 1 || s.numel() % n_mat != 0)
            fail("%s: '%s': %lld sums for %lld matrices (experts), expected a whole number of columns each",
                 path.c_str(), name.c_str(), (long long)s.numel(), (long long)n_mat);
        ImatrixTensor t;
        for (int64_t e = 0; e < n_mat; ++e) {
            const float cnt = c.ptr<float>()[e];
            if (!(cnt >= 0) || !std::isfinite(cnt)) fail("%s: '%s': count %g, expected >= 0", path.c_str(), name.c_str(), cnt);
            t.rows += std::llround(cnt);
            if (n_mat > 1) t.expert_rows.push_back(std::llround(cnt));
        }
        t.sum_sq.assign(s.ptr<float>(), s.ptr<float>() + s.numel());
        if (m.chunk_size > 0) t.ncall = (t.rows + m.chunk_size - 1) / m.chunk_size;
        m.tensors.emplace(name, std::move(t));
    }
    if (m.tensors.empty())
        fail("%s: a GGUF file without importance data (no '<tensor>.in_sum2' entries; is it a model?)", path.c_str());
    return m;
}

void write_dat(const Imatrix& m, const std::string& path) {
    std::string out;
    auto i32 = [&](int64_t v) {
        const int32_t x = static_cast<int32_t>(v);
        out.append(reinterpret_cast<const char*>(&x), 4);
    };
    i32(static_cast<int64_t>(m.tensors.size()));
    int64_t last_call = 0;
    for (const auto& [name, t] : m.tensors) {
        i32(static_cast<int64_t>(name.size()));
        out += name;
        // llama-imatrix's ncall; for entries that came without one (GGUF), llama.cpp's rule:
        // ceil(rows / chunk size).
        int64_t ncall = t.ncall;
        if (ncall <= 0) ncall = m.chunk_size > 0 ? std::max<int64_t>(1, (t.rows + m.chunk_size - 1) / m.chunk_size) : 1;
        last_call = std::max(last_call, ncall);
        i32(ncall);
        i32(static_cast<int64_t>(t.sum_sq.size()));
        const size_t cols = t.expert_rows.empty() ? t.sum_sq.size() : t.sum_sq.size() / t.expert_rows.size();
        for (size_t j = 0; j < t.sum_sq.size(); ++j) {
            const float s = t.sum_sq[j];
            // Experts: values / counts · ncall with each expert's own count (llama-imatrix).
            const int64_t rows = t.expert_rows.empty() ? t.rows : t.expert_rows[j / cols];
            float v;
            if (t.expert_rows.empty() && rows == ncall) {
                v = s;  // read from a .dat: the stored values as they were
            } else if (rows == 0) {
                v = static_cast<float>(ncall);  // no data: importance 1, as llama.cpp stores it
            } else {
                v = s / static_cast<float>(rows) * static_cast<float>(ncall);
            }
            out.append(reinterpret_cast<const char*>(&v), 4);
        }
    }
    i32(m.chunks > 0 ? m.chunks : last_call);
    const std::string ds = m.datasets.empty() ? std::string() : m.datasets.back();
    i32(static_cast<int64_t>(ds.size()));
    out += ds;
    AtomicFile f(path);
    f.write(out.data(), out.size());
    f.commit();
}

void write_gguf(const Imatrix& m, const std::string& path) {
    GgufWriter w;
    w.set("general.type", "imatrix");
    w.set("imatrix.datasets", m.datasets);
    w.set("imatrix.chunk_count", static_cast<uint32_t>(m.chunks));
    w.set("imatrix.chunk_size", static_cast<uint32_t>(m.chunk_size));
    std::vector<std::vector<float>> counts;
    counts.reserve(m.tensors.size());
    for (const auto& [name, t] : m.tensors) {
        counts.emplace_back();
        if (t.expert_rows.empty()) counts.back().push_back(static_cast<float>(t.rows));
        for (int64_t r : t.expert_rows) counts.back().push_back(static_cast<float>(r));
    }
    size_t i = 0;
    for (const auto& [name, t] : m.tensors) {
        if (name.size() + 8 > kGgufMaxNameLength)
            fail("%s: the name '%s' is too long for a GGUF importance matrix entry (at most %zu bytes with '.in_sum2')",
                 path.c_str(), name.c_str(), kGgufMaxNameLength);
        const std::vector<float>& c = counts[i++];
        const int64_t n_mat = static_cast<int64_t>(c.size()), cols = static_cast<int64_t>(t.sum_sq.size()) / n_mat;
        // llama.cpp's 2-D {columns, 1} tensors are written with their trailing 1 dropped; experts
        // are {columns, E} sums and {1, E} counts (row-major (E, columns) and (E, 1)).
        w.add_tensor(name + ".in_sum2", DType::F32, n_mat == 1 ? std::vector<int64_t>{cols} : std::vector<int64_t>{n_mat, cols},
                     t.sum_sq.data(), t.sum_sq.size() * sizeof(float));
        w.add_tensor(name + ".counts", DType::F32, n_mat == 1 ? std::vector<int64_t>{1} : std::vector<int64_t>{n_mat, 1},
                     c.data(), c.size() * sizeof(float));
    }
    w.write(path);
}

}  // namespace

std::vector<float> Imatrix::importance(const std::string& tensor, int64_t n_per_row) const {
    auto it = tensors.find(tensor);
    if (it == tensors.end()) fail("importance matrix: no entry for %s", tensor.c_str());
    const ImatrixTensor& t = it->second;
    const int64_t n_mat = t.expert_rows.empty() ? 1 : static_cast<int64_t>(t.expert_rows.size());
    const int64_t size = static_cast<int64_t>(t.sum_sq.size());
    if (n_per_row <= 0 || size % n_per_row != 0 || (n_mat > 1 && size != n_mat * n_per_row))
        fail("importance matrix: the entry for %s has %zu columns, the tensor's rows have %lld (an importance matrix "
             "of another model?)",
             tensor.c_str(), t.sum_sq.size(), (long long)n_per_row);
    std::vector<float> v(t.sum_sq.size(), 1.0f);
    for (int64_t e = 0; e < size / n_per_row; ++e) {
        const int64_t rows = n_mat > 1 ? t.expert_rows[static_cast<size_t>(e)] : t.rows;
        if (rows <= 0) continue;
        const float n = static_cast<float>(rows);
        for (int64_t j = e * n_per_row; j < (e + 1) * n_per_row; ++j) v[j] = t.sum_sq[j] / n;
    }
    return v;
}

Imatrix collect_imatrix(const Model& model, const std::vector<int32_t>& tokens, const ImatrixOptions& opt) {
    if (opt.chunk < 1) fail("imatrix: chunk size %lld, expected at least 1 token", (long long)opt.chunk);
    const int64_t n_tok = static_cast<int64_t>(tokens.size());
    const int64_t n_max = n_tok / opt.chunk;
    if (n_max < 1)
        fail("imatrix: the text gives %lld tokens, fewer than one chunk of %lld (hint: a longer text or a smaller --chunk)",
             (long long)n_tok, (long long)opt.chunk);
    const int64_t n_chunks = opt.max_chunks > 0 ? std::min(opt.max_chunks, n_max) : n_max;
    const ModelConfig& cfg = model.config();
    const Vocab& vocab = model.vocab();
    const bool bos = vocab.add_bos && vocab.bos_id >= 0;

    struct Acc {
        std::vector<double> sum;
        int64_t rows = 0, ncall = 0;
        std::vector<int64_t> expert_rows;  // routed experts: rows per expert (sum is E x cols)
        int64_t last_forward = -1;         // experts: one ncall per forward, as one MUL_MAT_ID
    };
    std::map<std::string, Acc> acc;
    const int64_t n_expert = cfg.ds.n_routed_experts;
    int64_t n_forward = 0;
    ForwardScratch s;
    s.matmul_hook = [&](const std::string& w, const float* x, int64_t rows, int64_t cols) {
        if (w.compare(0, 4, "blk.") != 0 && !(opt.process_output && w == "output.weight")) return;
        // A routed expert's rows: "<weight>[e]" (Model::expert's view names).
        if (!w.empty() && w.back() == ']' && w.find('[') != std::string::npos) {
            const size_t open = w.rfind('[');
            const int64_t e = std::stoll(w.substr(open + 1, w.size() - open - 2));
            LF_ASSERT(e >= 0 && e < n_expert);
            Acc& a = acc[w.substr(0, open)];
            if (a.sum.empty()) {
                a.sum.assign(static_cast<size_t>(n_expert * cols), 0.0);
                a.expert_rows.assign(static_cast<size_t>(n_expert), 0);
            }
            LF_ASSERT(static_cast<int64_t>(a.sum.size()) == n_expert * cols);
            double* sum = a.sum.data() + e * cols;
            for (int64_t r = 0; r < rows; ++r) {
                const float* xr = x + r * cols;
                for (int64_t j = 0; j < cols; ++j) sum[j] += static_cast<double>(xr[j]) * xr[j];
            }
            a.expert_rows[static_cast<size_t>(e)] += rows;
            a.rows += rows;
            if (a.last_forward != n_forward) ++a.ncall, a.last_forward = n_forward;
            return;
        }
        if (rows < kMinRows) return;
        Acc& a = acc[w];
        if (a.sum.empty()) a.sum.assign(static_cast<size_t>(cols), 0.0);
        LF_ASSERT(static_cast<int64_t>(a.sum.size()) == cols);
        for (int64_t r = 0; r < rows; ++r) {
            const float* xr = x + r * cols;
            for (int64_t j = 0; j < cols; ++j) a.sum[j] += static_cast<double>(xr[j]) * xr[j];
        }
        a.rows += rows;
        ++a.ncall;
    };
    ThreadPool pool(opt.n_threads > 0 ? opt.n_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    // The model's own KV layout (MLA models cache a latent row, not per-head K/V).
    const std::unique_ptr<KvMemory> cache = model.new_memory(opt.chunk);
    std::vector<float> logits(static_cast<size_t>(cfg.n_vocab));
    std::vector<int32_t> chunk(static_cast<size_t>(opt.chunk));
    for (int64_t c = 0; c < n_chunks; ++c) {
        std::copy(tokens.begin() + c * opt.chunk, tokens.begin() + (c + 1) * opt.chunk, chunk.begin());
        if (bos) chunk[0] = vocab.bos_id;
        for (int64_t p = 0; p < opt.chunk; p += kMicroBatch) {
            const int64_t n = std::min(kMicroBatch, opt.chunk - p);
            model.forward(chunk.data() + p, n, p, *cache, logits.data(), 1, pool, s);
            ++n_forward;
        }
        if (opt.on_chunk) opt.on_chunk(c + 1, n_chunks);
    }
    Imatrix m;
    m.chunk_size = opt.chunk;
    m.chunks = n_chunks;
    for (auto& [name, a] : acc) {
        ImatrixTensor t;
        t.sum_sq.assign(a.sum.begin(), a.sum.end());
        for (float v : t.sum_sq)
            if (!std::isfinite(v)) fail("imatrix: a non-finite activation sum in %s (the model overflows on this text)", name.c_str());
        t.rows = a.rows;
        t.ncall = a.ncall;
        t.expert_rows = a.expert_rows;
        m.tensors.emplace(name, std::move(t));
    }
    if (m.tensors.empty())
        fail("imatrix: no weight product had %lld or more rows (hint: --chunk of at least %lld tokens)",
             (long long)kMinRows, (long long)kMinRows);
    return m;
}

Imatrix read_imatrix(const std::string& path) {
    if (has_gguf_magic(path)) return read_gguf(path);
    const std::string bytes = read_file(path, "importance matrix");
    return read_dat(path, bytes);
}

void write_imatrix(const Imatrix& m, const std::string& path) {
    if (ends_with(path, ".gguf")) {
        write_gguf(m, path);
    } else {
        write_dat(m, path);
    }
}

void check_imatrix_matches(const Imatrix& m, const std::map<std::string, std::vector<int64_t>>& shapes,
                           const std::string& where) {
    for (const auto& [name, t] : m.tensors) {
        auto it = shapes.find(name);
        if (it == shapes.end())
            fail("%s: the entry '%s' names no tensor of this model (an importance matrix of another model? hint: make one "
                 "with llmforge imatrix -m MODEL)",
                 where.c_str(), name.c_str());
        const std::vector<int64_t>& sh = it->second;
        // A 3-D (E, rows, cols) expert stack: E x cols values (llama.cpp's per-expert statistics).
        const int64_t n_mat = sh.size() == 3 ? sh[0] : 1;
        if (sh.size() < 2 || sh.back() * n_mat != static_cast<int64_t>(t.sum_sq.size()))
            fail("%s: the entry '%s' has %zu columns but the model's tensor is %s (an importance matrix of another model? "
                 "hint: make one with llmforge imatrix -m MODEL)",
                 where.c_str(), name.c_str(), t.sum_sq.size(), shape_to_string(sh).c_str());
    }
}

}  // namespace llmforge
