// Internals of runtime/grammar.cpp shared with its tests and benchmark: the element encoding
// (llama.cpp's), the interned stack pool and the vocabulary trie. Not a public API.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "runtime/grammar.h"
#include "runtime/indent_lexer.h"

namespace llmforge {

// llama.cpp's llama_gretype, same meaning.
enum class GType : uint8_t { kEnd, kAlt, kRef, kChar, kCharNot, kRngUpper, kCharAlt, kAny };

struct GElem {
    GType type;
    uint32_t value;  // code point, or rule id for kRef
};

class GrammarImpl {
public:
    std::string source;
    std::vector<std::string> names;          // rule id -> name (generated rules: base_N)
    std::vector<std::vector<GElem>> rules;   // rule id -> elements, ending with kEnd
    uint32_t root = 0;
    bool indent_lexer = false;  // the text goes through runtime/indent_lexer.h first
    // All rules in one array (a position is an index), and each rule's alternative starts.
    std::vector<GElem> flat;
    std::vector<uint32_t> rule_start;
    std::vector<uint32_t> alt_starts;  // positions
    std::vector<uint32_t> alt_begin;   // rule id -> first index into alt_starts (size rules + 1)
    // Per char element (a position with kChar, kCharNot or kAny): which ASCII characters it
    // matches (a 128-bit set) and the position after it. Makes the common match one bit test.
    struct CharInfo {
        uint64_t ascii[2];
        uint32_t after;
    };
    std::vector<CharInfo> char_info;  // indexed by position (unused for other elements)
    void flatten();
};

// A partially decoded UTF-8 sequence: the bits so far and the continuation bytes still due.
struct Utf8Partial {
    uint32_t value = 0;
    int n_remain = 0;
};

// A matcher state: the sorted, deduplicated set of stack nodes, and pending UTF-8.
struct MatchState {
    std::vector<uint32_t> stacks;
    Utf8Partial partial;
};

// Interned stacks: node = (grammar position on top, parent node); node 0 is the empty stack.
class StackPool {
public:
    static constexpr size_t kMaxNodes = size_t{1} << 24;
    static constexpr size_t kMaxStacks = 1 << 16;         // alive stacks in one state
    static constexpr size_t kMaxExpandSteps = 1 << 20;    // nodes visited expanding one stack

    explicit StackPool(const GrammarImpl* g) : g_(g), pos_{0}, parent_{0}, expanded_(1), seen_(1, 0) {}
    uint32_t push(uint32_t parent, uint32_t pos);
    void expand(uint32_t node, std::vector<uint32_t>& out);
    // out = the stacks of `in` advanced by code point c (sorted, unique).
    void step(const std::vector<uint32_t>& in, uint32_t c, std::vector<uint32_t>& out);
    // Keeps the stacks whose top char element some completion of `partial` could match.
    void filter_partial(std::vector<uint32_t>& set, Utf8Partial partial) const;
    // The start state's stacks.
    std::vector<uint32_t> initial();
    size_t size() const { return pos_.size(); }

private:
    const GrammarImpl* g_;
    std::vector<uint32_t> pos_, parent_;
    std::vector<std::vector<uint32_t>> expanded_;  // memo: node with a rule ref on top -> stacks
    std::vector<uint32_t> seen_;
    std::vector<uint32_t> succ_;  // memo: node with a char element on top -> node after it
    static constexpr uint32_t kNoNode = 0xFFFFFFFFu;
    uint32_t epoch_ = 0;
    std::unordered_map<uint64_t, uint32_t> index_;
};

int utf8_feed(Utf8Partial& st, uint8_t b, uint32_t* cp);
bool advance_bytes(StackPool& pool, MatchState& st, std::string_view bytes, std::vector<uint32_t>& scratch);

struct TrieNode {
    uint32_t subtree_end;          // index one past the node's subtree (pre-order)
    uint32_t tok_begin, tok_end;   // tokens whose text ends here: sorted_ids[tok_begin, tok_end)
    uint16_t depth;                // bytes from the root
    uint8_t byte;
};

struct GrammarVocab::Impl {
    int32_t n_vocab = 0;
    std::vector<std::string> pieces;  // id -> bytes ("" for EOG / hidden tokens)
    std::vector<uint8_t> eog;         // id -> 1 for end-of-generation tokens
    std::vector<int32_t> eog_ids;
    std::vector<int32_t> sorted_ids;  // text tokens sorted by piece
    std::vector<TrieNode> nodes;      // pre-order; nodes[0] is the root
    size_t max_depth = 0;
    void build_trie(std::vector<int32_t> ids);
};

// The bit of every token (not EOG / hidden) whose text the state `start` accepts; `states` is
// the walk's per-depth scratch.
void compute_mask(StackPool& pool, const GrammarVocab::Impl& v, const MatchState& start, std::vector<uint64_t>& mask,
                  std::vector<MatchState>& states);

// ------------------------------------------------- grammars behind the indentation lexer

// A match through the lexer: the lexer's state and the matcher's.
struct LexMatchState {
    IndentLexerState lex;
    MatchState st;
};

// Feeds raw bytes through the lexer, then the matcher; false (and `s` unchanged) on rejection.
bool advance_lexed(StackPool& pool, LexMatchState& s, std::string_view bytes, std::string& out,
                   std::vector<uint32_t>& scratch);
// The text so far is complete: no partial UTF-8, the matcher takes indent_finish() and can end.
bool lexed_can_end(StackPool& pool, const LexMatchState& s, std::vector<uint32_t>& scratch);

// compute_mask through the lexer: the bit of every token whose bytes the lexer and the matcher
// accept from `start` (exact: no indent_lookahead steering). A trie walk with one
// (lexer, matcher) state per depth; a subtree is skipped once the lexer or the grammar rejects.
void compute_indented_mask(StackPool& pool, const GrammarVocab::Impl& v, const LexMatchState& start,
                           std::vector<uint64_t>& mask, std::vector<LexMatchState>& states,
                           std::vector<uint32_t>& scratch);

}  // namespace llmforge
