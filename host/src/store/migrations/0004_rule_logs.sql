-- One row per rule execution, newest last; pruned by count and age (CONTRACT.md: 10,000
-- entries and 10 days, whichever first).
CREATE TABLE rule_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
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
    console TEXT NOT NULL
) STRICT;
CREATE INDEX rule_logs_time ON rule_logs (time_ms);
CREATE INDEX rule_logs_rule ON rule_logs (rule_id, seq);
CREATE INDEX rule_logs_client ON rule_logs (client_id, seq);
