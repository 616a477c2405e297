#!/usr/bin/env bash
# The README's test command: set up the environment, then run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/install_browser.sh   # Debian's chromium for the demo page's browser test (no-op when present)
benchmarks/install_wrk.sh    # Debian's wrk for the load generator's tests (no-op when present)
export PATH="$PWD/.venv/bin:$PATH"   # recsys, hadolint, ... from the venv
exec .venv/bin/python -m pytest "$@"
