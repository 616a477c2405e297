#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install the
# project with its pinned dependencies. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat pyproject.toml | sha256sum | cut -c1-16)-$1
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade "pip>=24" >/dev/null
  .venv/bin/python -m pip install --quiet -e ".[$1]"
  rm -f .venv/.installed-* && touch "$stamp"
fi
