# Shared helpers for the stand-in host tools (sourced, not executed).
# Every stand-in host runs its tools with NIXFLEET_STANDIN_CONTROL pointing at its control directory
# (set by the host's sshd `SetEnv`): fault flags, the hang FIFO and the append-only command log.

# Like the real tools (store paths with their dependencies baked in), a stand-in tool does not rely on
# its caller's environment: a transient unit (stand-in systemd-run) has the manager's environment only.
# The host's own settings (its control directory, nix.conf, the stand-in tools) come from
# /run/nixfleet-standin/env, which the host writes at boot (libexec/host-init.sh); the tool then sets
# its own PATH.
if [ -f /run/nixfleet-standin/env ]; then
  . /run/nixfleet-standin/env
fi
if [ -n "${NIXFLEET_STANDIN_BIN:-}" ]; then
  PATH=$NIXFLEET_STANDIN_BIN:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  export PATH
fi
if [ -z "${NIXFLEET_STANDIN_CONTROL:-}" ] || [ ! -d "$NIXFLEET_STANDIN_CONTROL" ]; then
  echo "stand-in: NIXFLEET_STANDIN_CONTROL is not set to the host's control directory" >&2
  exit 127
fi

# standin_log TOOL ARG...: one line per event: epoch-ms TAB tool TAB arg TAB arg...
standin_log() {
  _line="$(date +%s%3N)"
  for _a in "$@"; do
    _line="$_line	$(printf '%s' "$_a" | tr '\t\n' '  ')"
  done
  printf '%s\n' "$_line" >> "$NIXFLEET_STANDIN_CONTROL/commands.log"
}

# standin_fault NAME: prints the content of a fault flag file (empty when unset).
standin_fault() {
  if [ -f "$NIXFLEET_STANDIN_CONTROL/$1" ]; then cat "$NIXFLEET_STANDIN_CONTROL/$1"; fi
}

# standin_activation_fault VERSION: the activation fault (units|script) that applies to a generation
# of VERSION, or nothing. The flag file holds "MODE" (every activation fails) or "MODE VERSION" (only
# activations of generations built from that flake.lock version fail: a bad update, whose rollback works).
standin_activation_fault() {
  _f=$(standin_fault fail-activation)
  [ -n "$_f" ] || return 0
  _mode=${_f%% *}
  _only=
  case $_f in *" "*) _only=${_f#* } ;; esac
  if [ -z "$_only" ] || [ "$_only" = "$1" ]; then printf '%s' "$_mode"; fi
}

# standin_maybe_hang WHAT: blocks while the host's hang-activation flag is set, until the process is
# killed or the test releases it (hangActivation(false) opens the FIFO for writing).
standin_maybe_hang() {
  if [ -f "$NIXFLEET_STANDIN_CONTROL/hang-activation" ]; then
    standin_log hang "$1"
    echo "stand-in: $1 is hanging (hangActivation)" >&2
    read -r _ < "$NIXFLEET_STANDIN_CONTROL/hang.fifo" || true
    standin_log hang-released "$1"
  fi
}

standin_real() {
  printf '%s/%s' "${NIXFLEET_REAL_NIX_BIN:-/usr/bin}" "$1"
}

# standin_collected PATH: whether the host's garbage collector deleted PATH (control/gc-deleted).
standin_collected() {
  [ -s "$NIXFLEET_STANDIN_CONTROL/gc-deleted" ] && grep -qxF "$1" "$NIXFLEET_STANDIN_CONTROL/gc-deleted"
}

# standin_uncollect PATH: a build produced PATH again: it is back on this host.
standin_uncollect() {
  umount "$1" 2>/dev/null || true
  grep -vxF "$1" "$NIXFLEET_STANDIN_CONTROL/gc-deleted" > "$NIXFLEET_STANDIN_CONTROL/gc-deleted.tmp" || true
  mv -f "$NIXFLEET_STANDIN_CONTROL/gc-deleted.tmp" "$NIXFLEET_STANDIN_CONTROL/gc-deleted"
  standin_log gc-rebuilt "$1"
}
