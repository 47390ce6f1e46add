#!/usr/bin/env bash
# The test command: sets up .venv, starts the services the tests need when they are not running,
# then lint, types, the import contracts (pyproject.toml), the Dockerfile lint, the docs site
# (mkdocs --strict: a broken link fails) and the whole pytest suite. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# shellcheck source=lib/venv.sh
source scripts/lib/venv.sh
# shellcheck source=lib/services.sh
source scripts/lib/services.sh

ensure_venv "[train,serve,dev]"
ensure_postgres
ensure_redis
ensure_spark_deps
ensure_chromium
export RECSYS_REQUIRE_SERVICES=1 PYTHONUNBUFFERED=1

echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check -q .
echo "== mypy"; .venv/bin/mypy
echo "== import contracts"; .venv/bin/lint-imports --no-cache
echo "== hadolint"; .venv/bin/hadolint Dockerfile && echo "Dockerfile: clean"
# Not --quiet: it hides the warnings, and with them what --strict counts.
echo "== docs"; docs_log=$(NO_MKDOCS_2_WARNING=1 .venv/bin/mkdocs build --strict --site-dir "$(mktemp -d)" 2>&1) ||
  { echo "$docs_log"; exit 1; }; echo "mkdocs build --strict: clean"
echo "== pytest"; .venv/bin/python -m pytest "$@"
