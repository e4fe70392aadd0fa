#!/usr/bin/env bash
# Idempotent install of the Debian packages the stand-in fleet (src/testworld/fleet) needs:
#   nix-bin          real Nix (store, profiles, flakes) for host generations
#   openssh-server   one real sshd per stand-in host
#   iproute2         `ip addr` / network namespaces
#   git              flake sources served as git+file:// / git+http:// at a pinned rev
#   nftables         cutLink(): drop a host's packets on its loopback address
#   util-linux       unshare / nsenter (normally already present)
# Quiet when everything is already installed; exits non-zero if a package cannot be installed.
set -euo pipefail

PACKAGES=(nix-bin openssh-server iproute2 git nftables util-linux)

missing=()
for p in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -eq 0 ]; then
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
