// The one exception type inside the Jinja engine. Every stage (lexer, parser, value operations,
// interpreter) throws TemplateError with a message and a hint; the byte offset of the construct
// is attached by the innermost node that knows it (see Interpreter::eval). Template turns it into
// a one-line llmforge::Error "<origin>:<line>:<col>: <what>; hint: <hint>" at the API boundary.
#pragma once

#include <cstddef>
#include <exception>
#include <string>
#include <utility>

namespace llmforge::jinja {

class TemplateError : public std::exception {
  public:
    static constexpr size_t kNoPos = static_cast<size_t>(-1);

    TemplateError(std::string what, std::string hint, size_t pos = kNoPos)
        : what_(std::move(what)), hint_(std::move(hint)), pos_(pos) {}

    const char* what() const noexcept override { return what_.c_str(); }
    const std::string& hint() const { return hint_; }
    size_t pos() const { return pos_; }
    bool has_pos() const { return pos_ != kNoPos; }
    void set_pos(size_t pos) { pos_ = pos; }

  private:
    std::string what_;
    std::string hint_;
    size_t pos_;
};

// Hints shared by several stages.
inline constexpr const char* kHintType =
    "the template combines values the way Python would reject; check the types it is given";
inline constexpr const char* kHintUndefined =
    "the value is not in the inputs; guard it with 'is defined' or pass it in";

}  // namespace llmforge::jinja
