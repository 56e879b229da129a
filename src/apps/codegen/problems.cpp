#include "apps/codegen/problems.h"

#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace llmforge::codegen {

namespace {

using nlohmann::json;

// Lines of a JSONL text with their 1-based numbers; blank lines skipped.
template <class Fn>
void for_each_json_line(const std::string& text, const std::string& path, const char* what, Fn fn) {
    size_t b = 0, line_no = 0;
    while (b < text.size()) {
        size_t e = text.find('\n', b);
        if (e == std::string::npos) e = text.size();
        ++line_no;
        std::string line = text.substr(b, e - b);
        b = e + 1;
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") == std::string::npos) continue;
        json j;
        try {
            j = json::parse(line);
        } catch (const json::parse_error& ex) {
            fail("%s: %s:%zu: invalid JSON (parse error at byte %zu) (hint: one JSON object per line)", what,
                 path.c_str(), line_no, static_cast<size_t>(ex.byte));
        }
        if (!j.is_object())
            fail("%s: %s:%zu: expected a JSON object, found %s", what, path.c_str(), line_no, j.type_name());
        fn(j, line_no);
    }
}

const json& need(const json& j, const char* key, const std::string& path, size_t line, const char* what,
                 const char* format) {
    auto it = j.find(key);
    if (it == j.end())
        fail("%s: %s:%zu: missing key '%s' (expected a %s problem)", what, path.c_str(), line, key, format);
    return *it;
}

std::string need_string(const json& j, const char* key, const std::string& path, size_t line, const char* what,
                        const char* format) {
    const json& v = need(j, key, path, line, what, format);
    if (!v.is_string())
        fail("%s: %s:%zu: key '%s' is %s, expected a string", what, path.c_str(), line, key, v.type_name());
    return v.get<std::string>();
}

// "assert name(" -> "name".
std::string called_function(const std::string& assert_line) {
    size_t b = assert_line.find("assert");
    b = b == std::string::npos ? 0 : b + 6;
    while (b < assert_line.size() && (assert_line[b] == ' ' || assert_line[b] == '(')) ++b;
    size_t e = b;
    while (e < assert_line.size() && (std::isalnum(static_cast<unsigned char>(assert_line[e])) || assert_line[e] == '_')) ++e;
    return assert_line.substr(b, e - b);
}

std::string python_executable() {
    if (const char* env = std::getenv("LLMFORGE_SANDBOX_PYTHON"); env && *env) return env;
    // Debian's interpreter, not a per-user one (pyenv shims live in a home the sandbox user cannot read).
    if (access("/usr/bin/python3", X_OK) == 0) return "/usr/bin/python3";
    return "python3";
}

}  // namespace

std::string read_text_file(const std::string& path, const char* what) {
    gzFile f = gzopen(path.c_str(), "rb");  // reads plain files as they are
    if (!f)
        fail_kind(ErrorKind::kNotFound, "%s: cannot open %s: %s", what, path.c_str(),
                  errno ? std::strerror(errno) : "out of memory");
    std::string out;
    char buf[1 << 16];
    for (;;) {
        int n = gzread(f, buf, sizeof buf);
        if (n < 0) {
            int code = 0;
            std::string msg = gzerror(f, &code);
            gzclose(f);
            fail("%s: cannot read %s: %s", what, path.c_str(),
                 code == Z_ERRNO ? std::strerror(errno) : (msg + " (corrupt gzip data?)").c_str());
        }
        if (n == 0) break;
        out.append(buf, static_cast<size_t>(n));
    }
    gzclose(f);
    return out;
}

std::vector<std::string> humaneval_python_stops() { return {"\nclass", "\ndef", "\n#", "\nif", "\nprint"}; }

std::vector<std::string> mbpp_stops() {
    return {"\nclass", "\nassert", "\n\"\"\"", "\nprint", "\nif", "\n<|/", "\n```"};
}

std::vector<Problem> load_problems(const std::string& path, const LoadOptions& opt) {
    const std::string text = read_text_file(path, "problems");
    std::vector<Problem> out;
    int format = 0;  // 1 HumanEval, 2 MBPP
    for_each_json_line(text, path, "problems", [&](const json& j, size_t line) {
        if (format == 0) format = j.contains("test_list") || j.contains("text") ? 2 : 1;
        Problem p;
        p.language = "python";
        if (format == 1) {
            const char* f = "HumanEval";
            p.task_id = need_string(j, "task_id", path, line, "problems", f);
            p.prompt = need_string(j, "prompt", path, line, "problems", f);
            p.entry_point = need_string(j, "entry_point", path, line, "problems", f);
            p.canonical_solution = need_string(j, "canonical_solution", path, line, "problems", f);
            p.test = need_string(j, "test", path, line, "problems", f);
            p.stop = humaneval_python_stops();
            p.completion_includes_prompt = false;
        } else {
            const char* f = "MBPP";
            const json& id = need(j, "task_id", path, line, "problems", f);
            if (!id.is_number_integer())
                fail("problems: %s:%zu: key 'task_id' is %s, expected an integer (MBPP)", path.c_str(), line,
                     id.type_name());
            const int64_t n = id.get<int64_t>();
            const std::string text_ = need_string(j, "text", path, line, "problems", f);
            p.canonical_solution = need_string(j, "code", path, line, "problems", f);
            const json& tests = need(j, "test_list", path, line, "problems", f);
            if (!tests.is_array() || tests.empty())
                fail("problems: %s:%zu: key 'test_list' is %s, expected a non-empty array of asserts", path.c_str(),
                     line, tests.is_array() ? "empty" : tests.type_name());
            std::string setup;
            if (auto it = j.find("test_setup_code"); it != j.end() && it->is_string()) setup = it->get<std::string>();
            std::vector<std::string> asserts;
            for (const json& t : tests) {
                if (!t.is_string())
                    fail("problems: %s:%zu: 'test_list' holds %s, expected strings", path.c_str(), line, t.type_name());
                asserts.push_back(t.get<std::string>());
            }
            if (opt.mbpp_test_split && (n < 11 || n > 510)) return;
            p.task_id = "Mbpp/" + std::to_string(n);
            p.prompt = "\"\"\"\n" + text_ + "\n" + asserts[0] + "\n\"\"\"\n";
            p.entry_point = called_function(asserts[0]);
            p.test = setup;
            if (!p.test.empty() && p.test.back() != '\n') p.test += "\n";
            for (const std::string& a : asserts) p.test += a + "\n";
            p.stop = mbpp_stops();
            p.completion_includes_prompt = true;
        }
        out.push_back(std::move(p));
    });
    if (out.empty()) fail("problems: %s holds no problems (expected HumanEval or MBPP JSONL)", path.c_str());
    return out;
}

std::vector<Sample> load_samples(const std::string& path, const std::vector<Problem>& problems) {
    std::map<std::string, size_t> index;
    for (size_t i = 0; i < problems.size(); ++i) index[problems[i].task_id] = i;
    const std::string text = read_text_file(path, "samples");
    std::vector<Sample> out;
    for_each_json_line(text, path, "samples", [&](const json& j, size_t line) {
        auto id = j.find("task_id");
        if (id == j.end())
            fail("samples: %s:%zu: missing key 'task_id' (expected {\"task_id\", \"completion\"})", path.c_str(), line);
        auto c = j.find("completion");
        if (c == j.end())
            fail("samples: %s:%zu: missing key 'completion' (expected {\"task_id\", \"completion\"})", path.c_str(), line);
        if (!c->is_string())
            fail("samples: %s:%zu: 'completion' is %s, expected a string", path.c_str(), line, c->type_name());
        std::string tid;
        if (id->is_string()) tid = id->get<std::string>();
        else if (id->is_number_integer()) tid = std::to_string(id->get<int64_t>());
        else fail("samples: %s:%zu: 'task_id' is %s, expected a string", path.c_str(), line, id->type_name());
        auto it = index.find(tid);
        if (it == index.end() && !tid.empty() && tid.find_first_not_of("0123456789") == std::string::npos)
            it = index.find("Mbpp/" + tid);
        if (it == index.end())
            fail("samples: %s:%zu: unknown task_id '%s' (not among the %zu problems loaded; hint: the samples and "
                 "--problems must be the same set, and MBPP has only tasks 11..510 in its test split)",
                 path.c_str(), line, tid.c_str(), problems.size());
        Sample s;
        s.task_id = it->first;
        s.completion = c->get<std::string>();
        s.line = line;
        s.problem = it->second;
        out.push_back(std::move(s));
    });
    if (out.empty()) fail("samples: %s holds no samples", path.c_str());
    return out;
}

std::vector<Sample> canonical_samples(const std::vector<Problem>& problems) {
    std::vector<Sample> out;
    for (size_t i = 0; i < problems.size(); ++i) {
        if (problems[i].canonical_solution.empty()) continue;
        Sample s;
        s.task_id = problems[i].task_id;
        s.completion = problems[i].canonical_solution;
        s.problem = i;
        out.push_back(std::move(s));
    }
    return out;
}

std::string program_source(const Problem& p, const std::string& completion) {
    if (p.language == "python") {
        if (p.completion_includes_prompt) return completion + "\n" + p.test;
        std::string src = p.prompt + completion + "\n" + p.test + "\n";
        if (!p.entry_point.empty()) src += "check(" + p.entry_point + ")";
        return src;
    }
    if (p.completion_includes_prompt) return completion + "\n" + p.test;
    return p.prompt + completion + "\n" + p.test;
}

std::string program_source_with_test(const Problem& p, const std::string& completion, const std::string& test_snippet) {
    const std::string head = p.completion_includes_prompt ? completion : p.prompt + completion;
    return head + "\n" + test_snippet + "\n";
}

SandboxProgram sandbox_program(const std::string& language, const std::string& source) {
    SandboxProgram prog;
    if (language == "python") {
        prog.files = {{"prog.py", source}};
        prog.steps = {{python_executable(), "-I", "prog.py"}};
    } else if (language == "cpp") {
        prog.files = {{"prog.cpp", source}};
        prog.steps = {{"g++", "-std=c++17", "-O0", "-o", "prog", "prog.cpp"}, {"./prog"}};
        prog.first_run_step = 1;
    } else if (language == "js") {
        prog.files = {{"prog.js", source}};
        prog.steps = {{"node", "prog.js"}};
    } else {
        fail("code-eval: language '%s' is not supported (expected python, cpp or js)", language.c_str());
    }
    return prog;
}

}  // namespace llmforge::codegen
