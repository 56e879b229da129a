// Test-only: a `llmforge serve` child process on 127.0.0.1 and the clients the serve tests use
// (streaming completions, metrics). Every wait is bounded.
#pragma once

#include <gtest/gtest.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <chrono>
#include <fstream>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

extern char** environ;

namespace llmforge::test {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// A `llmforge serve --port 0` child; its stderr goes to a file we read for the port.
class ServerProcess {
public:
    explicit ServerProcess(std::vector<std::string> args) {
        log_ = temp_dir() + "/serve.log";
        std::vector<std::string> argv = {cli_path(), "serve", "--host", "127.0.0.1", "--port", "0"};
        argv.insert(argv.end(), args.begin(), args.end());
        std::vector<char*> cargv;
        for (auto& a : argv) cargv.push_back(a.data());
        cargv.push_back(nullptr);
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 2, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
        posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
        if (posix_spawn(&pid_, cargv[0], &fa, nullptr, cargv.data(), environ) != 0) pid_ = -1;
        posix_spawn_file_actions_destroy(&fa);
        const auto until = Clock::now() + std::chrono::seconds(60);
        const std::regex re("listening on http://127\\.0\\.0\\.1:([0-9]+)");
        while (pid_ > 0 && Clock::now() < until && port_ == 0) {
            std::smatch m;
            const std::string text = log();
            if (std::regex_search(text, m, re)) port_ = std::stoi(m[1]);
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                break;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
    ~ServerProcess() {
        if (pid_ > 0) {
            kill(pid_, SIGKILL);
            waitpid(pid_, nullptr, 0);
        }
    }
    int port() const { return port_; }
    pid_t pid() const { return pid_; }
    std::string log() const { return read_file(log_); }
    // SIGTERM, then the exit status (or -1 if it did not exit within `seconds`).
    int terminate(int seconds) {
        kill(pid_, SIGTERM);
        const auto until = Clock::now() + std::chrono::seconds(seconds);
        while (Clock::now() < until) {
            int st = 0;
            if (waitpid(pid_, &st, WNOHANG) == pid_) {
                pid_ = -1;
                return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
        return -1;
    }
    httplib::Client client(const std::string& key = "test-key") const {
        httplib::Client c("127.0.0.1", port_);
        c.set_read_timeout(120, 0);
        if (!key.empty()) c.set_bearer_token_auth(key.c_str());
        return c;
    }

private:
    pid_t pid_ = -1;
    int port_ = 0;
    std::string log_;
};

// stories260K carries no chat template: the tests' chat requests use the built-in ChatML, asked
// for explicitly as a user would (without it, chat requests get 400, as `generate --chat` fails).
inline std::vector<std::string> stories_args(const std::string& dir, std::vector<std::string> extra = {}) {
    std::vector<std::string> a = {"-m", dir + "/stories260K.bin", "--tokenizer", dir + "/tok512.bin", "--api-key",
                                  "test-key", "--admin-key", "admin-key", "--threads", "2", "--ctx-size", "512",
                                  "--chat-template", "chatml"};
    a.insert(a.end(), extra.begin(), extra.end());
    return a;
}

struct StreamResult {
    int status = 0;
    std::string text;
    std::string finish_reason;
    bool done = false;  // saw data: [DONE]
    std::string body;   // non-SSE body (errors)
    json first;         // the first data event
};

// POSTs a streaming completion and collects the SSE deltas; stop_after_events > 0 closes the
// connection after that many data events (a client that goes away).
inline StreamResult stream_completion(int port, const json& req, int stop_after_events = 0,
                                      const std::string& path = "/v1/completions") {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    StreamResult r;
    std::string buf;
    int events = 0;
    httplib::Request hr;
    hr.method = "POST";
    hr.path = path;
    hr.body = req.dump();
    hr.set_header("Content-Type", "application/json");
    hr.set_header("Authorization", "Bearer test-key");
    hr.content_receiver = [&](const char* data, size_t len, uint64_t, uint64_t) {
        if (r.status != 200) {  // an error: one JSON body, not a stream
            r.body.append(data, len);
            return true;
        }
        buf.append(data, len);
        size_t p;
        while ((p = buf.find("\n\n")) != std::string::npos) {
            const std::string ev = buf.substr(0, p);
            buf.erase(0, p + 2);
            if (ev.rfind("data: ", 0) != 0) continue;  // comments (keep-alive)
            const std::string payload = ev.substr(6);
            if (payload == "[DONE]") {
                r.done = true;
                continue;
            }
            ++events;
            const json j = json::parse(payload);
            if (events == 1) r.first = j;
            if (j.contains("error")) {
                r.body = payload;
                continue;
            }
            for (const auto& ch : j["choices"]) {
                r.text += ch.value("text", "");
                if (ch.contains("delta") && ch["delta"].contains("content") && ch["delta"]["content"].is_string())
                    r.text += ch["delta"]["content"].get<std::string>();  // chat
                if (!ch["finish_reason"].is_null()) r.finish_reason = ch["finish_reason"];
            }
            if (stop_after_events > 0 && events >= stop_after_events) return false;
        }
        return true;
    };
    hr.response_handler = [&](const httplib::Response& res) {
        r.status = res.status;
        return true;
    };
    auto res = c.send(hr);
    if (res) {
        r.status = res->status;
    } else {
        r.body = "no response: " + httplib::to_string(res.error());
    }
    return r;
}

inline double metric(const ServerProcess& s, const std::string& name) {
    auto c = s.client("");
    auto res = c.Get("/metrics");
    if (!res) return -1;
    std::istringstream in(res->body);
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(name + " ", 0) == 0) return std::stod(line.substr(name.size() + 1));
    }
    return -1;
}

}  // namespace llmforge::test
