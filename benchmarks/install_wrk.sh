#!/usr/bin/env bash
# Install wrk (the C HTTP load generator) from the Debian/Ubuntu archive, if absent.
# Idempotent: does nothing when wrk is already on PATH. Used by benchmarks/loadgen.py
# (--engine wrk), the default engine of benchmarks/serving_load.py when installed.
set -euo pipefail

if command -v wrk >/dev/null 2>&1; then
    echo "wrk already installed: $(command -v wrk)"
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "error: no apt-get here; install wrk with your package manager (the benchmarks fall back to --engine asyncio)" >&2
    exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
        echo "error: need root (or sudo) to apt-get install wrk" >&2
        exit 1
    fi
fi
# another apt/dpkg may hold the lock for a while: wait for it (bounded)
for _ in $(seq 1 30); do
    if $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends wrk; then
        command -v wrk
        exit 0
    fi
    if ! $SUDO apt-get update -q; then :; fi
    sleep 10
done
echo "error: could not install wrk (apt lock held or package unavailable)" >&2
exit 1
