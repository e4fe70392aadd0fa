#!/usr/bin/env bash
# The one test command: installs everything (scripts/setup.sh), then lint, type-check and every test
# against the real parts (Temporal dev server, stand-in sshd + Nix hosts, git-backed GitHub stand-in).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
results=.nixfleet/jest-results.json
mkdir -p .nixfleet
rm -f "$results" .nixfleet/test-summary.txt
set +e
npm test
rc=$?
set -e
# One closing line with the counts, whatever happened.
if [[ -f "$results" ]]; then
  summary=$(node -e 'const r = require(process.argv[1]); console.log(`${r.numPassedTests} passed, ${r.numFailedTests} failed, ${r.numPendingTests + r.numTodoTests} skipped`)' "$PWD/$results")
else
  summary="0 passed, 1 failed (lint or type-check failed before the tests ran)"
fi
echo "$summary" | tee .nixfleet/test-summary.txt
exit $rc
