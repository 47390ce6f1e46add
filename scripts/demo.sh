#!/usr/bin/env bash
# The main job: sets up .venv, generates the bundled synthetic marketplace data, serves a quick
# version (popularity and ALS, no search) on 127.0.0.1:8000 within about a minute, then trains every
# tier's model with its per-tier evaluation (train-all) and swaps it in live through the hot reload.
# The embedded store, or Redis when RECSYS_REDIS_URL is set.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "[train,serve]"
.venv/bin/recsys demo --workdir . "$@"
