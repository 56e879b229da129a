// Template: parse once, render many; maps engine errors to one-line llmforge::Error.
#include "tokenizer/jinja/template.h"

#include <algorithm>
#include <new>

#include "core/error.h"
#include "tokenizer/jinja/lexer.h"
#include "tokenizer/jinja/parser.h"
#include "tokenizer/jinja/pystr.h"
#include "tokenizer/jinja/template_error.h"

namespace llmforge::jinja {

Template::Template(std::string_view source, std::string origin, Limits limits)
    : source_(normalize_source(source)), origin_(std::move(origin)), limits_(limits) {
    try {
        program_ = std::make_shared<const Program>(parse(tokenize(source_)));
    } catch (const TemplateError& e) {
        fail(e);
    }
}

std::string Template::render(const DictData& context) const {
    for (const auto& kv : context.items)
        if (!kv.first.is_string())
            throw Error(origin_ + ": context keys must be strings; hint: name every variable");
    try {
        return jinja::render(*program_, context, limits_);
    } catch (const TemplateError& e) {
        fail(e);
    } catch (const std::bad_alloc&) {
        throw Error(
            origin_ +
            ": out of memory while rendering; hint: the template or its inputs are too large");
    }
}

void Template::fail(const TemplateError& e) const {
    size_t line = 1, col = 1;
    if (e.has_pos()) {
        const size_t pos = std::min(e.pos(), source_.size());
        for (size_t i = 0; i < pos; ++i) line += source_[i] == '\n';
        const size_t nl = pos == 0 ? std::string::npos : source_.rfind('\n', pos - 1);
        const size_t from = nl == std::string::npos ? 0 : nl + 1;
        col = py::length(std::string_view(source_).substr(from, pos - from)) + 1;
    }
    std::string what = e.what();
    for (char& c : what)
        if (c == '\n') c = ' ';  // keep the message on one line
    throw Error(strfmt("%s:%zu:%zu: %s; hint: %s", origin_.c_str(), line, col, what.c_str(),
                       e.hint().c_str()));
}

}  // namespace llmforge::jinja
