#!/usr/bin/env bash
# Installs everything NixFleet Deployer needs on a fresh Debian machine, and is quick when run again:
#   1. Debian packages (nix-bin, openssh-server, iproute2, git, …)
#   2. the Temporal CLI dev server, built from the Go module proxy into ~/.cache/nixfleet
#   3. node modules (npm ci, skipped when package-lock.json has not changed since the last run)
set -euo pipefail
cd "$(dirname "$0")/.."
t0=$(date +%s)
step() { echo "[setup] $*" >&2; }

step "1/3 Debian packages"
bash scripts/install-system-deps.sh
bash scripts/install-browser-deps.sh   # Debian's chromium for the dashboard tests

step "2/3 Temporal server"
temporal_bin=$(bash scripts/build-temporal.sh | tail -1)
step "     using $temporal_bin"
# The time-skipping test server (tests/saga/windows.test.ts), from Maven Central once.
if [[ -z "${TEMPORAL_TEST_SERVER:-}" && ! -d "${NIXFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nixfleet}/temporal-test-server/lib" ]]; then
  bash scripts/fetch-test-server.sh >&2
fi

step "3/3 node modules"
stamp=node_modules/.nixfleet-lock-sha
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" && -z "${NIXFLEET_FORCE_NPM_CI:-}" ]]; then
  step "     node_modules matches package-lock.json"
else
  npm ci --no-audit --no-fund --loglevel=error
  echo "$want" > "$stamp"
fi
step "done in $(( $(date +%s) - t0 ))s"
