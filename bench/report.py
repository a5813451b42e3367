"""The report of bench/run.py: the phases, what a rule costs in the server beside what it
costs alone, one raw signature per algorithm, and the targets, all from one run.

Standard library only. `report()` prints; `targets()` says what passed.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

# Targets: server CPU per token (µs), and a rule's in-server cost over its cost alone.
TARGET_SEED_RS256_US = 300
TARGET_SEED_ES256_US = 55
TARGET_NONE_ES256_US = 30
TARGET_RULE_OVERHEAD = 1.5

NOISY = 0.25  # cores of other work on the machine above which a phase's figures are suspect

COLUMNS = ("config", "alg", "tokens/s", "p50 ms", "p99 ms", "non-200",
           "server CPU", "wrk CPU", "other CPU", "server µs/token")


@dataclass
class Phase:
    config: str
    alg: str
    requests: int
    ok: int
    non200: int
    socket_errors: int
    seconds: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # cores the server kept busy, on average
    wrk_cpu: float
    other_cpu: float  # cores busy with anything else on the machine (noise)
    first_bad: str

    @property
    def tokens_per_s(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    @property
    def failed(self) -> int:
        return self.non200 + self.socket_errors

    @property
    def server_us_per_token(self) -> float:
        return self.server_cpu * 1e6 / self.tokens_per_s if self.ok else float("nan")


def div(a: float, b: float) -> float:
    return a / b if b else float("nan")


def rows(phases: list[Phase]) -> list[tuple[str, ...]]:
    return [
        (
            p.config,
            p.alg,
            f"{p.tokens_per_s:,.0f}",
            f"{p.p50_ms:.2f}",
            f"{p.p99_ms:.2f}",
            f"{p.non200}" + (f" (+{p.socket_errors} socket)" if p.socket_errors else ""),
            f"{p.server_cpu:.2f}",
            f"{p.wrk_cpu:.2f}",
            f"{p.other_cpu:.2f}" + ("*" if p.other_cpu > NOISY else ""),
            f"{p.server_us_per_token:.0f}",
        )
        for p in phases
    ]


def text_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in [header, *body]) for i in range(len(header))]

    def fmt(r):
        return "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))

    return "\n".join([fmt(header), "  ".join("-" * w for w in widths), *map(fmt, body)])


def markdown_table(header: tuple[str, ...], body: list[tuple[str, ...]]) -> str:
    align = tuple("---" if i < 2 else "---:" for i in range(len(header)))
    return "\n".join("| " + " | ".join(r) + " |" for r in [header, align, *body])


# Phases without rules whose client authenticates otherwise than by its secret (run.py).
AUTH_CONFIGS = ("pkjwt", "dpop")
AUTH_NAMES = {"none": "client_secret_post", "pkjwt": "private_key_jwt (ES256 assertion)",
              "dpop": "private_key_jwt + DPoP proof"}


def auth_costs(by: dict) -> list[tuple[str, ...]]:
    """What authenticating with a client assertion, and binding with DPoP, add over a secret
    (ES256 APIs, no rule)."""
    base = by.get(("none", "ES256"))
    out = []
    for config in ("none", *AUTH_CONFIGS):
        p = by.get((config, "ES256"))
        if p is None or base is None:
            continue
        added = p.server_us_per_token - base.server_us_per_token
        out.append((AUTH_NAMES[config], "ES256", f"{p.tokens_per_s:,.0f}", f"{p.server_us_per_token:.0f}",
                    "" if config == "none" else f"{added:+.0f}"))
    return out


def rule_costs(by: dict, algs, configs, isolated: dict | None) -> list[tuple[str, ...]]:
    """Per rule configuration and algorithm: server µs/token over the no-rule phase, beside
    the seed rule's execution alone (bench_rules: fresh instance each time, median), built
    as the server builds it, or with the WASI adapter for `seed-adapter`."""
    nan = float("nan")
    adapter = (isolated or {}).get("with_adapter")
    alone = {
        "seed": isolated["seed"]["median_us"] if isolated else nan,
        "seed-adapter": adapter["seed"]["median_us"] if adapter else nan,
    }
    out = []
    for config in configs:
        if config == "none" or config in AUTH_CONFIGS:
            continue
        for alg in algs:
            added = by[(config, alg)].server_us_per_token - by[("none", alg)].server_us_per_token
            if config in alone:
                out.append((config, alg, f"{added:.0f}", f"{alone[config]:.1f}",
                            f"{div(added, alone[config]):.2f}"))
            else:
                out.append((config, alg, f"{added:.0f}", "", ""))
    return out


def targets(by: dict, isolated: dict | None) -> list[tuple[str, str, bool]]:
    def us(config, alg):
        p = by.get((config, alg))
        return p.server_us_per_token if p else float("nan")

    found = []
    if ("seed", "RS256") in by:
        v = us("seed", "RS256")
        found.append((f"seed rule, RS256: <= {TARGET_SEED_RS256_US} µs/token", f"{v:.0f}", v <= TARGET_SEED_RS256_US))
    v = us("seed", "ES256")
    found.append((f"seed rule, ES256: <= {TARGET_SEED_ES256_US} µs/token", f"{v:.0f}", v <= TARGET_SEED_ES256_US))
    v = us("none", "ES256")
    found.append((f"no rule, ES256: <= {TARGET_NONE_ES256_US} µs/token", f"{v:.0f}", v <= TARGET_NONE_ES256_US))
    if isolated:
        added = us("seed", "ES256") - us("none", "ES256")
        ratio = div(added, isolated["seed"]["median_us"])
        found.append((f"seed rule in the server (ES256) <= {TARGET_RULE_OVERHEAD}x its cost alone",
                      f"{ratio:.2f}x", ratio <= TARGET_RULE_OVERHEAD))
    return found


def report(phases: list[Phase], args, load: float, isolated: dict | None, signatures: list[dict]) -> None:
    by = {(p.config, p.alg): p for p in phases}
    table = markdown_table if args.markdown else text_table
    rounds = f", best of {args.rounds} rounds" if args.rounds > 1 else ""
    print(
        f"{'' if args.markdown else '# '}tokenhost `POST /oauth/token`: wrk -t{args.threads} -c{args.connections}, "
        f"{args.duration:g} s per phase after {args.warmup:g} s warm-up{rounds}; "
        f"{os.cpu_count()} CPUs ({cpu_model()}) shared by server and wrk; "
        f"load average {load:.2f} at start; {time.strftime('%Y-%m-%d')}"
    )
    print()
    print(table(COLUMNS, rows(phases)))
    print()
    print("CPU columns: cores busy on average during the phase; server µs/token = server CPU time "
          "per issued token (the figure least sensitive to the rest of the machine).")
    if any(p.other_cpu > NOISY for p in phases):
        print(f"* other work used more than {NOISY} cores during this phase: its throughput is understated.")
    print()
    print(table(("rules", "alg", "in the server, µs/token over none", "seed alone, µs (bench_rules)", "ratio"),
                rule_costs(by, args.algs, args.configs, isolated)))
    if any(c in AUTH_CONFIGS for c, _ in by):
        print()
        print(table(("client authentication", "alg", "tokens/s", "server µs/token", "over the secret, µs"),
                    auth_costs(by)))
    if isolated:
        print()
        print(f"Alone (bench_rules, same run, fresh instance per execution): seed median "
              f"{isolated['seed']['median_us']:.1f} µs, p99 {isolated['seed']['p99_us']:.1f} µs; "
              f"no-op median {isolated['noop']['median_us']:.1f} µs.")
        if adapter := isolated.get("with_adapter"):
            print(f"Alone with the WASI adapter (as before inlining, same run): seed median "
                  f"{adapter['seed']['median_us']:.1f} µs, p99 {adapter['seed']['p99_us']:.1f} µs; "
                  f"no-op median {adapter['noop']['median_us']:.1f} µs.")
    if signatures:
        print()
        print(table(("signature", "alg", "raw, µs", "KeySet::sign, µs", "parse + sign per token (the old path), µs"),
                    [("one token", s["alg"], f"{s['raw_us']:.1f}", f"{s['keyset_us']:.1f}",
                      f"{s['parse_and_sign_us']:.1f}") for s in signatures]))
    print()
    print(table(("target", "measured", "result"),
                [(t, m, "PASS" if ok else "FAIL") for t, m, ok in targets(by, isolated)]))
    failed = sum(p.failed for p in phases)
    if failed:
        print()
        print(f"FAILED: {failed:,} requests did not get a 200 (see non-200); these figures are not valid.")


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()
