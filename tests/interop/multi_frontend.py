#!/usr/bin/env python3
"""Two identity providers behind one `bff serve`, and reloading its file while it runs.

Frontend `glw` (Host localhost:PORT) logs in at Glewlwyd (client bff); frontend `dev` (Host
127.0.0.1:PORT) at the development IdP (`bff dev-idp`, client dev). Checks: each logs in at its own
IdP and shows that IdP's claims; each API route gets its own IdP's token; a session cookie copied to
the other frontend (same cookie name, other host) is anonymous; `bff reload` applies a changed
upstream while calls keep succeeding; a broken file is refused by `bff reload` (exit 1) and, sent by
SIGHUP anyway, leaves the gateway serving the old configuration; logout at Glewlwyd (back-channel)
ends the glw session only.
"""

import argparse
import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time

import requests

from interop import CSRF, Failure, Glewlwyd, check, free_port, new_browser, query, start_echo


def write(path, text):
    temporary = path + ".tmp"
    with open(temporary, "w") as f:
        f.write(text)
    os.replace(temporary, path)


def gateway_config(port, workdir, glewlwyd, dev_issuer, echo_port, dev_path):
    key = base64.urlsafe_b64encode(bytes(range(32))).decode().rstrip("=")
    return f"""
server:
  listen: "127.0.0.1:{port}"
  environment: development
  dataDirectory: "{workdir}"
keys:
  - {{id: interop, secret: "{key}"}}
session:
  store: sqlite
  sqlite: {{path: "{workdir}/sessions.sqlite"}}
  cookieName: "__Host-bff-session"
admin: {{listen: null}}
oidc:
  issuer: "{glewlwyd}"
  clientId: bff
  clientSecret: "env:BFF_INTEROP_CLIENT_SECRET"
  scopes: [openid, profile, email, offline_access]
frontends:
  - name: glw
    match: {{host: "localhost:{port}"}}
    publicOrigin: "http://localhost:{port}"
    apis:
      - {{path: /api/echo, upstream: "http://127.0.0.1:{echo_port}/glw", token: user}}
  - name: dev
    match: {{host: "127.0.0.1:{port}"}}
    publicOrigin: "http://127.0.0.1:{port}"
    oidc: {{issuer: "{dev_issuer}", clientId: dev, clientSecret: dev-secret, scopes: [openid, profile]}}
    apis:
      - {{path: /api/echo, upstream: "http://127.0.0.1:{echo_port}/{dev_path}", token: user}}
"""


def dev_idp_login(browser, origin, issuer):
    start = browser.get(origin + "/bff/login", allow_redirects=False)
    check(start.status_code == 302, f"dev /bff/login: {start.status_code}")
    check(start.headers["location"].startswith(issuer), "dev frontend logs in at the dev IdP")
    form = browser.get(start.headers["location"])
    marker = 'name="request_id" value="'
    check(marker in form.text, "the dev IdP's login form")
    request_id = form.text.split(marker, 1)[1].split('"', 1)[0]
    submitted = browser.post(issuer + "/authorize", data={"request_id": request_id, "username": "bob",
                                                          "password": "bob"}, allow_redirects=False)
    check(submitted.status_code == 302, f"dev IdP form: {submitted.status_code}")
    back = browser.get(submitted.headers["location"], allow_redirects=False)
    check(back.status_code == 302, f"dev callback: {back.status_code} {back.text[:200]}")


def claims(browser, origin):
    page = browser.get(origin + "/bff/user", headers=CSRF)
    if page.status_code != 200:
        return page.status_code, {}
    return 200, {c["type"]: c["value"] for c in page.json()}


def run(args):
    results = {}
    workdir = tempfile.mkdtemp(prefix="bff-interop-multi-")
    port = args.port
    glw_origin, dev_origin = f"http://localhost:{port}", f"http://127.0.0.1:{port}"
    # The development IdP, as a second IdP (its own process, its own keys).
    dev_port = free_port()
    dev_issuer = f"http://127.0.0.1:{dev_port}"
    dev_config = os.path.join(workdir, "dev-idp.yaml")
    write(dev_config, f"""listen: "127.0.0.1:{dev_port}"
clients:
  - {{clientId: dev, clientSecret: dev-secret, redirectUris: ["{dev_origin}/signin-oidc"],
     postLogoutRedirectUris: ["{dev_origin}/signout-callback-oidc"]}}
""")
    dev_log = open(os.path.join(args.out, "multi-dev-idp.log"), "w")
    dev_idp = subprocess.Popen([args.bff, "dev-idp", "--config", dev_config], stdout=dev_log, stderr=dev_log)
    echo = start_echo()
    config = os.path.join(workdir, "bff.yaml")
    write(config, gateway_config(port, workdir, args.issuer, dev_issuer, echo.server_address[1], "dev"))
    log_path = os.path.join(args.out, "multi-gateway.log")
    log = open(log_path, "w")
    env = dict(os.environ, BFF_INTEROP_CLIENT_SECRET="bff-secret")
    gateway = subprocess.Popen([args.bff, "serve", "--config", config], stdout=log, stderr=log, env=env)
    glewlwyd = Glewlwyd(args.issuer)
    glw, dev = new_browser(), new_browser()

    def step(name, body):
        try:
            body()
            results[name] = "pass"
            print(f"  {name}: pass")
        except Exception as error:  # one failed cell must not hide the others
            results[name] = f"fail: {error}"
            print(f"  {name}: FAIL {error}")

    def wait_listening():
        for _ in range(200):
            try:
                requests.get(dev_origin + "/bff/user", headers=CSRF, timeout=1)
                requests.get(dev_issuer + "/.well-known/openid-configuration", timeout=1)
                return
            except requests.ConnectionError:
                if gateway.poll() is not None:
                    raise Failure(f"bff serve exited with {gateway.returncode}; see {log_path}")
                time.sleep(0.05)
        raise Failure("the gateway or the dev IdP did not start")

    def login_both():
        wait_listening()
        start = glw.get(glw_origin + "/bff/login", allow_redirects=False)
        check(start.status_code == 302 and start.headers["location"].startswith(glewlwyd.base),
              "glw logs in at Glewlwyd")
        glewlwyd.login(glw, start.headers["location"], glw_origin)
        dev_idp_login(dev, dev_origin, dev_issuer)
        status, glw_claims = claims(glw, glw_origin)
        check(status == 200 and glw_claims.get("name") == "Alice Smith", f"glw user: {status} {glw_claims}")
        status, dev_claims = claims(dev, dev_origin)
        check(status == 200 and dev_claims.get("name") == "Bob Jones", f"dev user: {status} {dev_claims}")

    def apis():
        for browser, origin, path in ((glw, glw_origin, "/glw/x"), (dev, dev_origin, "/dev/x")):
            page = browser.get(origin + "/api/echo/x", headers=CSRF)
            check(page.status_code == 200, f"{origin} API: {page.status_code}")
            seen = page.json()
            check(seen["path"] == path, f"{origin} API reached {seen['path']}")
            check((seen["authorization"] or "").startswith("Bearer "), "with a bearer token")

    def isolation():
        thief = new_browser()
        cookie = next(c.value for c in glw.cookies if c.name == "__Host-bff-session")
        thief.cookies.set("__Host-bff-session", cookie, domain="127.0.0.1", path="/")
        check(thief.get(dev_origin + "/bff/user", headers=CSRF).status_code == 401,
              "glw's cookie is anonymous on dev (same name, other host)")
        check(thief.get(dev_origin + "/api/echo/x", headers=CSRF).status_code == 401, "and reaches no API")

    def reload_under_load():
        failures, calls, stop = [], [0], threading.Event()

        def load():
            while not stop.is_set():
                page = dev.get(dev_origin + "/api/echo/load", headers=CSRF)
                calls[0] += 1
                if page.status_code != 200:
                    failures.append(page.status_code)

        thread = threading.Thread(target=load)
        thread.start()
        try:
            write(config, gateway_config(port, workdir, args.issuer, dev_issuer, echo.server_address[1], "dev2"))
            done = subprocess.run([args.bff, "reload", "--config", config], capture_output=True, text=True, env=env)
            check(done.returncode == 0, f"bff reload: {done.returncode} {done.stderr}")
            for _ in range(100):
                if dev.get(dev_origin + "/api/echo/x", headers=CSRF).json()["path"] == "/dev2/x":
                    break
                time.sleep(0.05)
            else:
                raise Failure("the changed upstream was not applied")
            # A broken file: `bff reload` refuses it; SIGHUP anyway: the gateway keeps the old one.
            write(config, "frontends: [\n")
            done = subprocess.run([args.bff, "reload", "--config", config], capture_output=True, text=True, env=env)
            check(done.returncode == 1 and "(file)" in done.stderr, f"bff reload of a broken file: {done.returncode}")
            gateway.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            check(gateway.poll() is None, "the gateway is still running")
            check(dev.get(dev_origin + "/api/echo/x", headers=CSRF).json()["path"] == "/dev2/x",
                  "the running configuration still serves")
        finally:
            stop.set()
            thread.join()
        check(not failures and calls[0] > 10, f"{calls[0]} calls during reloads, failed: {failures[:5]}")
        with open(log_path) as f:
            text = f.read()
        check("configuration reloaded" in text, "the reload is logged")
        check("configuration reload refused" in text, "the refusal is logged")

    def backchannel():
        status, glw_claims = claims(glw, glw_origin)
        sid = glw_claims.get("sid") or query(glw_origin + glw_claims["bff:logout_url"]).get("sid")
        glewlwyd.logout_at_idp(glw, sid)
        for _ in range(100):
            if claims(glw, glw_origin)[0] == 401:
                break
            time.sleep(0.05)
        else:
            raise Failure("the glw session survived logout at Glewlwyd")
        check(claims(dev, dev_origin)[0] == 200, "the dev IdP's session is untouched")

    try:
        step("login_both", login_both)
        step("apis", apis)
        step("isolation", isolation)
        step("reload", reload_under_load)
        step("backchannel", backchannel)
    finally:
        for process in (gateway, dev_idp):
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        echo.shutdown()
    with open(os.path.join(args.out, "multi-frontend.json"), "w") as f:
        json.dump({"results": results}, f, indent=2)
    failed = [name for name, value in results.items() if value.startswith("fail")]
    print(f"multi-frontend: {len(results) - len(failed)} ok, {len(failed)} failed")
    return 1 if failed else 0


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--issuer", required=True, help="Glewlwyd's issuer")
    parser.add_argument("--port", type=int, default=5180)
    parser.add_argument("--bff", required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
