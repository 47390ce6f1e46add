#!/usr/bin/env bash
# The main job: sets up .venv, generates the bundled synthetic marketplace data, trains ALS
# (parameters chosen on validation), evaluates it beside popularity, and writes artifacts/als_vN.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "[train,serve]"
.venv/bin/recsys demo --workdir . "$@"
