#!/usr/bin/env python3
"""CPU per proxied call, two gateways side by side: A/B of two binaries or two configurations.

Throughput on this 2-core machine drifts by ±10 % from minute to minute, more than most changes
to the gateway are worth. So this measures what a change costs per call instead: both gateways
run at once against the same nginx upstream (the bench.py setup), and the rounds alternate
A, B, B, A, … under wrk c64; each round reads the gateway's user and system CPU time from
/proc/<pid>/stat and divides by the calls served. Medians over the rounds are printed.

Usage: Benchmarks/proxy/cpu_ab.py BINARY_A BINARY_B STORE_A[/STORE_B] [--rounds 8] [--post]
  STORE: memory, sqlite, postgres, or bench.py's variants (sqlite-nometrics, sqlite-traced, …).
  Example: cpu_ab.py .build/release/bff .build/release/bff sqlite-nometrics/sqlite-traced
Nothing is written; build the binaries first (swift build -c release --product bff, and
--product bff-bench-upstream).
"""
import argparse
import importlib.util
import json
import os
import shutil
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
spec = importlib.util.spec_from_file_location("bench", os.path.join(HERE, "bench.py"))
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)


def cpu_ticks(pid):
    """User and system time of `pid` in clock ticks (1/100 s)."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("binary_a")
    parser.add_argument("binary_b")
    parser.add_argument("stores", help="STORE or STORE_A/STORE_B")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--duration", type=int, default=6)
    parser.add_argument("--post", action="store_true", help="the 600-byte JSON POST load instead of GET")
    arguments = parser.parse_args()
    store_a, _, store_b = arguments.stores.partition("/")
    store_b = store_b or store_a
    # B listens on the port of a bench.py gateway that A is not (the dev IdP knows every one).
    spare = "memory-dpop" if store_a != "memory-dpop" else "sqlite-dpop"
    sides = [("A", os.path.abspath(arguments.binary_a), store_a, bench.BFF_PORTS[store_a]),
             ("B", os.path.abspath(arguments.binary_b), store_b, bench.BFF_PORTS[spare])]
    work = bench.WORK
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    bench.write(os.path.join(work, "post.lua"),
                'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f"wrk.body = {json.dumps(bench.POST_BODY)}\n")
    binaries = os.path.join(bench.ROOT, ".build", "release")
    try:
        bench.start_servers(os.path.join(binaries, "bff"), os.path.join(binaries, "bff-bench-upstream"))
        postgres_url = bench.start_postgres() if "postgres" in (store_a + store_b) else None
        gateways = []
        for label, binary, store, port in sides:
            bench.BFF_PORTS[store] = port
            bench.WORK = os.path.join(work, label)  # each side its own directory (SQLite file, config)
            os.makedirs(bench.WORK, exist_ok=True)
            process = bench.start_gateway(binary, store, postgres_url)
            bench.WORK = work
            cookie = bench.login(port)
            gateways.append((label, process.pid, f"http://localhost:{port}/api/fast/",
                             ["Cookie: " + bench.OTHER_COOKIES + "; " + cookie, "X-CSRF: 1"]))
        for _, _, url, headers in gateways:
            bench.wrk(url, 64, 3, headers, post=arguments.post)
        user = {"A": [], "B": []}
        system = {"A": [], "B": []}
        rps = {"A": [], "B": []}
        for round_index in range(arguments.rounds):
            for label, pid, url, headers in (gateways if round_index % 2 == 0 else gateways[::-1]):
                user_before, system_before = cpu_ticks(pid)
                result = bench.wrk(url, 64, arguments.duration, headers, post=arguments.post)
                user_after, system_after = cpu_ticks(pid)
                calls = result["rps"] * arguments.duration
                user[label].append((user_after - user_before) * 10_000 / calls)  # ticks → µs
                system[label].append((system_after - system_before) * 10_000 / calls)
                rps[label].append(result["rps"])
        for label, _, store, _ in sides:
            print(f"{label} ({store}): user {statistics.median(user[label]):.1f} µs/call "
                  f"{[round(x, 1) for x in user[label]]}, system {statistics.median(system[label]):.1f} µs/call, "
                  f"{statistics.median(rps[label]):.0f} calls/s")
        print(f"B ÷ A calls/s: {statistics.median(rps['B']) / statistics.median(rps['A']):.3f}")
    finally:
        bench.stop_all()


if __name__ == "__main__":
    sys.exit(main())
