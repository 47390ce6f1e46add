# shellcheck shell=bash
# Services the tests talk to, for real: PostgreSQL and Redis. Each ensure_* uses the one already
# running on its standard port when it answers; otherwise it starts a private one on a spare port
# (installing the Debian package first when needed, as root) and stops it when the calling script
# exits. They export RECSYS_TEST_PG_URL and RECSYS_TEST_REDIS_URL.

_CLEANUP=()
_run_cleanup() {
  local cmd
  for cmd in "${_CLEANUP[@]}"; do eval "$cmd" >/dev/null 2>&1 || true; done
}
trap _run_cleanup EXIT

_apt_install() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing $* (apt-get)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null ||
      { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "$@" >/dev/null; }
  else
    echo "error: $* is not installed and cannot be installed here (not root or no apt-get)" >&2
    return 1
  fi
}

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
    _apt_install postgresql || return 1
    bindir=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  fi
  dir=$(mktemp -d /tmp/recsys-pg.XXXXXX)
  if [ "$(id -u)" = 0 ]; then chown postgres "$dir"; run_as=(runuser -u postgres --); fi
  echo "starting a private PostgreSQL on port $port in $dir" >&2
  "${run_as[@]}" "$bindir/initdb" -D "$dir/data" -U postgres -A trust >/dev/null
  "${run_as[@]}" "$bindir/pg_ctl" -D "$dir/data" -o "-p $port -k $dir -c listen_addresses=127.0.0.1" -l "$dir/log" -w start >/dev/null
  "${run_as[@]}" "$bindir/createdb" -h 127.0.0.1 -p $port -U postgres test
  _CLEANUP+=("${run_as[*]} $bindir/pg_ctl -D $dir/data -m fast stop; rm -rf $dir")
  export RECSYS_TEST_PG_URL="postgresql+psycopg://postgres@127.0.0.1:$port/test"
}

_redis_answers() {
  .venv/bin/python - "$1" <<'PY' >/dev/null 2>&1
import sys, redis
redis.Redis.from_url(sys.argv[1], socket_timeout=2, socket_connect_timeout=2).ping()
PY
}

ensure_redis() {
  local url=${RECSYS_TEST_REDIS_URL:-redis://127.0.0.1:6379/0}
  if _redis_answers "$url"; then export RECSYS_TEST_REDIS_URL=$url; return 0; fi
  command -v redis-server >/dev/null || _apt_install redis-server || return 1
  local port=56379 dir i
  dir=$(mktemp -d /tmp/recsys-redis.XXXXXX)
  echo "starting a private redis-server on port $port" >&2
  redis-server --port "$port" --bind 127.0.0.1 --save "" --appendonly no --dir "$dir" \
    --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log"
  for i in $(seq 50); do _redis_answers "redis://127.0.0.1:$port/0" && break; sleep 0.1; done
  _CLEANUP+=("kill \$(cat $dir/redis.pid); rm -rf $dir")
  export RECSYS_TEST_REDIS_URL="redis://127.0.0.1:$port/0"
}

# What `--engine spark` needs beyond pip: a Java 17+ runtime, and the PostgreSQL JDBC driver for
# SQL sources read through Spark (Debian's libpostgresql-jdbc-java, /usr/share/java/postgresql.jar).
ensure_spark_deps() {
  if ! command -v java >/dev/null && [ -z "${JAVA_HOME:-}" ]; then
    _apt_install openjdk-17-jre-headless || return 1
  fi
  [ -f /usr/share/java/postgresql.jar ] || _apt_install libpostgresql-jdbc-java || return 1
}

# Chromium renders /docs in the headless-browser test (tests/app/test_docs_page.py).
ensure_chromium() {
  command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
    _apt_install chromium fonts-dejavu-core || return 1
}
