#include "runtime/adapters.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include "core/error.h"

namespace llmforge {

namespace fs = std::filesystem;

AdapterSpec parse_adapter_spec(const std::string& spec) {
    AdapterSpec s;
    std::error_code ec;
    const size_t colon = spec.rfind(':');
    if (colon == std::string::npos || fs::is_directory(spec, ec)) {
        s.dir = spec;
    } else {
        s.dir = spec.substr(0, colon);
        const std::string num = spec.substr(colon + 1);
        char* end = nullptr;
        errno = 0;
        const double v = num.empty() ? 0.0 : std::strtod(num.c_str(), &end);
        if (num.empty() || end != num.c_str() + num.size() || errno == ERANGE || !std::isfinite(v))
            fail("--adapter %s: scale '%s' is not a number (expected DIR or DIR:SCALE, e.g. %s:0.5)", spec.c_str(),
                 num.c_str(), s.dir.empty() ? "DIR" : s.dir.c_str());
        s.scale = v;
        s.scale_given = true;
    }
    if (s.dir.empty()) fail("--adapter '%s': no folder given (expected DIR or DIR:SCALE)", spec.c_str());
    return s;
}

AdapterSet AdapterSet::load(const std::vector<std::string>& specs, const Arch& a, const ModelConfig& c) {
    AdapterSet set;
    set.delta_ = std::make_unique<LowRankDelta>();
    std::string prompt_dir;
    for (const std::string& text : specs) {
        const AdapterSpec spec = parse_adapter_spec(text);
        Entry e;
        e.adapter = read_adapter(spec.dir, a, c);
        e.scale = spec.scale;
        if (e.adapter.cfg.type == PeftType::kPromptTuning) {
            if (spec.scale_given && spec.scale != 1.0)
                fail("--adapter %s: %s is a prompt-tuning adapter, which takes no scale (its virtual tokens are used as "
                     "they are; hint: drop the ':%g')", text.c_str(), spec.dir.c_str(), spec.scale);
            if (!prompt_dir.empty())
                fail("--adapter %s: a second prompt-tuning adapter (%s is one already); only one prompt adapter can "
                     "run at a time (hint: LoRA adapters stack, prompt adapters do not)", text.c_str(),
                     prompt_dir.c_str());
            prompt_dir = spec.dir;
            set.prompt_ = e.adapter.prompt;
            set.n_virtual_ = e.adapter.cfg.num_virtual_tokens;
        } else if (e.scale != 0.0) {
            add_lora(*set.delta_, e.adapter, e.scale, c);
        }
        set.entries_.push_back(std::move(e));
    }
    return set;
}

SeqAdapter AdapterSet::seq_adapter() const {
    SeqAdapter s;
    s.delta = delta();
    s.virtual_rows = prompt_.empty() ? nullptr : prompt_.data();
    s.n_virtual = n_virtual_;
    return s;
}

std::string AdapterSet::describe() const {
    std::string out;
    for (const Entry& e : entries_) {
        if (!out.empty()) out += ", ";
        const AdapterConfig& c = e.adapter.cfg;
        if (c.type == PeftType::kLora) {
            out += strfmt("lora %s (r %lld, alpha %g, %zu modules, scale %g)", e.adapter.path.c_str(), (long long)c.r,
                          c.alpha, e.adapter.lora.size(), e.scale);
        } else {
            out += strfmt("prompt %s (%lld virtual tokens)", e.adapter.path.c_str(), (long long)c.num_virtual_tokens);
        }
    }
    return out;
}

}  // namespace llmforge
