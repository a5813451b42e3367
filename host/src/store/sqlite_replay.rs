//! SQLite's replay cache: answered from memory, written behind.
//!
//! A commit per use put a write (and now and then a WAL checkpoint, with its fsync) on every
//! assertion and DPoP request; under load the token path's p99 rose to about a second. The
//! embedded store serves one process, so that process's memory can be the authority: a use
//! is decided in a map, and a writer thread stores the new entries every [`FLUSH_EVERY`] in
//! one transaction, so that a restarted server still refuses what was used before it.
//!
//! What a crash (not a clean stop, which writes everything) can lose is the last
//! [`FLUSH_EVERY`] of uses: after a restart those `jti`s could be used once more, within
//! their few minutes of validity. Several processes on one database file would not see each
//! other's uses at all; several nodes share PostgreSQL, whose cache stays synchronous.

use std::collections::HashMap;
use std::mem;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::{params, Connection};

use super::StoreResult;

/// How long a new entry waits in memory, at most, before it is written.
pub const FLUSH_EVERY: Duration = Duration::from_millis(100);

/// Seconds (of the callers' clock) between two deletions of the expired entries.
const PRUNE_INTERVAL: i64 = 10;

/// The entries in use, and the writer thread that stores them.
pub(super) struct WriteBehind {
    shared: Arc<Shared>,
    writer: Option<JoinHandle<()>>,
}

struct Shared {
    conn: Arc<Mutex<Connection>>,
    held: Mutex<Held>,
    wake: Condvar,
}

#[derive(Default)]
struct Held {
    /// Every unexpired key and its expiry: the authority on what was used.
    used: HashMap<Box<str>, i64>,
    /// Uses not yet written.
    pending: Vec<(Box<str>, i64)>,
    /// The database's entries that expired before this are to be deleted.
    prune_before: Option<i64>,
    next_prune: i64,
    stopping: bool,
}

/// What one write takes from memory.
struct Batch {
    entries: Vec<(Box<str>, i64)>,
    prune_before: Option<i64>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl WriteBehind {
    /// Loads the entries unexpired at `now` and starts the writer.
    pub(super) fn start(conn: Arc<Mutex<Connection>>, now: i64) -> StoreResult<WriteBehind> {
        let used = {
            let c = lock(&conn);
            let mut stmt =
                c.prepare("SELECT key, expires_at FROM replay_cache WHERE expires_at >= ?1")?;
            let rows = stmt.query_map([now], |r| {
                Ok((r.get::<_, String>(0)?.into_boxed_str(), r.get::<_, i64>(1)?))
            })?;
            rows.collect::<Result<HashMap<_, _>, _>>()?
        };
        let shared = Arc::new(Shared {
            conn,
            held: Mutex::new(Held {
                used,
                next_prune: i64::MIN,
                ..Held::default()
            }),
            wake: Condvar::new(),
        });
        let writer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("replay-writer".into())
                .spawn(move || shared.write_until_stopped())
                .map_err(|e| {
                    super::StoreError::Backend(format!("starting the replay writer: {e}"))
                })?
        };
        Ok(WriteBehind {
            shared,
            writer: Some(writer),
        })
    }

    /// `ReplayCache::use_once`, decided in memory.
    pub(super) fn use_once(&self, key: &str, until: i64, now: i64) -> bool {
        let mut held = lock(&self.shared.held);
        if now >= held.next_prune {
            held.used.retain(|_, expires| *expires >= now);
            held.prune_before = Some(now);
            held.next_prune = now.saturating_add(PRUNE_INTERVAL);
        }
        if held.used.get(key).is_some_and(|expires| *expires >= now) {
            return false;
        }
        held.used.insert(key.into(), until);
        held.pending.push((key.into(), until));
        true
    }

    /// Writes what is pending now, on the caller's thread (for tests that read the file).
    #[cfg(test)]
    pub(super) fn flush(&self) -> StoreResult<()> {
        self.shared.write_pending()
    }
}

impl Shared {
    fn write_until_stopped(&self) {
        loop {
            let stopping = {
                let held = lock(&self.held);
                let (held, _) = self
                    .wake
                    .wait_timeout_while(held, FLUSH_EVERY, |h| !h.stopping)
                    .unwrap_or_else(PoisonError::into_inner);
                held.stopping
            };
            if let Err(e) = self.write_pending() {
                tracing::warn!(error = %e, "storing used assertion and proof ids failed; retrying");
            }
            if stopping {
                return;
            }
        }
    }

    /// Takes the pending entries and writes them in one transaction. The connection is
    /// locked first, so that two writes never store one key's uses out of order.
    fn write_pending(&self) -> StoreResult<()> {
        let mut conn = lock(&self.conn);
        let batch = {
            let mut held = lock(&self.held);
            Batch {
                entries: mem::take(&mut held.pending),
                prune_before: held.prune_before.take(),
            }
        };
        if batch.entries.is_empty() && batch.prune_before.is_none() {
            return Ok(());
        }
        let written = write(&mut conn, &batch);
        if written.is_err() {
            // Kept for the next write: memory still refuses these, the file must learn them.
            let mut held = lock(&self.held);
            let newer = mem::replace(&mut held.pending, batch.entries);
            held.pending.extend(newer);
            held.prune_before = held.prune_before.or(batch.prune_before);
        }
        written
    }
}

fn write(conn: &mut Connection, batch: &Batch) -> StoreResult<()> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT INTO replay_cache (key, expires_at) VALUES (?1, ?2)
             ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at",
        )?;
        for (key, until) in &batch.entries {
            insert.execute(params![&**key, until])?;
        }
    }
    if let Some(before) = batch.prune_before {
        tx.prepare_cached("DELETE FROM replay_cache WHERE expires_at < ?1")?
            .execute([before])?;
    }
    tx.commit()?;
    Ok(())
}

impl Drop for WriteBehind {
    /// A clean stop writes every use.
    fn drop(&mut self) {
        lock(&self.shared.held).stopping = true;
        self.shared.wake.notify_all();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
        if let Err(e) = self.shared.write_pending() {
            tracing::error!(error = %e, "storing used assertion and proof ids at shutdown failed");
        }
    }
}

impl std::fmt::Debug for WriteBehind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let held = lock(&self.shared.held);
        f.debug_struct("WriteBehind")
            .field("used", &held.used.len())
            .field("pending", &held.pending.len())
            .finish()
    }
}
