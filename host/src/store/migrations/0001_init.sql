-- tokenhost's first schema. Times are Unix seconds; JSON columns hold serde_json text.
-- STRICT so that a value of the wrong type is refused on write rather than found on read.

CREATE TABLE resource_servers (
    id                      TEXT    NOT NULL PRIMARY KEY,
    identifier              TEXT    NOT NULL UNIQUE,
    name                    TEXT    NOT NULL,
    scopes                  TEXT    NOT NULL,
    token_lifetime          INTEGER NOT NULL,
    signing_alg             TEXT    NOT NULL,
    allow_rule_added_scopes INTEGER NOT NULL,
    created_at              INTEGER NOT NULL
) STRICT;

CREATE TABLE clients (
    client_id       TEXT    NOT NULL PRIMARY KEY,
    name            TEXT    NOT NULL,
    client_metadata TEXT    NOT NULL,
    app_type        TEXT    NOT NULL,
    created_at      INTEGER NOT NULL
) STRICT;

-- position keeps Client::secrets in order: the current secret is position 0.
CREATE TABLE client_secrets (
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    hash       BLOB    NOT NULL,
    expires_at INTEGER,
    PRIMARY KEY (client_id, position)
) STRICT;

-- The UNIQUE index leads with client_id, so it also serves the cascade from clients.
CREATE TABLE client_grants (
    id         TEXT    NOT NULL PRIMARY KEY,
    client_id  TEXT    NOT NULL REFERENCES clients (client_id) ON DELETE CASCADE,
    audience   TEXT    NOT NULL,
    scope      TEXT    NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (client_id, audience)
) STRICT;

CREATE TABLE rules (
    id          TEXT    NOT NULL PRIMARY KEY,
    name        TEXT    NOT NULL UNIQUE,
    source_kind TEXT    NOT NULL,
    script      TEXT,
    component   BLOB,
    enabled     INTEGER NOT NULL,
    ord         INTEGER NOT NULL,
    artifact    BLOB,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL,
    CHECK ((source_kind = 'script' AND script IS NOT NULL AND component IS NULL)
        OR (source_kind = 'component' AND component IS NOT NULL AND script IS NULL))
) STRICT;

CREATE TABLE signing_keys (
    kid         TEXT    NOT NULL PRIMARY KEY,
    alg         TEXT    NOT NULL,
    state       TEXT    NOT NULL,
    private_der BLOB    NOT NULL,
    public_jwk  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    retired_at  INTEGER
) STRICT;
