#!/usr/bin/env bash
# Stops the Glewlwyd started by start.sh, by the pid it recorded.
"$(dirname "$0")/../../lib/stop-by-pid.sh" "${GLWD_DIR:-/tmp/swift-bff-glewlwyd}/glewlwyd.pid"
