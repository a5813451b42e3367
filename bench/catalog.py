#!/usr/bin/env python3
"""What a management write and a token request cost on an empty server and on one with
100,000 clients and 1,000 APIs (`make bench-catalog`).

Starts the release server on a fresh data directory, measures (one request at a time, one
kept-alive connection) the latency of `POST /api/v2/clients` and of `POST /oauth/token`,
stops it, seeds clients, APIs and one grant per client straight into its SQLite file
through the store API (`host/examples/bench_catalog.rs seed`), starts it again and
measures the same. Between the two it also measures, in process, what applying one change
costs a node (`bench_catalog apply`): what another node does when notified of a write,
and a full rebuild, what every write cost before changes were applied one by one.

`--binary OLD` runs the server phases against another build (e.g. one from before the
change) for comparison; `--clients`/`--apis` change the seeded size.

Usage: python3 bench/catalog.py [--clients N] [--apis N] [--writes N] [--tokens N]
                               [--binary PATH] [--markdown]
Standard library only.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the Server and Api helpers of the load benchmark)

ROOT = run.ROOT
EXAMPLE = ROOT / "target" / "release" / "examples" / "bench_catalog"
AUDIENCE = "https://bench/catalog"


class Server(run.Server):
    """run.Server, but stop() keeps the data directory (the server starts again on it)."""

    def stop(self, remove: bool = False) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(run.signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc, self.port, self.output = None, None, []
        if remove:
            shutil.rmtree(self.data_dir, ignore_errors=True)


class Conn:
    """One kept-alive connection: the numbers are the server's, not TCP set-up's."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection(run.HOST, port, timeout=60)

    def call(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes, float]:
        started = time.perf_counter()
        self.conn.request(method, path, body=body, headers=headers)
        resp = self.conn.getresponse()
        data = resp.read()
        return resp.status, data, time.perf_counter() - started


def wait_ready(port: int, timeout: float = 600.0) -> float:
    """Seconds until /readyz answers 200 (the catalog built, the compiler warm)."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        try:
            status, _ = run.Api(port).request("GET", "/readyz", None, {})
            if status == 200:
                return time.perf_counter() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise run.BenchError("the server did not get ready")


def summary(seconds: list[float]) -> tuple[float, float]:
    ms = sorted(s * 1e3 for s in seconds)
    return statistics.median(ms), ms[min(len(ms) - 1, len(ms) * 95 // 100)]


def measure(server: Server, writes: int, tokens: int, setup: dict) -> dict:
    api = run.Api(server.port)
    mgmt = api.token(run.ADMIN_ID, run.ADMIN_SECRET, run.MANAGEMENT_AUDIENCE)["access_token"]
    conn = Conn(server.port)
    headers = {"Authorization": f"Bearer {mgmt}", "Content-Type": "application/json"}
    if not setup:
        # An API and a client granted it, for the token requests (made once, on the empty
        # server; they are still there after seeding).
        api.mgmt("POST", "/api/v2/resource-servers", {"identifier": AUDIENCE, "scopes": [{"value": "read"}], "signing_alg": "ES256"})
        client = api.mgmt("POST", "/api/v2/clients", {"name": "bench catalog"})
        api.mgmt("POST", "/api/v2/client-grants", {"client_id": client["client_id"], "audience": AUDIENCE, "scope": ["read"]})
        setup.update(client_id=client["client_id"], client_secret=client["client_secret"])
    write_times = []
    for i in range(writes):
        body = json.dumps({"name": f"bench write {i}"}).encode()
        status, data, took = conn.call("POST", "/api/v2/clients", body, headers)
        if status != 201:
            raise run.BenchError(f"POST /api/v2/clients gave {status}: {data[:300]!r}")
        write_times.append(took)
    form = run.token_body(setup["client_id"], setup["client_secret"], AUDIENCE).encode()
    form_headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": run.BENCH_UA}
    token_times = []
    for i in range(tokens + 50):
        status, data, took = conn.call("POST", "/oauth/token", form, form_headers)
        if status != 200:
            raise run.BenchError(f"token request gave {status}: {data[:300]!r}")
        if i >= 50:  # warm-up
            token_times.append(took)
    return {"write": summary(write_times), "token": summary(token_times)}


def example(*args: str) -> str:
    out = subprocess.run([str(EXAMPLE), *args], check=True, capture_output=True, text=True)
    sys.stderr.write(out.stderr)
    return out.stdout


def table(header: tuple[str, ...], rows: list[tuple[str, ...]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines)
    widths = [max(len(x) for x in col) for col in zip(header, *rows)]
    return "\n".join("  ".join(x.ljust(w) for x, w in zip(r, widths)) for r in [header, *rows])


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--clients", type=int, default=100_000)
    p.add_argument("--apis", type=int, default=1_000)
    p.add_argument("--writes", type=int, default=200)
    p.add_argument("--tokens", type=int, default=2_000)
    p.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "tokenhost")
    p.add_argument("--markdown", action="store_true")
    args = p.parse_args(argv)
    for path in (args.binary, EXAMPLE):
        if not path.exists():
            raise run.BenchError(f"{path} is missing: cargo build --release -p host --examples")
    server = Server(args.binary)
    setup: dict = {}
    results = {}
    try:
        server.start()
        ready_empty = wait_ready(server.port)
        run.log("measuring the empty server")
        results["empty"] = measure(server, args.writes, args.tokens, setup)
        server.stop()
        apply_empty = json.loads(example("apply", str(server.data_dir), "50"))
        run.log(f"seeding {args.clients} clients and {args.apis} APIs")
        example("seed", str(server.data_dir), str(args.clients), str(args.apis))
        apply_full = json.loads(example("apply", str(server.data_dir), "50"))
        started = time.perf_counter()
        server.start(timeout=600)
        ready_seeded = time.perf_counter() - started + wait_ready(server.port)
        run.log("measuring the seeded server")
        results["seeded"] = measure(server, args.writes, args.tokens, setup)
    finally:
        server.stop(remove=True)

    seeded = f"{args.clients:,} clients, {args.apis:,} APIs"
    print(f"tokenhost catalog: {args.binary.name} ({args.binary}); {args.writes} writes, "
          f"{args.tokens} token requests, one at a time; {time.strftime('%Y-%m-%d')}\n")
    f = lambda pair: f"{pair[0]:.2f} / {pair[1]:.2f}"  # noqa: E731
    rows = [
        ("POST /api/v2/clients (HTTP)", f(results["empty"]["write"]), f(results["seeded"]["write"]),
         f"{results['seeded']['write'][0] - results['empty']['write'][0]:+.2f}"),
        ("POST /oauth/token (HTTP)", f(results["empty"]["token"]), f(results["seeded"]["token"]),
         f"{results['seeded']['token'][0] - results['empty']['token'][0]:+.2f}"),
        ("apply a client change (in process)", f(apply_empty["apply_client_ms"]), f(apply_full["apply_client_ms"]),
         f"{apply_full['apply_client_ms'][0] - apply_empty['apply_client_ms'][0]:+.3f}"),
        ("apply an API change (in process)", f(apply_empty["apply_api_ms"]), f(apply_full["apply_api_ms"]),
         f"{apply_full['apply_api_ms'][0] - apply_empty['apply_api_ms'][0]:+.3f}"),
        ("full rebuild (Everything)", f"{apply_empty['full_rebuild_ms']:.2f}", f"{apply_full['full_rebuild_ms']:.2f}", ""),
        ("start to ready (s)", f"{ready_empty:.2f}", f"{ready_seeded:.2f}", ""),
    ]
    print(table(("ms, median / p95", "empty server", seeded, "median change"), rows, args.markdown))
    target = results["seeded"]["write"][0] - results["empty"]["write"][0] <= 10 and \
        apply_full["apply_client_ms"][0] - apply_empty["apply_client_ms"][0] <= 10
    print("\n(in process: host/examples/bench_catalog.rs, this tree's catalog code whatever --binary is;"
          " a node notified of a change does the same apply)")
    print(f"\ntarget (a write and its propagation within 10 ms of the empty server's): "
          f"{'met' if target else 'NOT met'}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except run.BenchError as e:
        run.log(f"bench/catalog.py: {e}")
        sys.exit(1)
