#!/usr/bin/env bash
# The main job: sets up .venv, generates the bundled synthetic marketplace data, trains ALS
# (parameters chosen on validation), evaluates it beside popularity, writes artifacts/als_vN, publishes
# it (embedded store, or Redis when RECSYS_REDIS_URL is set) and serves it on 127.0.0.1:8000.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "[train,serve]"
.venv/bin/recsys demo --workdir . "$@"
