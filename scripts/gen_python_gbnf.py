# Generates grammars/python.gbnf (python3 scripts/gen_python_gbnf.py > grammars/python.gbnf): the hand-written rules below plus three generated families:
#  * identifiers that cannot be Python keywords (a trie of the excluded words),
#  * parameter / keyword-argument chains whose names have strictly increasing first characters
#    (so they are pairwise distinct: a repeated parameter or keyword argument is a SyntaxError).
import keyword, sys

EXCLUDED = sorted(set(keyword.kwlist) | {"__debug__", "__future__"})
FIRST = [chr(c) for c in range(65, 91)] + ["_"] + [chr(c) for c in range(97, 123)]
IDC = set(FIRST) | set("0123456789")

def enc(p):
    return p.replace("_", "-")

def cls(chars):
    chars = sorted(chars)
    out, i = "", 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and ord(chars[j + 1]) == ord(chars[j]) + 1:
            j += 1
        out += chars[i] if i == j else (chars[i] + "-" + chars[j] if j > i + 1 else chars[i] + chars[j])
        i = j + 1
    return "[" + out + "]"

def trie_rules(words, tag):
    """Rules <tag>-<prefix>: the rest of a name after <prefix> (a proper prefix of some word)."""
    rules = []
    prefixes = sorted({w[:i] for w in words for i in range(1, len(w))} | set(words))
    live = {p for p in prefixes if any(w.startswith(p) and w != p for w in words)}
    for p in sorted(live):
        kids = sorted({w[len(p)] for w in words if w.startswith(p) and len(w) > len(p)})
        alts = []
        for k in kids:
            q = p + k
            alts.append(f'"{k}" {tag}-{enc(q)}' if q in live else (f'"{k}" idc' if q not in words else f'"{k}" idc1'))
        rest = IDC - set(kids)
        alts.append(cls(rest) + " idc")
        body = " | ".join(alts)
        rules.append(f"{tag}-{enc(p)} ::= ({body})" + ("" if p in words else "?"))
    return rules, live

def first_alt(c, live, tag):
    return f'"{c}" {tag}-{enc(c)}' if c in live else f'"{c}" idc'

def gen():
    out = []
    rules, live = trie_rules(EXCLUDED, "nm")
    rules2, live2 = trie_rules(EXCLUDED + ["self"], "ns")
    # name starting with a given first char: "c" rest
    out.append("name ::= " + " | ".join(first_alt(c, live, "nm") for c in FIRST if c in live) + " | "
               + cls(set(FIRST) - live) + " idc")
    out.append("idc ::= [a-zA-Z0-9_]*")
    out.append("idc1 ::= [a-zA-Z0-9_]+")
    out += rules
    out += [r for r in rules2 if r.startswith("ns-s")]
    def nm(c, noself=False):
        if noself and c == "s":
            return '"s" ns-s'
        return first_alt(c, live, "nm")
    N = len(FIRST)
    # Ordered chains (linear size): <fam>-g-<i> = one item whose name starts with FIRST[i] or later.
    # keyword arguments in calls: kw-<i> follows a keyword argument whose name starts with FIRST[i]
    out.append('kwargs ::= kw-g-0 | "**" expression')
    for i in range(N):
        nxt = f" | kw-g-{i + 1}" if i + 1 < N else ""
        out.append(f'kw-g-{i} ::= {nm(FIRST[i])} " "? "=" " "? expression kw-{i}{nxt}')
        out.append(f'kw-{i} ::= ("," " "? ({"kw-g-" + str(i + 1) + " | " if i + 1 < N else ""}"**" expression))?')
    # def parameters: pd-<i>-<d>[-s]: after a parameter starting with FIRST[i]; d=1 once a default
    # was given (every later parameter needs one); -s: the first parameter was `self`.
    def tag(i, s):
        return "-s" if s and FIRST[i] < "s" else ""
    for s in (False, True):
        for d in (0, 1):
            for i in range(N):
                if s and FIRST[i] >= "s" and FIRST[i] != "s":
                    pass
                g = f"pg-{i}-{d}" + ("-s" if s else "")
                n = nm(FIRST[i], s)
                t = tag(i, s)
                one = f"{n} annot? dflt pd-{i}-1{t}" if d else f"{n} annot? (dflt pd-{i}-1{t} | pd-{i}-0{t})"
                nxt = f" | pg-{i + 1}-{d}" + ("-s" if s else "") if i + 1 < N else ""
                out.append(f"{g} ::= {one}{nxt}")
                if s and FIRST[i] >= "s":
                    continue
                pd = f"pd-{i}-{d}" + ("-s" if s else "")
                gn = f"pg-{i + 1}-{d}" + ("-s" if s and FIRST[i + 1] < "s" else "") if i + 1 < N else None
                if s and gn and FIRST[i + 1] >= "s":
                    gn = f"pg-{i + 1}-{d}-s"
                out.append(f'{pd} ::= ("," " "? {gn})?' if gn else f'{pd} ::= ""')
    out.append('params ::= pg-0-0 | "self" ("," " "? pg-0-0-s)?')
    # lambda parameters: plain names, same ordering
    out.append("lparams ::= lg-0")
    for i in range(N):
        nxt = f" | lg-{i + 1}" if i + 1 < N else ""
        out.append(f"lg-{i} ::= {nm(FIRST[i])} lp-{i}{nxt}")
        out.append(f'lp-{i} ::= ("," " "? lg-{i + 1})?' if i + 1 < N else f'lp-{i} ::= ""')
    return out

CONTEXTS = {"m": ("l", False, False), "l": ("l", True, False), "f": ("fl", False, True), "fl": ("fl", True, True)}

def statements():
    out = []
    for x, (lx, loop, func) in CONTEXTS.items():
        small = ["small"]
        if loop: small += ['"break"', '"continue"']
        if func: small += ['"return" (" " exprlist)?']
        out += [
            f"stmt-{x} ::= simple-{x} | compound-{x}",
            f'simple-{x} ::= small-{x} (";" " "? small-{x})* ";"? eol',
            f"small-{x} ::= " + " | ".join(small),
            f"compound-{x} ::= if-{x} | while-{x} | for-{x} | try-{x} | with-{x} | funcdef | classdef",
            f'block-{x} ::= ":" (eol INDENT stmt-{x}+ DEDENT | " "+ simple-{x})',
            f'if-{x} ::= "if " cond block-{x} ("elif " cond block-{x})* ("else" block-{x})?',
            f'while-{x} ::= "while " cond block-{lx} ("else" block-{x})?',
            f'for-{x} ::= "for " targets " in " cond ("," " "? cond)* block-{lx} ("else" block-{x})?',
            f'try-{x} ::= "try" block-{x} (handlers-{x} ("else" block-{x})? ("finally" block-{x})? | "finally" block-{x})',
            f'handlers-{x} ::= ("except " cond (" as " name)? block-{x})+ ("except" block-{x})? | "except" block-{x}',
            f'with-{x} ::= "with " withitem ("," " "? withitem)? block-{x}',
        ]
    return out

HEAD = r'''# llmforge: indent-lexer
# A subset of Python 3 (checked against CPython 3.11) whose every complete match compiles with
# `python3 -m py_compile`. Indentation comes from runtime/indent_lexer.h, which turns raw text into
# what this grammar sees: NEWLINE (U+E000) at the end of each logical line, INDENT (U+E001) and
# DEDENT (U+E002) from the leading spaces of the next one, blank and comment-only lines skipped.
#
# Generated by scripts/gen_python_gbnf.py (> grammars/python.gbnf); edit the generator,
# not this file: the rules from `name ::=` on are generated tables.
#
# What the subset leaves out, by design: triple-quoted and byte strings, backslash continuation and
# newlines inside brackets, yield / await / async, global / nonlocal, match, walrus, star targets,
# *args / **kwargs / keyword-only parameters, `import *`, relative imports, annotated assignments,
# `\N{...}` escapes, digit separators, imaginary numbers, nested f-strings. Spacing is a subset too:
# a keyword is followed by one space (`if(x):` is out), operators take at most one space each side,
# no space inside brackets or before a call's parenthesis.
# How the compiler's own checks are kept:
#  * names cannot be keywords (nor __debug__ / __future__): a trie of the excluded words;
#  * return only in def bodies, break / continue only in loop bodies: four statement sets
#    (m: module / class body, l: loop, f: function, fl: loop in a function); a def body starts f,
#    a class body m, a loop body l / fl, a loop's else clause keeps the outer set;
#  * assignment and del targets are names, attributes or subscripts (never calls or literals);
#  * parameters, lambda parameters and keyword arguments have strictly increasing first
#    characters (A-Z < _ < a-z), so none repeats; `self` may come first; defaults run to the end;
#  * positional arguments come before keyword arguments, a generator argument is the only one;
#  * a bare `except:` is last; numbers have no leading zeros; string escapes are complete.
# Not enforced: CPython's limits on nesting (100 indentation levels are the lexer's; 20 nested
# loop / try / with blocks and about 200 nested brackets are the compiler's).

root ::= stmt-m*

NEWLINE ::= "\uE000"
INDENT ::= "\uE001"
DEDENT ::= "\uE002"

eol ::= " "* comment? NEWLINE
comment ::= "#" [^\x00-\x08\x0A-\x1F\x7F\uE000-\uE002]*

small ::= assign | augassign | exprlist | "pass" | import | fromimport | raise | assert | del
assign ::= (targets " "? "=" " "?)+ exprlist
augassign ::= target " "? augop " "? exprlist
augop ::= "+=" | "-=" | "*=" | "/=" | "//=" | "%=" | "**=" | ">>=" | "<<=" | "&=" | "^=" | "|=" | "@="
targets ::= target ("," " "? target)*
target ::= name | name trailer* tend
tend ::= "." name | "[" subscript "]"
import ::= "import " dotted (" as " name)? ("," " "? dotted (" as " name)?)*
fromimport ::= "from " dotted " import " (importnames | "(" importnames ")")
importnames ::= name (" as " name)? ("," " "? name (" as " name)?)*
dotted ::= name ("." name)*
raise ::= "raise" (" " expression (" from " expression)?)?
assert ::= "assert " expression ("," " "? expression)?
del ::= "del " target ("," " "? target)*

funcdef ::= decorators "def " name "(" params? ")" (" -> " cond)? block-f
classdef ::= decorators "class " name ("(" arglist? ")")? block-m
decorators ::= ("@" dotted ("(" arglist? ")")? eol)*
annot ::= ":" " "? cond
dflt ::= " "? "=" " "? expression
withitem ::= cond (" as " target)?

exprlist ::= expression ("," " "? expression)*
expression ::= cond | lambdef
lambdef ::= "lambda" (" " lparams)? ":" " "? expression
cond ::= disj (" if " disj " else " expression)?
disj ::= conj (" or " conj)*
conj ::= inv (" and " inv)*
inv ::= "not " inv | comparison
comparison ::= arith (compop arith)*
compop ::= " "? ("<" | ">" | "==" | ">=" | "<=" | "!=") " "? | " in " | " not in " | " is " | " is not "
arith ::= factor (binop factor)*
binop ::= " "? ("+" | "-" | "*" | "/" | "//" | "%" | "@" | "|" | "^" | "&" | "<<" | ">>" | "**") " "?
factor ::= [-+~] factor | primary
primary ::= (name | paren) trailer* | (strings | list | brace) (("." name | "[" subscript "]") trailer*)? | number | "True" | "False" | "None" | "..."
trailer ::= "." name | "(" callargs? ")" | "[" subscript "]"
callargs ::= expression (compfor | ("," " "? posarg)* ("," " "? kwargs)?) | "*" expression ("," " "? posarg)* ("," " "? kwargs)? | kwargs
arglist ::= posarg ("," " "? posarg)* ("," " "? kwargs)? | kwargs
posarg ::= expression | "*" expression
subscript ::= sliceitem ("," " "? sliceitem)*
sliceitem ::= disj (" if " disj " else " expression | " "? slice)? | lambdef | slice
slice ::= ":" " "? disj? (":" " "? disj?)?
paren ::= "(" (expression ("," (" "? expression ("," " "? expression)* ","?)? | compfor)?)? ")"
list ::= "[" (expression (compfor | ("," " "? expression)*))? "]"
brace ::= "{" (disj (":" " "? expression (compfor | ("," " "? kv)*) | (" if " disj " else " expression)? setrest) | lambdef setrest)? "}"
setrest ::= compfor | ("," " "? expression)*
kv ::= disj ":" " "? expression
compfor ::= " for " cfnames " in " disj (" if " disj)* compfor?
cfnames ::= name ("," " "? name)*

number ::= ("0" | [1-9] [0-9]*) ("." [0-9]*)? exponent? | "0" [xX] [0-9a-fA-F]+
exponent ::= [eE] [-+]? [0-9]+

strings ::= string (" " string)*
string ::= "'" sq* "'" | "\"" dq* "\"" | "r'" rsq* "'" | "r\"" rdq* "\"" | "f'" fsq* "'" | "f\"" fdq* "\""
sq ::= [^\x00-\x1F\x7F'\\\uE000-\uE002] | esc
dq ::= [^\x00-\x1F\x7F"\\\uE000-\uE002] | esc
esc ::= "\\" ([\\'"abfnrtv0-7] | "x" hex hex | "u" hex hex hex hex)
hex ::= [0-9a-fA-F]
rsq ::= [^\x00-\x1F\x7F'\\\uE000-\uE002] | "\\" [^\x00-\x1F\x7F\uE000-\uE002]
rdq ::= [^\x00-\x1F\x7F"\\\uE000-\uE002] | "\\" [^\x00-\x1F\x7F\uE000-\uE002]
fsq ::= [^\x00-\x1F\x7F'\\{}\uE000-\uE002] | esc | "{{" | "}}" | field
fdq ::= [^\x00-\x1F\x7F"\\{}\uE000-\uE002] | esc | "{{" | "}}" | field
field ::= "{" fexpr ("!" [rsa])? (":" [a-zA-Z0-9.<>^=+ ,_%#-]*)? "}"
fexpr ::= fatom (" "? [-+*%] " "? fatom)*
fatom ::= name ftrail* | ("0" | [1-9] [0-9]*)
ftrail ::= "." name | "[" fatom "]" | "(" (fexpr ("," " "? fexpr)*)? ")"
'''

if __name__ == "__main__":
    text = HEAD + "\n" + "\n".join(statements()) + "\n\n" + "\n".join(gen()) + "\n"
    sys.stdout.write(text)
