#!/usr/bin/env bash
# Stops the django-oauth-toolkit server started by start.sh (by its pid file).
dir="${DOT_DIR:-/tmp/swift-bff-dot}"
pidfile="$dir/gunicorn.pid"
[ -f "$pidfile" ] || exit 0
pid=$(cat "$pidfile")
if kill -0 "$pid" 2>/dev/null; then
  kill "$pid"
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid"
fi
rm -f "$pidfile"
