#!/usr/bin/env bash
# The README's main job: set up, train on the embedded generated storefront
# dataset, publish a version into ./models, then serve it on 127.0.0.1:8000
# with the demo page on (RECSYS_DEMO_ENABLED=true: the page at / and the routes
# it needs, which list user ids and a user's history; `recsys serve` leaves them
# off unless told, see README "Production notes").
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh dev
export RECSYS_MODEL_ROOT="${RECSYS_MODEL_ROOT:-$PWD/models}"
export RECSYS_DEMO_ENABLED=true
.venv/bin/recsys train --data synthetic --model-root "$RECSYS_MODEL_ROOT" "$@"
exec .venv/bin/recsys serve --model-root "$RECSYS_MODEL_ROOT" --host 127.0.0.1 --port "${PORT:-8000}"
