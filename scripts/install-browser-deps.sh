#!/usr/bin/env bash
# Idempotent install of Debian's chromium, which the dashboard tests drive headless through
# playwright-core (executablePath /usr/bin/chromium). No browser is ever downloaded by npm.
set -euo pipefail

if dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q '^install ok installed$'; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-browser-deps: chromium is missing; run as root (apt-get install -y chromium)" >&2
  exit 1
fi
echo "install-browser-deps: installing chromium" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get install -y --no-install-recommends chromium >/dev/null || { apt-get update -qq && apt-get install -y --no-install-recommends chromium >/dev/null; }
