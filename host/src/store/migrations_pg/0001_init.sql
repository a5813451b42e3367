-- tokenhost's schema on PostgreSQL: the final SQLite schema (migrations/0001 to 0006) in
-- one step, plus what a cluster of nodes shares. Times are Unix seconds (rule_logs and
-- cluster_nodes: milliseconds); JSON columns hold serde_json text, as in SQLite.

CREATE TABLE resource_servers (
    id                      TEXT    NOT NULL PRIMARY KEY,
    identifier              TEXT    NOT NULL UNIQUE,
    name                    TEXT    NOT NULL,
    scopes                  TEXT    NOT NULL,
    token_lifetime          BIGINT  NOT NULL,
    signing_alg             TEXT    NOT NULL,
    allow_rule_added_scopes BOOLEAN NOT NULL,
    created_at              BIGINT  NOT NULL
);

-- token_rate_limit: JSON {"per_second": n, "burst": n}; NULL: the server's default.
CREATE TABLE clients (
    client_id        TEXT   NOT NULL PRIMARY KEY,
    name             TEXT   NOT NULL,
    client_metadata  TEXT   NOT NULL,
    app_type         TEXT   NOT NULL,
    created_at       BIGINT NOT NULL,
    token_rate_limit TEXT
);

-- position keeps Client::secrets in order: the current secret is position 0.
CREATE TABLE client_secrets (
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    hash       BYTEA   NOT NULL,
    expires_at BIGINT,
    PRIMARY KEY (client_id, position)
);

-- The UNIQUE index leads with client_id, so it also serves the cascade from clients.
CREATE TABLE client_grants (
    id         TEXT   NOT NULL PRIMARY KEY,
    client_id  TEXT   NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience   TEXT   NOT NULL,
    scope      TEXT   NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (client_id, audience)
);

CREATE TABLE rules (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    source_kind TEXT    NOT NULL,
    script      TEXT,
    component   BYTEA,
    enabled     BOOLEAN NOT NULL,
    ord         BIGINT  NOT NULL,
    artifact    BYTEA,
    created_at  BIGINT  NOT NULL,
    updated_at  BIGINT  NOT NULL,
    CHECK ((source_kind = 'script' AND script IS NOT NULL AND component IS NULL)
        OR (source_kind = 'component' AND component IS NOT NULL AND script IS NULL))
);

-- value: AES-256-GCM, nonce || ciphertext || tag, bound to (rule_id, name).
CREATE TABLE rule_secrets (
    rule_id    TEXT   NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    name       TEXT   NOT NULL,
    value      BYTEA  NOT NULL,
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (rule_id, name)
);

-- number counts from 1 per rule; deployed_from: the version a rollback copied.
CREATE TABLE rule_versions (
    rule_id       TEXT    NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    source_kind   TEXT    NOT NULL,
    script        TEXT,
    component     BYTEA,
    created_at    BIGINT  NOT NULL,
    created_by    TEXT,
    deployed_from INTEGER,
    PRIMARY KEY (rule_id, number),
    CHECK ((source_kind = 'script' AND script IS NOT NULL AND component IS NULL)
        OR (source_kind = 'component' AND component IS NOT NULL AND script IS NULL))
);

-- Private keys are written sealed only; private_format is kept so that rows read the same
-- way on both backends (no PostgreSQL database ever held a key in the clear).
CREATE TABLE signing_keys (
    kid            TEXT   NOT NULL PRIMARY KEY,
    alg            TEXT   NOT NULL,
    state          TEXT   NOT NULL,
    private_key    BYTEA  NOT NULL,
    private_format TEXT   NOT NULL CHECK (private_format IN ('plain', 'sealed')),
    public_jwk     TEXT   NOT NULL,
    created_at     BIGINT NOT NULL,
    retired_at     BIGINT
);

-- Every management change. Append-only; newest = highest seq.
CREATE TABLE audit_log (
    seq         BIGSERIAL PRIMARY KEY,
    at          BIGINT NOT NULL,
    actor       TEXT   NOT NULL,
    action      TEXT   NOT NULL,
    target_type TEXT   NOT NULL,
    target_id   TEXT   NOT NULL,
    before      TEXT,
    after       TEXT
);
CREATE INDEX audit_log_target ON audit_log (target_type, target_id, seq);
CREATE INDEX audit_log_at ON audit_log (at);

-- One row per rule execution, newest last; node: the node that ran it (so that each
-- node streams the others' entries to its live log viewers).
CREATE TABLE rule_logs (
    seq         BIGSERIAL PRIMARY KEY,
    id          TEXT    NOT NULL UNIQUE,
    time_ms     BIGINT  NOT NULL,
    request_id  TEXT    NOT NULL,
    rule_id     TEXT    NOT NULL,
    rule_name   TEXT    NOT NULL,
    client_id   TEXT    NOT NULL,
    audience    TEXT    NOT NULL,
    outcome     TEXT    NOT NULL,
    code        TEXT,
    cause       TEXT,
    fuel_used   BIGINT  NOT NULL,
    duration_us BIGINT  NOT NULL,
    console     TEXT    NOT NULL,
    truncated   BOOLEAN NOT NULL DEFAULT false,
    node        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX rule_logs_time ON rule_logs (time_ms);
CREATE INDEX rule_logs_rule ON rule_logs (rule_id, seq);
CREATE INDEX rule_logs_client ON rule_logs (client_id, seq);

-- The live nodes, by the database's clock (Unix milliseconds), and what they must agree on
-- (the master key's check value).
CREATE TABLE cluster_nodes (
    node         TEXT   NOT NULL PRIMARY KEY,
    last_seen_ms BIGINT NOT NULL
);
CREATE TABLE cluster_meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
);
