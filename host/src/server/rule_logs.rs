//! Recording rule executions off the request path.
//!
//! The token endpoint hands each execution's entry to [`LogRecorder::record`], which never
//! blocks: the entry goes to live subscribers (`/api/v2/logs/stream`) at once and into a
//! bounded buffer that a background task writes to the store in batches, pruning to the
//! retention limits as it goes. If the buffer is full the entry is dropped from storage
//! (and counted), never the token request delayed. Live subscribers are capped
//! (`max_log_streams`): each holds a place until it is dropped.
//!
//! Only the entry that finds the buffer empty wakes the writer, which then lets a batch
//! gather for [`BATCH_WAIT`]: a busy server pays one task wake-up per batch, not one per
//! token (a wake-up per token cost more than the insert itself, often a cross-core IPI).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, Notify, OwnedSemaphorePermit, Semaphore};

use crate::credentials::generate_id;
use crate::rules::{LogLine, Outcome, Step};
use crate::store::{rfc3339_ms, LogEntry, Store};

/// CONTRACT.md: 10,000 entries and 10 days, whichever first.
pub const RETAIN_ENTRIES: usize = 10_000;
pub const RETAIN_FOR: Duration = Duration::from_secs(10 * 24 * 3600);
/// Entries waiting for the writer at most; more are dropped from storage.
const QUEUE: usize = 8192;
/// How long the writer lets a batch gather after its first entry.
const BATCH_WAIT: Duration = Duration::from_millis(50);
/// Prune at least this often (for the age limit), and whenever a tenth of the entry limit
/// has been written since the last prune: the table stays near its limit, so its indexes
/// stay small and cached instead of growing by a minute's worth of entries under load.
const PRUNE_EVERY: Duration = Duration::from_secs(60);
const PRUNE_AFTER_ENTRIES: usize = RETAIN_ENTRIES / 10;
const LIVE_BACKLOG: usize = 1024;

/// What is known of the request an execution belonged to.
#[derive(Debug, Clone, Copy)]
pub struct RequestContext<'a> {
    pub request_id: &'a str,
    pub client_id: &'a str,
    pub audience: &'a str,
}

/// The recorder's handle, cheap to clone.
#[derive(Clone)]
pub struct LogRecorder {
    shared: Arc<Shared>,
    live: broadcast::Sender<Arc<LogEntry>>,
    /// One permit per live subscriber: each costs a task, a socket and a copy of every
    /// entry, so their number is capped (`max_log_streams`).
    subscribers: Arc<Semaphore>,
    max_subscribers: usize,
}

/// Entries recorded from the moment of subscribing, while the subscription holds one of
/// the recorder's places; dropping it frees the place.
pub struct Subscription {
    pub receiver: broadcast::Receiver<Arc<LogEntry>>,
    _place: OwnedSemaphorePermit,
}

/// Every subscriber place is taken.
#[derive(Debug, thiserror::Error)]
#[error("at most {max} live log subscribers at once")]
pub struct TooManySubscribers {
    pub max: usize,
}

/// What the handles and the writer share.
struct Shared {
    /// Entries not yet written, oldest first.
    buffer: Mutex<Vec<LogEntry>>,
    /// Signalled when an entry finds the buffer empty.
    arrived: Notify,
    /// Where the writer writes, once started.
    store: OnceLock<Arc<dyn Store>>,
    dropped: AtomicU64,
}

impl Shared {
    fn take(&self) -> Vec<LogEntry> {
        std::mem::take(&mut *self.buffer.lock().unwrap_or_else(|p| p.into_inner()))
    }
}

impl std::fmt::Debug for LogRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecorder")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl LogRecorder {
    /// A recorder with room for `max_subscribers` live subscribers at once.
    pub fn new(max_subscribers: usize) -> Self {
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        LogRecorder {
            shared: Arc::new(Shared {
                buffer: Mutex::new(Vec::new()),
                arrived: Notify::new(),
                store: OnceLock::new(),
                dropped: AtomicU64::new(0),
            }),
            live,
            // `Semaphore::new` refuses more than MAX_PERMITS; no server holds that many.
            subscribers: Arc::new(Semaphore::new(max_subscribers.min(Semaphore::MAX_PERMITS))),
            max_subscribers,
        }
    }

    /// Starts the background writer (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self, store: Arc<dyn Store>) {
        if self.shared.store.set(store.clone()).is_ok() {
            tokio::spawn(write_batches(self.shared.clone(), store));
        }
    }

    /// Records an entry without waiting.
    pub fn record(&self, entry: LogEntry) {
        let entry = if self.live.receiver_count() > 0 {
            let entry = Arc::new(entry);
            // A subscriber may have gone since the count: not an error.
            let _ = self.live.send(entry.clone());
            Arc::unwrap_or_clone(entry)
        } else {
            entry
        };
        let first = {
            let mut buffer = self.shared.buffer.lock().unwrap_or_else(|p| p.into_inner());
            if buffer.len() >= QUEUE {
                drop(buffer);
                self.shared.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
            buffer.push(entry);
            buffer.len() == 1
        };
        if first {
            self.shared.arrived.notify_one();
        }
    }

    /// Whether someone follows the live stream.
    pub fn has_subscribers(&self) -> bool {
        self.live.receiver_count() > 0
    }

    /// Passes another node's stored entry to the live stream (not stored again).
    pub fn relay(&self, entry: LogEntry) {
        let _ = self.live.send(Arc::new(entry));
    }

    /// Writes what is buffered now (at shutdown, so that no recorded entry is lost).
    pub async fn flush(&self) {
        let Some(store) = self.shared.store.get().cloned() else {
            return;
        };
        let batch = self.shared.take();
        if !batch.is_empty() {
            write(store, batch, false).await;
        }
    }

    /// Entries recorded from now on, if a subscriber place is free.
    pub fn subscribe(&self) -> Result<Subscription, TooManySubscribers> {
        let place =
            self.subscribers
                .clone()
                .try_acquire_owned()
                .map_err(|_| TooManySubscribers {
                    max: self.max_subscribers,
                })?;
        Ok(Subscription {
            receiver: self.live.subscribe(),
            _place: place,
        })
    }

    /// Entries that could not be buffered for storage.
    pub fn dropped(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(shared: Arc<Shared>, store: Arc<dyn Store>) {
    let mut last_prune = tokio::time::Instant::now();
    let mut written_since_prune = 0;
    loop {
        shared.arrived.notified().await;
        tokio::time::sleep(BATCH_WAIT).await;
        let batch = shared.take();
        if batch.is_empty() {
            // `flush` took it.
            continue;
        }
        written_since_prune += batch.len();
        let prune =
            last_prune.elapsed() >= PRUNE_EVERY || written_since_prune >= PRUNE_AFTER_ENTRIES;
        if prune {
            last_prune = tokio::time::Instant::now();
            written_since_prune = 0;
        }
        write(store.clone(), batch, prune).await;
    }
}

/// Stores `batch` on a blocking thread, then prunes if asked; failures go to the log.
async fn write(store: Arc<dyn Store>, batch: Vec<LogEntry>, prune: bool) {
    let written = tokio::task::spawn_blocking(move || {
        store.append_logs(&batch)?;
        if prune {
            let oldest = now_ms() - RETAIN_FOR.as_millis() as i64;
            store.prune_logs(RETAIN_ENTRIES, oldest)?;
        }
        Ok::<_, crate::store::StoreError>(())
    })
    .await;
    match written {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot store rule logs"),
        Err(e) => tracing::error!(error = %e, "rule log writer failed"),
    }
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// The log entry of one execution. Its text comes already redacted and bounded from the
/// execution (`RuleEngine::run` captures it so), so nothing here can reintroduce a secret.
pub fn entry(request: RequestContext<'_>, step: Step) -> LogEntry {
    let Step {
        rule_id,
        rule_name,
        execution,
    } = step;
    let time_ms = now_ms();
    let (outcome, code, cause) = match &execution.outcome {
        Outcome::Issued { .. } => ("issued", None, None),
        Outcome::Denied { denial } => ("denied", Some(denial.code.as_str().to_string()), None),
        Outcome::Failed { failure } => ("failed", None, Some(failure.to_string())),
    };
    let mut logs = execution.logs;
    if let Outcome::Failed {
        failure: crate::rules::Failure::Exception {
            stack: Some(stack), ..
        },
    } = &execution.outcome
    {
        logs.push(LogLine {
            level: crate::rules::Level::Error,
            message: stack.clone(),
        });
    }
    LogEntry {
        id: generate_id("log_").unwrap_or_else(|_| format!("log_{time_ms}")),
        time: rfc3339_ms(time_ms),
        time_ms,
        request_id: request.request_id.to_string(),
        rule_id,
        rule_name,
        client_id: request.client_id.to_string(),
        audience: request.audience.to_string(),
        outcome: outcome.to_string(),
        code,
        cause,
        fuel_used: execution.fuel_used,
        duration_us: execution
            .duration
            .as_micros()
            .try_into()
            .unwrap_or(u64::MAX),
        logs,
        truncated: execution.truncated,
    }
}

/// `entry`, read back from storage, held to this server's bounds: an entry stored by an
/// earlier version (whose cap did not count lines) or under a larger `max_log_bytes` is cut
/// as if it were recorded now, so that a listing's size is bounded whatever is stored.
pub fn bounded(mut entry: LogEntry, max_log_bytes: usize) -> LogEntry {
    if crate::rules::rebound(&mut entry.logs, &mut entry.cause, max_log_bytes) {
        entry.truncated = true;
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscribers_are_capped_and_a_dropped_one_frees_its_place() {
        let recorder = LogRecorder::new(2);
        let first = recorder.subscribe().unwrap();
        let _second = recorder.subscribe().unwrap();
        assert!(matches!(
            recorder.subscribe(),
            Err(TooManySubscribers { max: 2 })
        ));
        drop(first);
        assert!(recorder.subscribe().is_ok());
    }
}
