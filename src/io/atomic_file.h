// AtomicFile: writes a file crash-safely. Bytes go to a temporary file next to the target
// (`<path>.tmp-XXXXXX`); commit() flushes it to disk and renames it over the target, so a reader
// sees either the old file or the complete new one, never a half-written target. If commit() is
// never reached (an exception, a crash), the destructor removes the temporary file.
//
// A process killed between the two (SIGKILL, power loss) leaves `<path>.tmp-XXXXXX` behind;
// is_atomic_temp_of() recognises such a name so that the owner of the folder can remove it.
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
    // fsync + rename onto the target, then fsync the folder (the rename is durable). With
    // sync_dir false the caller fsyncs the folder itself (to make several renames durable at
    // once). After this the object is inert.
    void commit(bool sync_dir = true);
    const std::string& temp_path() const { return tmp_path_; }

private:
    std::string path_;
    std::string tmp_path_;
    int fd_ = -1;
    uint64_t offset_ = 0;
    bool committed_ = false;
};

// Writes `text` to `path` through an AtomicFile (temporary, fsync, rename): the whole text or
// the old file, never a part.
void write_file_atomic(const std::string& path, const std::string& text);

// true when `name` (a file name, no folder) is an AtomicFile temporary of the file named
// `target`: `<target>.tmp-` followed by the 6 characters mkstemp chose ([A-Za-z0-9]).
bool is_atomic_temp_of(const std::string& name, const std::string& target);

}  // namespace llmforge
