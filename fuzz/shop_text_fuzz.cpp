// libFuzzer target: the shop assistant's text analysis on arbitrary bytes — dialogue-state
// tracking (intent classifier, slot rules, carry-over) over the input split into turns at '\n',
// the safety filter (rules, card numbers, classifier), order-id normalisation, and the filling of
// a reply's slot references (the model writes anything: whole and streamed in pieces of every
// size must give the same text). Customers type anything: a crash, a sanitizer report, a hang or
// runaway memory is a bug; every input must give a state and a verdict. Models: the shipped models/dst and models/safety of the source tree.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "apps/shop/dst.h"
#include "apps/shop/safety.h"
#include "apps/shop/shop_db.h"
#include "train/dialogue_corpus.h"

#ifndef LLMFORGE_SOURCE_DIR
#define LLMFORGE_SOURCE_DIR "."
#endif

using namespace llmforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static const apps::DialogueStateTracker dst(LLMFORGE_SOURCE_DIR "/models/dst");
    static const apps::SafetyFilter safety(LLMFORGE_SOURCE_DIR "/models/safety");
    const std::string in(reinterpret_cast<const char*>(data), size);
    std::vector<std::string> turns;
    for (size_t a = 0, b; a <= in.size(); a = b + 1) {
        b = in.find('\n', a);
        if (b == std::string::npos) b = in.size();
        turns.push_back(in.substr(a, b - a));
    }
    const auto states = dst.track(turns);
    if (states.size() != turns.size()) __builtin_trap();
    for (const auto& s : states)
        if (s.intent.empty()) __builtin_trap();
    const apps::SafetyVerdict v = safety.check(in);
    if (v.blocked != v.category.has_value()) __builtin_trap();
    const std::string id = apps::normalize_order_id(in);
    if (!id.empty() && id.size() != 6) __builtin_trap();
    const train::SlotValues values = {{"id", "#C48213"}, {"eta", "May 4"}, {"code", "{code}"}};
    const std::string whole = train::lexicalize(in, values);
    const size_t step = size ? data[0] % 7 + 1 : 1;
    train::Lexicalizer lex(values);
    std::string streamed;
    for (size_t i = 0; i < in.size(); i += step) streamed += lex.push(std::string_view(in).substr(i, step));
    streamed += lex.finish();
    if (streamed != whole) __builtin_trap();
    return 0;
}
