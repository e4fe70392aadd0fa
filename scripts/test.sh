#!/usr/bin/env bash
# The one test command: installs everything (scripts/setup.sh), then lint, type-check and every test
# against the real parts (Temporal dev server, stand-in sshd + Nix hosts, git-backed GitHub stand-in).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
npm test
