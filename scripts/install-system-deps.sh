#!/usr/bin/env bash
# Idempotent install of the Debian packages the stand-in fleet (testkit/fleet) needs:
#   nix-bin          real Nix (store, profiles, flakes) for host generations
#   openssh-server   one real sshd per stand-in host
#   iproute2         `ip addr` / network namespaces
#   git              flake sources served as git+file:// / git+http:// at a pinned rev
#   nftables         cutLink(): drop a host's packets on its loopback address
#   util-linux       unshare / nsenter (normally already present)
#   systemd          systemd-analyze: tests/deploy/systemd.test.ts verifies deploy/systemd's units
#   psmisc           fuser: the stand-in hosts stop a cancelled activation by its lock, as the product does
#   postgresql       initdb + postgres: tests/audit runs the AuditStore contract against a real server,
#                    which testkit/postgres.ts starts in a temporary directory (the package's own
#                    cluster is not used)
#   maven            (and the Java it depends on) Temporal's time-skipping test server (Java, from Maven Central:
#                    scripts/fetch-test-server.sh) for tests/saga/windows.test.ts
# Then the Nix store layout (/nix/store, /nix/var/nix/{db,profiles,gcroots,…}), which Debian's nix-bin
# does not create: the stand-in hosts bind-mount over /nix/var/nix/profiles.
# Quiet when everything is already there; exits non-zero if a package cannot be installed.
set -euo pipefail

# The store layout, made by Nix itself (`nix-store --init` as root creates what is missing and leaves
# what exists). build-users-group is emptied for this one call: no `nixbld` group is needed.
init_nix_store() {
  if [ -d /nix/var/nix/profiles ] && [ -d /nix/var/nix/db ] && [ -d /nix/store ]; then return 0; fi
  echo "install-system-deps: creating the Nix store layout under /nix (nix-store --init)" >&2
  nix-store --option build-users-group '' --init
  [ -d /nix/var/nix/profiles ] || { echo "install-system-deps: nix-store --init left no /nix/var/nix/profiles" >&2; exit 1; }
}

PACKAGES=(nix-bin openssh-server iproute2 git nftables util-linux systemd psmisc postgresql maven)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
  init_nix_store
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing ${missing[*]}; run as root" >&2
  exit 1
fi

echo "install-system-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# Wait for another apt/dpkg to release its lock rather than failing at once.
apt_opts=(-o DPkg::Lock::Timeout=120 -y -q --no-install-recommends)
if ! apt-get "${apt_opts[@]}" install "${missing[@]}" >/dev/null; then
  apt-get -o DPkg::Lock::Timeout=120 -q update >/dev/null
  apt-get "${apt_opts[@]}" install "${missing[@]}" >/dev/null
fi
init_nix_store
