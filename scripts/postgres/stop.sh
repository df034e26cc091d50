#!/usr/bin/env bash
# Stops the cluster started by start.sh (by the pid in its postmaster.pid) and deletes its folder.
dir="${BFF_PG_DIR:-/tmp/swift-bff-postgres}"
pidfile="$dir/data/postmaster.pid"
if [ -f "$pidfile" ]; then
  pid=$(head -n 1 "$pidfile")
  if kill -0 "$pid" 2>/dev/null; then
    kill -INT "$pid"  # fast shutdown
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
  fi
fi
rm -rf "$dir"
