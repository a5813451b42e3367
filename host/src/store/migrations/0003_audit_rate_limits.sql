-- A client's own token rate limit (JSON {"per_second": n, "burst": n}); NULL: the
-- server's default.
ALTER TABLE clients ADD COLUMN token_rate_limit TEXT;

-- Every management change: who (the management client), what, when, and the resource
-- before and after as JSON with secrets removed. Append-only; newest = highest seq.
CREATE TABLE audit_log (
    seq         INTEGER PRIMARY KEY AUTOINCREMENT,
    at          INTEGER NOT NULL,
    actor       TEXT    NOT NULL,
    action      TEXT    NOT NULL,
    target_type TEXT    NOT NULL,
    target_id   TEXT    NOT NULL,
    before      TEXT,
    after       TEXT
) STRICT;
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, seq);
