//! The catalog's side of `make bench-catalog` (`bench/catalog.py` drives it and the real
//! server): seeds a data directory through the store API, measures what applying one
//! change costs a node (what another node does when notified), and compares lookups in the
//! catalog's persistent map with a std `HashMap` of the same size.
//!
//! ```text
//! bench_catalog seed DATA_DIR CLIENTS APIS   # clients, APIs, one grant per client
//! bench_catalog apply DATA_DIR REPS          # JSON: store write, apply, full rebuild (ms)
//! bench_catalog lookup ENTRIES               # JSON: ns per lookup, std vs imbl
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use tokenhost::config::Config;
use tokenhost::datadir;
use tokenhost::server::{build_state, Bootstrap};
use tokenhost::store::{
    Change, Client, ClientGrant, ResourceServer, SecretHash, SigningAlg, SqliteStore, Store,
};

fn api(i: usize) -> ResourceServer {
    ResourceServer {
        id: format!("api_seed_{i}"),
        identifier: format!("https://seed.test/api/{i}"),
        name: format!("seeded API {i}"),
        scopes: Vec::new(),
        token_lifetime: 3600,
        signing_alg: SigningAlg::ES256,
        allow_rule_added_scopes: false,
        created_at: 1,
    }
}

fn client(id: &str) -> Client {
    Client {
        client_id: id.to_string(),
        name: format!("seeded client {id}"),
        client_metadata: BTreeMap::from([("tier".to_string(), "seed".to_string())]),
        app_type: "non_interactive".into(),
        // Matches no secret: seeded clients are never authenticated.
        secrets: vec![SecretHash {
            hash: vec![0; 32],
            expires_at: None,
        }],
        created_at: 1,
        token_rate_limit: None,
        authentication: Default::default(),
        credentials: Vec::new(),
    }
}

fn grant(i: usize, apis: usize) -> ClientGrant {
    ClientGrant {
        id: format!("cgr_seed_{i}"),
        client_id: format!("seed_{i}"),
        audience: api(i % apis).identifier,
        scope: vec!["read:seed".into()],
        created_at: 1,
    }
}

fn seed(dir: PathBuf, clients: usize, apis: usize) {
    datadir::ensure(&dir).unwrap();
    let store: Arc<dyn Store> =
        Arc::new(SqliteStore::open(&dir.join(datadir::DATABASE_FILE)).unwrap());
    let started = Instant::now();
    store
        .transaction(|tx| (0..apis).try_for_each(|i| tx.put_resource_server(&api(i))))
        .unwrap();
    for chunk in (0..clients).collect::<Vec<_>>().chunks(5_000) {
        store
            .transaction(|tx| {
                for &i in chunk {
                    tx.put_client(&client(&format!("seed_{i}")))?;
                    tx.put_client_grant(&grant(i, apis.max(1)))?;
                }
                Ok(())
            })
            .unwrap();
    }
    eprintln!(
        "seeded {clients} clients, {apis} APIs, {clients} grants in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn median_p95(mut times: Vec<Duration>) -> (f64, f64) {
    times.sort();
    let p95 = times[(times.len() * 95 / 100).min(times.len() - 1)];
    (ms(times[times.len() / 2]), ms(p95))
}

/// What one change costs a node: the write (store only), then applying what it names, as
/// a node notified of it would; and a full rebuild, what every write cost before.
fn apply(dir: PathBuf, reps: usize) {
    let config = Config {
        data_dir: dir,
        ..Config::default()
    };
    let started = Instant::now();
    let (state, _) = build_state(config, "bench", Bootstrap::default()).unwrap();
    let start_ms = ms(started.elapsed());
    let catalog = state.catalog();
    let (clients, apis) = (catalog.clients.len(), catalog.apis.len());
    drop(catalog);
    let (mut writes, mut client_applies, mut api_applies, mut fulls) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for rep in 0..reps {
        let id = format!("bench_apply_{rep}");
        let started = Instant::now();
        state
            .store
            .transaction(|tx| tx.put_client(&client(&id)))
            .unwrap();
        writes.push(started.elapsed());
        let changes = state.store.changes().take();
        assert_eq!(changes, vec![Change::Client(id.clone())]);
        let started = Instant::now();
        state.apply(&changes).unwrap();
        client_applies.push(started.elapsed());
        assert!(state.catalog().clients.contains_key(&id));

        let mut changed = api(rep);
        changed.id = format!("api_bench_{rep}");
        changed.identifier = format!("https://bench.test/{rep}");
        state
            .store
            .transaction(|tx| tx.put_resource_server(&changed))
            .unwrap();
        let changes = state.store.changes().take();
        let started = Instant::now();
        state.apply(&changes).unwrap();
        api_applies.push(started.elapsed());
        if rep < 5 {
            let started = Instant::now();
            state.apply(&[Change::Everything]).unwrap();
            fulls.push(started.elapsed());
        }
    }
    // Leave the data directory as it was seeded.
    state
        .store
        .transaction(|tx| {
            for rep in 0..reps {
                tx.delete_client(&format!("bench_apply_{rep}"))?;
                tx.delete_resource_server(&format!("api_bench_{rep}"))?;
            }
            Ok(())
        })
        .unwrap();
    let (write_median, write_p95) = median_p95(writes);
    let (client_median, client_p95) = median_p95(client_applies);
    let (api_median, api_p95) = median_p95(api_applies);
    let (full_median, _) = median_p95(fulls);
    println!(
        "{}",
        json!({
            "clients": clients, "apis": apis, "start_ms": start_ms,
            "store_write_ms": [write_median, write_p95],
            "apply_client_ms": [client_median, client_p95],
            "apply_api_ms": [api_median, api_p95],
            "full_rebuild_ms": full_median,
        })
    );
}

/// A token request's lookup: a client by id, in a std map and in the catalog's map.
fn lookup(entries: usize) {
    let keys: Vec<String> = (0..entries).map(|i| format!("client_{i:08}")).collect();
    let std_map: std::collections::HashMap<String, Arc<Client>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new(client(k))))
        .collect();
    let imbl_map: imbl::HashMap<String, Arc<Client>> = keys
        .iter()
        .map(|k| (k.clone(), Arc::new(client(k))))
        .collect();
    // Probe in a scattered order, as requests would.
    let probes: Vec<&String> = (0..1_000_000usize)
        .map(|i| &keys[(i.wrapping_mul(2_654_435_761)) % entries])
        .collect();
    let time = |f: &dyn Fn(&str) -> bool| {
        let mut best = f64::MAX;
        for _ in 0..5 {
            let started = Instant::now();
            let mut found = 0usize;
            for key in &probes {
                found += usize::from(f(black_box(key)));
            }
            assert_eq!(found, probes.len());
            best = best.min(started.elapsed().as_secs_f64() * 1e9 / probes.len() as f64);
        }
        best
    };
    let std_ns = time(&|k| std_map.contains_key(k));
    let imbl_ns = time(&|k| imbl_map.contains_key(k));
    // One write: clone the map (what the next snapshot starts from) and insert.
    let started = Instant::now();
    let rounds = 1_000;
    for i in 0..rounds {
        let mut next = imbl_map.clone();
        next.insert(format!("new_{i}"), Arc::new(client("new")));
        black_box(&next);
    }
    let imbl_write_us = started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds);
    let started = Instant::now();
    for i in 0..5 {
        let mut next = std_map.clone();
        next.insert(format!("new_{i}"), Arc::new(client("new")));
        black_box(&next);
    }
    let std_write_us = started.elapsed().as_secs_f64() * 1e6 / 5.0;
    println!(
        "{}",
        json!({
            "entries": entries,
            "std_lookup_ns": std_ns, "imbl_lookup_ns": imbl_ns,
            "std_clone_insert_us": std_write_us, "imbl_clone_insert_us": imbl_write_us,
        })
    );
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).cloned().unwrap_or_default();
    let number = |i: usize| arg(i).parse::<usize>().expect("a number");
    match arg(0).as_str() {
        "seed" => seed(PathBuf::from(arg(1)), number(2), number(3)),
        "apply" => apply(PathBuf::from(arg(1)), number(2)),
        "lookup" => lookup(number(1)),
        _ => {
            eprintln!("usage: bench_catalog seed DIR CLIENTS APIS | apply DIR REPS | lookup N");
            std::process::exit(2);
        }
    }
}
