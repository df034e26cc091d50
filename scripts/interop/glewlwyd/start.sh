#!/usr/bin/env bash
# Starts a throw-away Glewlwyd (Debian's C OpenID Provider) on 127.0.0.1 for swift-bff's interop tests.
#
# Everything lives under $GLWD_DIR (default /tmp/swift-bff-glewlwyd): SQLite database, keys, config, logs, pid.
# The client "bff" / "bff-secret" is registered for the gateway origin $BFF_ORIGIN (default http://localhost:5180).
# The client "bff-jwt" authenticates with private_key_jwt; its private JWK is $GLWD_DIR/client-key.json.
# Users: alice / alice-password, bob / bob-password. Prints the issuer URL as the last line.
set -euo pipefail

GLWD_PORT="${GLWD_PORT:-4593}"
GLWD_DIR="${GLWD_DIR:-/tmp/swift-bff-glewlwyd}"
BFF_ORIGIN="${BFF_ORIGIN:-http://localhost:5180}"
GLWD_ACCESS_TOKEN_SECONDS="${GLWD_ACCESS_TOKEN_SECONDS:-300}"
BASE="http://127.0.0.1:${GLWD_PORT}"
ISSUER="${BASE}/api/oidc"
say() { printf '[glewlwyd] %s\n' "$*" >&2; }

need_install=0
for tool in glewlwyd rnbyc sqlite3 curl jq; do command -v "$tool" >/dev/null 2>&1 || need_install=1; done
if [ "$need_install" = 1 ]; then
  say "installing the Debian packages"
  # No dbconfig: we create our own SQLite database below.
  echo "glewlwyd glewlwyd/config_type select No configuration" | debconf-set-selections
  # Keep the package's init script from starting a system-wide instance while installing.
  added_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d; chmod 755 /usr/sbin/policy-rc.d; added_policy=1; fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends glewlwyd rnbyc sqlite3 curl jq >/dev/null 2>&1 \
    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends glewlwyd rnbyc sqlite3 curl jq >/dev/null; }
  [ "$added_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
fi

"$(dirname "$0")/stop.sh" >/dev/null 2>&1 || true
case "$GLWD_DIR" in /tmp/?*) ;; *) say "GLWD_DIR must be a folder under /tmp"; exit 1;; esac
rm -rf "$GLWD_DIR" && mkdir -p "$GLWD_DIR/webapp"

# Schema and the admin account come from Debian's own SQL, applied in one transaction (fast).
{ echo "BEGIN;"; zcat /usr/share/doc/glewlwyd/database/init.sqlite3.sql.gz; echo "COMMIT;"; } | sqlite3 "$GLWD_DIR/glewlwyd.db" >/dev/null
# The client backend only stores properties its data-format declares; declare the logout-related ones.
format=$(sqlite3 "$GLWD_DIR/glewlwyd.db" "SELECT gcmi_parameters FROM g_client_module_instance WHERE gcmi_name='database';" \
  | jq -c '.["data-format"].post_logout_redirect_uris = {multiple: true, read: true, write: true}')
sqlite3 "$GLWD_DIR/glewlwyd.db" "UPDATE g_client_module_instance SET gcmi_parameters='${format}' WHERE gcmi_name='database';"

# The private_key_jwt client's key, made by Glewlwyd's own tool (a private JWK the gateway loads as is).
rnbyc -j -g EC256 -k bff-client-1 -a ES256 -o "$GLWD_DIR/client-key.json" -p "$GLWD_DIR/client-jwks.json" 2>/dev/null
chmod 600 "$GLWD_DIR/client-key.json"

# Signing keys: RS256 (default) and ES256.
rnbyc -j -g RSA2048 -k rsa-1 -a RS256 -g EC256 -k ec-1 -a ES256 -o "$GLWD_DIR/jwks-private.json" -p "$GLWD_DIR/jwks-public.json" 2>/dev/null

# The login SPA: Debian ships symlinks the static file server will not follow, so dereference them.
for item in /usr/share/glewlwyd/webapp/*; do
  [ "$(basename "$item")" = config.json ] || cp -rL "$item" "$GLWD_DIR/webapp/" 2>/dev/null || true
done
cp /usr/share/glewlwyd/templates/config.json "$GLWD_DIR/webapp/config.json"

cat > "$GLWD_DIR/glewlwyd.conf" <<CONF
port=${GLWD_PORT}
bind_address="127.0.0.1"
external_url="${BASE}"
login_url="login.html"
api_prefix="api"
static_files_path="${GLWD_DIR}/webapp/"
allow_origin="*"
log_mode="file"
log_level="WARNING"
log_file="${GLWD_DIR}/glewlwyd.log"
cookie_secure=0
cookie_same_site="empty"
session_expiration=2419200
session_key="GLEWLWYD2_SESSION_ID"
admin_session_authentication="cookie,api_key"
profile_session_authentication="cookie"
allow_multiple_user_per_session=true
login_api_enabled=true
add_x_frame_option_header_deny=true
max_post_size=16778240
admin_scope="g_admin"
profile_scope="g_profile"
user_module_path="/usr/lib/glewlwyd/user"
user_middleware_module_path="/usr/lib/glewlwyd/user_middleware"
client_module_path="/usr/lib/glewlwyd/client"
user_auth_scheme_module_path="/usr/lib/glewlwyd/scheme"
plugin_module_path="/usr/lib/glewlwyd/plugin"
hash_algorithm="SHA512"
database = { type = "sqlite3"  path = "${GLWD_DIR}/glewlwyd.db" };
static_files_mime_types = (
  { extension = ".html" mime_type = "text/html" compress = 1 },
  { extension = ".css" mime_type = "text/css" compress = 1 },
  { extension = ".js" mime_type = "application/javascript" compress = 1 },
  { extension = ".json" mime_type = "application/json" compress = 1 },
  { extension = ".png" mime_type = "image/png" compress = 0 },
  { extension = ".ico" mime_type = "image/x-icon" compress = 0 },
  { extension = ".woff2" mime_type = "font/woff2" compress = 0 }
)
CONF

setsid nohup glewlwyd --config-file="$GLWD_DIR/glewlwyd.conf" >"$GLWD_DIR/stdout.log" 2>&1 </dev/null &
echo $! > "$GLWD_DIR/glewlwyd.pid"
for _ in $(seq 1 100); do
  curl -fs -o /dev/null "$BASE/config" && break
  kill -0 "$(cat "$GLWD_DIR/glewlwyd.pid")" 2>/dev/null || { say "glewlwyd exited:"; cat "$GLWD_DIR/stdout.log" "$GLWD_DIR/glewlwyd.log" >&2 || true; exit 1; }
  sleep 0.1
done

# Configure through the admin REST API.
jar="$GLWD_DIR/admin-cookies"
admin() { # METHOD PATH [JSON]
  local status body
  body=$(mktemp)
  status=$(curl -s -o "$body" -w '%{http_code}' -b "$jar" -c "$jar" -X "$1" -H 'Content-Type: application/json' ${3:+--data-binary "$3"} "$BASE/api$2")
  if [ "${status:0:1}" != 2 ]; then say "admin API $1 $2 answered $status: $(cat "$body")"; rm -f "$body"; return 1; fi
  rm -f "$body"
}
admin POST /auth/ '{"username":"admin","password":"password"}'

for scope in openid profile email offline_access api; do
  json=$(jq -nc --arg s "$scope" '{name: $s, display_name: $s, description: ("scope " + $s), password_required: true, password_max_age: 0, scheme: {}}')
  if [ "$scope" = openid ]; then admin PUT "/scope/openid" "$json"; else admin POST /scope/ "$json"; fi
done

for person in "alice:Alice Smith" "bob:Bob Jones"; do
  login=${person%%:*}; full=${person#*:}
  admin POST /user/ "$(jq -nc --arg u "$login" --arg n "$full" \
    '{username: $u, password: ($u + "-password"), name: $n, email: ($u + "@example.com"), enabled: true,
      scope: ["g_profile", "openid", "profile", "email", "offline_access", "api"]}')"
done

admin POST /client/ "$(jq -nc --arg o "$BFF_ORIGIN" '{
  client_id: "bff", name: "swift-bff", enabled: true, confidential: true, client_secret: "bff-secret",
  redirect_uri: [($o + "/signin-oidc")], post_logout_redirect_uris: [($o + "/signout-callback-oidc")],
  authorization_type: ["code", "refresh_token", "delete_token", "client_credentials"],
  token_endpoint_auth_method: ["client_secret_basic", "client_secret_post"], scope: ["api"],
  backchannel_logout_uri: ($o + "/bff/backchannel"), backchannel_logout_session_required: "true",
  frontchannel_logout_uri: ($o + "/bff/frontchannel"), frontchannel_logout_session_required: "true"}')"

# The same gateway origin as "bff", authenticating with private_key_jwt instead of a secret.
admin POST /client/ "$(jq -nc --arg o "$BFF_ORIGIN" --slurpfile jwks "$GLWD_DIR/client-jwks.json" '{
  client_id: "bff-jwt", name: "swift-bff (private_key_jwt)", enabled: true, confidential: true,
  redirect_uri: [($o + "/signin-oidc")], post_logout_redirect_uris: [($o + "/signout-callback-oidc")],
  authorization_type: ["code", "refresh_token", "delete_token"],
  token_endpoint_auth_method: ["private_key_jwt"], jwks: $jwks[0], scope: ["api"]}')"

plugin_parameters=$(jq -nc --arg iss "$ISSUER" --rawfile jwks "$GLWD_DIR/jwks-private.json" --argjson at "$GLWD_ACCESS_TOKEN_SECONDS" '{
  iss: $iss, "jwks-private": $jwks, "default-kid": "rsa-1", "jwks-show": true,
  "access-token-duration": $at, "refresh-token-duration": 1209600, "code-duration": 600,
  "refresh-token-rolling": true, "refresh-token-one-use": "always", "client-refresh-token-one-use-parameter": "refresh-token-one-use",
  "allow-non-oidc": false, "auth-type-code-enabled": true, "auth-type-code-revoke-replayed": true,
  "auth-type-token-enabled": false, "auth-type-id-token-enabled": true, "auth-type-none-enabled": false,
  "auth-type-password-enabled": false, "auth-type-client-enabled": true, "auth-type-device-enabled": false,
  "auth-type-refresh-enabled": true, scope: [], "additional-parameters": [],
  claims: [{name: "preferred_username", "user-property": "username", type: "string", mandatory: false, "on-demand": false, scope: ["profile"]}],
  "secret-type": "public", "name-claim": "on-demand", "name-claim-scope": ["profile"],
  "email-claim": "on-demand", "email-claim-scope": ["email"], "scope-claim": "no", "address-claim": {type: "no", mandatory: false},
  "allowed-scope": ["openid", "profile", "email", "offline_access", "api"],
  "pkce-allowed": true, "pkce-method-plain-allowed": false, "pkce-required": true, "pkce-required-public-client": true, "pkce-scopes": [],
  "introspection-revocation-allowed": true, "introspection-revocation-auth-scope": [], "introspection-revocation-allow-target-client": true,
  "register-client-allowed": false, "request-parameter-allow": true, "request-uri-allow-https-non-secure": true,
  "request-parameter-allow-encrypted": false, "request-maximum-exp": 3600,
  "session-management-allowed": true, "session-cookie-name": "GLEWLWYD2_OIDC_SID", "session-cookie-expiration": 2419200,
  "front-channel-logout-allowed": true, "back-channel-logout-allowed": true,
  "client-pubkey-parameter": "", "client-jwks-parameter": "jwks", "client-jwks_uri-parameter": "jwks_uri",
  "encrypt-out-token-allow": false,
  "oauth-dpop-allowed": true, "oauth-dpop-iat-duration": 60, "oauth-dpop-iat-gap-duration": 10, "oauth-dpop-nonce-mandatory": false,
  "oauth-par-allowed": true, "oauth-par-required": false, "oauth-par-duration": 90,
  "oauth-par-request_uri-prefix": "urn:ietf:params:oauth:request_uri:",
  "oauth-rar-allowed": false, "oauth-ciba-allowed": false,
  "resource-allowed": true, "resource-scope": {}, "resource-client-property": "", "resource-change-allowed": false}')
admin POST /mod/plugin/ "$(jq -nc --argjson p "$plugin_parameters" '{module: "oidc", name: "oidc", display_name: "OpenID Connect", enabled: true, parameters: $p}')"
admin DELETE /auth/ || true
rm -f "$jar"

for _ in $(seq 1 50); do curl -fs -o /dev/null "$ISSUER/.well-known/openid-configuration" && break; sleep 0.1; done
curl -fs -o /dev/null "$ISSUER/.well-known/openid-configuration" || { say "discovery does not answer"; exit 1; }
say "ready: pid $(cat "$GLWD_DIR/glewlwyd.pid"), client bff for ${BFF_ORIGIN}"
echo "$ISSUER"
