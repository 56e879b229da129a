#!/bin/bash
# Container entrypoint of the shop assistant server (deploy/Containerfile; docs/DEPLOY.md).
#
#   entrypoint.sh [LLMFORGE ARGS...]   when the arguments are `serve ... --db FILE ...` and FILE does
#                                      not exist, create it first with `llmforge shop init --db FILE`
#                                      (an existing database is never touched), then exec llmforge
#                                      with the arguments: llmforge becomes PID 1's process, so
#                                      SIGTERM from `podman stop` / the kubelet reaches the server
#                                      directly and it drains in-flight requests (--shutdown-grace).
#   entrypoint.sh healthcheck          exit 0 when GET /health on 127.0.0.1:$LLMFORGE_PORT (default
#                                      8080) answers 200, else 1. Plain bash (/dev/tcp): the slim
#                                      image has no curl. Used by the Containerfile's HEALTHCHECK.
#
# Environment: LLMFORGE_BIN (default /usr/local/bin/llmforge), LLMFORGE_PORT (healthcheck port),
#              LLMFORGE_SHOP_INIT_ARGS (extra `shop init` flags, e.g. "--seed 7"; default none).
set -euo pipefail
bin=${LLMFORGE_BIN:-/usr/local/bin/llmforge}

if [[ ${1:-} == healthcheck ]]; then
    port=${LLMFORGE_PORT:-8080}
    exec 3<>"/dev/tcp/127.0.0.1/$port" || exit 1
    printf 'GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    status_line=""
    IFS= read -r -t 5 status_line <&3 || true
    exec 3<&-
    [[ $status_line =~ ^HTTP/1\.[01]\ 200 ]] && exit 0
    echo "healthcheck: GET /health -> ${status_line:-no answer}" >&2
    exit 1
fi

# The database the server will open: the value of --db (or --db=FILE) in a `serve` command line.
db=""
if [[ ${1:-} == serve ]]; then
    args=("$@")
    for ((i = 1; i < ${#args[@]}; i++)); do
        case ${args[i]} in
            --db) db=${args[i + 1]:-} ;;
            --db=*) db=${args[i]#--db=} ;;
        esac
    done
fi
if [[ -n $db && ! -e $db ]]; then
    echo "entrypoint: $db does not exist; creating it with llmforge shop init" >&2
    # shop init builds a temporary file and renames it into place, so an interrupted init leaves
    # no half database; it refuses to overwrite, so a database another process created meanwhile
    # makes it fail loudly instead of being replaced.
    # shellcheck disable=SC2086  # LLMFORGE_SHOP_INIT_ARGS is a list of flags on purpose
    "$bin" shop init --db "$db" ${LLMFORGE_SHOP_INIT_ARGS:-}
fi
exec "$bin" "$@"
