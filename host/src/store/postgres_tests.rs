//! Tests of what only `PgStore` does: concurrent migrations, notifications to other nodes,
//! the cluster's live nodes, master key check, start-up lock and log streams. Each runs on
//! a fresh schema of the server `TOKENHOST_TEST_DATABASE_URL` names.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use tokio::sync::mpsc::UnboundedReceiver;

use super::*;
use crate::store::suite::catalog::{client, key};
use crate::store::suite::{Harness, Postgres};
use crate::store::{rfc3339_ms, ClusterEvent, LogEntry, LogFilter, LogStore, RuleVersion};

/// The store as the trait object whose single writes the suite defines.
fn s(store: &PgStore) -> &dyn Store {
    store
}

/// The next event, or `None` after `wait`.
fn next_event(
    events: &mut UnboundedReceiver<ClusterEvent>,
    wait: Duration,
) -> Option<ClusterEvent> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(async { tokio::time::timeout(wait, events.recv()).await })
        .ok()
        .flatten()
}

#[test]
fn nodes_migrating_an_empty_database_at_once_apply_each_migration_once() {
    let (_base, url, schema) = Postgres::empty_schema();
    let barrier = Arc::new(Barrier::new(3));
    let starts: Vec<_> = (0..3)
        .map(|i| {
            let (url, barrier) = (url.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                PgStore::connect(&url, &format!("node-{i}"))
            })
        })
        .collect();
    let stores: Vec<PgStore> = starts
        .into_iter()
        .map(|t| t.join().unwrap().unwrap())
        .collect();
    let applied: i64 = stores[0]
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, MIGRATIONS.len() as i64);
    // Reconnecting finds the schema current.
    drop(PgStore::connect(&url, "node-3").unwrap());
    let applied: i64 = stores[0]
        .query_one("SELECT count(*) FROM schema_migrations", &[])
        .unwrap()
        .get(0);
    assert_eq!(applied, MIGRATIONS.len() as i64);
    s(&stores[0]).put_client(&client("c", 1)).unwrap();
    assert_eq!(stores[2].list_clients().unwrap().len(), 1);
    drop(stores);
    super::super::suite::admin_sql(
        &super::super::suite::test_database_url(),
        &format!("DROP SCHEMA {schema} CASCADE"),
    );
}

#[test]
fn a_commit_is_heard_by_the_other_nodes_and_a_rollback_is_not() {
    let pg = Postgres::new();
    let other = pg.node("node-b");
    let mut events = other.listen().unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)),
        Some(ClusterEvent::Connected)
    );

    let started = Instant::now();
    pg.store().put_client(&client("c1", 1)).unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)),
        Some(ClusterEvent::Changed(vec![Change::Client("c1".into())]))
    );
    eprintln!("commit to notification: {:?}", started.elapsed());

    let failed: StoreResult<()> = pg.store().transaction(|tx| {
        tx.put_client(&client("c2", 1))?;
        Err(StoreError::Corrupt("rolled back".into()))
    });
    assert!(failed.is_err());
    pg.store()
        .transaction(|tx| {
            tx.put_signing_keys(&[key("k", KeyState::Next, 1)])?;
            tx.delete_client("c1")
        })
        .unwrap();
    // The next thing heard is the commit after the rollback.
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)),
        Some(ClusterEvent::Changed(vec![
            Change::SigningKeys,
            Change::Client("c1".into())
        ]))
    );
    assert_eq!(next_event(&mut events, Duration::from_millis(300)), None);
}

#[test]
fn many_changes_are_split_across_notifications_under_the_payload_limit() {
    let pg = Postgres::new();
    let mut events = pg.store.listen().unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)),
        Some(ClusterEvent::Connected)
    );
    let ids: Vec<String> = (0..400)
        .map(|i| format!("client-with-a-long-id-{i:04}"))
        .collect();
    pg.store()
        .transaction(|tx| {
            for id in &ids {
                tx.put_client(&client(id, 1))?;
            }
            Ok(())
        })
        .unwrap();
    let mut heard = Vec::new();
    let mut notifications = 0;
    while heard.len() < ids.len() {
        match next_event(&mut events, Duration::from_secs(5)) {
            Some(ClusterEvent::Changed(changes)) => {
                notifications += 1;
                heard.extend(changes);
            }
            other => panic!("expected changes, got {other:?}"),
        }
    }
    assert!(notifications > 1, "{notifications}");
    let expected: Vec<Change> = ids.iter().map(|id| Change::Client(id.clone())).collect();
    assert_eq!(heard, expected);
    for payload in notify_payloads(&expected) {
        assert!(payload.len() < 8000, "{}", payload.len());
    }
}

#[test]
fn the_listener_stops_when_its_receiver_is_dropped() {
    let pg = Postgres::new();
    let mut events = pg.store.listen().unwrap();
    assert_eq!(
        next_event(&mut events, Duration::from_secs(5)),
        Some(ClusterEvent::Connected)
    );
    let listening = |store: &PgStore| -> i64 {
        store
            .query_one(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'
                 AND query LIKE '%' || current_schema() || '%'",
                &[],
            )
            .unwrap()
            .get(0)
    };
    assert_eq!(listening(&pg.store), 1);
    drop(events);
    // The listener notices at its next event; a commit is one.
    pg.store().put_client(&client("c", 1)).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while listening(&pg.store) > 0 {
        assert!(
            Instant::now() < deadline,
            "the listener kept its connection"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn heartbeats_count_the_live_nodes_and_drop_the_silent_ones() {
    let pg = Postgres::new();
    let cluster = pg.store.cluster().unwrap();
    assert_eq!(cluster.heartbeat("a", 60_000).unwrap(), 1);
    assert_eq!(cluster.heartbeat("b", 60_000).unwrap(), 2);
    assert_eq!(cluster.heartbeat("a", 60_000).unwrap(), 2);
    pg.exec("INSERT INTO cluster_nodes (node, last_seen_ms) VALUES ('silent', 0)");
    assert_eq!(pg.count("SELECT count(*) FROM cluster_nodes"), 3);
    assert_eq!(cluster.heartbeat("a", 60_000).unwrap(), 2);
    cluster.leave("b").unwrap();
    assert_eq!(cluster.heartbeat("a", 60_000).unwrap(), 1);
    cluster.leave("a").unwrap();
    assert_eq!(pg.count("SELECT count(*) FROM cluster_nodes"), 0);
}

#[test]
fn the_first_master_key_check_is_kept_and_others_compared_with_it() {
    let pg = Postgres::new();
    let other = pg.node("node-b");
    assert!(pg.store.master_key_matches("check-1").unwrap());
    assert!(!other.master_key_matches("check-2").unwrap());
    assert!(other.master_key_matches("check-1").unwrap());
    assert!(pg.store.master_key_matches("check-1").unwrap());
}

#[test]
fn exclusively_runs_one_node_at_a_time_and_unlocks_after_a_failure() {
    let pg = Postgres::new();
    let inside = Arc::new(AtomicBool::new(false));
    let overlaps = Arc::new(AtomicBool::new(false));
    let runs: Vec<_> = (0..3)
        .map(|i| {
            let store = pg.node(&format!("node-{i}"));
            let (inside, overlaps) = (inside.clone(), overlaps.clone());
            std::thread::spawn(move || {
                store.exclusively(&mut || {
                    if inside.swap(true, Ordering::SeqCst) {
                        overlaps.store(true, Ordering::SeqCst);
                    }
                    // The store is usable while the lock is held.
                    s(&store).put_client(&client(&format!("c{i}"), 1))?;
                    std::thread::sleep(Duration::from_millis(100));
                    inside.store(false, Ordering::SeqCst);
                    Ok(())
                })
            })
        })
        .collect();
    for run in runs {
        run.join().unwrap().unwrap();
    }
    assert!(!overlaps.load(Ordering::SeqCst));
    assert_eq!(pg.store.list_clients().unwrap().len(), 3);

    let failed = pg
        .store
        .exclusively(&mut || Err(StoreError::Corrupt("failed while locked".into())));
    assert!(matches!(failed, Err(StoreError::Corrupt(_))), "{failed:?}");
    // Another node gets the lock at once.
    let other = pg.node("node-b");
    let (done, finished) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(other.exclusively(&mut || Ok(())));
    });
    finished
        .recv_timeout(Duration::from_secs(5))
        .expect("the lock was left held")
        .unwrap();
}

fn log(id: &str, time_ms: i64) -> LogEntry {
    LogEntry {
        id: id.into(),
        time: rfc3339_ms(time_ms),
        time_ms,
        request_id: format!("req-{id}"),
        rule_id: "r".into(),
        rule_name: "r".into(),
        client_id: "c".into(),
        audience: "https://a/".into(),
        outcome: "issued".into(),
        code: None,
        cause: Some("x".into()),
        fuel_used: 7,
        duration_us: 3,
        logs: Vec::new(),
        truncated: true,
    }
}

#[test]
fn other_nodes_logs_come_oldest_first_without_this_nodes_own() {
    let pg = Postgres::new();
    let other = pg.node("node-b");
    let (none, start) = pg.store.logs_of_other_nodes(None, 10).unwrap();
    assert!(none.is_empty());
    assert_eq!(start, 0);

    pg.store.append_logs(&[log("mine-1", 1)]).unwrap();
    other.append_logs(&[log("b-1", 2), log("b-2", 3)]).unwrap();
    pg.store.append_logs(&[log("mine-2", 4)]).unwrap();
    other.append_logs(&[log("b-3", 5)]).unwrap();

    let (entries, after) = pg.store.logs_of_other_nodes(Some(start), 10).unwrap();
    assert_eq!(
        entries.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["b-1", "b-2", "b-3"]
    );
    assert_eq!(entries[0], log("b-1", 2));
    let (again, same) = pg.store.logs_of_other_nodes(Some(after), 10).unwrap();
    assert!(again.is_empty());
    assert_eq!(same, after);
    // Cut short by the limit, the stream resumes where it stopped.
    let (first, resume) = pg.store.logs_of_other_nodes(Some(start), 2).unwrap();
    assert_eq!(first.len(), 2);
    let (rest, end) = pg.store.logs_of_other_nodes(Some(resume), 2).unwrap();
    assert_eq!(
        rest.iter().map(|e| e.id.as_str()).collect::<Vec<_>>(),
        ["b-3"]
    );
    assert_eq!(end, after);
    // Where a new stream starts: after everything stored, this node's entries too.
    let (_, newest) = other.logs_of_other_nodes(None, 10).unwrap();
    assert_eq!(newest, after);
    // Both nodes' entries are in the one log every node lists.
    let all = pg
        .store
        .list_logs(&LogFilter {
            limit: 10,
            ..LogFilter::default()
        })
        .unwrap();
    assert_eq!(all.len(), 5);
}

#[test]
fn transactions_that_collide_are_retried_and_all_commit() {
    let pg = Postgres::new();
    let rule = crate::store::suite::catalog::rule("r", "r", 1, RuleSource::Script("x".into()));
    pg.store().put_rule(&rule).unwrap();
    let writers: Vec<_> = (0..4)
        .map(|i| {
            let store = pg.node(&format!("node-{i}"));
            let rule = rule.clone();
            std::thread::spawn(move || {
                let version = RuleVersion {
                    number: 0,
                    source: RuleSource::Script(format!("v{i}")),
                    created_at: 1,
                    created_by: None,
                    deployed_from: None,
                };
                (0..5)
                    .map(|_| s(&store).put_rule_version(&rule, &version))
                    .collect::<StoreResult<Vec<u32>>>()
            })
        })
        .collect();
    let mut numbers: Vec<u32> = writers
        .into_iter()
        .flat_map(|w| w.join().unwrap().unwrap())
        .collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=20).collect::<Vec<u32>>());
}

#[test]
fn compacting_keeps_the_keys() {
    let pg = Postgres::new();
    pg.store()
        .put_signing_keys(&[key("k", KeyState::Current, 1)])
        .unwrap();
    pg.store().compact().unwrap();
    assert_eq!(
        pg.store.list_signing_keys().unwrap(),
        vec![key("k", KeyState::Current, 1)]
    );
}

#[test]
fn a_dead_database_is_an_error_that_names_the_host_but_not_the_password() {
    let started = Instant::now();
    // A port nothing listens on.
    let err = PgStore::connect(
        "postgres://someone:hunter2-secret@127.0.0.1:1/nowhere?connect_timeout=2",
        "node-a",
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("127.0.0.1:1/nowhere"), "{text}");
    assert!(!text.contains("hunter2"), "{text}");
    assert!(started.elapsed() < Duration::from_secs(10));
}

#[test]
fn the_store_works_from_async_code_of_either_runtime_flavour() {
    let pg = Postgres::new();
    let store = Arc::new(pg.node("node-b"));
    for flavour in ["multi", "current"] {
        let mut builder = match flavour {
            "multi" => tokio::runtime::Builder::new_multi_thread(),
            _ => tokio::runtime::Builder::new_current_thread(),
        };
        let runtime = builder.enable_all().build().unwrap();
        let store = store.clone();
        let clients = runtime.block_on(async move {
            // Called straight from a task, not from spawn_blocking.
            s(&store).put_client(&client(flavour, 1)).unwrap();
            store.list_clients().unwrap().len()
        });
        assert!(clients >= 1);
    }
    // Dropped inside async code, the store does not panic.
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let last = Arc::try_unwrap(store).unwrap();
    runtime.block_on(async move { drop(last) });
    assert_eq!(pg.store.list_clients().unwrap().len(), 2);
}
