#!/bin/sh
# `nix-collect-garbage -d` on one stand-in host (run by StandinHost.collectGarbage() inside the host's
# mount and PID namespaces). The store is shared by every host of every fleet on this machine, so the
# host's collector cannot really delete store paths; it does exactly what a real one would decide:
#   1. -d: delete every old generation of the host's profiles (the system profile, Home Manager's);
#   2. the store paths the host knows (its profiles' and roots' targets, /run/current-system, the
#      boot default, every store path in its command log) that are DEAD from the host's own GC roots
#      (its /nix/var/nix/gcroots, its profiles, its processes), as `nix-store --gc --print-dead` says;
#   3. each of those is deleted FOR THIS HOST: an empty read-only directory is bind-mounted over it in
#      the host's mount namespace and it is listed in control/gc-deleted (re-applied at boot by
#      host-init.sh; `nix-env --set` and `nix-store -r` of it fail as for an invalid path; a `nix build`
#      that produces it again brings it back).
# Prints the deleted store paths, one a line.
set -eu
. /run/nixfleet-standin/env
real=$NIXFLEET_REAL_NIX_BIN
ctl=$NIXFLEET_STANDIN_CONTROL
tmp=$(mktemp -d /tmp/nixfleet-standin-gc.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
known=$tmp/known
: > "$known"
for d in /nix/var/nix/profiles /root/.local/state/nix/profiles /root/.local/state/home-manager/gcroots; do
  [ -d "$d" ] || continue
  for l in "$d"/*; do
    if [ -L "$l" ]; then readlink -f "$l" >> "$known" || true; fi
  done
done
readlink -f /run/current-system >> "$known" 2>/dev/null || true
find /nix/var/nix/gcroots -type l -exec readlink -f {} \; >> "$known" 2>/dev/null || true
grep -o '/nix/store/[0-9a-z]\{32\}-[^/[:space:]]*' "$ctl/commands.log" >> "$known" || true
if [ -f "$ctl/boot-default" ]; then cut -d' ' -f2 "$ctl/boot-default" >> "$known"; fi
# 1. -d: old generations of every profile go.
for p in /nix/var/nix/profiles/system /root/.local/state/nix/profiles/home-manager; do
  if [ -L "$p" ]; then "$real/nix-env" -p "$p" --delete-generations old >&2; fi
done
# 2. What the host's collector would delete, among the paths it knows.
"$real/nix-store" --gc --print-dead 2>/dev/null | sort -u > "$tmp/dead"
grep '^/nix/store/' "$known" | sort -u > "$tmp/known-sorted"
comm -12 "$tmp/dead" "$tmp/known-sorted" > "$tmp/gone"
# 3. Gone for this host.
mkdir -p "$ctl/gc-empty"
touch "$ctl/gc-empty-file" "$ctl/gc-deleted"
while read -r p; do
  [ -n "$p" ] || continue
  if grep -qxF "$p" "$ctl/gc-deleted"; then continue; fi
  if [ -d "$p" ]; then mount --bind -o ro "$ctl/gc-empty" "$p"; else mount --bind -o ro "$ctl/gc-empty-file" "$p"; fi
  echo "$p" >> "$ctl/gc-deleted"
  echo "$p"
done < "$tmp/gone"
