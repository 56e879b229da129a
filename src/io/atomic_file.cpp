#include "io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "core/error.h"

namespace llmforge {

AtomicFile::AtomicFile(std::string path) : path_(std::move(path)) {
    if (path_.empty()) fail("cannot write a file with an empty path (hint: pass an output path)");
    tmp_path_ = path_ + ".tmp-XXXXXX";
    fd_ = ::mkstemp(tmp_path_.data());
    if (fd_ < 0) {
        fail("%s: cannot create temporary file '%s': %s (hint: does the folder exist and is it "
             "writable?)",
             path_.c_str(), tmp_path_.c_str(), std::strerror(errno));
    }
    ::fchmod(fd_, 0644);
}

AtomicFile::~AtomicFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_path_.c_str());
}

void AtomicFile::write(const void* data, size_t n) {
    if (fd_ < 0) fail("%s: write after commit", path_.c_str());
    const auto* p = static_cast<const uint8_t*>(data);
    while (n > 0) {
        const ssize_t w = ::write(fd_, p, n > (1u << 30) ? (1u << 30) : n);
        if (w < 0) {
            if (errno == EINTR) continue;
            fail("%s: write failed after %llu bytes: %s (hint: disk full?)", path_.c_str(),
                 static_cast<unsigned long long>(offset_), std::strerror(errno));
        }
        p += w;
        n -= static_cast<size_t>(w);
        offset_ += static_cast<uint64_t>(w);
    }
}

void AtomicFile::write_zeros(size_t n) {
    static const uint8_t kZeros[4096] = {};
    while (n > 0) {
        const size_t k = n < sizeof(kZeros) ? n : sizeof(kZeros);
        write(kZeros, k);
        n -= k;
    }
}

void AtomicFile::commit(bool sync_dir) {
    if (fd_ < 0) fail("%s: commit called twice", path_.c_str());
    if (::fsync(fd_) != 0) {
        fail("%s: fsync failed: %s", path_.c_str(), std::strerror(errno));
    }
    const int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail("%s: close failed: %s (hint: disk full?)", path_.c_str(), std::strerror(errno));
    if (::rename(tmp_path_.c_str(), path_.c_str()) != 0) {
        fail("%s: cannot rename '%s' onto it: %s", path_.c_str(), tmp_path_.c_str(),
             std::strerror(errno));
    }
    committed_ = true;
    if (!sync_dir) return;
    // Make the rename itself durable.
    std::filesystem::path dir = std::filesystem::path(path_).parent_path();
    if (dir.empty()) dir = ".";
    const int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        ::fsync(dfd);
        ::close(dfd);
    }
}

bool is_atomic_temp_of(const std::string& name, const std::string& target) {
    const std::string prefix = target + ".tmp-";
    if (name.size() != prefix.size() + 6 || name.compare(0, prefix.size(), prefix) != 0) return false;
    for (size_t i = prefix.size(); i < name.size(); ++i) {
        const char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))) return false;
    }
    return true;
}

void write_file_atomic(const std::string& path, const std::string& text) {
    AtomicFile f(path);
    f.write(text.data(), text.size());
    f.commit();
}

}  // namespace llmforge
