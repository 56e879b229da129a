// A progress line for long CLI work: "label: detail  42.0%  12.3 Mparams/s  ETA 7 s" (rate scaled
// with k / M; `unit` names one item: "params", "B", "tokens").
// On a terminal it redraws one line (at most 5 times a second); otherwise (logs, CI) it prints a
// full line at most every 5 seconds, so logs stay readable. Not thread-safe: call from one thread.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>

namespace llmforge::cli {

class Progress {
public:
    Progress(std::string label, double total, const char* unit)
        : label_(std::move(label)), unit_(unit), total_(total), tty_(isatty(STDERR_FILENO) != 0),
          t0_(std::chrono::steady_clock::now()) {}

    void update(double done, const std::string& detail) {
        const auto now = std::chrono::steady_clock::now();
        const double since = std::chrono::duration<double>(now - last_).count();
        if (done < total_ && since < (tty_ ? 0.2 : 5.0)) return;
        // No rate from the first instants (it would be noise): the first line waits half a second.
        if (done < total_ && std::chrono::duration<double>(now - t0_).count() < 0.5) return;
        last_ = now;
        const double s = std::chrono::duration<double>(now - t0_).count();
        const double rate = done / (s > 1e-9 ? s : 1e-9);
        const double eta = rate > 0 ? (total_ - done) / rate : 0;
        // Rates from a few per second to millions: scale with k / M.
        const double shown = rate >= 1e6 ? rate / 1e6 : rate >= 1e4 ? rate / 1e3 : rate;
        const char* prefix = rate >= 1e6 ? "M" : rate >= 1e4 ? "k" : "";
        std::fprintf(stderr, "%s%s: %-32s %5.1f%%  %.1f %s%s/s  ETA %.0f s%s", tty_ ? "\r" : "",
                     label_.c_str(), detail.c_str(), total_ > 0 ? 100.0 * done / total_ : 100.0, shown,
                     prefix, unit_, eta, tty_ ? "   " : "\n");
        if (tty_ && done >= total_) std::fputc('\n', stderr);
    }

private:
    std::string label_;
    const char* unit_;
    double total_;
    bool tty_;
    std::chrono::steady_clock::time_point t0_, last_{};
};

}  // namespace llmforge::cli
