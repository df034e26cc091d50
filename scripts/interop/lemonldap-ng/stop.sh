#!/usr/bin/env bash
# Stops the LemonLDAP::NG portal started by start.sh (the Starman master, by its pid file; it ends its workers).
"$(dirname "$0")/../../lib/stop-by-pid.sh" "${LLNG_DIR:-/tmp/swift-bff-llng}/starman.pid"
