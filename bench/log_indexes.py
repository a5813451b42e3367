#!/usr/bin/env python3
"""What the rule log's indexes cost per entry in SQLite (why migration 0008 dropped them).

Writes 60,000 entries shaped like the server's (a random 28-character id, the seed rule's
fields) in batches of 250 per transaction, WAL mode, pruning to the newest 10,000 after
every 1,000 as `server/rule_logs.rs` does, once per schema:

- `0007`: the table as migration 0004/0005 left it (UNIQUE id, indexes on time, rule
  and client);
- `no secondary`: without the three indexes, UNIQUE id kept;
- `0008`: without any (what migration 0008 makes);
- `0008 no autoincrement`: also without AUTOINCREMENT (not taken: sequence numbers would be
  reused after the table empties).

Prints µs per entry (insert and its later prune), best of `--rounds`. Python's own cost per
row is in every figure alike; compare within one run.

Usage: python3 bench/log_indexes.py [--rounds N]
"""

from __future__ import annotations

import argparse
import os
import random
import sqlite3
import string
import tempfile
import time

TABLE = """CREATE TABLE rule_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, time_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL, rule_id TEXT NOT NULL, rule_name TEXT NOT NULL,
    client_id TEXT NOT NULL, audience TEXT NOT NULL, outcome TEXT NOT NULL, code TEXT,
    cause TEXT, fuel_used INTEGER NOT NULL, duration_us INTEGER NOT NULL,
    console TEXT NOT NULL, truncated INTEGER NOT NULL DEFAULT 0) STRICT"""
INDEXES = (
    "CREATE INDEX rule_logs_time ON rule_logs (time_ms)",
    "CREATE INDEX rule_logs_rule ON rule_logs (rule_id, seq)",
    "CREATE INDEX rule_logs_client ON rule_logs (client_id, seq)",
)
SCHEMAS = {
    "0007": (TABLE, *INDEXES),
    "no secondary": (TABLE,),
    "0008": (TABLE.replace(" UNIQUE", ""),),
    "0008 no autoincrement": (TABLE.replace(" UNIQUE", "").replace(" AUTOINCREMENT", ""),),
}
ENTRIES, BATCH, PRUNE_EVERY, RETAIN = 60_000, 250, 1_000, 10_000
INSERT = """INSERT INTO rule_logs (id, time_ms, request_id, rule_id, rule_name, client_id,
    audience, outcome, code, cause, fuel_used, duration_us, console, truncated)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"""


def batches() -> list[list[tuple]]:
    """Every entry, made before the clock starts."""
    now = int(time.time() * 1000)

    def entry(n: int) -> tuple:
        log_id = "log_" + "".join(random.choices(string.ascii_letters + string.digits, k=32))
        return (log_id, now + n, f"req{n}", "rul_seed", "seed", f"cli_{n % 3}",
                "https://bench/es256", "issued", None, None, 29_000, 40, "[]", 0)

    return [[entry(b * BATCH + k) for k in range(BATCH)] for b in range(ENTRIES // BATCH)]


def us_per_entry(schema: tuple[str, ...], work: list[list[tuple]]) -> float:
    with tempfile.TemporaryDirectory(prefix="tokenhost-log-indexes-") as tmp:
        conn = sqlite3.connect(os.path.join(tmp, "logs.sqlite3"), isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        for sql in schema:
            conn.execute(sql)
        written = 0
        started = time.perf_counter()
        for batch in work:
            conn.execute("BEGIN")
            conn.executemany(INSERT, batch)
            conn.execute("COMMIT")
            written += len(batch)
            if written % PRUNE_EVERY == 0:
                conn.execute("DELETE FROM rule_logs WHERE time_ms < ?", (0,))
                conn.execute("DELETE FROM rule_logs WHERE seq <= (SELECT seq FROM rule_logs "
                             "ORDER BY seq DESC LIMIT 1 OFFSET ?)", (RETAIN,))
        elapsed = time.perf_counter() - started
        conn.close()
        return elapsed / written * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=2, help="rounds per schema, best kept (default 2)")
    args = p.parse_args()
    work = batches()
    best = {name: min(us_per_entry(schema, work) for _ in range(args.rounds))
            for name, schema in SCHEMAS.items()}
    print(f"SQLite {sqlite3.sqlite_version}: µs per log entry (insert + prune), "
          f"{ENTRIES:,} entries, best of {args.rounds}")
    for name, us in best.items():
        print(f"  {name:<24} {us:6.1f}")


if __name__ == "__main__":
    main()
