#!/usr/bin/env python3
"""Several nodes on one PostgreSQL: aggregate tokens/s, change propagation, and the
evidence that a token request makes no database query.

Phases, all in one run (this machine drifts: only figures of one run compare):
  1. baseline: one node on its embedded SQLite store;
  2. 1, 2 and 3 nodes on one fresh PostgreSQL database each, `wrk` on every node at once
     (the connections split between them), tokens/s summed. The nodes and wrk share this
     machine's cores, so more nodes cannot mean more tokens/s here: the figure shows what
     the cluster costs, not how it scales on separate machines;
  3. with 3 nodes: the database's committed transactions during the load against the
     tokens issued, and during as long idle (the nodes' background work: heartbeats,
     key checks), from pg_stat_database;
  4. with 3 nodes: `--changes` changes made on node A (a client and its grant), each timed
     from A's answer until node C issues that client a token; median and max;
  5. with `--seed-clients` clients and `--seed-apis` APIs stored before the nodes start:
     a management write's latency on A, its propagation to C, and token latency, against
     phase 4 on an empty database.

PostgreSQL: the server TOKENHOST_TEST_DATABASE_URL names, else the one tests/postgres.sh
starts. Each phase gets a throwaway database (psql creates and drops it).

Usage: python3 bench/cluster.py [--duration S] [--changes N] [--seed-clients N]
                                [--seed-apis N]
Prints a Markdown table on stdout, progress on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # noqa: E402  (the load benchmark's server, API client and wrk driver)

ROOT = run.ROOT
MASTER_KEY = "YmVuY2gtbWFzdGVyLWtleS0zMi1ieXRlcy1sb25nISE="  # a benchmark's, never production
ALG = "ES256"


def log(message: str) -> None:
    run.log(message)


def server_url() -> str:
    url = os.environ.get("TOKENHOST_TEST_DATABASE_URL")
    if url:
        return url
    out = subprocess.run([str(ROOT / "tests" / "postgres.sh")], capture_output=True, text=True)
    if out.returncode != 0:
        raise run.BenchError(f"tests/postgres.sh failed:\n{out.stderr}")
    return out.stdout.strip()


def with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def psql(url: str, sql: str) -> str:
    out = subprocess.run(
        ["psql", url, "-v", "ON_ERROR_STOP=1", "-qAt", "-c", sql], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise run.BenchError(f"psql: {out.stderr.strip()}")
    return out.stdout.strip()


class Database:
    """A fresh database on the server, dropped by drop()."""

    count = 0

    def __init__(self, server: str):
        Database.count += 1
        self.server = server
        self.name = f"tokenhost_bench_{os.getpid()}_{Database.count}"
        psql(server, f"CREATE DATABASE {self.name}")
        self.url = with_database(server, self.name)

    def drop(self) -> None:
        psql(self.server, f"DROP DATABASE IF EXISTS {self.name} WITH (FORCE)")

    def commits(self) -> int:
        # Statistics reach pg_stat_database when a backend's transaction ends (and at most
        # every second while it idles): ask for a snapshot after they settled.
        return int(psql(self.url, f"SELECT xact_commit FROM pg_stat_database WHERE datname = '{self.name}'"))


def start_nodes(binary: Path, n: int, db: Database | None) -> list[run.Server]:
    # Propagation is timed by asking C for a token until it knows the client: those
    # failures must not trip the failed-authentication slowdown (10, then 6 s apart).
    env = {"TOKENHOST_AUTH_FAILURE_BURST": "1000000000"}
    if db is not None:
        env.update(TOKENHOST_DATABASE_URL=db.url, TOKENHOST_MASTER_KEY=MASTER_KEY)
    nodes = [run.Server(binary, env) for _ in range(n)]
    # One after the other, from this thread: each server is asked to end with the thread
    # that started it (PR_SET_PDEATHSIG), so a helper thread's end would stop it.
    for node in nodes:
        node.start()
    for node in nodes:
        if node.port is None:
            raise run.BenchError(f"a node did not start:\n{node.tail()}")
    return nodes


def stop_all(nodes: list[run.Server]) -> None:
    for node in nodes:
        node.stop()


def set_up_client(api: run.Api) -> tuple[str, str]:
    """An ES256 API (if missing) and a new client granted it."""
    api.mgmt(
        "POST",
        "/api/v2/resource-servers",
        {"identifier": run.AUDIENCES[ALG], "scopes": [{"value": "read"}], "signing_alg": ALG},
        expect=(201, 409),
    )
    client = api.mgmt("POST", "/api/v2/clients", {"name": "bench", "client_metadata": {"tier": "gold"}})
    api.mgmt(
        "POST",
        "/api/v2/client-grants",
        {"client_id": client["client_id"], "audience": run.AUDIENCES[ALG], "scope": ["read"]},
    )
    return client["client_id"], client["client_secret"]


def token_status(api: run.Api, client_id: str, secret: str) -> int:
    body = run.token_body(client_id, secret, run.AUDIENCES[ALG]).encode()
    status, _ = api.request(
        "POST", "/oauth/token", body, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    return status


def until_token(api: run.Api, client_id: str, secret: str, limit: float = 10.0) -> float:
    """Seconds until `api`'s node issues `client_id` a token (polled without pause)."""
    started = time.perf_counter()
    while time.perf_counter() - started < limit:
        if token_status(api, client_id, secret) == 200:
            return time.perf_counter() - started
    raise run.BenchError(f"no token for {client_id} within {limit} s")


def load(wrk: str, nodes: list[run.Server], setup: run.Setup, args, seconds: float) -> tuple[float, int, float, float]:
    """wrk on every node at once; returns (tokens/s summed, failures, p50 ms, p99 ms of the worst node)."""
    per_node = argparse.Namespace(threads=1, connections=max(1, args.connections // len(nodes)))
    results: list[run.Phase] = []
    errors: list[Exception] = []

    def drive(node: run.Server) -> None:
        try:
            results.append(run.run_wrk(wrk, node, setup, "none", ALG, per_node, seconds))
        except Exception as e:  # reported below
            errors.append(e)

    threads = [threading.Thread(target=drive, args=(node,)) for node in nodes]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return (
        sum(p.tokens_per_s for p in results),
        sum(p.failed for p in results),
        max(p.p50_ms for p in results),
        max(p.p99_ms for p in results),
    )


def propagation(a: run.Api, c: run.Api, changes: int) -> tuple[list[float], list[float]]:
    """`changes` times: a client and its grant made on A (write latency of the client's
    POST), then the time until C issues it a token."""
    writes, spreads = [], []
    for _ in range(changes):
        started = time.perf_counter()
        client = a.mgmt("POST", "/api/v2/clients", {"name": "propagation"})
        writes.append(time.perf_counter() - started)
        a.mgmt(
            "POST",
            "/api/v2/client-grants",
            {"client_id": client["client_id"], "audience": run.AUDIENCES[ALG], "scope": ["read"]},
        )
        spreads.append(until_token(c, client["client_id"], client["client_secret"]))
    return writes, spreads


def seed(db: Database, clients: int, apis: int) -> None:
    """Stores `clients` clients (without secrets: they only fill the catalog) and `apis`
    APIs straight into the schema a first node made."""
    psql(
        db.url,
        f"""INSERT INTO clients (client_id, name, client_metadata, app_type, created_at)
            SELECT 'seeded-' || i, 'seeded ' || i, '{{"tier":"gold"}}', 'non_interactive', 0
            FROM generate_series(1, {clients}) AS i;
            INSERT INTO resource_servers (id, identifier, name, scopes, token_lifetime,
                signing_alg, allow_rule_added_scopes, created_at)
            SELECT 'api_seeded_' || i, 'https://seeded/' || i, 'seeded ' || i,
                '[{{"value":"read","description":""}}]', 3600, 'ES256', false, 0
            FROM generate_series(1, {apis}) AS i;""",
    )


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def summary(values: list[float]) -> str:
    return f"median {ms(statistics.median(values))} ms, max {ms(max(values))} ms"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=5, help="seconds of load per phase (default 5)")
    p.add_argument("--connections", type=int, default=16, help="wrk connections in all (default 16)")
    p.add_argument("--changes", type=int, default=20, help="changes timed for propagation (default 20)")
    p.add_argument("--seed-clients", type=int, default=100_000, help="clients stored for phase 5 (0 skips it)")
    p.add_argument("--seed-apis", type=int, default=1_000, help="APIs stored for phase 5")
    p.add_argument("--binary", type=Path, default=ROOT / "target" / "release" / "tokenhost")
    args = p.parse_args(argv)
    wrk = run.ensure_wrk()
    pg = server_url()
    rows: list[tuple[str, str]] = []
    log(f"load average {os.getloadavg()[0]:.2f}; {os.cpu_count()} cores shared by every node and wrk")

    def measure_nodes(n: int, db: Database | None) -> tuple[list[run.Server], run.Setup, list[run.Api]]:
        nodes = start_nodes(args.binary, n, db)
        apis = [run.Api(node.port) for node in nodes]
        client_id, secret = set_up_client(apis[0])
        for api in apis:
            until_token(api, client_id, secret)
        setup = run.Setup(client_id, secret)
        load(wrk, nodes, setup, args, 1)  # warm-up
        tps, failed, p50, p99 = load(wrk, nodes, setup, args, args.duration)
        store = "SQLite" if db is None else "PostgreSQL"
        rows.append((f"{n} node{'s' if n > 1 else ''}, {store}: tokens/s (all nodes)", f"{tps:,.0f} (p50 {p50:.2f} ms, p99 {p99:.2f} ms, failed {failed})"))
        log(rows[-1][0] + ": " + rows[-1][1])
        if failed:
            raise run.BenchError(f"{failed} token requests failed")
        return nodes, setup, apis

    try:
        nodes, _, _ = measure_nodes(1, None)
        stop_all(nodes)
        for n in (1, 2, 3):
            db = Database(pg)
            try:
                nodes, setup, apis = measure_nodes(n, db)
                if n == 3:
                    time.sleep(1.5)
                    before = db.commits()
                    tps, _, _, _ = load(wrk, nodes, setup, args, args.duration)
                    time.sleep(1.5)
                    during = db.commits() - before
                    before = db.commits()
                    time.sleep(args.duration + 1.5)
                    idle = db.commits() - before
                    tokens = int(tps * args.duration)
                    rows.append(("3 nodes: database transactions during load (tokens issued)", f"{during:,} ({tokens:,} tokens)"))
                    rows.append(("3 nodes: database transactions idle, as long", f"{idle:,}"))
                    log(f"{rows[-2][0]}: {rows[-2][1]}; idle {idle}")
                    writes, spreads = propagation(apis[0], apis[2], args.changes)
                    rows.append((f"3 nodes, empty: client write on A ({args.changes})", summary(writes)))
                    rows.append((f"3 nodes, empty: change on A to token on C ({args.changes})", summary(spreads)))
                    log(f"{rows[-2][0]}: {rows[-2][1]}\n{rows[-1][0]}: {rows[-1][1]}")
                stop_all(nodes)
            finally:
                db.drop()
        if args.seed_clients:
            db = Database(pg)
            try:
                # The first node makes the schema; the seeded rows come before the others start
                # and are read by the first at its next reconcile or restart: restart it.
                first = start_nodes(args.binary, 1, db)
                stop_all(first)
                started = time.perf_counter()
                seed(db, args.seed_clients, args.seed_apis)
                log(f"seeded {args.seed_clients:,} clients and {args.seed_apis:,} APIs in {time.perf_counter() - started:.1f} s")
                started = time.perf_counter()
                nodes = start_nodes(args.binary, 3, db)
                rows.append((f"3 nodes start on {args.seed_clients:,} clients, {args.seed_apis:,} APIs", f"{time.perf_counter() - started:.1f} s"))
                apis = [run.Api(node.port) for node in nodes]
                time.sleep(3)  # the nodes' start-up reads are over: measure the steady state
                client_id, secret = set_up_client(apis[0])
                for api in apis:
                    until_token(api, client_id, secret)
                setup = run.Setup(client_id, secret)
                writes, spreads = propagation(apis[0], apis[2], args.changes)
                label = f"{args.seed_clients // 1000}k clients, {args.seed_apis:,} APIs"
                rows.append((f"3 nodes, {label}: client write on A ({args.changes})", summary(writes)))
                rows.append((f"3 nodes, {label}: change on A to token on C ({args.changes})", summary(spreads)))
                tps, failed, p50, p99 = load(wrk, nodes, setup, args, args.duration)
                rows.append((f"3 nodes, {label}: tokens/s (all nodes)", f"{tps:,.0f} (p50 {p50:.2f} ms, p99 {p99:.2f} ms, failed {failed})"))
                for row in rows[-4:]:
                    log(f"{row[0]}: {row[1]}")
                stop_all(nodes)
            finally:
                db.drop()
    except run.BenchError as e:
        log(f"error: {e}")
        return 1
    print("| measure | result |\n|---|---|")
    for what, result in rows:
        print(f"| {what} | {result} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
