#include "core/file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cinttypes>
#include <cstring>

#include "core/error.h"

namespace llmforge {

namespace {

std::atomic<uint64_t> g_opens{0};
void (*g_after_open)(const std::string&) = nullptr;

// "a FIFO (named pipe)" etc. for a file type that is not a regular file, with its hint.
void describe(mode_t mode, const char** kind, const char** hint) {
    if (S_ISDIR(mode)) {
        *kind = "a folder";
        *hint = "pass a file, not a folder";
    } else if (S_ISFIFO(mode)) {
        *kind = "a FIFO (named pipe)";
        *hint = "reading a FIFO blocks until another program writes to it; save the data to a "
                "regular file and pass that";
    } else if (S_ISCHR(mode)) {
        *kind = "a character device";
        *hint = "devices such as /dev/zero or /dev/urandom never end or block; pass a regular file";
    } else if (S_ISBLK(mode)) {
        *kind = "a block device";
        *hint = "pass a regular file, not a disk";
    } else if (S_ISSOCK(mode)) {
        *kind = "a socket";
        *hint = "pass a regular file, not a socket";
    } else {
        *kind = "a special file";
        *hint = "pass a regular file";
    }
}

[[noreturn]] void fail_not_regular(const std::string& path, mode_t mode, const std::string& what) {
    const char* kind;
    const char* hint;
    describe(mode, &kind, &hint);
    fail("%s: is %s, not a regular file: expected %s (hint: %s)", path.c_str(), kind, what.c_str(),
         hint);
}

[[noreturn]] void fail_shrank(const std::string& path, uint64_t from, uint64_t to, const char* when) {
    fail("%s: file shrank from %" PRIu64 " to %" PRIu64 " bytes while being %s, expected it to "
         "stay the same (hint: another program is writing or truncating it; wait until it is done, "
         "or replace files by renaming a finished copy over them)",
         path.c_str(), from, to, when);
}

}  // namespace

RegularFile::RegularFile(const std::string& path, const char* what, const char* open_hint)
    : path_(path), what_(what) {
    // O_NONBLOCK: opening a FIFO without a writer (or a terminal, a modem) returns at once
    // instead of waiting; O_NOCTTY: a terminal never becomes our controlling terminal.
    const int fd = ::open(path.c_str(), O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        const int e = errno;
        // A socket cannot be opened at all (ENXIO): say what it is rather than "no such device".
        struct stat st {};
        if (e != ENOENT && ::stat(path.c_str(), &st) == 0 && !S_ISREG(st.st_mode)) {
            fail_not_regular(path_, st.st_mode, what_);
        }
        const char* hint = open_hint != nullptr && *open_hint != '\0' ? open_hint : "check the path";
        fail_kind(e == ENOENT ? ErrorKind::kNotFound : ErrorKind::kBadInput, "%s: cannot open %s: %s (hint: %s)",
                  path.c_str(), what, std::strerror(e), hint);
    }
    struct stat st {};
    if (::fstat(fd, &st) != 0) {
        const int e = errno;
        ::close(fd);
        fail("%s: cannot stat %s: %s (hint: check the path)", path.c_str(), what, std::strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        ::close(fd);
        fail_not_regular(path_, st.st_mode, what_);
    }
    // A regular file is never "not ready", but the descriptor is meant for ordinary reads.
    const int flags = ::fcntl(fd, F_GETFL);
    if (flags >= 0) ::fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
    fd_ = fd;
    size_ = static_cast<uint64_t>(st.st_size);
    g_opens.fetch_add(1, std::memory_order_relaxed);
    if (g_after_open != nullptr) g_after_open(path_);
}

RegularFile::~RegularFile() {
    if (fd_ >= 0) ::close(fd_);
}

RegularFile::RegularFile(RegularFile&& o) noexcept
    : path_(std::move(o.path_)), what_(std::move(o.what_)), fd_(o.fd_), size_(o.size_) {
    o.fd_ = -1;
}

RegularFile& RegularFile::operator=(RegularFile&& o) noexcept {
    if (this != &o) {
        if (fd_ >= 0) ::close(fd_);
        path_ = std::move(o.path_);
        what_ = std::move(o.what_);
        fd_ = o.fd_;
        size_ = o.size_;
        o.fd_ = -1;
    }
    return *this;
}

size_t RegularFile::read_at(void* dst, size_t n, uint64_t offset) const {
    LF_ASSERT(fd_ >= 0);
    size_t got = 0;
    while (got < n) {
        const ssize_t r = ::pread(fd_, static_cast<uint8_t*>(dst) + got, n - got,
                                  static_cast<off_t>(offset + got));
        if (r < 0) {
            if (errno == EINTR) continue;
            fail("%s: read of %zu bytes at offset %" PRIu64 " failed: %s (hint: check the disk)",
                 path_.c_str(), n - got, offset + got, std::strerror(errno));
        }
        if (r == 0) break;  // end of file
        got += static_cast<size_t>(r);
    }
    return got;
}

bool RegularFile::starts_with(std::string_view magic) const {
    std::string buf(magic.size(), '\0');
    return read_at(buf.data(), buf.size(), 0) == magic.size() && buf == magic;
}

std::string RegularFile::read_all(uint64_t max_bytes) const {
    if (size_ > max_bytes) {
        fail("%s: is %" PRIu64 " bytes, expected %s of at most %" PRIu64 " bytes (hint: is this the "
             "right file?)",
             path_.c_str(), size_, what_.c_str(), max_bytes);
    }
    std::string out(static_cast<size_t>(size_), '\0');
    const size_t got = read_at(out.data(), out.size(), 0);
    if (got < out.size()) fail_shrank(path_, size_, got, "read");
    return out;
}

uint64_t RegularFile::open_count() { return g_opens.load(std::memory_order_relaxed); }

FileMap::FileMap(const RegularFile& file) : path_(file.path()) {
    if (file.size() > SIZE_MAX) fail("%s: too large to map on this machine", path_.c_str());
    size_ = static_cast<size_t>(file.size());
    if (size_ == 0) return;
    void* p = ::mmap(nullptr, size_, PROT_READ, MAP_PRIVATE, file.fd(), 0);
    if (p == MAP_FAILED) {
        fail("%s: mmap of %zu bytes failed: %s (hint: not enough address space or memory?)",
             path_.c_str(), size_, std::strerror(errno));
    }
    data_ = static_cast<const uint8_t*>(p);
    // Pages past a shorter end would raise SIGBUS when touched: refuse a file that shrank.
    struct stat st {};
    if (::fstat(file.fd(), &st) == 0 && static_cast<uint64_t>(st.st_size) < file.size()) {
        ::munmap(p, size_);
        data_ = nullptr;
        fail_shrank(path_, file.size(), static_cast<uint64_t>(st.st_size), "mapped");
    }
}

FileMap::~FileMap() {
    if (data_ != nullptr) ::munmap(const_cast<uint8_t*>(data_), size_);
}

std::string read_file(const std::string& path, const char* what, const char* hint) {
    return RegularFile(path, what, hint).read_all();
}

std::string read_input(const std::string& path, const char* what, const char* hint) {
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0 || !(S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) return read_file(path, what, hint);
    // A pipe or terminal the user named on the command line (<(cmd), /dev/stdin): reading it may
    // wait for its writer, which is what the user asked for; it is cut at kMaxReadFileBytes so a
    // device that never ends (/dev/zero) is an error, not an endless read.
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        const int e = errno;
        fail_kind(e == ENOENT ? ErrorKind::kNotFound : ErrorKind::kBadInput, "%s: cannot open %s: %s (hint: %s)",
                  path.c_str(), what, std::strerror(e), hint);
    }
    std::string out;
    char buf[65536];
    while (true) {
        const ssize_t n = ::read(fd, buf, sizeof buf);
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) {
            const int e = errno;
            ::close(fd);
            fail("%s: cannot read %s: %s (hint: %s)", path.c_str(), what, std::strerror(e), hint);
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
        if (out.size() > kMaxReadFileBytes) {
            ::close(fd);
            fail("%s: %s is over %" PRIu64 " bytes, expected a text file (hint: is this a device that never ends?)", path.c_str(),
                 what, kMaxReadFileBytes);
        }
    }
    ::close(fd);
    return out;
}

namespace file_testing {
void set_after_open_hook(void (*hook)(const std::string& path)) { g_after_open = hook; }
}  // namespace file_testing

}  // namespace llmforge
