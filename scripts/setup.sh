#!/usr/bin/env bash
# Installs the Debian 12 packages llmforge builds and tests with, only those that are missing.
# Safe to run repeatedly; needs root (or sudo) only when something is missing.
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config clang libclang-rt-14-dev
      libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libpcre2-dev
      libopenblas-dev libutf8proc-dev libcpp-httplib-dev python3 python3-jinja2 python3-jsonschema
      chromium prometheus zlib1g-dev libopenmpi-dev openmpi-bin libsimde-dev libsqlite3-dev liblinear-dev wamerican
      python3-yaml python3-kubernetes libpng-dev libjpeg-dev python3-pil python3-numpy)
# Node.js runs the server's client tests (openai / LangChain npm packages); Debian's if none.
command -v node >/dev/null && command -v npm >/dev/null || pkgs+=(nodejs npm)
# kubectl renders the Kubernetes manifests in tests (deploy/k8s); Debian's unless one is installed
# (its package conflicts with other kubectl packages).
command -v kubectl >/dev/null || pkgs+=(kubernetes-client)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
    exit 0
fi
echo "setup: installing ${missing[*]}" >&2
SUDO=""
if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: need root to install ${missing[*]} (hint: run as root or install sudo)" >&2; exit 1; }
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
