// llmforge chat -m MODEL: a multi-turn conversation on the terminal with the model's own chat
// template, streaming each reply as it is generated. Lines on stdin are user turns (an empty line
// or EOF ends the chat), so a script can pipe a session in: `printf 'hi\nbye\n' | llmforge chat …`.
// The KV cache is kept between turns: each turn re-renders the whole conversation, keeps the
// cached tokens it shares with the previous turn and decodes only the rest.
// --adapter DIR[:scale] (repeatable): PEFT adapters (runtime/adapters.h); a prompt adapter's virtual
// tokens stay in the cache before the conversation for the whole chat.
// --grammar-file F | --json-schema F | --regex R: every assistant turn is constrained (a grammar
// stage first in the sampler chain, reset at each turn); a turn ends when its grammar is complete.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "model/model.h"
#include "runtime/adapters.h"
#include "runtime/chat.h"
#include "runtime/context.h"
#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "runtime/sampler.h"

namespace llmforge::cli {

void add_chat(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("chat", "Chat with a model (multi-turn, streaming, the model's chat template)");
    static std::string model, system, chat_template;
    static int64_t n = 256, ctx_size = 0;
    static int threads = 0;
    static SamplerParams sp;
    static bool echo = false;
    static std::vector<std::string> adapters;
    static std::string grammar_file, json_schema, regex;
    sp.temperature = 0.7f;
    sub->add_option("-m,--model", model, "model: Hugging Face folder, GGUF")->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    sub->add_option("--system", system, "system message");
    sub->add_option("--chat-template", chat_template, "Jinja file instead of the model's template ('chatml': the built-in ChatML)");
    sub->add_option("-n,--max-tokens", n, "tokens per reply at most")->capture_default_str();
    sub->add_option("--temp", sp.temperature, "temperature (0 = greedy)")->capture_default_str();
    sub->add_option("--top-k", sp.top_k, "top-k (0 = off)");
    sub->add_option("--top-p", sp.top_p, "top-p");
    sub->add_option("--seed", sp.seed, "sampling seed");
    sub->add_option("-c,--ctx-size", ctx_size, "context size (0 = the model's)");
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_flag("--echo", echo, "print each user line (for scripted sessions without a terminal)");
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    auto* gf = sub->add_option("--grammar-file", grammar_file, "GBNF grammar every reply must match (llama.cpp syntax)");
    auto* js = sub->add_option("--json-schema", json_schema, "JSON Schema file every reply must be valid JSON for");
    auto* re = sub->add_option("--regex", regex, "regular expression every whole reply must match");
    gf->excludes(js)->excludes(re);
    js->excludes(re);
    run = [] {
        Sampler::validate(sp);
        const ConstraintGbnf constraint = constraint_gbnf(grammar_file, json_schema, regex);
        std::shared_ptr<const Grammar> grammar;
        if (!constraint.source.empty()) grammar = Grammar::parse(constraint.gbnf, "root", constraint.source);
        auto m = Model::load(model);
        m->set_attention(attention);
        if (m->vocab().empty()) fail("chat: %s has no tokenizer (hint: a folder with tokenizer.json)", model.c_str());
        auto tok = Tokenizer::create(m->vocab());
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "chat: adapters: %s\n", ads.describe().c_str());
        ContextParams cp;
        cp.n_threads = threads;
        cp.n_ctx = ctx_size;
        cp.adapter = ads.seq_adapter();
        Context ctx(*m, cp);
        const int64_t room = ctx.n_ctx() - ctx.n_virtual();  // positions for the conversation's tokens
        const ChatFormat fmt = require_chat_format(*tok, model, chat_template, true, "chat", "--chat-template");
        Sampler sampler(sp, tok.get());
        SamplerStage* grammar_stage = nullptr;  // owned by the sampler; reset before each reply
        if (grammar) {
            auto stage = make_grammar_stage(grammar, GrammarVocab::build(*tok));
            grammar_stage = stage.get();
            sampler.add_stage(std::move(stage), StageSlot::kFirst);
            std::fprintf(stderr, "chat: replies constrained by %s\n", constraint.source.c_str());
        }
        const bool tty = isatty(STDIN_FILENO) != 0 && isatty(STDOUT_FILENO) != 0;
        ChatTemplateInputs base;
        base.messages = nlohmann::ordered_json::array();
        if (!system.empty()) base.messages.push_back({{"role", "system"}, {"content", system}});
        nlohmann::ordered_json history = base.messages;
        std::vector<int32_t> cached;  // tokens in the KV cache, in order
        std::fprintf(stderr, "chat: %s (%s, %.1fM parameters); an empty line ends the chat\n", model.c_str(),
                     m->config().arch.c_str(), m->n_params() / 1e6);
        std::string line;
        while (true) {
            if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
            if (!std::getline(std::cin, line) || line.empty()) break;
            if (echo || !tty) std::printf("user: %s\n", line.c_str());
            history.push_back({{"role", "user"}, {"content", line}});
            ChatTemplateInputs in = base;
            in.messages = history;
            const std::vector<int32_t> ids = chat_to_tokens(*tok, fmt.tmpl, in).tokens;
            size_t keep = 0;  // tokens already cached (at least one token must be decoded anew)
            while (keep < cached.size() && keep + 1 < ids.size() && cached[keep] == ids[keep]) ++keep;
            if (static_cast<int64_t>(ids.size()) + 8 > room) {
                fail_kind(ErrorKind::kResource,
                          "chat: the conversation has %zu tokens, the context holds %lld (hint: --ctx-size, or a new chat)",
                          ids.size(), (long long)room);
            }
            // Cache positions: the virtual rows, then the conversation's tokens.
            ctx.truncate(std::min(ctx.n_past(), ctx.n_virtual() + static_cast<int64_t>(keep)));
            GenerateParams gp;
            gp.stop = fmt.stops;
            gp.max_tokens = std::min<int64_t>(n, room - static_cast<int64_t>(ids.size()));
            std::fputs(tty ? "" : "assistant: ", stdout);
            std::vector<int32_t> rest(ids.begin() + static_cast<std::ptrdiff_t>(keep), ids.end());
            if (grammar_stage) grammar_stage->reset();  // a new reply: the grammar starts over
            GenerateResult r = generate(ctx, *tok, sampler, rest, gp, [](std::string_view s) {
                std::fwrite(s.data(), 1, s.size(), stdout);
                std::fflush(stdout);
                return true;
            });
            std::fputc('\n', stdout);
            std::fflush(stdout);
            cached = ids;
            cached.insert(cached.end(), r.tokens.begin(), r.tokens.end());
            history.push_back({{"role", "assistant"}, {"content", r.text}});
        }
        return 0;
    };
}

}  // namespace llmforge::cli
