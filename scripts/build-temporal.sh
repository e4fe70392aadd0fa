#!/usr/bin/env bash
# Builds the official Temporal CLI (which embeds the dev server with SQLite persistence and the Web UI)
# from the Go module proxy into a cache outside the checkout, and reuses it when present.
# Prints the path of the binary on its last line of stdout.
#
#   NIXFLEET_CACHE   cache root (default ~/.cache/nixfleet)
#   TEMPORAL_BIN     use this binary instead (skips the build)
set -euo pipefail

TEMPORAL_CLI_VERSION="${TEMPORAL_CLI_VERSION:-v1.5.1}"
CACHE_ROOT="${NIXFLEET_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/nixfleet}"
DEST_DIR="$CACHE_ROOT/temporal-$TEMPORAL_CLI_VERSION"
DEST="$DEST_DIR/temporal"

log() { echo "[build-temporal] $*" >&2; }

if [[ -n "${TEMPORAL_BIN:-}" ]]; then
  [[ -x "$TEMPORAL_BIN" ]] || { log "TEMPORAL_BIN=$TEMPORAL_BIN is not an executable"; exit 1; }
  echo "$TEMPORAL_BIN"; exit 0
fi
if [[ -x "$DEST" ]] && "$DEST" --version >/dev/null 2>&1; then
  log "reusing $DEST ($("$DEST" --version))"
  echo "$DEST"; exit 0
fi

if [[ -z "${NIXFLEET_FORCE_BUILD:-}" ]] && command -v temporal >/dev/null && temporal --version 2>/dev/null | grep -q 'Server'; then
  log "using temporal from PATH: $(command -v temporal)"
  command -v temporal; exit 0
fi

command -v go >/dev/null || { log "go is not installed; install Go >= 1.25 or put a temporal binary on PATH (TEMPORAL_BIN)"; exit 1; }
mkdir -p "$DEST_DIR"
log "building github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION with $(go version | cut -d' ' -f3) (about 1,450 packages; a few minutes on 2 cores the first time)"
start=$(date +%s)
build_log="$DEST_DIR/build.log"
# `go install -v` names each package as it is compiled: turn that into a progress line.
set +e
(cd "$DEST_DIR" && GOBIN="$DEST_DIR" GOFLAGS="${GOFLAGS:-} -trimpath" go install -v "github.com/temporalio/cli/cmd/temporal@$TEMPORAL_CLI_VERSION" 2>&1) \
  | tee "$build_log" \
  | awk -v total=1458 '
      /^go: downloading/ { d++; if (d % 25 == 1) { printf "[build-temporal] downloading modules (%d)\n", d > "/dev/stderr" } ; next }
      { n++; if (n % 100 == 0) { printf "[build-temporal] compiled %d/~%d packages (%s)\n", n, total, $0 > "/dev/stderr" } }
      END { printf "[build-temporal] compiled %d packages\n", n > "/dev/stderr" }'
rc=${PIPESTATUS[0]}
set -e
if [[ $rc -ne 0 || ! -x "$DEST" ]]; then
  log "build failed (exit $rc); last lines of $build_log:"
  tail -20 "$build_log" >&2
  exit 1
fi
log "built $DEST in $(( $(date +%s) - start ))s"
echo "$DEST"
