// llmforge train --save/--resume after SIGKILL, read-only folders and leftovers: a kill at any
// point (before the first checkpoint, mid-`latest`, between `latest` and the top-level links,
// mid-deletion of an old checkpoint, at random moments) and then --resume leaves a folder with no
// temporary files whose top-level model.safetensors is the one of the checkpoint `latest` names;
// a folder holding only leftovers is "no checkpoint yet" (one-line error, or step 0 with the
// flags of a fresh run); a read-only --save/--resume folder fails before any training step.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>

#include "cli_run.h"
#include "token_pattern.h"
#include "core/error.h"
#include "train/checkpoint.h"

using namespace llmforge::test;
namespace fs = std::filesystem;

namespace {

const char* const kConfig = kPatternLlamaConfig;

struct Fixture {
    std::string cfg, data;
};

const Fixture& fixture() {
    static Fixture f = [] {
        Fixture x;
        const std::string d = temp_dir();
        x.cfg = d + "/cfg.json";
        write_file(x.cfg, kConfig);
        x.data = d + "/train.u16";
        write_pattern(x.data, 5000, 1);
        return x;
    }();
    return f;
}

// The flags of a fresh run (also accepted by --resume, where they equal the saved ones).
std::string flags(const std::string& extra) {
    const Fixture& f = fixture();
    return "--config " + q(f.cfg) + " --data " + q(f.data) + " --seq-len 32 --batch 4 --lr 3e-3 --warmup-steps 4 -t 2 -q " +
           extra;
}

std::string trim(std::string s) {
    while (!s.empty() && (s.back() == '\n' || s.back() == '\r' || s.back() == ' ')) s.pop_back();
    return s;
}

// No temporary file of any kind left (except the test's own "*-mine" files), and DIR's top-level
// model files are those of the checkpoint `latest` names.
void expect_consistent(const std::string& save, const std::string& ctx) {
    for (const auto& e : fs::directory_iterator(save)) {
        const std::string fn = e.path().filename().string();
        if (fn.size() > 5 && fn.compare(fn.size() - 5, 5, "-mine") == 0) continue;
        EXPECT_EQ(fn.find(".tmp-"), std::string::npos) << ctx << ": leftover " << fn;
        EXPECT_NE(fn.rfind(".link-", 0), 0u) << ctx << ": leftover " << fn;
        EXPECT_NE(fn.rfind(".llmforge-", 0), 0u) << ctx << ": leftover " << fn;
    }
    if (!fs::exists(save + "/latest")) return;
    const std::string ck = save + "/" + trim(read_file(save + "/latest"));
    ASSERT_TRUE(fs::exists(ck + "/trainer_state.json")) << ctx << ": latest names " << ck;
    for (const char* f : {"model.safetensors", "config.json"}) {
        ASSERT_TRUE(fs::exists(save + "/" + f)) << ctx << ": " << f << " missing at top level";
        EXPECT_TRUE(read_file(save + "/" + f) == read_file(ck + "/" + f))
            << ctx << ": top-level " << f << " differs from " << ck << "/" << f;
    }
}

int resumed_at(const std::string& err) {
    const size_t p = err.find("resuming at step ");
    return p == std::string::npos ? -1 : std::atoi(err.c_str() + p + 17);
}

// Every point of a save that matters (LLMFORGE_TEST_KILL_IN_SAVE=<phase>@<step>, see
// checkpoint.cpp), then --resume: consistent at once, and the resumed run ends with exactly the
// weights of the uninterrupted one.
TEST(TrainResume, KillAtEachPointOfASaveThenResumeIsConsistent) {
    const std::string d = temp_dir();
    const std::string extra = "--steps 6 --save-every 2 --keep 1 ";
    ASSERT_EQ(run_cli("train " + flags(extra + "--save " + q(d + "/ref"))).rc, 0);
    const std::string want = read_file(d + "/ref/model.safetensors");
    struct Case {
        const char* kill;
        int resume_at;  // -1: no checkpoint completed
    };
    // 1@2 model of the first checkpoint written, 3@2 first checkpoint in place but no `latest`,
    // 6@2 / 6@4 `latest.tmp-*` written but not renamed, 4@4 `latest` replaced but no link yet,
    // 5@4 model.safetensors linked but not config.json, 7@4 checkpoint-000002 renamed for deletion.
    for (const Case c : {Case{"1@2", -1}, Case{"3@2", 2}, Case{"6@2", 2}, Case{"6@4", 2}, Case{"4@4", 4}, Case{"5@4", 4},
                         Case{"7@4", 4}}) {
        const std::string save = d + "/k" + std::string(c.kill).substr(0, 1) + std::string(c.kill).substr(2);
        const int st = run_command(std::string("LLMFORGE_TEST_KILL_IN_SAVE=") + c.kill + " " + cli_path() + " train " +
                                   flags(extra + "--save " + q(save)) + " 2>/dev/null");
        ASSERT_EQ(st, 137) << c.kill;  // 128 + SIGKILL from the shell
        // Files that are not ours survive every clean-up.
        auto add_foreign = [&] {
            write_file(save + "/notes.tmp-mine", "x");
            fs::create_directories(save + "/.tmp-mine");
        };
        if (c.resume_at < 0) {
            // Only leftovers: no checkpoint yet. Bare --resume: one line saying so (and what to do);
            // the leftovers are gone; with the flags of a fresh run it starts at step 0.
            expect_one_line_error(run_cli("train --resume " + q(save)), "no completed checkpoint yet");
            EXPECT_TRUE(fs::is_empty(save)) << c.kill << ": leftovers not removed";
            auto r = run_cli("train --resume " + q(save) + " " + flags(extra));
            ASSERT_EQ(r.rc, 0) << r.err;
            EXPECT_NE(r.err.find("starting at step 0"), std::string::npos) << r.err;
            add_foreign();
        } else {
            add_foreign();
            auto r = run_cli("train --resume " + q(save) + " -q --stop-after 0");  // verify + repair, no step
            ASSERT_EQ(r.rc, 0) << c.kill << ": " << r.err;
            EXPECT_EQ(resumed_at(r.err), c.resume_at) << c.kill << ": " << r.err;
            expect_consistent(save, c.kill);
            EXPECT_TRUE(fs::exists(save + "/notes.tmp-mine")) << c.kill;
            EXPECT_TRUE(fs::is_directory(save + "/.tmp-mine")) << c.kill;
            r = run_cli("train --resume " + q(save) + " -q");
            ASSERT_EQ(r.rc, 0) << c.kill << ": " << r.err;
        }
        expect_consistent(save, c.kill);
        EXPECT_EQ(trim(read_file(save + "/latest")), "checkpoint-000006") << c.kill;
        EXPECT_TRUE(read_file(save + "/model.safetensors") == want) << c.kill << ": not the uninterrupted run's weights";
    }
}

// SIGKILL after random delays (from before the folder exists to mid-run, a save every step), each
// followed by a check with --resume: no leftovers and top-level model == latest's after every one.
TEST(TrainResume, SigkillAtRandomMomentsThenResumeIsConsistent) {
    const std::string d = temp_dir(), save = d + "/run";
    const std::string run = flags("--steps 100000 --save-every 1 --keep 2 ");
    std::mt19937 rng(11);
    int no_checkpoint = 0, with_checkpoint = 0, with_leftovers = 0;
    for (int trial = 0; trial < 10; ++trial) {
        // The first kills land around the first checkpoint (a run saves its first after ~50-100 ms
        // here), the others anywhere in the save-every-step loop.
        const int delay_ms = trial < 3 ? 40 + 20 * trial : trial == 9 ? 1500 : 80 + static_cast<int>(rng() % 500);
        const std::string cmd = cli_path() + " train " + (fs::exists(save) ? "--resume " + q(save) + " " : "--save " + q(save) + " ") + run;
        run_command(cmd + " 2>/dev/null & pid=$!; sleep " + std::to_string(delay_ms / 1000.0) +
                    "; kill -9 $pid; wait $pid 2>/dev/null");
        if (!fs::exists(save)) continue;  // killed before it made the folder
        const std::string ctx = "trial " + std::to_string(trial) + " (" + std::to_string(delay_ms) + " ms)";
        for (const auto& e : fs::directory_iterator(save))
            if (e.path().filename().string().find(".tmp-") != std::string::npos ||
                e.path().filename().string().rfind(".link-", 0) == 0) {
                ++with_leftovers;
                break;
            }
        auto r = run_cli("train --resume " + q(save) + " --stop-after 0 -q");
        if (fs::exists(save + "/latest")) {
            ++with_checkpoint;
            EXPECT_EQ(r.rc, 0) << ctx << ": " << r.err;
        } else {
            ++no_checkpoint;
            expect_one_line_error(r, "no completed checkpoint yet");
        }
        expect_consistent(save, ctx);
    }
    EXPECT_GT(with_checkpoint, 0);
    std::printf("random kills: %d left no checkpoint yet, %d a checkpoint, %d temporary files\n", no_checkpoint,
                with_checkpoint, with_leftovers);
}

// A folder that holds only leftovers (made by hand here) or nothing is "no checkpoint yet": bare
// --resume is one line naming the folder, with the flags of a fresh run it starts at step 0.
TEST(TrainResume, FolderWithOnlyLeftoversIsNoCheckpointYet) {
    const std::string d = temp_dir();
    for (const bool empty : {false, true}) {
        const std::string save = d + (empty ? "/empty" : "/left");
        fs::create_directories(save);
        if (!empty) {
            fs::create_directories(save + "/.tmp-checkpoint-000002-4242");
            write_file(save + "/.tmp-checkpoint-000002-4242/model.safetensors", "partial");
            write_file(save + "/latest.tmp-Ab3xYz", "checkpoint-000002\n");
            write_file(save + "/.link-model.safetensors", "partial");
        }
        auto r = run_cli("train --resume " + q(save));
        expect_one_line_error(r, "no completed checkpoint yet");
        EXPECT_NE(r.err.find(save), std::string::npos) << r.err;
        EXPECT_TRUE(fs::is_empty(save)) << "leftovers not removed";
        r = run_cli("train --resume " + q(save) + " " + flags("--steps 2"));
        ASSERT_EQ(r.rc, 0) << r.err;
        EXPECT_NE(r.err.find("starting at step 0"), std::string::npos) << r.err;
        EXPECT_EQ(trim(read_file(save + "/latest")), "checkpoint-000002");
        expect_consistent(save, empty ? "empty" : "leftovers");
    }
    // A fresh --save into a folder that already has a complete checkpoint folder (but no
    // `latest`) refuses, like one with `latest`.
    const std::string save = d + "/left";
    fs::rename(save + "/latest", save + "/latest.bak");
    expect_one_line_error(run_cli("train " + flags("--steps 2 --save " + q(save))), "already holds a checkpoint");
}

// A checkpoint moved aside by a re-save of its step (file systems without RENAME_EXCHANGE) and
// killed before the new one took its name is put back.
TEST(TrainResume, CheckpointMovedAsideIsPutBack) {
    const std::string save = temp_dir() + "/run";
    ASSERT_EQ(run_cli("train " + flags("--steps 2 --save " + q(save))).rc, 0);
    fs::rename(save + "/checkpoint-000002", save + "/.tmp-old-checkpoint-000002");
    auto r = run_cli("train --resume " + q(save) + " -q --stop-after 0");
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(resumed_at(r.err), 2) << r.err;
    expect_consistent(save, "moved aside");
}

// Shell prefix that runs a command with `dir` mounted read-only (a private mount namespace: works
// as root, where chmod does not stop writes), or "" when this machine cannot do that.
std::string readonly_runner(const std::string& dir, const std::string& scratch) {
    const std::string script = scratch + "/ro.sh";
    write_file(script, "set -e\nmount --bind " + q(dir) + " " + q(dir) + "\nmount -o remount,bind,ro " + q(dir) +
                           "\nexec \"$@\"\n");
    const std::string prefix = "unshare -rm sh " + q(script) + " ";
    if (run_command(prefix + "sh -c " + q("! touch " + dir + "/probe") + " >/dev/null 2>&1") == 0) return prefix;
    return "";
}

TEST(TrainResume, WritabilityCheckFunction) {
    const std::string d = temp_dir();
    EXPECT_NO_THROW(llmforge::train::check_folder_writable(d, "--save"));
    EXPECT_TRUE(fs::is_empty(d)) << "probe file left behind";
    try {
        llmforge::train::check_folder_writable("/proc", "--save");  // not even root creates files there
        ADD_FAILURE() << "/proc accepted as writable";
    } catch (const llmforge::Error& e) {
        const std::string m = e.what();
        EXPECT_NE(m.find("--save folder /proc is not writable"), std::string::npos) << m;
        EXPECT_NE(m.find("hint"), std::string::npos) << m;
        EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    }
}

// --save or --resume into a read-only folder fails at once, in one line, before any training
// step (no model set-up line, no step logged), instead of at the first save.
TEST(TrainResume, ReadOnlyFolderFailsBeforeTheFirstStep) {
    const std::string d = temp_dir(), ro = d + "/ro", ck = d + "/ck";
    fs::create_directories(ro);
    std::string prefix = readonly_runner(ro, d);
    bool chmod_mode = false;
    if (prefix.empty()) {
        if (::geteuid() == 0)
            GTEST_SKIP() << "cannot make a read-only folder here: running as root (chmod does not stop root) and "
                            "`unshare -rm` + a read-only bind mount is not permitted; check_folder_writable is "
                            "tested by WritabilityCheckFunction";
        chmod_mode = true;
    }
    auto run_ro = [&](const std::string& dir, const std::string& args) {
        if (chmod_mode) {
            fs::permissions(dir, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                            fs::perm_options::remove);
            auto r = run_cli(args);
            fs::permissions(dir, fs::perms::owner_write, fs::perm_options::add);
            return r;
        }
        const std::string err = d + "/ro_stderr.txt";
        CliRun r;
        r.rc = run_command(readonly_runner(dir, d) + cli_path() + " " + args + " 2>" + q(err), &r.out);
        r.err = read_file(err);
        return r;
    };
    // A fresh run: with --steps 100000 and one save at the end, only the check at start can stop it.
    const std::string log = d + "/log.jsonl";
    auto t0 = std::chrono::steady_clock::now();
    auto r = run_ro(ro, "train " + flags("--steps 100000 --save " + q(ro) + " --log-jsonl " + q(log)));
    double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    expect_one_line_error(r, "--save folder " + ro + " is not writable");
    EXPECT_EQ(r.err.find("train: llama model"), std::string::npos) << r.err;  // no set-up, no step
    EXPECT_FALSE(fs::exists(log)) << "training started";
    EXPECT_LT(secs, 20.0);
    EXPECT_TRUE(fs::is_empty(ro));

    // --resume of a checkpoint folder that became read-only.
    ASSERT_EQ(run_cli("train " + flags("--steps 2 --save " + q(ck))).rc, 0);
    const std::string before = read_file(ck + "/model.safetensors");
    t0 = std::chrono::steady_clock::now();
    r = run_ro(ck, "train --resume " + q(ck) + " --steps 100000 -q --log-jsonl " + q(log));
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    expect_one_line_error(r, "--resume folder " + ck + " is not writable");
    EXPECT_NE(r.err.find("--save NEWDIR"), std::string::npos) << r.err;  // the way out
    EXPECT_EQ(r.err.find("train: llama model"), std::string::npos) << r.err;
    EXPECT_FALSE(fs::exists(log)) << "training started";
    EXPECT_LT(secs, 20.0);
    EXPECT_EQ(read_file(ck + "/model.safetensors"), before);
    // …and the hint works: the read-only run continues into another folder.
    r = run_ro(ck, "train --resume " + q(ck) + " --steps 4 -q --save " + q(d + "/next"));
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(trim(read_file(d + "/next/latest")), "checkpoint-000004");
}

// Two runs never write into one folder: the second fails at once while the first holds it.
TEST(TrainResume, SecondRunIntoTheSameFolderFails) {
    const std::string d = temp_dir(), save = d + "/run";
    const std::string pidfile = d + "/pid";
    run_command(cli_path() + " train " + flags("--steps 100000 --save-every 1 --save " + q(save)) +
                " >/dev/null 2>&1 & echo $! > " + q(pidfile));
    const std::string pid = trim(read_file(pidfile));
    for (int i = 0; i < 200 && !fs::exists(save + "/latest"); ++i) usleep(20000);
    ASSERT_TRUE(fs::exists(save + "/latest"));
    auto r = run_cli("train --resume " + q(save) + " -q");
    run_command("kill -9 " + pid);
    expect_one_line_error(r, "in use by another llmforge train");
}

}  // namespace
