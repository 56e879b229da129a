#!/usr/bin/env bash
# CTest `layering_detects_upward_include`: shows that scripts/check_layers.sh catches what it
# should. On a copy of src/ it plants
#   1. an upward include (io -> serve)            : the check must fail and name the file and line;
#   2. a relative upward include (io -> ../serve) : the check must fail and name the file;
#   3. an angle-bracket upward include (kernels -> <model/...>) : must fail;
#   4. a legitimate downward include (model -> core): the check must pass.
#   tests/layering/planted_test.sh [source-root]   (default: this repository)
set -euo pipefail

root=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
check=$root/scripts/check_layers.sh
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
failures=0

fresh_copy() {
    rm -rf "$tmp/src"
    cp -r "$root/src" "$tmp/src"
}
# plant FILE LINE: inserts LINE after the first line of $tmp/FILE (so it is line 2).
plant() {
    [[ -f $tmp/$1 ]] || { echo "FAIL: $1 is missing from the copy" >&2; exit 1; }
    sed -i "1a $2" "$tmp/$1"
}
expect_fail() {  # name, text the output must contain
    local out rc=0
    out=$(bash "$check" "$tmp" 2>&1) || rc=$?
    if ((rc != 1)); then
        echo "FAIL ($1): check_layers exited $rc, expected 1; output:" >&2
        echo "$out" >&2
        failures=$((failures + 1))
    elif ! grep -qF -- "$2" <<<"$out"; then
        echo "FAIL ($1): output does not name '$2'; output:" >&2
        echo "$out" >&2
        failures=$((failures + 1))
    else
        echo "ok ($1): $(grep -F -- "$2" <<<"$out" | head -1)"
    fi
}
expect_pass() {
    local out rc=0
    out=$(bash "$check" "$tmp" 2>&1) || rc=$?
    if ((rc != 0)); then
        echo "FAIL ($1): check_layers exited $rc, expected 0; output:" >&2
        echo "$out" >&2
        failures=$((failures + 1))
    else
        echo "ok ($1): $out"
    fi
}

fresh_copy
plant src/io/gguf.cpp '#include "serve/server.h"'
expect_fail "upward include" 'src/io/gguf.cpp:2: layer io includes "serve/server.h"'

fresh_copy
plant src/io/gguf.cpp '#include "../serve/server.h"'
expect_fail "relative upward include" 'src/io/gguf.cpp:2: layer io includes "../serve/server.h"'

fresh_copy
plant src/kernels/cpu/kernels.h '#include <model/model.h>'
expect_fail "angle-bracket upward include" 'src/kernels/cpu/kernels.h:2: layer kernels includes <model/model.h>'

fresh_copy
plant src/model/model.cpp '#include "core/tensor.h"'
plant src/serve/server.cpp '#include "tokenizer/tokenizer.h"'
expect_pass "downward includes"

if ((failures)); then
    echo "planted_test: $failures case(s) failed" >&2
    exit 1
fi
echo "planted_test: all cases passed"
