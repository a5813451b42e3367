//! The embedded SQLite implementation of `Store`: one connection behind a mutex, schema
//! versioned by rusqlite_migration. Reads are here, the writes of a transaction in
//! `sqlite_tx.rs`.

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use rusqlite::{Connection, Row, Statement, TransactionBehavior};
use rusqlite_migration::{Migrations, M};
use serde::de::DeserializeOwned;

use super::sqlite_replay::WriteBehind;
use super::sqlite_tx::SqliteTx;
use super::{
    ChangeFeed, Client, ClientGrant, KeyState, PrivateKeyAtRest, Recording, ResourceServer, Rule,
    RuleSource, SecretHash, SigningAlg, Store, StoreError, StoreResult, StoreTx, StoredSigningKey,
};

/// Append-only: a released migration is never edited, a change is a new entry.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_rule_secrets_versions.sql"),
    include_str!("migrations/0003_audit_rate_limits.sql"),
    include_str!("migrations/0004_rule_logs.sql"),
    include_str!("migrations/0005_log_truncated.sql"),
    include_str!("migrations/0006_sealed_keys_audit_retention.sql"),
    include_str!("migrations/0007_client_credentials_replay.sql"),
    include_str!("migrations/0008_rule_logs_lean.sql"),
];

fn migrations() -> Migrations<'static> {
    Migrations::new(MIGRATIONS.iter().map(|sql| M::up(sql)).collect())
}

/// How `signing_keys.private_format` names each form of a private key.
pub(super) const PLAIN: &str = "plain";
pub(super) const SEALED: &str = "sealed";

/// A `Store` in one SQLite database file.
#[derive(Debug)]
pub struct SqliteStore {
    conn: Arc<Mutex<Connection>>,
    changes: ChangeFeed,
    /// The replay cache, in memory and written behind by its own thread.
    replay: WriteBehind,
}

impl SqliteStore {
    /// Opens (creating if need be) the database at `path` and migrates it to the latest
    /// schema. The database and its `-wal` and `-shm` files are readable by their owner
    /// only (mode 0600), whatever the umask or an earlier release left.
    pub fn open(path: &Path) -> StoreResult<SqliteStore> {
        owner_only(path)?;
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
        let conn = Arc::new(Mutex::new(conn));
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        Ok(SqliteStore {
            replay: WriteBehind::start(Arc::clone(&conn), now)?,
            conn,
            changes: ChangeFeed::default(),
        })
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave a half-done write behind: an
        // unfinished `Transaction` rolls back when dropped.
        self.conn.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn replay(&self) -> &WriteBehind {
        &self.replay
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Backend(e.to_string())
    }
}

/// Creates the database file with mode 0600 if it does not exist (SQLite would create it
/// with the umask's mode, and gives its `-wal` and `-shm` files the database's mode), and
/// tightens the mode of whichever of the three an earlier release left readable by others.
fn owner_only(path: &Path) -> StoreResult<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};

        let file_error = |path: &Path| {
            let path = path.to_path_buf();
            move |source| StoreError::File { path, source }
        };
        std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(path)
            .map_err(file_error(path))?;
        for suffix in ["", "-wal", "-shm"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = Path::new(&name);
            match std::fs::metadata(file) {
                Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                    std::fs::set_permissions(file, std::fs::Permissions::from_mode(0o600))
                        .map_err(file_error(file))?;
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(file_error(file)(e)),
            }
        }
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

pub(super) fn from_json<T: DeserializeOwned>(column: &str, text: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

pub(super) fn parse_alg(text: &str) -> StoreResult<SigningAlg> {
    SigningAlg::parse(text)
        .ok_or_else(|| StoreError::Corrupt(format!("unknown signing algorithm {text:?}")))
}

/// Runs a parameterless query and converts every row, stopping at the first bad one.
fn collect<T>(
    stmt: &mut Statement<'_>,
    convert: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    collect_where(stmt, None, convert)
}

/// The reads behind the lists and the single gets: `key` (the primary key) picks one row,
/// `None` all of them.
impl SqliteStore {
    fn resource_servers(&self, key: Option<&str>) -> StoreResult<Vec<ResourceServer>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, identifier, name, scopes, token_lifetime, signing_alg,
                    allow_rule_added_scopes, created_at
             FROM resource_servers {} ORDER BY created_at, id",
            where_key("id", key)
        ))?;
        collect_where(&mut stmt, key, |row| {
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

    fn clients(&self, key: Option<&str>) -> StoreResult<Vec<Client>> {
        let mut conn = self.conn();
        // One read transaction, so the secrets belong to the same snapshot as the clients.
        let tx = conn.transaction()?;
        let mut clients = collect_where(
            &mut *tx.prepare_cached(&format!(
                "SELECT client_id, name, client_metadata, app_type, created_at,
                        token_rate_limit, authentication, credentials
                 FROM clients {} ORDER BY created_at, client_id",
                where_key("client_id", key)
            ))?,
            key,
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
                    authentication: row
                        .get::<_, Option<String>>(6)?
                        .map(|text| from_json("clients.authentication", &text))
                        .transpose()?
                        .unwrap_or_default(),
                    credentials: from_json("clients.credentials", &row.get::<_, String>(7)?)?,
                })
            },
        )?;
        let index: HashMap<String, usize> = clients
            .iter()
            .enumerate()
            .map(|(i, c)| (c.client_id.clone(), i))
            .collect();
        let secrets = collect_where(
            &mut *tx.prepare_cached(&format!(
                "SELECT client_id, hash, expires_at FROM client_secrets {}
                 ORDER BY client_id, position",
                where_key("client_id", key)
            ))?,
            key,
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

    fn client_grants(&self, key: Option<&str>) -> StoreResult<Vec<ClientGrant>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT id, client_id, audience, scope, created_at
             FROM client_grants {} ORDER BY created_at, id",
            where_key("id", key)
        ))?;
        collect_where(&mut stmt, key, |row| {
            Ok(ClientGrant {
                id: row.get(0)?,
                client_id: row.get(1)?,
                audience: row.get(2)?,
                scope: from_json("client_grants.scope", &row.get::<_, String>(3)?)?,
                created_at: row.get(4)?,
            })
        })
    }
}

/// `WHERE column = ?1` when a key is given.
fn where_key(column: &str, key: Option<&str>) -> String {
    key.map(|_| format!("WHERE {column} = ?1"))
        .unwrap_or_default()
}

/// Collects the rows of `stmt`, with `key` bound as `?1` if given.
fn collect_where<T>(
    stmt: &mut Statement<'_>,
    key: Option<&str>,
    mut convert: impl FnMut(&Row<'_>) -> StoreResult<T>,
) -> StoreResult<Vec<T>> {
    let mut rows = stmt.query(rusqlite::params_from_iter(key))?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(convert(row)?);
    }
    Ok(out)
}

impl Store for SqliteStore {
    fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>> {
        self.resource_servers(None)
    }

    fn get_resource_server(&self, id: &str) -> StoreResult<Option<ResourceServer>> {
        Ok(self.resource_servers(Some(id))?.pop())
    }

    fn list_clients(&self) -> StoreResult<Vec<Client>> {
        self.clients(None)
    }

    fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>> {
        Ok(self.clients(Some(client_id))?.pop())
    }

    fn list_client_grants(&self) -> StoreResult<Vec<ClientGrant>> {
        self.client_grants(None)
    }

    fn get_client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>> {
        Ok(self.client_grants(Some(id))?.pop())
    }

    fn changes(&self) -> &ChangeFeed {
        &self.changes
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

    fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT kid, alg, state, private_key, private_format, public_jwk, created_at,
                    retired_at
             FROM signing_keys ORDER BY created_at, kid",
        )?;
        collect(&mut stmt, |row| {
            let state: String = row.get(2)?;
            let format: String = row.get(4)?;
            let private: Vec<u8> = row.get(3)?;
            Ok(StoredSigningKey {
                kid: row.get(0)?,
                alg: parse_alg(&row.get::<_, String>(1)?)?,
                state: KeyState::parse(&state)
                    .ok_or_else(|| StoreError::Corrupt(format!("unknown key state {state:?}")))?,
                private_key: match format.as_str() {
                    SEALED => PrivateKeyAtRest::Sealed(private),
                    PLAIN => PrivateKeyAtRest::Plain(private),
                    _ => {
                        return Err(StoreError::Corrupt(format!(
                            "unknown private key format {format:?}"
                        )))
                    }
                },
                public_jwk: from_json("signing_keys.public_jwk", &row.get::<_, String>(5)?)?,
                created_at: row.get(6)?,
                retired_at: row.get(7)?,
            })
        })
    }

    fn atomically(&self, f: &mut dyn FnMut(&dyn StoreTx) -> StoreResult<()>) -> StoreResult<()> {
        let mut conn = self.conn();
        // IMMEDIATE takes the write lock first, so a transaction never fails halfway for
        // lack of it (another connection, an operator's sqlite3, holding a read).
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let writes = SqliteTx(&tx);
        let recording = Recording::new(&writes);
        f(&recording)?;
        let changes = recording.into_changes();
        // Dropped without a commit (an error above), the transaction rolls back.
        tx.commit()?;
        self.changes.committed(changes);
        Ok(())
    }

    fn compact(&self) -> StoreResult<()> {
        let conn = self.conn();
        // VACUUM rebuilds the file from live rows only; the checkpoint then moves the
        // rebuilt pages into the database file and empties the WAL, whose older frames
        // still held what was overwritten.
        conn.execute_batch("VACUUM")?;
        let (busy, _, _): (i64, i64, i64) =
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })?;
        if busy != 0 {
            return Err(StoreError::Backend(
                "the WAL could not be emptied: another connection is reading".into(),
            ));
        }
        Ok(())
    }

    fn ping(&self) -> StoreResult<()> {
        self.conn().query_row("SELECT 1", [], |_| Ok(()))?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "sqlite_tests.rs"]
mod tests;
