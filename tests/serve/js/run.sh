#!/usr/bin/env bash
# ctest serve_js: starts `llmforge serve` on 127.0.0.1 with the TinyStories 260K model, runs the
# Node.js client tests against it (openai SDK, LangChain, structured output and tool calling with
# zod, the web page in headless Chromium, /v1/embeddings with the shop's retriever),
# then a real Prometheus scrape (../prometheus_scrape.sh), then checks SIGTERM stops the server.
# Then a second server, `serve --app shop` with models/default on a fresh shop database, for the
# shop assistant's page in headless Chromium (shop_page.test.mjs), stopped the same way.
# Then a third, a vision-language model trained here in seconds (`llmforge train-vlm`: decoder +
# mmproj.gguf) with a generated scene (`llmforge gen-vqa`), for images in chat requests through
# the openai package and the chat page (images.test.mjs), stopped the same way.
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
shop_tests=(shop_page.test.mjs)  # against the second server (serve --app shop)
vlm_tests=(images.test.mjs)      # against the third server (a vision-language model)
for t in "${tests[@]}" "${shop_tests[@]}" "${vlm_tests[@]}"; do cp "$here/$t" "$js/"; done
export NODE_PATH=$js/node_modules  # for anything CommonJS

log=$LLMFORGE_ARTIFACTS/serve_js-server.log
# Each log is emptied before its server starts: the redirection happens in the child, and
# wait_url must not read the previous run's address from the old file meanwhile.
: >"$log"
"$bin" serve -m "$model_dir/stories260K.bin" --tokenizer "$model_dir/tok512.bin" --host 127.0.0.1 --port 0 \
    --parallel 4 --ctx-size 512 --api-key test-key --admin-key admin-key --max-tokens-cap 512 --threads 1 \
    --chat-template chatml --embeddings "$src/models/retriever" \
    2>"$log" &
pid=$!
pid2="" shop_tmp=""  # the shop server and its database's folder (later)
pid3="" vlm_tmp=""   # the vision-language model's server and its folder (later)
status=0
show_log() {  # [LOG]: the tail of a server's log (default: the first server's)
    local l=${1:-$log}
    echo "--- server log (tail of $l) ---"
    tail -40 "$l"
}
cleanup() {  # on any exit: no server left behind, no temporary folder
    local p
    for p in "$pid" "$pid2" "$pid3"; do
        if [[ -n $p ]] && kill -0 "$p" 2>/dev/null; then kill -KILL "$p" 2>/dev/null || true; fi
    done
    if [[ -n $shop_tmp ]]; then rm -rf "$shop_tmp"; fi
    if [[ -n $vlm_tmp ]]; then rm -rf "$vlm_tmp"; fi
}
trap cleanup EXIT

# A server prints its address once it accepts connections (port 0: the kernel picks one).
# wait_url LOG PID: sets url, or fails after showing the log.
wait_url() {
    url=""
    for _ in $(seq 300); do  # up to 30 s
        url=$(grep -a -m1 -o 'llmforge serve: listening on http://127\.0\.0\.1:[0-9]*' "$1" | sed 's/.*listening on //') || true
        [[ -n $url ]] && break
        kill -0 "$2" 2>/dev/null || break
        sleep 0.1
    done
    if [[ -z $url ]]; then
        show_log "$1"
        kill -0 "$2" 2>/dev/null || fail "the server exited before it printed 'llmforge serve: listening on http://127.0.0.1:PORT'"
        fail "the server did not print 'llmforge serve: listening on http://127.0.0.1:PORT' within 30 s"
    fi
}
# Graceful shutdown: SIGTERM ends an (idle) server within 10 s with status 0. stop_server PID;
# false after saying what went wrong.
stop_server() {
    kill -TERM "$1"
    for _ in $(seq 100); do
        kill -0 "$1" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$1" 2>/dev/null; then
        echo "serve_js: FAIL the server did not exit within 10 s of SIGTERM"
        return 1
    fi
    local rc=0
    wait "$1" || rc=$?
    ((rc == 0)) || { echo "serve_js: FAIL the server exited with status $rc after SIGTERM"; return 1; }
}

wait_url "$log" "$pid"
echo "serve_js: server at $url (pid $pid)"
export LLMFORGE_URL=$url LLMFORGE_API_KEY=test-key LLMFORGE_MODEL=stories260K

(cd "$js" && timeout 600 node --test "${tests[@]}") || { echo "serve_js: FAIL node --test (status $?)"; status=1; }
timeout 120 "$src/tests/serve/prometheus_scrape.sh" || status=1

stop_server "$pid" || status=1
((status == 0)) || show_log

# The shop assistant's page: serve --app shop (models/default) on a fresh database; the test signs
# in as the first customer with an order (python3's sqlite3 picks it) and asks about that order.
shop_status=0
shop_tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmforge-serve-js.XXXXXX")
log2=$LLMFORGE_ARTIFACTS/serve_js-shop-server.log
: >"$log2"
"$bin" shop init --db "$shop_tmp/shop.db" --seed 2 --customers 40 --orders 120 >"$shop_tmp/init.log" 2>&1 ||
    { cat "$shop_tmp/init.log"; fail "llmforge shop init failed"; }
"$bin" serve -m "$src/models/default" --app shop --db "$shop_tmp/shop.db" --host 127.0.0.1 --port 0 \
    --api-key test-key --threads 1 --ctx-size 512 2>"$log2" &
pid2=$!
wait_url "$log2" "$pid2"
echo "serve_js: shop server at $url (pid $pid2)"
read -r shop_customer shop_order < <(python3 -c '
import sqlite3, sys
row = sqlite3.connect(sys.argv[1]).execute("SELECT customer_id, id FROM orders ORDER BY customer_id, id LIMIT 1").fetchone()
print(*row) if row else None
' "$shop_tmp/shop.db") || true
[[ -n ${shop_order:-} ]] || fail "no order in $shop_tmp/shop.db (python3 with sqlite3 reads it)"
export LLMFORGE_SHOP_URL=$url LLMFORGE_SHOP_CUSTOMER=$shop_customer LLMFORGE_SHOP_ORDER=$shop_order
(cd "$js" && timeout 300 node --test "${shop_tests[@]}") || { echo "serve_js: FAIL node --test shop (status $?)"; shop_status=1; }
stop_server "$pid2" || shop_status=1
((shop_status == 0)) || show_log "$log2"

# Images: a tiny vision-language model (2 training steps: its replies are noise, the tests check the
# request path, not the answers) and one generated scene.
vlm_status=0
vlm_tmp=$(mktemp -d "${TMPDIR:-/tmp}/llmforge-serve-js-vlm.XXXXXX")
log3=$LLMFORGE_ARTIFACTS/serve_js-vlm-server.log
: >"$log3"
"$bin" train-vlm --out "$vlm_tmp/vlm" --steps 2 --scenes 16 --eval-scenes 4 --eval-every 0 --vision-layers 1 --layers 1 \
    --width 64 --vision-width 32 -t 1 >"$vlm_tmp/train.log" 2>&1 || { cat "$vlm_tmp/train.log"; fail "llmforge train-vlm failed"; }
"$bin" gen-vqa --out "$vlm_tmp/scenes" --split test --scenes 1 >"$vlm_tmp/scenes.log" 2>&1 ||
    { cat "$vlm_tmp/scenes.log"; fail "llmforge gen-vqa failed"; }
image=$(find "$vlm_tmp/scenes" -name '*.png' | sort | head -1)
[[ -n $image ]] || fail "llmforge gen-vqa wrote no PNG under $vlm_tmp/scenes"
"$bin" serve -m "$vlm_tmp/vlm" --host 127.0.0.1 --port 0 --api-key test-key --threads 1 --ctx-size 512 2>"$log3" &
pid3=$!
wait_url "$log3" "$pid3"
echo "serve_js: vision-language model server at $url (pid $pid3)"
export LLMFORGE_VLM_URL=$url LLMFORGE_VLM_MODEL=vlm LLMFORGE_VLM_IMAGE=$image
(cd "$js" && timeout 300 node --test "${vlm_tests[@]}") || { echo "serve_js: FAIL node --test images (status $?)"; vlm_status=1; }
stop_server "$pid3" || vlm_status=1
((vlm_status == 0)) || show_log "$log3"

if ((status != 0 || shop_status != 0 || vlm_status != 0)); then
    exit 1
fi
echo "serve_js: all passed (screenshots: $LLMFORGE_ARTIFACTS/webchat.png, $LLMFORGE_ARTIFACTS/shop-page.png," \
    "$LLMFORGE_ARTIFACTS/webchat-image.png)"
