// Runs one untrusted program (model-written code and its tests) in a sandbox and says how it ended.
//
// Each run gets, on Linux:
//  * its own processes: a new PID namespace whose init is our own small reaper (the program never
//    sees its evaluator: getppid() is 0 for it), so killing that init SIGKILLs the whole tree and
//    leaves nothing behind (the kernel reaps the namespace before init can be waited for);
//  * no network: a new network namespace (only a downed loopback);
//  * its own mounts: the whole file tree is re-mounted read-only, with private tmpfs folders over
//    /tmp, /var/tmp and /dev/shm (its work folder is /tmp/work inside; it vanishes with the run);
//    a fresh /proc shows only the sandbox's processes;
//  * an unprivileged user: as root, setuid/setgid to a distinct high uid per parallel slot (so
//    RLIMIT_NPROC counts one sandbox); otherwise a user namespace with every capability dropped;
//  * limits: RLIMIT_CPU, RLIMIT_AS (memory), RLIMIT_NPROC, RLIMIT_FSIZE, RLIMIT_NOFILE, no core
//    dumps; a wall-clock timeout per step after which the namespace is SIGKILLed;
//  * stdin from /dev/null; stdout/stderr captured up to a byte cap (a program that writes far
//    beyond it is stopped).
// The namespaces are set up by hand (clone + mount + setuid): bubblewrap / nsjail would do it, but
// neither is a library and a process per run would only add an exec to each of hundreds of runs.
// If the kernel refuses the namespaces, run() fails with one line and a hint; it never falls back
// to running unsandboxed. `SandboxLimits::unsandboxed` (the CLI's --no-sandbox) is for debugging.
//
// Thread safety: run() may be called from many threads at once (each with its own slot).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace llmforge::codegen {

struct SandboxFile {
    std::string name;     // a plain file name inside the work folder (no '/')
    std::string content;
};

// A program: files written into the work folder, then commands run in order inside it; the run
// stops at the first command that fails. Commands are argv vectors (argv[0] an absolute path or
// a name looked up in PATH on the host before the run).
struct SandboxProgram {
    std::vector<SandboxFile> files;
    std::vector<std::vector<std::string>> steps;
    // Steps before this index build the program (a compiler): their failure is a compile error.
    size_t first_run_step = 0;
};

struct SandboxLimits {
    double timeout_s = 10.0;          // wall clock, per step (a build step gets build_timeout_s)
    double build_timeout_s = 60.0;
    int64_t memory_bytes = 2LL << 30;  // RLIMIT_AS
    int64_t max_processes = 64;        // RLIMIT_NPROC (threads count)
    int64_t max_file_bytes = 64LL << 20;  // RLIMIT_FSIZE
    int64_t tmpfs_bytes = 128LL << 20;    // size of each private tmpfs (/tmp, /var/tmp, /dev/shm): host memory
    int64_t max_open_files = 256;      // RLIMIT_NOFILE
    size_t max_output_bytes = 64 << 10;  // kept of stdout and of stderr each
    bool unsandboxed = false;          // debugging only: no namespaces, no uid change (limits stay)
};

enum class RunStatus {
    kPassed,        // every step exited 0
    kFailed,        // the program exited non-zero (an exception, a failed assert)
    kTimedOut,      // wall clock or CPU time ran out
    kOutOfMemory,   // MemoryError, std::bad_alloc, V8 heap exhausted
    kSignal,        // killed by a signal (other than the above)
    kCompileError,  // a build step failed
    kOutputLimit,   // wrote far more than the output cap
    kSandboxError,  // the sandbox itself could not be set up (never the program's fault)
};

const char* run_status_name(RunStatus s);  // "passed", "failed", "timed_out", ...

struct RunResult {
    RunStatus status = RunStatus::kSandboxError;
    // Short, one line: "passed", "failed: AssertionError", "timed out after 3.0 s",
    // "compile error: prog.cpp:3:5: error: ...", "killed by signal 11 (SIGSEGV)".
    std::string reason;
    std::string error_type;  // AssertionError, NameError, SyntaxError... when one was found
    int exit_code = -1;      // of the last step run, when it exited
    int signal = 0;          // that killed the last step run
    std::string out, err;    // captured (capped) output of all steps
    bool output_truncated = false;
    double seconds = 0;
    bool passed() const { return status == RunStatus::kPassed; }
};

// Runs `program` under `limits`. `slot` (0..63) picks the sandbox user among parallel runs.
// Throws llmforge::Error (one line with a hint) when the kernel refuses the namespaces or the
// sandbox cannot be set up at all; a misbehaving program only ever yields a RunResult.
RunResult sandbox_run(const SandboxProgram& program, const SandboxLimits& limits, int slot = 0);

// Throws llmforge::Error when sandboxes cannot be created here (runs /bin/true once).
void sandbox_check_available();

// The first line of `err` that names an error type the way Python (traceback's last line),
// Node.js ("TypeError: ...", "AssertionError [ERR_ASSERTION]: ...") or a C assert report it;
// "" if none.
std::string find_error_type(const std::string& err);

// The absolute path of `name` in PATH (or `name` itself if it contains '/'); "" if not found.
std::string find_executable(const std::string& name);

}  // namespace llmforge::codegen
