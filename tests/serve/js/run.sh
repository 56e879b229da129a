#!/usr/bin/env bash
# ctest serve_js: starts `llmforge serve` on 127.0.0.1 with the TinyStories 260K model and runs
# the Node.js client tests against it (openai SDK, LangChain, the web page in headless Chromium,
# a Prometheus scrape). The npm packages (package-lock.json) are installed into LLMFORGE_JS_DIR
# once per lock-file change.
#   env: LLMFORGE_BIN, LLMFORGE_SRC (set by ctest), LLMFORGE_ASSETS, LLMFORGE_JS_DIR, LLMFORGE_ARTIFACTS
set -euo pipefail
src=${LLMFORGE_SRC:?LLMFORGE_SRC: the repository root}
bin=${LLMFORGE_BIN:?LLMFORGE_BIN: the llmforge binary}
assets=${LLMFORGE_ASSETS:-$src/../shared/assets}
model_dir=$assets/llama2c-stories260K
if [[ ! -f $model_dir/stories260K.bin ]]; then
    echo "LLMFORGE-ASSET-MISSING: llama2c-stories260K (set LLMFORGE_ASSETS to the shared assets folder)"
    exit 0
fi
here=$src/tests/serve/js
js=${LLMFORGE_JS_DIR:-$src/build/js}
export LLMFORGE_ARTIFACTS=${LLMFORGE_ARTIFACTS:-$src/build/test-artifacts}
mkdir -p "$js" "$LLMFORGE_ARTIFACTS"

# npm packages, pinned by the lock file.
if ! cmp -s "$here/package-lock.json" "$js/package-lock.json" || [[ ! -d $js/node_modules ]]; then
    cp "$here/package.json" "$here/package-lock.json" "$js/"
    if ! (cd "$js" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >"$js/npm.log" 2>&1); then
        echo "serve_js: npm ci failed in $js (needs the npm registry once; see $js/npm.log)"
        tail -5 "$js/npm.log"
        exit 1
    fi
fi
cp "$here"/*.test.mjs "$js/"  # run from beside node_modules so the imports resolve

log=$(mktemp)
"$bin" serve -m "$model_dir/stories260K.bin" --tokenizer "$model_dir/tok512.bin" --host 127.0.0.1 --port 0 \
    --parallel 4 --ctx-size 512 --api-key test-key --admin-key admin-key --max-tokens-cap 512 --threads 1 \
    2>"$log" &
pid=$!
cleanup() {
    kill -KILL "$pid" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT
url=""
for _ in $(seq 300); do  # up to 30 s
    url=$(grep -o 'listening on http://127\.0\.0\.1:[0-9]*' "$log" | head -1 | sed 's/listening on //') || true
    [[ -n $url ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $url ]]; then
    echo "serve_js: the server did not start; its log:"
    cat "$log"
    exit 1
fi
export LLMFORGE_URL=$url LLMFORGE_API_KEY=test-key LLMFORGE_MODEL=stories260K
status=0
(cd "$js" && timeout 600 node --test openai_client.test.mjs langchain.test.mjs \
    webpage.test.mjs prometheus.test.mjs) || status=$?

# Graceful shutdown: SIGTERM ends the process within 10 s with status 0.
kill -TERM "$pid"
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "serve_js: the server did not exit within 10 s of SIGTERM"
    status=1
else
    wait "$pid" || { echo "serve_js: the server exited with status $? after SIGTERM"; status=1; }
fi
if ((status != 0)); then
    echo "--- server log (tail) ---"
    tail -40 "$log"
fi
exit $status
