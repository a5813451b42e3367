//! The replay cache: what may be used once (a client assertion's `jti`, a DPoP proof's
//! `jti`), kept in the database so that every node of a cluster refuses a second use.
//!
//! An entry lives until the credential it stands for could no longer be accepted anyway
//! (its expiry plus the clock leeway), so the cache is bounded by how many credentials can be
//! valid at once. Expired entries count as unused. PostgreSQL deletes them every
//! [`PRUNE_EVERY`] uses; SQLite keeps its cache in memory and writes it behind
//! (`sqlite_replay.rs`).

use std::sync::atomic::{AtomicU64, Ordering};

use super::postgres::PgStore;
use super::sqlite::SqliteStore;
use super::StoreResult;

/// How many uses, in this process, between two deletions of PostgreSQL's expired entries.
pub const PRUNE_EVERY: u64 = 256;

static USES: AtomicU64 = AtomicU64::new(0);

fn time_to_prune() -> bool {
    USES.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1
}

/// Use-once keys, shared by every node that shares the store.
pub trait ReplayCache {
    /// Marks `key` used until `until` (Unix seconds). `Ok(false)`: it is in use already, a
    /// replay. A key whose entry expired before `now` is used afresh.
    fn use_once(&self, key: &str, until: i64, now: i64) -> StoreResult<bool>;
}

impl ReplayCache for SqliteStore {
    /// Decided in memory, written behind (`sqlite_replay.rs` says what that risks).
    fn use_once(&self, key: &str, until: i64, now: i64) -> StoreResult<bool> {
        Ok(self.replay().use_once(key, until, now))
    }
}

impl ReplayCache for PgStore {
    fn use_once(&self, key: &str, until: i64, now: i64) -> StoreResult<bool> {
        if time_to_prune() {
            self.execute("DELETE FROM replay_cache WHERE expires_at < $1", &[&now])?;
        }
        // One statement: of two nodes racing on a key, the unique index lets one insert and
        // makes the other see the row (and its unexpired time), so exactly one wins.
        let changed = self.execute(
            "INSERT INTO replay_cache (key, expires_at) VALUES ($1, $2)
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at
             WHERE replay_cache.expires_at < $3",
            &[&key, &until, &now],
        )?;
        Ok(changed == 1)
    }
}
