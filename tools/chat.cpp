// llmforge chat -m MODEL: a multi-turn conversation on the terminal with the model's own chat
// template, streaming each reply as it is generated. Lines on stdin are user turns (an empty line
// or EOF ends the chat), so a script can pipe a session in: `printf 'hi\nbye\n' | llmforge chat …`.
// The KV cache is kept between turns: each turn re-renders the whole conversation, keeps the
// cached tokens it shares with the previous turn and decodes only the rest.
// Images (a vision-language model: a folder with mmproj.gguf, or --mmproj F): `--image F` attaches
// an image to the first user line, and a line "/image PATH" attaches one to the next user line; each
// becomes an "<image>" marker opening its turn (runtime/multimodal.h). The cache is reused across
// turns by position, images compared by content.
// --adapter DIR[:scale] (repeatable): PEFT adapters (runtime/adapters.h); a prompt adapter's virtual
// tokens stay in the cache before the conversation for the whole chat.
// --grammar-file F | --json-schema F | --regex R: every assistant turn is constrained (a grammar
// stage first in the sampler chain, reset at each turn); a turn ends when its grammar is complete.
// --app shop --db F --customer ID [--session ID]: the shop assistant (apps/shop/assistant.h) between
// the customer and the model: a session kept in the database (--session continues one), the
// tracked state and the lookups shown before each reply (stderr on a terminal, stdout in a scripted
// session), the safety filter (--safety, default the shipped models/safety) on each user line and
// on the reply as it streams.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "apps/shop/assistant.h"
#include "apps/shop/safety.h"
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
#include "runtime/multimodal.h"
#include "runtime/sampler.h"

namespace llmforge::cli {

void add_chat(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("chat", "Chat with a model (multi-turn, streaming, the model's chat template)");
    static std::string model, system, chat_template;
    static int64_t n = 256, ctx_size = 0;
    static int threads = 0;
    static SamplerParams sp;
    static bool echo = false;
    static std::vector<std::string> adapters, first_images;
    static std::string mmproj;
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
    sub->add_option("--image", first_images, "PNG or JPEG image for the first user line (repeatable; later: /image PATH)");
    sub->add_option("--mmproj", mmproj, "image encoder: llama.cpp mmproj GGUF (default: the model folder's mmproj.gguf)");
    static std::string encode_type = "f32";
    add_image_encode_type(sub, encode_type);
    sub->add_flag("--echo", echo, "print each user line (for scripted sessions without a terminal)");
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    auto* gf = sub->add_option("--grammar-file", grammar_file, "GBNF grammar every reply must match (llama.cpp syntax)");
    auto* js = sub->add_option("--json-schema", json_schema, "JSON Schema file every reply must be valid JSON for");
    auto* re = sub->add_option("--regex", regex, "regular expression every whole reply must match");
    gf->excludes(js)->excludes(re);
    js->excludes(re);
    static std::string app_name, shop_db, customer, session, dst_dir, retriever_dir, safety_dir;
    static int window = 5;
    static bool quiet_state = false;
    sub->add_option("--app", app_name, "run a chat application: 'shop' (the shop assistant; needs --db and --customer or --session)")
        ->check(CLI::IsMember({"shop"}));
    sub->add_option("--db", shop_db, "--app shop: the shop database (llmforge shop init --db FILE)");
    sub->add_option("--customer", customer, "--app shop: the signed-in customer (a new session), e.g. U00001");
    sub->add_option("--session", session, "--app shop: continue this session");
    sub->add_option("--dst", dst_dir, "--app shop: dialogue-state tracker folder (default: the shipped models/dst)");
    sub->add_option("--retriever", retriever_dir, "--app shop: retriever folder (default: the shipped models/retriever)");
    sub->add_option("--safety", safety_dir, "--app shop: safety model folder (default: the shipped models/safety; 'none': off)");
    sub->add_option("--window", window, "--app shop: earlier messages kept verbatim in the context")->capture_default_str();
    sub->add_flag("--no-state", quiet_state, "--app shop: do not print the tracked state and lookups");
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
        // The image encoder, when the model has one (or --mmproj names one).
        std::unique_ptr<ImageEncoder> encoder;
        const std::string enc_path = mmproj.empty() ? ImageEncoder::find_for_model(model) : mmproj;
        if (!enc_path.empty()) {
            try {
                encoder = ImageEncoder::load(enc_path, image_encode_type(encode_type));
                encoder->check_decoder(*m, "chat");
            } catch (const Error& e) {
                if (!mmproj.empty()) throw;  // asked for: an error; found beside the model: a warning
                std::fprintf(stderr, "chat: warning: %s; chatting without images\n", e.what());
                encoder.reset();
            }
        }
        if (encoder) {
            std::fprintf(stderr, "chat: images through %s (%lld rows each); attach one with /image PATH\n",
                         enc_path.c_str(), (long long)encoder->n_tokens());
        } else if (!first_images.empty()) {
            fail("chat: --image given but %s has no image encoder (expected mmproj.gguf beside it; hint: pass --mmproj "
                 "FILE, or use a vision-language model such as models/vlm)", model.c_str());
        }
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
        // The shop assistant, when asked for.
        std::unique_ptr<apps::ShopAssistant> shop;
        std::unique_ptr<apps::SafetyFilter> safety;
        if (!app_name.empty()) {
            if (shop_db.empty()) fail("chat --app shop: --db FILE is required (hint: llmforge shop init --db shop.db)");
            if (customer.empty() == session.empty())
                fail("chat --app shop: give --customer ID (a new session) or --session ID (continue one), one of them");
            apps::AssistantOptions ao;
            ao.db_path = shop_db;
            ao.dst_dir = dst_dir.empty() ? shipped_model("dst") : dst_dir;
            ao.retriever_dir = retriever_dir.empty() ? shipped_model("retriever") : retriever_dir;
            ao.window = window;
            ao.count_tokens = [t = tok.get()](const std::string& text) { return t->encode(text, false, false).size(); };
            ao.context_budget_tokens = static_cast<size_t>(std::max<int64_t>(64, room - std::min<int64_t>(n, room / 3)));
            shop = std::make_unique<apps::ShopAssistant>(ao);
            if (safety_dir != "none") safety = std::make_unique<apps::SafetyFilter>(safety_dir.empty() ? shipped_model("safety") : safety_dir);
            if (session.empty()) session = shop->create_session(customer);
            const auto sj = shop->session_json(session);
            std::fprintf(stderr, "chat: shop assistant, session %s of customer %s (%zu earlier turns)\n", session.c_str(),
                         sj["customer_id"].get<std::string>().c_str(), sj["turns"].size());
        } else if (!shop_db.empty() || !customer.empty() || !session.empty()) {
            fail("chat: --db, --customer and --session belong to --app shop (hint: add --app shop)");
        }
        static const char* kRefusal =
            "I'm sorry, I can't help with that. I can help with orders, deliveries, returns and our products.";
        static const char* kWithheld = "[The rest of this reply was withheld by the safety filter.]";
        ChatTemplateInputs base;
        base.messages = nlohmann::ordered_json::array();
        if (!system.empty()) base.messages.push_back({{"role", "system"}, {"content", system}});
        nlohmann::ordered_json history = base.messages;
        std::vector<int32_t> cached;  // the KV cache's positions, in order (MultimodalPrompt::position_keys)
        std::vector<PromptImage> conv_images;  // every image of the conversation, in order
        std::vector<std::string> pending = first_images;  // images for the next user line
        std::fprintf(stderr, "chat: %s (%s, %.1fM parameters); an empty line ends the chat\n", model.c_str(),
                     m->config().arch.c_str(), m->n_params() / 1e6);
        std::string line;
        while (true) {
            if (tty) std::fputs("\n> ", stdout), std::fflush(stdout);
            if (!std::getline(std::cin, line) || line.empty()) break;
            if (echo || !tty) std::printf("user: %s\n", line.c_str());
            if (line.rfind("/image ", 0) == 0) {
                const std::string path = line.substr(7);
                if (!encoder) {
                    std::fprintf(stderr, "chat: %s has no image encoder; /image is ignored (hint: --mmproj FILE)\n",
                                 model.c_str());
                    continue;
                }
                try {
                    load_image(path);  // one line now rather than after the user's question
                    pending.push_back(path);
                    std::fprintf(stderr, "chat: %s attached to your next line\n", path.c_str());
                } catch (const Error& e) {
                    std::fprintf(stderr, "chat: %s\n", e.what());
                }
                continue;
            }
            std::string content = line;
            for (const std::string& f : pending) {  // the images open the turn (LLaVA's convention)
                conv_images.push_back(prompt_image(*encoder, load_image(f), ctx.pool()));
                content = "<image>\n" + content;
            }
            pending.clear();
            ChatTemplateInputs in = base;
            std::optional<apps::TurnPlan> plan;
            if (shop) {
                plan = shop->plan(session, line);
                if (!quiet_state) {
                    auto info = plan->info();
                    std::FILE* f = tty ? stderr : stdout;
                    std::fprintf(f, "  state: %s\n", info["state"].dump().c_str());
                    if (!plan->tool.empty()) {  // one line each, indented under "lookup:"
                        std::string lines = plan->tool;
                        for (size_t q = 0; (q = lines.find('\n', q)) != std::string::npos; q += 10) lines.insert(q + 1, "          ");
                        std::fprintf(f, "  lookup: %s\n", lines.c_str());
                    }
                    if (plan->recalled_order) std::fprintf(f, "  memory: order %s recalled\n", plan->recalled_order->c_str());
                }
                std::optional<std::string> fixed = plan->fixed_reply;
                if (safety && safety->check(line).category) fixed = kRefusal;
                if (fixed) {
                    std::printf("%s%s\n", tty ? "" : "assistant: ", fixed->c_str());
                    std::fflush(stdout);
                    shop->commit(*plan, *fixed, *fixed);
                    continue;
                }
                in.messages = plan->messages;
            } else {
                history.push_back({{"role", "user"}, {"content", content}});
                in.messages = history;
            }
            const MultimodalPrompt mm = chat_to_multimodal(*tok, fmt.tmpl, in, conv_images);
            const std::vector<int32_t> ids = mm.position_keys();
            size_t keep = 0;  // positions already cached (at least one must be decoded anew)
            while (keep < cached.size() && keep + 1 < ids.size() && cached[keep] == ids[keep]) ++keep;
            if (static_cast<int64_t>(ids.size()) + 8 > room) {
                fail_kind(ErrorKind::kResource,
                          "chat: the conversation has %zu positions, the context holds %lld (hint: --ctx-size, or a new "
                          "chat)", ids.size(), (long long)room);
            }
            // Cache positions: the virtual rows, then the conversation's tokens.
            ctx.truncate(std::min(ctx.n_past(), ctx.n_virtual() + static_cast<int64_t>(keep)));
            GenerateParams gp;
            gp.stop = fmt.stops;
            gp.max_tokens = std::min<int64_t>(n, room - static_cast<int64_t>(ids.size()));
            std::fputs(tty ? "" : "assistant: ", stdout);
            const std::vector<int32_t> rest = feed_multimodal_prompt(ctx, mm, nullptr, static_cast<int64_t>(keep));
            if (grammar_stage) grammar_stage->reset();  // a new reply: the grammar starts over
            std::string shown;  // the reply as printed: slots filled (--app), the safety filter may cut it
            bool withheld = false;
            // The shop model writes facts as slot references; they are filled as they stream.
            std::optional<train::Lexicalizer> lex;
            if (plan) lex.emplace(plan->slots);
            auto show = [&](std::string_view raw) {
                const std::string piece = lex ? lex->push(raw) : std::string(raw);
                if (piece.empty()) return true;
                if (safety) {
                    std::string next = shown + piece;
                    if (safety->check(next.size() > 600 ? next.substr(next.size() - 600) : next).category) {
                        withheld = true;
                        shown += kWithheld;
                        std::fputs(kWithheld, stdout);
                        return false;
                    }
                }
                shown += piece;
                std::fwrite(piece.data(), 1, piece.size(), stdout);
                std::fflush(stdout);
                return true;
            };
            GenerateResult r = generate(ctx, *tok, sampler, rest, gp, show);
            if (lex && !withheld) {
                const std::string tail = lex->finish();
                lex.reset();
                show(tail);
            }
            std::fputc('\n', stdout);
            std::fflush(stdout);
            cached = ids;
            cached.insert(cached.end(), r.tokens.begin(), r.tokens.end());
            if (withheld) cached.clear();  // the cache holds tokens the conversation will not have
            if (plan) shop->commit(*plan, shown, r.text);
            else history.push_back({{"role", "assistant"}, {"content", r.text}});
        }
        return 0;
    };
}

}  // namespace llmforge::cli
