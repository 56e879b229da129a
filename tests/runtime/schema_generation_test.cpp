// Schema-constrained generation on the real TinyStories 260K model: for each schema, generation
// at temperature 1 over many seeds with the grammar stage first in the chain must end on its own
// (the grammar completes, EOG is then the only way on) and every output must be valid for the
// schema according to an outside validator, Debian's python3-jsonschema (Draft 2020-12), run on
// the outputs written to a temporary file. The model being tiny and story-trained, the grammar
// does all the work: this checks the converter's grammars and the stage, not the model.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;
using json = nlohmann::ordered_json;

namespace {

constexpr int kSeeds = 24;

// Nested objects, $ref, arrays with min/maxItems, enums, integer ranges, string lengths, anyOf,
// pattern, formats, optional properties, type lists, tuples. (Free strings and additional
// properties are left out: their length is unbounded, and a story model fills them until the
// token limit, which cuts the JSON; the grammars for them are checked in json_schema_test.
// format "date" is left out too: llama.cpp's date rule, which we keep, allows day 31 in every
// month and Feb 29 in every year, and the validator checks formats.)
const char* const kSchemas[] = {
    R"({"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":8},
        "pet":{"$ref":"#/$defs/pet"}},"required":["name","pet"],"additionalProperties":false,
        "$defs":{"pet":{"type":"object","properties":{"kind":{"enum":["cat","dog","fish"]},
        "age":{"type":"integer","minimum":0,"maximum":20}},"required":["kind","age"],"additionalProperties":false}}})",
    R"({"type":"array","items":{"type":"integer","minimum":-50,"maximum":50},"minItems":2,"maxItems":4})",
    R"({"enum":["red","green",1,null,true,{"k":[1,2]}]})",
    R"({"type":"object","properties":{"a":{"type":"integer","minimum":10,"maximum":99},
        "b":{"type":"integer","exclusiveMinimum":-5,"exclusiveMaximum":5},"c":{"type":"integer","minimum":-1000}},
        "required":["a","b","c"],"additionalProperties":false})",
    R"({"type":"array","items":{"type":"string","minLength":2,"maxLength":5},"minItems":1,"maxItems":3})",
    R"({"anyOf":[{"type":"boolean"},{"type":"object","properties":{"x":{"type":"number"}},"required":["x"],
        "additionalProperties":false},{"type":"string","maxLength":4},{"type":"null"}]})",
    R"({"type":"object","properties":{"code":{"type":"string","pattern":"^[A-Z]{2}-[0-9]{3}$"},
        "id":{"type":"string","format":"uuid"},
        "tag":{"type":"string","pattern":"^x.{1,3}\\d$"}},"required":["code","tag"],
        "additionalProperties":false})",
    R"({"type":"array","prefixItems":[{"type":"string","maxLength":3},{"type":["integer","null"]},
        {"const":"end"}],"items":false})",
};

// What the converter is given: the validator sees the schema as written. A tuple with "items":
// false (no further items) is what llama.cpp's conventions produce from prefixItems alone.
json converter_schema(const json& s) {
    json c = s;
    if (c.contains("items") && c["items"] == false) c.erase("items");  // tuple: exactly its items
    return c;
}

}  // namespace

TEST(SchemaGeneration, EveryOutputValidatesWithPythonJsonschema) {
    const std::string m = asset("llama2c-stories260K/stories260K.bin");
    const std::string t = asset("llama2c-stories260K/tok512.bin");
    if (m.empty() || t.empty()) {
        GTEST_SKIP() << "LLMFORGE-ASSET-MISSING: llama2c-stories260K (set LLMFORGE_ASSETS to the shared assets folder)";
    }
    auto model = Model::load(m, t);
    auto tok = Tokenizer::create(model->vocab());
    auto vocab = GrammarVocab::build(*tok);

    json report = json::array();
    int n_outputs = 0;
    for (const char* text : kSchemas) {
        const json schema = json::parse(text);
        SCOPED_TRACE(schema.dump());
        std::shared_ptr<const Grammar> grammar;
        ASSERT_NO_THROW(grammar = Grammar::parse(json_schema_to_gbnf(converter_schema(schema)), "root", "schema"));
        json outputs = json::array();
        for (int seed = 1; seed <= kSeeds; ++seed) {
            ContextParams cp;
            cp.n_ctx = 512;
            cp.n_threads = 2;
            Context ctx(*model, cp);
            SamplerParams sp;
            sp.temperature = 1.0f;
            sp.top_k = 0;
            sp.top_p = 1.0f;
            sp.min_p = 0.0f;
            sp.seed = static_cast<uint64_t>(seed);
            Sampler sampler(sp, tok.get());
            sampler.add_stage(make_grammar_stage(grammar, vocab), StageSlot::kFirst);
            GenerateParams gp;
            gp.max_tokens = 500;
            gp.stop_on_bos = true;
            GenerateResult r;
            ASSERT_NO_THROW(r = generate(ctx, *tok, sampler, {tok->bos()}, gp)) << "seed " << seed;
            // The grammar, not the length limit, ended it; the text is a complete match and JSON.
            EXPECT_EQ(r.finish_reason, "stop") << "seed " << seed << ": " << r.text;
            EXPECT_TRUE(grammar_check(*grammar, r.text).accepted) << "seed " << seed << ": " << r.text;
            EXPECT_TRUE(json::accept(r.text)) << "seed " << seed << ": " << r.text;
            outputs.push_back(r.text);
            ++n_outputs;
        }
        report.push_back({{"schema", schema}, {"outputs", outputs}});
    }

    const std::string dir = temp_dir();
    write_file(dir + "/outputs.json", report.dump());
    write_file(dir + "/validate.py", R"PY(
import json, sys
try:
    import jsonschema
except ImportError:
    print("python3-jsonschema is not installed (hint: scripts/setup.sh installs it)")
    sys.exit(3)
cases = json.load(open(sys.argv[1]))
bad = n = 0
distinct = set()
for case in cases:
    validator = jsonschema.Draft202012Validator(case["schema"], format_checker=jsonschema.FormatChecker())
    jsonschema.Draft202012Validator.check_schema(case["schema"])
    for text in case["outputs"]:
        n += 1
        distinct.add(text.strip())
        try:
            validator.validate(json.loads(text))
        except Exception as e:
            bad += 1
            print("INVALID:", repr(text), "->", str(e).splitlines()[0])
print("validated %d outputs, %d invalid, %d distinct" % (n, bad, len(distinct)))
sys.exit(1 if bad else 0)
)PY");
    std::string out;
    const int rc = run_command("python3 " + dir + "/validate.py " + dir + "/outputs.json", &out);
    EXPECT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("validated " + std::to_string(n_outputs) + " outputs, 0 invalid"), std::string::npos) << out;
    // Sampling at temperature 1 gave varied outputs (the check saw more than one text per schema).
    std::printf("%s", out.c_str());
}
