//! The PostgreSQL implementation of `Store`, which several nodes share: a small pool of
//! connections driven by the store's own tokio runtime, behind the synchronous trait.
//! Connecting, migrations, the reads and `atomically` are here; the writes of a
//! transaction in `postgres_tx.rs`, the logs, audit and rule reads in `postgres_admin.rs`,
//! the cluster side in `postgres_cluster.rs`.

use std::collections::HashMap;
use std::fmt;
use std::future::Future;
use std::str::FromStr;
use std::time::Duration;

use aws_lc_rs::rand::SystemRandom;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use tokio::runtime::{Handle, Runtime, RuntimeFlavor};
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{IsolationLevel, NoTls, Row};

use super::postgres_tx::PgTx;
use super::sqlite::{from_json, parse_alg, PLAIN, SEALED};
use super::{
    Change, ChangeFeed, Client, ClientGrant, Cluster, KeyState, PrivateKeyAtRest, Recording,
    ResourceServer, Rule, RuleSource, SecretHash, Store, StoreError, StoreResult, StoreTx,
    StoredSigningKey,
};

/// Append-only: a released migration is never edited, a change is a new entry.
pub(super) const MIGRATIONS: &[&str] = &[
    include_str!("migrations_pg/0001_init.sql"),
    include_str!("migrations_pg/0002_client_credentials_replay.sql"),
    include_str!("migrations_pg/0003_rule_logs_lean.sql"),
];

/// `pg_advisory_xact_lock` key held while migrating, so that nodes starting at once
/// migrate one after the other (the second finds the work done).
const MIGRATION_LOCK: i64 = 0x746f_6b65_6e01; // "token" 01
/// `pg_advisory_lock` key of `Cluster::exclusively`.
pub(super) const STARTUP_LOCK: i64 = 0x746f_6b65_6e02;

/// Connections in the pool: the management API writes rarely, logs come in batches.
const POOL_SIZE: usize = 8;
/// So that a database that does not answer is an error, not a hang.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const POOL_WAIT_TIMEOUT: Duration = Duration::from_secs(10);
/// How many times `atomically` runs a transaction that lost a serialization conflict.
const ATTEMPTS: u32 = 6;
/// NOTIFY refuses payloads of 8000 bytes or more; stay clear of it.
const NOTIFY_PAYLOAD_MAX: usize = 7_500;

/// A `Store` in a PostgreSQL database (the schema of the URL's `search_path`), shared by
/// every node of a cluster.
///
/// Text keys sort by their bytes (`COLLATE "C"`), as SQLite's do, whatever the database's
/// locale: both backends list in the same order.
pub struct PgStore {
    pub(super) pool: Pool,
    /// For the listener's own connection (outside the pool).
    pub(super) config: tokio_postgres::Config,
    pub(super) node_id: String,
    /// The NOTIFY channel: one per schema, so clusters in one database stay apart.
    pub(super) channel: String,
    /// host:port/database, for messages: never the URL, which may hold a password.
    pub(super) place: String,
    changes: ChangeFeed,
    pub(super) bridge: Bridge,
}

impl fmt::Debug for PgStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgStore")
            .field("place", &self.place)
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/db`, any
    /// libpq-style option too) as node `node_id`, and migrates it to the latest schema.
    pub fn connect(url: &str, node_id: &str) -> StoreResult<PgStore> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(|e| {
            // The parser names options, never their values.
            StoreError::Backend(format!("the PostgreSQL URL is invalid: {e}"))
        })?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(CONNECT_TIMEOUT);
        }
        if config.get_application_name().is_none() {
            config.application_name("tokenhost");
        }
        let place = place(&config);
        let bridge = Bridge::new()?;
        let manager = Manager::from_config(
            config.clone(),
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .create_timeout(Some(CONNECT_TIMEOUT))
            .wait_timeout(Some(POOL_WAIT_TIMEOUT))
            .build()
            .map_err(|e| StoreError::Backend(format!("PostgreSQL pool: {e}")))?;
        let mut store = PgStore {
            pool,
            config,
            node_id: node_id.to_string(),
            channel: String::new(),
            place,
            changes: ChangeFeed::default(),
            bridge,
        };
        store.migrate()?;
        let schema: String = store
            .query_one("SELECT current_schema()::text", &[])?
            .try_get(0)?;
        store.channel = channel_for(&schema)?;
        Ok(store)
    }

    /// Applies the migrations this database lacks, under a lock that makes nodes starting
    /// at once take turns.
    fn migrate(&self) -> StoreResult<()> {
        let place = &self.place;
        self.with_client(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
                .await?;
            tx.batch_execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (
                     version    INTEGER NOT NULL PRIMARY KEY,
                     applied_at BIGINT  NOT NULL
                 )",
            )
            .await?;
            let applied: i32 = tx
                .query_one(
                    "SELECT COALESCE(MAX(version), 0) FROM schema_migrations",
                    &[],
                )
                .await?
                .try_get(0)?;
            let known = MIGRATIONS.len();
            if usize::try_from(applied).map_or(true, |applied| applied > known) {
                return Err(StoreError::Backend(format!(
                    "the database at {place} has schema version {applied}, newer than this \
                     release knows ({known})"
                )));
            }
            for (version, sql) in (1_i32..).zip(MIGRATIONS).skip(applied as usize) {
                tx.batch_execute(sql).await.map_err(|e| {
                    StoreError::Backend(format!("PostgreSQL migration {version}: {e}"))
                })?;
                tx.execute(
                    "INSERT INTO schema_migrations (version, applied_at)
                     VALUES ($1, extract(epoch FROM now())::bigint)",
                    &[&version],
                )
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    /// Runs `f` on a pooled connection, from synchronous code.
    pub(super) fn with_client<T, F, Fut>(&self, f: F) -> StoreResult<T>
    where
        F: FnOnce(Object) -> Fut + Send,
        Fut: Future<Output = StoreResult<T>> + Send,
        T: Send,
    {
        let pool = &self.pool;
        let place = &self.place;
        self.bridge.block_on(async move {
            let client = pool.get().await.map_err(|e| pool_error(place, e))?;
            f(client).await
        })
    }

    pub(super) fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        self.with_client(|client| async move {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query(&statement, params).await?)
        })
    }

    pub(super) fn query_one(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Row> {
        self.with_client(|client| async move {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.query_one(&statement, params).await?)
        })
    }

    pub(super) fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        self.with_client(|client| async move {
            let statement = client.prepare_cached(sql).await?;
            Ok(client.execute(&statement, params).await?)
        })
    }

    /// One run of `atomically`: `Err(Retry)` when it lost a serialization conflict.
    fn attempt(
        &self,
        f: &mut dyn FnMut(&dyn StoreTx) -> StoreResult<()>,
    ) -> Result<Vec<Change>, Attempt> {
        let place = &self.place;
        let mut client = self
            .bridge
            .block_on(self.pool.get())
            .map_err(|e| Attempt::Failed(pool_error(place, e)))?;
        // SERIALIZABLE: as if the transactions ran one after the other, which is what
        // SQLite's single writer gives (a version number read, then taken, say).
        let tx = self
            .bridge
            .block_on(
                client
                    .build_transaction()
                    .isolation_level(IsolationLevel::Serializable)
                    .start(),
            )
            .map_err(Attempt::from)?;
        let writes = PgTx::new(&tx, &self.bridge);
        let recording = Recording::new(&writes);
        let outcome = f(&recording);
        let changes = recording.into_changes();
        let failure = writes.failure();
        let result = match (outcome, failure) {
            (Err(e), Some(state)) if is_retryable(&state) => Err(Attempt::Retry(e)),
            (Err(e), _) => Err(Attempt::Failed(e)),
            // A statement failed and the closure carried on: PostgreSQL has aborted the
            // transaction, and its COMMIT would quietly roll back.
            (Ok(()), Some(state)) if is_retryable(&state) => Err(Attempt::Retry(
                StoreError::Backend("serialization conflict".into()),
            )),
            (Ok(()), Some(state)) => Err(Attempt::Failed(StoreError::Backend(format!(
                "a statement of the transaction failed (SQLSTATE {})",
                state.code()
            )))),
            (Ok(()), None) => Ok(()),
        };
        if let Err(e) = result {
            // Dropping the transaction would roll it back too; this waits for it.
            let _ = self.bridge.block_on(tx.rollback());
            return Err(e);
        }
        // In the transaction: the other nodes hear of exactly the commits that happened.
        let payloads = notify_payloads(&changes);
        let channel = &self.channel;
        self.bridge
            .block_on(async move {
                for payload in &payloads {
                    tx.execute("SELECT pg_notify($1, $2)", &[channel, payload])
                        .await?;
                }
                tx.commit().await
            })
            .map_err(Attempt::from)?;
        Ok(changes)
    }
}

/// The outcome of one try of a transaction.
enum Attempt {
    Retry(StoreError),
    Failed(StoreError),
}

impl From<tokio_postgres::Error> for Attempt {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.code() {
            Some(state) if is_retryable(state) => Attempt::Retry(e.into()),
            _ => Attempt::Failed(e.into()),
        }
    }
}

/// Serialization failure or deadlock: the transaction is to run again from the start.
fn is_retryable(state: &SqlState) -> bool {
    *state == SqlState::T_R_SERIALIZATION_FAILURE || *state == SqlState::T_R_DEADLOCK_DETECTED
}

/// The JSON arrays of `changes` to NOTIFY, each under PostgreSQL's payload limit; none for
/// no change. A change too large for one payload becomes `Everything`.
pub(super) fn notify_payloads(changes: &[Change]) -> Vec<String> {
    let mut payloads = Vec::new();
    let mut current: Vec<String> = Vec::new();
    let mut size = 2;
    for change in changes {
        let mut json = serde_json::to_string(change).unwrap_or_default();
        if json.is_empty() || json.len() + 2 > NOTIFY_PAYLOAD_MAX {
            json = r#"{"kind":"everything"}"#.to_string();
        }
        if !current.is_empty() && size + json.len() + 1 > NOTIFY_PAYLOAD_MAX {
            payloads.push(format!("[{}]", current.join(",")));
            current.clear();
            size = 2;
        }
        size += json.len() + 1;
        current.push(json);
    }
    if !current.is_empty() {
        payloads.push(format!("[{}]", current.join(",")));
    }
    payloads
}

/// The notification channel for a schema: the plain name in `public`, the schema's own
/// otherwise (NOTIFY reaches the whole database, whatever the schema).
fn channel_for(schema: &str) -> StoreResult<String> {
    let channel = if schema == "public" {
        "tokenhost_changes".to_string()
    } else {
        format!("tokenhost_changes_{schema}")
    };
    // Channel names are identifiers: at most 63 bytes.
    if channel.len() > 63 {
        return Err(StoreError::Backend(format!(
            "schema name {schema:?} is too long for a notification channel"
        )));
    }
    Ok(channel)
}

/// Where the database is, for messages (no user, no password).
fn place(config: &tokio_postgres::Config) -> String {
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    let hosts = if hosts.is_empty() {
        "localhost".to_string()
    } else {
        hosts.join(",")
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    format!("{hosts}:{port}/{}", config.get_dbname().unwrap_or(""))
}

fn pool_error(place: &str, e: deadpool_postgres::PoolError) -> StoreError {
    StoreError::Backend(format!("PostgreSQL at {place}: {e}"))
}

impl From<tokio_postgres::Error> for StoreError {
    fn from(e: tokio_postgres::Error) -> Self {
        match e.as_db_error() {
            // The server's own words (and its detail, which names the key of a clash).
            Some(db) => StoreError::Backend(format!(
                "PostgreSQL: {} (SQLSTATE {})",
                db.message(),
                db.code().code()
            )),
            None => StoreError::Backend(format!("PostgreSQL: {e}")),
        }
    }
}

/// The runtime a `PgStore` drives its connections on, and the way synchronous callers
/// wait for it.
pub(super) struct Bridge {
    runtime: Option<Runtime>,
    handle: Handle,
}

impl Bridge {
    fn new() -> StoreResult<Bridge> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("tokenhost-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Backend(format!("starting the PostgreSQL runtime: {e}")))?;
        Ok(Bridge {
            handle: runtime.handle().clone(),
            runtime: Some(runtime),
        })
    }

    pub(super) fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `fut` on the store's runtime and waits for it, from whatever thread calls the
    /// synchronous `Store`: a plain thread (a test, the CLI) blocks on it; a worker of a
    /// multi-thread runtime first tells that runtime it is blocking (`block_in_place`), so
    /// its other tasks move on; a current-thread runtime cannot lend its only thread, so
    /// the wait happens on a scoped thread of its own.
    pub(super) fn block_on<F>(&self, fut: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        match Handle::try_current().map(|h| h.runtime_flavor()) {
            Ok(RuntimeFlavor::MultiThread) => {
                tokio::task::block_in_place(|| self.handle.block_on(fut))
            }
            Ok(_) => {
                std::thread::scope(
                    |scope| match scope.spawn(|| self.handle.block_on(fut)).join() {
                        Ok(out) => out,
                        Err(panic) => std::panic::resume_unwind(panic),
                    },
                )
            }
            Err(_) => self.handle.block_on(fut),
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        // A runtime dropped inside another's async context panics; this one never waits.
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

fn alg(row: &Row, index: usize) -> StoreResult<super::SigningAlg> {
    parse_alg(&row.try_get::<_, String>(index)?)
}

fn source(kind: &str, script: Option<String>, component: Option<Vec<u8>>) -> Option<RuleSource> {
    match (kind, script, component) {
        ("script", Some(script), None) => Some(RuleSource::Script(script)),
        ("component", None, Some(bytes)) => Some(RuleSource::Component(bytes)),
        _ => None,
    }
}

/// A rule's source from its kind, script and component columns at `first`..`first + 3`.
pub(super) fn source_at(row: &Row, first: usize, what: &str) -> StoreResult<RuleSource> {
    let kind: String = row.try_get(first)?;
    source(&kind, row.try_get(first + 1)?, row.try_get(first + 2)?)
        .ok_or_else(|| StoreError::Corrupt(format!("{what} source of kind {kind:?}")))
}

/// The reads behind the lists and the single gets: `key` (the primary key) picks one row,
/// `None` all of them.
impl PgStore {
    fn resource_servers(&self, key: Option<&str>) -> StoreResult<Vec<ResourceServer>> {
        let rows = self.query(
            "SELECT id, identifier, name, scopes, token_lifetime, signing_alg,
                    allow_rule_added_scopes, created_at
             FROM resource_servers WHERE $1::text IS NULL OR id = $1
             ORDER BY created_at, id COLLATE \"C\"",
            &[&key],
        )?;
        rows.iter()
            .map(|row| {
                let lifetime: i64 = row.try_get(4)?;
                Ok(ResourceServer {
                    id: row.try_get(0)?,
                    identifier: row.try_get(1)?,
                    name: row.try_get(2)?,
                    scopes: from_json("resource_servers.scopes", row.try_get(3)?)?,
                    token_lifetime: u32::try_from(lifetime).map_err(|_| {
                        StoreError::Corrupt(format!("token lifetime {lifetime} out of range"))
                    })?,
                    signing_alg: alg(row, 5)?,
                    allow_rule_added_scopes: row.try_get(6)?,
                    created_at: row.try_get(7)?,
                })
            })
            .collect()
    }

    fn clients(&self, key: Option<&str>) -> StoreResult<Vec<Client>> {
        // One statement, so the secrets belong to the same snapshot as the clients.
        let rows = self.query(
            "SELECT c.client_id, c.name, c.client_metadata, c.app_type, c.created_at,
                    c.token_rate_limit, s.hash, s.expires_at, c.authentication, c.credentials
             FROM clients c LEFT JOIN client_secrets s ON s.client_id = c.client_id
             WHERE $1::text IS NULL OR c.client_id = $1
             ORDER BY c.created_at, c.client_id COLLATE \"C\", s.position",
            &[&key],
        )?;
        let mut clients: Vec<Client> = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::new();
        for row in &rows {
            let client_id: String = row.try_get(0)?;
            let i = match index.get(&client_id) {
                Some(&i) => i,
                None => {
                    clients.push(Client {
                        client_id: client_id.clone(),
                        name: row.try_get(1)?,
                        client_metadata: from_json("clients.client_metadata", row.try_get(2)?)?,
                        app_type: row.try_get(3)?,
                        secrets: Vec::new(),
                        created_at: row.try_get(4)?,
                        token_rate_limit: row
                            .try_get::<_, Option<&str>>(5)?
                            .map(|text| from_json("clients.token_rate_limit", text))
                            .transpose()?,
                        authentication: row
                            .try_get::<_, Option<&str>>(8)?
                            .map(|text| from_json("clients.authentication", text))
                            .transpose()?
                            .unwrap_or_default(),
                        credentials: from_json("clients.credentials", row.try_get(9)?)?,
                    });
                    index.insert(client_id, clients.len() - 1);
                    clients.len() - 1
                }
            };
            if let Some(hash) = row.try_get::<_, Option<Vec<u8>>>(6)? {
                clients[i].secrets.push(SecretHash {
                    hash,
                    expires_at: row.try_get(7)?,
                });
            }
        }
        Ok(clients)
    }

    fn client_grants(&self, key: Option<&str>) -> StoreResult<Vec<ClientGrant>> {
        let rows = self.query(
            "SELECT id, client_id, audience, scope, created_at
             FROM client_grants WHERE $1::text IS NULL OR id = $1
             ORDER BY created_at, id COLLATE \"C\"",
            &[&key],
        )?;
        rows.iter()
            .map(|row| {
                Ok(ClientGrant {
                    id: row.try_get(0)?,
                    client_id: row.try_get(1)?,
                    audience: row.try_get(2)?,
                    scope: from_json("client_grants.scope", row.try_get(3)?)?,
                    created_at: row.try_get(4)?,
                })
            })
            .collect()
    }
}

impl Store for PgStore {
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

    fn cluster(&self) -> Option<&dyn Cluster> {
        Some(self)
    }

    fn list_rules(&self) -> StoreResult<Vec<Rule>> {
        let rows = self.query(
            "SELECT id, name, source_kind, script, component, enabled, ord, artifact,
                    created_at, updated_at
             FROM rules ORDER BY ord, created_at, id COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                Ok(Rule {
                    id: row.try_get(0)?,
                    name: row.try_get(1)?,
                    source: source_at(row, 2, "rule")?,
                    enabled: row.try_get(5)?,
                    order: row.try_get(6)?,
                    artifact: row.try_get(7)?,
                    created_at: row.try_get(8)?,
                    updated_at: row.try_get(9)?,
                })
            })
            .collect()
    }

    fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>> {
        let rows = self.query(
            "SELECT kid, alg, state, private_key, private_format, public_jwk, created_at,
                    retired_at
             FROM signing_keys ORDER BY created_at, kid COLLATE \"C\"",
            &[],
        )?;
        rows.iter()
            .map(|row| {
                let state: &str = row.try_get(2)?;
                let format: &str = row.try_get(4)?;
                let private: Vec<u8> = row.try_get(3)?;
                Ok(StoredSigningKey {
                    kid: row.try_get(0)?,
                    alg: alg(row, 1)?,
                    state: KeyState::parse(state).ok_or_else(|| {
                        StoreError::Corrupt(format!("unknown key state {state:?}"))
                    })?,
                    private_key: match format {
                        SEALED => PrivateKeyAtRest::Sealed(private),
                        PLAIN => PrivateKeyAtRest::Plain(private),
                        _ => {
                            return Err(StoreError::Corrupt(format!(
                                "unknown private key format {format:?}"
                            )))
                        }
                    },
                    public_jwk: from_json("signing_keys.public_jwk", row.try_get(5)?)?,
                    created_at: row.try_get(6)?,
                    retired_at: row.try_get(7)?,
                })
            })
            .collect()
    }

    fn atomically(&self, f: &mut dyn FnMut(&dyn StoreTx) -> StoreResult<()>) -> StoreResult<()> {
        let mut attempt = 1;
        loop {
            match self.attempt(f) {
                Ok(changes) => {
                    self.changes.committed(changes);
                    return Ok(());
                }
                Err(Attempt::Retry(e)) if attempt >= ATTEMPTS => return Err(e),
                Err(Attempt::Retry(_)) => {
                    // Spread the retries of transactions that collided.
                    let jitter = aws_lc_rs::rand::generate::<[u8; 1]>(&SystemRandom::new())
                        .map_or(0, |byte| u64::from(byte.expose()[0] % 20));
                    std::thread::sleep(Duration::from_millis(u64::from(attempt) * 10 + jitter));
                    attempt += 1;
                }
                Err(Attempt::Failed(e)) => return Err(e),
            }
        }
    }

    fn compact(&self) -> StoreResult<()> {
        // Keys are written sealed only, so there is nothing in the clear to rewrite; VACUUM
        // FULL still drops the dead versions of overwritten rows from the table's files.
        self.with_client(|client| async move {
            Ok(client.batch_execute("VACUUM FULL signing_keys").await?)
        })
    }

    fn ping(&self) -> StoreResult<()> {
        self.query_one("SELECT 1", &[])?;
        Ok(())
    }
}

#[cfg(test)]
#[path = "postgres_tests.rs"]
mod tests;
