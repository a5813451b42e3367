-- Rule secrets (encrypted by the server before they reach storage) and rule versions.
-- Both belong to their rule: deleting the rule deletes them (the rule row is only ever
-- upserted, never replaced, so a change to a rule does not cascade).

-- value: AES-256-GCM, nonce || ciphertext || tag, bound to (rule_id, name).
CREATE TABLE rule_secrets (
    rule_id    TEXT    NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    name       TEXT    NOT NULL,
    value      BLOB    NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (rule_id, name)
) STRICT;

-- number counts from 1 per rule; deployed_from: the version a rollback copied.
CREATE TABLE rule_versions (
    rule_id       TEXT    NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    number        INTEGER NOT NULL,
    source_kind   TEXT    NOT NULL,
    script        TEXT,
    component     BLOB,
    created_at    INTEGER NOT NULL,
    created_by    TEXT,
    deployed_from INTEGER,
    PRIMARY KEY (rule_id, number),
    CHECK ((source_kind = 'script' AND script IS NOT NULL AND component IS NULL)
        OR (source_kind = 'component' AND component IS NOT NULL AND script IS NULL))
) STRICT;

-- Rules that existed before versions did start with their current source as version 1.
INSERT INTO rule_versions (rule_id, number, source_kind, script, component, created_at)
SELECT id, 1, source_kind, script, component, updated_at FROM rules;
