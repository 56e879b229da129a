#!/usr/bin/env bash
# Builds the text corpora for bench/bench_tokenizer.cpp and bench/tokenize_ab.sh from files that
# every Debian 12 machine with the project's packages (scripts/setup.sh) has, so that no download
# is needed and the bytes are the same on every such machine:
#
#   prose.txt  4 MiB of English prose (documentation text), in this order until full:
#              /usr/share/common-licenses/* (base-files), the Python 3.11 language-reference
#              topics (pydoc_data.topics, libpython3.11-stdlib), the docstrings of the Python
#              stdlib modules /usr/lib/python3.11/**/*.py (tests, site- and dist-packages left
#              out), then the POD documentation of /usr/share/perl/5.36.0/**/*.{pm,pod}
#              (perl-modules-5.36) rendered by Pod::Text at width 76.
#   code.txt   4 MiB of source code: the first 2 MiB of /usr/include/c++/12/** (libstdc++-12-dev)
#              then the first 2 MiB of /usr/lib/python3.11/*.py.
#   one.txt    one byte ("x"): the baseline that removes vocabulary loading from CLI timings.
#
# File lists are sorted bytewise (LC_ALL=C); each part is cut at the last newline before its
# limit; both corpora are checked to be well-formed UTF-8. Prints the sizes and SHA-256 sums.
#
# Usage: bench/make_text_corpus.sh [OUT_DIR]   (default build/corpus; not committed)
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
out="${1:-$here/build/corpus}"
mkdir -p "$out"
export LC_ALL=C
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# ---- prose ----
python3 - "$tmp/py_prose.txt" <<'PY'
import ast, glob, os, sys
parts = []
for f in sorted(glob.glob('/usr/share/common-licenses/*')):
    if os.path.isfile(f):
        parts.append(open(f, encoding='utf-8').read())
from pydoc_data.topics import topics
for k in sorted(topics):
    parts.append(topics[k])
for f in sorted(glob.glob('/usr/lib/python3.11/**/*.py', recursive=True)):
    rel = os.path.relpath(f, '/usr/lib/python3.11')
    if any(p in ('test', 'tests', 'site-packages', 'dist-packages') for p in rel.split(os.sep)):
        continue
    try:
        tree = ast.parse(open(f, encoding='utf-8').read())
    except (SyntaxError, UnicodeDecodeError, ValueError):
        continue
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            d = ast.get_docstring(node)
            if d and len(d) >= 200:  # paragraphs, not one-line summaries
                parts.append(d)
open(sys.argv[1], 'w', encoding='utf-8').write('\n\n'.join(parts) + '\n\n')
PY
find /usr/share/perl/5.36.0 -type f \( -name '*.pm' -o -name '*.pod' \) | sort > "$tmp/pod.list"
perl -MPod::Text -e '
  while (my $f = <STDIN>) {
    chomp $f;
    my $p = Pod::Text->new(utf8 => 1, width => 76, sentence => 0);
    my $s = "";
    $p->output_string(\$s);
    $p->parse_file($f);
    print $s, "\n" if length $s;
  }' < "$tmp/pod.list" > "$tmp/pod_prose.txt"
cat "$tmp/py_prose.txt" "$tmp/pod_prose.txt" > "$tmp/prose_all.txt"

# ---- code ----
find /usr/include/c++/12 -type f | sort | xargs cat > "$tmp/cpp_all.txt"
find /usr/lib/python3.11 -maxdepth 1 -type f -name '*.py' | sort | xargs cat > "$tmp/py_all.txt"

python3 - "$tmp" "$out" <<'PY'
import hashlib, sys
tmp, out = sys.argv[1], sys.argv[2]
MiB = 1 << 20
def head(path, limit):
    b = open(path, 'rb').read()
    if len(b) < limit:
        sys.exit(f'make_text_corpus: {path} has only {len(b)} bytes, need {limit}')
    b = b[:limit]
    return b[:b.rfind(b'\n') + 1]
corpora = {
    'prose.txt': head(f'{tmp}/prose_all.txt', 4 * MiB),
    'code.txt': head(f'{tmp}/cpp_all.txt', 2 * MiB) + head(f'{tmp}/py_all.txt', 2 * MiB),
    'one.txt': b'x',
}
for name, data in corpora.items():
    data.decode('utf-8')  # raises on ill-formed UTF-8
    open(f'{out}/{name}', 'wb').write(data)
    print(f'{out}/{name}: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}')
PY
