#!/usr/bin/env bash
# Builds the micro-benchmark in release mode and runs it. Prints one line per scenario.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bff-micro-bench >/dev/null
.build/release/bff-micro-bench
