#include "serve/engine.h"

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>
#include <thread>

#include "core/error.h"
#include "runtime/chat.h"
#include "model/low_rank.h"

namespace llmforge::serve {

namespace {

// The served model's image encoder: --mmproj (must load and fit), else the one beside the model
// (left out with a warning when it does not load or fit: the model still serves text).
void load_image_encoder(ServedModel& sm, const std::string& path, const ModelOptions& opt) {
    sm.image_threads = opt.threads;
    const std::string where = "model '" + sm.id + "'";
    if (!opt.mmproj_path.empty()) {
        std::error_code ec;
        if (!std::filesystem::exists(opt.mmproj_path, ec)) {
            fail_kind(ErrorKind::kNotFound, "--mmproj %s: no such file (hint: the image encoder GGUF of a "
                      "vision-language model, llama.cpp's mmproj format)", opt.mmproj_path.c_str());
        }
        try {
            auto enc = ImageEncoder::load(opt.mmproj_path, opt.image_encode_type);
            enc->check_decoder(*sm.model, where);
            sm.image_encoder = std::move(enc);
        } catch (const Error& e) {
            fail_kind(e.kind(), "--mmproj: %s", e.what());
        }
        return;
    }
    const std::string found = ImageEncoder::find_for_model(path);
    if (found.empty()) return;
    try {
        auto enc = ImageEncoder::load(found, opt.image_encode_type);
        enc->check_decoder(*sm.model, where);
        sm.image_encoder = std::move(enc);
    } catch (const Error& e) {
        sm.no_images_reason = e.what();
        std::fprintf(stderr, "llmforge serve: warning: the image encoder beside the model is left out, requests with "
                     "images get 400: %s\n", e.what());
    }
}

}  // namespace

std::shared_ptr<const ServedModel> load_served_model(const std::string& path, const ModelOptions& opt) {
    std::error_code ec;
    if (!std::filesystem::exists(path, ec)) {
        fail_kind(ErrorKind::kNotFound, "%s: no such model file or folder (hint: check the path; a GGUF file, a Hugging "
                  "Face folder or a llama2.c checkpoint)", path.c_str());
    }
    if (!opt.tokenizer_path.empty() && !std::filesystem::exists(opt.tokenizer_path, ec)) {
        fail_kind(ErrorKind::kNotFound, "%s: no such tokenizer file (hint: check the --tokenizer path)",
                  opt.tokenizer_path.c_str());
    }
    auto sm = std::make_shared<ServedModel>();
    sm->path = path;
    auto model = Model::load(path, opt.tokenizer_path, opt.use_mmap);
    model->set_attention(opt.attention);
    sm->model = std::move(model);
    sm->tokenizer = Tokenizer::create(sm->model->vocab());
    sm->stop_on_bos = sm->model->files().format == "llama2c";
    sm->model->new_memory(1, opt.kv_types);  // a head size the cache type cannot take fails here, at load
    sm->kv_types = opt.kv_types;
    if (!opt.alias.empty()) {
        sm->id = opt.alias;
    } else {
        std::filesystem::path p(path);
        while (p.has_parent_path() && p.filename().empty()) p = p.parent_path();  // "dir/"
        sm->id = std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
    }
    load_image_encoder(*sm, path, opt);
    // A server never reads a template from a pipe (it would wait on it forever).
    if (auto f = load_chat_format(*sm->tokenizer, path, opt.chat_template_path, false)) {
        sm->chat_template.emplace(std::move(f->tmpl));
        sm->chat_template_name = f->name;
        sm->extra_stops = f->stops;
    }
    return sm;
}

std::shared_ptr<const GrammarVocab> ServedModel::grammar_vocab() const {
    std::call_once(grammar_once_, [this] { grammar_vocab_ = GrammarVocab::build(*tokenizer); });
    return grammar_vocab_;
}

const ToolSyntax& ServedModel::tool_syntax() const {
    std::call_once(tools_once_, [this] {
        if (!chat_template) return;
        auto text = [&](int32_t id) { return id >= 0 && id < tokenizer->n_vocab() ? tokenizer->token_text(id) : std::string(); };
        tool_syntax_ = detect_tool_syntax(*chat_template, text(tokenizer->bos()), text(tokenizer->eos()));
    });
    return tool_syntax_;
}

PromptImage ServedModel::embed_image(const Image& image) const {
    LF_ASSERT(image_encoder != nullptr);
    std::lock_guard<std::mutex> lk(image_mu_);
    if (!image_pool_) {
        const int n = image_threads > 0 ? image_threads : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
        image_pool_ = std::make_unique<ThreadPool>(n);
    }
    return prompt_image(*image_encoder, image, *image_pool_);
}

const std::optional<FimFormat>& ServedModel::fim() const {
    std::call_once(fim_once_, [this] { fim_ = detect_fim(*tokenizer); });
    return fim_;
}

namespace {
std::atomic<uint64_t> g_adapter_serial{1};
}  // namespace

void check_adapter_name(const std::string& name, const std::string& base_id) {
    if (name.empty() || name.size() > 128) {
        fail("adapter name '%s': expected 1 to 128 characters", name.c_str());
    }
    for (char c : name) {
        if (c <= ' ' || c > '~') {
            fail("adapter name '%s': only printable ASCII without spaces is allowed (it is the request's \"model\")",
                 name.c_str());
        }
    }
    if (name == base_id) {
        fail("adapter name '%s' is the base model's id (hint: pick another name; requests naming '%s' run the base "
             "model)", name.c_str(), base_id.c_str());
    }
}

std::shared_ptr<const ServedAdapter> load_served_adapter(const std::string& name, const std::string& dir, double scale,
                                                         const ServedModel& base) {
    check_adapter_name(name, base.id);
    if (!std::isfinite(scale)) fail("adapter '%s': the scale must be a finite number", name.c_str());
    std::error_code ec;
    if (!std::filesystem::exists(dir, ec)) {
        fail_kind(ErrorKind::kNotFound, "adapter '%s': %s: no such folder (hint: a PEFT adapter folder with "
                  "adapter_config.json and adapter_model.safetensors)", name.c_str(), dir.c_str());
    }
    if (!std::filesystem::is_directory(dir, ec) || !is_adapter_folder(dir)) {
        fail("adapter '%s': %s is not a PEFT adapter folder (no adapter_config.json; hint: the folder PEFT's "
             "save_pretrained or llmforge train --lora writes)", name.c_str(), dir.c_str());
    }
    auto a = std::make_shared<ServedAdapter>();
    a->name = name;
    a->path = dir;
    a->scale = scale;
    Adapter ad;
    try {
        ad = read_adapter(dir, base.model->arch(), base.model->config());
    } catch (const Error& e) {
        fail_kind(e.kind(), "adapter '%s' on model '%s': %s", name.c_str(), base.id.c_str(), e.what());
    }
    if (ad.cfg.type != PeftType::kLora) {
        fail("adapter '%s': %s is a prompt-tuning adapter; serve runs LoRA adapters only (hint: llmforge generate "
             "--adapter DIR runs prompt tuning)", name.c_str(), dir.c_str());
    }
    a->cfg = ad.cfg;
    auto delta = std::make_shared<LowRankDelta>();
    add_lora(*delta, ad, scale, base.model->config());
    a->delta = std::move(delta);
    a->key = name + "#" + std::to_string(g_adapter_serial++);
    a->base_serial = base.serial;
    return a;
}

Engine::Engine(std::shared_ptr<const ServedModel> model, EngineConfig cfg, DriftMonitor* drift)
    : drift_(drift), serving_{model, std::make_shared<AdapterMap>()}, sched_(std::move(model), cfg, [this](const SeqSummary& s) {
          if (drift_ == nullptr) return;
          RequestStats r;
          r.prompt_tokens = static_cast<int64_t>(s.prompt.size());
          r.completion_tokens = s.completion_tokens;
          r.mean_logprob = s.completion_tokens > 0 ? s.sum_logprob / s.completion_tokens : std::nan("");
          r.mean_entropy = s.completion_tokens > 0 ? s.sum_entropy / s.completion_tokens : std::nan("");
          r.finish_reason = s.finish_reason;
          int64_t bytes = 0, text = 0;
          for (int32_t t : s.prompt) {  // image rows (negative keys) are not text
              if (t < 0) continue;
              ++text;
              bytes += s.model.tokenizer->token_type(t) == TokenType::kByte;
          }
          r.byte_fallback_rate = text == 0 ? 0.0 : static_cast<double>(bytes) / text;
          for (const auto& name : drift_->record(r)) {
              std::fprintf(stderr, "llmforge serve: warning: drift detected in %s (see GET /admin/drift)\n",
                           name.c_str());
          }
      }) {}

std::shared_ptr<const ServedModel> Engine::model() const {
    std::lock_guard<std::mutex> lk(mu_);
    return serving_.model;
}

Serving Engine::serving() const {
    std::lock_guard<std::mutex> lk(mu_);
    return serving_;
}

void Engine::swap_model(std::shared_ptr<const ServedModel> m, AdapterMap adapters) {
    for (const auto& [name, a] : adapters) LF_ASSERT(a && a->base_serial == m->serial);
    std::lock_guard<std::mutex> lk(mu_);
    sched_.set_model(m);
    serving_ = Serving{std::move(m), std::make_shared<AdapterMap>(std::move(adapters))};
}

bool Engine::put_adapter(std::shared_ptr<const ServedAdapter> a) {
    std::lock_guard<std::mutex> lk(mu_);
    if (a->base_serial != serving_.model->serial) return false;
    auto next = std::make_shared<AdapterMap>(*serving_.adapters);
    (*next)[a->name] = std::move(a);
    serving_.adapters = std::move(next);
    return true;
}

bool Engine::remove_adapter(const std::string& name) {
    std::lock_guard<std::mutex> lk(mu_);
    if (serving_.adapters->count(name) == 0) return false;
    auto next = std::make_shared<AdapterMap>(*serving_.adapters);
    next->erase(name);
    serving_.adapters = std::move(next);
    return true;
}

}  // namespace llmforge::serve
