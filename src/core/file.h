// Opening the files loaders read: model weights, configs, tokenizers, chat templates.
//
// Every such file is opened through RegularFile, once: the open itself cannot block (O_NONBLOCK,
// so a FIFO without a writer, a terminal or a device returns at once), the descriptor is fstat'ed
// and anything but a regular file is refused with a one-line Error (a FIFO would block a reader
// forever, /dev/zero and /dev/urandom never end, a folder or a socket cannot be read as a file).
// The same descriptor is then used for probing magic bytes, reading and mapping (no second open,
// no window for the path to be swapped between the check and the use).
//
// Weights are memory-mapped (FileMap); small files are read whole (read_file, RegularFile::read_all).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace llmforge {

// Largest file read whole into memory (JSON configs, tokenizer.json, templates): beyond it the
// file is certainly not what was meant, and reading it would only exhaust memory.
constexpr uint64_t kMaxReadFileBytes = uint64_t{1} << 30;

class RegularFile {
public:
    // Opens `path` read-only without blocking and checks that it is a regular file. `what` names
    // what was expected ("a GGUF file", "config.json") for messages. Throws Error:
    //   "PATH: cannot open WHAT: No such file or directory (hint: check the path)"
    //   "PATH: is a FIFO (named pipe), not a regular file: expected WHAT (hint: ...)"
    // (also for a folder, a character or block device, a socket, a symlink to any of them).
    // `open_hint` is the hint when the open itself fails (missing file, no permission).
    explicit RegularFile(const std::string& path, const char* what = "a regular file",
                         const char* open_hint = "check the path");
    ~RegularFile();
    RegularFile(RegularFile&& o) noexcept;
    RegularFile& operator=(RegularFile&& o) noexcept;
    RegularFile(const RegularFile&) = delete;
    RegularFile& operator=(const RegularFile&) = delete;

    const std::string& path() const { return path_; }
    const std::string& what() const { return what_; }
    int fd() const { return fd_; }
    // The size fstat reported when the file was opened.
    uint64_t size() const { return size_; }

    // Up to `n` bytes from `offset` (fewer only at the end of the file). Throws Error on an I/O
    // error.
    size_t read_at(void* dst, size_t n, uint64_t offset) const;
    // True when the file begins with `magic` (false when it is shorter).
    bool starts_with(std::string_view magic) const;
    // The whole file. Throws Error when it is larger than `max_bytes`, or when it shrank since it
    // was opened ("PATH: shrank from N to M bytes while being read ...").
    std::string read_all(uint64_t max_bytes = kMaxReadFileBytes) const;

    // Successful opens in this process (tests check that a loader opens each file once).
    static uint64_t open_count();

private:
    std::string path_;
    std::string what_;
    int fd_ = -1;
    uint64_t size_ = 0;
};

// A read-only private mapping of a whole RegularFile (the file may be closed afterwards). An empty
// file maps to data() == nullptr, size() == 0. Throws Error when the mapping fails or when the
// file shrank between open and map (touching the lost pages would raise SIGBUS).
//
// Limitation of mmap: a file truncated by another program *after* it was mapped makes later reads
// of the lost pages fault (SIGBUS); replace model files by renaming a new file over them instead.
class FileMap {
public:
    explicit FileMap(const RegularFile& file);
    ~FileMap();
    FileMap(const FileMap&) = delete;
    FileMap& operator=(const FileMap&) = delete;

    const uint8_t* data() const { return data_; }
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

// The file's bytes, read through RegularFile (regular files only, at most kMaxReadFileBytes).
// Throws Error "PATH: cannot open WHAT: REASON (hint: HINT)" and the RegularFile errors.
std::string read_file(const std::string& path, const char* what, const char* hint = "check the path");

// For inputs named on a command line (a text corpus, a messages file, a template): a regular file
// as read_file reads it, or a pipe / terminal (`<(cmd)`, /dev/stdin) read to its end, at most
// kMaxReadFileBytes. Loaders that a server reaches use read_file, which never waits on a pipe.
std::string read_input(const std::string& path, const char* what, const char* hint = "check the path");

namespace file_testing {
// Called after every successful open + fstat with the path (nullptr: none). Tests use it to change
// a file between the checks and the reads. Not thread-safe; tests only.
void set_after_open_hook(void (*hook)(const std::string& path));
}  // namespace file_testing

}  // namespace llmforge
