// Helpers for the special-file tests (tests/io/special_files_test.cpp,
// tests/model/loader_special_files_test.cpp): making FIFOs, sockets and symlinks, running a load
// under a watchdog so that a blocking open fails the test instead of hanging it, and counting the
// opens of a file with inotify (sees every open, whichever API made it).
#pragma once

#include <fcntl.h>
#include <poll.h>
#include <sys/inotify.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace llmforge::test {

inline std::string make_fifo(const std::string& path) {
    ::unlink(path.c_str());
    EXPECT_EQ(::mkfifo(path.c_str(), 0644), 0) << path << ": " << std::strerror(errno);
    return path;
}

// A bound AF_UNIX socket file (the descriptor is closed; the socket file stays).
inline std::string make_socket(const std::string& path) {
    ::unlink(path.c_str());
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    EXPECT_LT(path.size(), sizeof a.sun_path) << "socket path too long: " << path;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
    EXPECT_GE(fd, 0);
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0) << path << ": " << std::strerror(errno);
    ::close(fd);
    return path;
}

inline std::string make_symlink(const std::string& target, const std::string& link) {
    ::unlink(link.c_str());
    EXPECT_EQ(::symlink(target.c_str(), link.c_str()), 0) << link;
    return link;
}

// Runs f on another thread and waits at most `seconds`. Returns the llmforge::Error message f
// threw, "" when it returned normally, or "unexpected exception: ..." for other exceptions.
// When f is still running after that, the test fails instead of hanging: every FIFO in
// `fifos` gets a writer opened and closed (a blocked open or read then returns), and if f is still
// stuck the process exits with status 1.
inline std::string run_bounded(std::function<void()> f, const std::vector<std::string>& fifos = {},
                               double seconds = 5.0) {
    struct State {
        std::mutex mu;
        std::condition_variable cv;
        bool done = false;
        std::string msg;
    };
    auto st = std::make_shared<State>();
    std::thread t([st, f = std::move(f)] {
        std::string msg;
        try {
            f();
        } catch (const llmforge::Error& e) {
            msg = e.what();
        } catch (const std::exception& e) {
            msg = std::string("unexpected exception: ") + e.what();
        }
        std::lock_guard<std::mutex> l(st->mu);
        st->msg = msg;
        st->done = true;
        st->cv.notify_all();
    });
    std::unique_lock<std::mutex> l(st->mu);
    const auto wait = std::chrono::duration<double>(seconds);
    if (st->cv.wait_for(l, wait, [&] { return st->done; })) {
        l.unlock();
        t.join();
        return st->msg;
    }
    l.unlock();
    ADD_FAILURE() << "the call blocked for more than " << seconds << " s (a blocking open/read of a special file)";
    for (const auto& p : fifos) {
        const int w = ::open(p.c_str(), O_WRONLY | O_NONBLOCK);
        if (w >= 0) ::close(w);
    }
    l.lock();
    if (!st->cv.wait_for(l, std::chrono::seconds(3), [&] { return st->done; })) {
        std::fprintf(stderr, "run_bounded: the call is still blocked; exiting so the test does not hang\n");
        std::fflush(stderr);
        std::_Exit(1);
    }
    l.unlock();
    t.join();
    return st->msg;
}

// Expects `msg` to be one Error line holding every substring.
inline void expect_message(const std::string& msg, std::initializer_list<std::string> subs) {
    EXPECT_FALSE(msg.empty()) << "expected an error, the call succeeded";
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    EXPECT_EQ(msg.find("unexpected exception"), std::string::npos) << msg;
    for (const auto& s : subs) EXPECT_NE(msg.find(s), std::string::npos) << "missing '" << s << "' in: " << msg;
}

// Counts IN_OPEN events on files (every open by any API, this process included). Close events
// are watched too: inotify merges identical consecutive events, so open-close-open-close counts
// 2 opens, but two opens with no close or read of events between them count as one (the
// RegularFile::open_count() checks beside it cover that case for core/file.h).
class OpenCounter {
public:
    OpenCounter() : fd_(::inotify_init1(IN_NONBLOCK | IN_CLOEXEC)) { EXPECT_GE(fd_, 0); }
    ~OpenCounter() {
        if (fd_ >= 0) ::close(fd_);
    }
    // Starts counting opens of `path` (a file; call before the opens).
    void watch(const std::string& path) {
        const int wd = ::inotify_add_watch(fd_, path.c_str(), IN_OPEN | IN_CLOSE);
        EXPECT_GE(wd, 0) << path << ": " << std::strerror(errno);
        wds_.push_back({wd, path, 0});
    }
    // Opens of `path` since watch(), draining pending events first.
    int opens(const std::string& path) {
        drain();
        for (const auto& w : wds_) {
            if (w.path == path) return w.count;
        }
        ADD_FAILURE() << "not watched: " << path;
        return -1;
    }

private:
    void drain() {
        alignas(inotify_event) char buf[4096];
        for (;;) {
            const ssize_t n = ::read(fd_, buf, sizeof buf);
            if (n <= 0) return;
            for (ssize_t i = 0; i < n;) {
                const auto* e = reinterpret_cast<const inotify_event*>(buf + i);
                for (auto& w : wds_) {
                    if (w.wd == e->wd && (e->mask & IN_OPEN)) ++w.count;
                }
                i += static_cast<ssize_t>(sizeof(inotify_event) + e->len);
            }
        }
    }
    struct Watch {
        int wd;
        std::string path;
        int count;
    };
    int fd_;
    std::vector<Watch> wds_;
};

}  // namespace llmforge::test
