#!/usr/bin/env python3
"""Records llama.cpp's verdicts on a corpus of (grammar, text) pairs as a pinned test fixture.

  python3 bench/make_grammar_verdicts.py /work/llamacpp-build/bin/llama-gbnf-validator \
      > tests/runtime/ref/grammar_verdicts.jsonl

Texts: valid-looking seeds per grammar (random JSON, arithmetic, C, chess, lists, English,
Japanese) and random code-point mutations of them (delete, insert, replace, truncate, duplicate),
seeded so the corpus is reproducible. Each line: {"grammar": file under grammars/, "text": ...,
"llama_cpp": accepted?, "pos": llama.cpp's error position in code points, or null}.
tests/runtime/grammar_test.cpp asserts llmforge's grammar_check gives the same verdict and the
same failure offset.
"""
import json
import os
import random
import re
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
rng = random.Random(15)


def rand_string():
    alphabet = "abcXYZ 019_-\"\\/é€😀\t\n"
    s = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 8)))
    return json.dumps(s, ensure_ascii=rng.random() < 0.5)


def rand_json(depth=0):
    r = rng.random()
    if depth > 3 or r < 0.35:
        return rng.choice([str(rng.randint(-1000, 100000)), repr(rng.uniform(-1e3, 1e3)), "true", "false", "null",
                           rand_string(), "1e5", "-0.5E-3", "01", "1.", ".5"])
    if r < 0.65:
        items = [rand_json(depth + 1) for _ in range(rng.randint(0, 4))]
        sep = rng.choice([",", ", ", ",\n  ", " ,"])
        return "[" + sep.join(items) + "]"
    items = [rand_string() + rng.choice([":", ": ", " : "]) + rand_json(depth + 1) for _ in range(rng.randint(0, 4))]
    return "{" + rng.choice([",", ", ", ",\n "]).join(items) + "}"


def seeds(name):
    if name == "json.gbnf":
        return [rand_json() for _ in range(15)] + ['{"k": ' + rand_json(1) + '}' for _ in range(25)] + ['{"a": [1, 2.5e3, "x\\"y", true, null], "b": {}}']
    if name == "json_arr.gbnf":
        return ["[\n" + ",\n".join(rand_json(2) for _ in range(rng.randint(0, 3))) + "]" for _ in range(25)]
    if name == "person_schema.gbnf":
        out = []
        for _ in range(25):
            email = rng.random() < 0.5
            o = '{"name": %s, "age": %d%s, "address": {"street": %s, "city": %s, "zip": "%05d"}, "tags": [%s], "scores": [%s]}' % (
                rand_string(), rng.randint(-5, 120), (', "email": ' + rand_string()) if email else "", rand_string(),
                rand_string(), rng.randint(0, 99999), ", ".join(rand_string() for _ in range(rng.randint(0, 3))),
                ", ".join(str(rng.choice([rng.randint(0, 9), rng.uniform(0, 1)])) for _ in range(rng.randint(0, 3))))
            out.append(o)
        return out
    if name == "arithmetic.gbnf":
        def expr(d=0):
            if d > 2 or rng.random() < 0.4:
                return rng.choice([str(rng.randint(0, 99)), rng.choice(["x", "ab_1", "y2"]) + rng.choice(["", " "])])
            if rng.random() < 0.3:
                return "(" + rng.choice(["", " "]) + expr(d + 1) + ")"
            return expr(d + 1) + rng.choice("+-*/") + expr(d + 1)
        return ["".join(expr() + "=" + rng.choice(["", " "]) + expr(2) + "\n" for _ in range(rng.randint(1, 3)))
                for _ in range(30)]
    if name == "c.gbnf":
        return ["int main(){int x = 1;x = x+2;return x;}",
                "float f(int a){while(a<10){a = a+1;}return a*2;}",
                "char g(){if(a==b){c(1, 2);}else{d = -e;}for(i = 0; i<10; i = i+1){}//hi\n/* x * y */}",
                "int main(){}int h(char z){return (1+2)/3;}"] * 5
    if name == "chess.gbnf":
        moves = ["e4", "e5", "Nf3", "Nc6", "Bb5", "a6", "O-O", "O-O-O", "exd5", "Qxd8+", "e8=Q#", "Rae1", "N1c3", "h8"]
        out = []
        for _ in range(25):
            n = rng.randint(1, 4)
            out.append("".join(f"{i + 1}. {rng.choice(moves)} {rng.choice(moves)}\n" for i in range(n)))
        return out
    if name == "list.gbnf":
        return ["".join("- " + rng.choice(["milk", "eggs", "pain au chocolat", "日本", "a b c"]) + "\n"
                        for _ in range(rng.randint(1, 4))) for _ in range(20)]
    if name == "english.gbnf":
        return [" ".join(rng.choice(["Hello,", "world!", "it's", "42", "x+y=z", "(ok)", "tab\tsep"])
                         for _ in range(rng.randint(1, 6))) for _ in range(20)]
    if name == "japanese.gbnf":
        return ["こんにちは 世界", "日本語の文章です", "カタカナ ひらがな 漢字", "abc 日本", "東京\n大阪"] * 3
    raise ValueError(name)


def mutate(s):
    cps = list(s)
    op = rng.choice(["del", "ins", "rep", "trunc", "dup"])
    alphabet = list("{}[]\",:0123456789 \n\t-+=.abxyzeE\\") + ["é", "😀", "日"]
    if not cps:
        return rng.choice(alphabet)
    i = rng.randrange(len(cps))
    if op == "del":
        del cps[i]
    elif op == "ins":
        cps.insert(i, rng.choice(alphabet))
    elif op == "rep":
        cps[i] = rng.choice(alphabet)
    elif op == "trunc":
        cps = cps[:i]
    else:
        j = rng.randint(i, len(cps))
        cps[i:i] = cps[i:j]
    return "".join(cps)


def verdict(validator, grammar_path, text):
    with tempfile.NamedTemporaryFile("wb", delete=False) as f:
        f.write(text.encode())
        path = f.name
    try:
        out = subprocess.run([validator, grammar_path, path], capture_output=True, text=True, errors="replace").stdout
    finally:
        os.unlink(path)
    if "Input string is valid" in out:
        return True, None
    m = re.search(r"at position (\d+)", out)
    if "Input string is invalid" not in out or not m:
        raise RuntimeError("unexpected validator output: " + out)
    return False, int(m.group(1))


def main():
    validator = sys.argv[1]
    names = ["json.gbnf", "json_arr.gbnf", "person_schema.gbnf", "arithmetic.gbnf", "c.gbnf", "chess.gbnf",
             "list.gbnf", "english.gbnf", "japanese.gbnf"]
    for name in names:
        path = os.path.join(ROOT, "grammars", name)
        texts = []
        for s in seeds(name):
            texts.append(s)
            for _ in range(2):
                texts.append(mutate(s))
        seen = set()
        for t in texts:
            if t in seen or "\0" in t:
                continue
            seen.add(t)
            ok, pos = verdict(validator, path, t)
            print(json.dumps({"grammar": name, "text": t, "llama_cpp": ok, "pos": pos}, ensure_ascii=False))


main()
