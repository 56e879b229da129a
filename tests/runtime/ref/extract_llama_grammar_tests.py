#!/usr/bin/env python3
"""Extracts llama.cpp's grammar test cases into JSON fixtures (run by hand, output committed).

  tests/runtime/ref/extract_llama_grammar_tests.py /work/llama.cpp > tests/runtime/ref/llama_grammar_cases.json

Reads tests/test-grammar-integration.cpp (test_grammar(desc, grammar, passing, failing) calls and
the test_build_grammar_fails / missing-root / missing-reference grammars) and
tests/test-grammar-parser.cpp (verify_parsing(grammar, symbols, rules) and verify_failure(grammar)).
test_schema cases are skipped (they go through json_schema_to_grammar, tested elsewhere).
Source: ggerganov/llama.cpp (MIT), Feb 2025 checkout.
"""
import json
import re
import sys

TYPES = ["END", "ALT", "RULE_REF", "CHAR", "CHAR_NOT", "CHAR_RNG_UPPER", "CHAR_ALT", "CHAR_ANY"]


class Lexer:
    """Just enough of C++ tokens: string/char literals (raw too), identifiers, numbers, punctuation."""

    def __init__(self, src, pos):
        self.s, self.i = src, pos

    def skip(self):
        s = self.s
        while self.i < len(s):
            if s[self.i].isspace():
                self.i += 1
            elif s.startswith("//", self.i):
                self.i = s.index("\n", self.i)
            elif s.startswith("/*", self.i):
                self.i = s.index("*/", self.i) + 2
            else:
                break

    def peek(self):
        self.skip()
        return self.s[self.i]

    def expect(self, ch):
        self.skip()
        assert self.s[self.i] == ch, (ch, self.s[self.i:self.i + 40])
        self.i += 1

    def escaped(self, quote):
        s, out = self.s, bytearray()
        self.i += 1
        while s[self.i] != quote:
            c = s[self.i]
            if c == "\\":
                e = s[self.i + 1]
                if e == "x":
                    m = re.match(r"[0-9a-fA-F]+", s[self.i + 2:])
                    out.append(int(m.group(0), 16))
                    self.i += 2 + len(m.group(0))
                    continue
                if e in "uU":
                    n = 4 if e == "u" else 8
                    out += chr(int(s[self.i + 2:self.i + 2 + n], 16)).encode()
                    self.i += 2 + n
                    continue
                out += {"n": b"\n", "t": b"\t", "r": b"\r", "\\": b"\\", '"': b'"', "'": b"'", "0": b"\0"}[e]
                self.i += 2
            else:
                out += c.encode()
                self.i += 1
        self.i += 1
        return bytes(out)

    def string(self):
        """One string expression: adjacent literals concatenated."""
        parts = []
        while True:
            self.skip()
            s = self.s
            if s.startswith('R"', self.i):
                d = s.index("(", self.i)
                delim = s[self.i + 2:d]
                end = s.index(")" + delim + '"', d)
                parts.append(s[d + 1:end].encode())
                self.i = end + len(delim) + 2
            elif s[self.i] == '"':
                parts.append(self.escaped('"'))
            else:
                break
        assert parts, self.s[self.i:self.i + 60]
        return b"".join(parts)

    def string_list(self):
        self.expect("{")
        out = []
        while self.peek() != "}":
            out.append(self.string())
            if self.peek() == ",":
                self.i += 1
        self.i += 1
        return out

    def value(self):
        self.skip()
        s = self.s
        if s[self.i] == "'":
            b = self.escaped("'")
            return ord(b.decode())
        m = re.match(r"\d+", s[self.i:])
        self.i += len(m.group(0))
        return int(m.group(0))


def text(b):
    return b.decode("utf-8")


def main():
    root = sys.argv[1]
    integ = open(f"{root}/tests/test-grammar-integration.cpp", encoding="utf-8").read()
    parser = open(f"{root}/tests/test-grammar-parser.cpp", encoding="utf-8").read()
    out = {"source": "ggerganov/llama.cpp tests (MIT), Feb 2025", "integration": [], "build_fails": [],
           "parsing": [], "parse_failures": []}
    body = integ[integ.index("static void test_simple_grammar"):]
    for m in re.finditer(r"\btest_grammar\(", body):
        lx = Lexer(body, m.end())
        desc = lx.string(); lx.expect(",")
        grammar = lx.string(); lx.expect(",")
        passing = lx.string_list(); lx.expect(",")
        failing = lx.string_list()
        out["integration"].append({"desc": text(desc), "grammar": text(grammar),
                                   "passing": [text(x) for x in passing], "failing": [text(x) for x in failing]})
    for m in re.finditer(r"const std::string (\w+_str) =\s*", body):
        lx = Lexer(body, m.end())
        g = text(lx.string())
        kind = "missing_root" if "missing_root" in body[:m.start()].rsplit("static void", 1)[1] else "fails"
        out["build_fails"].append({"name": m.group(1), "grammar": g, "kind": kind})
    for m in re.finditer(r"\bverify_failure\(", parser[parser.index("int main"):]):
        lx = Lexer(parser, parser.index("int main") + m.end())
        out["parse_failures"].append(text(lx.string()))
    main_body = parser[parser.index("int main"):]
    for m in re.finditer(r"\bverify_parsing\(", main_body):
        lx = Lexer(main_body, m.end())
        grammar = text(lx.string()); lx.expect(",")
        lx.expect("{")
        symbols = {}
        while lx.peek() != "}":
            lx.expect("{"); name = text(lx.string()); lx.expect(","); symbols[name] = lx.value(); lx.expect("}")
            if lx.peek() == ",":
                lx.i += 1
        lx.i += 1
        lx.expect(",")
        lx.expect("{")
        rules = []
        while lx.peek() != "}":
            lx.expect("{")
            lx.skip()
            t = re.match(r"LLAMA_GRETYPE_(\w+)", lx.s[lx.i:])
            lx.i += len(t.group(0)); lx.expect(",")
            rules.append([t.group(1), lx.value()])
            lx.expect("}")
            if lx.peek() == ",":
                lx.i += 1
        lx.i += 1
        out["parsing"].append({"grammar": grammar, "symbols": symbols, "rules": rules})
    json.dump(out, sys.stdout, indent=1, ensure_ascii=False)
    sys.stdout.write("\n")


main()
