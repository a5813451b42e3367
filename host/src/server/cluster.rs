//! Several nodes on one shared store: how a node follows the others.
//!
//! Nothing here is on the token path. A node hears every committed change through the
//! store's notifications and applies it to its own catalog; a periodic reconcile covers a
//! lost notification; the signing keys are re-read every second, so a key published on one
//! node is published by all before any node signs with it (see `keys_settled`); a
//! heartbeat counts the live nodes, which share each client's rate limit; and the live log
//! stream relays the executions of the other nodes.

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use super::state::AppState;
use crate::store::{Change, Cluster, ClusterEvent, Store, StoreError};

/// A lost notification is made up for within this.
pub const RECONCILE_EVERY: Duration = Duration::from_secs(30);
/// How often each node re-reads the signing keys, whatever it heard.
pub const KEYS_EVERY: Duration = Duration::from_secs(1);
/// A key that is to start signing must have been stored this long, so that every node
/// reachable from the database has read it (every `KEYS_EVERY`) and publishes it.
pub const KEY_SETTLE: Duration = Duration::from_secs(3);
/// How often a node says it is alive, and how long after its last word it counts as gone.
pub const HEARTBEAT_EVERY: Duration = Duration::from_secs(2);
pub const HEARTBEAT_EXPIRY: Duration = Duration::from_secs(10);
/// How often the live log stream asks for the other nodes' executions.
pub const LOG_RELAY_EVERY: Duration = Duration::from_millis(250);

/// A name for this process among the nodes: random, new at every start.
pub fn node_id() -> Result<String, StoreError> {
    let mut bytes = [0u8; 6];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| StoreError::Backend("the system random source failed".into()))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("node-{hex}"))
}

/// What a node hears from the others.
pub type Events = tokio::sync::mpsc::UnboundedReceiver<ClusterEvent>;

/// Starts listening and waits until the listener is connected (its first `Connected`,
/// consumed here): from then on no change is missed. Blocking.
pub fn listening(cluster: &dyn Cluster) -> Result<Events, StoreError> {
    let mut events = cluster.listen()?;
    loop {
        match events.blocking_recv() {
            Some(ClusterEvent::Connected) => return Ok(events),
            Some(ClusterEvent::Changed(_)) => continue,
            None => return Err(StoreError::Backend("the change listener stopped".into())),
        }
    }
}

/// Starts following the other nodes, with the events `listening` returned. Needs a Tokio
/// runtime.
pub fn start(state: &AppState, node: &str, events: Events) {
    tokio::spawn(follow(state.clone(), events));
    tokio::spawn(heartbeat(state.clone(), node.to_string()));
    tokio::spawn(relay_logs(state.clone()));
}

/// Leaves the live nodes at a clean shutdown, so the others take back its share of the
/// rate limits at once instead of after `HEARTBEAT_EXPIRY`.
pub async fn leave(state: &AppState, node: &str) {
    let node = node.to_string();
    let _ = on_cluster(state, move |cluster| cluster.leave(&node)).await;
}

/// Runs `f` on the shared store on a blocking thread.
async fn on_cluster<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&dyn Cluster) -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    let store: Arc<dyn Store> = state.store.clone();
    tokio::task::spawn_blocking(move || match store.cluster() {
        Some(cluster) => f(cluster),
        None => Err(StoreError::Backend("the store is not shared".into())),
    })
    .await
    .map_err(|e| StoreError::Backend(format!("cluster task: {e}")))?
}

/// Applies `changes` to the catalog on a blocking thread; a failure is logged, and the next
/// reconcile tries again.
async fn apply(state: &AppState, changes: Vec<Change>) {
    let applying = state.clone();
    let result = tokio::task::spawn_blocking(move || applying.apply(&changes)).await;
    match result {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "cannot apply another node's change"),
        Err(e) => tracing::error!(error = %e, "catalog update task failed"),
    }
}

/// Hears the changes of every node and applies them; reads everything again after each
/// (re)connection of the listener and every `RECONCILE_EVERY`; re-reads the keys every
/// `KEYS_EVERY`.
async fn follow(state: AppState, mut events: Events) {
    let mut reconcile = tokio::time::interval(RECONCILE_EVERY);
    reconcile.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut keys = tokio::time::interval(KEYS_EVERY);
    keys.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first ticks are immediate; the start-up just built the catalog.
    reconcile.tick().await;
    keys.tick().await;
    let mut listening = true;
    loop {
        let changes = tokio::select! {
            event = events.recv(), if listening => match event {
                Some(event) => {
                    // Whatever else has arrived meanwhile is applied with it.
                    let mut changes = changes_of(event);
                    while let Ok(more) = events.try_recv() {
                        changes.extend(changes_of(more));
                    }
                    changes
                }
                None => {
                    tracing::error!("the change listener stopped; following by reconcile only");
                    listening = false;
                    continue;
                }
            },
            _ = reconcile.tick() => vec![Change::Everything],
            _ = keys.tick() => {
                if keys_unchanged(&state).await {
                    continue;
                }
                vec![Change::SigningKeys]
            }
        };
        let changes = if changes.contains(&Change::Everything) {
            vec![Change::Everything]
        } else {
            changes
        };
        apply(&state, changes).await;
    }
}

fn changes_of(event: ClusterEvent) -> Vec<Change> {
    match event {
        ClusterEvent::Changed(changes) => changes,
        ClusterEvent::Connected => vec![Change::Everything],
    }
}

/// Whether the stored signing keys are the ones the catalog holds (same kids, states and
/// retirement times). An unreadable store counts as unchanged: nothing to apply.
async fn keys_unchanged(state: &AppState) -> bool {
    let store = state.store.clone();
    let Ok(Ok(stored)) = tokio::task::spawn_blocking(move || store.list_signing_keys()).await
    else {
        return true;
    };
    let catalog = state.catalog();
    let held = catalog.keys.keys();
    stored.len() == held.len()
        && stored.iter().all(|s| {
            held.iter()
                .any(|h| h.kid == s.kid && h.state == s.state && h.retired_at == s.retired_at)
        })
}

/// Says this node is alive every `HEARTBEAT_EVERY`, and gives each client's rate limit
/// the share of one of the live nodes.
async fn heartbeat(state: AppState, node: String) {
    let expiry_ms = i64::try_from(HEARTBEAT_EXPIRY.as_millis()).unwrap_or(i64::MAX);
    let mut every = tokio::time::interval(HEARTBEAT_EVERY);
    loop {
        every.tick().await;
        let beating = node.clone();
        match on_cluster(&state, move |cluster| {
            cluster.heartbeat(&beating, expiry_ms)
        })
        .await
        {
            Ok(nodes) => state.rate_limits.set_nodes(nodes),
            // Unheard, the others count this node gone after the expiry, and take back its
            // share; it keeps its own (a stricter limit, never a looser one).
            Err(e) => tracing::warn!(error = %e, "heartbeat not stored"),
        }
    }
}

/// While someone follows the live log stream, relays the executions the other nodes
/// stored (this node's own reach the stream as they happen).
async fn relay_logs(state: AppState) {
    let mut after: Option<i64> = None;
    let mut every = tokio::time::interval(LOG_RELAY_EVERY);
    loop {
        every.tick().await;
        if !state.logs.has_subscribers() {
            // A stream that opens later starts from then, not from where the last one left.
            after = None;
            continue;
        }
        let from = after;
        match on_cluster(&state, move |cluster| {
            cluster.logs_of_other_nodes(from, 1_000)
        })
        .await
        {
            Ok((entries, last)) => {
                for entry in entries {
                    state.logs.relay(entry);
                }
                after = Some(last);
            }
            Err(e) => tracing::warn!(error = %e, "cannot read the other nodes' rule logs"),
        }
    }
}

/// How long to wait before the oldest `Next` key of `created_at` (Unix seconds) may sign:
/// until every node has had time to read it.
pub fn key_settle_wait(created_at: i64, now_ms: i64) -> Duration {
    let settle_ms = i64::try_from(KEY_SETTLE.as_millis()).unwrap_or(i64::MAX);
    // created_at has whole seconds: count from the end of that second.
    let ready_ms = (created_at + 1)
        .saturating_mul(1000)
        .saturating_add(settle_ms);
    Duration::from_millis(u64::try_from(ready_ms - now_ms).unwrap_or(0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_ids_differ() {
        let a = node_id().unwrap();
        assert!(a.starts_with("node-") && a.len() == 17, "{a}");
        assert_ne!(a, node_id().unwrap());
    }

    #[test]
    fn a_next_key_waits_until_settled() {
        // Made during second 100: ready 3 s after the end of that second.
        assert_eq!(key_settle_wait(100, 100_500), Duration::from_millis(3_500));
        assert_eq!(key_settle_wait(100, 104_000), Duration::ZERO);
        assert_eq!(key_settle_wait(100, 200_000), Duration::ZERO);
    }
}
