#!/usr/bin/env bash
# The slow reliability target (issue 5): SIGKILLs of a real trainer during
# export/publish, longer API fuzzing, longer swap-under-load runs.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
exec .venv/bin/python -m pytest -m reliability -p no:cacheprovider -s "$@"
