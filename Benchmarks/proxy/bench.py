#!/usr/bin/env python3
"""Proxy throughput and latency: bff serve (full BFF work per request) against nginx and Caddy.

Everything binds 127.0.0.1. Upstreams: nginx returning a 1 KiB body, and a Swift upstream adding
20 ms of latency. Proxies: nginx (proxy_pass + upstream keepalive), Caddy (reverse_proxy) and
`bff serve` (release build) with a logged-in session cookie, `X-CSRF: 1` and `token: user` — so every
request pays cookie parsing, AES-GCM unsealing, the session lookup, the anti-forgery check, the
route match and token attachment. wrk from Debian drives the load: `-t2 -c64 -d15s` for throughput
and `-t2 -c16 --latency` for p99, interleaved, several rounds, medians reported.

Usage: Benchmarks/proxy/bench.py [--rounds 3] [--duration 15] [--results Benchmarks/RESULTS.md]
"""
import argparse
import base64
import http.client
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
WORK = "/tmp/swift-bff-bench"
PORTS = {"upstream": 18090, "slow": 18091, "nginx": 18100, "nginx-slow": 18101, "caddy": 18110, "caddy-slow": 18111,
         "idp": 18120, "bff": 18130}
processes = []


def log(*args):
    print("[bench]", *args, file=sys.stderr, flush=True)


def start(name, argv, **kwargs):
    out = open(os.path.join(WORK, name + ".log"), "w")
    process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, **kwargs)
    processes.append((name, process))
    return process


def stop_all():
    for name, process in reversed(processes):
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
    for name, process in processes:
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def wait_port(port, path="/", timeout=30):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            connection.request("GET", path)
            connection.getresponse().read()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"nothing answers on port {port}")


def write(path, text):
    with open(path, "w") as handle:
        handle.write(text)


STORE = "memory"


def start_servers(bff_binary, upstream_binary):
    body = "x" * 1024
    write(os.path.join(WORK, "nginx-upstream.conf"), f"""
worker_processes 1; daemon off; pid {WORK}/nginx-upstream.pid; error_log {WORK}/nginx-upstream.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORTS['upstream']}; location / {{ default_type text/plain; return 200 "{body}"; }} }} }}
""")
    write(os.path.join(WORK, "nginx-proxy.conf"), f"""
worker_processes auto; daemon off; pid {WORK}/nginx-proxy.pid; error_log {WORK}/nginx-proxy.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  upstream fast {{ server 127.0.0.1:{PORTS['upstream']}; keepalive 128; }}
  upstream slow {{ server 127.0.0.1:{PORTS['slow']}; keepalive 128; }}
  server {{ listen 127.0.0.1:{PORTS['nginx']};
    location / {{ proxy_pass http://fast; proxy_http_version 1.1; proxy_set_header Connection ""; }} }}
  server {{ listen 127.0.0.1:{PORTS['nginx-slow']};
    location / {{ proxy_pass http://slow; proxy_http_version 1.1; proxy_set_header Connection ""; }} }} }}
""")
    write(os.path.join(WORK, "Caddyfile"), f"""
{{
  admin off
  auto_https off
  log {{
    output discard
  }}
}}
http://127.0.0.1:{PORTS['caddy']} {{
  reverse_proxy 127.0.0.1:{PORTS['upstream']}
}}
http://127.0.0.1:{PORTS['caddy-slow']} {{
  reverse_proxy 127.0.0.1:{PORTS['slow']}
}}
""")
    origin = f"http://localhost:{PORTS['bff']}"
    write(os.path.join(WORK, "dev-idp.yaml"), f"""
listen: "127.0.0.1:{PORTS['idp']}"
accessTokenLifetime: 7200
clients:
  - clientId: bench
    clientSecret: bench-secret
    redirectUris: ["{origin}/signin-oidc"]
    postLogoutRedirectUris: ["{origin}/signout-callback-oidc"]
""")
    write(os.path.join(WORK, "bff.yaml"), f"""
server:
  listen: "127.0.0.1:{PORTS['bff']}"
  publicOrigin: "{origin}"
keys:
  - id: bench
    secret: "{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"
oidc:
  issuer: "http://127.0.0.1:{PORTS['idp']}"
  clientId: bench
  clientSecret: bench-secret
session:
  store: {STORE}
  sqlite: {{path: "{WORK}/sessions.sqlite"}}
admin:
  listen: null
apis:
  - path: /api/fast
    upstream: "http://127.0.0.1:{PORTS['upstream']}/"
    token: user
  - path: /api/slow
    upstream: "http://127.0.0.1:{PORTS['slow']}/"
    token: user
""")
    start("nginx-upstream", ["nginx", "-c", os.path.join(WORK, "nginx-upstream.conf"), "-p", WORK])
    start("slow-upstream", [upstream_binary, "--port", str(PORTS["slow"]), "--delay-ms", "20"])
    start("nginx-proxy", ["nginx", "-c", os.path.join(WORK, "nginx-proxy.conf"), "-p", WORK])
    start("caddy", ["caddy", "run", "--config", os.path.join(WORK, "Caddyfile"), "--adapter", "caddyfile"],
          env={**os.environ, "HOME": WORK, "XDG_DATA_HOME": WORK, "XDG_CONFIG_HOME": WORK})
    start("dev-idp", [bff_binary, "dev-idp", "--config", os.path.join(WORK, "dev-idp.yaml")])
    bff = start("bff", [bff_binary, "serve", "--config", os.path.join(WORK, "bff.yaml")],
                env={**os.environ, "BFF_LOG_LEVEL": "warning"})
    for port in [PORTS["upstream"], PORTS["slow"], PORTS["nginx"], PORTS["caddy"], PORTS["idp"]]:
        wait_port(port)
    wait_port(PORTS["bff"], "/bff/user")
    return bff


def login():
    """Logs in through the dev IdP's form and returns the session cookie header value."""
    cookies = {}

    def request(port, method, path, body=None, headers=None):
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        all_headers = dict(headers or {})
        jar = cookies.get(port, {})
        if jar:
            all_headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in jar.items())
        connection.request(method, path, body=body, headers=all_headers)
        response = connection.getresponse()
        data = response.read().decode()
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                pair = value.split(";")[0]
                key, _, val = pair.partition("=")
                if "Max-Age=0" in value:
                    cookies.setdefault(port, {}).pop(key, None)
                else:
                    cookies.setdefault(port, {})[key] = val
        return response.status, response.getheader("Location"), data

    status, location, _ = request(PORTS["bff"], "GET", "/bff/login?returnUrl=/")
    assert status == 302, status
    authorize = urllib.parse.urlsplit(location)
    status, _, page = request(PORTS["idp"], "GET", authorize.path + "?" + authorize.query)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"request_id": request_id, "username": "alice", "password": "alice"})
    status, location, _ = request(PORTS["idp"], "POST", "/authorize", form,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    callback = urllib.parse.urlsplit(location)
    status, location, _ = request(PORTS["bff"], "GET", callback.path + "?" + callback.query)
    assert status == 302, status
    session = cookies[PORTS["bff"]]["__Host-bff-session"]
    status, _, body = request(PORTS["bff"], "GET", "/api/fast/", headers={"X-CSRF": "1"})
    assert status == 200 and len(body) == 1024, (status, body[:200])
    return "__Host-bff-session=" + session


def rss_mb(pid):
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return 0
    return 0


def wrk(url, connections, duration, headers, latency=False, sample_pid=None):
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s"] + (["--latency"] if latency else [])
    for header in headers:
        argv += ["-H", header]
    argv.append(url)
    process = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peak = 0.0
    while process.poll() is None:
        if sample_pid:
            peak = max(peak, rss_mb(sample_pid))
        time.sleep(0.25)
    output = process.stdout.read()
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    socket_errors = re.search(r"Socket errors: (.*)", output)
    p99 = None
    match = re.search(r"\s99%\s+([\d.]+)(us|ms|s)", output)
    if match:
        value, unit = float(match.group(1)), match.group(2)
        p99 = value / 1000 if unit == "us" else value * 1000 if unit == "s" else value
    return {"rps": rps, "p99_ms": p99, "non2xx": int(errors.group(1)) if errors else 0,
            "socket_errors": socket_errors.group(1) if socket_errors else "", "peak_rss_mb": peak}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15)
    parser.add_argument("--results", default=os.path.join(ROOT, "Benchmarks", "RESULTS.md"))
    parser.add_argument("--build", action="store_true", help="build the release binaries first")
    parser.add_argument("--profile", action="store_true", help="only run bff under load with `perf record -g` (10 s)")
    parser.add_argument("--syscalls", action="store_true", help="only count bff's system calls and context switches under load (10 s)")
    parser.add_argument("--store", default="memory", choices=["memory", "sqlite", "cookie"],
                        help="the gateway's session store (memory and cookie mode take the event-loop fast path)")
    parser.add_argument("--quick", action="store_true",
                        help="only Caddy and bff at c64, interleaved, ratio printed, nothing written")
    arguments = parser.parse_args()
    for tool in ["nginx", "caddy", "wrk"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install nginx-light caddy wrk")
    if arguments.build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "bff"], cwd=ROOT, check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "bff-bench-upstream"], cwd=ROOT, check=True)
    global STORE
    STORE = arguments.store
    binaries = os.path.join(ROOT, ".build", "release")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    try:
        bff = start_servers(os.path.join(binaries, "bff"), os.path.join(binaries, "bff-bench-upstream"))
        cookie = login()
        log("logged in; warming up")
        bff_headers = ["Cookie: " + cookie, "X-CSRF: 1"]
        targets = {
            "nginx": (f"http://127.0.0.1:{PORTS['nginx']}/", [], None),
            "caddy": (f"http://127.0.0.1:{PORTS['caddy']}/", [], None),
            "bff": (f"http://localhost:{PORTS['bff']}/api/fast/", bff_headers, bff.pid),
        }
        slow_targets = {
            "nginx": (f"http://127.0.0.1:{PORTS['nginx-slow']}/", [], None),
            "caddy": (f"http://127.0.0.1:{PORTS['caddy-slow']}/", [], None),
            "bff": (f"http://localhost:{PORTS['bff']}/api/slow/", bff_headers, bff.pid),
        }
        for name, (url, headers, _) in targets.items():
            wrk(url, 64, 3, headers)
        if arguments.profile or arguments.syscalls:
            command = (["perf", "stat", "-e", "raw_syscalls:sys_enter,context-switches,task-clock", "-p", str(bff.pid), "-o",
                        os.path.join(WORK, "perf-stat.txt"), "--", "sleep", "10"] if arguments.syscalls else
                       ["perf", "record", "-g", "-p", str(bff.pid), "-o", os.path.join(WORK, "perf.data"), "--", "sleep", "10"])
            perf = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(wrk(targets["bff"][0], 64, 10, bff_headers))
            perf.wait()
            log("profile written to", os.path.join(WORK, "perf.data"))
            return
        if arguments.quick:
            runs = {"caddy": [], "bff": []}
            for round_index in range(arguments.rounds):
                for name in (["caddy", "bff"] if round_index % 2 == 0 else ["bff", "caddy"]):
                    url, headers, _ = targets[name]
                    runs[name].append(wrk(url, 64, arguments.duration, headers)["rps"])
            log("caddy", runs["caddy"], "bff", runs["bff"])
            print(f"bff/Caddy c64 = {statistics.median(runs['bff']) / statistics.median(runs['caddy']):.2f}")
            return
        results = {name: {"c64": [], "c16": [], "slow": [], "rss": [], "errors": 0} for name in targets}
        for round_index in range(arguments.rounds):
            order = list(targets) if round_index % 2 == 0 else list(reversed(targets))
            for name in order:
                url, headers, pid = targets[name]
                throughput = wrk(url, 64, arguments.duration, headers, sample_pid=pid)
                latency = wrk(url, 16, arguments.duration, headers, latency=True)
                slow_url, slow_headers, _ = slow_targets[name]
                slow = wrk(slow_url, 64, arguments.duration, slow_headers)
                results[name]["c64"].append(throughput["rps"])
                results[name]["c16"].append(latency["p99_ms"])
                results[name]["slow"].append(slow["rps"])
                results[name]["rss"].append(throughput["peak_rss_mb"])
                results[name]["errors"] += throughput["non2xx"] + latency["non2xx"] + slow["non2xx"]
                log(f"round {round_index + 1} {name}: {throughput['rps']:.0f} req/s c64, p99 {latency['p99_ms']} ms c16, "
                    f"{slow['rps']:.0f} req/s 20ms-upstream, errors {throughput['non2xx']}+{latency['non2xx']}+{slow['non2xx']} "
                    f"{throughput['socket_errors']}")
        summary = {name: {"c64": statistics.median(r["c64"]), "p99": statistics.median(r["c16"]),
                          "slow": statistics.median(r["slow"]), "rss": max(r["rss"]) if r["rss"] else 0,
                          "errors": r["errors"]} for name, r in results.items()}
        print(json.dumps({"rounds": arguments.rounds, "duration": arguments.duration, "summary": summary,
                          "raw": results}, indent=2))
        report(summary, arguments)
    finally:
        stop_all()


def report(summary, arguments):
    bff, caddy, nginx = summary["bff"], summary["caddy"], summary["nginx"]
    lines = [
        "",
        f"## Proxy run of {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC (`Benchmarks/proxy/bench.py`, "
        f"{arguments.rounds} rounds × {arguments.duration} s, medians, session store `{arguments.store}`)",
        "",
        "| proxy | req/s c64 | p99 ms c16 | req/s, 20 ms upstream, c64 | peak RSS under load | non-2xx |",
        "|---|---|---|---|---|---|",
    ]
    for name in ["nginx", "caddy", "bff"]:
        row = summary[name]
        rss = f"{row['rss']:.0f} MB" if row["rss"] else "n/a"
        lines.append(f"| {name} | {row['c64']:.0f} | {row['p99']:.2f} | {row['slow']:.0f} | {rss} | {row['errors']} |")
    lines += [
        "",
        f"Ratios: bff/Caddy req/s c64 = **{bff['c64'] / caddy['c64']:.2f}** (target ≥ 1.3); "
        f"bff/nginx = {bff['c64'] / nginx['c64']:.2f}; bff p99 c16 = {bff['p99']:.2f} ms vs Caddy {caddy['p99']:.2f} ms "
        f"(target ≤ Caddy); 20 ms upstream: bff/nginx = **{bff['slow'] / nginx['slow']:.2f}** (target ≥ 0.9); "
        f"bff peak RSS {bff['rss']:.0f} MB (target ≤ 64 MB).",
        "",
    ]
    with open(arguments.results, "a") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
