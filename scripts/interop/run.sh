#!/usr/bin/env bash
# The interop and browser stages of the test command (scripts/test.sh runs them after `swift test`):
#   1. `bff serve` (SQLite store) against Glewlwyd, LemonLDAP::NG and django-oauth-toolkit:
#      login, /bff/user, remote API with the bearer token, forced refresh, RP-initiated logout,
#      refresh-token revocation, logout at the IdP through back-channel (tests/interop/interop.py);
#      then Glewlwyd and the dev IdP as two frontends of one gateway, reloaded while it serves
#      (tests/interop/multi_frontend.py);
#   2. headless Chromium through the SPA against `bff demo` and against Glewlwyd (tests/browser).
# Expects Glewlwyd running (BFF_TEST_GLEWLWYD_ISSUER) and the debug `bff` built. Starts and stops
# the other IdPs itself. Results and screenshots go to $BFF_TEST_OUTPUT (.build/test-output).
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${BFF_TEST_OUTPUT:-$PWD/.build/test-output}"
mkdir -p "$out"
bff="$PWD/.build/debug/bff"
python=$(scripts/interop/venv.sh)
: "${BFF_TEST_GLEWLWYD_ISSUER:?start Glewlwyd first (scripts/interop/glewlwyd/start.sh)}"

trap 'scripts/interop/lemonldap-ng/stop.sh; scripts/interop/django-oauth-toolkit/stop.sh' EXIT
failed=0
"$python" tests/interop/interop.py --idp glewlwyd --issuer "$BFF_TEST_GLEWLWYD_ISSUER" --port 5180 \
  --bff "$bff" --out "$out" || failed=1
llng=$(BFF_ORIGIN=http://localhost:5182 scripts/interop/lemonldap-ng/start.sh)
"$python" tests/interop/interop.py --idp lemonldap --issuer "$llng" --port 5182 --bff "$bff" --out "$out" || failed=1
dot=$(BFF_ORIGIN=http://localhost:5181 DOT_VENV="$(dirname "$(dirname "$python")")" scripts/interop/django-oauth-toolkit/start.sh)
"$python" tests/interop/interop.py --idp dot --issuer "$dot" --port 5181 --bff "$bff" --out "$out" || failed=1
# Two IdPs behind one gateway (Glewlwyd and the dev IdP as two frontends), and reloads while it runs.
"$python" tests/interop/multi_frontend.py --issuer "$BFF_TEST_GLEWLWYD_ISSUER" --port 5180 --bff "$bff" --out "$out" \
  || failed=1
"$python" tests/browser/browser_flow.py --bff "$bff" --out "$out" --glewlwyd-issuer "$BFF_TEST_GLEWLWYD_ISSUER" \
  || failed=1
echo "interop and browser results: $out"
exit "$failed"
