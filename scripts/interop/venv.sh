#!/usr/bin/env bash
# Creates (once) the Python venv the interop and browser stages use, and prints its python.
#   BFF_TEST_VENV (default /tmp/swift-bff-venv)
set -euo pipefail
venv="${BFF_TEST_VENV:-/tmp/swift-bff-venv}"
if ! "$venv/bin/python" -c "import requests, selenium, oauth2_provider, gunicorn" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check \
    "requests>=2.32" "selenium>=4.20" "django-oauth-toolkit==3.4.1" "gunicorn>=22" >&2
fi
echo "$venv/bin/python"
