-- Private signing keys are sealed from now on (AES-256-GCM under the data directory's
-- signing-keys.key, bound to the kid), so the column no longer holds DER. private_format
-- tells the two apart: rows written before say 'plain', and the next start seals them.
ALTER TABLE signing_keys RENAME COLUMN private_der TO private_key;
ALTER TABLE signing_keys ADD COLUMN private_format TEXT NOT NULL DEFAULT 'plain'
    CHECK (private_format IN ('plain', 'sealed'));

-- The audit trail is pruned by age (audit_retention_days).
CREATE INDEX audit_log_at ON audit_log (at);
