//! What a committed transaction changed, named so that a catalog re-reads only that, and
//! the cluster side of a store that several nodes share.
//!
//! Every backend wraps its transaction in a [`Recording`], so the changes are derived from
//! the writes themselves (a handler cannot forget to name one). After the commit they go
//! to the store's [`ChangeFeed`], which this process drains to update its own catalog; a
//! shared backend also notifies the other nodes of them, in the same commit.

use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::{Mutex, PoisonError};

use serde::{Deserialize, Serialize};

use super::{
    AuditRecord, Client, ClientGrant, LogEntry, ResourceServer, Rule, RuleVersion, SealedSecret,
    StoreResult, StoreTx, StoredSigningKey,
};

/// One thing a write changed. A receiver re-reads it: found, it is added or replaced;
/// gone, it is removed (with what the store deleted along with it).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", content = "id", rename_all = "snake_case")]
pub enum Change {
    /// An API, by its id. Deleting one deletes the grants for its audience.
    ResourceServer(String),
    /// A client and its secrets, by client id. Deleting one deletes its grants.
    Client(String),
    /// A client grant, by id.
    ClientGrant(String),
    /// Some rule, its order, secrets or deployed version: rules are few (`max_rules`), so a
    /// receiver reads them all again (compiled rules it already has are reused).
    Rules,
    /// The signing keys (a rotation, a new key, an expired one dropped).
    SigningKeys,
    /// Anything: a receiver rebuilds everything (a reconcile, after a lost notification).
    Everything,
}

/// A transaction that records what each write changes, delegating the write itself.
pub struct Recording<'t> {
    tx: &'t dyn StoreTx,
    changes: RefCell<Vec<Change>>,
}

impl<'t> Recording<'t> {
    pub fn new(tx: &'t dyn StoreTx) -> Recording<'t> {
        Recording {
            tx,
            changes: RefCell::new(Vec::new()),
        }
    }

    fn note(&self, change: Change) {
        self.changes.borrow_mut().push(change);
    }

    /// The changes, each once, in the order first made.
    pub fn into_changes(self) -> Vec<Change> {
        let mut seen = HashSet::new();
        self.changes
            .into_inner()
            .into_iter()
            .filter(|c| seen.insert(c.clone()))
            .collect()
    }
}

impl StoreTx for Recording<'_> {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        self.tx.put_resource_server(api)?;
        self.note(Change::ResourceServer(api.id.clone()));
        Ok(())
    }
    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        let existed = self.tx.delete_resource_server(id)?;
        self.note(Change::ResourceServer(id.to_string()));
        Ok(existed)
    }
    fn put_client(&self, client: &Client) -> StoreResult<()> {
        self.tx.put_client(client)?;
        self.note(Change::Client(client.client_id.clone()));
        Ok(())
    }
    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        let existed = self.tx.delete_client(client_id)?;
        self.note(Change::Client(client_id.to_string()));
        Ok(existed)
    }
    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.tx.put_client_grant(grant)?;
        self.note(Change::ClientGrant(grant.id.clone()));
        Ok(())
    }
    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        let existed = self.tx.delete_client_grant(id)?;
        self.note(Change::ClientGrant(id.to_string()));
        Ok(existed)
    }
    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        self.tx.put_rule(rule)?;
        self.note(Change::Rules);
        Ok(())
    }
    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        let existed = self.tx.delete_rule(id)?;
        self.note(Change::Rules);
        Ok(existed)
    }
    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>> {
        let after = self.tx.change_rule_secrets(rule_id, set, remove)?;
        self.note(Change::Rules);
        Ok(after)
    }
    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32> {
        let number = self.tx.put_rule_version(rule, version)?;
        self.note(Change::Rules);
        Ok(number)
    }
    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()> {
        self.tx.put_signing_keys(keys)?;
        if !keys.is_empty() {
            self.note(Change::SigningKeys);
        }
        Ok(())
    }
    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        let existed = self.tx.delete_signing_key(kid)?;
        self.note(Change::SigningKeys);
        Ok(existed)
    }
    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        self.tx.record_audit(record)
    }
}

/// The changes this process committed and has not applied to its catalog yet.
#[derive(Debug, Default)]
pub struct ChangeFeed {
    pending: Mutex<Vec<Change>>,
}

impl ChangeFeed {
    /// Called by a backend after a commit.
    pub fn committed(&self, changes: Vec<Change>) {
        if !changes.is_empty() {
            self.pending
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .extend(changes);
        }
    }

    /// Everything committed since the last call.
    pub fn take(&self) -> Vec<Change> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

/// What a node hears from the shared store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClusterEvent {
    /// Changes a transaction of some node (this one included) committed.
    Changed(Vec<Change>),
    /// The listening connection was (re)established: notifications may have been missed,
    /// so everything is to be read again.
    Connected,
}

/// The part of a store that several nodes share (PostgreSQL); `None` from
/// [`Store::cluster`](super::Store::cluster) for a store only one process uses.
/// Blocking calls, like the rest of the store.
pub trait Cluster: Send + Sync {
    /// Starts listening for the changes every node commits. The receiver gets `Connected`
    /// first, and again after each reconnect (the listener reconnects by itself, with
    /// backoff, while the receiver lives).
    fn listen(&self) -> StoreResult<tokio::sync::mpsc::UnboundedReceiver<ClusterEvent>>;

    /// Records that `node` is alive now and drops nodes not seen for `expiry_ms`; returns
    /// how many nodes are alive (this one included).
    fn heartbeat(&self, node: &str, expiry_ms: i64) -> StoreResult<usize>;

    /// Removes `node` from the live nodes (a clean shutdown).
    fn leave(&self, node: &str) -> StoreResult<()>;

    /// Stores `check` as the cluster's master key check value if none is stored yet;
    /// returns whether the stored value equals `check`.
    fn master_key_matches(&self, check: &str) -> StoreResult<bool>;

    /// Runs `f` while holding the cluster-wide start-up lock, so that nodes starting at
    /// once make their keys and bootstrap client one after the other.
    fn exclusively(&self, f: &mut dyn FnMut() -> StoreResult<()>) -> StoreResult<()>;

    /// Log entries written by nodes other than this store's own node, with a sequence
    /// number above `after` (oldest first, at most `limit`), and the highest sequence
    /// number stored (`after` if none is higher). `after = None` returns no entries, only
    /// the highest sequence number: where a new stream starts.
    fn logs_of_other_nodes(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<(Vec<LogEntry>, i64)>;
}
