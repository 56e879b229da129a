// libFuzzer target: GBNF parsing, printing back, whole-text checks and byte-wise matching. The
// input is "grammar text \0 text to match". Any llmforge::Error is an accepted outcome (bad
// grammars, limits reached); a crash, a sanitizer report, a hang or an allocation beyond
// libFuzzer's limit is a bug.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/error.h"
#include "runtime/grammar.h"

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view in(reinterpret_cast<const char*>(data), size);
    const size_t cut = in.find('\0');
    const std::string_view gbnf = in.substr(0, cut);
    const std::string_view text = cut == std::string_view::npos ? std::string_view() : in.substr(cut + 1);
    try {
        auto g = Grammar::parse(gbnf, "root", "fuzz.gbnf");
        const GrammarCheck whole = grammar_check(*g, text);
        GrammarMatcher m(g);
        bool ok = true;
        for (size_t i = 0; i < text.size() && ok; ++i) ok = m.accept(text.substr(i, 1));
        // The two paths must agree: byte-wise matching is the same language as the whole check.
        if (whole.accepted != (ok && m.can_end())) __builtin_trap();
        // What to_gbnf prints parses again.
        auto again = Grammar::parse(g->to_gbnf(), "root", "printed");
        if (grammar_check(*again, text).accepted != whole.accepted) __builtin_trap();
    } catch (const Error&) {
    }
    return 0;
}
