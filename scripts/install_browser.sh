#!/usr/bin/env bash
# Install Debian's chromium for the browser test (tests/serving/api/test_api_demo_browser.py).
# Idempotent: does nothing when `chromium` is already on PATH. Never downloads a
# browser through Playwright (`playwright install` is not used): the test drives
# this system chromium with Playwright's Python driver.
set -euo pipefail

if command -v chromium >/dev/null 2>&1; then
    echo "chromium already installed: $(command -v chromium)"
    exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=()
elif command -v sudo >/dev/null 2>&1; then
    SUDO=(sudo)
else
    echo "install_browser.sh: chromium is missing and this user is not root and has no sudo;" >&2
    echo "install it with: apt-get install -y --no-install-recommends chromium" >&2
    exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${SUDO[@]}" apt-get update
"${SUDO[@]}" apt-get install -y --no-install-recommends chromium
echo "chromium installed: $(command -v chromium)"
