#!/usr/bin/env bash
# Proves that README's first command works on a machine where nothing was set up by hand: clones this
# repository into a temporary directory and runs `bash scripts/demo.sh --once` (cold), then again
# (warm), inside a private mount namespace that hides everything an earlier run could have left:
#   /nix                 empty (no store, no profiles: set-up must create the layout)
#   /etc/nix             empty (no system nix.conf)
#   /etc/passwd, group   without nixbld* users and groups (and shadow, gshadow)
#   /root (HOME)         empty but for the image's registry settings (~/.npmrc, ~/.config/go/env),
#                        so the Temporal build cache (~/.cache/nixfleet), the Go module and build
#                        caches and the npm cache start from nothing: the Temporal build and npm ci
#                        run in full
#   /tmp                 empty
# Debian packages cannot be hidden this way; apt-get being idempotent covers them.
#
#   bash scripts/fresh-machine-check.sh [--rev REV] [--no-warm]
#
# Prints one line per phase with its time, and a last line `fresh-machine check: ok …` or
# `fresh-machine check: FAILED …`; exits non-zero on failure. Run as root (mount namespaces).
set -euo pipefail
here="$(cd "$(dirname "$0")/.." && pwd)"
rev=HEAD
warm=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --rev) rev="$2"; shift 2 ;;
    --no-warm) warm=0; shift ;;
    --inside) shift; break ;;
    *) echo "usage: $0 [--rev REV] [--no-warm]" >&2; exit 64 ;;
  esac
done
log() { echo "[fresh-machine] $*" >&2; }

if [[ "${1:-}" == "__inside__" ]]; then
  # Inside the private mount namespace: hide the machine's state, then run README's demo command.
  base="$2" src="$3" rev="$4" warm="$5"
  mkdir -p "$base/nix" "$base/etc-nix" "$base/root" "$base/tmp" "$base/etc"
  mount --bind "$base/nix" /nix
  [[ -d /etc/nix ]] && mount --bind "$base/etc-nix" /etc/nix
  for f in passwd group shadow gshadow; do
    [[ -f /etc/$f ]] || continue
    grep -v '^nixbld' "/etc/$f" > "$base/etc/$f" || true
    chmod --reference="/etc/$f" "$base/etc/$f"
    mount --bind "$base/etc/$f" "/etc/$f"
  done
  # The image's registry settings are the machine's, not a previous run's: keep those two files.
  for f in .npmrc .config/go/env; do
    if [[ -f "/root/$f" ]]; then mkdir -p "$(dirname "$base/root/$f")"; cp "/root/$f" "$base/root/$f"; fi
  done
  mount --bind "$base/root" /root
  mount --bind "$base/tmp" /tmp
  chmod 1777 /tmp
  export HOME=/root
  unset TEMPORAL_BIN NIXFLEET_CACHE XDG_CACHE_HOME GOMODCACHE GOCACHE GOPATH npm_config_cache NIXFLEET_STANDIN_ALLOWLIST
  export NIXFLEET_FORCE_BUILD=1   # never a `temporal` from PATH: build it
  # Prove the hiding worked before trusting the result.
  [[ -z "$(ls -A /nix)" ]] || { log "/nix is not empty inside the namespace"; exit 3; }
  ! getent group nixbld >/dev/null || { log "group nixbld still visible"; exit 3; }
  [[ ! -e /root/.cache ]] || { log "/root/.cache still visible"; exit 3; }
  log "hidden: /nix (empty), /etc/nix, nixbld* in /etc/passwd and /etc/group, HOME, Temporal/Go/npm caches, /tmp"
  git clone -q "$src" /tmp/nixfleet
  cd /tmp/nixfleet
  git checkout -q "$rev"
  log "clone of $(git rev-parse --short HEAD) in /tmp/nixfleet"
  run_demo() {
    local label="$1" t0 rc
    t0=$(date +%s)
    set +e
    bash scripts/demo.sh --once > "/tmp/demo-$label.log" 2>&1
    rc=$?
    set -e
    local secs=$(( $(date +%s) - t0 ))
    echo "$label $secs $rc" >> "$base/times"
    grep -E '^\[(setup|build-temporal)\] (done|built|reusing|     node_modules)|^install-system-deps:|^added [0-9]+ packages' "/tmp/demo-$label.log" | sed 's/^/    /' >&2 || true
    sed 's/^/    /' "/tmp/demo-$label.log" | tail -40 >&2
    log "$label: bash scripts/demo.sh --once exited $rc after ${secs}s"
    if [[ $rc -ne 0 ]]; then cp "/tmp/demo-$label.log" "$base/demo-$label.log"; return 1; fi
  }
  run_demo cold
  if [[ "$warm" == 1 ]]; then run_demo warm; fi
  exit 0
fi

[[ "$(id -u)" -eq 0 ]] || { log "must run as root (mount namespaces)"; exit 1; }
command -v unshare >/dev/null || { log "unshare (util-linux) is missing"; exit 1; }
base=$(mktemp -d /var/tmp/nixfleet-fresh.XXXXXX)
cleanup() {
  # Everything the namespace mounted is gone with it; what stays is files under $base.
  rm -rf "$base"
}
trap cleanup EXIT
t0=$(date +%s)
log "starting (work dir $base; a cold run builds Temporal and runs npm ci: several minutes on 2 cores)"
# The checkout may itself sit under a path the namespace hides (a clone in /tmp, or in HOME): copy its
# history into the work dir first (every ref), and pin the revision to a commit here.
sha=$(git -C "$here" rev-parse --verify "$rev^{commit}")
git clone -q --mirror "$here" "$base/src.git"
set +e
unshare --mount --propagation private bash "$0" --inside __inside__ "$base" "$base/src.git" "$sha" "$warm"
rc=$?
set -e
total=$(( $(date +%s) - t0 ))
times=$(awk '{ printf "%s%s %ss (exit %s)", (NR>1?", ":""), $1, $2, $3 }' "$base/times" 2>/dev/null || true)
if [[ $rc -eq 0 ]]; then
  echo "fresh-machine check: ok: ${times} — ${total}s in all"
else
  echo "fresh-machine check: FAILED (exit $rc): ${times:-the demo did not run} — ${total}s in all"
  for f in "$base"/demo-*.log; do [[ -f "$f" ]] && { echo "--- $(basename "$f") (last 60 lines)"; tail -60 "$f"; }; done
fi
exit $rc
