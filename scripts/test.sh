#!/usr/bin/env bash
# The project's test command (README): starts a real Glewlwyd on 127.0.0.1 for the interop tests,
# runs the whole swift-testing suite, and stops Glewlwyd again.
set -euo pipefail
cd "$(dirname "$0")/.."

issuer=$(scripts/interop/glewlwyd/start.sh)
trap 'scripts/interop/glewlwyd/stop.sh' EXIT
export BFF_TEST_GLEWLWYD_ISSUER="$issuer"
export BFF_REQUIRE_INTEROP=1

swift format lint --strict --recursive Sources Tests Package.swift
swift build --build-tests
swift test --skip-build "$@"
