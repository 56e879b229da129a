// The sandbox against hostile programs: each must be contained, reported as a failure with the
// right reason, and leave the machine as it was (no stray processes, no files outside, the
// evaluator and its other processes alive). Reasons are checked against what Python, Node.js and
// g++ themselves print (the traceback's last line, assert.js, assert(3)).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>

#include "apps/codegen/evaluate.h"
#include "apps/codegen/problems.h"
#include "apps/codegen/sandbox.h"
#include "core/error.h"
#include "test_util.h"

using namespace llmforge::codegen;
namespace fs = std::filesystem;

namespace {

RunResult run_py(const std::string& src, SandboxLimits lim = {}) {
    return sandbox_run(sandbox_program("python", src), lim, 0);
}

// Processes on this machine still running as one of this evaluator's sandbox users.
std::vector<int> sandbox_user_processes() {
    const uint32_t lo = 2000000u + static_cast<uint32_t>(getpid() % 15000) * 64u;
    std::vector<int> found;
    for (const auto& e : fs::directory_iterator("/proc")) {
        const std::string name = e.path().filename().string();
        if (name.find_first_not_of("0123456789") != std::string::npos) continue;
        std::ifstream f(e.path() / "status");
        std::string line;
        while (std::getline(f, line)) {
            if (line.rfind("Uid:", 0) != 0) continue;
            uint32_t uid = static_cast<uint32_t>(std::stoul(line.substr(4)));
            if (uid >= lo && uid < lo + 64) found.push_back(std::stoi(name));
            break;
        }
    }
    return found;
}

std::string unique_name(const std::string& prefix) {
    std::random_device rd;
    return prefix + std::to_string(getpid()) + "-" + std::to_string(rd());
}

bool root() { return geteuid() == 0; }

}  // namespace

TEST(Sandbox, PythonPassesAndCapturesOutput) {
    RunResult r = run_py("print('hello from the sandbox')\n");
    EXPECT_EQ(r.status, RunStatus::kPassed) << r.reason << "\n" << r.err;
    EXPECT_EQ(r.out, "hello from the sandbox\n");
    EXPECT_EQ(r.reason, "passed");
}

TEST(Sandbox, ErrorTypesFromTheTraceback) {
    RunResult a = run_py("def f(x):\n    return x + 1\nassert f(1) == 3\n");
    EXPECT_EQ(a.status, RunStatus::kFailed);
    EXPECT_EQ(a.error_type, "AssertionError");
    EXPECT_EQ(a.reason, "failed: AssertionError");
    EXPECT_EQ(a.exit_code, 1);
    RunResult n = run_py("print(undefined_name)\n");
    EXPECT_EQ(n.reason, "failed: NameError") << n.err;
    RunResult s = run_py("def f(:\n  pass\n");
    EXPECT_EQ(s.reason, "failed: SyntaxError") << s.err;
    RunResult i = run_py("def f():\nreturn 1\n");
    EXPECT_EQ(i.reason, "failed: IndentationError") << i.err;
    RunResult e = run_py("import json\njson.loads('{')\n");
    EXPECT_EQ(e.error_type, "json.decoder.JSONDecodeError") << e.err;
    RunResult x = run_py("import sys\nsys.exit(3)\n");
    EXPECT_EQ(x.status, RunStatus::kFailed);
    EXPECT_EQ(x.reason, "failed: exit code 3");
}

TEST(Sandbox, SeesNoHostProcessesNoParentAndEmptyStdin) {
    RunResult r = run_py(
        "import os\n"
        "pids = [p for p in os.listdir('/proc') if p.isdigit()]\n"
        "print(os.getppid(), os.getpid(), len(pids), os.getuid() != 0)\n"
        "try:\n    input()\nexcept EOFError:\n    print('eof')\n");
    ASSERT_EQ(r.status, RunStatus::kPassed) << r.err;
    // Its parent is the sandbox's init (PID 1), the evaluator is invisible (ppid 0 from init's view).
    EXPECT_EQ(r.out, "1 2 2 True\neof\n");
}

TEST(Sandbox, InfiniteLoopTimesOutAndIsGone) {
    SandboxLimits lim;
    lim.timeout_s = 1.0;
    const auto t0 = std::chrono::steady_clock::now();
    RunResult r = run_py("while True:\n    pass\n", lim);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    EXPECT_EQ(r.status, RunStatus::kTimedOut) << r.reason;
    EXPECT_EQ(r.reason, "timed out after 1.0 s");
    EXPECT_LT(s, 5.0);
    EXPECT_TRUE(sandbox_user_processes().empty());
}

TEST(Sandbox, SleepingChildrenDoNotOutliveTheProgram) {
    // The program exits at once but leaves a detached grandchild asleep: it must not survive.
    RunResult r = run_py(
        "import os, time\n"
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    time.sleep(100)\n"
        "print('parent done')\n");
    EXPECT_EQ(r.status, RunStatus::kPassed) << r.err;
    EXPECT_LT(r.seconds, 10.0);
    EXPECT_TRUE(sandbox_user_processes().empty());
}

TEST(Sandbox, ForkBombIsContained) {
    SandboxLimits lim;
    lim.timeout_s = 2.0;
    lim.max_processes = 32;
    RunResult r = run_py(
        "import os\n"
        "n = 0\n"
        "while True:\n"
        "    try:\n"
        "        os.fork()\n"
        "    except OSError:\n"
        "        n += 1\n"
        "        if n > 200 and os.getpid() == 2:\n"
        "            raise SystemExit('fork refused %d times' % n)\n",
        lim);
    EXPECT_NE(r.status, RunStatus::kPassed);
    EXPECT_TRUE(r.status == RunStatus::kFailed || r.status == RunStatus::kTimedOut) << r.reason;
    EXPECT_TRUE(sandbox_user_processes().empty());
    // The machine can still start processes.
    EXPECT_EQ(llmforge::test::run_command("true"), 0);
}

TEST(Sandbox, MemoryBombIsOutOfMemory) {
    SandboxLimits lim;
    lim.memory_bytes = 512LL << 20;
    RunResult r = run_py("chunks = []\nwhile True:\n    chunks.append(b'x' * (16 << 20))\n", lim);
    EXPECT_EQ(r.status, RunStatus::kOutOfMemory) << r.reason << "\n" << r.err;
    EXPECT_EQ(r.error_type, "MemoryError");
    EXPECT_EQ(r.reason, "out of memory");
}

TEST(Sandbox, WritesOutsideItsFolderNeverReachTheHost) {
    const std::string tmp_name = "/tmp/" + unique_name("llmforge-escape-");
    const char* src_env = std::getenv("LLMFORGE_SRC");
    const std::string repo = fs::absolute(src_env ? src_env : ".").string();
    const std::string repo_name = repo + "/" + unique_name("llmforge-escape-");
    const std::string shm_name = "/dev/shm/" + unique_name("llmforge-escape-");
    // /tmp and /dev/shm are private tmpfs: the write succeeds in there and vanishes with the run.
    RunResult t = run_py("open('" + tmp_name + "', 'w').write('x')\nopen('" + shm_name +
                         "', 'w').write('x')\nprint(open('" + tmp_name + "').read())\n");
    EXPECT_EQ(t.status, RunStatus::kPassed) << t.err;
    EXPECT_FALSE(fs::exists(tmp_name));
    EXPECT_FALSE(fs::exists(shm_name));
    // Everything else is read-only (and not the sandbox user's).
    RunResult r = run_py("open('" + repo_name + "', 'w').write('x')\n");
    EXPECT_EQ(r.status, RunStatus::kFailed) << r.reason;
    EXPECT_TRUE(r.error_type == "OSError" || r.error_type == "PermissionError") << r.err;
    EXPECT_FALSE(fs::exists(repo_name));
    RunResult h = run_py("import os\nos.remove('/etc/hostname')\n");
    EXPECT_EQ(h.status, RunStatus::kFailed);
    EXPECT_TRUE(fs::exists("/etc/hostname"));
}

TEST(Sandbox, NoNetwork) {
    int ls = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
    ASSERT_GE(ls, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ASSERT_EQ(bind(ls, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
    ASSERT_EQ(listen(ls, 8), 0);
    socklen_t len = sizeof a;
    ASSERT_EQ(getsockname(ls, reinterpret_cast<sockaddr*>(&a), &len), 0);
    const int port = ntohs(a.sin_port);
    RunResult r = run_py("import socket\ns = socket.create_connection(('127.0.0.1', " + std::to_string(port) +
                         "), timeout=2)\ns.sendall(b'escaped')\n");
    EXPECT_EQ(r.status, RunStatus::kFailed) << r.reason;
    EXPECT_TRUE(r.error_type == "OSError" || r.error_type == "ConnectionRefusedError") << r.err;
    pollfd pf{ls, POLLIN, 0};
    EXPECT_EQ(poll(&pf, 1, 200), 0) << "the listener saw a connection from the sandbox";
    close(ls);
    RunResult d = run_py("import socket\nsocket.getaddrinfo('example.com', 80)\n");
    EXPECT_EQ(d.status, RunStatus::kFailed);
}

TEST(Sandbox, KillingItsParentOrEveryoneHarmsNoOne) {
    // A host process of ours that "kill -9 -1" would reach if the sandbox did not hold.
    pid_t bystander = fork();
    ASSERT_GE(bystander, 0);
    if (bystander == 0) {
        execl("/bin/sleep", "sleep", "60", static_cast<char*>(nullptr));
        _exit(127);
    }
    // Its parent is the sandbox's init: as root the program runs as another user (PermissionError);
    // in a user namespace init is its namespace's PID 1, which ignores signals from inside.
    RunResult p = run_py("import os\nos.kill(os.getppid(), 9)\nprint('still here')\n");
    if (root()) EXPECT_EQ(p.reason, "failed: PermissionError") << p.err;
    else EXPECT_EQ(p.out, "still here\n") << p.reason;
    RunResult s = run_py("import os, signal\nos.kill(-1, signal.SIGKILL)\nos.kill(1, signal.SIGKILL)\nprint('alive')\n");
    EXPECT_NE(s.status, RunStatus::kSandboxError) << s.reason;
    SandboxProgram sh;
    sh.steps = {{"/bin/sh", "-c", "kill -9 -1; kill -9 1; kill -9 0; echo alive"}};
    RunResult k = sandbox_run(sh, SandboxLimits{}, 1);
    EXPECT_NE(k.status, RunStatus::kSandboxError) << k.reason;
    EXPECT_EQ(kill(bystander, 0), 0) << "the bystander was killed";
    kill(bystander, SIGKILL);
    waitpid(bystander, nullptr, 0);
    EXPECT_TRUE(sandbox_user_processes().empty());
    // The evaluator is alive (we are running) and the sandbox still works.
    EXPECT_TRUE(run_py("print(1)\n").passed());
}

TEST(Sandbox, HugeOutputIsCapped) {
    SandboxLimits lim;
    lim.max_output_bytes = 4096;
    RunResult r = run_py("import sys\nsys.stdout.write('y' * 1000000)\n", lim);
    EXPECT_EQ(r.status, RunStatus::kPassed) << r.reason;
    EXPECT_TRUE(r.output_truncated);
    EXPECT_LT(r.out.size(), 4096u + 100u);
    EXPECT_NE(r.out.find("bytes cut"), std::string::npos);
    RunResult f = run_py("while True:\n    print('z' * 4096)\n", lim);
    EXPECT_EQ(f.status, RunStatus::kOutputLimit) << f.reason;
    EXPECT_LT(f.out.size(), 4096u + 100u);
    EXPECT_TRUE(sandbox_user_processes().empty());
}

TEST(Sandbox, FileSizeBombStopsAtTheLimit) {
    SandboxLimits lim;
    lim.max_file_bytes = 8 << 20;
    RunResult r = run_py("with open('big', 'wb') as f:\n    while True:\n        f.write(b'x' * 65536)\n", lim);
    EXPECT_EQ(r.status, RunStatus::kFailed) << r.reason;
    EXPECT_EQ(r.error_type, "OSError") << r.err;  // [Errno 27] File too large
    EXPECT_NE(r.err.find("File too large"), std::string::npos) << r.err;
}

TEST(Sandbox, CppCompilesRunsAndFails) {
    if (find_executable("g++").empty()) GTEST_SKIP() << "g++ not installed";
    RunResult ok = sandbox_run(sandbox_program("cpp", "#include <cstdio>\nint main() { std::puts(\"cpp ok\"); }\n"), {}, 0);
    EXPECT_EQ(ok.status, RunStatus::kPassed) << ok.reason << "\n" << ok.err;
    EXPECT_EQ(ok.out, "cpp ok\n");
    RunResult bad = sandbox_run(sandbox_program("cpp", "#include <cassert>\nint main() { assert(1 + 1 == 3); }\n"), {}, 0);
    EXPECT_EQ(bad.status, RunStatus::kFailed) << bad.err;
    EXPECT_EQ(bad.reason, "failed: AssertionError");
    EXPECT_EQ(bad.signal, SIGABRT);
    RunResult ce = sandbox_run(sandbox_program("cpp", "int main() { return undeclared; }\n"), {}, 0);
    EXPECT_EQ(ce.status, RunStatus::kCompileError);
    EXPECT_NE(ce.reason.find("undeclared"), std::string::npos) << ce.reason;
    EXPECT_NE(ce.reason.find("was not declared"), std::string::npos) << ce.reason;
    RunResult seg = sandbox_run(sandbox_program("cpp", "int main() { volatile int* p = nullptr; return *p; }\n"), {}, 0);
    EXPECT_EQ(seg.status, RunStatus::kSignal);
    EXPECT_EQ(seg.reason, "killed by signal 11 (SIGSEGV)");
}

TEST(Sandbox, JavaScriptRunsAndFails) {
    if (find_executable("node").empty()) GTEST_SKIP() << "node not installed";
    RunResult ok = sandbox_run(sandbox_program("js", "console.log([1,2].map(x => x * 2).join(','));\n"), {}, 0);
    EXPECT_EQ(ok.status, RunStatus::kPassed) << ok.reason << "\n" << ok.err;
    EXPECT_EQ(ok.out, "2,4\n");
    RunResult bad = sandbox_run(
        sandbox_program("js", "const assert = require('node:assert');\nassert.deepEqual([1, 2], [1, 3]);\n"), {}, 0);
    EXPECT_EQ(bad.status, RunStatus::kFailed);
    EXPECT_EQ(bad.reason, "failed: AssertionError") << bad.err;
    RunResult net = sandbox_run(sandbox_program("js",
        "require('net').connect(80, '127.0.0.1').on('error', e => { console.error('TypeError: ' + e.code); "
        "process.exit(2); });\n"), {}, 0);
    EXPECT_EQ(net.status, RunStatus::kFailed);
    EXPECT_NE(net.err.find("ENETUNREACH"), std::string::npos) << net.err;
}

TEST(Sandbox, ParallelRunsKeepTheirOrder) {
    std::vector<SandboxProgram> progs;
    for (int i = 0; i < 12; ++i)
        progs.push_back(sandbox_program("python", "import sys\nprint(" + std::to_string(i) + ")\nsys.exit(" +
                                                      std::to_string(i % 3 == 0 ? 1 : 0) + ")\n"));
    EvalOptions opt;
    opt.jobs = 2;
    size_t calls = 0;
    opt.progress = [&](size_t done, size_t total) {
        ++calls;
        EXPECT_EQ(total, 12u);
        EXPECT_EQ(done, calls);
    };
    std::vector<RunResult> rs = run_programs(progs, opt);
    ASSERT_EQ(rs.size(), 12u);
    for (int i = 0; i < 12; ++i) {
        EXPECT_EQ(rs[i].out, std::to_string(i) + "\n") << rs[i].reason << " " << rs[i].err;
        EXPECT_EQ(rs[i].passed(), i % 3 != 0);
    }
    EXPECT_EQ(calls, 12u);
}

TEST(Sandbox, UnsandboxedDebugModeStillRuns) {
    SandboxLimits lim;
    lim.unsandboxed = true;
    lim.timeout_s = 1.0;
    RunResult r = run_py("print('plain')\n", lim);
    EXPECT_EQ(r.status, RunStatus::kPassed) << r.reason << r.err;
    RunResult t = run_py("while True:\n    pass\n", lim);
    EXPECT_EQ(t.status, RunStatus::kTimedOut);
}

TEST(Sandbox, ErrorTypeParser) {
    EXPECT_EQ(find_error_type("Traceback (most recent call last):\n  File \"x\", line 1\nValueError: bad\n"), "ValueError");
    EXPECT_EQ(find_error_type("Traceback...\nKeyboardInterrupt\n"), "KeyboardInterrupt");
    EXPECT_EQ(find_error_type("/x.js:2\n\nAssertionError [ERR_ASSERTION]: Expected\n    at x\n\nNode.js v20.1.0\n"),
              "AssertionError");
    EXPECT_EQ(find_error_type("prog: prog.cpp:3: int main(): Assertion `x' failed.\n"), "AssertionError");
    EXPECT_EQ(find_error_type("terminate called after throwing an instance of 'std::out_of_range'\n"), "std::out_of_range");
    EXPECT_EQ(find_error_type("just some text\n"), "");
}

TEST(Sandbox, BadProgramsAreRejected) {
    SandboxProgram p;
    EXPECT_THROW(sandbox_run(p, {}, 0), llmforge::Error);
    p.steps = {{"no-such-interpreter-xyz"}};
    EXPECT_THROW(sandbox_run(p, {}, 0), llmforge::Error);
    p.steps = {{"true"}};
    p.files = {{"../escape", "x"}};
    EXPECT_THROW(sandbox_run(p, {}, 0), llmforge::Error);
    EXPECT_THROW(sandbox_program("cobol", "x"), llmforge::Error);
}
