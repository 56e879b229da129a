#include "apps/codegen/sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>

#include "core/error.h"

namespace llmforge::codegen {

namespace {

// ---- records on the status pipe, init -> evaluator -------------------------------------------
enum RecordKind : int32_t {
    kRecStepDone = 1,   // a = step, b = wait status
    kRecSetupError = 2, // a = stage, b = errno
    kRecExecError = 3,  // a = step, b = errno
    kRecStepStart = 4,  // a = step, b = pid (of the step's process, in the evaluator's namespace
                        //    only when unsandboxed)
};
struct Record {
    int32_t kind, a, b;
};

enum SetupStage : int32_t {
    kStageUserMap = 1, kStageFds, kStagePrivate, kStageReadOnly, kStageTmpfs, kStageProc,
    kStageWorkDir, kStageWriteFile, kStageDevNull, kStageFork, kStageSetsid,
};
const char* stage_name(int32_t s) {
    switch (s) {
        case kStageUserMap: return "writing the user namespace's uid/gid maps";
        case kStageFds: return "arranging file descriptors";
        case kStagePrivate: return "making the mount tree private";
        case kStageReadOnly: return "re-mounting the file tree read-only (mount_setattr, Linux >= 5.12)";
        case kStageTmpfs: return "mounting a private tmpfs";
        case kStageProc: return "mounting /proc for the PID namespace";
        case kStageWorkDir: return "creating the work folder";
        case kStageWriteFile: return "writing the program's files";
        case kStageDevNull: return "opening /dev/null";
        case kStageFork: return "starting the program";
        case kStageSetsid: return "starting a session";
    }
    return "setting up";
}

// Everything the child needs, prepared before the clone: after it only raw system calls run
// (the evaluator is multi-threaded, so the child must not allocate or take glibc locks).
struct ChildPlan {
    bool sandboxed = true;
    bool userns = false;
    bool root = false;
    uid_t uid = 0;
    gid_t gid = 0;
    std::string uid_map, gid_map;
    std::string tmpfs_opts;
    std::string work_dir;  // absolute
    std::vector<std::string> file_paths;
    const std::vector<SandboxFile>* files = nullptr;
    std::vector<std::vector<char*>> argv;  // per step, null-terminated
    std::vector<std::string> env_store;
    std::vector<char*> envp;
    rlimit cpu{}, as{}, nproc{}, fsize{}, nofile{}, core{};
    int out_w = -1, err_w = -1, status_w = -1;
};

void put_record(int fd, int32_t kind, int32_t a, int32_t b) {
    Record r{kind, a, b};
    ssize_t w;
    do w = write(fd, &r, sizeof r); while (w < 0 && errno == EINTR);
}

[[noreturn]] void child_fail(int32_t stage, int err) {
    put_record(3, kRecSetupError, stage, err);
    _exit(125);
}

bool write_all(int fd, const char* p, size_t n) {
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR) continue;
            return false;
        }
        p += w;
        n -= static_cast<size_t>(w);
    }
    return true;
}

bool write_small_file(const char* path, const std::string& text) {
    int fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = write_all(fd, text.data(), text.size());
    close(fd);
    return ok;
}

pid_t raw_fork() {
    return static_cast<pid_t>(syscall(SYS_clone, SIGCHLD, nullptr, nullptr, nullptr, 0));
}

void close_from(int lowest) {
    if (syscall(SYS_close_range, lowest, ~0U, 0) == 0) return;
    for (int fd = lowest; fd < 65536; ++fd) close(fd);
}

// The program's process: limits, user, then exec. Never returns.
[[noreturn]] void exec_step(const ChildPlan& p, size_t step) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    struct sigaction dfl {};
    dfl.sa_handler = SIG_DFL;
    for (int s : {SIGPIPE, SIGXFSZ, SIGXCPU, SIGINT, SIGTERM, SIGCHLD}) sigaction(s, &dfl, nullptr);
    if (!p.sandboxed) setpgid(0, 0);
    setrlimit(RLIMIT_CPU, &p.cpu);
    setrlimit(RLIMIT_AS, &p.as);
    setrlimit(RLIMIT_FSIZE, &p.fsize);
    setrlimit(RLIMIT_NOFILE, &p.nofile);
    setrlimit(RLIMIT_CORE, &p.core);
    if (p.root && p.sandboxed) {
        // Raw system calls: glibc's setuid() in a process it believes multi-threaded signals every
        // thread of the evaluator and waits for them, which never answer in this copy.
        if (syscall(SYS_setgroups, 0, nullptr) != 0 || syscall(SYS_setresgid, p.gid, p.gid, p.gid) != 0 ||
            syscall(SYS_setresuid, p.uid, p.uid, p.uid) != 0) {
            put_record(3, kRecExecError, static_cast<int32_t>(step), errno);
            _exit(126);
        }
    }
    // After the uid change, so that it counts the sandbox user's processes.
    setrlimit(RLIMIT_NPROC, &p.nproc);
    prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    if (chdir(p.work_dir.c_str()) != 0) {
        put_record(3, kRecExecError, static_cast<int32_t>(step), errno);
        _exit(126);
    }
    close_from(3);
    execve(p.argv[step][0], p.argv[step].data(), const_cast<char* const*>(p.envp.data()));
    // fd 3 is closed now: say it on stderr (the evaluator reads it as the step's failure).
    static const char msg[] = "sandbox: cannot execute the program\n";
    ssize_t ignored = write(2, msg, sizeof msg - 1);
    (void)ignored;
    _exit(127);
}

// The sandbox's init (PID 1 of its namespace when sandboxed). Never returns.
[[noreturn]] void child_main(const ChildPlan& p) {
    // fds: 1, 2 = output pipes, 3 = status pipe; everything else closed (other evaluator threads'
    // pipes included, or their readers would wait for this sandbox to end).
    if (dup2(p.out_w, 1) < 0 || dup2(p.err_w, 2) < 0) _exit(124);
    if (p.status_w != 3 && dup2(p.status_w, 3) < 0) _exit(124);
    close_from(4);
    if (p.status_w == 3) fcntl(3, F_SETFD, 0);
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);  // the evaluator dies: the whole sandbox dies
    if (setsid() < 0) child_fail(kStageSetsid, errno);

    if (p.userns) {
        if (!write_small_file("/proc/self/setgroups", "deny") ||
            !write_small_file("/proc/self/uid_map", p.uid_map) ||
            !write_small_file("/proc/self/gid_map", p.gid_map))
            child_fail(kStageUserMap, errno);
    }
    if (p.sandboxed) {
        if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) child_fail(kStagePrivate, errno);
        mount_attr attr{};
        attr.attr_set = MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV;
        // /dev keeps its devices (/dev/null, /dev/urandom): only read-only and nosuid there.
        if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) != 0)
            child_fail(kStageReadOnly, errno);
        mount_attr dev{};
        dev.attr_clr = MOUNT_ATTR_NODEV;
        struct stat st {};
        if (stat("/dev", &st) == 0) syscall(SYS_mount_setattr, AT_FDCWD, "/dev", AT_RECURSIVE, &dev, sizeof dev);
        for (const char* dir : {"/tmp", "/var/tmp", "/dev/shm"}) {
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            if (mount("tmpfs", dir, "tmpfs", MS_NOSUID | MS_NODEV, p.tmpfs_opts.c_str()) != 0)
                child_fail(kStageTmpfs, errno);
        }
        if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, nullptr) != 0) {
            // A user namespace may not mount proc where the host's /proc is partly covered (some
            // containers): hide the host's processes behind an empty read-only tmpfs instead.
            if (!p.userns || mount("tmpfs", "/proc", "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV, "size=4k") != 0)
                child_fail(kStageProc, errno);
        }
        if (mkdir(p.work_dir.c_str(), 0755) != 0) child_fail(kStageWorkDir, errno);
        if (p.root && chown(p.work_dir.c_str(), p.uid, p.gid) != 0) child_fail(kStageWorkDir, errno);
        for (size_t i = 0; i < p.file_paths.size(); ++i) {
            int fd = open(p.file_paths[i].c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
            if (fd < 0) child_fail(kStageWriteFile, errno);
            const std::string& c = (*p.files)[i].content;
            bool ok = write_all(fd, c.data(), c.size());
            if (p.root && fchown(fd, p.uid, p.gid) != 0) ok = false;
            close(fd);
            if (!ok) child_fail(kStageWriteFile, errno);
        }
    } else {
        prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
    int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (null_fd < 0 || dup2(null_fd, 0) < 0) child_fail(kStageDevNull, errno);
    close(null_fd);

    for (size_t step = 0; step < p.argv.size(); ++step) {
        pid_t pid = raw_fork();
        if (pid < 0) child_fail(kStageFork, errno);
        if (pid == 0) exec_step(p, step);
        put_record(3, kRecStepStart, static_cast<int32_t>(step), pid);
        int status = 0;
        bool done = false;
        for (;;) {
            int st = 0;
            pid_t w = waitpid(-1, &st, 0);
            if (w < 0) {
                if (errno == EINTR) continue;
                break;  // ECHILD: nothing left
            }
            if (w == pid) {
                status = st;
                done = true;
                // The program is over: whatever it left running dies with it.
                if (p.sandboxed) kill(-1, SIGKILL);
                else kill(-pid, SIGKILL);
            }
        }
        if (!done) child_fail(kStageFork, ECHILD);
        put_record(3, kRecStepDone, static_cast<int32_t>(step), status);
        if (!(WIFEXITED(status) && WEXITSTATUS(status) == 0)) _exit(0);
    }
    _exit(0);
}

// Output kept under a cap: the head and the tail (a traceback's last line is at the end).
class CappedText {
public:
    explicit CappedText(size_t cap) : cap_(std::max<size_t>(cap, 64)) {}
    void add(const char* p, size_t n) {
        total_ += n;
        const size_t head_cap = cap_ / 2;
        if (head_.size() < head_cap) {
            size_t take = std::min(n, head_cap - head_.size());
            head_.append(p, take);
            p += take;
            n -= take;
        }
        if (n == 0) return;
        const size_t tail_cap = cap_ - head_cap;
        tail_.append(p, n);
        if (tail_.size() > 2 * tail_cap) tail_.erase(0, tail_.size() - tail_cap);
    }
    size_t total() const { return total_; }
    bool truncated() const { return total_ > head_.size() + tail_.size() || tail_cut(); }
    std::string text() const {
        const size_t tail_cap = cap_ - cap_ / 2;
        if (tail_.size() <= tail_cap && total_ == head_.size() + tail_.size()) return head_ + tail_;
        std::string t = tail_.size() > tail_cap ? tail_.substr(tail_.size() - tail_cap) : tail_;
        return head_ + "\n[... " + std::to_string(total_ - head_.size() - t.size()) + " bytes cut ...]\n" + t;
    }

private:
    bool tail_cut() const { return tail_.size() > cap_ - cap_ / 2; }
    size_t cap_;
    size_t total_ = 0;
    std::string head_, tail_;
};

rlimit lim(uint64_t soft, uint64_t hard) {
    rlimit r{};
    r.rlim_cur = soft;
    r.rlim_max = hard;
    return r;
}

std::string first_line_with(const std::string& text, const char* needle) {
    size_t at = text.find(needle);
    if (at == std::string::npos) return "";
    size_t b = text.rfind('\n', at);
    b = b == std::string::npos ? 0 : b + 1;
    size_t e = text.find('\n', at);
    std::string line = text.substr(b, e == std::string::npos ? std::string::npos : e - b);
    if (line.size() > 200) line = line.substr(0, 200) + "...";
    return line;
}

bool is_oom_text(const std::string& err, const std::string& type) {
    return type == "MemoryError" || type == "std::bad_alloc" || err.find("JavaScript heap out of memory") != std::string::npos ||
           err.find("Fatal process out of memory") != std::string::npos ||
           err.find("virtual memory exhausted") != std::string::npos ||
           err.find("out of memory allocating") != std::string::npos;
}

std::string signal_text(int sig) {
    const char* abbrev = sigabbrev_np(sig);
    return "killed by signal " + std::to_string(sig) + (abbrev ? std::string(" (SIG") + abbrev + ")" : "");
}

std::string fmt_seconds(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.1f", s);
    return buf;
}

}  // namespace

const char* run_status_name(RunStatus s) {
    switch (s) {
        case RunStatus::kPassed: return "passed";
        case RunStatus::kFailed: return "failed";
        case RunStatus::kTimedOut: return "timed_out";
        case RunStatus::kOutOfMemory: return "out_of_memory";
        case RunStatus::kSignal: return "signal";
        case RunStatus::kCompileError: return "compile_error";
        case RunStatus::kOutputLimit: return "output_limit";
        case RunStatus::kSandboxError: return "sandbox_error";
    }
    return "?";
}

std::string find_executable(const std::string& name) {
    if (name.empty()) return "";
    if (name[0] == '/') return access(name.c_str(), X_OK) == 0 ? name : "";
    if (name.find('/') != std::string::npos) return name;  // relative to the work folder: made there
    const char* path = std::getenv("PATH");
    std::string dirs = path ? path : "/usr/local/bin:/usr/bin:/bin";
    size_t b = 0;
    while (b <= dirs.size()) {
        size_t e = dirs.find(':', b);
        if (e == std::string::npos) e = dirs.size();
        std::string d = dirs.substr(b, e - b);
        if (!d.empty()) {
            std::string full = d + "/" + name;
            struct stat st {};
            if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(full.c_str(), X_OK) == 0) return full;
        }
        b = e + 1;
    }
    return "";
}

std::string find_error_type(const std::string& err) {
    // C/C++: assert() and an uncaught exception.
    if (err.find("Assertion `") != std::string::npos && err.find("' failed.") != std::string::npos) return "AssertionError";
    {
        const std::string key = "terminate called after throwing an instance of '";
        size_t at = err.rfind(key);
        if (at != std::string::npos) {
            size_t b = at + key.size(), e = err.find('\'', b);
            if (e != std::string::npos) return err.substr(b, e - b);
        }
    }
    // Python's traceback ends with "Type: message" (or "Type"); Node.js prints "Type: message" or
    // "Type [CODE]: message" after the source excerpt. Scan lines from the end.
    size_t end = err.size();
    while (end > 0) {
        size_t b = err.rfind('\n', end - 1);
        size_t start = b == std::string::npos ? 0 : b + 1;
        std::string line = err.substr(start, end - start);
        end = b == std::string::npos ? 0 : b;
        if (line.empty() || line[0] == ' ' || line[0] == '\t') continue;
        size_t i = 0;
        while (i < line.size() && (std::isalnum(static_cast<unsigned char>(line[i])) || line[i] == '_' || line[i] == '.')) ++i;
        if (i == 0 || std::isdigit(static_cast<unsigned char>(line[0]))) continue;
        std::string name = line.substr(0, i);
        std::string rest = line.substr(i);
        if (!(rest.empty() || rest[0] == ':' || rest.rfind(" [", 0) == 0)) continue;
        // The last component must look like an exception class.
        std::string last = name.substr(name.rfind('.') == std::string::npos ? 0 : name.rfind('.') + 1);
        static const char* const kSuffixes[] = {"Error", "Exception", "Exit", "Interrupt", "StopIteration",
                                                "Warning", "Failure"};
        for (const char* s : kSuffixes) {
            const size_t n = std::strlen(s);
            if (last.size() >= n && last.compare(last.size() - n, n, s) == 0) return name;
        }
    }
    return "";
}

RunResult sandbox_run(const SandboxProgram& program, const SandboxLimits& limits, int slot) {
    if (program.steps.empty()) fail("sandbox: a program needs at least one command");
    for (const SandboxFile& f : program.files)
        if (f.name.empty() || f.name.find('/') != std::string::npos || f.name == "." || f.name == "..")
            fail("sandbox: file name '%s' is not a plain name (expected no '/')", f.name.c_str());

    ChildPlan p;
    p.sandboxed = !limits.unsandboxed;
    p.root = geteuid() == 0;
    p.userns = p.sandboxed && !p.root;
    slot = ((slot % 64) + 64) % 64;
    // A distinct user per evaluator process and slot, so that RLIMIT_NPROC counts one sandbox.
    const uint32_t id = 2000000u + static_cast<uint32_t>(getpid() % 15000) * 64u + static_cast<uint32_t>(slot);
    if (p.root) {
        p.uid = id;
        p.gid = id;
    } else {
        p.uid_map = "1000 " + std::to_string(geteuid()) + " 1";
        p.gid_map = "1000 " + std::to_string(getegid()) + " 1";
    }
    p.tmpfs_opts = "size=" + std::to_string(limits.tmpfs_bytes) + ",mode=1777,nr_inodes=4096";

    std::string host_dir;  // unsandboxed only
    if (p.sandboxed) {
        p.work_dir = "/tmp/work";
    } else {
        std::string tmpl = (std::filesystem::temp_directory_path() / "llmforge-unsandboxed-XXXXXX").string();
        if (!mkdtemp(tmpl.data())) fail_kind(ErrorKind::kResource, "sandbox: cannot create a temporary folder: %s", std::strerror(errno));
        host_dir = p.work_dir = tmpl;
        for (const SandboxFile& f : program.files) {
            std::ofstream o(host_dir + "/" + f.name, std::ios::binary);
            o << f.content;
            if (!o) fail_kind(ErrorKind::kResource, "sandbox: cannot write %s/%s", host_dir.c_str(), f.name.c_str());
        }
    }
    p.files = &program.files;
    for (const SandboxFile& f : program.files) p.file_paths.push_back(p.work_dir + "/" + f.name);

    std::vector<std::vector<std::string>> args = program.steps;
    for (auto& a : args) {
        if (a.empty()) fail("sandbox: an empty command");
        std::string exe = find_executable(a[0]);
        if (exe.empty()) fail_kind(ErrorKind::kNotFound, "sandbox: '%s' not found in PATH (hint: install it)", a[0].c_str());
        a[0] = exe;
    }
    for (auto& a : args) {
        std::vector<char*> v;
        for (auto& s : a) v.push_back(s.data());
        v.push_back(nullptr);
        p.argv.push_back(std::move(v));
    }
    p.env_store = {"PATH=/usr/local/bin:/usr/bin:/bin", "HOME=" + p.work_dir, "TMPDIR=/tmp", "LANG=C.UTF-8",
                   "PYTHONDONTWRITEBYTECODE=1"};
    for (auto& s : p.env_store) p.envp.push_back(s.data());
    p.envp.push_back(nullptr);

    double max_timeout = limits.timeout_s;
    if (program.first_run_step > 0) max_timeout = std::max(max_timeout, limits.build_timeout_s);
    const uint64_t cpu = static_cast<uint64_t>(std::ceil(max_timeout)) + 1;
    p.cpu = lim(cpu, cpu + 1);
    p.as = limits.memory_bytes > 0 ? lim(static_cast<uint64_t>(limits.memory_bytes), static_cast<uint64_t>(limits.memory_bytes))
                                   : lim(RLIM_INFINITY, RLIM_INFINITY);
    p.nproc = lim(static_cast<uint64_t>(limits.max_processes), static_cast<uint64_t>(limits.max_processes));
    p.fsize = lim(static_cast<uint64_t>(limits.max_file_bytes), static_cast<uint64_t>(limits.max_file_bytes));
    p.nofile = lim(static_cast<uint64_t>(limits.max_open_files), static_cast<uint64_t>(limits.max_open_files));
    p.core = lim(0, 0);

    int out_p[2], err_p[2], st_p[2];
    if (pipe2(out_p, O_CLOEXEC) != 0) fail_kind(ErrorKind::kResource, "sandbox: pipe: %s", std::strerror(errno));
    if (pipe2(err_p, O_CLOEXEC) != 0) {
        close(out_p[0]), close(out_p[1]);
        fail_kind(ErrorKind::kResource, "sandbox: pipe: %s", std::strerror(errno));
    }
    if (pipe2(st_p, O_CLOEXEC) != 0) {
        close(out_p[0]), close(out_p[1]), close(err_p[0]), close(err_p[1]);
        fail_kind(ErrorKind::kResource, "sandbox: pipe: %s", std::strerror(errno));
    }
    p.out_w = out_p[1];
    p.err_w = err_p[1];
    p.status_w = st_p[1];

    unsigned long flags = SIGCHLD;
    if (p.sandboxed) flags |= CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS;
    if (p.userns) flags |= CLONE_NEWUSER;
    const auto t0 = std::chrono::steady_clock::now();
    pid_t pid = static_cast<pid_t>(syscall(SYS_clone, flags, nullptr, nullptr, nullptr, 0));
    if (pid == 0) child_main(p);
    const int clone_errno = errno;
    close(out_p[1]);
    close(err_p[1]);
    close(st_p[1]);
    if (pid < 0) {
        close(out_p[0]), close(err_p[0]), close(st_p[0]);
        if (!host_dir.empty()) std::filesystem::remove_all(host_dir);
        if (clone_errno == EAGAIN || clone_errno == ENOMEM)
            fail_kind(ErrorKind::kResource, "sandbox: cannot start a process: %s", std::strerror(clone_errno));
        fail_kind(ErrorKind::kResource,
                  "sandbox: the kernel refused new %snamespaces (clone: %s) (hint: run as root, or enable "
                  "unprivileged user namespaces: sysctl kernel.unprivileged_userns_clone=1 / "
                  "user.max_user_namespaces)",
                  p.userns ? "user/PID/mount/network " : "PID/mount/network ", std::strerror(clone_errno));
    }

    CappedText out(limits.max_output_bytes), err(limits.max_output_bytes);
    const size_t hard_output = std::max<size_t>(limits.max_output_bytes * 64, 8u << 20);
    std::vector<Record> recs;
    std::string rec_buf;
    bool timed_out = false, output_limit = false;
    size_t step = 0;
    pid_t step_pid = -1;
    auto step_timeout = [&](size_t s) { return s < program.first_run_step ? limits.build_timeout_s : limits.timeout_s; };
    auto deadline = t0 + std::chrono::duration<double>(step_timeout(0));
    auto kill_all = [&] {
        kill(pid, SIGKILL);
        if (!p.sandboxed && step_pid > 0) kill(-step_pid, SIGKILL);
    };
    int fds[3] = {out_p[0], err_p[0], st_p[0]};
    bool open_[3] = {true, true, true};
    char buf[65536];
    while (open_[0] || open_[1] || open_[2]) {
        pollfd pf[3];
        int n = 0, map[3];
        for (int i = 0; i < 3; ++i)
            if (open_[i]) pf[n] = {fds[i], POLLIN, 0}, map[n++] = i;
        int wait_ms = -1;
        if (!timed_out && !output_limit) {
            auto left = std::chrono::duration<double, std::milli>(deadline - std::chrono::steady_clock::now()).count();
            wait_ms = left <= 0 ? 0 : static_cast<int>(std::min(left + 1, 1e9));
        } else {
            wait_ms = 5000;  // after the kill the pipes close at once; never wait forever
        }
        int r = poll(pf, n, wait_ms);
        if (r < 0 && errno == EINTR) continue;
        if (r == 0) {
            if (timed_out || output_limit) break;
            timed_out = true;
            kill_all();
            continue;
        }
        for (int k = 0; k < n; ++k) {
            if (!(pf[k].revents & (POLLIN | POLLHUP | POLLERR))) continue;
            int i = map[k];
            ssize_t got = read(fds[i], buf, sizeof buf);
            if (got < 0 && (errno == EINTR || errno == EAGAIN)) continue;
            if (got <= 0) {
                open_[i] = false;
                continue;
            }
            if (i == 0) out.add(buf, static_cast<size_t>(got));
            else if (i == 1) err.add(buf, static_cast<size_t>(got));
            else {
                rec_buf.append(buf, static_cast<size_t>(got));
                while (rec_buf.size() >= sizeof(Record)) {
                    Record rec;
                    std::memcpy(&rec, rec_buf.data(), sizeof rec);
                    rec_buf.erase(0, sizeof rec);
                    recs.push_back(rec);
                    if (rec.kind == kRecStepStart) step_pid = rec.b;
                    if (rec.kind == kRecStepDone) {
                        step = static_cast<size_t>(rec.a) + 1;
                        if (step < program.steps.size())
                            deadline = std::chrono::steady_clock::now() + std::chrono::duration<double>(step_timeout(step));
                    }
                }
            }
            if (!output_limit && out.total() + err.total() > hard_output) {
                output_limit = true;
                kill_all();
            }
        }
    }
    for (int i = 0; i < 3; ++i) close(fds[i]);
    int wstatus = 0;
    while (waitpid(pid, &wstatus, 0) < 0 && errno == EINTR) {
    }
    if (!host_dir.empty()) std::filesystem::remove_all(host_dir);

    RunResult res;
    res.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    res.out = out.text();
    res.err = err.text();
    res.output_truncated = out.total() > limits.max_output_bytes || err.total() > limits.max_output_bytes;

    const Record* last_done = nullptr;
    for (const Record& r : recs) {
        if (r.kind == kRecSetupError)
            fail_kind(ErrorKind::kResource, "sandbox: %s failed: %s (hint: run as root, or on a kernel that allows "
                      "unprivileged user and mount namespaces)", stage_name(r.a), std::strerror(r.b));
        if (r.kind == kRecExecError) {
            res.status = RunStatus::kSandboxError;
            res.reason = "sandbox: cannot start step " + std::to_string(r.a + 1) + ": " + std::strerror(r.b);
            return res;
        }
        if (r.kind == kRecStepDone) last_done = &r;
    }
    const size_t step_index = last_done ? static_cast<size_t>(last_done->a) : step;
    const bool building = step_index < program.first_run_step;
    if (output_limit) {
        res.status = RunStatus::kOutputLimit;
        res.reason = "output limit: wrote over " + std::to_string(hard_output) + " bytes";
        return res;
    }
    if (timed_out) {
        res.status = RunStatus::kTimedOut;
        res.reason = std::string(building ? "build " : "") + "timed out after " + fmt_seconds(step_timeout(step)) + " s";
        return res;
    }
    if (!last_done) {
        res.status = RunStatus::kSandboxError;
        res.reason = "sandbox: its init ended before the program did (" +
                     (WIFSIGNALED(wstatus) ? signal_text(WTERMSIG(wstatus)) : "exit " + std::to_string(WEXITSTATUS(wstatus))) + ")";
        return res;
    }
    const int st = last_done->b;
    res.error_type = find_error_type(res.err);
    if (WIFEXITED(st)) {
        res.exit_code = WEXITSTATUS(st);
        if (res.exit_code == 0 && step_index + 1 == program.steps.size()) {
            res.status = RunStatus::kPassed;
            res.reason = "passed";
            return res;
        }
        if (res.exit_code == 127 && res.err.find("sandbox: cannot execute the program") != std::string::npos) {
            res.status = RunStatus::kSandboxError;
            res.reason = "sandbox: cannot execute " + program.steps[step_index][0];
            return res;
        }
    } else if (WIFSIGNALED(st)) {
        res.signal = WTERMSIG(st);
    }
    if (building) {
        res.status = RunStatus::kCompileError;
        std::string line = first_line_with(res.err, "error");
        res.reason = "compile error" + (line.empty() ? std::string() : ": " + line);
        return res;
    }
    if (res.signal == SIGXCPU) {
        res.status = RunStatus::kTimedOut;
        res.reason = "timed out: CPU time limit";
        return res;
    }
    if (is_oom_text(res.err, res.error_type)) {
        res.status = RunStatus::kOutOfMemory;
        res.reason = "out of memory";
        return res;
    }
    if (res.signal == SIGXFSZ) {
        res.status = RunStatus::kFailed;
        res.reason = "failed: file size limit";
        return res;
    }
    if (!res.error_type.empty()) {
        res.status = RunStatus::kFailed;
        res.reason = "failed: " + res.error_type;
        return res;
    }
    if (res.signal != 0) {
        res.status = RunStatus::kSignal;
        res.reason = signal_text(res.signal);
        return res;
    }
    res.status = RunStatus::kFailed;
    res.reason = "failed: exit code " + std::to_string(res.exit_code);
    return res;
}

void sandbox_check_available() {
    static std::once_flag once;
    static std::string error;
    std::call_once(once, [] {
        SandboxProgram prog;
        prog.steps = {{"true"}};
        try {
            RunResult r = sandbox_run(prog, SandboxLimits{}, 0);
            if (!r.passed()) error = "sandbox: a trivial program failed (" + r.reason + ")";
        } catch (const Error& e) {
            error = e.what();
        }
    });
    if (!error.empty()) throw Error(ErrorKind::kResource, error);
}

}  // namespace llmforge::codegen
