// Constrained generation end to end: the real TinyStories 260K model (which knows nothing of JSON
// or arithmetic) sampled at temperature 1 with the grammar stage first in the chain, over many
// seeds. Every text that ended with end-of-generation must be a complete match (and the JSON ones
// must parse with nlohmann::json); a text cut by max tokens must be a proper prefix of a match.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "test_util.h"

using namespace llmforge;
using test::src_path;

namespace {

}  // namespace

TEST(GrammarGeneration, TinyStoriesFollowsGrammars) {
    LF_REQUIRE_ASSET(m, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(t, "llama2c-stories260K/tok512.bin");
    auto model = Model::load(m, t);
    auto tok = Tokenizer::create(model->vocab());
    auto vocab = GrammarVocab::build(*tok);
    struct Case {
        const char* name;
        std::shared_ptr<const Grammar> g;
        bool json;
    };
    // A JSON grammar small enough for a 260K model to finish within max_tokens, besides the
    // shipped ones (which it also must follow, finished or not).
    std::vector<Case> cases = {
        {"json.gbnf", Grammar::parse(test::read_file(src_path("grammars/json.gbnf")), "root", "json.gbnf"), true},
        {"arithmetic.gbnf",
         Grammar::parse(test::read_file(src_path("grammars/arithmetic.gbnf")), "root", "arithmetic.gbnf"), false},
        {"list.gbnf", Grammar::parse(test::read_file(src_path("grammars/list.gbnf")), "root", "list.gbnf"), false},
        {"small-json", Grammar::parse(R"(root ::= "{" pair ("," pair){0,2} "}"
pair ::= "\"" [a-z]{1,6} "\":" (num | str | "true" | "null")
num ::= "-"? [0-9]{1,4}
str ::= "\"" [a-zA-Z ]{0,8} "\"")", "root", "small-json"), true},
        {"small-arith", Grammar::parse("root ::= \"(\"? [0-9]{1,3} ([-+*/] [0-9]{1,3}){0,3} \")\"? \"\\n\"", "root", "small-arith"), false},
    };
    int finished = 0, total = 0;
    for (const Case& c : cases) {
        for (uint64_t seed = 1; seed <= 30; ++seed) {
            ContextParams cp;
            cp.n_ctx = 512;
            cp.n_batch = 512;
            cp.n_threads = 1;
            Context ctx(*model, cp);
            SamplerParams sp;
            sp.temperature = 1.0f;
            sp.seed = seed;
            Sampler s(sp, tok.get());
            s.add_stage(make_grammar_stage(c.g, vocab), StageSlot::kFirst);
            GenerateParams gp;
            gp.max_tokens = 96;
            const GenerateResult r = generate(ctx, *tok, s, {tok->bos()}, gp);
            const GrammarCheck chk = grammar_check(*c.g, r.text);
            ++total;
            if (seed == 1) std::printf("%s: %s '%s'\n", c.name, r.finish_reason.c_str(), r.text.c_str());
            if (r.finish_reason == "stop") {
                ++finished;
                EXPECT_TRUE(chk.accepted) << c.name << " seed " << seed << ": '" << r.text << "': " << chk.reason;
                if (c.json) {
                    EXPECT_NO_THROW({
                        const auto parsed = nlohmann::json::parse(r.text);
                        (void)parsed;
                    }) << c.name << " seed " << seed << ": " << r.text;
                }
            } else {
                EXPECT_EQ(r.finish_reason, "length");
                EXPECT_TRUE(chk.accepted || chk.reason == "text ends before the grammar does")
                    << c.name << " seed " << seed << ": '" << r.text << "': " << chk.reason;
            }
        }
    }
    std::printf("%d of %d generations finished with end-of-generation\n", finished, total);
    // The test must see completed matches, not only prefixes.
    EXPECT_GE(finished, total / 3) << finished << " of " << total << " generations finished";
}
