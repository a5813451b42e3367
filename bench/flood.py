#!/usr/bin/env python3
"""What a stranger's token request costs the server: an ordinary refused request against
the scope flood and other large unauthenticated bodies.

Starts each given release binary on a fresh data directory (bench/run.py's `Server`), sends
each kind of request N times, one after another on one keep-alive connection, and prints
the server's own CPU time per request (user + system, from /proc, so the client's work is
not counted), the wall time per request, the answers' status, and each kind's ratio to the
ordinary refused request of the same binary. Every request names a client_id of its own
that no client has, so every one is refused at authentication or before it, and none is
slowed down as a repeated failure.

Kinds:
  refused   an ordinary refused request: unknown client, one scope
  flood     14,000 distinct three-character scopes (56 KB, under the 64 KiB body cap)
  params    a form of 6,500 distinct parameters (about 60 KB)
  json      a JSON body whose one extra value is an array of 9,000 strings (about 54 KB)

Usage: python3 bench/flood.py [--requests N] [--kinds refused,flood,...] BINARY [BINARY...]
  e.g. python3 bench/flood.py /tmp/tokenhost-before target/release/tokenhost
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import string
import sys
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import HOST, BenchError, Server  # noqa: E402

FLOOD_SCOPES = 14_000
ALPHABET = string.ascii_lowercase + string.digits


def short_names(count: int) -> list[str]:
    names = ("".join(p) for p in itertools.product(ALPHABET, repeat=3))
    return list(itertools.islice(names, count))


def base_form(n: int) -> dict[str, str]:
    return {
        "grant_type": "client_credentials",
        "client_id": f"stranger-{n}",
        "client_secret": "not-the-secret",
        "audience": "https://api.example.com/",
    }


def kinds() -> dict[str, callable]:
    flood_scope = " ".join(short_names(FLOOD_SCOPES))
    params = {f"p{i}": "x" for i in range(6_500)}
    array = short_names(9_000)
    form = "application/x-www-form-urlencoded"
    return {
        "refused": lambda n: (form, urllib.parse.urlencode({**base_form(n), "scope": "read"})),
        "flood": lambda n: (form, urllib.parse.urlencode({**base_form(n), "scope": flood_scope})),
        "params": lambda n: (form, urllib.parse.urlencode({**base_form(n), **params})),
        "json": lambda n: ("application/json", json.dumps({**base_form(n), "extra": array})),
    }


def measure(server: Server, make, requests: int, start: int) -> tuple[float, float, dict[int, int]]:
    """CPU seconds and wall seconds per request, and the count of each status."""
    bodies = [make(start + i) for i in range(requests)]
    conn = http.client.HTTPConnection(HOST, server.port, timeout=60)
    statuses: dict[int, int] = {}
    cpu0, wall0 = server.cpu_seconds(), time.perf_counter()
    for content_type, body in bodies:
        conn.request("POST", "/oauth/token", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        response.read()
        statuses[response.status] = statuses.get(response.status, 0) + 1
    wall = time.perf_counter() - wall0
    cpu = server.cpu_seconds() - cpu0
    conn.close()
    return cpu / requests, wall / requests, statuses


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("binaries", nargs="+", type=Path)
    parser.add_argument("--requests", type=int, default=0,
                        help="requests per kind (default: 2000 refused, 40 of each other kind)")
    parser.add_argument("--kinds", default="refused,flood,params,json",
                        help="which kinds, comma-separated; the first is the baseline")
    args = parser.parse_args(argv)
    every = kinds()
    made = {kind: every[kind] for kind in args.kinds.split(",")}
    print(f"{'binary':<40} {'kind':<8} {'n':>5} {'cpu ms/req':>11} {'wall ms/req':>12} "
          f"{'x refused':>10}  statuses")
    for binary in args.binaries:
        server = Server(binary)
        try:
            server.start()
            baseline = None
            for index, (kind, make) in enumerate(made.items()):
                n = args.requests or (2000 if kind == "refused" else 40)
                # A first round to warm up, not counted.
                measure(server, make, min(n, 20), 10_000_000 * (index + 1))
                cpu, wall, statuses = measure(server, make, n, 10_000_000 * (index + 5))
                if baseline is None:
                    baseline = cpu
                ratio = cpu / baseline if baseline else float("nan")
                print(f"{str(binary):<40} {kind:<8} {n:>5} {cpu * 1e3:>11.3f} {wall * 1e3:>12.3f} "
                      f"{ratio:>10.1f}  {statuses}", flush=True)
        except BenchError as e:
            print(f"{binary}: {e}", file=sys.stderr)
            return 1
        finally:
            server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
