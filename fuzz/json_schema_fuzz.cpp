// libFuzzer target: JSON Schema -> GBNF and regex -> GBNF on arbitrary bytes, then Grammar::parse
// of the result and a check of a short text against it.
//
// The first byte picks the input: even, the rest is a JSON schema; odd, the rest is a regex. Any
// llmforge::Error is an accepted outcome (a schema or regex we refuse, a grammar over the engine's
// limits, a $ref cycle that consumes nothing). A crash, a sanitizer report or a hang is a bug, and
// so is a grammar we print that does not even parse (a syntax error or an undefined rule): that
// aborts.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/error.h"
#include "core/json_depth.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

using namespace llmforge;

namespace {

void load_and_check(const std::string& gbnf, std::string_view sample) {
    std::shared_ptr<const Grammar> g;
    try {
        g = Grammar::parse(gbnf, "root", "fuzz");
    } catch (const Error& e) {
        const std::string msg = e.what();
        if (msg.find(": line ") != std::string::npos || msg.find("never defined") != std::string::npos) {
            std::fprintf(stderr, "json_schema_fuzz: the converter printed a grammar that does not parse: %s\n%s\n",
                         msg.c_str(), gbnf.c_str());
            std::abort();
        }
        return;
    }
    try {
        (void)grammar_check(*g, sample);
    } catch (const Error&) {
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    const std::string_view in(reinterpret_cast<const char*>(data) + 1, size - 1);
    // A short sample text to match: the input's last bytes.
    const std::string_view sample = in.substr(in.size() > 32 ? in.size() - 32 : 0);
    try {
        if (data[0] % 2 == 0) {
            if (json_nesting(in).max_depth > 200) return 0;  // as the CLI, refused before parsing
            const auto schema = nlohmann::ordered_json::parse(in, nullptr, false);
            if (schema.is_discarded()) return 0;
            load_and_check(json_schema_to_gbnf(schema, "fuzz"), sample);
        } else {
            load_and_check(regex_to_gbnf(in, "fuzz"), sample);
        }
    } catch (const Error&) {
    }
    return 0;
}
