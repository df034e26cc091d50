#!/usr/bin/env python3
"""One interop scenario of the `bff serve` gateway against a real identity provider.

The gateway runs as a process (`bff serve --config`, SQLite session store) in front of a small echo
API, and a `requests` session plays the browser:

  login -> /bff/user -> remote API call (the upstream sees a bearer token) -> forced refresh
  (refreshBeforeExpiry longer than the IdP's token lifetime, so every API call refreshes, with
  rotation) -> a route naming an RFC 8707 resource the IdP refuses (403, session and refresh token
  kept) -> RP-initiated logout at the BFF (id_token_hint) completed at the IdP -> refresh token
  rejected by the IdP afterwards -> where the IdP supports it, logout started at the IdP ends the
  BFF session through back-channel logout.

Each step is a cell of the README's interop matrix. Results go to `<out>/<idp>.json`; the exit
status is 1 when a step that the IdP supports failed. Tokens are compared, never printed.

  interop.py --idp glewlwyd|dot|lemonldap --issuer URL --port 5180 --bff .build/debug/bff --out DIR
"""
import argparse
import base64
import http.server
import json
import os
import re
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

import requests

CSRF = {"X-CSRF": "1"}


# ------------------------------------------------------------------------------------ helpers
class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


class LoopbackBrowser(requests.Session):
    """Browsers treat http://localhost as a secure context and send it `Secure` cookies (the
    gateway's `__Host-` cookies); `requests` would not, so cookies from loopback hosts are kept
    without the flag (the attribute itself is checked on the Set-Cookie header)."""

    def request(self, *args, **kwargs):
        response = super().request(*args, **kwargs)
        for cookie in self.cookies:
            if cookie.domain in ("localhost.local", "localhost", "127.0.0.1"):
                cookie.secure = False
        return response


def new_browser():
    return LoopbackBrowser()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def query(url):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))


def absolute(location, base):
    return urllib.parse.urljoin(base, location)


class EchoHandler(http.server.BaseHTTPRequestHandler):
    """The remote API: answers with what it received (method, path, Authorization)."""

    def do_GET(self):
        body = json.dumps(
            {"method": "GET", "path": self.path, "authorization": self.headers.get("Authorization")}
        ).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def start_echo():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), EchoHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def start_gateway(args, workdir, echo_port):
    key = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode().rstrip("=")
    config = f"""
server:
  listen: "127.0.0.1:{args.port}"
  publicOrigin: "http://localhost:{args.port}"
  environment: development
  dataDirectory: "{workdir}"
keys:
  - id: interop
    secret: "{key}"
oidc:
  issuer: "{args.issuer}"
  clientId: bff
  clientSecret: "env:BFF_INTEROP_CLIENT_SECRET"
  scopes: [openid, profile, email, offline_access]
  fetchUserInfo: {"true" if args.idp == "lemonldap" else "false"}   # LemonLDAP::NG puts names only in userinfo
session:
  store: sqlite
  sqlite: {{path: "{workdir}/sessions.sqlite"}}
tokens:
  refreshBeforeExpiry: 24h   # longer than any access token: every API call refreshes
diagnostics: {{showTokens: true}}
admin: {{listen: null}}
apis:
  - path: /api/echo
    upstream: "http://127.0.0.1:{echo_port}/echo"
    token: user
  - path: /api/orders
    upstream: "http://127.0.0.1:{echo_port}/orders"
    token: user
    resource: "{ORDERS}"
"""
    path = os.path.join(workdir, "bff.yaml")
    with open(path, "w") as f:
        f.write(config)
    log = open(os.path.join(args.out, f"{args.idp}-gateway.log"), "w")
    env = dict(os.environ, BFF_INTEROP_CLIENT_SECRET="bff-secret")
    process = subprocess.Popen([args.bff, "serve", "--config", path], stdout=log, stderr=log, env=env)
    origin = f"http://localhost:{args.port}"
    for _ in range(200):
        try:
            requests.get(origin + "/bff/user", headers=CSRF, timeout=1)
            return process, origin
        except requests.ConnectionError:
            if process.poll() is not None:
                raise Failure(f"bff serve exited with {process.returncode}; see {log.name}")
            time.sleep(0.05)
    raise Failure("bff serve did not start listening")


ORDERS = "https://orders.example"


# ------------------------------------------------------------------------------- IdP drivers
class Provider:
    """What every driver shares: the issuer, its origin, and the refresh-token check."""

    token_path = "/token"

    def __init__(self, issuer):
        self.issuer = issuer
        self.base = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(issuer))

    def refresh_rejected(self, refresh_token):
        """Whether the IdP now refuses the refresh token (it was revoked at logout)."""
        response = requests.post(
            self.issuer + self.token_path, data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=("bff", "bff-secret"))
        return response.status_code in (400, 401)


class Glewlwyd(Provider):
    """Glewlwyd's login page is a JavaScript app over its JSON API; this drives the same API."""

    name = "glewlwyd"
    # Glewlwyd 2.7.5 answers invalid_target to every resource indicator on the refresh grant (and
    # its refresh tokens would carry a granted resource into later refreshes): the refusal path.
    supports = {"revocation": True, "backchannel": True, "resource": "refused"}

    def login(self, browser, authorize_url, origin, user="alice"):
        page = browser.get(authorize_url, allow_redirects=False)
        check(page.status_code == 302, f"authorize: {page.status_code}")
        login = absolute(page.headers["location"], self.base)
        params = query(login)
        auth = browser.post(self.base + "/api/auth/", json={"username": user, "password": user + "-password"})
        check(auth.status_code == 200, f"Glewlwyd password login: {auth.status_code}")
        scope = params.get("scope", "openid profile email offline_access")
        grant = browser.put(self.base + "/api/auth/grant/bff", json={"scope": scope})
        check(grant.status_code == 200, f"Glewlwyd consent: {grant.status_code}")
        callback = params["callback_url"]
        url = callback + ("&" if "?" in callback else "?") + "g_continue"
        return follow_until(browser, url, origin, self.base)

    def end_session(self, browser, end_session_url, origin):
        page = browser.get(end_session_url, allow_redirects=False)
        check(page.status_code == 302, f"end_session: {page.status_code}")
        params = query(absolute(page.headers["location"], self.base))
        check(params.get("prompt") == "end_session", "Glewlwyd shows its logout page")
        plugin = params.get("plugin", "oidc")
        deleted = browser.delete(f"{self.base}/api/{plugin}/session/{urllib.parse.quote(params['sid'])}")
        check(deleted.status_code == 200, f"Glewlwyd ended its session: {deleted.status_code}")
        browser.delete(self.base + "/api/auth/")
        return params["callback_url"]

    def logout_at_idp(self, browser, sid):
        # What Glewlwyd's own logout page does; Glewlwyd then calls the back-channel URI.
        deleted = browser.delete(f"{self.base}/api/oidc/session/{urllib.parse.quote(sid)}")
        check(deleted.status_code == 200, f"Glewlwyd logout: {deleted.status_code}")
        browser.delete(self.base + "/api/auth/")


class DjangoOAuthToolkit(Provider):
    """django-oauth-toolkit: Django's login form, consent skipped for the first-party client."""

    name = "dot"
    supports = {"revocation": True, "backchannel": False, "resource": False}
    token_path = "/token/"

    def login(self, browser, authorize_url, origin, user="alice"):
        page = browser.get(authorize_url, allow_redirects=False)
        check(page.status_code == 302, f"authorize: {page.status_code}")
        login_url = absolute(page.headers["location"], self.base)
        form = browser.get(login_url)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form.text)
        check(token is not None, "Django login form has a CSRF token")
        submitted = browser.post(
            login_url, allow_redirects=False,
            data={"csrfmiddlewaretoken": token.group(1), "username": user, "password": user + "-password",
                  "next": query(login_url).get("next", "")},
            headers={"Referer": login_url})
        check(submitted.status_code == 302, f"Django login: {submitted.status_code}")
        return follow_until(browser, absolute(submitted.headers["location"], self.base), origin, self.base)

    def end_session(self, browser, end_session_url, origin):
        page = browser.get(end_session_url, allow_redirects=False)
        check(page.status_code == 302, f"end_session: {page.status_code}")
        return absolute(page.headers["location"], self.base)


class LemonLDAP(Provider):
    """LemonLDAP::NG: an HTML login form with a one-time token; logout confirmation form."""

    name = "lemonldap"
    # No RFC 7009 endpoint: the gateway drops the refresh token itself (and it stays valid at LLNG).
    supports = {"revocation": False, "backchannel": True, "resource": False}

    def login(self, browser, authorize_url, origin, user="alice"):
        page = browser.get(authorize_url, allow_redirects=False)
        for _ in range(5):
            if page.status_code != 302:
                break
            page = browser.get(absolute(page.headers["location"], self.base), allow_redirects=False)
        check(page.status_code in (200, 401), f"LemonLDAP login page: {page.status_code}")
        fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
        action = re.search(r'<form[^>]*action="([^"]*)"', page.text)
        target = absolute(action.group(1) if action and action.group(1) not in ("", "#") else page.url, page.url)
        fields.update({"user": user, "password": user + "-password"})
        submitted = browser.post(target, data=fields, allow_redirects=False)
        check(submitted.status_code in (302, 303), f"LemonLDAP login: {submitted.status_code}")
        return follow_until(browser, absolute(submitted.headers["location"], self.base), origin, self.base)

    def end_session(self, browser, end_session_url, origin):
        page = browser.get(end_session_url, allow_redirects=False)
        if page.status_code == 200 and "<form" in page.text:  # the logout confirmation
            fields = dict(re.findall(r'<input[^>]*name="([^"]+)"[^>]*value="([^"]*)"', page.text))
            action = re.search(r'<form[^>]*action="([^"]*)"', page.text)
            target = absolute(action.group(1) if action and action.group(1) else page.url, page.url)
            fields["confirm"] = "1"
            page = browser.post(target, data=fields, allow_redirects=False)
        check(page.status_code in (302, 303), f"LemonLDAP logout: {page.status_code}")
        return absolute(page.headers["location"], self.base)

    def logout_at_idp(self, browser, sid):
        # The portal's own logout link; LemonLDAP::NG calls the back-channel URI before answering.
        page = browser.get(self.base + "/?logout=1", allow_redirects=False)
        check(page.status_code in (200, 302), f"LemonLDAP portal logout: {page.status_code}")



def follow_until(browser, url, origin, base):
    """Follows IdP redirects until one points at the gateway; then completes the gateway's callback."""
    for _ in range(10):
        if url.startswith(origin):
            break
        page = browser.get(url, allow_redirects=False)
        check(page.status_code in (302, 303), f"IdP redirect chain stopped at {page.status_code}")
        url = absolute(page.headers["location"], base)
    check(url.startswith(origin + "/signin-oidc?"), "the IdP returned to the gateway's callback")
    finished = browser.get(url, allow_redirects=False)
    check(finished.status_code == 302, f"callback: {finished.status_code} {finished.text[:200]}")
    session_cookie = [line for line in finished.raw.headers.getlist("Set-Cookie") if line.startswith("__Host-bff-session=")]
    check(len(session_cookie) == 1, "the callback sets the session cookie")
    attributes = [part.strip().lower() for part in session_cookie[0].split(";")[1:]]
    for attribute in ("secure", "httponly", "samesite=strict", "path=/"):
        check(attribute in attributes, f"session cookie has {attribute}")
    check(not any(a.startswith("domain=") for a in attributes), "session cookie is host-only")
    return finished.headers["location"]


# ---------------------------------------------------------------------------------- scenario
def run(args):
    idp = {"glewlwyd": Glewlwyd, "dot": DjangoOAuthToolkit, "lemonldap": LemonLDAP}[args.idp](args.issuer)
    results = {}
    workdir = tempfile.mkdtemp(prefix=f"bff-interop-{args.idp}-")
    echo = start_echo()
    process, origin = start_gateway(args, workdir, echo.server_address[1])
    browser = new_browser()

    def step(name, body):
        try:
            body()
            results[name] = "pass"
            print(f"  {name}: pass")
        except Exception as error:  # one failed cell must not hide the others
            results[name] = f"fail: {error}"
            print(f"  {name}: FAIL {error}")

    state = {}
    try:
        def login():
            start = browser.get(origin + "/bff/login?returnUrl=%2Fhome", allow_redirects=False)
            check(start.status_code == 302, f"/bff/login: {start.status_code}")
            check(start.headers["location"].startswith(idp.base), "redirected to the IdP")
            back = idp.login(browser, start.headers["location"], origin)
            check(back == "/home", f"returned to {back}")
            user = browser.get(origin + "/bff/user", headers=CSRF)
            check(user.status_code == 200, f"/bff/user: {user.status_code}")
            claims = {c["type"]: c["value"] for c in user.json()}
            check(claims.get("name") == "Alice Smith", f"the user's name is among the claims ({sorted(claims)})")
            check("eyJ" not in user.text, "no token in /bff/user")
            check(any(c.name == "__Host-bff-session" for c in browser.cookies), "__Host- session cookie")
            state["user"] = claims

        def api():
            page = browser.get(origin + "/api/echo/hello?x=1", headers=CSRF)
            check(page.status_code == 200, f"API: {page.status_code}")
            seen = page.json()
            check((seen["authorization"] or "").startswith("Bearer "), "the upstream received a bearer token")
            check(seen["path"] == "/echo/hello?x=1", f"path forwarded: {seen['path']}")
            state["token"] = seen["authorization"]

        def refresh():
            tokens = [state["token"]]
            for round_ in range(3):
                page = browser.get(origin + f"/api/echo/round/{round_}", headers=CSRF)
                check(page.status_code == 200, f"API after refresh round {round_}: {page.status_code}")
                tokens.append(page.json()["authorization"])
            check(len(set(tokens)) == 4, "each call used a freshly refreshed access token")

        def resource_refused():
            # The IdP refuses the route's resource (invalid_target): 403 for the call, the session
            # and its refresh token untouched — the next call that needs a refresh still works.
            orders = browser.get(origin + "/api/orders/1", headers=CSRF)
            check(orders.status_code == 403, f"resource route: {orders.status_code}")
            check("urn:bff:problem:forbidden" in orders.text, "forbidden problem")
            check(not orders.headers.get("set-cookie"), "the session cookie is left alone")
            own = browser.get(origin + "/api/echo/after-refusal", headers=CSRF)
            check(own.status_code == 200, f"own-token route (a refresh) after the refusal: {own.status_code}")
            check(browser.get(origin + "/bff/user", headers=CSRF).status_code == 200, "session alive")

        def rp_logout():
            diagnostics = browser.get(origin + "/bff/diagnostics", headers=CSRF).json()
            state["refresh_token"] = (diagnostics.get("tokens") or {}).get("refreshToken") or diagnostics.get(
                "refreshToken")
            logout_url = state["user"]["bff:logout_url"]
            page = browser.get(origin + logout_url, allow_redirects=False)
            check(page.status_code == 302, f"logout: {page.status_code}")
            end_session = page.headers["location"]
            check("id_token_hint=" in end_session, "RP-initiated logout carries id_token_hint")
            check(browser.get(origin + "/bff/user", headers=CSRF).status_code == 401, "session ended at the BFF")
            callback = idp.end_session(browser, end_session, origin)
            check(callback.startswith(origin + "/signout-callback-oidc"), f"IdP returned to {callback}")
            final = browser.get(callback, allow_redirects=False)
            check(final.status_code == 302 and final.headers["location"] == "/", "post-logout callback → /")

        def revocation():
            check(state.get("refresh_token"), "refresh token captured before logout")
            check(idp.refresh_rejected(state["refresh_token"]), "the IdP rejects the refresh token after logout")

        def backchannel():
            start = browser.get(origin + "/bff/login", allow_redirects=False)
            idp.login(browser, start.headers["location"], origin)
            user = browser.get(origin + "/bff/user", headers=CSRF)
            check(user.status_code == 200, "logged in again")
            claims = {c["type"]: c["value"] for c in user.json()}
            sid = claims.get("sid") or query(origin + claims["bff:logout_url"]).get("sid")
            idp.logout_at_idp(browser, sid)
            for _ in range(100):
                if browser.get(origin + "/bff/user", headers=CSRF).status_code == 401:
                    return
                time.sleep(0.05)
            raise Failure("the BFF session survived logout at the IdP")

        step("login", login)
        step("api", api)
        step("refresh", refresh)
        if idp.supports["resource"] == "refused":
            step("resource", resource_refused)
        else:
            results["resource"] = "not supported by the IdP"
        step("rp_logout", rp_logout)
        if idp.supports["revocation"]:
            step("revocation", revocation)
        else:
            results["revocation"] = "not supported by the IdP"
        if idp.supports["backchannel"]:
            step("backchannel", backchannel)
        else:
            results["backchannel"] = "not supported by the IdP"
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        echo.shutdown()
    with open(os.path.join(args.out, f"{args.idp}.json"), "w") as f:
        json.dump({"idp": args.idp, "issuer": args.issuer, "results": results}, f, indent=2)
    failed = [name for name, value in results.items() if value.startswith("fail")]
    print(f"{args.idp}: {len(results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--idp", required=True, choices=["glewlwyd", "dot", "lemonldap"])
    parser.add_argument("--issuer", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bff", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    for url in (args.issuer,):
        host = urllib.parse.urlsplit(url).hostname
        if host not in ("127.0.0.1", "localhost"):
            sys.exit(f"refusing a non-loopback issuer: {url}")
    sys.exit(run(args))


if __name__ == "__main__":
    main()
