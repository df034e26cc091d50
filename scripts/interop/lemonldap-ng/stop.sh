#!/usr/bin/env bash
# Stops the LemonLDAP::NG portal started by start.sh (Starman master by its pid file; it ends its workers).
dir="${LLNG_DIR:-/tmp/swift-bff-llng}"
pidfile="$dir/starman.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
fi
rm -f "$pidfile"
