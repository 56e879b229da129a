#!/usr/bin/env bash
# A real Prometheus (Debian's package) scrapes a running llmforge serve: the target must turn
# "up" with no scrape error, and a query must return the server's llmforge_requests_total.
# Run by tests/serve/js/run.sh after the Node.js tests; usable by hand against any server.
#   env: LLMFORGE_URL (http://host:port of the server), LLMFORGE_API_KEY (if the server wants one),
#        PROMETHEUS (default /usr/bin/prometheus), PROM_DEADLINE_S (default 40)
# Prints one line: "prometheus_scrape: ok ..." or "prometheus_scrape: FAIL <reason>" (exit 1).
# HTTP goes through node's fetch: curl is not always installed, node is (the tests need it).
set -euo pipefail
url=${LLMFORGE_URL:?LLMFORGE_URL: the server, e.g. http://127.0.0.1:8080}
prom=${PROMETHEUS:-/usr/bin/prometheus}
deadline_s=${PROM_DEADLINE_S:-40}
fail() { echo "prometheus_scrape: FAIL $*"; exit 1; }
[[ -x $prom ]] || fail "no Prometheus at $prom (hint: apt-get install prometheus, or set PROMETHEUS)"
command -v node >/dev/null || fail "node is not on PATH"
target=${url#*://}
target=${target%%/*}

dir=$(mktemp -d "${TMPDIR:-/tmp}/llmforge-prom.XXXXXX")
pid=""
cleanup() {
    if [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null; then
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        wait "$pid" 2>/dev/null || true
    fi
    rm -rf "$dir"
}
trap cleanup EXIT

# A free port for Prometheus' own HTTP API (asked of the kernel, then released).
port=$(node -e 'const s=require("net").createServer().listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})')
cat >"$dir/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: llmforge
    static_configs:
      - targets: ["$target"]
EOF
"$prom" --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
    --web.listen-address="127.0.0.1:$port" >"$dir/prometheus.log" 2>&1 &
pid=$!

# One request first, so the counter has a series; then poll Prometheus until both checks pass.
status=0
PROM_PID=$pid PROM_API="http://127.0.0.1:$port/api/v1" DEADLINE_MS=$((deadline_s * 1000)) node --input-type=module -e '
const { LLMFORGE_URL: url, LLMFORGE_API_KEY: key, PROM_API: api, PROM_PID, DEADLINE_MS } = process.env;
const until = Date.now() + Number(DEADLINE_MS);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const get = async (u, headers = {}) => {
  const r = await fetch(u, { headers, signal: AbortSignal.timeout(3000) });
  return { status: r.status, json: await r.json().catch(() => null) };
};
const warm = await get(url + "/v1/models", key ? { Authorization: "Bearer " + key } : {}).catch((e) => ({ status: e.message }));
if (warm.status !== 200) { console.log(`FAIL GET ${url}/v1/models answered ${warm.status}, expected 200`); process.exit(1); }
let why = "Prometheus API never answered";
while (Date.now() < until) {
  await sleep(500);
  try { process.kill(Number(PROM_PID), 0); } catch { console.log("FAIL Prometheus exited (see its log below)"); process.exit(1); }
  try {
    const t = await get(api + "/targets");
    const a = t.json?.data?.activeTargets?.find((x) => x.labels?.job === "llmforge");
    if (!a) { why = "target not listed yet"; continue; }
    if (a.health !== "up" || a.lastError !== "") { why = `target health "${a.health}", lastError "${a.lastError}"`; continue; }
    const q = await get(api + "/query?query=llmforge_requests_total");
    const n = q.json?.status === "success" ? q.json.data.result.length : 0;
    if (n === 0) { why = "target up, but llmforge_requests_total returned an empty vector"; continue; }
    console.log(`ok: target ${a.scrapeUrl} up, llmforge_requests_total has ${n} series`);
    process.exit(0);
  } catch (e) { why = "Prometheus API: " + e.message; }
}
console.log(`FAIL after ${DEADLINE_MS / 1000} s: ${why}`);
process.exit(1);
' >"$dir/result" 2>&1 || status=$?
if ((status == 0)); then
    echo "prometheus_scrape: $(cat "$dir/result")"
else
    echo "prometheus_scrape: $(head -c 2000 "$dir/result" | tr '\n' ' ')"
    echo "--- prometheus log (tail) ---"
    tail -15 "$dir/prometheus.log"
    exit 1
fi
