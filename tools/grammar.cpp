// llmforge grammar: check texts against GBNF grammars, JSON schemas and regexes, and print the
// GBNF that a schema or a regex becomes (runtime/grammar.h, runtime/json_schema.h).
//
//   grammar check (-g FILE.gbnf | --json-schema FILE.json | --regex R) [--root NAME] < TEXT
//     Exit 0 when the whole of stdin (byte for byte, a trailing newline included) is a complete
//     match; 1 when it is not, with one line on stderr naming the code-point offset and the
//     reason; 2 when the grammar, schema or regex itself is wrong (one line: what and where).
//   grammar from-schema FILE.json   prints the GBNF of a JSON schema (llama.cpp's conventions)
//   grammar from-regex R            prints the GBNF of a regular expression (whole-text match)
//     Both exit 2 when the schema / regex cannot be converted, and check that the printed
//     grammar loads.
#include <cstdio>
#include <string>

#include "commands.h"
#include "core/error.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"

namespace llmforge::cli {

namespace {

// Runs `fn`; an Error (the grammar / schema / regex is wrong) is one line on stderr and exit 2.
template <class F>
int or_exit_2(F fn) {
    try {
        return fn();
    } catch (const Error& e) {
        std::fprintf(stderr, "llmforge: %s\n", e.what());
        return 2;
    }
}

}  // namespace

void add_grammar(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("grammar", "Check text against a GBNF grammar, JSON schema or regex; convert them");
    sub->require_subcommand(1);
    static std::string grammar_file, schema_file, regex, root = "root", schema_in, regex_in;

    auto* check = sub->add_subcommand("check", "Exit 0 if stdin is accepted as a whole, 1 if not, 2 for a bad grammar");
    auto* g = check->add_option("-g,--grammar-file", grammar_file, "GBNF file (llama.cpp syntax)");
    auto* js = check->add_option("--json-schema", schema_file, "JSON Schema file");
    auto* re = check->add_option("--regex", regex, "regular expression (whole-text match)");
    g->excludes(js)->excludes(re);
    js->excludes(re);
    check->add_option("--root", root, "start rule of a GBNF file")->capture_default_str();

    auto* from_schema = sub->add_subcommand("from-schema", "Print the GBNF of a JSON schema");
    from_schema->add_option("schema", schema_in, "JSON Schema file")->required();
    auto* from_regex = sub->add_subcommand("from-regex", "Print the GBNF of a regular expression");
    from_regex->add_option("regex", regex_in, "regular expression")->required();

    run = [check, from_schema, from_regex] {
        if (check->parsed()) {
            std::shared_ptr<const Grammar> grammar;
            std::string source;
            const int rc = or_exit_2([&] {
                const ConstraintGbnf c = constraint_gbnf(grammar_file, schema_file, regex);
                if (c.source.empty()) {
                    fail("grammar check: give the grammar: -g FILE.gbnf, --json-schema FILE.json or --regex R");
                }
                source = c.source;
                grammar = Grammar::parse(c.gbnf, grammar_file.empty() ? "root" : root, c.source);
                return 0;
            });
            if (rc != 0) return rc;
            const std::string text = read_stdin("grammar check");
            const GrammarCheck r = grammar_check(*grammar, text);
            if (r.accepted) return 0;
            std::fprintf(stderr, "llmforge: text rejected by grammar '%s' at code point %lld: %s\n", source.c_str(),
                         static_cast<long long>(r.fail_offset), r.reason.c_str());
            return 1;
        }
        const bool schema = from_schema->parsed();
        (void)from_regex;
        return or_exit_2([&] {
            const ConstraintGbnf c = schema ? constraint_gbnf("", schema_in, "")
                                            : ConstraintGbnf{regex_to_gbnf(regex_in, "--regex"), "--regex"};
            Grammar::parse(c.gbnf, "root", c.source);  // what we print must load
            std::fwrite(c.gbnf.data(), 1, c.gbnf.size(), stdout);
            return 0;
        });
    };
}

}  // namespace llmforge::cli
