#!/usr/bin/env bash
# The project's test command (README): starts a real Glewlwyd and a PostgreSQL cluster on 127.0.0.1,
# runs the whole swift-testing suite, and stops both again.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real peers on 127.0.0.1: Glewlwyd (IdP) and a throw-away PostgreSQL cluster (session store).
trap 'scripts/interop/glewlwyd/stop.sh; scripts/postgres/stop.sh' EXIT
issuer=$(scripts/interop/glewlwyd/start.sh)
export BFF_TEST_GLEWLWYD_ISSUER="$issuer"
export BFF_TEST_GLEWLWYD_CLIENT_KEY="${GLWD_DIR:-/tmp/swift-bff-glewlwyd}/client-key.json"
BFF_TEST_POSTGRES_URL=$(scripts/postgres/start.sh)
export BFF_TEST_POSTGRES_URL
# Missing peers fail the run instead of skipping their tests.
export BFF_REQUIRE_INTEROP=1

swift format lint --strict --recursive Sources Tests Package.swift
swift build --build-tests
# At most 4 tests at once: every test starts its own servers, and timing assertions (a cut-off
# after 1 s, a logout seen within 100 ms) mean nothing on 2 cores running 300 tests side by side.
swift test --skip-build --experimental-maximum-parallelization-width 4 "$@"
# Second stage (not optional): the `bff` binary against three real IdPs, and a real browser.
if [ $# -eq 0 ]; then scripts/interop/run.sh; fi
