#!/usr/bin/env python3
"""HTTP load benchmark of POST /oauth/token: tokens per second with and without rules.

Starts the release server on a free loopback port with a fresh data directory, creates an
ES256, an RS256 and an EdDSA API and one client granted all three, then drives `wrk`
against the token endpoint for each rule configuration (none, the seed rule, a chain of
three rules) and each algorithm. With the server stopped, it runs the host's
`bench_rules` (the seed rule alone, fresh instance per execution) and `bench_sign` (one raw
signature per algorithm) examples. It prints throughput, latency and server CPU per token
per phase, what the rules add in the server beside the seed rule's cost alone, the
signatures, and whether the targets (bench/report.py) are met, all from this one run.

The pkjwt and dpop phases (ES256 only, no rule) authenticate with a client assertion
instead of the secret, dpop also with a DPoP proof: each may be used once, so
`bench_assertions` signs a file of them before each phase and token.lua walks it.

`--configs none,seed,component` adds a phase with the Rust rule component of the tests
(tests/fixtures/rust-rule.wasm) instead of JS: what a rule's wasm instance costs without
the JS interpreter. `seed-adapter` adds the seed rule built as before WASI was inlined,
with the WASI preview1 adapter beside it (`tokenhost compile` with TOKENHOST_WASI_ADAPTER=1,
uploaded as a component): the baseline of inlining WASI, in the same run.

Exit status: 0 when every request got a 200 (a missed target is reported, not an error);
1 when any request failed, a token did not carry the expected claims, or setup failed.

Usage: python3 bench/run.py [--duration S | --quick] [--connections N] [--rounds N] [--markdown]
                           [--configs none,seed,...] [--algs ES256,RS256,EdDSA] [--no-examples]
Standard library only; installs the Debian `wrk` package when `wrk` is not on PATH.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import http.client
import json
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from report import AUTH_CONFIGS, Phase, report  # noqa: E402  (the report and its targets)

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
LUA_SCRIPT = BENCH_DIR / "token.lua"
SEED_RULE = ROOT / "rules" / "myrule.js"
RUST_RULE = ROOT / "tests" / "fixtures" / "rust-rule.wasm"

HOST = "127.0.0.1"
# Tokens name this issuer; nothing is ever sent to it (the server's own address comes from
# its "listening" line, since it binds port 0).
ISSUER = "http://127.0.0.1/"
MANAGEMENT_AUDIENCE = ISSUER + "api/v2/"
ADMIN_ID = "bench-admin"
ADMIN_SECRET = "bench-admin-secret-not-for-production"

ALGS = ("ES256", "RS256", "EdDSA")
AUDIENCES = {alg: f"https://bench/{alg.lower()}" for alg in ALGS}
CLIENT_TIER = "gold"
SEED_CLAIM = "https://foo.com/claim"
TIER_CLAIM = "https://tokenhost.dev/tier"
IP_CLAIM = "https://tokenhost.dev/client_ip"
UA_CLAIM = "https://tokenhost.dev/user_agent"
LANG_CLAIM = "https://tokenhost.dev/lang"
BENCH_UA = "tokenhost-bench"  # what token.lua and verify() send as User-Agent

# Two small, realistic rules that follow the seed in the chain. Each passes the scope on:
# a rule that leaves `scope` out empties the token's scope (CONTRACT.md).
TIER_RULE = """\
// Copies the client's tier from its metadata into a namespaced claim.
module.exports = function (client, scope, audience, context, cb) {
  var tier = client.metadata.tier;
  if (!tier) {
    return cb(new InvalidRequestError('client ' + client.id + ' has no tier'));
  }
  var token = { scope: scope };
  token['https://tokenhost.dev/tier'] = tier;
  cb(null, token);
};
"""
REQUEST_RULE = """\
// Records where the request came from: the caller's IP and user agent.
module.exports = function (client, scope, audience, context, cb) {
  var token = { scope: scope };
  token['https://tokenhost.dev/client_ip'] = context.request.ip;
  token['https://tokenhost.dev/user_agent'] = context.request.user_agent;
  cb(null, token);
};
"""

CONFIGS = ("none", "seed", "seed-adapter", "chain", "pkjwt", "dpop")
CONFIG_RULES = {
    "none": (),
    "seed": ("seed",),
    "chain": ("seed", "tier", "request"),
    "component": ("rust",),
    "seed-adapter": ("seed_adapter",),
    # No rule; the client authenticates with an ES256 client assertion (private_key_jwt)
    # instead of its secret, and with dpop also sends a DPoP proof (ES256 APIs only).
    "pkjwt": (),
    "dpop": (),
}
TOKEN_ENDPOINT = ISSUER + "oauth/token"



class BenchError(Exception):
    """A failure that makes the run's numbers meaningless."""


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the server -------------------------------------------------------------------------


class Server:
    """The release binary on 127.0.0.1:0 with a fresh data directory, stopped by stop()."""

    def __init__(self, binary: Path, extra_env: dict[str, str] | None = None):
        self.binary = binary
        self.extra_env = extra_env or {}
        self.data_dir = Path(tempfile.mkdtemp(prefix="tokenhost-bench-"))
        self.proc: subprocess.Popen[str] | None = None
        self.port: int | None = None
        self.output: list[str] = []  # the last lines of stdout and stderr, for errors
        self._lock = threading.Lock()

    def start(self, timeout: float = 60.0) -> None:
        env = dict(os.environ)
        env.update(
            TOKENHOST_LISTEN=f"{HOST}:0",
            TOKENHOST_ISSUER=ISSUER,
            TOKENHOST_DATA_DIR=str(self.data_dir),
            TOKENHOST_BOOTSTRAP_CLIENT_ID=ADMIN_ID,
            TOKENHOST_BOOTSTRAP_CLIENT_SECRET=ADMIN_SECRET,
            TOKENHOST_LOG=os.environ.get("TOKENHOST_LOG", "warn"),
            # One client sends thousands of requests a second here: lift the per-client
            # limit (default 50/s) so the benchmark measures issuing, not refusing. The
            # limiter still runs on every request, so its cost is in the numbers.
            TOKENHOST_RATE_LIMIT_PER_SECOND="1000000000",
            TOKENHOST_RATE_LIMIT_BURST="1000000000",
        )
        env.update(self.extra_env)
        self.proc = subprocess.Popen(
            [str(self.binary), "serve"],
            env=env,
            preexec_fn=die_with_parent,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready = threading.Event()
        listening = re.compile(r"tokenhost listening on http://127\.0\.0\.1:(\d+)")

        def drain(stream, watch: bool) -> None:
            for line in stream:
                with self._lock:
                    self.output.append(line.rstrip("\n"))
                    del self.output[:-50]
                if watch and self.port is None:
                    m = listening.search(line)
                    if m:
                        self.port = int(m.group(1))
                        ready.set()
            ready.set()  # the stream closed: the server is gone

        threading.Thread(target=drain, args=(self.proc.stdout, True), daemon=True).start()
        threading.Thread(target=drain, args=(self.proc.stderr, False), daemon=True).start()
        if not ready.wait(timeout) or self.port is None:
            raise BenchError(f"the server did not start within {timeout:.0f} s:\n{self.tail()}")

    def tail(self) -> str:
        with self._lock:
            return "\n".join(self.output[-20:]) or "(no output)"

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def cpu_seconds(self) -> float:
        """User + system CPU time the server has used so far."""
        assert self.proc is not None
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        ticks = os.sysconf("SC_CLK_TCK")
        return (int(fields[11]) + int(fields[12])) / ticks  # utime, stime

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


def die_with_parent() -> None:
    """In the child: ask Linux to SIGTERM it when this script dies, even by SIGKILL."""
    try:
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: stop() in the finally block still covers every ordinary exit


def exit_on_signal(signum, _frame) -> None:
    raise SystemExit(128 + signum)


# --- HTTP helpers ------------------------------------------------------------------------


class Api:
    """A tiny client for the server's token endpoint and management API."""

    def __init__(self, port: int):
        self.port = port
        self.mgmt_token: str | None = None

    def request(self, method: str, path: str, body: bytes | None, headers: dict[str, str]):
        conn = http.client.HTTPConnection(HOST, self.port, timeout=30)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, data
        finally:
            conn.close()

    def token(self, client_id: str, client_secret: str, audience: str) -> dict:
        body = token_body(client_id, client_secret, audience)
        status, data = self.request(
            "POST",
            "/oauth/token",
            body.encode(),
            {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": BENCH_UA},
        )
        if status != 200:
            raise BenchError(f"token request for {audience} gave {status}: {data[:500]!r}")
        return json.loads(data)

    def mgmt(self, method: str, path: str, payload: dict | None = None, expect=(200, 201, 204)):
        if self.mgmt_token is None:
            self.mgmt_token = self.token(ADMIN_ID, ADMIN_SECRET, MANAGEMENT_AUDIENCE)["access_token"]
        headers = {"Authorization": f"Bearer {self.mgmt_token}"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        status, data = self.request(method, path, body, headers)
        if status not in expect:
            raise BenchError(f"{method} {path} gave {status}: {data[:500]!r}")
        return json.loads(data) if data else None


def token_body(client_id: str, client_secret: str, audience: str) -> str:
    return urllib.parse.urlencode(
        {
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
            "audience": audience,
        }
    )


def jwt_part(jwt: str, index: int) -> dict:
    part = jwt.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


# --- setup -------------------------------------------------------------------------------


@dataclass
class Setup:
    client_id: str
    client_secret: str
    rule_ids: dict[str, str] = field(default_factory=dict)  # "seed" | "tier" | "request" -> id
    # The client's ES256 key for private_key_jwt (bench_assertions keygen), when built.
    key_dir: Path | None = None


def seed_with_adapter(binary: Path) -> bytes:
    """The seed rule compiled offline with the WASI preview1 adapter (the old shape)."""
    with tempfile.TemporaryDirectory(prefix="tokenhost-bench-adapter-") as tmp:
        out = Path(tmp) / "seed.wasm"
        env = dict(os.environ, TOKENHOST_WASI_ADAPTER="1")
        done = subprocess.run([str(binary), "compile", str(SEED_RULE), "-o", str(out)], env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise BenchError(f"tokenhost compile failed: {done.stderr.strip()}")
        return out.read_bytes()


def set_up(api: Api, binary: Path, configs) -> Setup:
    for alg in ALGS:
        api.mgmt(
            "POST",
            "/api/v2/resource-servers",
            {"identifier": AUDIENCES[alg], "scopes": [{"value": "read"}], "signing_alg": alg},
        )
    client = api.mgmt(
        "POST", "/api/v2/clients", {"name": "bench", "client_metadata": {"tier": CLIENT_TIER}}
    )
    setup = Setup(client["client_id"], client["client_secret"])
    for alg in ALGS:
        api.mgmt(
            "POST",
            "/api/v2/client-grants",
            {"client_id": setup.client_id, "audience": AUDIENCES[alg], "scope": ["read"]},
        )
    sources = {"seed": SEED_RULE.read_text(), "tier": TIER_RULE, "request": REQUEST_RULE}
    for order, (name, script) in enumerate(sources.items(), start=1):
        rule = api.mgmt(
            "POST",
            "/api/v2/rules",
            {"name": f"bench {name}", "script": script, "enabled": False, "order": order},
        )
        setup.rule_ids[name] = rule["id"]
    component = base64.b64encode(RUST_RULE.read_bytes()).decode()
    rule = api.mgmt(
        "POST",
        "/api/v2/rules",
        {"name": "bench rust", "component": component, "enabled": False, "order": len(sources) + 1},
    )
    setup.rule_ids["rust"] = rule["id"]
    if "seed-adapter" in configs:
        component = base64.b64encode(seed_with_adapter(binary)).decode()
        rule = api.mgmt(
            "POST",
            "/api/v2/rules",
            {"name": "bench seed with adapter", "component": component, "enabled": False,
             "order": len(sources) + 2},
        )
        setup.rule_ids["seed_adapter"] = rule["id"]
    return setup


def add_credential(api: Api, setup: Setup, args) -> None:
    """Gives the client an ES256 credential for private_key_jwt; its secret keeps working."""
    setup.key_dir = Path(tempfile.mkdtemp(prefix="tokenhost-bench-key-"))
    assertions(args, "keygen", str(setup.key_dir))
    pem = (setup.key_dir / "public.pem").read_text()
    credential = api.mgmt(
        "POST",
        f"/api/v2/clients/{setup.client_id}/credentials",
        {"credential_type": "public_key", "name": "bench", "pem": pem, "alg": "ES256"},
    )
    api.mgmt(
        "PATCH",
        f"/api/v2/clients/{setup.client_id}",
        {"client_authentication_methods": {"private_key_jwt": {"credentials": [{"id": credential["id"]}]}}},
    )


def assertions(args, *command: str) -> None:
    path = args.examples / "bench_assertions"
    proc = subprocess.run([str(path), *command], capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        raise BenchError(f"bench_assertions exited with {proc.returncode}:\n{proc.stderr}")


def request_file(args, setup: Setup, config: str, alg: str, count: int) -> Path:
    """`count` single-use requests of `config` (pkjwt or dpop), signed now."""
    out = setup.key_dir / f"{config}-{alg}.txt"
    flags = ["--dpop"] if config == "dpop" else []
    assertions(args, "sign", str(setup.key_dir), setup.client_id, TOKEN_ENDPOINT, AUDIENCES[alg],
               str(count), str(out), *flags)
    return out


def configure(api: Api, setup: Setup, config: str) -> None:
    """Enables exactly the rules of `config`."""
    wanted = CONFIG_RULES[config]
    for name, rule_id in setup.rule_ids.items():
        api.mgmt("PATCH", f"/api/v2/rules/{rule_id}", {"enabled": name in wanted})


def verify(api: Api, setup: Setup, config: str, alg: str, args) -> None:
    """One token of this phase carries what its rules and its client authentication promise
    (payload only, no signature)."""
    audience = AUDIENCES[alg]
    if config in AUTH_CONFIGS:
        line = request_file(args, setup, config, alg, 1).read_text().strip()
        body, _, proof = line.partition("\t")
        headers = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": BENCH_UA}
        if proof:
            headers["DPoP"] = proof
        status, data = api.request("POST", "/oauth/token", body.encode(), headers)
        if status != 200:
            raise BenchError(f"{config} token request for {audience} gave {status}: {data[:500]!r}")
        resp = json.loads(data)
        want_type = "DPoP" if config == "dpop" else "Bearer"
        if resp.get("token_type") != want_type:
            raise BenchError(f"{config}: token_type {resp.get('token_type')!r}, expected {want_type!r}")
        if ("cnf" in jwt_part(resp["access_token"], 1)) != (config == "dpop"):
            raise BenchError(f"{config}: the token's cnf is {'missing' if config == 'dpop' else 'unexpected'}")
    else:
        resp = api.token(setup.client_id, setup.client_secret, audience)
    header, claims = jwt_part(resp["access_token"], 0), jwt_part(resp["access_token"], 1)
    expected: dict[str, object] = {
        "iss": ISSUER,
        "aud": audience,
        "client_id": setup.client_id,
        "sub": f"{setup.client_id}@clients",
        "gty": "client-credentials",
    }
    scopes = ["read"]
    if {"seed", "seed_adapter"} & set(CONFIG_RULES[config]):
        expected[SEED_CLAIM] = "bar"
        scopes.append("extra")
    else:
        expected[SEED_CLAIM] = None
    if "tier" in CONFIG_RULES[config]:
        expected[TIER_CLAIM] = CLIENT_TIER
    if "request" in CONFIG_RULES[config]:
        expected[IP_CLAIM] = HOST
        expected[UA_CLAIM] = BENCH_UA
    if "rust" in CONFIG_RULES[config]:
        expected[TIER_CLAIM] = CLIENT_TIER
        expected[LANG_CLAIM] = "rust"
        scopes.append("rust")
    problems = []
    if header.get("alg") != alg:
        problems.append(f"header alg {header.get('alg')!r}, expected {alg!r}")
    if header.get("typ") != "at+jwt":
        problems.append(f"header typ {header.get('typ')!r}, expected 'at+jwt'")
    for name, value in expected.items():
        if claims.get(name) != value:
            problems.append(f"claim {name} = {claims.get(name)!r}, expected {value!r}")
    if sorted(claims.get("scope", "").split()) != sorted(scopes):
        problems.append(f"claim scope = {claims.get('scope')!r}, expected {' '.join(scopes)!r}")
    if sorted(resp.get("scope", "").split()) != sorted(scopes):
        problems.append(f"response scope = {resp.get('scope')!r}, expected {' '.join(scopes)!r}")
    if not claims.get("jti"):
        problems.append("no jti")
    if problems:
        raise BenchError(f"token for {config}/{alg} is wrong: " + "; ".join(problems))


# --- wrk ---------------------------------------------------------------------------------


def ensure_wrk() -> str:
    path = shutil.which("wrk")
    if path:
        return path
    log("wrk is not on PATH: installing the Debian package")
    apt = ["apt-get", "install", "-y", "-qq", "wrk"]
    if os.geteuid() != 0:
        if not shutil.which("sudo"):
            raise BenchError("wrk is missing and this user cannot install it: apt-get install wrk")
        apt = ["sudo", *apt]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if subprocess.run(apt, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        update = ["apt-get", "update", "-qq"] if apt[0] != "sudo" else ["sudo", "apt-get", "update", "-qq"]
        subprocess.run(update, env=env, check=False)
        subprocess.run(apt, env=env, stdout=subprocess.DEVNULL, check=False)
    path = shutil.which("wrk")
    if not path:
        raise BenchError("could not install wrk (apt-get install -y wrk)")
    return path


# Tokens per second to sign single-use requests for before a measured rate is known.
DEFAULT_RATE_HINT = 20_000


def run_wrk(wrk: str, server: Server, setup: Setup, config: str, alg: str, args, seconds: float,
            rate_hint: float = DEFAULT_RATE_HINT) -> Phase:
    env = dict(os.environ, BENCH_THREADS=str(args.threads))
    if config in AUTH_CONFIGS:
        # Each request may be sent once: enough of them, with margin, for this phase.
        count = int(rate_hint * 1.6 * max(1, round(seconds))) + 2_000
        env["BENCH_FILE"] = str(request_file(args, setup, config, alg, count))
    else:
        env["BENCH_BODY"] = token_body(setup.client_id, setup.client_secret, AUDIENCES[alg])
    cmd = [
        wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout", "5s",
        "--latency",
        "-s", str(LUA_SCRIPT),
        f"http://{HOST}:{server.port}/oauth/token",
    ]
    busy0 = machine_busy_seconds()
    cpu0, children0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        cmd,
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    )
    cpu1, children1 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
    busy1 = machine_busy_seconds()
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    line = next((l for l in proc.stdout.splitlines() if l.startswith("BENCH_JSON ")), None)
    if line is None:
        raise BenchError(f"wrk printed no BENCH_JSON line:\n{proc.stdout}\n{proc.stderr}")
    r = json.loads(line[len("BENCH_JSON "):])
    if r.get("exhausted"):
        raise BenchError(f"{config}/{alg}: wrk ran out of single-use requests ({rate_hint:,.0f}/s "
                         "assumed): the figures would understate the throughput")
    elapsed = r["duration_us"] / 1e6
    wrk_cpu = (children1.ru_utime + children1.ru_stime) - (children0.ru_utime + children0.ru_stime)
    return Phase(
        config=config,
        alg=alg,
        requests=r["requests"],
        ok=r["ok"],
        non200=r["non200"],
        socket_errors=sum(r["errors"].values()),
        seconds=elapsed,
        p50_ms=r["latency_us"]["p50"] / 1000,
        p99_ms=r["latency_us"]["p99"] / 1000,
        server_cpu=(cpu1 - cpu0) / elapsed,
        wrk_cpu=wrk_cpu / elapsed,
        other_cpu=max(0.0, (busy1 - busy0 - (cpu1 - cpu0) - wrk_cpu) / elapsed),
        first_bad=r["first_bad"],
    )


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have spent busy since boot (/proc/stat)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


# --- main --------------------------------------------------------------------------------


def release_dir(args) -> Path:
    target = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return (target if target.is_absolute() else ROOT / target) / "release"


def parse_args(argv: list[str]):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--duration", type=float, default=None, help="seconds per measured phase (default 10)")
    p.add_argument("--quick", action="store_true",
                   help="3 s per phase and 1 s warm-up unless given otherwise (CI)")
    p.add_argument("--warmup", type=float, default=None, help="seconds of warm-up before each phase (default 2)")
    p.add_argument("--connections", "-c", type=int, default=16, help="wrk connections (default 16)")
    p.add_argument("--threads", "-t", type=int, default=1, help="wrk threads (default 1)")
    p.add_argument("--rounds", type=int, default=1,
                   help="repeat every phase this many times and keep each phase's best round (default 1)")
    p.add_argument("--markdown", action="store_true", help="print the results as Markdown")
    p.add_argument("--configs", default=",".join(CONFIGS),
                   help=f"rule configurations to measure, from {', '.join(CONFIG_RULES)} "
                        f"(default {','.join(CONFIGS)}; none and seed are always needed)")
    p.add_argument("--algs", default=",".join(ALGS), help=f"algorithms (default {','.join(ALGS)})")
    p.add_argument("--no-examples", action="store_true",
                   help="leave out bench_rules (a rule alone) and bench_sign (raw signatures)")
    p.add_argument("--binary", type=Path, default=None,
                   help="the tokenhost binary (default: $CARGO_TARGET_DIR or target, /release/tokenhost)")
    args = p.parse_args(argv)
    if args.duration is None:
        args.duration = 3 if args.quick else 10
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.duration < 1 or args.warmup < 1 or args.rounds < 1 or args.connections < args.threads:
        p.error("--duration and --warmup must be >= 1 s, --rounds >= 1, --connections >= --threads")
    args.configs = tuple(dict.fromkeys(c.strip() for c in args.configs.split(",") if c.strip()))
    args.algs = tuple(dict.fromkeys(a.strip() for a in args.algs.split(",") if a.strip()))
    if unknown := [c for c in args.configs if c not in CONFIG_RULES]:
        p.error(f"unknown --configs {', '.join(unknown)}: choose from {', '.join(CONFIG_RULES)}")
    if "none" not in args.configs or "seed" not in args.configs:
        p.error("--configs must include none and seed (the targets compare them)")
    if unknown := [a for a in args.algs if a not in ALGS]:
        p.error(f"unknown --algs {', '.join(unknown)}: choose from {', '.join(ALGS)}")
    if not (release_dir(args) / "examples" / "bench_assertions").is_file():
        if any(c in AUTH_CONFIGS for c in args.configs):
            log("bench_assertions is not built (cargo build --release -p host --examples): "
                "the pkjwt and dpop phases are left out")
        args.configs = tuple(c for c in args.configs if c not in AUTH_CONFIGS)
    if "ES256" not in args.algs:
        p.error("--algs must include ES256 (the targets are for ES256)")
    release = release_dir(args)
    if args.binary is None:
        args.binary = release / "tokenhost"
    args.examples = release / "examples"
    return args


def example(args, name: str, *flags: str, env: dict[str, str] | None = None):
    """One JSON document, or one per line, from a benchmark example of the host crate
    (built by `make bench`), run while no server is up. None when it is not built."""
    path = args.examples / name
    if args.no_examples:
        return None
    if not path.is_file():
        log(f"{path} is not built (cargo build --release -p host --examples): its figures are left out")
        return None
    proc = subprocess.run([str(path), *flags], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, **(env or {})))
    if proc.returncode != 0:
        raise BenchError(f"{name} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    # SIGTERM (a CI timeout, `kill`) unwinds like Ctrl-C, so the finally block stops the server.
    signal.signal(signal.SIGTERM, exit_on_signal)
    signal.signal(signal.SIGHUP, exit_on_signal)
    if not args.binary.is_file():
        log(f"error: {args.binary} does not exist: build it with `cargo build --release -p host`")
        return 1
    wrk = ensure_wrk()
    load = os.getloadavg()[0]
    server = Server(args.binary)
    measured: dict[tuple[str, str], list[Phase]] = {}
    try:
        server.start()
        log(f"server on {HOST}:{server.port}, data in {server.data_dir}; load average {load:.2f}")
        api = Api(server.port)
        setup = set_up(api, args.binary, args.configs)
        if any(c in AUTH_CONFIGS for c in args.configs):
            add_credential(api, setup, args)
        for round_ in range(1, args.rounds + 1):
            for config in args.configs:
                configure(api, setup, config)
                for alg in args.algs:
                    if config in AUTH_CONFIGS and alg != "ES256":
                        continue  # client authentication costs the same whatever signs the token
                    verify(api, setup, config, alg, args)
                    # How many single-use requests to sign: for the warm-up, as many as the
                    # fastest phase so far could take; for the phase, the warm-up's rate.
                    hint = max((p.tokens_per_s for runs in measured.values() for p in runs),
                               default=DEFAULT_RATE_HINT)
                    warm = run_wrk(wrk, server, setup, config, alg, args, args.warmup, hint)
                    phase = run_wrk(wrk, server, setup, config, alg, args, args.duration,
                                    warm.tokens_per_s or hint)
                    log(f"round {round_} {config:5} {alg}: {phase.tokens_per_s:8,.0f} tokens/s  "
                        f"p50 {phase.p50_ms:.2f} ms  p99 {phase.p99_ms:.2f} ms  non-200 {phase.non200}  "
                        f"CPU server {phase.server_cpu:.2f} wrk {phase.wrk_cpu:.2f} other {phase.other_cpu:.2f}")
                    measured.setdefault((config, alg), []).append(phase)
                    if not server.alive():
                        raise BenchError(f"the server exited during {config}/{alg}:\n{server.tail()}")
    except BenchError as e:
        log(f"error: {e}")
        return 1
    finally:
        server.stop()
    try:
        # After the server has stopped, so that nothing shares the cores with them.
        isolated = example(args, "bench_rules", "--json")
        if isolated and "seed-adapter" in args.configs:
            with_adapter = example(args, "bench_rules", "--json", env={"TOKENHOST_WASI_ADAPTER": "1"})
            isolated[0]["with_adapter"] = with_adapter[0] if with_adapter else None
        signatures = example(args, "bench_sign", "--json") or []
    except BenchError as e:
        log(f"error: {e}")
        return 1
    phases = [best_of(runs) for runs in measured.values()]
    report(phases, args, load, isolated[0] if isolated else None, signatures)
    failed = [p for p in phases if p.failed]
    for p in failed:
        log(f"FAILED REQUESTS: {p.config}/{p.alg}: {p.non200} non-200, {p.socket_errors} socket errors; "
            f"first: {p.first_bad or '(socket error)'}")
    return 1 if failed else 0


def best_of(runs: list[Phase]) -> Phase:
    """The round with the highest throughput (the least disturbed by the rest of the machine),
    carrying the failures of every round so none is hidden."""
    best = max(runs, key=lambda p: p.tokens_per_s)
    return dataclasses.replace(
        best,
        non200=sum(p.non200 for p in runs),
        socket_errors=sum(p.socket_errors for p in runs),
        first_bad=next((p.first_bad for p in runs if p.first_bad), ""),
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
