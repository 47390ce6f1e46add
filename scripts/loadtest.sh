#!/usr/bin/env bash
# The load test: sets up .venv (with locust), trains and publishes the synthetic demo version when
# artifacts/ holds none, starts the server on 127.0.0.1 and runs locust headless against it.
# Arguments go to loadtest/run.py, e.g. --users 50 --duration 60, --sweep 10,25,50,100, --tags hot.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
ensure_venv "[train,serve,loadtest]"
if ! compgen -G "artifacts/als_v*/manifest.json" >/dev/null; then
  echo "no trained version in artifacts/: training the synthetic demo version first" >&2
  .venv/bin/recsys demo --workdir . --no-serve
fi
exec .venv/bin/python loadtest/run.py "$@"
