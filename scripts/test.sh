#!/usr/bin/env bash
# Set up everything the tests need, then run them all: the system packages the container tests use (podman, buildah,
# runc, mmdebstrap), the prediction log's (postgresql), the browser tests' (Debian's chromium, which Playwright
# drives: its own browser download does not work everywhere), the Spark tests' Java runtime and tmux (a real terminal
# for the progress bar), installed with apt-get when missing; a virtualenv with the package and its dev tools
# (pyspark among them); the notebooks' own test cells; then pytest (arguments are passed to it).
set -euo pipefail
cd "$(dirname "$0")/.."

missing=()
for tool in podman buildah runc mmdebstrap chromium tmux; do command -v "$tool" >/dev/null || missing+=("$tool"); done
compgen -G "/usr/lib/postgresql/*/bin/postgres" >/dev/null || command -v pg_ctl >/dev/null || missing+=(postgresql)
command -v java >/dev/null || missing+=(openjdk-17-jre-headless)  # the Spark tests' local Spark
if [ ${#missing[@]} -gt 0 ]; then
  sudo=$([ "$(id -u)" = 0 ] || echo sudo)
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q "${missing[@]}"
fi

python3 -m venv .venv
.venv/bin/pip install -q -e ".[dev]"
.venv/bin/nbdev_test
.venv/bin/pytest "$@"
