// AtomicFile: writes a file crash-safely. Bytes go to a temporary file next to the target
// (`<path>.tmp-XXXXXX`); commit() flushes it to disk and renames it over the target, so a reader
// sees either the old file or the complete new one, never a half-written target. If commit() is
// never reached (an exception, a crash), the destructor removes the temporary file.
//
// Thread safety: one writer per object. Errors (cannot create, disk full, rename failed) throw
// llmforge::Error naming the target path.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace llmforge {

class AtomicFile {
public:
    explicit AtomicFile(std::string path);
    ~AtomicFile();
    AtomicFile(const AtomicFile&) = delete;
    AtomicFile& operator=(const AtomicFile&) = delete;

    void write(const void* data, size_t n);
    void write_zeros(size_t n);
    // Bytes written so far.
    uint64_t offset() const { return offset_; }
    // fsync + rename onto the target. After this the object is inert.
    void commit();

private:
    std::string path_;
    std::string tmp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    bool committed_ = false;
};

}  // namespace llmforge
