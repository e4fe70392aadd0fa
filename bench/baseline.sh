#!/usr/bin/env bash
# The baseline the product is measured against: a plain shell loop that runs the same host commands
# with the OpenSSH client, one host after another (read generation, build, nix-env --set,
# switch-to-configuration, verify read).
#
#   bash bench/baseline.sh HOSTS_FILE FLAKE_REF KEY_FILE KNOWN_HOSTS MODE TIMING_FILE
#
# HOSTS_FILE: "name address port" per line. FLAKE_REF: pinned, without #attr. MODE: plain (a new SSH
# connection per command, what a naive loop does), mux (OpenSSH ControlMaster: one connection per
# host, as the product's session pool does, opened by the loop's first command to the host, inside the
# timed run) or mux-persistent (the same, with every master opened before the timed run starts: what an
# operator with ControlPersist masters already up gets). Each remote command brackets itself with bash's
# $EPOCHREALTIME (no fork) and prints "@T start end" on stderr, so the commands' own time on the host
# is known apart from the SSH cost. Prints "TOTAL start end" (epoch seconds) on stdout.
set -euo pipefail
hosts_file=$1 flake=$2 key=$3 known_hosts=$4 mode=$5 timing=$6

opts=(-n -F /dev/null -i "$key" -o IdentitiesOnly=yes -o UserKnownHostsFile="$known_hosts" -o StrictHostKeyChecking=yes
  -o BatchMode=yes -o LogLevel=ERROR -o ConnectTimeout=10)
ctl=
if [ "$mode" = mux ] || [ "$mode" = mux-persistent ]; then
  ctl=$(mktemp -d /tmp/nixfleet-bench-mux-XXXXXX)
  opts+=(-o ControlMaster=auto -o ControlPath="$ctl/%C" -o ControlPersist=120)
fi
close_masters() {
  if [ -n "$ctl" ]; then
    while read -r _n addr port; do
      ssh "${opts[@]}" -p "$port" -O exit "root@$addr" >/dev/null 2>&1 || true
    done <"$hosts_file"
    rm -rf "$ctl"
  fi
}
trap close_masters EXIT

READ='p=/nix/var/nix/profiles/system; l=$(readlink "$p"); s=$(readlink -f "$p"); c=$(readlink -f /run/current-system || true); printf "%s\n%s\n%s\n%s\n" "$p" "$l" "$s" "$c"'
# rt CMD: CMD bracketed by remote timestamps (on stderr), its exit code kept.
rt() { printf '__t0=$EPOCHREALTIME; { %s ; }; __rc=$?; __t1=$EPOCHREALTIME; printf "@T %%s %%s\\n" "$__t0" "$__t1" >&2; exit $__rc' "$1"; }

if [ "$mode" = mux-persistent ]; then
  while read -r _n addr port; do ssh "${opts[@]}" -p "$port" "root@$addr" true; done <"$hosts_file"
fi

start=$EPOCHREALTIME
while read -r name addr port; do
  dest=(-p "$port" "root@$addr")
  ssh "${opts[@]}" "${dest[@]}" "$(rt "$READ")" >/dev/null 2>>"$timing"
  json=$(ssh "${opts[@]}" "${dest[@]}" "$(rt "nix build --no-link --json '$flake#nixosConfigurations.$name.config.system.build.toplevel'")" 2>>"$timing")
  top=$(sed -n 's/.*"out":"\([^"]*\)".*/\1/p' <<<"$json")
  [ -n "$top" ] || { echo "$name: build printed no output path: $json" >&2; exit 1; }
  ssh "${opts[@]}" "${dest[@]}" "$(rt "nix-env -p /nix/var/nix/profiles/system --set $top")" >/dev/null 2>>"$timing"
  ssh "${opts[@]}" "${dest[@]}" "$(rt "$top/bin/switch-to-configuration switch")" >/dev/null 2>>"$timing"
  now=$(ssh "${opts[@]}" "${dest[@]}" "$(rt "$READ")" 2>>"$timing")
  [ "$(sed -n 3p <<<"$now")" = "$top" ] && [ "$(sed -n 4p <<<"$now")" = "$top" ] || { echo "$name: verify failed: $now" >&2; exit 1; }
done <"$hosts_file"
end=$EPOCHREALTIME
echo "TOTAL $start $end"
