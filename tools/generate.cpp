// llmforge generate: prints only the generated text on stdout (streamed, then one newline);
// logs go to stderr.
//
// Prompt: BOS (when the vocabulary asks for it) + the prompt's tokens. For a llama2.c checkpoint
// it follows llama2.c's `run`: -n counts positions (prompt included), sampling BOS ends the text,
// and the piece right after BOS loses its leading space.
//
// --chat: the prompt is one user turn (after --system, if given) rendered with the model's own
// Jinja chat template (or --chat-template FILE, or the built-in --chat-template chatml) as Hugging
// Face's apply_chat_template does; special-token text in it is parsed, and BOS is added only when
// the template did not write it (runtime/chat.h, the server's rule too).
//
// --adapter DIR[:scale] (repeatable): PEFT adapters (runtime/adapters.h): LoRA adapters stack, a
// prompt-tuning adapter's virtual tokens go before the prompt.
//
// --grammar-file F | --json-schema F | --regex R: the output is constrained (runtime/grammar.h): a
// grammar stage first in the sampler chain keeps only tokens the grammar can still accept, and
// end-of-generation only once the match is complete, so generation stops when the grammar does.
//
// --image F (repeatable) [--mmproj F]: images in the prompt, LLaVA style (runtime/multimodal.h): the
// image encoder (llama.cpp's mmproj: vision tower + projector; default: the model folder's
// mmproj.gguf) turns each image into rows that take the place of an "<image>" marker in the prompt
// (with --chat, in the user turn; without markers the images go first).
//
// --draft-model M [--draft-n K] | --speculative mtp: speculative decoding (runtime/speculative.h):
// a draft proposes up to K tokens, the model verifies them in one forward; the output is the same
// as without a draft. Acceptance, tokens per model forward and speed go to stderr.
#include <cstdio>
#include <thread>

#include "attention_flags.h"
#include "commands.h"
#include "core/error.h"
#include "kernels/cpu/kernels.h"
#include "runtime/adapters.h"
#include "runtime/chat.h"
#include "runtime/generator.h"
#include "runtime/grammar.h"
#include "runtime/json_schema.h"
#include "runtime/multimodal.h"
#include "runtime/speculative.h"

namespace llmforge::cli {

void add_generate(CLI::App& app, std::function<int()>& run) {
    auto* sub = app.add_subcommand("generate", "Generate text from a prompt");
    static std::string model, tokenizer, prompt, chat_template, system;
    static int64_t n = 128, ctx_size = 0;
    static int threads = 0;
    static SamplerParams sp;
    static std::vector<std::string> stops, adapters, images;
    static std::string mmproj;
    static std::string grammar_file, json_schema, regex;
    static bool no_bos = false, special = false, no_mmap = false, chat = false;
    static std::string cache_k = "f32", cache_v = "f32";
    static std::string draft_model, speculative;
    static int64_t draft_n = SpeculativeParams{}.n_draft;
    sub->add_option("-m,--model", model, "GGUF file, Hugging Face folder or llama2.c .bin")->required();
    static AttentionChoice attention;
    add_attention_flags(sub, attention);
    sub->add_option("--tokenizer", tokenizer, "tokenizer (llama2.c tok*.bin or GGUF)");
    sub->add_option("--image", images, "PNG or JPEG image for the prompt (repeatable; placed at each <image> marker)");
    sub->add_option("--mmproj", mmproj, "image encoder: llama.cpp mmproj GGUF (default: the model folder's mmproj.gguf)");
    static std::string encode_type = "f32";
    add_image_encode_type(sub, encode_type);
    sub->add_option("-p,--prompt", prompt, "prompt text");
    sub->add_option("-n,--n-predict", n, "tokens to generate (llama2.c: positions)")->capture_default_str()->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
    sub->add_option("--temp", sp.temperature, "temperature (0 = greedy)")->capture_default_str();
    sub->add_option("--top-k", sp.top_k, "top-k (0 = off)")->capture_default_str();
    sub->add_option("--top-p", sp.top_p, "top-p (1 = off)")->capture_default_str();
    sub->add_option("--min-p", sp.min_p, "min-p (0 = off)")->capture_default_str();
    sub->add_option("--repeat-penalty", sp.repeat_penalty, "repetition penalty (1 = off)")->capture_default_str();
    sub->add_option("--frequency-penalty", sp.frequency_penalty, "frequency penalty")->capture_default_str();
    sub->add_option("--presence-penalty", sp.presence_penalty, "presence penalty")->capture_default_str();
    sub->add_option("--repeat-last-n", sp.penalty_last_n, "penalty window")->capture_default_str();
    sub->add_option("-s,--seed", sp.seed, "random seed")->capture_default_str();
    sub->add_option("--stop", stops, "stop string (repeatable)");
    sub->add_option("-c,--ctx-size", ctx_size, "context size (0 = model's, max 4096)");
    sub->add_option("-t,--threads", threads, "threads (0 = all cores)");
    sub->add_option("--cache-type-k", cache_k, "KV cache type of keys: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_option("--cache-type-v", cache_v, "KV cache type of values: f32, f16, q8_0, q4_0")->capture_default_str();
    sub->add_flag("--no-bos", no_bos, "do not prepend BOS");
    sub->add_flag("--special", special, "parse special-token text in the prompt");
    sub->add_flag("--chat", chat, "format the prompt as a user turn with the model's chat template");
    sub->add_option("--system", system, "system message for --chat");
    sub->add_option("--chat-template", chat_template,
                    "Jinja file to use for --chat instead of the model's ('chatml': the built-in ChatML)");
    sub->add_flag("--no-mmap", no_mmap, "load weights into huge-page memory instead of mapping the file");
    sub->add_option("--adapter", adapters,
                    "PEFT adapter folder, DIR or DIR:SCALE (repeatable: LoRA adapters stack; one prompt adapter)");
    auto* gf = sub->add_option("--grammar-file", grammar_file, "GBNF grammar the output must match (llama.cpp syntax)");
    auto* js = sub->add_option("--json-schema", json_schema, "JSON Schema file the output must be valid JSON for");
    auto* re = sub->add_option("--regex", regex, "regular expression the whole output must match");
    gf->excludes(js)->excludes(re);
    js->excludes(re);
    auto* dm = sub->add_option("--draft-model", draft_model,
                               "speculative decoding with this small model (same vocabulary) as the draft");
    auto* spec = sub->add_option("--speculative", speculative, "speculative decoding with the model's own draft: mtp");
    dm->excludes(spec);
    sub->add_option("--draft-n", draft_n, "tokens the draft proposes per verification")
        ->capture_default_str()
        ->check(CLI::Range(int64_t{1}, int64_t{64}));
    run = [] {
        Sampler::validate(sp);
        if (!speculative.empty() && speculative != "mtp")
            fail("--speculative %s: unknown draft (expected: mtp, the model's multi-token-prediction head; hint: "
                 "--draft-model M for a separate draft model)", speculative.c_str());
        const KvTypes kv{parse_kv_type(cache_k, "--cache-type-k"), parse_kv_type(cache_v, "--cache-type-v")};
        // The constraint first: a bad grammar fails before the model is loaded.
        const ConstraintGbnf constraint = constraint_gbnf(grammar_file, json_schema, regex);
        std::shared_ptr<const Grammar> grammar;
        if (!constraint.source.empty()) grammar = Grammar::parse(constraint.gbnf, "root", constraint.source);
        auto m = Model::load(model, tokenizer, !no_mmap);
        m->set_attention(attention);
        if (m->vocab().empty()) {
            fail("%s: the model has no tokenizer (hint: pass --tokenizer tok.bin or a GGUF with "
                 "tokenizer.ggml.* keys)", model.c_str());
        }
        auto tok = Tokenizer::create(m->vocab());
        if (tok->n_vocab() != m->config().n_vocab) {
            fail("%s: tokenizer has %d tokens but the model's vocabulary is %lld (wrong --tokenizer?)",
                 model.c_str(), tok->n_vocab(), (long long)m->config().n_vocab);
        }
        const AdapterSet ads = AdapterSet::load(adapters, *m);
        if (!ads.empty()) std::fprintf(stderr, "generate: adapters: %s\n", ads.describe().c_str());
        const bool llama2c = m->files().format == "llama2c";
        // Images: the encoder first (a missing or mismatched one fails before any work), then each image.
        std::unique_ptr<ImageEncoder> encoder;
        if (!images.empty() || !mmproj.empty()) {
            if (!draft_model.empty() || !speculative.empty())
                fail("generate: --image does not combine with speculative decoding (hint: leave out --draft-model / "
                     "--speculative)");
            const std::string enc_path = mmproj.empty() ? ImageEncoder::find_for_model(model) : mmproj;
            if (enc_path.empty())
                fail("generate: --image given but %s has no image encoder (expected mmproj.gguf beside it; hint: pass "
                     "--mmproj FILE, or use a vision-language model such as models/vlm)", model.c_str());
            encoder = ImageEncoder::load(enc_path, image_encode_type(encode_type));
            encoder->check_decoder(*m, "generate");
        }
        MultimodalPrompt mm;
        std::vector<int32_t> ids;
        std::vector<std::string> chat_stops;  // what the chat format needs beyond EOG tokens
        std::vector<PromptImage> pimages;
        if (encoder) {
            ThreadPool ipool(threads > 0 ? threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
            for (const std::string& f : images) pimages.push_back(prompt_image(*encoder, load_image(f), ipool));
        }
        if (chat || !chat_template.empty() || !system.empty()) {
            const ChatFormat fmt = require_chat_format(*tok, model, chat_template, true, "generate", "--chat-template");
            ChatTemplateInputs in;
            in.messages = nlohmann::ordered_json::array();
            if (!system.empty()) in.messages.push_back({{"role", "system"}, {"content", system}});
            std::string user = prompt;
            if (!has_image_marker(user))  // LLaVA's convention: the images open the user turn
                for (size_t i = 0; i < pimages.size(); ++i) user = "<image>\n" + user;
            in.messages.push_back({{"role", "user"}, {"content", user}});
            mm = chat_to_multimodal(*tok, fmt.tmpl, std::move(in), std::move(pimages), !no_bos);
            chat_stops = fmt.stops;
            std::fprintf(stderr, "generate: chat prompt from %s\n",
                         chat_template.empty() ? "the model's chat template" : fmt.name.c_str());
        } else {
            mm = build_multimodal_prompt(*tok, prompt, std::move(pimages), !no_bos, special);
        }
        const int64_t n_positions = mm.n_positions();
        ContextParams cp;
        cp.n_threads = threads;
        cp.n_ctx = ctx_size;
        cp.adapter = ads.seq_adapter();
        cp.kv_types = kv;
        GenerateParams gp;
        gp.stop = stops;
        gp.stop.insert(gp.stop.end(), chat_stops.begin(), chat_stops.end());
        gp.max_tokens = n;
        if (llama2c) {
            // run.c: positions 0..steps-1 are fed; the prompt's tokens use the first of them.
            const int64_t steps = std::min<int64_t>(n, m->config().n_ctx_train);
            gp.max_tokens = std::max<int64_t>(0, steps - n_positions + 1);
            gp.stop_on_bos = true;
            if (cp.n_ctx == 0) cp.n_ctx = m->config().n_ctx_train + ads.n_virtual();
        }
        Context ctx(*m, cp);
        const int64_t room = ctx.n_ctx() - ctx.n_virtual();  // positions left for tokens
        if (n_positions + gp.max_tokens > room) {
            gp.max_tokens = std::max<int64_t>(0, room - n_positions);
            if (n_positions > room) {
                fail_kind(ErrorKind::kResource, "prompt has %lld positions but the context holds %lld%s (hint: raise --ctx-size)",
                          (long long)n_positions, (long long)room,
                          ctx.n_virtual() > 0 ? " after the prompt adapter's virtual tokens" : "");
            }
        }
        std::fprintf(stderr, "generate: %s (%s, %s), %lld prompt positions (%zu images), %d threads, kernels %s\n",
                     model.c_str(), m->files().format.c_str(), m->config().arch.c_str(), (long long)n_positions,
                     mm.images.size(),
                     ctx.pool().size(), kernels::isa_name(kernels::kernels().isa));
        Sampler sampler(sp, tok.get());
        if (grammar) {
            sampler.add_stage(make_grammar_stage(grammar, GrammarVocab::build(*tok)), StageSlot::kFirst);
            std::fprintf(stderr, "generate: output constrained by %s\n", constraint.source.c_str());
        }
        auto print = [](std::string_view s) {
            std::fwrite(s.data(), 1, s.size(), stdout);
            std::fflush(stdout);
            return true;
        };
        // Every piece but the last run of tokens goes in now; generate() takes that run.
        ids = feed_multimodal_prompt(ctx, mm, &sampler);
        GenerateResult r;
        if (draft_model.empty() && speculative.empty()) {
            r = generate(ctx, *tok, sampler, ids, gp, print);
        } else {
            std::unique_ptr<Model> dmodel;
            std::unique_ptr<DraftSource> draft;
            if (!speculative.empty()) {
                draft = make_mtp_draft(*m, ctx, model);
            } else {
                dmodel = Model::load(draft_model, "", !no_mmap);
                if (dmodel->vocab().empty() && !tokenizer.empty()) dmodel = Model::load(draft_model, tokenizer, !no_mmap);
                draft = std::make_unique<ModelDraft>(*dmodel, ctx, draft_model);
            }
            SpeculativeParams spp;
            spp.n_draft = speculative == "mtp" ? 1 : draft_n;  // one MTP module: one guess per round
            SpeculativeStats st;
            r = generate_speculative(ctx, *draft, *tok, sampler, ids, gp, spp, &st, print);
            std::fprintf(stderr,
                         "generate: speculative (%s, up to %lld per round): %lld/%lld drafted tokens accepted "
                         "(%.1f%%), %.2f tokens per model forward (%lld forwards), draft %.3f s, verify %.3f s\n",
                         draft->name().c_str(), (long long)spp.n_draft, (long long)st.accepted, (long long)st.proposed,
                         100.0 * st.acceptance(), st.tokens_per_forward(), (long long)st.rounds, st.draft_seconds,
                         st.verify_seconds);
        }
        std::fputc('\n', stdout);
        std::fflush(stdout);
        const double pp = r.prefill_seconds > 0 ? r.n_prompt / r.prefill_seconds : 0;
        const double tg = r.decode_seconds > 0 ? r.tokens.size() / r.decode_seconds : 0;
        std::fprintf(stderr, "generate: %lld prompt tokens (%.1f t/s), %zu generated (%.1f t/s), finish: %s\n",
                     (long long)r.n_prompt, pp, r.tokens.size(), tg, r.finish_reason.c_str());
        return 0;
    };
}

}  // namespace llmforge::cli
