#!/usr/bin/env bash
# The README's test command: set up the environment, check lint, format and types,
# then run the whole suite. The checks run in order and stop at the first that fails,
# with a line naming it; arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
scripts/install_browser.sh   # Debian's chromium for the demo page's browser test (no-op when present)
benchmarks/install_wrk.sh    # Debian's wrk for the load generator's tests (no-op when present)
export PATH="$PWD/.venv/bin:$PATH"   # recsys, hadolint, ruff, mypy, ... from the venv

check() {  # check NAME COMMAND...: run one check; on failure name it and stop with its exit code
  local name=$1
  shift
  "$@" || {
    local code=$?
    echo "scripts/test.sh: the $name check failed (exit $code): $*" >&2
    exit "$code"
  }
}
check lint ruff check --no-fix .
check format ruff format --check .
check types mypy   # files and modes: [tool.mypy] in pyproject.toml
exec .venv/bin/python -m pytest "$@"
