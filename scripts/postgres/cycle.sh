#!/usr/bin/env bash
# Stops or starts again a cluster made by start.sh, keeping its data (outage tests):
#   cycle.sh stop | start     with the same BFF_PG_DIR / BFF_PG_PORT as start.sh
set -euo pipefail
dir="${BFF_PG_DIR:-/tmp/swift-bff-postgres}"
port="${BFF_PG_PORT:-25432}"
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
as_owner=()
[ "$(id -u)" = 0 ] && as_owner=(runuser -u postgres --)
case "${1:-}" in
  stop)
    pid=$(head -n 1 "$dir/data/postmaster.pid")
    kill -INT "$pid"  # fast shutdown: clients are disconnected at once
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.1; done
    kill -9 "$pid" ;;
  start)
    "${as_owner[@]}" "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 start \
      -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
      >/dev/null ;;
  *) echo "usage: cycle.sh stop|start" >&2; exit 2 ;;
esac
