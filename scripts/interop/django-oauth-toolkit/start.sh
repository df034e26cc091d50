#!/usr/bin/env bash
# Runs django-oauth-toolkit (PyPI) as an OpenID Provider on 127.0.0.1 for the interop tests and
# prints its issuer. DOT is a library, so this writes a small Django project around it: settings,
# URLs, a login page and a claims validator; users alice/bob and the confidential client bff/bff-secret.
#   DOT_PORT (8100)  DOT_DIR (/tmp/swift-bff-dot)  DOT_VENV (/tmp/swift-bff-venv)
#   BFF_ORIGIN (http://localhost:5181): the gateway's public origin registered for the client
set -euo pipefail
port="${DOT_PORT:-8100}"
dir="${DOT_DIR:-/tmp/swift-bff-dot}"
venv="${DOT_VENV:-/tmp/swift-bff-venv}"
origin="${BFF_ORIGIN:-http://localhost:5181}"
here="$(cd "$(dirname "$0")" && pwd)"

if ! "$venv/bin/python" -c "import oauth2_provider, gunicorn" 2>/dev/null; then
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "django-oauth-toolkit==3.4.1" gunicorn >&2
fi

"$here/stop.sh" >/dev/null 2>&1 || true
rm -rf "$dir"
mkdir -p "$dir/dotidp/templates/registration"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$dir/signing.pem" 2>/dev/null

touch "$dir/dotidp/__init__.py"
cat > "$dir/dotidp/settings.py" <<EOF
import os
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET_KEY = "interop-test-only"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes", "django.contrib.sessions",
                  "django.contrib.messages", "oauth2_provider"]
MIDDLEWARE = ["django.contrib.sessions.middleware.SessionMiddleware",
              "django.middleware.csrf.CsrfViewMiddleware",
              "django.contrib.auth.middleware.AuthenticationMiddleware",
              "django.contrib.messages.middleware.MessageMiddleware"]
ROOT_URLCONF = "dotidp.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "DIRS": [HERE + "/templates"],
              "APP_DIRS": True, "OPTIONS": {"context_processors": [
                  "django.template.context_processors.request", "django.contrib.auth.context_processors.auth",
                  "django.contrib.messages.context_processors.messages"]}}]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "$dir/db.sqlite3"}}
USE_TZ = True
LOGIN_URL = "/accounts/login/"
SESSION_COOKIE_NAME = "dot_session"
# Fast hashing: client secrets are hashed too, and PBKDF2 makes every token request slow on 2 cores.
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
OAUTH2_PROVIDER = {
    "OIDC_ENABLED": True,
    "OIDC_RSA_PRIVATE_KEY": open("$dir/signing.pem").read(),
    "OAUTH2_VALIDATOR_CLASS": "dotidp.claims.Claims",
    "SCOPES": {"openid": "OpenID", "profile": "Profile", "email": "E-mail", "offline_access": "Offline", "api": "API"},
    "PKCE_REQUIRED": True,
    "ACCESS_TOKEN_EXPIRE_SECONDS": 300,
    "ROTATE_REFRESH_TOKEN": True,
    "REFRESH_TOKEN_REUSE_PROTECTION": True,
    "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 0,
    "OIDC_RP_INITIATED_LOGOUT_ENABLED": True,
    "OIDC_RP_INITIATED_LOGOUT_ALWAYS_PROMPT": False,
    "OIDC_RP_INITIATED_LOGOUT_STRICT_REDIRECT_URIS": True,
    "OIDC_RP_INITIATED_LOGOUT_DELETE_TOKENS": True,
}
EOF
cat > "$dir/dotidp/claims.py" <<'EOF'
from oauth2_provider.oauth2_validators import OAuth2Validator


class Claims(OAuth2Validator):
    def get_additional_claims(self):
        return {"name": lambda r: r.user.get_full_name(), "preferred_username": lambda r: r.user.username,
                "email": lambda r: r.user.email}
EOF
cat > "$dir/dotidp/urls.py" <<'EOF'
from django.contrib.auth import views
from django.urls import include, path
from oauth2_provider import urls as oauth2

urlpatterns = [path("o/", include(oauth2)), path("accounts/login/", views.LoginView.as_view(), name="login")]
# RFC 8414 metadata (the only place DOT lists its revocation endpoint)
urlpatterns += [path("", include((oauth2.metadata_urlpatterns, "metadata")))]
EOF
cat > "$dir/dotidp/templates/registration/login.html" <<'EOF'
<!doctype html><html><head><title>Sign in</title></head><body>
<form method="post" action="{% url 'login' %}">{% csrf_token %}
{{ form.username }} {{ form.password }}
<input type="hidden" name="next" value="{{ next }}"><button type="submit" id="sign-in">Sign in</button>
</form></body></html>
EOF

export DJANGO_SETTINGS_MODULE=dotidp.settings PYTHONPATH="$dir"
cd "$dir"
"$venv/bin/python" -m django migrate -v 0
BFF_ORIGIN="$origin" "$venv/bin/python" - <<'EOF'
import os
import django
django.setup()
from django.contrib.auth import get_user_model
from oauth2_provider.models import get_application_model
users = get_user_model()
users.objects.create_user("alice", "alice@example.com", "alice-password", first_name="Alice", last_name="Smith")
users.objects.create_user("bob", "bob@example.com", "bob-password", first_name="Bob", last_name="Jones")
clients = get_application_model()
origin = os.environ["BFF_ORIGIN"]
clients.objects.create(
    client_id="bff", client_secret="bff-secret", name="swift-bff", client_type=clients.CLIENT_CONFIDENTIAL,
    authorization_grant_type=clients.GRANT_AUTHORIZATION_CODE, redirect_uris=origin + "/signin-oidc",
    post_logout_redirect_uris=origin + "/signout-callback-oidc", algorithm=clients.RS256_ALGORITHM,
    skip_authorization=True)
EOF
cat > "$dir/dotidp/wsgi_app.py" <<'EOF'
from django.core.wsgi import get_wsgi_application
app = get_wsgi_application()
EOF
"$venv/bin/gunicorn" dotidp.wsgi_app:app --chdir "$dir" --bind "127.0.0.1:$port" --workers 1 --threads 4 \
  --pid "$dir/gunicorn.pid" --daemon --error-logfile "$dir/gunicorn.log"
issuer="http://127.0.0.1:$port/o"
for _ in $(seq 1 100); do
  curl -fsS "$issuer/.well-known/openid-configuration" >/dev/null 2>&1 && { echo "$issuer"; exit 0; }
  sleep 0.1
done
echo "django-oauth-toolkit did not start; see $dir/gunicorn.log" >&2
exit 1
