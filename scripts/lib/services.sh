# shellcheck shell=bash
# ensure_postgres: export RECSYS_TEST_PG_URL pointing at a reachable PostgreSQL. Uses the one on
# 127.0.0.1:5432 when it answers; otherwise starts a private cluster on a spare port (installing
# the Debian package first when needed) and stops it when the calling script exits.

_pg_answers() {
  .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys
from sqlalchemy import create_engine, text
with create_engine(sys.argv[1], connect_args={"connect_timeout": 3}).connect() as c:
    c.execute(text("SELECT 1"))
PY
}

ensure_postgres() {
  local url=${RECSYS_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/test}
  if _pg_answers "$url"; then export RECSYS_TEST_PG_URL=$url; return 0; fi
  local bindir port=55432 dir run_as=()
  bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  if [ -z "$bindir" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
      echo "installing PostgreSQL (apt-get)" >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null ||
        { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >/dev/null; }
      bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    else
      echo "error: no PostgreSQL reachable and none installed; install postgresql or set RECSYS_TEST_PG_URL" >&2
      return 1
    fi
  fi
  dir=$(mktemp -d /tmp/recsys-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; run_as=(runuser -u postgres --); fi
  echo "starting a private PostgreSQL on port $port in $dir" >&2
  "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >/dev/null
  "${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p $port -U postgres test
  # shellcheck disable=SC2064
  trap "${run_as[*]} $bindir/pg_ctl -D $dir/data -m fast stop >/dev/null 2>&1; rm -rf $dir" EXIT
  export RECSYS_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/test"
}
