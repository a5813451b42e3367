//! Persistence behind a trait, so that handlers never see SQL and a PostgreSQL backend for
//! several nodes can follow without touching them. SQLite (embedded) is the default.

mod audit;
mod logs;
pub mod model;
mod rule_admin;
mod sqlite;

pub use audit::{AuditEntry, AuditFilter, AuditRecord, AuditStore};
pub use logs::{rfc3339_ms, LogEntry, LogFilter, LogStore};

pub use model::*;
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
}

pub type StoreResult<T> = Result<T, StoreError>;

/// Everything tokenhost persists. Blocking calls: async callers use `spawn_blocking`.
///
/// `put_*` inserts or replaces by primary key; a unique-key clash with another row
/// (an API's identifier, a rule's name, a grant's client+audience) is `Conflict`.
/// `delete_*` returns whether the row existed.
pub trait Store: LogStore + RuleAdminStore + AuditStore + Send + Sync + 'static {
    fn list_resource_servers(&self) -> StoreResult<Vec<ResourceServer>>;
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()>;
    fn delete_resource_server(&self, id: &str) -> StoreResult<bool>;

    fn list_clients(&self) -> StoreResult<Vec<Client>>;
    fn put_client(&self, client: &Client) -> StoreResult<()>;
    /// Deleting a client deletes its grants.
    fn delete_client(&self, client_id: &str) -> StoreResult<bool>;

    fn list_client_grants(&self) -> StoreResult<Vec<ClientGrant>>;
    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()>;
    fn delete_client_grant(&self, id: &str) -> StoreResult<bool>;

    fn list_rules(&self) -> StoreResult<Vec<Rule>>;
    fn put_rule(&self, rule: &Rule) -> StoreResult<()>;
    /// Deleting a rule deletes its secrets and versions.
    fn delete_rule(&self, id: &str) -> StoreResult<bool>;

    fn list_signing_keys(&self) -> StoreResult<Vec<SigningKey>>;
    /// Writes all given keys in one transaction (a rotation changes several at once).
    fn put_signing_keys(&self, keys: &[SigningKey]) -> StoreResult<()>;
    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool>;

    /// Is the store reachable?
    fn ping(&self) -> StoreResult<()>;
}
