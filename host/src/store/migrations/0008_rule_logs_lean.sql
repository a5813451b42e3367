-- The rule log without its indexes. Every token a rule shapes writes one row here, and the
-- table is pruned to 10,000 rows, so each row is inserted and later deleted once: with a
-- UNIQUE index on the random `id` and three more on time, rule and client, that upkeep
-- cost three times the row itself (BENCHMARKS.md, issue 11). What they served is a scan of
-- at most the retained rows: listings walk `seq` backwards until a page is full, counts and
-- the age prune read the table once. `id` stays random and unique by its 192 random bits.
CREATE TABLE rule_logs_lean (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL,
    time_ms INTEGER NOT NULL,
    request_id TEXT NOT NULL,
    rule_id TEXT NOT NULL,
    rule_name TEXT NOT NULL,
    client_id TEXT NOT NULL,
    audience TEXT NOT NULL,
    outcome TEXT NOT NULL,
    code TEXT,
    cause TEXT,
    fuel_used INTEGER NOT NULL,
    duration_us INTEGER NOT NULL,
    console TEXT NOT NULL,
    truncated INTEGER NOT NULL DEFAULT 0
) STRICT;
INSERT INTO rule_logs_lean (seq, id, time_ms, request_id, rule_id, rule_name, client_id,
        audience, outcome, code, cause, fuel_used, duration_us, console, truncated)
    SELECT seq, id, time_ms, request_id, rule_id, rule_name, client_id, audience, outcome,
        code, cause, fuel_used, duration_us, console, truncated
    FROM rule_logs;
-- Sequence numbers are never reused, even those of pruned rows.
DELETE FROM sqlite_sequence WHERE name = 'rule_logs_lean';
INSERT INTO sqlite_sequence (name, seq)
    SELECT 'rule_logs_lean', seq FROM sqlite_sequence WHERE name = 'rule_logs';
DROP TABLE rule_logs;
ALTER TABLE rule_logs_lean RENAME TO rule_logs;
