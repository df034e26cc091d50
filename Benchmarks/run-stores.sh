#!/usr/bin/env bash
# Session-store benchmark (release build): SQLite, PostgreSQL (a throw-away cluster on 127.0.0.1,
# started and stopped here) and the memory store. Prints the figures for Benchmarks/RESULTS.md.
#   Benchmarks/run-stores.sh [--sessions 1000000] [--store sqlite|postgres|memory|all]
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bff-store-bench >/dev/null
export BFF_PG_DIR=/tmp/swift-bff-bench-postgres BFF_PG_PORT=55433 BFF_PG_DURABLE=1
trap 'scripts/postgres/stop.sh' EXIT
BFF_BENCH_POSTGRES_URL=$(scripts/postgres/start.sh)
export BFF_BENCH_POSTGRES_URL
.build/release/bff-store-bench "$@"
