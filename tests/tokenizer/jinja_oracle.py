#!/usr/bin/env python3
"""Reference renderer for the Jinja engine's tests: jinja2 configured exactly as Hugging Face
transformers configures it in apply_chat_template (_compile_jinja_template):
ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True) with the loopcontrols
extension and HF's {% generation %} tag (AssistantTracker; here it only renders its body), the
`tojson` filter replaced by json.dumps(ensure_ascii=False, ...), and the globals
raise_exception(msg) and strftime_now(fmt).

Input (stdin): one JSON request, or a JSON array of requests. A request is either
  {"template": str, "context": {...}}            -> template.render(**context)
or the apply_chat_template form
  {"template": str, "messages": [...], "tools": [...] | null, "add_generation_prompt": bool,
   "special_tokens": {"bos_token": ...}, "kwargs": {...}}
which renders like transformers: render(messages=, tools=, documents=None,
add_generation_prompt=, **special_tokens, **kwargs).

Output (stdout): one JSON line per request: {"output": "<rendering>"} or
{"error": "<ExceptionType>: <message>"}. Used only by tests (tests/tokenizer/*_test.cpp).
"""
import json
import sys
from datetime import datetime

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.exceptions import TemplateError
from jinja2.sandbox import ImmutableSandboxedEnvironment


class GenerationTag(jinja2.ext.Extension):
    """transformers' AssistantTracker parses {% generation %}...{% endgeneration %} into a call
    block that returns its body; the index tracking it adds does not change the text."""

    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        call = self.call_method("_render", [], [])
        return jinja2.nodes.CallBlock(call, [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


def raise_exception(message):
    raise TemplateError(message)


def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)


def strftime_now(fmt):
    return datetime.now().strftime(fmt)


def make_env():
    env = ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[GenerationTag, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


def render(env, req):
    template = env.from_string(req["template"])
    if "context" in req:
        return template.render(**req["context"])
    kwargs = dict(req.get("special_tokens") or {})
    kwargs.update(req.get("kwargs") or {})
    return template.render(
        messages=req["messages"],
        tools=req.get("tools"),
        documents=None,
        add_generation_prompt=req.get("add_generation_prompt", False),
        **kwargs,
    )


def main():
    data = json.load(sys.stdin)
    requests = data if isinstance(data, list) else [data]
    env = make_env()
    for req in requests:
        try:
            result = {"output": render(env, req)}
        except Exception as e:  # the tests compare "both failed", whatever the exception
            result = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(result, ensure_ascii=True))


if __name__ == "__main__":
    main()
