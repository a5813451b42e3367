//! The embedded SQLite implementation of `Store`: one connection behind a mutex, schema
//! versioned by rusqlite_migration.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Mutex, MutexGuard, PoisonError};

use rusqlite::{ffi, params, Connection, ErrorCode, Row, Statement};
use rusqlite_migration::{Migrations, M};
use serde::{de::DeserializeOwned, Serialize};

use super::{
    Client, ClientGrant, KeyState, ResourceServer, Rule, RuleSource, SecretHash, SigningAlg,
    SigningKey, Store, StoreError, StoreResult,
};

/// Append-only: a released migration is never edited, a change is a new entry.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_rule_secrets_versions.sql"),
    include_str!("migrations/0003_audit_rate_limits.sql"),
    include_str!("migrations/0004_rule_logs.sql"),
    include_str!("migrations/0005_log_truncated.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// A `Store` in one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path` and migrates it to the latest schema.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        let conn = Connection::open(path)?;
        // WAL lets a backup or an operator's sqlite3 read while the server writes.
        let mode: String =
            conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            tracing::warn!(path = %path.display(), mode, "SQLite refused WAL journal mode");
        }
        // NORMAL is durable in WAL mode except for the last commits before a power loss.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn)
    }

    /// A private database that lives as long as the store; for tests.
    pub fn open_in_memory() -> StoreResult<SqliteStore> {
        Self::init(Connection::open_in_memory()?)
    }

    fn init(mut conn: Connection) -> StoreResult<SqliteStore> {
        // Off by default in SQLite, and per connection: without it the cascades never fire.
        conn.pragma_update(None, "foreign_keys", true)?;
        conn.pragma_update(None, "busy_timeout", 5000)?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Backend(format!("migrating the database: {e}")))?;
        Ok(SqliteStore {
            conn: Mutex::new(conn),
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done write behind: an
        // unfinished `Transaction` rolls back when dropped.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Maps a write's error: a UNIQUE clash is `Conflict` about `what`, anything else `Backend`.
/// Inserts or replaces `rule` (on `conn`, so that it can be part of a transaction).
pub(super) fn upsert_rule(conn: &Connection, rule: &Rule) -> StoreResult<()> {
    let (kind, script, component) = match &rule.source {
        RuleSource::Script(s) => ("script", Some(s.as_str()), None),
        RuleSource::Component(c) => ("component", None, Some(c.as_slice())),
    };
    conn.prepare_cached(
        "INSERT INTO rules (id, name, source_kind, script, component, enabled, ord,
             artifact, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             source_kind = excluded.source_kind, script = excluded.script,
             component = excluded.component, enabled = excluded.enabled,
             ord = excluded.ord, artifact = excluded.artifact,
             created_at = excluded.created_at, updated_at = excluded.updated_at",
    )?
    .execute(params![
        rule.id,
        rule.name,
        kind,
        script,
        component,
        rule.enabled,
        rule.order,
        rule.artifact,
        rule.created_at,
        rule.updated_at,
    ])
    .map_err(on_unique(|| format!("a rule named {}", rule.name)))?;
    Ok(())
}

fn on_unique(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e.sqlite_error() {
        Some(f)
            if f.code == ErrorCode::ConstraintViolation
                && f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict { what: what() }
        }
        _ => e.into(),
    }
}

fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn parse_alg(text: &str) -> StoreResult<SigningAlg> {
    SigningAlg::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown signing algorithm {text:?}")))
}

/// Runs a parameterless query and converts every row, stopping at the first bad one.
fn collect<T>(
    stmt: &mut Statement<'_>,
    mut convert: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut rows = stmt.query([])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(convert(row)?);
    }
    Ok(out)
}

fn delete(conn: &Connection, sql: &str, key: &str) -> StoreResult<bool> {
    Ok(conn.execute(sql, [key])? > 0)
}

impl Store for SqliteStore {
    fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, identifier, name, scopes, token_lifetime, signing_alg,
                    allow_rule_added_scopes, created_at
             FROM resource_servers ORDER BY created_at, id",
        )?;
        collect(&mut stmt, |row| {
            let lifetime: i64 = row.get(4)?;
            Ok(ResourceServer {
                id: row.get(0)?,
                identifier: row.get(1)?,
                name: row.get(2)?,
                scopes: from_json("resource_servers.scopes", &row.get::<_, String>(3)?)?,
                token_lifetime: u32::try_from(lifetime).map_err(|_| {
                    StoreError::Corrupt(format!("token lifetime {lifetime} out of range"))
                })?,
                signing_alg: parse_alg(&row.get::<_, String>(5)?)?,
                allow_rule_added_scopes: row.get(6)?,
                created_at: row.get(7)?,
            })
        })
    }

    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO resource_servers (id, identifier, name, scopes, token_lifetime,
                     signing_alg, allow_rule_added_scopes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET identifier = excluded.identifier,
                     name = excluded.name, scopes = excluded.scopes,
                     token_lifetime = excluded.token_lifetime,
                     signing_alg = excluded.signing_alg,
                     allow_rule_added_scopes = excluded.allow_rule_added_scopes,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                api.id,
                api.identifier,
                api.name,
                to_json(&api.scopes)?,
                api.token_lifetime,
                api.signing_alg.as_str(),
                api.allow_rule_added_scopes,
                api.created_at,
            ])
            .map_err(on_unique(|| {
                format!("an API with identifier {}", api.identifier)
            }))?;
        Ok(())
    }

    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        delete(
            &self.conn(),
            "DELETE FROM resource_servers WHERE id = ?1",
            id,
        )
    }

    fn list_clients(&self) -> StoreResult<Vec<Client>> {
        let mut conn = self.conn();
        // One read transaction, so the secrets belong to the same snapshot as the clients.
        let tx = conn.transaction()?;
        let mut clients = collect(
            &mut *tx.prepare_cached(
                "SELECT client_id, name, client_metadata, app_type, created_at,
                        token_rate_limit
                 FROM clients ORDER BY created_at, client_id",
            )?,
            |row| {
                Ok(Client {
                    client_id: row.get(0)?,
                    name: row.get(1)?,
                    client_metadata: from_json(
                        "clients.client_metadata",
                        &row.get::<_, String>(2)?,
                    )?,
                    app_type: row.get(3)?,
                    secrets: Vec::new(),
                    created_at: row.get(4)?,
                    token_rate_limit: row
                        .get::<_, Option<String>>(5)?
                        .map(|text| from_json("clients.token_rate_limit", &text))
                        .transpose()?,
                })
            },
        )?;
        let index: HashMap<String, usize> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.client_id.clone(), i))
            .collect();
        let secrets = collect(
            &mut *tx.prepare_cached(
                "SELECT client_id, hash, expires_at FROM client_secrets
                 ORDER BY client_id, position",
            )?,
            |row| {
                let secret = SecretHash {
                    hash: row.get(1)?,
                    expires_at: row.get(2)?,
                };
                Ok((row.get::<_, String>(0)?, secret))
            },
        )?;
        for (client_id, secret) in secrets {
            // The foreign key guarantees the owner exists.
            if let Some(&i) = index.get(&client_id) {
                clients[i].secrets.push(secret);
            }
        }
        Ok(clients)
    }

    fn put_client(&self, client: &Client) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        // An upsert, not REPLACE: REPLACE deletes the row first and would cascade to grants.
        tx.prepare_cached(
            "INSERT INTO clients (client_id, name, client_metadata, app_type, created_at,
                 token_rate_limit)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (client_id) DO UPDATE SET name = excluded.name,
                 client_metadata = excluded.client_metadata, app_type = excluded.app_type,
                 created_at = excluded.created_at,
                 token_rate_limit = excluded.token_rate_limit",
        )?
        .execute(params![
            client.client_id,
            client.name,
            to_json(&client.client_metadata)?,
            client.app_type,
            client.created_at,
            client.token_rate_limit.as_ref().map(to_json).transpose()?,
        ])?;
        tx.execute(
            "DELETE FROM client_secrets WHERE client_id = ?1",
            [&client.client_id],
        )?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO client_secrets (client_id, position, hash, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (position, secret) in (0_i64..).zip(&client.secrets) {
                insert.execute(params![
                    client.client_id,
                    position,
                    secret.hash,
                    secret.expires_at
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        delete(
            &self.conn(),
            "DELETE FROM clients WHERE client_id = ?1",
            client_id,
        )
    }

    fn list_client_grants(&self) -> StoreResult<Vec<ClientGrant>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, client_id, audience, scope, created_at
             FROM client_grants ORDER BY created_at, id",
        )?;
        collect(&mut stmt, |row| {
            Ok(ClientGrant {
                id: row.get(0)?,
                client_id: row.get(1)?,
                audience: row.get(2)?,
                scope: from_json("client_grants.scope", &row.get::<_, String>(3)?)?,
                created_at: row.get(4)?,
            })
        })
    }

    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.conn()
            .prepare_cached(
                "INSERT INTO client_grants (id, client_id, audience, scope, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id,
                     audience = excluded.audience, scope = excluded.scope,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                grant.id,
                grant.client_id,
                grant.audience,
                to_json(&grant.scope)?,
                grant.created_at,
            ])
            .map_err(on_unique(|| {
                format!(
                    "a grant for client {} to audience {}",
                    grant.client_id, grant.audience
                )
            }))?;
        Ok(())
    }

    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        delete(&self.conn(), "DELETE FROM client_grants WHERE id = ?1", id)
    }

    fn list_rules(&self) -> StoreResult<Vec<Rule>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT id, name, source_kind, script, component, enabled, ord, artifact,
                    created_at, updated_at
             FROM rules ORDER BY ord, created_at, id",
        )?;
        collect(&mut stmt, |row| {
            let kind: String = row.get(2)?;
            let source = match (kind.as_str(), row.get(3)?, row.get(4)?) {
                ("script", Some(script), None) => RuleSource::Script(script),
                ("component", None, Some(bytes)) => RuleSource::Component(bytes),
                _ => return Err(StoreError::Corrupt(format!("rule source of kind {kind:?}"))),
            };
            Ok(Rule {
                id: row.get(0)?,
                name: row.get(1)?,
                source,
                enabled: row.get(5)?,
                order: row.get(6)?,
                artifact: row.get(7)?,
                created_at: row.get(8)?,
                updated_at: row.get(9)?,
            })
        })
    }

    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        upsert_rule(&self.conn(), rule)
    }

    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        delete(&self.conn(), "DELETE FROM rules WHERE id = ?1", id)
    }

    fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kid, alg, state, private_der, public_jwk, created_at, retired_at
             FROM signing_keys ORDER BY created_at, kid",
        )?;
        collect(&mut stmt, |row| {
            let state: String = row.get(2)?;
            Ok(SigningKey {
                kid: row.get(0)?,
                alg: parse_alg(&row.get::<_, String>(1)?)?,
                state: KeyState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown key state {state:?}")))?,
                private_der: row.get(3)?,
                public_jwk: from_json("signing_keys.public_jwk", &row.get::<_, String>(4)?)?,
                created_at: row.get(5)?,
                retired_at: row.get(6)?,
            })
        })
    }

    fn put_signing_keys(&self, keys: &[SigningKey]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut upsert = tx.prepare_cached(
                "INSERT INTO signing_keys (kid, alg, state, private_der, public_jwk,
                     created_at, retired_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, state = excluded.state,
                     private_der = excluded.private_der, public_jwk = excluded.public_jwk,
                     created_at = excluded.created_at, retired_at = excluded.retired_at",
            )?;
            for key in keys {
                upsert.execute(params![
                    key.kid,
                    key.alg.as_str(),
                    key.state.as_str(),
                    key.private_der,
                    to_json(&key.public_jwk)?,
                    key.created_at,
                    key.retired_at,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        delete(&self.conn(), "DELETE FROM signing_keys WHERE kid = ?1", kid)
    }

    fn ping(&self) -> StoreResult<()> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
