#include "train/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cmath>
#include <csignal>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/file.h"
#include "io/atomic_file.h"
#include "io/hf_config.h"
#include "io/safetensors.h"

namespace llmforge::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "llmforge-checkpoint-v1";

// Test hook: LLMFORGE_TEST_KILL_IN_SAVE=<phase>@<step> kills the process with SIGKILL at that
// phase of the save of that step, so the crash-safety test can stop a save at each point that
// matters: 1 model written, 2 all files written and synced, 3 folder renamed, 4 `latest` replaced,
// 5 first top-level link replaced.
void crash_point(int phase, int64_t step) {
    static const std::pair<int, int64_t> want = [] {
        const char* e = std::getenv("LLMFORGE_TEST_KILL_IN_SAVE");
        if (e == nullptr) return std::pair<int, int64_t>{0, -1};
        const char* at = std::strchr(e, '@');
        return std::pair<int, int64_t>{std::atoi(e), at ? std::atoll(at + 1) : -1};
    }();
    if (want.first == phase && (want.second < 0 || want.second == step)) std::raise(SIGKILL);
}

void fsync_path(const std::string& path, bool dir) {
    const int fd = ::open(path.c_str(), dir ? (O_RDONLY | O_DIRECTORY) : O_RDONLY);
    if (fd < 0) fail("%s: cannot open to sync (%s)", path.c_str(), std::strerror(errno));
    const int rc = ::fsync(fd);
    ::close(fd);
    if (rc != 0) fail("%s: fsync failed (%s) (hint: is the disk full?)", path.c_str(), std::strerror(errno));
}

void write_text_atomic(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

std::string step_name(int64_t step) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "checkpoint-%06lld", static_cast<long long>(step));
    return buf;
}

}  // namespace

uint32_t file_crc32(const std::string& path) {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) fail("%s: cannot open (%s)", path.c_str(), std::strerror(errno));
    std::vector<unsigned char> buf(1 << 20);
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t n;
    while ((n = std::fread(buf.data(), 1, buf.size(), f)) > 0) crc = crc32(crc, buf.data(), static_cast<uInt>(n));
    std::fclose(f);
    return static_cast<uint32_t>(crc);
}

bool has_checkpoint(const std::string& dir) {
    std::error_code ec;
    return fs::exists(fs::path(dir) / "latest", ec);
}

std::string save_checkpoint(const std::string& dir, const TrainModel& model, AdamW& opt, const TrainerState& state,
                            const std::vector<std::string>& extra_files, int keep) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("%s: cannot create the --save folder (%s)", dir.c_str(), ec.message().c_str());
    // Leftovers of an interrupted save.
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (e.path().filename().string().rfind(".tmp-checkpoint-", 0) == 0) fs::remove_all(e.path(), ec);

    const std::string name = step_name(state.step);
    const fs::path tmp = fs::path(dir) / (".tmp-" + name + "-" + std::to_string(::getpid()));
    const fs::path final_dir = fs::path(dir) / name;
    fs::create_directories(tmp, ec);
    if (ec) fail("%s: cannot create (%s)", tmp.string().c_str(), ec.message().c_str());

    // Model: Hugging Face folder, f32 tensors under HF names.
    const ModelConfig& cfg = model.config();
    LF_ASSERT(!cfg.rope_interleaved || cfg.arch != "llama");  // saved folders are rotate-half
    write_text_atomic((tmp / "config.json").string(), hf_config_write(cfg));
    {
        SafetensorsWriter w;
        w.set_metadata("format", "pt");
        for (const auto& p : model.params()) {
            const std::string hf = gguf_to_hf_name(p->name);
            LF_ASSERT(!hf.empty());
            w.add_tensor(hf, DType::F32, p->shape, p->value.data(), static_cast<size_t>(p->numel()) * sizeof(float));
        }
        w.write((tmp / "model.safetensors").string());
    }
    crash_point(1, state.step);
    {
        SafetensorsWriter w;
        w.set_metadata("format", kFormat);
        for (size_t i = 0; i < opt.size(); ++i) {
            const Param& p = opt.param(i);
            const size_t nb = static_cast<size_t>(p.numel()) * sizeof(float);
            w.add_tensor("m." + p.name, DType::F32, p.shape, opt.m(i).data(), nb);
            w.add_tensor("v." + p.name, DType::F32, p.shape, opt.v(i).data(), nb);
        }
        w.write((tmp / "optimizer.safetensors").string());
    }
    for (const std::string& f : extra_files) {
        const fs::path dst = tmp / fs::path(f).filename();
        fs::copy_file(f, dst, fs::copy_options::overwrite_existing, ec);
        if (ec) fail("%s: cannot copy into the checkpoint (%s)", f.c_str(), ec.message().c_str());
        fsync_path(dst.string(), false);
    }
    json st;
    st["format"] = kFormat;
    st["step"] = state.step;
    st["args"] = state.args;
    st["loss_scale"] = state.loss_scale;
    st["good_steps"] = state.good_steps;
    st["history"] = state.history;
    st["val_history"] = state.val_history;
    st["n_params"] = model.n_params();
    json files = json::object();
    for (const auto& e : fs::directory_iterator(tmp)) {
        const std::string fn = e.path().filename().string();
        files[fn] = {{"crc32", file_crc32(e.path().string())}, {"bytes", fs::file_size(e.path())}};
    }
    st["files"] = files;
    write_text_atomic((tmp / "trainer_state.json").string(), st.dump(1) + "\n");
    fsync_path(tmp.string(), true);
    crash_point(2, state.step);

    // Into place: a re-save of the same step (after a resume) replaces the old folder only now.
    if (fs::exists(final_dir)) {
        const fs::path old = fs::path(dir) / (".tmp-old-" + name);
        fs::remove_all(old, ec);
        fs::rename(final_dir, old, ec);
        if (ec) fail("%s: cannot move aside (%s)", final_dir.string().c_str(), ec.message().c_str());
        fs::rename(tmp, final_dir, ec);
        if (ec) fail("%s: cannot rename into place (%s)", final_dir.string().c_str(), ec.message().c_str());
        fs::remove_all(old, ec);
    } else {
        fs::rename(tmp, final_dir, ec);
        if (ec) fail("%s: cannot rename into place (%s)", final_dir.string().c_str(), ec.message().c_str());
    }
    fsync_path(dir, true);
    crash_point(3, state.step);
    write_text_atomic((fs::path(dir) / "latest").string(), name + "\n");
    crash_point(4, state.step);

    // DIR loads as a model folder: hard links to the newest checkpoint's model files.
    int n_links = 0;
    for (const char* fn : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"}) {
        const fs::path src = final_dir / fn;
        if (!fs::exists(src)) continue;
        const fs::path tmp_link = fs::path(dir) / (std::string(".link-") + fn);
        fs::remove(tmp_link, ec);
        fs::create_hard_link(src, tmp_link, ec);
        if (ec) fs::copy_file(src, tmp_link, fs::copy_options::overwrite_existing, ec);  // no hard links here
        if (ec) fail("%s: cannot link (%s)", tmp_link.string().c_str(), ec.message().c_str());
        fs::rename(tmp_link, fs::path(dir) / fn, ec);
        if (ec) fail("%s: cannot rename (%s)", (fs::path(dir) / fn).string().c_str(), ec.message().c_str());
        if (++n_links == 1) crash_point(5, state.step);
    }
    fsync_path(dir, true);

    // Keep the newest `keep` checkpoints.
    std::vector<std::string> all;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string fn = e.path().filename().string();
        if (e.is_directory() && fn.rfind("checkpoint-", 0) == 0) all.push_back(fn);
    }
    std::sort(all.begin(), all.end());
    for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < all.size(); ++i)
        if (all[i] != name) fs::remove_all(fs::path(dir) / all[i], ec);
    return final_dir.string();
}

std::string verify_checkpoint(const std::string& path) {
    std::error_code ec;
    fs::path ck(path);
    if (!fs::exists(ck, ec)) fail("%s: no such checkpoint folder (hint: --resume takes the --save folder of a run)", path.c_str());
    if (!fs::exists(ck / "trainer_state.json")) {
        const fs::path latest = ck / "latest";
        if (!fs::exists(latest))
            fail("%s: not a checkpoint (no 'latest' and no trainer_state.json; hint: --resume takes the --save folder "
                 "of a run)", path.c_str());
        std::string name = read_file(latest.string(), "checkpoint pointer", "");
        while (!name.empty() && (name.back() == '\n' || name.back() == '\r' || name.back() == ' ')) name.pop_back();
        if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos)
            fail("%s: corrupt (expected a checkpoint folder name such as checkpoint-000100)", latest.string().c_str());
        ck = ck / name;
        if (!fs::exists(ck / "trainer_state.json"))
            fail("%s: names %s, which has no trainer_state.json (checkpoint deleted or damaged)", latest.string().c_str(),
                 name.c_str());
    }
    const std::string st_path = (ck / "trainer_state.json").string();
    json st;
    try {
        st = json::parse(read_file(st_path, "trainer state", ""));
    } catch (const json::exception& e) {
        fail("%s: corrupt (not valid JSON: %s)", st_path.c_str(), e.what());
    }
    if (!st.is_object() || st.value("format", "") != kFormat || !st.contains("files") || !st["files"].is_object())
        fail("%s: not a %s trainer state", st_path.c_str(), kFormat);
    for (const auto& [fn, info] : st["files"].items()) {
        const fs::path f = ck / fn;
        if (!fs::exists(f)) fail("%s: missing from the checkpoint (expected %s bytes)", f.string().c_str(), info["bytes"].dump().c_str());
        const uint64_t want = info.value("bytes", uint64_t{0});
        const uint64_t have = fs::file_size(f, ec);
        if (have != want)
            fail("%s: %llu bytes, expected %llu (truncated or replaced checkpoint file)", f.string().c_str(),
                 (unsigned long long)have, (unsigned long long)want);
        const uint32_t crc = file_crc32(f.string());
        if (crc != info.value("crc32", uint32_t{0}))
            fail("%s: checksum mismatch (CRC-32 %08x, expected %08x): the file is corrupt", f.string().c_str(), crc,
                 info.value("crc32", uint32_t{0}));
    }
    return ck.string();
}

TrainerState read_trainer_state(const std::string& ckpt_dir) {
    const std::string p = (fs::path(ckpt_dir) / "trainer_state.json").string();
    json st = json::parse(read_file(p, "trainer state", ""));
    TrainerState s;
    s.step = st.value("step", int64_t{0});
    s.args = st.value("args", json::object());
    s.loss_scale = st.value("loss_scale", 1.0);
    s.good_steps = st.value("good_steps", int64_t{0});
    s.history = st.value("history", json::array());
    s.val_history = st.value("val_history", json::array());
    return s;
}

void load_optimizer_state(const std::string& ckpt_dir, AdamW& opt, int64_t step) {
    const std::string p = (fs::path(ckpt_dir) / "optimizer.safetensors").string();
    SafetensorsFile f(p);
    for (size_t i = 0; i < opt.size(); ++i) {
        const Param& prm = opt.param(i);
        for (const char* kind : {"m.", "v."}) {
            const std::string name = kind + prm.name;
            const SafetensorsTensorInfo* info = f.find_tensor(name);
            if (info == nullptr) fail("%s: tensor '%s' is missing (checkpoint of another model?)", p.c_str(), name.c_str());
            Tensor t = f.tensor(name);
            if (t.dtype() != DType::F32 || t.numel() != prm.numel())
                fail("%s: tensor '%s' has %lld %s values, expected %lld f32 (checkpoint of another model?)", p.c_str(),
                     name.c_str(), (long long)t.numel(), dtype_name(t.dtype()), (long long)prm.numel());
            FloatBuffer& dst = kind[0] == 'm' ? opt.m(i) : opt.v(i);
            std::memcpy(dst.data(), t.data(), static_cast<size_t>(prm.numel()) * sizeof(float));
        }
    }
    opt.set_step_count(step);
}

void write_loss_svg(const std::string& path, const TrainerState& state, const std::string& title) {
    constexpr double W = 720, H = 360, L = 60, R = 20, T = 36, B = 44;
    std::vector<std::pair<double, double>> tr, va;
    for (const auto& p : state.history) tr.emplace_back(p[0].get<double>(), p[1].get<double>());
    for (const auto& p : state.val_history) va.emplace_back(p[0].get<double>(), p[1].get<double>());
    if (tr.empty() && va.empty()) return;
    double x0 = 1e300, x1 = -1e300, y0 = 1e300, y1 = -1e300;
    for (const auto* s : {&tr, &va})
        for (auto [x, y] : *s)
            if (std::isfinite(y)) x0 = std::min(x0, x), x1 = std::max(x1, x), y0 = std::min(y0, y), y1 = std::max(y1, y);
    if (x1 <= x0) x1 = x0 + 1;
    if (y1 <= y0) y1 = y0 + 1;
    y0 = std::max(0.0, y0 - 0.05 * (y1 - y0));
    auto X = [&](double x) { return L + (x - x0) / (x1 - x0) * (W - L - R); };
    auto Y = [&](double y) { return T + (1 - (y - y0) / (y1 - y0)) * (H - T - B); };
    std::string s;
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%g\" height=\"%g\" font-family=\"sans-serif\" "
                  "font-size=\"12\">\n<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n",
                  W, H);
    s += buf;
    std::string esc;
    for (char c : title) esc += c == '<' ? std::string("&lt;") : c == '&' ? std::string("&amp;") : std::string(1, c);
    s += "<text x=\"" + std::to_string(L) + "\" y=\"22\" font-size=\"14\">" + esc + "</text>\n";
    for (int i = 0; i <= 4; ++i) {  // y grid
        const double y = y0 + (y1 - y0) * i / 4;
        std::snprintf(buf, sizeof buf,
                      "<line x1=\"%g\" y1=\"%.1f\" x2=\"%g\" y2=\"%.1f\" stroke=\"#ddd\"/><text x=\"%g\" y=\"%.1f\" "
                      "text-anchor=\"end\">%.3g</text>\n",
                      L, Y(y), W - R, Y(y), L - 6, Y(y) + 4, y);
        s += buf;
    }
    for (int i = 0; i <= 4; ++i) {
        const double x = x0 + (x1 - x0) * i / 4;
        std::snprintf(buf, sizeof buf, "<text x=\"%.1f\" y=\"%g\" text-anchor=\"middle\">%.0f</text>\n", X(x), H - B + 18, x);
        s += buf;
    }
    std::snprintf(buf, sizeof buf, "<text x=\"%g\" y=\"%g\" text-anchor=\"middle\">step</text>\n", (W + L) / 2, H - 8);
    s += buf;
    auto poly = [&](const std::vector<std::pair<double, double>>& pts, const char* color, double width) {
        std::string p = "<polyline fill=\"none\" stroke=\"" + std::string(color) + "\" stroke-width=\"" +
                        std::to_string(width) + "\" points=\"";
        for (auto [x, y] : pts)
            if (std::isfinite(y)) {
                std::snprintf(buf, sizeof buf, "%.1f,%.1f ", X(x), Y(y));
                p += buf;
            }
        return p + "\"/>\n";
    };
    if (!tr.empty()) s += poly(tr, "#1f77b4", 1.2);
    if (!va.empty()) {
        s += poly(va, "#d62728", 2);
        for (auto [x, y] : va) {
            std::snprintf(buf, sizeof buf, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"#d62728\"/>\n", X(x), Y(y));
            s += buf;
        }
    }
    std::snprintf(buf, sizeof buf,
                  "<text x=\"%g\" y=\"22\" fill=\"#1f77b4\" text-anchor=\"end\">train loss</text>"
                  "<text x=\"%g\" y=\"22\" fill=\"#d62728\" text-anchor=\"end\">validation loss</text>\n",
                  W - R - 110, W - R);
    s += buf;
    s += "</svg>\n";
    write_text_atomic(path, s);
}

}  // namespace llmforge::train
