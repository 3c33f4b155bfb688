#!/usr/bin/env bash
# Start a throw-away PostgreSQL cluster for the test suite and print its URL.
#
#   eval "$(.ci/postgres.sh start DIR [PORT])"   # exports VITALSENTRY_TEST_DATABASE_URL, PG_DIR
#   .ci/postgres.sh stop DIR
#
# Installs Debian's `postgresql` with apt-get when no server binaries are found. The cluster
# lives in DIR (owned by the `postgres` user when run as root), listens on 127.0.0.1:PORT
# (default 55432) only, trusts local connections, and holds a database `vitalsentry_test`.
# Only the eval-able export line goes to stdout; progress goes to stderr.
set -euo pipefail

find_bin() {
  local dir
  for dir in /usr/lib/postgresql/*/bin; do
    [ -x "$dir/pg_ctl" ] && { echo "$dir"; return 0; }
  done
  command -v pg_ctl >/dev/null 2>&1 && { dirname "$(command -v pg_ctl)"; return 0; }
  return 1
}

as_owner() {  # run a command as the cluster's owner (postgres when we are root)
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

cmd=${1:?usage: postgres.sh start|stop DIR [PORT]}
dir=${2:?usage: postgres.sh start|stop DIR [PORT]}
port=${3:-55432}

if [ "$cmd" = stop ]; then
  bin=$(find_bin) || exit 0
  [ -f "$dir/data/postmaster.pid" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >&2
  exit 0
fi
[ "$cmd" = start ] || { echo "unknown command $cmd" >&2; exit 2; }

if ! bin=$(find_bin); then
  echo "installing PostgreSQL from the OS packages" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq postgresql >&2
  bin=$(find_bin)
fi
mkdir -p "$dir"
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$dir"
fi
if [ ! -f "$dir/data/PG_VERSION" ]; then
  as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >&2
fi
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=on" start >&2
as_owner "$bin/psql" -h 127.0.0.1 -p "$port" -U postgres -d postgres -qtc \
  "SELECT 1 FROM pg_database WHERE datname = 'vitalsentry_test'" | grep -q 1 ||
  as_owner "$bin/createdb" -h 127.0.0.1 -p "$port" -U postgres vitalsentry_test >&2
echo "export VITALSENTRY_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:$port/vitalsentry_test PG_DIR=$dir"
