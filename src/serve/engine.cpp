#include "serve/engine.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <system_error>

#include "core/error.h"
#include "runtime/chat.h"

namespace llmforge::serve {

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
    sm->model = Model::load(path, opt.tokenizer_path, opt.use_mmap);
    sm->tokenizer = Tokenizer::create(sm->model->vocab());
    sm->stop_on_bos = sm->model->files().format == "llama2c";
    if (!opt.alias.empty()) {
        sm->id = opt.alias;
    } else {
        std::filesystem::path p(path);
        while (p.has_parent_path() && p.filename().empty()) p = p.parent_path();  // "dir/"
        sm->id = std::filesystem::is_directory(p) ? p.filename().string() : p.stem().string();
    }
    // A server never reads a template from a pipe (it would wait on it forever).
    if (auto f = load_chat_format(*sm->tokenizer, path, opt.chat_template_path, false)) {
        sm->chat_template.emplace(std::move(f->tmpl));
        sm->chat_template_name = f->name;
        sm->extra_stops = f->stops;
    }
    return sm;
}

Engine::Engine(std::shared_ptr<const ServedModel> model, EngineConfig cfg, DriftMonitor* drift)
    : drift_(drift), sched_(std::move(model), cfg, [this](const SeqSummary& s) {
          if (drift_ == nullptr) return;
          RequestStats r;
          r.prompt_tokens = static_cast<int64_t>(s.prompt.size());
          r.completion_tokens = s.completion_tokens;
          r.mean_logprob = s.completion_tokens > 0 ? s.sum_logprob / s.completion_tokens : std::nan("");
          r.mean_entropy = s.completion_tokens > 0 ? s.sum_entropy / s.completion_tokens : std::nan("");
          r.finish_reason = s.finish_reason;
          int64_t bytes = 0;
          for (int32_t t : s.prompt) bytes += s.model.tokenizer->token_type(t) == TokenType::kByte;
          r.byte_fallback_rate = s.prompt.empty() ? 0.0 : static_cast<double>(bytes) / s.prompt.size();
          for (const auto& name : drift_->record(r)) {
              std::fprintf(stderr, "llmforge serve: warning: drift detected in %s (see GET /admin/drift)\n",
                           name.c_str());
          }
      }) {}

std::shared_ptr<const ServedModel> Engine::model() const {
    // Every model this engine is given is a ServedModel (the constructor and swap_model take one).
    return std::static_pointer_cast<const ServedModel>(sched_.model());
}

}  // namespace llmforge::serve
