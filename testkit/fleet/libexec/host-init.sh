#!/bin/sh
# PID 1 of a stand-in host's namespaces (started by `unshare --mount --uts --pid --fork --kill-child
# --mount-proc --propagation private`): gives the host its own profiles, HOME and /run, its hostname,
# then becomes the host's sshd. When this process dies the kernel kills everything in the namespace.
set -eu
HOST_DIR=$1
HOST_NAME=$2
mount --bind "$HOST_DIR/profiles" /nix/var/nix/profiles
mount --bind "$HOST_DIR/home" /root
mount --bind "$HOST_DIR/run" /run
# The host's own GC roots (NixOS: /nix/var/nix/gcroots), not the machine's.
mount --bind "$HOST_DIR/gcroots" /nix/var/nix/gcroots
# Store paths the host's garbage collector deleted (libexec/standin-gc.sh) stay deleted after a reboot.
if [ -s "$HOST_DIR/control/gc-deleted" ]; then
  while read -r p; do
    [ -e "$p" ] || continue
    if [ -d "$p" ]; then mount --bind -o ro "$HOST_DIR/control/gc-empty" "$p"; else mount --bind -o ro "$HOST_DIR/control/gc-empty-file" "$p"; fi
  done < "$HOST_DIR/control/gc-deleted"
fi
hostname "$HOST_NAME"
# A boot id of its own, new at every boot (as the kernel's /proc/sys/kernel/random/boot_id).
cat /proc/sys/kernel/random/uuid > "$HOST_DIR/control/boot-id"
mount --bind -o ro "$HOST_DIR/control/boot-id" /proc/sys/kernel/random/boot_id
# The host's own settings for its tools (they do not rely on their caller's environment; a transient
# unit has the manager's environment only): see standin-common.sh.
mkdir -p /run/nixfleet-standin
cp "$HOST_DIR/etc/standin.env" /run/nixfleet-standin/env
mkdir -p /run/sshd
chmod 0755 /run/sshd
exec /usr/sbin/sshd -D -e -f "$HOST_DIR/etc/sshd_config"
