// `llmforge chat-template` end to end: the model's own template from tokenizer_config.json or a
// GGUF, --template files, variables, and one clear error line for each bad input. The exact
// renderings of every real template are pinned in tests/tokenizer/chat_template_test.cpp.
#include <gtest/gtest.h>

#include <fstream>

#include "cli_run.h"
#include "io/gguf.h"
#include "test_util.h"

using namespace llmforge;
using namespace llmforge::test;

namespace {

const char* kConversation = R"([
  {"role": "system", "content": "You are a helpful assistant."},
  {"role": "user", "content": "Hello!"},
  {"role": "assistant", "content": "Hi! How can I help?"},
  {"role": "user", "content": "What is 2+2?"}
])";

// ChatML as Qwen documents it: <|im_start|>role\ncontent<|im_end|>\n per message.
const char* kQwenChatml =
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
    "<|im_start|>user\nHello!<|im_end|>\n"
    "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n";

TEST(ChatTemplateCli, ModelFolderTemplate) {
    LF_REQUIRE_HF_TOKENIZER(dir, "qwen3");
    write_file(dir + "/msgs.json", kConversation);
    CliRun r = run_cli("chat-template -m " + q(dir) + " --messages " + q(dir + "/msgs.json"));
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, std::string(kQwenChatml) + "<|im_start|>assistant\n");
    r = run_cli("chat-template -m " + q(dir) + " --messages " + q(dir + "/msgs.json") +
                " --no-generation-prompt");
    EXPECT_EQ(r.out, kQwenChatml) << r.err;
    // Qwen3 with enable_thinking=false opens the turn with an empty think block.
    r = run_cli("chat-template -m " + q(dir) + " --messages " + q(dir + "/msgs.json") +
                " --var enable_thinking=false");
    EXPECT_EQ(r.out, std::string(kQwenChatml) + "<|im_start|>assistant\n<think>\n\n</think>\n\n")
        << r.err;
}

TEST(ChatTemplateCli, TemplateFileAndObjectForm) {
    LF_REQUIRE_ASSET(tmpl, "chat-templates/meta-llama-Llama-3.2-3B-Instruct.jinja");
    LF_REQUIRE_HF_TOKENIZER(dir, "llama3");
    write_file(dir + "/conv.json", R"({"messages": [{"role": "user", "content": "Hi"}],
        "date_string": "28 Nov 2026", "add_generation_prompt": false})");
    const CliRun r = run_cli("chat-template -m " + q(dir + "/tokenizer.json") + " --template " +
                             q(tmpl) + " --messages " + q(dir + "/conv.json"));
    ASSERT_EQ(r.rc, 0) << r.err;
    // Llama 3.2's documented format: BOS, a system header with the dates, then each turn as
    // <|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>.
    EXPECT_EQ(r.out,
              "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
              "Cutting Knowledge Date: December 2023\nToday Date: 28 Nov 2026\n\n<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>");
}

// generate --chat renders the prompt with the template; a template that writes the prompt
// alone, or BOS and the prompt, must give the same greedy story as the plain prompt (BOS is
// added once either way).
TEST(ChatTemplateCli, GenerateChatUsesTheTemplate) {
    LF_REQUIRE_ASSET(model, "llama2c-stories260K/stories260K.bin");
    LF_REQUIRE_ASSET(tok, "llama2c-stories260K/tok512.bin");
    const std::string dir = temp_dir();
    write_file(dir + "/plain.jinja", "{{ messages[-1]['content'] }}");
    write_file(dir + "/bos.jinja", "{{ bos_token }}{{ messages[-1].content }}");
    const std::string base = "generate -m " + q(model) + " --tokenizer " + q(tok) +
                             " --temp 0 -n 60 -p 'Once upon a time'";
    const CliRun plain = run_cli(base);
    ASSERT_EQ(plain.rc, 0) << plain.err;
    for (const char* t : {"/plain.jinja", "/bos.jinja"}) {
        const CliRun chat = run_cli(base + " --chat --chat-template " + q(dir + t));
        ASSERT_EQ(chat.rc, 0) << chat.err;
        EXPECT_EQ(chat.out, plain.out) << t;
        EXPECT_NE(chat.err.find("chat prompt"), std::string::npos) << chat.err;
    }
    expect_one_line_error(run_cli(base + " --chat"), "no chat template");
}

TEST(ChatTemplateCli, BadInputGivesOneClearLine) {
    LF_REQUIRE_ASSET(spm, "llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    const std::string dir = temp_dir();
    write_file(dir + "/msgs.json", kConversation);
    write_file(dir + "/bad.json", "[{\"role\": 'user'}]");
    write_file(dir + "/include.jinja", "{% include 'other.jinja' %}");
    write_file(dir + "/raise.jinja", "{{ raise_exception('Conversation roles must alternate') }}");
    const std::string m = " --messages " + q(dir + "/msgs.json");
    // The llama-spm vocabulary carries no chat template.
    expect_one_line_error(run_cli("chat-template -m " + q(spm) + m), "carries no chat template");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/raise.jinja") +
                                  " --messages " + q(dir + "/bad.json")),
                          "bad.json");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/include.jinja") + m),
                          "include");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/raise.jinja") + m),
                          "Conversation roles must alternate");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/nope.jinja") + m),
                          "nope.jinja");
}

// Hostile nesting, from the template or from the messages file, is one error line, not SIGSEGV.
TEST(ChatTemplateCli, DeepNestingGivesOneClearLine) {
    const std::string dir = temp_dir();
    write_file(dir + "/msgs.json", kConversation);
    const std::string build =
        "{% set ns = namespace(x=[]) %}{% for i in range(50000) %}"
        "{% set ns.x = [ns.x] %}{% endfor %}";
    write_file(dir + "/print.jinja", build + "{{ ns.x }}");
    write_file(dir + "/tojson.jinja", build + "{{ ns.x|tojson }}");
    write_file(dir + "/compare.jinja", build + "{{ ns.x == messages }}");
    write_file(dir + "/plain.jinja", "{{ messages[0].content }}");
    const std::string m = " --messages " + q(dir + "/msgs.json");
    for (const char* t : {"/print.jinja", "/tojson.jinja", "/compare.jinja"}) {
        SCOPED_TRACE(t);
        const CliRun r = run_cli("chat-template --template " + q(dir + t) + m);
        expect_one_line_error(r,
                              ":1:72: a value nests more than 256 levels of lists and dicts; "
                              "hint: the template or its inputs nest data too deeply");
        EXPECT_EQ(r.out, "");
    }
    const std::string deep(20000, '[');
    write_file(dir + "/deep.json", R"([{"role": "user", "content": "hi", "meta": )" + deep +
                                       std::string(20000, ']') + "}]");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/plain.jinja") +
                                  " --messages " + q(dir + "/deep.json")),
                          "deep.json nests 20002 levels deep at byte 20043, expected at most 257");
    // An extra variable 500,000 deep (it used to be copied recursively before any check).
    write_file(dir + "/deep_extra.json", R"({"messages": [{"role": "user", "content": "hi"}], "x": )" +
                                             std::string(500000, '[') + std::string(500000, ']') + "}");
    expect_one_line_error(run_cli("chat-template --template " + q(dir + "/plain.jinja") +
                                  " --messages " + q(dir + "/deep_extra.json")),
                          "nests 500001 levels deep");
    // At the limit it renders (the messages list and the message are two levels).
    write_file(dir + "/limit.json", R"([{"role": "user", "content": "hi", "meta": )" +
                                        std::string(254, '[') + std::string(254, ']') + "}]");
    const CliRun ok = run_cli("chat-template --template " + q(dir + "/plain.jinja") +
                              " --messages " + q(dir + "/limit.json"));
    EXPECT_EQ(ok.rc, 0) << ok.err;
    EXPECT_EQ(ok.out, "hi");
}

}  // namespace
