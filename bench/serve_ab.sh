#!/usr/bin/env bash
# Side-by-side server benchmark: llmforge serve and llama.cpp's llama-server on the same GGUF with
# the same slots and threads, one after the other, ROUNDS times (interleaved), each measured by
# bench/serve_bench.mjs. Prints one JSON line per run, then the medians per server.
#   MODEL=m.gguf LLAMA_SERVER=/path/llama-server [LF=build/bin/llmforge] [SLOTS=16] [THREADS=2]
#   [CTX=1024 per slot] [ROUNDS=3] [EXTRA_LF="--no-batch-invariant"] [OUT=results.jsonl]
#   [PLOT=chart.svg] [LF_BASE=/path/to/other/llmforge] bench/serve_ab.sh
# LF_BASE adds a third server to each round, another llmforge build labelled "llmforge-base" (a
# before/after comparison of a change, e.g. the previous commit built in a separate worktree).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
LF=${LF:-$here/../build/bin/llmforge}
MODEL=${MODEL:?MODEL: a GGUF file}
LLAMA_SERVER=${LLAMA_SERVER:-}
LF_BASE=${LF_BASE:-}
SLOTS=${SLOTS:-16} THREADS=${THREADS:-2} CTX=${CTX:-1024} ROUNDS=${ROUNDS:-3}
BENCH_ARGS=${BENCH_ARGS:-}
out=${OUT:-$(mktemp)}
: >"$out"
pid=""
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; [[ -z ${OUT:-} ]] && rm -f "$out"' EXIT

wait_ready() {  # url
    for _ in $(seq 600); do
        curl -sf "$1/health" >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    echo "serve_ab: $1 did not become ready" >&2
    return 1
}

runs=0
run_one() {  # name
    # A fresh port per run: connections the previous server left closing (FIN-WAIT, LAST-ACK)
    # keep its port from being bound again for up to a minute, even with SO_REUSEADDR.
    local port=$((18555 + runs))
    runs=$((runs + 1))
    if curl -s "http://127.0.0.1:$port/health" >/dev/null 2>&1; then
        echo "serve_ab: port $port is already in use (a server left over?)" >&2
        exit 1
    fi
    if [[ $1 == llmforge || $1 == llmforge-base ]]; then
        local bin=$LF
        [[ $1 == llmforge-base ]] && bin=$LF_BASE
        "$bin" serve -m "$MODEL" --port $port --parallel "$SLOTS" --ctx-size "$CTX" -t "$THREADS" ${EXTRA_LF:-} \
            2>/tmp/serve_ab.llmforge.log &
    else
        "$LLAMA_SERVER" -m "$MODEL" --port $port -np "$SLOTS" -c $((CTX * SLOTS)) -t "$THREADS" -tb "$THREADS" \
            >/tmp/serve_ab.llama.log 2>&1 &
    fi
    pid=$!
    if wait_ready "http://127.0.0.1:$port"; then
        node "$here/serve_bench.mjs" --url "http://127.0.0.1:$port" --label "$1" $BENCH_ARGS | tee -a "$out" || true
    fi
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    pid=""
}

for _ in $(seq "$ROUNDS"); do
    run_one llmforge
    [[ -n $LF_BASE ]] && run_one llmforge-base
    [[ -n $LLAMA_SERVER ]] && run_one llama-server
done
node -e '
const lines = require("fs").readFileSync(process.argv[1], "utf8").trim().split("\n").map(JSON.parse);
const med = (xs) => { const s = [...xs].sort((a, b) => a - b); return s[Math.floor(s.length / 2)]; };
const by = {};
for (const l of lines) (by[l.label] ||= []).push(l);
for (const [label, runs] of Object.entries(by)) {
  const tp = Object.keys(runs[0].throughput).map((n) => `${n} streams ${med(runs.map((r) => r.throughput[n].tokens_per_s))} t/s`);
  console.log(`${label} (median of ${runs.length}): ${tp.join(", ")}; TTFT p50 ${med(runs.map((r) => r.ttft.p50_ms))} ms, ` +
    `p99 ${med(runs.map((r) => r.ttft.p99_ms))} ms; prefix cold ${med(runs.map((r) => r.prefix.cold_ms))} ms, ` +
    `shared ${med(runs.map((r) => r.prefix.warm_ms))} ms, speed-up ${med(runs.map((r) => r.prefix.speedup))}x`);
}' "$out"
[[ -n ${PLOT:-} ]] && node "$here/plot_serve.mjs" "$out" "$PLOT"
true
