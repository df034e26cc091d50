#!/usr/bin/env python3
"""The SPA flow in a real browser: headless Chromium (Debian) driven by Selenium.

Two peers: `bff demo` (its development IdP, sample API and SPA) and, with --glewlwyd-issuer,
Glewlwyd's own login pages in front of `bff serve` serving the same SPA — once from `static.root`,
once from a dev server (`static.devServer`: a stand-in for Vite with an HMR WebSocket). In each: open the SPA,
click "Sign in", fill in the IdP's real login page, come back, see the user's name rendered, click
"Call API" and see the data, check the session cookie through the DevTools protocol (`__Host-`
name, Secure, HttpOnly, SameSite=Strict, host-only) and that `document.cookie` cannot see it, check
that a script's fetch without the anti-forgery header is refused, save a screenshot, sign out.

Chromium only ever reaches loopback: a host-resolver rule fails every other name.

  browser_flow.py --bff .build/debug/bff --out DIR [--glewlwyd-issuer URL]
"""
import argparse
import base64
import hashlib
import http.server
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

CHROMIUM = os.environ.get("BFF_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("BFF_CHROMEDRIVER", "/usr/bin/chromedriver")
SPA = os.path.join(os.path.dirname(__file__), "..", "..", "Sources", "BFFGateway", "DemoSPA")


class Failure(Exception):
    pass


def check(condition, message):
    if not condition:
        raise Failure(message)


def browser(block_third_party_cookies=False):
    options = webdriver.ChromeOptions()
    if block_third_party_cookies:
        # What Safari does by default and Chrome users can choose: the IdP's cookies stay out of
        # frames embedded in another site.
        options.add_experimental_option("prefs", {"profile.block_third_party_cookies": True,
                                                  "profile.cookie_controls_mode": 1})
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1200,900",
        # Every name but loopback fails to resolve: Chromium never phones home from CI.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
        "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
        "--disable-default-apps", "--metrics-recording-only", "--disable-domain-reliability",
    ):
        options.add_argument(argument)
    return webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)


def wait_for(driver, condition, what, timeout=15):
    try:
        return WebDriverWait(driver, timeout, ignored_exceptions=(StaleElementReferenceException,)).until(
            lambda d: condition(d))
    except TimeoutException:
        raise Failure(f"timed out waiting for {what} (at {driver.current_url})")


def visible(driver, element_id):
    found = driver.find_elements(By.ID, element_id)
    return found[0] if found and found[0].is_displayed() else None


def wait_until_listening(url, timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except Exception:
            time.sleep(0.1)
    raise Failure(f"{url} did not answer")


# ------------------------------------------------------------------------- IdP login pages
def login_dev_idp(driver):
    wait_for(driver, lambda d: visible(d, "username"), "the development IdP's login form")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("alice")
    driver.find_element(By.ID, "login").click()


GLEWLWYD_PREFIX = [""]


def login_glewlwyd(driver):
    # Glewlwyd's login page is its own JavaScript app: credentials, then the scope grant, then Continue.
    wait_for(driver, lambda d: visible(d, "loginbut"), "Glewlwyd's login form")
    driver.find_element(By.ID, "username").send_keys("alice")
    driver.find_element(By.ID, "password").send_keys("alice-password")
    driver.find_element(By.ID, "loginbut").click()
    # Then, depending on what alice granted before: the scope grant ("Grant access"), and "Continue".
    def advance(d):
        if "/signin-oidc" in d.current_url or not d.current_url.startswith(GLEWLWYD_PREFIX[0]):
            return True
        for box in d.find_elements(By.CSS_SELECTOR, "input[type=checkbox][id^=grant-]"):
            if box.is_displayed() and box.is_enabled() and not box.is_selected():
                box.click()
        for label in ("Grant access", "Continue"):
            buttons = [b for b in d.find_elements(By.TAG_NAME, "button") if b.is_displayed() and b.text.strip() == label]
            if buttons:
                buttons[0].click()
                time.sleep(0.3)
                break
        return False
    wait_for(driver, advance, "Glewlwyd to send the browser back", timeout=20)


def logout_glewlwyd(driver):
    def press(d):
        buttons = [b for b in d.find_elements(By.TAG_NAME, "button") if b.is_displayed() and b.text.strip() == "Logout"]
        if buttons:
            buttons[0].click()
            return True
        return False
    wait_for(driver, press, "Glewlwyd's Logout button")


# ------------------------------------------------------------------------------- the flow
def spa_flow(name, origin, login, logout, api_check, out, signed_in_check=None):
    results = {}
    driver = browser()
    try:
        started = time.time()
        driver.get(origin + "/")
        wait_for(driver, lambda d: visible(d, "login"), "the SPA's Sign in button")
        driver.find_element(By.ID, "login").click()
        login(driver)
        wait_for(driver, lambda d: d.current_url.startswith(origin) and visible(d, "user-name")
                 and d.find_element(By.ID, "user-name").text.strip(), "the signed-in SPA")
        name_shown = driver.find_element(By.ID, "user-name").text.strip()
        check(name_shown == "Alice Smith", f"the SPA shows the user's name (got {name_shown!r})")
        results["login"] = "pass"
        if signed_in_check:
            signed_in_check(driver, results)

        cookies = driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
        session = [c for c in cookies if c["name"] == "__Host-bff-session"]
        check(len(session) == 1, f"one __Host-bff-session cookie (have {[c['name'] for c in cookies]})")
        cookie = session[0]
        check(cookie["secure"], "session cookie is Secure")
        check(cookie["httpOnly"], "session cookie is HttpOnly")
        check(cookie.get("sameSite") == "Strict", f"session cookie is SameSite=Strict ({cookie.get('sameSite')})")
        check(cookie["path"] == "/" and not cookie["domain"].startswith("."), "session cookie is host-only, Path=/")
        check("__Host-bff-session" not in driver.execute_script("return document.cookie"),
              "document.cookie cannot see the session cookie")
        driver.execute_script("document.cookie = '__Host-bff-session=forged; Secure; Path=/'")
        after = [c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                 if c["name"] == "__Host-bff-session"]
        check(len(after) == 1 and after[0]["value"] == cookie["value"], "script cannot overwrite the HttpOnly cookie")
        results["cookie"] = "pass"

        status = driver.execute_async_script(
            "const done = arguments[0]; fetch('/bff/user').then(r => done(r.status), e => done(String(e)));")
        check(status == 401, f"a fetch without X-CSRF is refused (got {status})")
        results["antiforgery"] = "pass"

        driver.find_element(By.ID, "call-api").click()
        wait_for(driver, lambda d: d.find_element(By.ID, "api-result").text.startswith("200"), "the API result")
        api_check(driver.find_element(By.ID, "api-result").text)
        results["api"] = "pass"
        shot = os.path.join(out, f"{name}-signed-in.png")
        driver.save_screenshot(shot)
        check(os.path.getsize(shot) > 1000, "screenshot saved")

        driver.find_element(By.ID, "logout").click()
        logout(driver)
        wait_for(driver, lambda d: d.current_url.startswith(origin) and visible(d, "login"), "the signed-out SPA",
                 timeout=20)
        remaining = [c for c in driver.execute_cdp_cmd("Network.getAllCookies", {})["cookies"]
                     if c["name"] == "__Host-bff-session"]
        check(not remaining, "the session cookie is gone after logout")
        results["logout"] = "pass"
        results["seconds"] = round(time.time() - started, 2)
    except Exception as error:
        results["failure"] = str(error)
        driver.save_screenshot(os.path.join(out, f"{name}-failure.png"))
    finally:
        driver.quit()
    print(f"{name}: {json.dumps(results)}")
    return results


def silent_login_flow(origin, idp_origin, out):
    """Third-party cookies blocked, the gateway on `localhost` and the dev IdP on `127.0.0.1` (two
    sites): silent login in an iframe cannot see the IdP's session; as a top-level navigation it can
    (SPEC §11.4), and without an IdP session it comes back with bff-login=none, not an error page."""
    results = {}
    driver = browser(block_third_party_cookies=True)
    try:
        driver.get(origin + "/")
        wait_for(driver, lambda d: visible(d, "login"), "the SPA's Sign in button")
        driver.find_element(By.ID, "login").click()
        login_dev_idp(driver)
        wait_for(driver, lambda d: d.current_url.startswith(origin) and visible(d, "user-name"), "the signed-in SPA")
        # The gateway session ends; the IdP's lives on.
        driver.execute_cdp_cmd("Network.deleteCookies", {"name": "__Host-bff-session", "url": origin + "/"})
        driver.get(origin + "/")
        wait_for(driver, lambda d: visible(d, "login"), "the signed-out SPA")

        # The frame answers (its message is seen, not a timeout) and says: not logged in.
        in_frame, message = driver.execute_async_script(
            "const done = arguments[0]; let seen = null;"
            "window.addEventListener('message', e => { if (e.data && e.data.source === 'bff-silent-login') seen = e.data; });"
            "window.bff.silentLogin(4000).then(r => done([r, seen]));")
        check(message is not None and message.get("isLoggedIn") is False,
              f"the silent-login frame answered not logged in (message {message!r})")
        check(in_frame is False, f"the iframe mode cannot see the IdP session across sites (got {in_frame!r})")
        results["iframe_not_logged_in"] = "pass"

        driver.execute_script("window.bff.ensureSession({iframe: false});")
        wait_for(driver, lambda d: "bff-login=" in d.current_url and visible(d, "user-name"),
                 "the SPA back from a top-level silent login")
        check("bff-login=success" in driver.current_url, f"came back signed in ({driver.current_url})")
        results["top_level_logged_in"] = "pass"

        # Neither session: the top-level attempt comes back with none (no error page, no loop).
        driver.execute_cdp_cmd("Network.deleteCookies", {"name": "__Host-bff-session", "url": origin + "/"})
        driver.execute_cdp_cmd("Network.deleteCookies", {"name": "devidp_session", "url": idp_origin + "/"})
        driver.get(origin + "/")
        wait_for(driver, lambda d: visible(d, "login"), "the signed-out SPA")
        driver.execute_script("window.bff.ensureSession({iframe: false});")
        wait_for(driver, lambda d: "bff-login=" in d.current_url and visible(d, "login"),
                 "the SPA back from a top-level silent login without a session")
        check("bff-login=none" in driver.current_url, f"came back with none ({driver.current_url})")
        outcome = driver.execute_async_script("window.bff.ensureSession().then(c => arguments[0](c));")
        check(outcome is None, f"ensureSession reads the outcome instead of trying again (got {outcome!r})")
        check("bff-login" not in driver.current_url, "the outcome parameter is removed from the address")
        results["top_level_none"] = "pass"
    except Exception as error:
        results["failure"] = str(error)
        driver.save_screenshot(os.path.join(out, "silent-login-failure.png"))
    finally:
        driver.quit()
    print(f"silent-login: {json.dumps(results)}")
    return results


class DevServer(http.server.BaseHTTPRequestHandler):
    """A stand-in for `npm run dev`: the SPA's files, index.html with an HMR client, and an HMR
    WebSocket (`vite-hmr`) that greets each client with what its handshake carried."""
    protocol_version = "HTTP/1.1"
    HMR_CLIENT = (
        "<div id='hmr-status'>hmr: connecting</div><script>"
        "const hmr = new WebSocket((location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/', 'vite-hmr');"
        "hmr.onmessage = e => { document.getElementById('hmr-status').textContent = 'hmr: ' + e.data; };"
        "hmr.onerror = () => { document.getElementById('hmr-status').textContent = 'hmr: error'; };"
        "</script></body>")

    def do_GET(self):
        if self.headers.get("Upgrade", "").lower() == "websocket":
            return self.hmr_socket()
        path = urllib.parse.urlsplit(self.path).path
        name = "index.html" if path in ("/", "/index.html") else path.lstrip("/")
        file = os.path.join(SPA, name)
        if "/" in name or not os.path.isfile(file):
            name, file = "index.html", os.path.join(SPA, "index.html")  # history routing, as Vite does
        with open(file, "rb") as f:
            body = f.read()
        if name == "index.html":
            body = body.replace(b"</body>", self.HMR_CLIENT.encode())
        kind = {"js": "text/javascript", "css": "text/css", "html": "text/html"}[name.rsplit(".", 1)[-1]]
        self.send_response(200)
        self.send_header("Content-Type", kind + "; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def hmr_socket(self):
        accept = base64.b64encode(hashlib.sha1(
            (self.headers["Sec-WebSocket-Key"] + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()).decode()
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.send_header("Sec-WebSocket-Protocol", "vite-hmr")
        self.end_headers()
        text = "connected cookie=%s" % ("yes" if self.headers.get("Cookie") else "no")
        self.wfile.write(bytes([0x81, len(text)]) + text.encode())  # one unmasked text frame
        self.wfile.flush()
        self.rfile.read(2)  # hold the socket until the browser sends (or closes)
        self.close_connection = True

    def log_message(self, *args):
        pass


class Echo(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path, "bearer": (self.headers.get("Authorization") or "").startswith("Bearer ")})
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args):
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bff", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--glewlwyd-issuer")
    parser.add_argument("--glewlwyd-port", type=int, default=5180)
    args = parser.parse_args()
    os.makedirs(args.out, exist_ok=True)
    report = {}

    # 1. `bff demo`: development IdP + sample API + SPA.
    ports = {"--port": 5290, "--idp-port": 5291, "--api-port": 5292, "--admin-port": 5293}
    command = [args.bff, "demo"] + [str(x) for pair in ports.items() for x in pair]
    log = open(os.path.join(args.out, "demo.log"), "w")
    demo = subprocess.Popen(command, stdout=log, stderr=log)
    try:
        origin = "http://localhost:5290"
        wait_until_listening(origin + "/")
        wait_until_listening("http://127.0.0.1:5291/.well-known/openid-configuration")

        def demo_api(text):
            check("summary" in text.lower() or "temperature" in text.lower(), f"weather data shown: {text[:80]}")

        report["demo"] = spa_flow("demo", origin, login_dev_idp, lambda d: None, demo_api, args.out)
        report["silent-login"] = silent_login_flow(origin, "http://127.0.0.1:5291", args.out)
    finally:
        demo.terminate()
        demo.wait(timeout=10)

    # 2. Glewlwyd's real pages in front of `bff serve`.
    if args.glewlwyd_issuer:
        echo = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
        threading.Thread(target=echo.serve_forever, daemon=True).start()
        workdir = tempfile.mkdtemp(prefix="bff-browser-")
        config = os.path.join(workdir, "bff.yaml")
        with open(config, "w") as f:
            f.write(f"""
server: {{listen: "127.0.0.1:{args.glewlwyd_port}", publicOrigin: "http://localhost:{args.glewlwyd_port}", dataDirectory: "{workdir}"}}
oidc: {{issuer: "{args.glewlwyd_issuer}", clientId: bff, clientSecret: "env:BFF_BROWSER_CLIENT_SECRET"}}
session: {{store: sqlite}}
admin: {{listen: null}}
static: {{root: "{os.path.abspath(SPA)}"}}
apis:
  - {{path: /api/weatherforecast, upstream: "http://127.0.0.1:{echo.server_address[1]}/weather", token: user}}
""")
        log = open(os.path.join(args.out, "glewlwyd-gateway.log"), "w")
        gateway = subprocess.Popen([args.bff, "serve", "--config", config], stdout=log, stderr=log,
                                   env=dict(os.environ, BFF_BROWSER_CLIENT_SECRET="bff-secret"))
        try:
            origin = f"http://localhost:{args.glewlwyd_port}"
            wait_until_listening(origin + "/")

            def echo_api(text):
                check('"bearer": true' in text, f"the API received the user's bearer token: {text[:120]}")

            GLEWLWYD_PREFIX[0] = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(args.glewlwyd_issuer))
            report["glewlwyd"] = spa_flow("glewlwyd", origin, login_glewlwyd, logout_glewlwyd, echo_api, args.out)
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)

        # 3. The same, the SPA served by a dev server (static.devServer) with its HMR socket.
        dev = http.server.ThreadingHTTPServer(("127.0.0.1", 0), DevServer)
        threading.Thread(target=dev.serve_forever, daemon=True).start()
        with open(config) as f:
            text = f.read()
        with open(config, "w") as f:
            f.write(text.replace(f'static: {{root: "{os.path.abspath(SPA)}"}}',
                                 f'static: {{devServer: "http://127.0.0.1:{dev.server_address[1]}"}}'))
        log = open(os.path.join(args.out, "devserver-gateway.log"), "w")
        gateway = subprocess.Popen([args.bff, "serve", "--config", config], stdout=log, stderr=log,
                                   env=dict(os.environ, BFF_BROWSER_CLIENT_SECRET="bff-secret"))
        try:
            origin = f"http://localhost:{args.glewlwyd_port}"
            wait_until_listening(origin + "/")

            def hmr_connected(driver, results):
                wait_for(driver, lambda d: d.find_element(By.ID, "hmr-status").text.startswith("hmr: connected"),
                         "the HMR socket through the gateway")
                status = driver.find_element(By.ID, "hmr-status").text
                check(status == "hmr: connected cookie=no", f"the dev server never sees the session ({status})")
                results["hmr"] = "pass"

            report["devserver"] = spa_flow("devserver", origin, login_glewlwyd, logout_glewlwyd, echo_api, args.out,
                                           signed_in_check=hmr_connected)
        finally:
            gateway.terminate()
            gateway.wait(timeout=10)
            dev.shutdown()
            echo.shutdown()

    with open(os.path.join(args.out, "browser.json"), "w") as f:
        json.dump(report, f, indent=2)
    failed = [name for name, result in report.items() if "failure" in result]
    print(f"browser: {len(report) - len(failed)} passed, {len(failed)} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
