#!/usr/bin/env bash
# ctest serve_js: starts `llmforge serve` on 127.0.0.1 with the TinyStories 260K model, runs the
# Node.js client tests against it (openai SDK, LangChain, structured output and tool calling with
# zod, the web page in headless Chromium, /v1/embeddings with the shop's retriever),
# then a real Prometheus scrape (../prometheus_scrape.sh), then checks SIGTERM stops the server.
#   env: LLMFORGE_BIN      the llmforge binary (set by ctest)
#        LLMFORGE_SRC      the repository root (set by ctest)
#        LLMFORGE_ASSETS   shared assets folder (default $LLMFORGE_SRC/../shared/assets)
#        LLMFORGE_JS_DIR   where the npm packages are installed (default $LLMFORGE_SRC/build/js)
#        LLMFORGE_ARTIFACTS screenshots and the server log (default $LLMFORGE_SRC/build/test-artifacts)
# The npm packages (package-lock.json, exact versions) are installed with `npm ci` only when the
# lock file changed since the last install; that one step needs the npm registry.
set -euo pipefail
src=${LLMFORGE_SRC:?LLMFORGE_SRC: the repository root}
bin=${LLMFORGE_BIN:?LLMFORGE_BIN: the llmforge binary}
assets=${LLMFORGE_ASSETS:-$src/../shared/assets}
model_dir=$assets/llama2c-stories260K
if [[ ! -f $model_dir/stories260K.bin || ! -f $model_dir/tok512.bin ]]; then
    echo "LLMFORGE-ASSET-MISSING: llama2c-stories260K (looked in $model_dir; set LLMFORGE_ASSETS to the shared assets folder)"
    exit 0
fi
fail() { echo "serve_js: FAIL $*"; exit 1; }
[[ -x $bin ]] || fail "no llmforge binary at $bin"
command -v node >/dev/null || fail "node is not on PATH (hint: scripts/setup.sh installs Debian's nodejs)"
node_major=$(node -p 'process.versions.node.split(".")[0]')
((node_major >= 18)) || fail "node $(node --version) is too old; the tests need Node.js 18 or newer"

here=$src/tests/serve/js
js=${LLMFORGE_JS_DIR:-$src/build/js}
export LLMFORGE_ARTIFACTS=${LLMFORGE_ARTIFACTS:-$src/build/test-artifacts}
mkdir -p "$js" "$LLMFORGE_ARTIFACTS"

# npm packages, pinned by the lock file; the stamp holds the lock file's hash at the last install.
stamp=$js/.installed-lock.sha256
want=$(sha256sum "$here/package-lock.json" | cut -d' ' -f1)
if [[ ! -d $js/node_modules || ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
    command -v npm >/dev/null || fail "npm is not on PATH (hint: scripts/setup.sh installs Debian's npm)"
    echo "serve_js: installing the npm packages into $js (npm ci)"
    rm -f "$stamp"
    cp "$here/package.json" "$here/package-lock.json" "$js/"
    if ! (cd "$js" && timeout 600 npm ci --no-audit --no-fund --loglevel=error >"$js/npm.log" 2>&1); then
        tail -5 "$js/npm.log"
        fail "npm ci failed in $js (it needs the npm registry once; full log: $js/npm.log)"
    fi
    echo "$want" >"$stamp"
fi
# ESM ignores NODE_PATH: the tests run from beside node_modules so their imports resolve.
tests=(openai_client.test.mjs langchain.test.mjs structured_output.test.mjs webpage.test.mjs embeddings.test.mjs)
for t in "${tests[@]}"; do cp "$here/$t" "$js/"; done
export NODE_PATH=$js/node_modules  # for anything CommonJS

log=$LLMFORGE_ARTIFACTS/serve_js-server.log
"$bin" serve -m "$model_dir/stories260K.bin" --tokenizer "$model_dir/tok512.bin" --host 127.0.0.1 --port 0 \
    --parallel 4 --ctx-size 512 --api-key test-key --admin-key admin-key --max-tokens-cap 512 --threads 1 \
    --chat-template chatml --embeddings "$src/models/retriever" \
    2>"$log" &
pid=$!
status=0
show_log() {
    echo "--- server log (tail of $log) ---"
    tail -40 "$log"
}
cleanup() {  # on any exit: no server left behind
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid" 2>/dev/null || true; fi
}
trap cleanup EXIT

# The server prints its address once it accepts connections (port 0: the kernel picks one).
url=""
for _ in $(seq 300); do  # up to 30 s
    url=$(grep -m1 -o 'llmforge serve: listening on http://127\.0\.0\.1:[0-9]*' "$log" | sed 's/.*listening on //') || true
    [[ -n $url ]] && break
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if [[ -z $url ]]; then
    show_log
    kill -0 "$pid" 2>/dev/null || fail "the server exited before it printed 'llmforge serve: listening on http://127.0.0.1:PORT'"
    fail "the server did not print 'llmforge serve: listening on http://127.0.0.1:PORT' within 30 s"
fi
echo "serve_js: server at $url (pid $pid)"
export LLMFORGE_URL=$url LLMFORGE_API_KEY=test-key LLMFORGE_MODEL=stories260K

(cd "$js" && timeout 600 node --test "${tests[@]}") || { echo "serve_js: FAIL node --test (status $?)"; status=1; }
timeout 120 "$src/tests/serve/prometheus_scrape.sh" || status=1

# Graceful shutdown: SIGTERM ends the (idle) server within 10 s with status 0.
kill -TERM "$pid"
for _ in $(seq 100); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
    echo "serve_js: FAIL the server did not exit within 10 s of SIGTERM"
    status=1
else
    rc=0
    wait "$pid" || rc=$?
    ((rc == 0)) || { echo "serve_js: FAIL the server exited with status $rc after SIGTERM"; status=1; }
fi
if ((status != 0)); then
    show_log
else
    echo "serve_js: all passed (screenshot: $LLMFORGE_ARTIFACTS/webchat.png)"
fi
exit $status
