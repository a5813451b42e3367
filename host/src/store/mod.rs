//! Persistence behind a trait, so that handlers never see SQL: SQLite (embedded) is the
//! default, PostgreSQL the store that several nodes share.

mod audit;
mod changes;
mod logs;
pub mod model;
mod postgres;
mod postgres_admin;
mod postgres_cluster;
mod postgres_tx;
mod replay;
mod rule_admin;
mod sqlite;
mod sqlite_replay;
mod sqlite_tx;
#[cfg(test)]
mod suite;

pub use audit::{AuditEntry, AuditFilter, AuditRecord, AuditStore};
pub use changes::{Change, ChangeFeed, Cluster, ClusterEvent, Recording};
pub use logs::{rfc3339_ms, LogEntry, LogFilter, LogStore};

pub use model::*;
pub use postgres::PgStore;
pub use replay::ReplayCache;
pub use rule_admin::{RuleAdminStore, RuleVersion, SealedSecret};
pub use sqlite::SqliteStore;

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage: {0}")]
    Backend(String),
    #[error("{what} already exists")]
    Conflict { what: String },
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("{path}: {source}")]
    File {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything tokenhost persists. Blocking calls: async callers use `spawn_blocking`.
///
/// Reads are here; every write goes through [`Store::atomically`] (or `transaction`, its
/// wrapper on `dyn Store`), so that a change and its audit record are stored together or
/// not at all.
pub trait Store:
    LogStore + RuleAdminStore + AuditStore + ReplayCache + Send + Sync + 'static
{
    fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>>;
    fn list_clients(&self) -> StoreResult<Vec<Client>>;
    fn list_client_grants(&self) -> StoreResult<Vec<ClientGrant>>;
    fn list_rules(&self) -> StoreResult<Vec<Rule>>;
    fn list_signing_keys(&self) -> StoreResult<Vec<StoredSigningKey>>;

    /// One API by id, one client (with its secrets) by client id, one grant by id: what a
    /// [`Change`] names, read again.
    fn get_resource_server(&self, id: &str) -> StoreResult<Option<ResourceServer>>;
    fn get_client(&self, client_id: &str) -> StoreResult<Option<Client>>;
    fn get_client_grant(&self, id: &str) -> StoreResult<Option<ClientGrant>>;

    /// What this process's committed transactions changed, not yet applied to its catalog.
    fn changes(&self) -> &ChangeFeed;

    /// The cluster side of a store that several nodes share; `None` when only this
    /// process uses the store.
    fn cluster(&self) -> Option<&dyn Cluster> {
        None
    }

    /// Runs `f` in one transaction: every write it makes through its `StoreTx` is applied
    /// if it returns `Ok` and the commit succeeds, none otherwise. `f` may run more than
    /// once (a backend may retry a transaction that lost a conflict), and must not call
    /// the store itself while it runs: the store is busy with the transaction.
    fn atomically(&self, f: &mut dyn FnMut(&dyn StoreTx) -> StoreResult<()>) -> StoreResult<()>;

    /// Rewrites the stored data so that nothing deleted or overwritten survives in the
    /// database's files (after private keys stored in the clear were sealed). Slow: once,
    /// at start, when needed.
    fn compact(&self) -> StoreResult<()>;

    /// Is the store reachable?
    fn ping(&self) -> StoreResult<()>;
}

impl dyn Store {
    /// [`Store::atomically`] for a closure that returns a value.
    pub fn transaction<T>(
        &self,
        mut f: impl FnMut(&dyn StoreTx) -> StoreResult<T>,
    ) -> StoreResult<T> {
        let mut out = None;
        self.atomically(&mut |tx| {
            out = Some(f(tx)?);
            Ok(())
        })?;
        out.ok_or_else(|| StoreError::Backend("a transaction committed without running".into()))
    }
}

/// The writes, each part of the transaction [`Store::atomically`] runs.
///
/// `put_*` inserts or replaces by primary key; a unique-key clash with another row
/// (an API's identifier, a rule's name, a grant's client+audience) is `Conflict`.
/// `delete_*` returns whether the row existed.
pub trait StoreTx {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()>;
    /// Deleting an API deletes the grants for its audience.
    fn delete_resource_server(&self, id: &str) -> StoreResult<bool>;

    fn put_client(&self, client: &Client) -> StoreResult<()>;
    /// Deleting a client deletes its grants.
    fn delete_client(&self, client_id: &str) -> StoreResult<bool>;

    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()>;
    fn delete_client_grant(&self, id: &str) -> StoreResult<bool>;

    fn put_rule(&self, rule: &Rule) -> StoreResult<()>;
    /// Deleting a rule deletes its secrets and versions.
    fn delete_rule(&self, id: &str) -> StoreResult<bool>;
    /// Sets `set` (insert or replace by name) and deletes `remove`; returns the rule's
    /// secrets after the change, by name.
    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>>;
    /// Stores `rule` (insert or replace) and `version` as its next version (its `number`
    /// is ignored); returns the number the version got.
    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32>;

    /// Only sealed keys: a key in the clear is refused, never written.
    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()>;
    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool>;

    /// Appends `record` to the audit trail; returns its id.
    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64>;
}
