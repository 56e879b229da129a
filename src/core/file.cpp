#include "core/file.h"

#include <fstream>
#include <sstream>

#include "core/error.h"

namespace llmforge {

std::string read_file(const std::string& path, const char* what, const char* hint) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail("cannot open %s '%s' (hint: %s)", what, path.c_str(), hint);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

}  // namespace llmforge
