-- How a client authenticates (JSON ClientAuthentication; NULL: the default, a client
-- secret) and its public-key credentials for private_key_jwt (JSON array).
ALTER TABLE clients ADD COLUMN authentication TEXT;
ALTER TABLE clients ADD COLUMN credentials TEXT NOT NULL DEFAULT '[]';

-- What was used once (a client assertion's jti, a DPoP proof's jti), keyed by a hash,
-- until it could no longer be accepted anyway: every node of the cluster sees it.
CREATE TABLE replay_cache (
    key        TEXT   NOT NULL PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX replay_cache_expiry ON replay_cache (expires_at);
