#!/usr/bin/env bash
# nixfleet-allowlist: the forced command for the NixFleet deployer's SSH key.
#
# Install on every host, for the deployer's key only, in root's ~/.ssh/authorized_keys:
#
#   restrict,command="/etc/nixfleet/nixfleet-allowlist.sh" ssh-ed25519 AAAA… nixfleet-deployer
#
# sshd then runs this script instead of whatever the key's holder asked for; the request is in
# SSH_ORIGINAL_COMMAND. The script runs ONLY the deploy verbs NixFleet uses (src/hosts/operations.ts),
# each matched as a whole command line whose arguments are single-quoted words of a strict character
# set, and runs them with an argument vector (no shell sees the arguments). Everything else is refused
# (exit 126). Every request is logged, allowed or refused, to $NIXFLEET_ALLOWLIST_LOG
# (default /var/log/nixfleet-allowlist.log): epoch-ms TAB allow|deny TAB verb TAB the request.
#
# Allowed (Q = a single-quoted word):
#   the two fixed read scripts (system profile / Home Manager profile), byte for byte
#   { exec nix build --no-link --json Q; } 9>B  Q = <flake ref>#(nixos|home)Configurations."<attr>".<toplevel|activationPackage>,
#                                              B = /run/nixfleet-build.lock or <HM profiles dir>/nixfleet-build.lock
#                                              (the build holds B open, so that a cancel or timeout can stop it)
#   nix store diff-closures Q Q                two store paths (what will change: a read)
#   nix path-info --json -S Q Q                two store paths (their closure sizes: a read)
#   nix-env -p Q --set Q                       profile = /nix/var/nix/profiles/system, a store path
#   nix-env -p Q --switch-generation Q         profile = /nix/var/nix/profiles/system, a number
#   { flock -n 9 || exit 75; exec Q/bin/switch-to-configuration switch|boot; } 9>/run/nixfleet-activation.lock
#                                              Q = a store path or /nix/var/nix/profiles/system-<N>-link
#   { flock -n 9 || exit 75; exec Q/activate; } 9>L, the same around home-manager switch --flake F
#                                              L = <HM profiles dir>/nixfleet-activation.lock
#   fuser -k -KILL /run/nixfleet-activation.lock, fuser -k -KILL L   stop an activation by its lock
#   fuser -k -KILL /run/nixfleet-build.lock, fuser -k -KILL B        stop a build by its lock
#   test -x Q/bin/switch-to-configuration      Q = a store path (a rollback whose generation link is gone)
#   nix-store --add-root R -r Q, rm -f R       R = a deployer GC root: /nix/var/nix/gcroots/nixfleet/<name>,
#                                              or <HM profiles dir>/nixfleet-gcroots/<name>; Q = a store path
#   find R -mindepth 1 -maxdepth 2 ! -type d -mmin +M ! -name 'N-*' -print -delete
#                                              the sweep: R = a deployer GC root directory (above), M >= 60
#                                              minutes, N = the current deployment's root name base
#   test -x Q/activate                         Q = a store path (Home Manager activation package)
#   readlink Q                                 Q = /nix/var/nix/profiles/system-<N>-link
#   readlink R                                 R = a deployer GC root (above): the recorded store path,
#                                              re-read after a wave's workflow ended without its result
#   nixos-rebuild switch --flake Q             Q = <flake ref>#<attr> (the documented commands.switch)
#   systemctl --failed --no-legend --plain --no-pager   (the post-switch health check)
#   the generations listing of the system or a Home Manager profile (a fixed script, the profile as $1)
#   systemctl stop Q                           Q = nixfleet-rollback-<deployment>.timer (connectivity confirmation)
#   systemctl is-active Q                      Q = nixfleet-rollback-<deployment>.service
#   systemd-run … -- /bin/sh -c …              the confirmed activation: rebuilt here from its parts
#                                              (unit, target and recorded store paths, timeout,
#                                              generation) and compared byte for byte with the request,
#                                              then run from the rebuilt parts
#   the boot state (a fixed script: boot id, /run/booted-system, /run/current-system and a target
#   toplevel Q, each with its kernel, initrd and kernel-modules), Q = a store path
#   systemctl reboot, guarded by the boot id read before (a fixed script, Q = a boot id)
#   a health-check command listed, byte for byte, one per line, in $NIXFLEET_ALLOWLIST_CHECKS
#   (default /etc/nixfleet/allowed-checks): the fleet file's healthChecks, vetted by the host's owner
set -u
export LC_ALL=C

cmd=${SSH_ORIGINAL_COMMAND-}
log_file=${NIXFLEET_ALLOWLIST_LOG:-/var/log/nixfleet-allowlist.log}

log() { # verdict verb
  local line
  line="$(date +%s%3N)	$1	$2	${cmd//[$'\t\n\r']/ }"
  printf '%s\n' "$line" >>"$log_file" 2>/dev/null || true
}
deny() {
  log deny "${1:-unknown}"
  printf 'nixfleet-allowlist: refused: %s\n' "${cmd:0:300}" >&2
  exit 126
}

[ -n "$cmd" ] || deny empty
case $cmd in *$'\n'* | *$'\r'*) deny multiline ;; esac  # (a bash string cannot hold NUL)

# Word patterns (inside single quotes; none of them admits a quote).
STORE="/nix/store/[0-9abcdfghijklmnpqrsvwxyz]{32}-[A-Za-z0-9+._?=-]{1,211}"
SYSPROFILE="/nix/var/nix/profiles/system"
GENLINK="$SYSPROFILE-[0-9]{1,10}-link"
REFCH="[A-Za-z0-9:/._~?=&%+@,-]"
ATTR="[A-Za-z0-9_][A-Za-z0-9_@+.-]{0,127}"
INSTALLABLE="${REFCH}{1,2048}#(nixosConfigurations\.\"${ATTR}\"\.config\.system\.build\.toplevel|homeConfigurations\.\"${ATTR}\"\.activationPackage)"
FLAKE="${REFCH}{1,2048}#${ATTR}"

READ_NIXOS="set -e; p='$SYSPROFILE'; l=\$(readlink \"\$p\"); s=\$(readlink -f \"\$p\"); c=\$(readlink -f /run/current-system || true); printf '%s\\n%s\\n%s\\n%s\\n' \"\$p\" \"\$l\" \"\$s\" \"\$c\""
READ_HM="set -e; st=\${XDG_STATE_HOME:-\$HOME/.local/state}; if [ -d \"\$st/nix/profiles\" ]; then p=\$st/nix/profiles/home-manager; else p=/nix/var/nix/profiles/per-user/\$USER/home-manager; fi; l=\$(readlink \"\$p\"); s=\$(readlink -f \"\$p\"); c=\$(readlink -f \"\$st/home-manager/gcroots/current-home\" || true); printf '%s\\n%s\\n%s\\n%s\\n' \"\$p\" \"\$l\" \"\$s\" \"\$c\""

if [ "$cmd" = "$READ_NIXOS" ]; then
  log allow read-nixos
  exec /bin/sh -c "$READ_NIXOS"
fi
if [ "$cmd" = "$READ_HM" ]; then
  log allow read-home-manager
  exec /bin/sh -c "$READ_HM"
fi
if [[ $cmd =~ ^nix-env\ -p\ \'($SYSPROFILE)\'\ --set\ \'($STORE)\'$ ]]; then
  p=${BASH_REMATCH[1]} s=${BASH_REMATCH[2]}
  log allow nix-env-set
  exec nix-env -p "$p" --set "$s"
fi
if [[ $cmd =~ ^nix-env\ -p\ \'($SYSPROFILE)\'\ --switch-generation\ \'([0-9]{1,10})\'$ ]]; then
  p=${BASH_REMATCH[1]} n=${BASH_REMATCH[2]}
  log allow nix-env-switch-generation
  exec nix-env -p "$p" --switch-generation "$n"
fi
# What a switch will change (reads only): the closure difference and the closures' sizes of two store paths.
if [[ $cmd =~ ^nix\ store\ diff-closures\ \'($STORE)\'\ \'($STORE)\'$ ]]; then
  a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
  log allow nix-diff-closures
  exec nix store diff-closures "$a" "$b"
fi
if [[ $cmd =~ ^nix\ path-info\ --json\ -S\ \'($STORE)\'\ \'($STORE)\'$ ]]; then
  a=${BASH_REMATCH[1]} b=${BASH_REMATCH[2]}
  log allow nix-closure-size
  exec nix path-info --json -S "$a" "$b"
fi
# Home Manager profiles' directories (a profile's activations take the lock beside it).
HMDIR="(/root/\.local/state/nix/profiles|/home/[A-Za-z0-9._-]{1,64}/\.local/state/nix/profiles|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64})"
# A build holds its lock file open while it runs (no flock: builds may overlap), so that a cancelled
# or timed-out build can be stopped by it; sshd does not signal a forced-command session.
if [[ $cmd =~ ^\{\ exec\ nix\ build\ --no-link\ --json\ \'($INSTALLABLE)\'\;\ \}\ 9\>(/run/nixfleet-build\.lock|\'$HMDIR/nixfleet-build\.lock\')$ ]]; then
  a=${BASH_REMATCH[1]} l=${BASH_REMATCH[3]}
  l=${l#\'} l=${l%\'}
  case $l in */../* | */./*) deny nix-build ;; esac
  log allow nix-build
  exec 9>"$l" || exit 1
  exec nix build --no-link --json "$a"
fi
if [ "$cmd" = "fuser -k -KILL /run/nixfleet-build.lock" ]; then
  log allow stop-build
  exec fuser -k -KILL /run/nixfleet-build.lock
fi
if [[ $cmd =~ ^fuser\ -k\ -KILL\ \'($HMDIR)/nixfleet-build\.lock\'$ ]]; then
  l=${BASH_REMATCH[1]}/nixfleet-build.lock
  case $l in */../* | */./*) deny stop-build ;; esac
  log allow stop-build
  exec fuser -k -KILL "$l"
fi
# A cancelled or timed-out activation is stopped by its lock (sshd does not signal forced-command
# sessions, and a transient unit is not the session's): every process holding the lock is killed.
if [ "$cmd" = "fuser -k -KILL /run/nixfleet-activation.lock" ]; then
  log allow stop-activation
  exec fuser -k -KILL /run/nixfleet-activation.lock
fi
if [[ $cmd =~ ^fuser\ -k\ -KILL\ \'($HMDIR)/nixfleet-activation\.lock\'$ ]]; then
  l=${BASH_REMATCH[1]}/nixfleet-activation.lock
  case $l in */../* | */./*) deny stop-activation ;; esac
  log allow stop-activation
  exec fuser -k -KILL "$l"
fi
# Activations run under the host's activation lock (two never run at once; exit 75 when it is held).
if [[ $cmd =~ ^\{\ flock\ -n\ 9\ \|\|\ exit\ 75\;\ exec\ \'($STORE|$GENLINK)\'/bin/switch-to-configuration\ (switch|boot)\;\ \}\ 9\>/run/nixfleet-activation\.lock$ ]]; then
  t=${BASH_REMATCH[1]} a=${BASH_REMATCH[2]}
  if [ "$a" = boot ]; then log allow switch-to-configuration-boot; else log allow switch-to-configuration; fi
  exec 9>/run/nixfleet-activation.lock || exit 75
  flock -n 9 || exit 75
  exec "$t/bin/switch-to-configuration" "$a"
fi
# Home Manager activations, under the profile's lock.
if [[ $cmd =~ ^\{\ flock\ -n\ 9\ \|\|\ exit\ 75\;\ exec\ \'($STORE)\'/activate\;\ \}\ 9\>\'($HMDIR)/nixfleet-activation\.lock\'$ ]]; then
  t=${BASH_REMATCH[1]} l=${BASH_REMATCH[3]}/nixfleet-activation.lock
  case $l in */../* | */./*) deny hm-activate ;; esac
  log allow hm-activate
  exec 9>"$l" || exit 75
  flock -n 9 || exit 75
  exec "$t/activate"
fi
if [[ $cmd =~ ^\{\ flock\ -n\ 9\ \|\|\ exit\ 75\;\ exec\ home-manager\ switch\ --flake\ \'($FLAKE)\'\;\ \}\ 9\>\'($HMDIR)/nixfleet-activation\.lock\'$ ]]; then
  f=${BASH_REMATCH[1]} l=${BASH_REMATCH[3]}/nixfleet-activation.lock
  case $l in */../* | */./*) deny home-manager-switch ;; esac
  log allow home-manager-switch
  exec 9>"$l" || exit 75
  flock -n 9 || exit 75
  exec home-manager switch --flake "$f"
fi
if [[ $cmd =~ ^test\ -x\ \'($STORE)\'/bin/switch-to-configuration$ ]]; then
  t=${BASH_REMATCH[1]}
  log allow test-toplevel
  exec test -x "$t/bin/switch-to-configuration"
fi
ROOTNAME="[A-Za-z0-9][A-Za-z0-9._-]{0,159}"
GCROOT="(/nix/var/nix/gcroots/nixfleet|/root/\.local/state/nix/profiles/nixfleet-gcroots|/home/[A-Za-z0-9._-]{1,64}/\.local/state/nix/profiles/nixfleet-gcroots|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64}/nixfleet-gcroots)/$ROOTNAME"
if [[ $cmd =~ ^nix-store\ --add-root\ \'($GCROOT)\'\ -r\ \'($STORE)\'$ ]]; then
  r=${BASH_REMATCH[1]} s=${BASH_REMATCH[3]}
  case $r in */../* | */./*) deny gc-root ;; esac
  log allow gc-root-add
  exec nix-store --add-root "$r" -r "$s"
fi
if [[ $cmd =~ ^rm\ -f\ \'($GCROOT)\'$ ]]; then
  r=${BASH_REMATCH[1]}
  case $r in */../* | */./*) deny gc-root ;; esac
  log allow gc-root-remove
  exec rm -f "$r"
fi
# Switch markers (a deployment attempt's switch reached the profile step): beside the GC roots.
GCDIR="(/nix/var/nix/gcroots/nixfleet|/root/\.local/state/nix/profiles/nixfleet-gcroots|/home/[A-Za-z0-9._-]{1,64}/\.local/state/nix/profiles/nixfleet-gcroots|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64}/nixfleet-gcroots)/switches"
if [[ $cmd =~ ^mkdir\ -p\ \'($GCDIR)\'\ \&\&\ touch\ \'($GCDIR)/($ROOTNAME)\'$ ]]; then
  d=${BASH_REMATCH[1]} d2=${BASH_REMATCH[3]} n=${BASH_REMATCH[5]}
  [ "$d" = "$d2" ] || deny switch-marker
  case $n in . | ..) deny switch-marker ;; esac
  log allow switch-marker-write
  mkdir -p "$d" && exec touch "$d/$n"
  exit 1
fi
if [[ $cmd =~ ^test\ -e\ \'($GCDIR)/($ROOTNAME)\'$ ]]; then
  d=${BASH_REMATCH[1]} n=${BASH_REMATCH[3]}
  case $n in . | ..) deny switch-marker ;; esac
  log allow switch-marker-test
  exec test -e "$d/$n"
fi
if [[ $cmd =~ ^rm\ -f\ \'($GCDIR)/($ROOTNAME)\'$ ]]; then
  d=${BASH_REMATCH[1]} n=${BASH_REMATCH[3]}
  case $n in . | ..) deny switch-marker ;; esac
  log allow switch-marker-remove
  exec rm -f "$d/$n"
fi
# The sweep of stale roots and markers (src/hosts/operations.ts sweepCommand): only the deployer's
# own directory, entries (never directories) older than an hour at least, the current deployment kept.
GCBASE="(/nix/var/nix/gcroots/nixfleet|/root/\.local/state/nix/profiles/nixfleet-gcroots|/home/[A-Za-z0-9._-]{1,64}/\.local/state/nix/profiles/nixfleet-gcroots|/nix/var/nix/profiles/per-user/[A-Za-z0-9._-]{1,64}/nixfleet-gcroots)"
if [[ $cmd =~ ^find\ \'($GCBASE)\'\ -mindepth\ 1\ -maxdepth\ 2\ !\ -type\ d\ -mmin\ \+([0-9]{2,8})\ !\ -name\ \'($ROOTNAME)-\*\'\ -print\ -delete$ ]]; then
  d=${BASH_REMATCH[1]} m=${BASH_REMATCH[3]} k=${BASH_REMATCH[4]}
  [ "$m" -ge 60 ] || deny gc-sweep
  case $d/$k in */../* | */./* | *..) deny gc-sweep ;; esac
  log allow gc-sweep
  exec find "$d" -mindepth 1 -maxdepth 2 ! -type d -mmin "+$m" ! -name "$k-*" -print -delete
fi
if [[ $cmd =~ ^test\ -x\ \'($STORE)\'/activate$ ]]; then
  t=${BASH_REMATCH[1]}
  log allow test-activate
  exec test -x "$t/activate"
fi
if [[ $cmd =~ ^readlink\ \'($GENLINK)\'$ ]]; then
  t=${BASH_REMATCH[1]}
  log allow readlink
  exec readlink "$t"
fi
if [[ $cmd =~ ^readlink\ \'($GCROOT)\'$ ]]; then
  t=${BASH_REMATCH[1]}
  case $t in */../* | */./* | *..) deny readlink-gc-root ;; esac
  log allow readlink-gc-root
  exec readlink "$t"
fi
# The documented commands.switch template (the fleet's own; run as given, unlocked: the template's).
if [[ $cmd =~ ^nixos-rebuild\ switch\ --flake\ \'($FLAKE)\'$ ]]; then
  f=${BASH_REMATCH[1]}
  log allow nixos-rebuild-switch
  exec nixos-rebuild switch --flake "$f"
fi
if [ "$cmd" = "systemctl --failed --no-legend --plain --no-pager" ]; then
  log allow systemctl-failed
  exec systemctl --failed --no-legend --plain --no-pager
fi
# POSIX single-quoting, exactly as the deployer quotes (src/hosts/shell.ts shellQuote).
q() { local s=${1//\'/\'\\\'\'}; printf "'%s'" "$s"; }

LIST_SCRIPT='for l in "$1"-*-link; do [ -L "$l" ] && printf '"'"'%s %s\n'"'"' "$l" "$(readlink -f "$l")"; done; true'
HMPROFILE="(/[A-Za-z0-9._/-]{1,200}/home-manager)"
if [[ $cmd =~ ^for\ l\ in\ \'($SYSPROFILE|$HMPROFILE)\'-\*-link\;\ do\ \[\ -L\ \"\$l\"\ \]\ \&\&\ printf\ \'%s\ %s\\n\'\ \"\$l\"\ \"\$\(readlink\ -f\ \"\$l\"\)\"\;\ done\;\ true$ ]]; then
  p=${BASH_REMATCH[1]}
  log allow list-generations
  exec /bin/sh -c "$LIST_SCRIPT" sh "$p"
fi
UNIT="nixfleet-rollback-[A-Za-z0-9._-]{1,180}"
if [[ $cmd =~ ^systemctl\ stop\ \'($UNIT)\.timer\'$ ]]; then
  u=${BASH_REMATCH[1]}
  log allow systemctl-stop-timer
  exec systemctl stop "$u.timer"
fi
if [[ $cmd =~ ^systemctl\ is-active\ \'($UNIT)\.service\'$ ]]; then
  u=${BASH_REMATCH[1]}
  log allow systemctl-is-active
  exec systemctl is-active "$u.service"
fi
if [[ $cmd =~ ^systemd-run\ --unit=\'($UNIT)-activate\' ]]; then
  u=${BASH_REMATCH[1]}
  # The parts: the target T (whose switch-to-configuration the unit runs, then `; rc=`), the recorded
  # S (whose sw/bin/systemd-run arms the timer), the timeout and the generation. The request must be
  # exactly what they rebuild to.
  re_sr="($STORE)[^/]*/sw/bin/systemd-run"
  re_s="($STORE)[^/]*/bin/switch-to-configuration switch; rc="
  re_t="--on-active=([0-9]{1,4}) "
  if [[ $cmd =~ $re_s ]] && s=${BASH_REMATCH[1]} &&
    [[ $cmd =~ $re_sr ]] && r=${BASH_REMATCH[1]} &&
    [[ $cmd =~ $re_t ]] && t=${BASH_REMATCH[1]} &&
    [[ $cmd =~ system-([0-9]{1,10})-link ]] && n=${BASH_REMATCH[1]}; then
    rollback="{ $(q "$r")/sw/bin/flock 9; if [ \"\$($(q "$r")/sw/bin/readlink $(q "$SYSPROFILE-$n-link"))\" = $(q "$r") ]; then $(q "$r")/sw/bin/nix-env -p $(q "$SYSPROFILE") --switch-generation $(q "$n"); else $(q "$r")/sw/bin/nix-env -p $(q "$SYSPROFILE") --set $(q "$r"); fi && $(q "$r")/bin/switch-to-configuration switch; } 9>/run/nixfleet-activation.lock"
    arm="$(q "$r")/sw/bin/systemd-run --unit=$(q "$u") --on-active=$t --collect --quiet -- /bin/sh -c $(q "$rollback")"
    script="{ $(q "$r")/sw/bin/flock -n 9 || exit 75; $(q "$s")/bin/switch-to-configuration switch; rc=\$?; if [ \"\$rc\" -eq 0 ] || [ \"\$rc\" -eq 4 ]; then $arm || exit 97; fi; exit \"\$rc\"; } 9>/run/nixfleet-activation.lock"
    expected="systemd-run --unit=$(q "$u-activate") --collect --wait --pipe --quiet -- /bin/sh -c $(q "$script")"
    if [ "$cmd" = "$expected" ]; then
      log allow confirmed-activation
      exec systemd-run --unit="$u-activate" --collect --wait --pipe --quiet -- /bin/sh -c "$script"
    fi
  fi
  deny confirmed-activation
fi

# Durable reboots (src/hosts/reboot.ts): the boot state read, and a reboot that happens at most once
# per boot (a retry after the host rebooted does not reboot it again). Rebuilt from their one value and
# compared byte for byte with the request.
if [[ $cmd =~ ^b=\$\(cat\ /proc/sys/kernel/random/boot_id\)\ .*/run/current-system\ \'($STORE)\'\; ]]; then
  t=${BASH_REMATCH[1]}
  expected="b=\$(cat /proc/sys/kernel/random/boot_id) || exit 1; printf '%s\\n' \"\$b\"; for s in /run/booted-system /run/current-system $(q "$t"); do printf '%s|' \"\$(readlink -e \"\$s\")\"; for p in kernel initrd kernel-modules; do printf '%s|' \"\$(readlink -e \"\$s/\$p\")\"; done; printf '\\n'; done; true"
  if [ "$cmd" = "$expected" ]; then
    log allow read-boot
    exec /bin/sh -c "$expected"
  fi
  deny read-boot
fi
if [[ $cmd =~ ^\[\ \"\$\(cat\ /proc/sys/kernel/random/boot_id\)\"\ =\ \'([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\'\ \]\ \|\|\ \{\ echo\ already-rebooted\;\ exit\ 0\;\ \}\;\ exec\ systemctl\ reboot$ ]]; then
  b=${BASH_REMATCH[1]}
  log allow reboot
  if [ "$(cat /proc/sys/kernel/random/boot_id)" != "$b" ]; then echo already-rebooted; exit 0; fi
  exec systemctl reboot
fi

checks_file=${NIXFLEET_ALLOWLIST_CHECKS:-/etc/nixfleet/allowed-checks}
if [ -f "$checks_file" ]; then
  while IFS= read -r allowed || [ -n "$allowed" ]; do
    if [ -n "$allowed" ] && [ "$cmd" = "$allowed" ]; then
      log allow health-check
      exec /bin/sh -c "$allowed"
    fi
  done <"$checks_file"
fi
deny unknown
