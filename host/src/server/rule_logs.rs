//! Recording rule executions off the request path.
//!
//! The token endpoint hands each execution's entry to [`LogRecorder::record`], which never
//! blocks: the entry goes to live subscribers (`/api/v2/logs/stream`) at once and into a
//! bounded queue that a background task writes to the store in batches, pruning to the
//! retention limits as it goes. If the queue is full the entry is dropped from storage (and
//! counted), never the token request delayed.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::{broadcast, mpsc};

use crate::credentials::generate_id;
use crate::rules::{Execution, LogLine, Outcome};
use crate::store::{rfc3339_ms, LogEntry, Store};

/// CONTRACT.md: 10,000 entries and 10 days, whichever first.
pub const RETAIN_ENTRIES: usize = 10_000;
pub const RETAIN_FOR: Duration = Duration::from_secs(10 * 24 * 3600);
const QUEUE: usize = 8192;
const BATCH: usize = 512;
const BATCH_WAIT: Duration = Duration::from_millis(50);
const PRUNE_EVERY: Duration = Duration::from_secs(60);
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
    queue: mpsc::Sender<LogEntry>,
    pending: Arc<Mutex<Option<mpsc::Receiver<LogEntry>>>>,
    live: broadcast::Sender<Arc<LogEntry>>,
    dropped: Arc<AtomicU64>,
}

impl std::fmt::Debug for LogRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogRecorder")
            .field("dropped", &self.dropped())
            .finish_non_exhaustive()
    }
}

impl Default for LogRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LogRecorder {
    pub fn new() -> Self {
        let (queue, receiver) = mpsc::channel(QUEUE);
        let (live, _) = broadcast::channel(LIVE_BACKLOG);
        LogRecorder {
            queue,
            pending: Arc::new(Mutex::new(Some(receiver))),
            live,
            dropped: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Starts the background writer (once; later calls do nothing). Needs a Tokio runtime.
    pub fn start(&self, store: Arc<dyn Store>) {
        let receiver = self
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(receiver) = receiver {
            tokio::spawn(write_batches(receiver, store));
        }
    }

    /// Records an entry without waiting.
    pub fn record(&self, entry: LogEntry) {
        let entry = Arc::new(entry);
        // No subscriber is not an error.
        let _ = self.live.send(entry.clone());
        if self.queue.try_send(Arc::unwrap_or_clone(entry)).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Entries recorded from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<LogEntry>> {
        self.live.subscribe()
    }

    /// Entries that could not be queued for storage.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

async fn write_batches(mut receiver: mpsc::Receiver<LogEntry>, store: Arc<dyn Store>) {
    let mut last_prune = tokio::time::Instant::now();
    while let Some(first) = receiver.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + BATCH_WAIT;
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, receiver.recv()).await {
                Ok(Some(entry)) => batch.push(entry),
                Ok(None) | Err(_) => break,
            }
        }
        let prune = last_prune.elapsed() >= PRUNE_EVERY;
        if prune {
            last_prune = tokio::time::Instant::now();
        }
        let store = store.clone();
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
}

pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Replaces every value of `secrets` in `text` with `[redacted]`.
pub fn redact(text: &str, secrets: &BTreeMap<String, String>) -> String {
    let mut out = text.to_string();
    // Longest first, so a secret containing another is redacted whole.
    let mut values: Vec<&str> = secrets
        .values()
        .map(String::as_str)
        .filter(|v| !v.is_empty())
        .collect();
    values.sort_by_key(|v| std::cmp::Reverse(v.len()));
    for value in values {
        if out.contains(value) {
            out = out.replace(value, "[redacted]");
        }
    }
    out
}

/// The log entry of one execution, with the rule's secrets redacted.
pub fn entry(
    request: RequestContext<'_>,
    rule_id: &str,
    rule_name: &str,
    execution: &Execution,
    secrets: &BTreeMap<String, String>,
) -> LogEntry {
    let time_ms = now_ms();
    let (outcome, code, cause) = match &execution.outcome {
        Outcome::Issued { .. } => ("issued", None, None),
        Outcome::Denied { denial } => ("denied", Some(denial.code.as_str().to_string()), None),
        Outcome::Failed { failure } => {
            ("failed", None, Some(redact(&failure.to_string(), secrets)))
        }
    };
    let mut logs: Vec<LogLine> = execution
        .logs
        .iter()
        .map(|line| LogLine {
            level: line.level,
            message: redact(&line.message, secrets),
        })
        .collect();
    if let Outcome::Failed {
        failure: crate::rules::Failure::Exception {
            stack: Some(stack), ..
        },
    } = &execution.outcome
    {
        logs.push(LogLine {
            level: crate::rules::Level::Error,
            message: redact(stack, secrets),
        });
    }
    LogEntry {
        id: generate_id("log_").unwrap_or_else(|_| format!("log_{time_ms}")),
        time: rfc3339_ms(time_ms),
        time_ms,
        request_id: request.request_id.to_string(),
        rule_id: rule_id.to_string(),
        rule_name: rule_name.to_string(),
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
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_redacted_longest_first() {
        let secrets = BTreeMap::from([
            ("A".to_string(), "abc".to_string()),
            ("B".to_string(), "abcdef".to_string()),
        ]);
        assert_eq!(
            redact("key=abcdef, short=abc", &secrets),
            "key=[redacted], short=[redacted]"
        );
        assert_eq!(redact("nothing here", &BTreeMap::new()), "nothing here");
    }
}
