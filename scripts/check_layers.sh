#!/usr/bin/env bash
# Layering check: every layer under src/ includes only itself and the layers below it.
#   scripts/check_layers.sh [source-root]      (default: this repository)
# Scans src/<layer>/**/*.{h,cpp,hpp,cc,inc} for #include "layer/..." (and <layer/...>, and relative
# "../" paths that land in another layer). Prints one line per violation and exits 1; exits 0 when
# the tree is clean, 2 on usage errors. Runs as the CTest test `layering`.
#
# The build enforces the same table (each llmforge_<layer> library exports only its own include
# root, CMakeLists.txt lf_layer); this script is the one written-down table and also catches
# relative includes the compiler would accept. Keep it in step with lf_layer() in CMakeLists.txt.
set -euo pipefail

# Direct dependencies of each layer (the allowed set is the transitive closure plus the layer itself).
declare -A deps=(
    [core]=""
    [kernels]="core"
    [io]="core"
    [tokenizer]="core"
    [model]="kernels io tokenizer"
    [runtime]="model"
    [train]="runtime"
    [serve]="runtime"
    [apps]="runtime serve train"  # the shop assistant (apps/shop) is built on the training corpus's world and trains its classifiers
)

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)}
if [[ ! -d $root/src ]]; then
    echo "check_layers: $root/src: no such directory (usage: $0 [source-root])" >&2
    exit 2
fi

# allowed[L] = L, then its dependencies' allowed sets, in order, without repeats (pure bash: fast).
declare -A allowed=()
closure() {
    local l=$1 d x out
    if [[ -n ${allowed[$l]+x} ]]; then return; fi
    out=" $l "
    for d in ${deps[$l]}; do
        closure "$d"
        for x in ${allowed[$d]}; do
            [[ $out == *" $x "* ]] || out+="$x "
        done
    done
    out=${out# }
    allowed[$l]=${out% }
}
table=""
for l in "${!deps[@]}"; do
    closure "$l"
    table+="$l=${allowed[$l]};"
done

cd "$root"
mapfile -t files < <(find src -type f \( -name '*.h' -o -name '*.cpp' -o -name '*.hpp' -o -name '*.cc' \
    -o -name '*.inc' \) | LC_ALL=C sort)
if ((${#files[@]} == 0)); then
    echo "check_layers: no sources under $root/src" >&2
    exit 2
fi

awk -v table="$table" '
BEGIN {
    n = split(table, rows, ";")
    for (i = 1; i <= n; i++) {
        if (rows[i] == "") continue
        eq = index(rows[i], "=")
        name = substr(rows[i], 1, eq - 1)
        ok[name] = substr(rows[i], eq + 1)
        m = split(ok[name], list, " ")
        for (j = 1; j <= m; j++) may[name, list[j]] = 1
    }
    bad = 0; includes = 0; nfiles = 0
}
# Normalises a/b/../c/./d to a/c/d (no leading "/" expected).
function normalise(p,    parts, k, out, top, i, stack) {
    k = split(p, parts, "/")
    top = 0
    for (i = 1; i <= k; i++) {
        if (parts[i] == "" || parts[i] == ".") continue
        if (parts[i] == "..") { if (top > 0) top--; else return ""; continue }
        stack[++top] = parts[i]
    }
    out = ""
    for (i = 1; i <= top; i++) out = out (i > 1 ? "/" : "") stack[i]
    return out
}
function report(what, target) {
    printf "%s:%d: layer %s includes %s (layer %s); %s may include only: %s\n", \
        FILENAME, FNR, layer, what, target, layer, ok[layer]
    bad++
}
FNR == 1 {
    nfiles++
    split(FILENAME, seg, "/")
    layer = seg[2]
    dir = FILENAME; sub(/\/[^\/]*$/, "", dir)
    if (!(layer in ok) || seg[3] == "") {
        printf "%s:1: file in src/%s, which is not a layer in scripts/check_layers.sh (known: core kernels io tokenizer model runtime train serve)\n", FILENAME, layer
        bad++
        layer = ""
    }
}
layer != "" && /^[ \t]*#[ \t]*include[ \t]*["<]/ {
    line = $0
    sub(/^[ \t]*#[ \t]*include[ \t]*/, "", line)
    close_ch = substr(line, 1, 1) == "\"" ? "\"" : ">"
    line = substr(line, 2)
    end = index(line, close_ch)
    if (end == 0) next
    inc = substr(line, 1, end - 1)
    includes++
    if (substr(inc, 1, 3) == "../" || substr(inc, 1, 2) == "./") {
        if (close_ch != "\"") next
        p = normalise(dir "/" inc)
        split(p, ps, "/")
        if (ps[1] != "src" || ps[3] == "") next  # not inside a layer: not this check s business
        if (!((layer, ps[2]) in may)) report("\"" inc "\" (= " p ")", ps[2])
        next
    }
    slash = index(inc, "/")
    if (slash == 0) next
    target = substr(inc, 1, slash - 1)
    if (!(target in ok)) next  # a system or third-party header, or a path below the including file
    if (!((layer, target) in may)) report(close_ch == "\"" ? "\"" inc "\"" : "<" inc ">", target)
}
END {
    if (bad) {
        printf "check_layers: %d violation(s) in %s/src (table: scripts/check_layers.sh)\n", bad, root > "/dev/stderr"
        exit 1
    }
    printf "check_layers: OK, %d files, %d includes checked\n", nfiles, includes
}
' root="$root" "${files[@]}"
