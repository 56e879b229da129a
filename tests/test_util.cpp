#include "test_util.h"

#include <pthread.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace fs = std::filesystem;

namespace llmforge::test {

std::string assets_dir() {
    if (const char* e = std::getenv("LLMFORGE_ASSETS"); e != nullptr && *e) {
        return fs::is_directory(e) ? std::string(e) : std::string();
    }
    std::string src = std::getenv("LLMFORGE_SRC") ? std::getenv("LLMFORGE_SRC") : ".";
    fs::path p = fs::path(src) / ".." / "shared" / "assets";
    return fs::is_directory(p) ? fs::canonical(p).string() : std::string();
}

std::string src_path(const std::string& rel) {
    const char* src = std::getenv("LLMFORGE_SRC");
    return std::string(src ? src : ".") + "/" + rel;
}

std::string asset(const std::string& rel) {
    std::string d = assets_dir();
    if (d.empty()) return "";
    fs::path p = fs::path(d) / rel;
    return fs::exists(p) ? p.string() : std::string();
}

std::string temp_dir() {
    std::string tmpl = (fs::temp_directory_path() / "llmforge-test-XXXXXX").string();
    char* r = mkdtemp(tmpl.data());
    return r ? std::string(r) : std::string("/tmp");
}

std::string cli_path() {
    const char* b = std::getenv("LLMFORGE_BIN");
    return b ? b : "build/bin/llmforge";
}

int run_command(const std::string& cmd, std::string* out) {
    FILE* p = popen(cmd.c_str(), "r");
    if (!p) return -1;
    std::array<char, 4096> buf{};
    std::string s;
    size_t n;
    while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) s.append(buf.data(), n);
    int st = pclose(p);
    if (out) *out = s;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

void write_file(const std::string& path, const std::string& data) {
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    f << data;
}

std::string hf_tokenizer_folder(const std::string& name) {
    const std::string gz = asset("hf-tokenizers/" + name + "/tokenizer.json.gz");
    const std::string cfg = asset("hf-tokenizers/" + name + "/tokenizer_config.json");
    if (gz.empty() || cfg.empty()) return "";
    const std::string dir = temp_dir();
    const std::string cmd = "gzip -dc '" + gz + "' > '" + dir + "/tokenizer.json' && cp '" + cfg +
                            "' '" + dir + "/'";
    return run_command(cmd) == 0 ? dir : std::string();
}

void on_small_stack(size_t stack_bytes, const std::function<void()>& fn) {
    pthread_attr_t attr;
    ASSERT_EQ(pthread_attr_init(&attr), 0);
    ASSERT_EQ(pthread_attr_setstacksize(&attr, stack_bytes), 0);
    pthread_t th;
    auto run = [](void* p) -> void* {
        try {
            (*static_cast<const std::function<void()>*>(p))();
        } catch (const std::exception& e) {
            ADD_FAILURE() << "escaped: " << e.what();
        }
        return nullptr;
    };
    ASSERT_EQ(pthread_create(&th, &attr, run, const_cast<std::function<void()>*>(&fn)), 0);
    pthread_join(th, nullptr);
    pthread_attr_destroy(&attr);
}

}  // namespace llmforge::test
