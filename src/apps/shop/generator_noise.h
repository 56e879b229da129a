// Noise the shop's training-data generators put on their texts (safety_data.cpp,
// retrieval_data.cpp): one spelling mistake — a letter dropped, doubled or swapped with the one
// before — at a random place of a text of 6+ characters (none when that place is not a letter).
#pragma once

#include <cctype>
#include <string>
#include <utility>

#include "core/random.h"

namespace llmforge::apps {

inline std::string one_typo(Draws& d, std::string s) {
    if (s.size() < 6) return s;
    const size_t p = 1 + d.next() % (s.size() - 2);
    if (!std::isalpha(static_cast<unsigned char>(s[p]))) return s;
    switch (d.range(0, 2)) {
        case 0: s.erase(p, 1); break;
        case 1: s.insert(p, 1, s[p]); break;
        default: std::swap(s[p], s[p - 1]); break;
    }
    return s;
}

}  // namespace llmforge::apps
