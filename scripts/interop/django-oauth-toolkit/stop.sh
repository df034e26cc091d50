#!/usr/bin/env bash
# Stops the django-oauth-toolkit server started by start.sh (gunicorn, by its pid file).
"$(dirname "$0")/../../lib/stop-by-pid.sh" "${DOT_DIR:-/tmp/swift-bff-dot}/gunicorn.pid"
