#!/usr/bin/env bash
# Runs a LemonLDAP::NG portal as an OpenID Provider on 127.0.0.1 for the interop tests and prints
# its issuer. The version must come from Debian bookworm-backports (2.17+): bookworm's own 2.16 has
# no back-channel logout. .ci/run adds that source and installs the packages; this script only
# configures and starts: users alice/bob (SQLite via DBI), client bff/bff-secret, RS256 key,
# refresh tokens with rotation, back-channel logout to the gateway, portal served by Starman.
#   LLNG_PORT (8180)  LLNG_DIR (/tmp/swift-bff-llng)  BFF_ORIGIN (http://localhost:5182)
set -euo pipefail
port="${LLNG_PORT:-8180}"
dir="${LLNG_DIR:-/tmp/swift-bff-llng}"
origin="${BFF_ORIGIN:-http://localhost:5182}"
issuer="http://127.0.0.1:$port"
here="$(cd "$(dirname "$0")" && pwd)"

version=$(dpkg-query -W -f='${Version}' liblemonldap-ng-portal-perl 2>/dev/null || true)
case "$version" in
  2.1[7-9]* | 2.[2-9]*) ;;
  *) echo "LemonLDAP::NG 2.17+ is needed (found '${version:-none}'): install it from bookworm-backports (.ci/run)" >&2; exit 1 ;;
esac

"$here/stop.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir"/conf "$dir"/sessions/lock "$dir"/psessions/lock "$dir"/oidc/lock "$dir"/cache

sqlite3 "$dir/users.db" <<'EOF'
CREATE TABLE users (user TEXT PRIMARY KEY, password TEXT NOT NULL, name TEXT, mail TEXT);
INSERT INTO users VALUES ('alice', 'alice-password', 'Alice Smith', 'alice@example.com');
INSERT INTO users VALUES ('bob', 'bob-password', 'Bob Jones', 'bob@example.com');
EOF
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/signing.pem" 2>/dev/null
openssl pkey -in "$dir/signing.pem" -pubout -out "$dir/signing.pub" 2>/dev/null

cat > "$dir/lemonldap-ng.ini" <<EOF
[all]
logLevel = warn
[configuration]
type = File
dirName = $dir/conf
[portal]
staticPrefix = /static
templateDir = /usr/share/lemonldap-ng/portal/templates
languages = en
EOF

# The configuration store: one JSON document (LLNG's "File" backend).
jq -n --arg issuer "$issuer" --arg dir "$dir" --arg origin "$origin" \
  --rawfile key "$dir/signing.pem" --rawfile pub "$dir/signing.pub" --argjson now "$(date +%s)" '
def storage(sub): {Directory: ($dir + "/" + sub), LockDirectory: ($dir + "/" + sub + "/lock"),
  generateModule: "Lemonldap::NG::Common::Apache::Session::Generate::SHA256"};
{
  cfgNum: 1, cfgAuthor: "swift-bff interop", cfgDate: $now, cfgVersion: "2.21.0",
  portal: ($issuer + "/"), domain: "", cookieName: "llng", securedCookie: 0, httpOnly: 1, sameSite: "Lax",
  trustedDomains: "127.0.0.1 localhost", requireToken: 1, checkXSS: 1,
  authentication: "DBI", userDB: "Same", passwordDB: "Null", registerDB: "Null",
  dbiAuthChain: ("dbi:SQLite:dbname=" + $dir + "/users.db"), dbiAuthUser: "", dbiAuthPassword: "",
  dbiAuthTable: "users", dbiUserTable: "users", dbiAuthLoginCol: "user", dbiAuthPasswordCol: "password",
  dbiAuthPasswordHash: "", dbiMailCol: "mail", dbiExportedVars: {uid: "user", cn: "name", mail: "mail"},
  exportedVars: {}, macros: {}, groups: {}, whatToTrace: "uid",
  globalStorage: "Apache::Session::File", globalStorageOptions: storage("sessions"),
  persistentStorage: "Apache::Session::File", persistentStorageOptions: storage("psessions"),
  oidcStorage: "Apache::Session::File", oidcStorageOptions: storage("oidc"),
  localSessionStorage: "Cache::FileCache",
  localSessionStorageOptions: {namespace: "llng", default_expires_in: 600, cache_root: ($dir + "/cache"), cache_depth: 3},
  captcha_login_enabled: 0, captcha_mail_enabled: 0, captcha_register_enabled: 0,
  loginHistoryEnabled: 0, notification: 0, portalCheckLogins: 0, portalDisplayLogout: 1,
  locationRules: {}, applicationList: {}, exportedHeaders: {}, reloadUrls: {},
  issuerDBOpenIDConnectActivation: 1, issuerDBOpenIDConnectPath: "^/oauth2/", issuerDBOpenIDConnectRule: "1",
  oidcServiceMetaDataIssuer: $issuer, oidcServiceKeyTypeSig: "RSA", oidcServiceKeyIdSig: "llng-rsa",
  oidcServicePrivateKeySig: $key, oidcServicePublicKeySig: $pub,
  oidcServiceAllowAuthorizationCodeFlow: 1, oidcServiceAllowImplicitFlow: 0, oidcServiceAllowHybridFlow: 0,
  oidcServiceAllowDynamicRegistration: 0, oidcServiceMetaDataDisallowNoneAlg: 1,
  oidcServiceAccessTokenExpiration: 300, oidcServiceIDTokenExpiration: 300,
  oidcServiceAuthorizationCodeExpiration: 60, oidcServiceOfflineSessionExpiration: 86400,
  oidcRPMetaDataOptions: {bff: {
    oidcRPMetaDataOptionsClientID: "bff", oidcRPMetaDataOptionsClientSecret: "bff-secret",
    oidcRPMetaDataOptionsDisplayName: "swift-bff", oidcRPMetaDataOptionsPublic: 0, oidcRPMetaDataOptionsAuthMethod: "",
    oidcRPMetaDataOptionsRedirectUris: ($origin + "/signin-oidc"),
    oidcRPMetaDataOptionsPostLogoutRedirectUris: ($origin + "/signout-callback-oidc"),
    oidcRPMetaDataOptionsRequirePKCE: 1, oidcRPMetaDataOptionsBypassConsent: 1,
    oidcRPMetaDataOptionsAllowOffline: 1, oidcRPMetaDataOptionsRefreshToken: 1,
    oidcRPMetaDataOptionsRefreshTokenRotation: 1,
    oidcRPMetaDataOptionsIDTokenSignAlg: "RS256", oidcRPMetaDataOptionsAccessTokenJWT: 1,
    oidcRPMetaDataOptionsAccessTokenSignAlg: "RS256", oidcRPMetaDataOptionsAdditionalAudiences: "api",
    oidcRPMetaDataOptionsLogoutUrl: ($origin + "/bff/backchannel"), oidcRPMetaDataOptionsLogoutType: "back",
    oidcRPMetaDataOptionsLogoutSessionRequired: 1, oidcRPMetaDataOptionsLogoutBypassConfirm: 0,
    oidcRPMetaDataOptionsUserIDAttr: "uid"}},
  oidcRPMetaDataExportedVars: {bff: {name: "cn", email: "mail", preferred_username: "uid"}}
}' > "$dir/conf/lmConf-1.json"

cat > "$dir/portal.psgi" <<'EOF'
use strict;
use Plack::Builder;
use Plack::App::File;
use Lemonldap::NG::Portal::Main;
my $portal = Lemonldap::NG::Portal::Main->run({});
builder {
    mount '/static' => Plack::App::File->new(root => '/usr/share/lemonldap-ng/portal/htdocs/static')->to_app;
    mount '/' => $portal;
};
EOF

# LemonLDAP::NG posts the logout token synchronously while it handles the logout request: with a
# single worker, a gateway that fetches the JWKS to validate that token would wait on it. Three workers.
cd "$dir"
LLNG_DEFAULTCONFFILE="$dir/lemonldap-ng.ini" setsid starman --listen "127.0.0.1:$port" --workers 3 --preload-app \
  --pid "$dir/starman.pid" --error-log "$dir/portal.log" "$dir/portal.psgi" >"$dir/stdout.log" 2>&1 </dev/null &
for _ in $(seq 1 150); do
  if curl -fsS -o /dev/null "$issuer/.well-known/openid-configuration" 2>/dev/null; then echo "$issuer"; exit 0; fi
  sleep 0.1
done
echo "LemonLDAP::NG did not start; see $dir/portal.log" >&2
tail -20 "$dir/portal.log" >&2 || true
exit 1
