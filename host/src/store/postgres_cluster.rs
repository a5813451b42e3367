//! The cluster side of `PgStore`: the listener for the changes every node commits, live
//! nodes, the master key check, the start-up lock and the other nodes' log entries.

use std::time::Duration;

use deadpool_postgres::Object;
use futures_util::StreamExt;
use tokio::sync::mpsc;
use tokio_postgres::{AsyncMessage, NoTls};

use super::postgres::{PgStore, STARTUP_LOCK};
use super::postgres_admin::{log_from_row, LOG_COLUMNS, LOG_COLUMN_COUNT};
use super::{Change, Cluster, ClusterEvent, LogEntry, StoreError, StoreResult};

/// The listener's reconnect backoff: from the first, doubling, to the last.
const BACKOFF_FIRST: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A listening connection that died quietly (a network partition) is noticed this fast.
const LISTEN_PING: Duration = Duration::from_secs(15);

/// What the database's clock says, in Unix milliseconds: one clock for every node.
const NOW_MS: &str = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

impl Cluster for PgStore {
    fn listen(&self) -> StoreResult<mpsc::UnboundedReceiver<ClusterEvent>> {
        let (events, receiver) = mpsc::unbounded_channel();
        let config = self.config.clone();
        let channel = self.channel.clone();
        let place = self.place.clone();
        self.bridge.handle().spawn(async move {
            let mut backoff = BACKOFF_FIRST;
            loop {
                let started = tokio::time::Instant::now();
                let error = match listen_once(&config, &channel, &events).await {
                    Ok(()) => return, // the receiver is gone
                    Err(e) => e,
                };
                tracing::warn!(database = %place, error = %error, "change listener lost its connection");
                // A connection that listened a while earns a fresh start of the backoff.
                if started.elapsed() > BACKOFF_MAX {
                    backoff = BACKOFF_FIRST;
                }
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = events.closed() => return,
                }
                backoff = (backoff * 2).min(BACKOFF_MAX);
            }
        });
        Ok(receiver)
    }

    fn heartbeat(&self, node: &str, expiry_ms: i64) -> StoreResult<usize> {
        self.with_client(|mut client| async move {
            let tx = client.transaction().await?;
            tx.execute(
                &format!(
                    "INSERT INTO cluster_nodes (node, last_seen_ms) VALUES ($1, {NOW_MS})
                     ON CONFLICT (node) DO UPDATE SET last_seen_ms = excluded.last_seen_ms"
                ),
                &[&node],
            )
            .await?;
            tx.execute(
                &format!("DELETE FROM cluster_nodes WHERE last_seen_ms < {NOW_MS} - $1"),
                &[&expiry_ms],
            )
            .await?;
            let alive: i64 = tx
                .query_one("SELECT count(*) FROM cluster_nodes", &[])
                .await?
                .try_get(0)?;
            tx.commit().await?;
            Ok(usize::try_from(alive).unwrap_or(0))
        })
    }

    fn leave(&self, node: &str) -> StoreResult<()> {
        self.execute("DELETE FROM cluster_nodes WHERE node = $1", &[&node])?;
        Ok(())
    }

    fn master_key_matches(&self, check: &str) -> StoreResult<bool> {
        // The first node to ask sets it; a concurrent first is settled by the primary key.
        self.execute(
            "INSERT INTO cluster_meta (key, value) VALUES ('master_key_check', $1)
             ON CONFLICT (key) DO NOTHING",
            &[&check],
        )?;
        let stored: String = self
            .query_one(
                "SELECT value FROM cluster_meta WHERE key = 'master_key_check'",
                &[],
            )?
            .try_get(0)?;
        Ok(stored == check)
    }

    fn exclusively(&self, f: &mut dyn FnMut() -> StoreResult<()>) -> StoreResult<()> {
        let place = &self.place;
        let client = self
            .bridge
            .block_on(self.pool.get())
            .map_err(|e| StoreError::Backend(format!("PostgreSQL at {place}: {e}")))?;
        let mut locked = Locked(Some(client));
        locked.run("SELECT pg_advisory_lock($1)", self)?;
        let outcome = f();
        // Unlocked even when `f` failed; a connection that cannot unlock is closed (which
        // unlocks), never returned to the pool still holding the lock.
        locked.run("SELECT pg_advisory_unlock($1)", self)?;
        locked.release();
        outcome
    }

    fn logs_of_other_nodes(
        &self,
        after: Option<i64>,
        limit: usize,
    ) -> StoreResult<(Vec<LogEntry>, i64)> {
        let highest: i64 = self
            .query_one("SELECT COALESCE(MAX(seq), 0) FROM rule_logs", &[])?
            .try_get(0)?;
        let Some(after) = after else {
            return Ok((Vec::new(), highest));
        };
        let rows = self.query(
            &format!(
                "SELECT {LOG_COLUMNS}, seq FROM rule_logs WHERE node <> $1 AND seq > $2
                 ORDER BY seq LIMIT $3"
            ),
            &[
                &self.node_id,
                &after,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )?;
        let mut entries = Vec::with_capacity(rows.len());
        let mut last = after;
        for row in &rows {
            entries.push(log_from_row(row)?);
            last = row.try_get(LOG_COLUMN_COUNT)?;
        }
        // Cut short by `limit`: the caller resumes after the last entry it got, not after
        // entries it has not seen.
        let resume = if entries.len() >= limit {
            last
        } else {
            highest.max(after)
        };
        Ok((entries, resume))
    }
}

/// A pooled connection that holds the start-up lock: closed, not pooled, if it is dropped
/// before `release` (a failed unlock, a panic in `f`).
struct Locked(Option<Object>);

impl Locked {
    fn run(&mut self, sql: &str, store: &PgStore) -> StoreResult<()> {
        let client = self
            .0
            .as_ref()
            .ok_or_else(|| StoreError::Backend("the start-up lock was released".into()))?;
        store.bridge.block_on(async move {
            client.execute(sql, &[&STARTUP_LOCK]).await?;
            Ok(())
        })
    }

    fn release(mut self) {
        // Back to the pool, unlocked.
        drop(self.0.take());
    }
}

impl Drop for Locked {
    fn drop(&mut self) {
        if let Some(client) = self.0.take() {
            // Detached from the pool and dropped: the connection closes.
            drop(Object::take(client));
        }
    }
}

/// Listens on one connection until it fails (`Err`) or the receiver is dropped (`Ok`).
async fn listen_once(
    config: &tokio_postgres::Config,
    channel: &str,
    events: &mpsc::UnboundedSender<ClusterEvent>,
) -> StoreResult<()> {
    let (client, mut connection) = config.connect(NoTls).await?;
    // The connection is driven here, its notifications passed on as they come.
    let (messages, mut incoming) = mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        let mut stream = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
        while let Some(message) = stream.next().await {
            let failed = message.is_err();
            if messages.send(message).is_err() || failed {
                break;
            }
        }
    });
    let _abort = AbortOnDrop(driver);
    client
        .batch_execute(&format!("LISTEN \"{}\"", channel.replace('"', "\"\"")))
        .await?;
    if events.send(ClusterEvent::Connected).is_err() {
        return Ok(());
    }
    let mut ping = tokio::time::interval(LISTEN_PING);
    ping.tick().await;
    loop {
        tokio::select! {
            message = incoming.recv() => match message {
                Some(Ok(AsyncMessage::Notification(n))) => {
                    match serde_json::from_str::<Vec<Change>>(n.payload()) {
                        Ok(changes) => {
                            if events.send(ClusterEvent::Changed(changes)).is_err() {
                                return Ok(());
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "ignoring an unreadable change notification"),
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return Err(e.into()),
                None => return Err(StoreError::Backend("the connection closed".into())),
            },
            _ = ping.tick() => {
                client.simple_query("SELECT 1").await?;
            }
            () = events.closed() => return Ok(()),
        }
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
