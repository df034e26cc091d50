#!/usr/bin/env bash
# Starts a throw-away PostgreSQL cluster on 127.0.0.1 for the tests and benchmarks, and prints the
# connection URL (postgres://bff:…@127.0.0.1:PORT/bff). Stop it with stop.sh; its folder is deleted.
#   BFF_PG_DIR   cluster folder (default /tmp/swift-bff-postgres)
#   BFF_PG_PORT  port (default 25432: below the ephemeral range, so no client socket can be holding it)
#   BFF_PG_DURABLE=1  keep fsync and synchronous commit on (benchmarks)
set -euo pipefail
dir="${BFF_PG_DIR:-/tmp/swift-bff-postgres}"
port="${BFF_PG_PORT:-25432}"
password="bff-test-password"

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2
  exit 1
fi

# initdb and postgres refuse to run as root: run them as the postgres account when we are root.
as_owner=()
if [ "$(id -u)" = 0 ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  as_owner=(runuser -u postgres --)
fi

"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir"
printf '%s\n' "$password" > "$dir/pwfile"
[ "$(id -u)" = 0 ] && chown -R postgres "$dir"
chmod 700 "$dir"

"${as_owner[@]}" "$bin/initdb" -D "$dir/data" -U bff --pwfile="$dir/pwfile" \
  --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; exit 1; }
# Throw-away data for tests: durability off for speed (BFF_PG_DURABLE=1 keeps the defaults, as the
# benchmarks do). Loopback only.
durability="-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
[ "${BFF_PG_DURABLE:-0}" = 1 ] && durability=""
"${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
  -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir $durability -c max_connections=200" \
  >/dev/null || { cat "$dir/postgres.log" >&2; exit 1; }
"${as_owner[@]}" "$bin/psql" -h "$dir" -p "$port" -U bff -d postgres -q -c "CREATE DATABASE bff" >/dev/null

echo "postgres://bff:$password@127.0.0.1:$port/bff"
