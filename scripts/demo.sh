#!/usr/bin/env bash
# The main job on embedded defaults: installs what is missing (scripts/setup.sh), then starts the
# Temporal dev server, the worker, the API, the GitHub stand-in and a demo fleet, and deploys.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec npx tsx scripts/demo.ts "$@"
