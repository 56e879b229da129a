#include "train/checkpoint.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
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
#include "model/hf_config.h"
#include "io/safetensors.h"

namespace llmforge::train {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kFormat = "llmforge-checkpoint-v1";

// Test hook: LLMFORGE_TEST_KILL_IN_SAVE=<phase>@<step> kills the process with SIGKILL at that
// phase of the save of that step, so the crash-safety test can stop a save at each point that
// matters: 1 model written, 2 all files written and synced, 3 folder renamed, 4 `latest` replaced,
// 5 first top-level link replaced, 6 `latest.tmp-*` written but not yet renamed over `latest`,
// 7 an old checkpoint renamed away for deletion but not yet deleted.
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

std::string step_name(int64_t step) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "checkpoint-%06lld", static_cast<long long>(step));
    return buf;
}

// The files of a checkpoint that DIR holds at top level too (model.safetensors first: it is the
// only one that differs between checkpoints of one run).
constexpr const char* kTopLevel[] = {"model.safetensors",   "config.json",
                                     "tokenizer.json",      "tokenizer_config.json",
                                     "adapter_config.json", "adapter_model.safetensors"};
// Files written with AtomicFile directly in DIR, whose temporaries may be left behind.
constexpr const char* kAtomicInDir[] = {"latest",         "loss.svg",
                                        "model.safetensors", "config.json",
                                        "tokenizer.json", "tokenizer_config.json",
                                        "adapter_config.json", "adapter_model.safetensors"};
constexpr const char* kProbePrefix = ".llmforge-probe-";

bool all_digits(const std::string& s, size_t from, size_t to) {
    if (from >= to || to > s.size()) return false;
    for (size_t i = from; i < to; ++i)
        if (s[i] < '0' || s[i] > '9') return false;
    return true;
}

// "<prefix>checkpoint-NNNNNN" + (with_pid ? "-PID" : ""): our temporary checkpoint folder names.
// Returns the checkpoint name ("checkpoint-NNNNNN") or "" when fn is not of that form.
std::string tmp_checkpoint_of(const std::string& fn, const std::string& prefix, bool with_pid) {
    const std::string p = prefix + "checkpoint-";
    if (fn.compare(0, p.size(), p) != 0) return "";
    const size_t dash = with_pid ? fn.find('-', p.size()) : fn.size();
    if (dash == std::string::npos || !all_digits(fn, p.size(), dash)) return "";
    if (with_pid && !all_digits(fn, dash + 1, fn.size())) return "";
    return fn.substr(prefix.size(), dash - prefix.size());
}

enum class Leftover { kNone, kRemove, kOldCheckpoint };

Leftover classify(const std::string& fn, bool is_dir) {
    if (is_dir) {
        if (!tmp_checkpoint_of(fn, ".tmp-", true).empty() || !tmp_checkpoint_of(fn, ".tmp-del-", true).empty())
            return Leftover::kRemove;
        if (!tmp_checkpoint_of(fn, ".tmp-old-", false).empty()) return Leftover::kOldCheckpoint;
        return Leftover::kNone;
    }
    for (const char* f : kAtomicInDir)
        if (is_atomic_temp_of(fn, f)) return Leftover::kRemove;
    for (const char* f : kTopLevel)
        if (fn == std::string(".link-") + f) return Leftover::kRemove;
    if (fn.rfind(kProbePrefix, 0) == 0 && all_digits(fn, std::strlen(kProbePrefix), fn.size())) return Leftover::kRemove;
    return Leftover::kNone;
}

bool is_dir_entry(const fs::directory_entry& e) {
    std::error_code ec;
    return e.is_directory(ec) && !e.is_symlink(ec);
}

// Same file (inode) or same bytes.
bool same_contents(const fs::path& a, const fs::path& b) {
    struct stat sa {}, sb {};
    if (::stat(a.c_str(), &sa) != 0 || ::stat(b.c_str(), &sb) != 0) return false;
    if (sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino) return true;
    if (!S_ISREG(sa.st_mode) || !S_ISREG(sb.st_mode) || sa.st_size != sb.st_size) return false;
    std::ifstream fa(a, std::ios::binary), fb(b, std::ios::binary);
    if (!fa || !fb) return false;
    std::vector<char> ba(1 << 20), bb(1 << 20);
    while (fa && fb) {
        fa.read(ba.data(), static_cast<std::streamsize>(ba.size()));
        fb.read(bb.data(), static_cast<std::streamsize>(bb.size()));
        if (fa.gcount() != fb.gcount() || std::memcmp(ba.data(), bb.data(), static_cast<size_t>(fa.gcount())) != 0)
            return false;
    }
    return true;
}

// DIR/.link-<fn>: a hard link to src (a synced copy where the file system has no hard links),
// ready to be renamed over DIR/<fn>.
fs::path prepare_link(const fs::path& dir, const fs::path& src, const std::string& fn) {
    std::error_code ec;
    const fs::path tmp_link = dir / (".link-" + fn);
    fs::remove(tmp_link, ec);
    fs::create_hard_link(src, tmp_link, ec);
    if (ec) {  // no hard links here
        fs::copy_file(src, tmp_link, fs::copy_options::overwrite_existing, ec);
        if (!ec) fsync_path(tmp_link.string(), false);
    }
    if (ec) fail("%s: cannot link the checkpoint's %s there (%s)", tmp_link.string().c_str(), fn.c_str(), ec.message().c_str());
    return tmp_link;
}

void rename_or_fail(const fs::path& from, const fs::path& to) {
    std::error_code ec;
    fs::rename(from, to, ec);
    if (ec) fail("%s: cannot rename '%s' onto it (%s)", to.string().c_str(), from.string().c_str(), ec.message().c_str());
}

// The checkpoint folder DIR/latest names, or "" (no latest, or it names no folder with a
// trainer_state.json).
fs::path latest_checkpoint(const fs::path& dir) {
    std::error_code ec;
    const fs::path latest = dir / "latest";
    if (!fs::is_regular_file(latest, ec)) return {};
    std::ifstream f(latest);
    std::string name;
    std::getline(f, name);
    while (!name.empty() && (name.back() == '\r' || name.back() == ' ')) name.pop_back();
    if (name.empty() || name.find('/') != std::string::npos || name.find("..") != std::string::npos) return {};
    if (!fs::exists(dir / name / "trainer_state.json", ec)) return {};
    return dir / name;
}

// Removes a folder by renaming it out of the way first (a half-deleted checkpoint never keeps its
// name), then deleting it.
void remove_folder(const fs::path& dir, const std::string& name, int64_t step) {
    std::error_code ec;
    const fs::path doomed = dir / (".tmp-del-" + name + "-" + std::to_string(::getpid()));
    fs::remove_all(doomed, ec);
    fs::rename(dir / name, doomed, ec);
    if (ec) return;  // keep it rather than half-delete it under its name
    crash_point(7, step);
    fs::remove_all(doomed, ec);
}

}  // namespace

SaveFolder::SaveFolder(const std::string& dir, const std::string& flag) : dir_(dir) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec || !fs::is_directory(dir)) {
        const std::string why = ec ? ec.message() : std::string("a file of that name exists");
        fail("train: cannot create the %s folder %s (%s), expected a folder to write checkpoints to (hint: choose "
             "another --save folder, or fix the permissions of its parent)", flag.c_str(), dir.c_str(), why.c_str());
    }
    fd_ = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd_ >= 0 && ::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
        const int err = errno;
        if (err == EWOULDBLOCK) {
            ::close(fd_);
            fd_ = -1;
            fail("train: %s folder %s is in use by another llmforge train (locked), expected one run per folder "
                 "(hint: wait for that run to end, or choose another --save folder)", flag.c_str(), dir.c_str());
        }
        // No flock() here (some network file systems): go on without the lock.
    }
    try {
        check_folder_writable(dir, flag);
        leftovers_ = remove_save_leftovers(dir);
    } catch (...) {
        if (fd_ >= 0) ::close(fd_);
        fd_ = -1;
        throw;
    }
}

SaveFolder::~SaveFolder() {
    if (fd_ >= 0) ::close(fd_);  // releases the lock
}

void check_folder_writable(const std::string& dir, const std::string& flag) {
    const fs::path probe = fs::path(dir) / (kProbePrefix + std::to_string(::getpid()));
    const int fd = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) {
        const int err = errno;
        fail("train: %s folder %s is not writable (%s), expected to create checkpoint files there before the first "
             "step (hint: choose a writable folder, or fix its permissions or mount; to continue a run stored "
             "read-only, add --save NEWDIR to --resume)",
             flag.c_str(), dir.c_str(), std::strerror(err));
    }
    ::close(fd);
    ::unlink(probe.c_str());
}

int remove_save_leftovers(const std::string& dir) {
    std::error_code ec;
    int n = 0;
    std::vector<fs::directory_entry> entries;
    for (const auto& e : fs::directory_iterator(dir, ec)) entries.push_back(e);
    for (const auto& e : entries) {
        const std::string fn = e.path().filename().string();
        switch (classify(fn, is_dir_entry(e))) {
            case Leftover::kNone:
                break;
            case Leftover::kRemove:
                fs::remove_all(e.path(), ec);
                ++n;
                break;
            case Leftover::kOldCheckpoint: {
                // Moved aside by a re-save of its step that was killed before the new folder took
                // its name: it is still the complete checkpoint `latest` may name.
                const fs::path orig = fs::path(dir) / tmp_checkpoint_of(fn, ".tmp-old-", false);
                if (!fs::exists(orig, ec)) fs::rename(e.path(), orig, ec);
                else fs::remove_all(e.path(), ec);
                ++n;
                break;
            }
        }
    }
    if (n > 0) {
        const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) ::fsync(fd), ::close(fd);
    }
    return n;
}

bool no_checkpoint_yet(const std::string& dir) {
    std::error_code ec;
    if (!fs::is_directory(dir, ec)) return false;
    for (const auto& e : fs::directory_iterator(dir, ec))
        if (classify(e.path().filename().string(), is_dir_entry(e)) == Leftover::kNone) return false;
    return !ec;
}

std::vector<std::string> sync_top_level(const std::string& dir) {
    std::vector<std::string> relinked;
    const fs::path ck = latest_checkpoint(dir);
    if (ck.empty()) return relinked;
    std::error_code ec;
    for (const char* fn : kTopLevel) {
        const fs::path src = ck / fn, dst = fs::path(dir) / fn;
        if (!fs::exists(src, ec) || same_contents(src, dst)) continue;
        rename_or_fail(prepare_link(dir, src, fn), dst);
        relinked.push_back(fn);
    }
    if (!relinked.empty()) fsync_path(dir, true);
    return relinked;
}

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

// Names of dir's checkpoint-NNNNNN folders, oldest first.
static std::vector<std::string> checkpoint_folders(const std::string& dir) {
    std::vector<std::string> all;
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(dir, ec)) {
        const std::string fn = e.path().filename().string();
        if (is_dir_entry(e) && fn.rfind("checkpoint-", 0) == 0 && all_digits(fn, 11, fn.size())) all.push_back(fn);
    }
    std::sort(all.begin(), all.end());
    return all;
}

bool has_checkpoint(const std::string& dir) {
    std::error_code ec;
    if (fs::exists(fs::path(dir) / "latest", ec)) return true;
    for (const std::string& c : checkpoint_folders(dir))
        if (fs::exists(fs::path(dir) / c / "trainer_state.json", ec)) return true;
    return false;
}

std::string newest_complete_checkpoint(const std::string& dir) {
    std::vector<std::string> all = checkpoint_folders(dir);
    for (auto it = all.rbegin(); it != all.rend(); ++it) {
        try {
            return verify_checkpoint((fs::path(dir) / *it).string());
        } catch (const Error&) {
        }
    }
    return "";
}

void write_latest(const std::string& dir, const std::string& name) {
    write_file_atomic((fs::path(dir) / "latest").string(), name + "\n");
}

void write_hf_model(const std::string& folder, const TrainModel& model) {
    const ModelConfig& cfg = model.config();
    // Saved folders are rotate-half (TrainModel::to_rotate_half), except for an arch whose convention
    // is fixed (DeepSeek: interleaved in every format).
    LF_ASSERT(!cfg.rope_interleaved || !TrainModel::rope_rows_convertible(model.arch()));
    write_file_atomic((fs::path(folder) / "config.json").string(), hf_config_write(cfg));
    {
        // Every tensor, trainable or frozen (dequantised to f32), under its HF name.
        SafetensorsWriter w;
        w.set_metadata("format", "pt");
        std::vector<std::vector<float>> frozen_values;  // the writer keeps pointers until write()
        model.for_each_tensor([&](const Param& p, const float* data) {
            const std::string hf = gguf_to_hf_name(model.arch(), p.name, &model.config());
            LF_ASSERT(!hf.empty());
            if (!p.trainable) {
                frozen_values.emplace_back(data, data + p.numel());
                data = frozen_values.back().data();
            }
            if (hf.find('*') != std::string::npos) {  // routed experts: one HF matrix each
                LF_ASSERT(p.shape.size() == 3);
                const int64_t per = p.numel() / p.shape[0];
                for (int64_t e = 0; e < p.shape[0]; ++e)
                    w.add_tensor(hf_expert_name(hf, e), DType::F32, {p.shape[1], p.shape[2]}, data + e * per,
                                 static_cast<size_t>(per) * sizeof(float));
                return;
            }
            w.add_tensor(hf, DType::F32, p.shape, data, static_cast<size_t>(p.numel()) * sizeof(float));
        });
        w.write((fs::path(folder) / "model.safetensors").string());
    }
}

std::string save_checkpoint(const std::string& dir, const TrainModel& model, AdamW& opt, const TrainerState& state,
                            const std::vector<std::string>& extra_files, int keep) {
    return save_checkpoint(dir, [&](const std::string& folder) { write_hf_model(folder, model); }, model.n_params(), opt,
                           state, extra_files, keep);
}

std::string save_checkpoint(const std::string& dir, const ModelWriter& write_model, int64_t n_params, AdamW& opt,
                            const TrainerState& state, const std::vector<std::string>& extra_files, int keep) {
    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) fail("%s: cannot create the --save folder (%s)", dir.c_str(), ec.message().c_str());
    remove_save_leftovers(dir);  // of an interrupted save (SaveFolder did it at start already)

    const std::string name = step_name(state.step);
    const fs::path tmp = fs::path(dir) / (".tmp-" + name + "-" + std::to_string(::getpid()));
    const fs::path final_dir = fs::path(dir) / name;
    fs::create_directories(tmp, ec);
    if (ec) fail("%s: cannot create (%s)", tmp.string().c_str(), ec.message().c_str());

    write_model(tmp.string());
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
    st["n_params"] = n_params;
    json files = json::object();
    for (const auto& e : fs::directory_iterator(tmp)) {
        const std::string fn = e.path().filename().string();
        files[fn] = {{"crc32", file_crc32(e.path().string())}, {"bytes", fs::file_size(e.path())}};
    }
    st["files"] = files;
    write_file_atomic((tmp / "trainer_state.json").string(), st.dump(1) + "\n");
    fsync_path(tmp.string(), true);
    crash_point(2, state.step);

    // Into place. A re-save of the same step (after a resume from an older checkpoint) swaps the
    // folders in one atomic rename where the file system can, else moves the old one aside first
    // (a kill in between leaves .tmp-old-<name>, which remove_save_leftovers() puts back).
    if (fs::exists(final_dir)) {
        if (::renameat2(AT_FDCWD, tmp.c_str(), AT_FDCWD, final_dir.c_str(), RENAME_EXCHANGE) == 0) {
            fs::remove_all(tmp, ec);  // now the old folder
        } else {
            const fs::path old = fs::path(dir) / (".tmp-old-" + name);
            fs::remove_all(old, ec);
            fs::rename(final_dir, old, ec);
            if (ec) fail("%s: cannot move aside (%s)", final_dir.string().c_str(), ec.message().c_str());
            fs::rename(tmp, final_dir, ec);
            if (ec) fail("%s: cannot rename into place (%s)", final_dir.string().c_str(), ec.message().c_str());
            fs::remove_all(old, ec);
        }
    } else {
        fs::rename(tmp, final_dir, ec);
        if (ec) fail("%s: cannot rename into place (%s)", final_dir.string().c_str(), ec.message().c_str());
    }
    fsync_path(dir, true);
    crash_point(3, state.step);

    // DIR loads as a model folder: hard links to the newest checkpoint's model files, prepared
    // before `latest` changes and renamed over the old ones right after it, so that `latest` and
    // DIR/model.safetensors disagree only for the time of a few renames (and sync_top_level()
    // repairs even that on the next start).
    std::vector<std::pair<fs::path, fs::path>> links;
    for (const char* fn : kTopLevel) {
        const fs::path src = final_dir / fn;
        if (fs::exists(src)) links.emplace_back(prepare_link(dir, src, fn), fs::path(dir) / fn);
    }
    {
        AtomicFile latest((fs::path(dir) / "latest").string());
        const std::string text = name + "\n";
        latest.write(text.data(), text.size());
        crash_point(6, state.step);
        latest.commit(/*sync_dir=*/false);  // the folder is synced once, after the links
    }
    crash_point(4, state.step);
    for (size_t i = 0; i < links.size(); ++i) {
        rename_or_fail(links[i].first, links[i].second);
        if (i == 0) crash_point(5, state.step);
    }
    fsync_path(dir, true);

    // Keep the newest `keep` checkpoints.
    const std::vector<std::string> all = checkpoint_folders(dir);
    for (size_t i = 0; keep > 0 && i + static_cast<size_t>(keep) < all.size(); ++i)
        if (all[i] != name) remove_folder(dir, all[i], state.step);
    return final_dir.string();
}

std::string verify_checkpoint(const std::string& path) {
    std::error_code ec;
    fs::path ck(path);
    if (!fs::exists(ck, ec)) fail("%s: no such checkpoint folder (hint: --resume takes the --save folder of a run)", path.c_str());
    if (!fs::exists(ck / "trainer_state.json")) {
        const fs::path latest = ck / "latest";
        if (!fs::exists(latest) && no_checkpoint_yet(path))
            fail("%s: no completed checkpoint yet (no 'latest'; a run stopped before its first save leaves only "
                 "temporary files, which are ignored), expected a --save folder holding 'latest' (hint: start the run "
                 "again with its original flags and --save %s, or add --config/--model and --data to --resume to "
                 "start it at step 0)", path.c_str(), path.c_str());
        if (!fs::exists(latest))
            fail("%s: not a checkpoint (no 'latest' and no trainer_state.json), expected the --save folder of a run or "
                 "one of its checkpoint-NNNNNN folders (hint: --resume takes the --save folder of a run; a run stopped "
                 "before its first save has nothing to resume: start it again with its flags)", path.c_str());
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
    write_file_atomic(path, s);
}

}  // namespace llmforge::train
