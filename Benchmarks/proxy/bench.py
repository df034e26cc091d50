#!/usr/bin/env python3
"""Proxy throughput and latency: bff serve (full BFF work per request) against nginx and Caddy.

Everything binds 127.0.0.1. Upstreams: nginx returning a 1 KiB body (and, with --slow, a Swift
upstream adding 20 ms of latency). Proxies: nginx (proxy_pass + upstream keepalive), Caddy
(reverse_proxy) and one `bff serve` (release build) per session store — memory, SQLite (the
default) and PostgreSQL (a private durable cluster from scripts/postgres/start.sh) — each with a
logged-in session cookie, `X-CSRF: 1`, three unrelated cookies and `token: user`, so every request
pays cookie parsing, AES-GCM unsealing, the session lookup, the anti-forgery check, the route match
and token attachment. wrk from Debian drives the load, per target and round: GET c64, POST of a
600-byte JSON body c64, GET c16 with `--latency` (p99). Targets are interleaved (the order flips
every round); medians over the rounds are reported with ratios to Caddy and nginx.

Usage: Benchmarks/proxy/bench.py [--rounds 3] [--duration 10] [--stores memory,sqlite,postgres]
With --syscalls, BENCH_PERF_EVENTS picks the `perf stat` events and BENCH_PER_THREAD=1 splits them
per thread (event loops, the exporter's threads).
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
         "idp": 18120, "postgres": 18140, "otlp": 18150}
# One gateway per session store.
BFF_PORTS = {"memory": 18130, "sqlite": 18131, "postgres": 18132, "cookie": 18133,
             # The same store with metrics off (BFF_METRICS=false), to measure what metrics cost.
             "sqlite-nometrics": 18134, "memory-nometrics": 18135,
             # The same store with every request traced (sample ratio 1.0) into a discarding receiver.
             "sqlite-traced": 18136, "memory-traced": 18137,
             # The same store with DPoP-bound sessions (a fresh ES256 proof on every upstream call).
             "sqlite-dpop": 18138, "memory-dpop": 18139}
POST_BODY = json.dumps({"order": {"id": "A-1001", "items": [{"sku": f"SKU-{i:04d}", "quantity": i % 5 + 1,
                                                                 "note": "x" * 22} for i in range(8)]}})
POST_BODY = POST_BODY[:-2] + " " * (600 - len(POST_BODY)) + POST_BODY[-2:]
assert len(POST_BODY) == 600
# Cookies of other applications on the same site, sent with every call (the gateway must skip them).
OTHER_COOKIES = "_ga=GA1.1.1234567890.1700000000; theme=dark; consent=analytics%3Dno%26ads%3Dno"
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




def start_servers(bff_binary, upstream_binary):
    body = "x" * 1024
    write(os.path.join(WORK, "nginx-upstream.conf"), f"""
worker_processes 1; daemon off; pid {WORK}/nginx-upstream.pid; error_log {WORK}/nginx-upstream.err warn;
events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORTS['upstream']}; location / {{ default_type text/plain; return 200 "{body}"; }} }} }}
""")
    # A discarding OTLP/HTTP receiver for the traced gateways (an empty protobuf answer is a full
    # success), in a process of its own as a collector would be, not in the upstream's one worker.
    write(os.path.join(WORK, "nginx-otlp.conf"), f"""
worker_processes 1; daemon off; pid {WORK}/nginx-otlp.pid; error_log {WORK}/nginx-otlp.err warn;
events {{ worker_connections 1024; }}
http {{ access_log off; keepalive_requests 1000000;
  server {{ listen 127.0.0.1:{PORTS['otlp']}; client_max_body_size 64m;
    location /v1/traces {{ default_type application/x-protobuf; return 200 ""; }} }} }}
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
    redirect_uris = ", ".join(f'"http://localhost:{port}/signin-oidc"' for port in BFF_PORTS.values())
    write(os.path.join(WORK, "dev-idp.yaml"), f"""
listen: "127.0.0.1:{PORTS['idp']}"
accessTokenLifetime: 7200
clients:
  - clientId: bench
    clientSecret: bench-secret
    redirectUris: [{redirect_uris}]
""")
    start("nginx-upstream", ["nginx", "-c", os.path.join(WORK, "nginx-upstream.conf"), "-p", WORK])
    start("nginx-otlp", ["nginx", "-c", os.path.join(WORK, "nginx-otlp.conf"), "-p", WORK])
    start("slow-upstream", [upstream_binary, "--port", str(PORTS["slow"]), "--delay-ms", "20"])
    start("nginx-proxy", ["nginx", "-c", os.path.join(WORK, "nginx-proxy.conf"), "-p", WORK])
    start("caddy", ["caddy", "run", "--config", os.path.join(WORK, "Caddyfile"), "--adapter", "caddyfile"],
          env={**os.environ, "HOME": WORK, "XDG_DATA_HOME": WORK, "XDG_CONFIG_HOME": WORK})
    start("dev-idp", [bff_binary, "dev-idp", "--config", os.path.join(WORK, "dev-idp.yaml")])
    for port in [PORTS["upstream"], PORTS["slow"], PORTS["nginx"], PORTS["caddy"], PORTS["idp"], PORTS["otlp"]]:
        wait_port(port)


def start_gateway(bff_binary, name, postgres_url=None):
    """Starts `bff serve` for `name` (a store, or `<store>-nometrics`) on its own port; returns the process."""
    port = BFF_PORTS[name]
    store = name.removesuffix("-nometrics").removesuffix("-traced").removesuffix("-dpop")
    dpop = "\n  dpop: required" if name.endswith("-dpop") else ""
    metrics_env = {"BFF_METRICS": "false"} if name.endswith("-nometrics") else {}
    telemetry = (f'telemetry:\n  otlp: {{endpoint: "http://127.0.0.1:{PORTS["otlp"]}"}}\n  sampleRatio: 1.0\n'
                 if name.endswith("-traced") else "")
    origin = f"http://localhost:{port}"
    directory = os.path.join(WORK, "gateway-" + name)
    os.makedirs(directory, exist_ok=True)
    session = {"memory": "store: memory", "cookie": "store: cookie",
               "sqlite": f'store: sqlite\n  sqlite: {{path: "{directory}/sessions.sqlite"}}',
               "postgres": f'store: postgres\n  postgres: {{url: "{postgres_url}"}}'}[store]
    write(os.path.join(directory, "bff.yaml"), f"""
server:
  listen: "127.0.0.1:{port}"
  publicOrigin: "{origin}"
  dataDirectory: "{directory}"
keys:
  - id: bench
    secret: "{base64.urlsafe_b64encode(os.urandom(32)).decode().rstrip('=')}"
oidc:
  issuer: "http://127.0.0.1:{PORTS['idp']}"
  clientId: bench
  clientSecret: bench-secret{dpop}
session:
  {session}
admin:
  listen: null
{telemetry}apis:
  - path: /api/fast
    upstream: "http://127.0.0.1:{PORTS['upstream']}/"
    token: user
  - path: /api/slow
    upstream: "http://127.0.0.1:{PORTS['slow']}/"
    token: user
""")
    process = start("bff-" + name, [bff_binary, "serve", "--config", os.path.join(directory, "bff.yaml")],
                    env={**os.environ, "BFF_LOG_LEVEL": "warning", **metrics_env})
    wait_port(port, "/bff/user")
    return process


def start_postgres():
    """A private, durable PostgreSQL cluster for the `postgres` store; returns its URL."""
    env = {**os.environ, "BFF_PG_DIR": os.path.join(WORK, "postgres"), "BFF_PG_PORT": str(PORTS["postgres"]),
           "BFF_PG_DURABLE": "1"}
    url = subprocess.run([os.path.join(ROOT, "scripts", "postgres", "start.sh")], env=env, check=True,
                         capture_output=True, text=True).stdout.strip()
    processes.append(("postgres", PostgresCluster(env)))
    return url


class PostgresCluster:
    """Looks like a process to stop_all()."""
    pid = None

    def __init__(self, env):
        self.env = env
        self.stopped = False

    def poll(self):
        if not self.stopped:
            subprocess.run([os.path.join(ROOT, "scripts", "postgres", "stop.sh")], env=self.env,
                           capture_output=True)
            self.stopped = True
        return 0

    def wait(self, timeout=None):
        return 0


def login(bff_port):
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

    status, location, _ = request(bff_port, "GET", "/bff/login?returnUrl=/")
    assert status == 302, status
    authorize = urllib.parse.urlsplit(location)
    status, _, page = request(PORTS["idp"], "GET", authorize.path + "?" + authorize.query)
    request_id = re.search(r'name="request_id" value="([^"]+)"', page).group(1)
    form = urllib.parse.urlencode({"request_id": request_id, "username": "alice", "password": "alice"})
    status, location, _ = request(PORTS["idp"], "POST", "/authorize", form,
                                  {"Content-Type": "application/x-www-form-urlencoded"})
    callback = urllib.parse.urlsplit(location)
    status, location, _ = request(bff_port, "GET", callback.path + "?" + callback.query)
    assert status == 302, status
    session = cookies[bff_port]["__Host-bff-session"]
    status, _, body = request(bff_port, "GET", "/api/fast/", headers={"X-CSRF": "1"})
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


def wrk(url, connections, duration, headers, latency=False, sample_pid=None, post=False):
    argv = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s"] + (["--latency"] if latency else [])
    if post:
        argv += ["-s", os.path.join(WORK, "post.lua")]
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
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--results", default=os.path.join(ROOT, "Benchmarks", "RESULTS.md"))
    parser.add_argument("--build", action="store_true", help="build the release binaries first")
    parser.add_argument("--stores", default="memory,sqlite,postgres",
                        help="comma-separated gateway session stores to measure (memory, sqlite, postgres, cookie; "
                             "<store>-nometrics: the same with BFF_METRICS=false; <store>-traced: every request traced into "
                             "a discarding OTLP receiver; <store>-dpop: DPoP-bound sessions, a proof per call)")
    parser.add_argument("--slow", action="store_true", help="also measure GET c64 through a 20 ms upstream")
    parser.add_argument("--profile", action="store_true",
                        help="only run the first store's bff under load with `perf record -g` (10 s)")
    parser.add_argument("--syscalls", action="store_true",
                        help="only count the first store's system calls and context switches under load (10 s)")
    parser.add_argument("--post", action="store_true", help="with --profile/--syscalls/--quick: the POST load")
    parser.add_argument("--quick", action="store_true",
                        help="only Caddy and the first store's bff at c64, interleaved, ratio printed, nothing written")
    arguments = parser.parse_args()
    stores = [store.strip() for store in arguments.stores.split(",") if store.strip()]
    for tool in ["nginx", "caddy", "wrk"]:
        if not shutil.which(tool):
            sys.exit(f"{tool} is missing: apt-get install nginx-light caddy wrk")
    if arguments.build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "bff"], cwd=ROOT, check=True)
        subprocess.run(["swift", "build", "-c", "release", "--product", "bff-bench-upstream"], cwd=ROOT, check=True)
    binaries = os.path.join(ROOT, ".build", "release")
    shutil.rmtree(WORK, ignore_errors=True)
    os.makedirs(WORK)
    write(os.path.join(WORK, "post.lua"),
          'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
          f"wrk.body = {json.dumps(POST_BODY)}\n")
    try:
        start_servers(os.path.join(binaries, "bff"), os.path.join(binaries, "bff-bench-upstream"))
        postgres_url = start_postgres() if "postgres" in stores else None
        targets = {
            "nginx": (f"http://127.0.0.1:{PORTS['nginx']}/", [], None),
            "caddy": (f"http://127.0.0.1:{PORTS['caddy']}/", [], None),
        }
        slow_targets = {
            "nginx": (f"http://127.0.0.1:{PORTS['nginx-slow']}/", [], None),
            "caddy": (f"http://127.0.0.1:{PORTS['caddy-slow']}/", [], None),
        }
        for store in stores:
            process = start_gateway(os.path.join(binaries, "bff"), store, postgres_url)
            port = BFF_PORTS[store]
            cookie = login(port)
            headers = ["Cookie: " + OTHER_COOKIES + "; " + cookie, "X-CSRF: 1"]
            targets["bff-" + store] = (f"http://localhost:{port}/api/fast/", headers, process.pid)
            slow_targets["bff-" + store] = (f"http://localhost:{port}/api/slow/", headers, process.pid)
        log("logged in; warming up")
        for name, (url, headers, _) in targets.items():
            wrk(url, 64, 2, headers)
            wrk(url, 64, 2, headers, post=True)
        first = "bff-" + stores[0]
        if arguments.profile or arguments.syscalls:
            pid = targets[first][2]
            command = (["perf", "stat", "-e", os.environ.get("BENCH_PERF_EVENTS", "raw_syscalls:sys_enter,context-switches,task-clock"), "-p", str(pid)] + (["--per-thread"] if os.environ.get("BENCH_PER_THREAD") else []) + ["-o",
                        os.path.join(WORK, "perf-stat.txt"), "--", "sleep", "10"] if arguments.syscalls else
                       ["perf", "record", "-g", "-p", str(pid)] + (["--per-thread"] if os.environ.get("BENCH_PER_THREAD") else []) + ["-o", os.path.join(WORK, "perf.data"), "--", "sleep", "10"])
            perf = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            print(wrk(targets[first][0], 64, 10, targets[first][1], post=arguments.post))
            perf.wait()
            log("written to", os.path.join(WORK, "perf-stat.txt" if arguments.syscalls else "perf.data"))
            return
        if arguments.quick:
            runs = {"caddy": [], first: []}
            for round_index in range(arguments.rounds):
                for name in (["caddy", first] if round_index % 2 == 0 else [first, "caddy"]):
                    url, headers, _ = targets[name]
                    runs[name].append(wrk(url, 64, arguments.duration, headers, post=arguments.post)["rps"])
            log("caddy", runs["caddy"], first, runs[first])
            print(f"{first}/Caddy c64 {'POST' if arguments.post else 'GET'} = "
                  f"{statistics.median(runs[first]) / statistics.median(runs['caddy']):.2f}")
            return
        results = {name: {"get": [], "post": [], "p99": [], "slow": [], "rss": [], "errors": 0} for name in targets}
        for round_index in range(arguments.rounds):
            order = list(targets) if round_index % 2 == 0 else list(reversed(targets))
            for name in order:
                url, headers, pid = targets[name]
                get = wrk(url, 64, arguments.duration, headers, sample_pid=pid)
                post = wrk(url, 64, arguments.duration, headers, sample_pid=pid, post=True)
                latency = wrk(url, 16, arguments.duration, headers, latency=True)
                row = results[name]
                row["get"].append(get["rps"])
                row["post"].append(post["rps"])
                row["p99"].append(latency["p99_ms"])
                row["rss"].append(max(get["peak_rss_mb"], post["peak_rss_mb"]))
                row["errors"] += get["non2xx"] + post["non2xx"] + latency["non2xx"]
                line = (f"round {round_index + 1} {name}: GET {get['rps']:.0f} req/s, POST {post['rps']:.0f} req/s c64, "
                        f"p99 {latency['p99_ms']} ms c16, errors {get['non2xx']}+{post['non2xx']}+{latency['non2xx']} "
                        f"{get['socket_errors']} {post['socket_errors']}")
                if arguments.slow:
                    slow_url, slow_headers, _ = slow_targets[name]
                    slow = wrk(slow_url, 64, arguments.duration, slow_headers)
                    row["slow"].append(slow["rps"])
                    line += f", 20 ms upstream {slow['rps']:.0f} req/s"
                log(line)
        summary = {name: {"get": statistics.median(r["get"]), "post": statistics.median(r["post"]),
                          "p99": statistics.median(r["p99"]),
                          "slow": statistics.median(r["slow"]) if r["slow"] else None,
                          "rss": max(r["rss"]) if r["rss"] else 0, "errors": r["errors"]}
                   for name, r in results.items()}
        print(json.dumps({"rounds": arguments.rounds, "duration": arguments.duration, "summary": summary,
                          "raw": results}, indent=2))
        report(summary, stores, arguments)
    finally:
        stop_all()


def report(summary, stores, arguments):
    caddy, nginx = summary["caddy"], summary["nginx"]
    lines = [
        "",
        f"## Proxy run of {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC (`Benchmarks/proxy/bench.py`, "
        f"{arguments.rounds} rounds × {arguments.duration} s per load, interleaved, medians)",
        "",
        "| proxy | GET req/s c64 | POST 600 B req/s c64 | p99 ms GET c16 | peak RSS under load | non-2xx |"
        + (" GET c64, 20 ms upstream |" if arguments.slow else ""),
        "|---|---|---|---|---|---|" + ("---|" if arguments.slow else ""),
    ]
    for name in summary:
        row = summary[name]
        rss = f"{row['rss']:.0f} MB" if row["rss"] else "n/a"
        line = (f"| {name} | {row['get']:.0f} | {row['post']:.0f} | {row['p99']:.2f} | {rss} | {row['errors']} |")
        if arguments.slow:
            line += f" {row['slow']:.0f} |"
        lines.append(line)
    lines += ["", "| store | GET ÷ Caddy | GET ÷ nginx | POST ÷ Caddy | POST ÷ nginx | p99 c16 vs Caddy |",
              "|---|---|---|---|---|---|"]
    for store in stores:
        row = summary["bff-" + store]
        lines.append(
            f"| {store} | **{row['get'] / caddy['get']:.2f}** | {row['get'] / nginx['get']:.2f} | "
            f"**{row['post'] / caddy['post']:.2f}** | {row['post'] / nginx['post']:.2f} | "
            f"{row['p99']:.2f} vs {caddy['p99']:.2f} ms |")
    pairs = [(on, store + "-nometrics") for store in stores if store + "-nometrics" in stores
             for on in (store, store + "-traced") if on in stores]
    if pairs:
        lines += ["", "| gateway | GET ÷ metrics off | POST ÷ metrics off |", "|---|---|---|"]
        for on, off in pairs:
            lines.append(f"| {on} | {summary['bff-' + on]['get'] / summary['bff-' + off]['get']:.3f} | "
                         f"{summary['bff-' + on]['post'] / summary['bff-' + off]['post']:.3f} |")
        lines += ["", "Target (issue 12): throughput with metrics on (and traces sampled at 1.0 into a "
                  "discarding receiver) within 5 % of metrics off."]
    dpop_pairs = [(store + "-dpop", store) for store in stores if store + "-dpop" in stores]
    if dpop_pairs:
        lines += ["", "| gateway | GET ÷ bearer | POST ÷ bearer |", "|---|---|---|"]
        for on, off in dpop_pairs:
            lines.append(f"| {on} | {summary['bff-' + on]['get'] / summary['bff-' + off]['get']:.3f} | "
                         f"{summary['bff-' + on]['post'] / summary['bff-' + off]['post']:.3f} |")
        lines += ["", "DPoP (issue 14): every upstream call signs a fresh ES256 proof; the ratio is its cost."]
    lines += ["", "Targets (issue 11, SQLite store): GET ≥ 1.8× Caddy and ≥ 0.55× nginx; POST ≥ 1.5× Caddy; "
              "PostgreSQL GET ≥ 1.2× Caddy; p99 c16 below Caddy's everywhere; peak RSS ≤ 64 MB.", ""]
    with open(arguments.results, "a") as handle:
        handle.write("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
