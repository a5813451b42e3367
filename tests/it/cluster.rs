//! Several real `tokenhost serve` processes on one real PostgreSQL database, as a cluster
//! runs: changes on one node apply on all, keys rotate without a verification gap, a node
//! killed under load costs the others nothing, a new node on an empty data directory serves
//! everything, nodes started at once set up once, a wrong master key is refused.

use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::pg::Database;
use tests::server::{first_event, TestServer, ADMIN_ID, ISSUER};
use tests::tokenhost_bin;

const MASTER_KEY: &str = "q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq80=";
const OTHER_MASTER_KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const API: &str = "https://cluster.example/api";

fn node(db: &Database) -> TestServer {
    node_with(db, &[])
}

fn node_with(db: &Database, extra: &[(&str, &str)]) -> TestServer {
    let mut env = vec![
        ("TOKENHOST_DATABASE_URL", db.url.as_str()),
        ("TOKENHOST_MASTER_KEY", MASTER_KEY),
        // The tests poll a node for a client it may not know yet: those failed
        // authentications must not trip the slowdown (10, then one every 6 s).
        ("TOKENHOST_AUTH_FAILURE_BURST", "1000000000"),
    ];
    env.extend_from_slice(extra);
    TestServer::start(&env)
}

/// Starts `n` nodes at the same moment.
fn nodes_at_once(db: &Database, n: usize) -> Vec<TestServer> {
    nodes_at_once_with(db, n, &[])
}

fn nodes_at_once_with(db: &Database, n: usize, extra: &[(&str, &str)]) -> Vec<TestServer> {
    std::thread::scope(|scope| {
        let starting: Vec<_> = (0..n)
            .map(|_| scope.spawn(|| node_with(db, extra)))
            .collect();
        starting.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

/// For the tests that send one client's tokens as fast as they can: no rate limit in the
/// way (the limiter still runs).
const UNLIMITED: &[(&str, &str)] = &[
    ("TOKENHOST_RATE_LIMIT_PER_SECOND", "1000000000"),
    ("TOKENHOST_RATE_LIMIT_BURST", "1000000000"),
];

/// Polls `check` every 10 ms until it returns `Some`, for at most `limit`; returns the value
/// and how long it took.
async fn within<T, F, Fut>(limit: Duration, mut check: F) -> Option<(T, Duration)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(value) = check().await {
            return Some((value, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    None
}

/// A token from `server`, or its status and body.
async fn token(server: &TestServer, id: &str, secret: &str) -> Result<String, (StatusCode, Value)> {
    let (status, body, _) = server.client_token(id, secret, API).await;
    match body["access_token"].as_str() {
        Some(token) if status == StatusCode::OK => Ok(token.to_string()),
        _ => Err((status, body)),
    }
}

/// The claims of `token` if it verifies against `jwks` (jsonwebtoken, as an API would).
fn verify(jwks: &JwkSet, token: &str) -> Result<Value, String> {
    let header = decode_header(token).map_err(|e| e.to_string())?;
    let kid = header.kid.ok_or("no kid")?;
    let jwk = jwks
        .find(&kid)
        .ok_or(format!("kid {kid} not in the JWKS"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(header.alg);
    validation.set_audience(&[API]);
    validation.set_issuer(&[ISSUER]);
    decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| e.to_string())
}

async fn jwks(server: &TestServer) -> JwkSet {
    serde_json::from_value(server.get_json("/.well-known/jwks.json").await).unwrap()
}

/// A rule that adds claim `version` = `value` (and a secret's value, if it has one).
fn versioned_rule(value: &str) -> String {
    format!(
        "module.exports = function(client, scope, audience, context, cb) {{
           cb(null, {{ scope: scope, 'https://cluster.example/version': '{value}',
                      'https://cluster.example/secret': (context.secrets.COLOR || 'none') }});
         }};"
    )
}

/// How long until `server` issues `id` a token whose claim `name` is `expected`.
async fn until_claim(
    server: &TestServer,
    id: &str,
    secret: &str,
    name: &str,
    expected: &str,
) -> Duration {
    let jwks = jwks(server).await;
    let (_, took) = within(Duration::from_secs(5), || async {
        let token = token(server, id, secret).await.ok()?;
        let claims = verify(&jwks, &token).ok()?;
        (claims[name] == expected).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("claim {name} never became {expected:?} within 5 s"));
    took
}

#[tokio::test]
async fn a_change_on_one_node_applies_on_the_others_within_a_second() {
    let db = Database::fresh();
    let nodes = nodes_at_once(&db, 3);
    let (a, c) = (&nodes[0], &nodes[2]);
    let admin = a.admin_token().await;
    let (id, secret) = a
        .setup_client(&admin, API, "RS256", &["read"], json!({}))
        .await;
    let (_, took) = within(Duration::from_secs(5), || async {
        token(c, &id, &secret).await.ok()
    })
    .await
    .expect("the client made on A never got a token from C");
    println!("client created on A: issued by C after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");

    let claim = "https://cluster.example/version";
    let rule = a.add_rule(&admin, "versioned", &versioned_rule("v1")).await;
    let mut timings = vec![(
        "rule created",
        until_claim(c, &id, &secret, claim, "v1").await,
    )];
    let (status, body) = a
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": versioned_rule("v2")})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    timings.push((
        "rule edited",
        until_claim(c, &id, &secret, claim, "v2").await,
    ));
    let (status, body) = a
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({"COLOR": "teal"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret_claim = "https://cluster.example/secret";
    timings.push((
        "rule secret set",
        until_claim(c, &id, &secret, secret_claim, "teal").await,
    ));
    let (status, body) = a
        .api(
            &admin,
            Method::POST,
            &format!("/rules/{rule}/versions/1/deploy"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "deploying version 1: {body}");
    timings.push((
        "version 1 deployed",
        until_claim(c, &id, &secret, claim, "v1").await,
    ));
    for (what, took) in &timings {
        println!("{what} on A: applied by C after {took:?}");
        assert!(*took < Duration::from_secs(1), "{what}: {took:?}");
    }

    let (status, _) = a
        .api(&admin, Method::DELETE, &format!("/clients/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (_, took) = within(Duration::from_secs(5), || async {
        token(c, &id, &secret).await.err()
    })
    .await
    .expect("C still issued tokens to the client deleted on A");
    println!("client deleted on A: refused by C after {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
}

#[tokio::test]
async fn nodes_started_at_once_set_up_one_schema_one_bootstrap_client_and_one_set_of_keys() {
    let db = Database::fresh();
    let nodes = nodes_at_once(&db, 3);
    let admin = nodes[0].admin_token().await;
    let (status, clients) = nodes[1].api(&admin, Method::GET, "/clients", None).await;
    assert_eq!(status, StatusCode::OK, "{clients}");
    let ids: Vec<&str> = clients
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["client_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [ADMIN_ID]);
    let (_, grants) = nodes[2]
        .api(&admin, Method::GET, "/client-grants", None)
        .await;
    assert_eq!(grants.as_array().unwrap().len(), 1, "{grants}");
    let (_, keys) = nodes[2]
        .api(&admin, Method::GET, "/keys/signing", None)
        .await;
    let keys = keys.as_array().unwrap();
    for alg in ["RS256", "ES256"] {
        for state in ["current", "next"] {
            let n = keys
                .iter()
                .filter(|k| k["alg"] == alg && k["state"] == state)
                .count();
            assert_eq!(n, 1, "{alg} {state} keys: {keys:?}");
        }
    }
    let published: Vec<Value> =
        futures_join(nodes.iter().map(|n| n.get_json("/.well-known/jwks.json"))).await;
    assert!(published.windows(2).all(|w| w[0] == w[1]), "{published:?}");
    let migrations = tests::pg::query_text(&db.url, "SELECT count(*)::text FROM schema_migrations");
    assert_ne!(migrations, "0");
}

async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut out = Vec::new();
    for future in futures {
        out.push(future.await);
    }
    out
}

#[tokio::test]
async fn a_rotation_on_one_node_leaves_no_verification_gap_on_any() {
    let db = Database::fresh();
    let nodes = Arc::new(nodes_at_once_with(&db, 3, UNLIMITED));
    let admin = nodes[0].admin_token().await;
    let (id, secret) = nodes[0]
        .setup_client(&admin, API, "RS256", &["read"], json!({}))
        .await;
    for n in nodes.iter() {
        within(Duration::from_secs(5), || async {
            token(n, &id, &secret).await.ok()
        })
        .await
        .expect("client not on every node");
    }
    let first_kid = {
        let token = token(&nodes[0], &id, &secret).await.unwrap();
        decode_header(&token).unwrap().kid.unwrap()
    };

    // Tokens from every node, each checked against every node's JWKS, while A rotates
    // twice (the second rotation must wait for the first's new key to be published).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let checker = {
        let (nodes, stop, id, secret) = (nodes.clone(), stop.clone(), id.clone(), secret.clone());
        tokio::spawn(async move {
            let (mut checked, mut failures, mut kids) = (0usize, Vec::new(), Vec::new());
            while !stop.load(Ordering::Relaxed) {
                for issuer in nodes.iter() {
                    let token = token(issuer, &id, &secret).await.unwrap();
                    let kid = decode_header(&token).unwrap().kid.unwrap();
                    if !kids.contains(&kid) {
                        kids.push(kid);
                    }
                    for verifier in nodes.iter() {
                        let set = jwks(verifier).await;
                        checked += 1;
                        if let Err(e) = verify(&set, &token) {
                            failures.push(format!("{} -> {}: {e}", issuer.base, verifier.base));
                        }
                    }
                }
            }
            (checked, failures, kids)
        })
    };
    let started = Instant::now();
    for _ in 0..2 {
        let (status, body) = nodes[0]
            .api(
                &admin,
                Method::POST,
                "/keys/signing/rotate",
                Some(json!({"alg": "RS256"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let rotations = started.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let (checked, failures, kids) = checker.await.unwrap();
    println!("two rotations took {rotations:?}; {checked} verifications, kids seen {kids:?}");
    assert!(failures.is_empty(), "verification gap: {failures:?}");
    assert!(checked > 50, "only {checked} verifications");
    assert!(kids.len() >= 3 && kids[0] == first_kid, "{kids:?}");
    let last = token(&nodes[2], &id, &secret).await.unwrap();
    assert_eq!(
        decode_header(&last).unwrap().kid.as_ref(),
        kids.last(),
        "C does not sign with the newest key"
    );
}

#[tokio::test]
async fn a_node_killed_under_load_costs_no_token_on_the_others() {
    let db = Database::fresh();
    let mut nodes = nodes_at_once_with(&db, 3, UNLIMITED);
    let admin = nodes[0].admin_token().await;
    let (id, secret) = nodes[0]
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    for n in &nodes {
        within(Duration::from_secs(5), || async {
            token(n, &id, &secret).await.ok()
        })
        .await
        .expect("client not on every node");
    }
    let survivors = Arc::new(nodes.split_off(1));
    let (issued, failed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let workers: Vec<_> = (0..4)
        .map(|w| {
            let (survivors, issued, failed, stop) = (
                survivors.clone(),
                issued.clone(),
                failed.clone(),
                stop.clone(),
            );
            let (id, secret) = (id.clone(), secret.clone());
            tokio::spawn(async move {
                let node = &survivors[w % survivors.len()];
                while !stop.load(Ordering::Relaxed) {
                    match token(node, &id, &secret).await {
                        Ok(_) => issued.fetch_add(1, Ordering::Relaxed),
                        Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before_kill = issued.load(Ordering::Relaxed);
    nodes[0].stop_and_logs(); // SIGKILL
    tokio::time::sleep(Duration::from_secs(2)).await;
    // The survivors still follow each other's changes.
    let admin_b = survivors[0].admin_token().await;
    let (late, late_secret) = survivors[0]
        .setup_client(&admin_b, API, "ES256", &["read"], json!({}))
        .await;
    within(Duration::from_secs(2), || async {
        token(&survivors[1], &late, &late_secret).await.ok()
    })
    .await
    .expect("a change on B after A died never reached C");
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await.unwrap();
    }
    let (issued, failed) = (
        issued.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed),
    );
    println!("tokens issued by B and C: {before_kill} before A was killed, {issued} in all; {failed} failed");
    assert_eq!(failed, 0);
    assert!(issued > before_kill, "no token after the kill");
}

#[tokio::test]
async fn a_node_on_an_empty_data_directory_serves_the_current_rules_and_secrets() {
    let db = Database::fresh();
    let a = node(&db);
    let admin = a.admin_token().await;
    let (id, secret) = a
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    let rule = a.add_rule(&admin, "versioned", &versioned_rule("v7")).await;
    let (status, body) = a
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({"COLOR": "amber"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let mut d = node(&db);
    assert!(std::fs::read_dir(&d.data_dir).is_ok());
    let token = token(&d, &id, &secret).await.unwrap();
    let claims = verify(&jwks(&d).await, &token).unwrap();
    assert_eq!(claims["https://cluster.example/version"], "v7", "{claims}");
    assert_eq!(
        claims["https://cluster.example/secret"], "amber",
        "{claims}"
    );
    // Verified by A's JWKS too: one set of keys.
    verify(&jwks(&a).await, &token).unwrap();
    let logs = d.stop_and_logs();
    assert!(
        !logs.contains("recompiling"),
        "the new node compiled the rule instead of loading the stored artifact:\n{logs}"
    );
}

#[tokio::test]
async fn a_node_with_another_master_key_refuses_to_start() {
    let db = Database::fresh();
    let _a = node(&db);
    let dir = std::env::temp_dir().join(format!("tokenhost-e2e-wrong-key-{}", std::process::id()));
    let output = Command::new(tokenhost_bin())
        .arg("serve")
        .env("TOKENHOST_LISTEN", "127.0.0.1:0")
        .env("TOKENHOST_DATA_DIR", &dir)
        .env("TOKENHOST_DATABASE_URL", &db.url)
        .env("TOKENHOST_MASTER_KEY", OTHER_MASTER_KEY)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "started with another master key");
    assert!(
        stderr.contains("master key") && stderr.contains("same master key"),
        "{stderr}"
    );
    assert!(!stderr.contains(OTHER_MASTER_KEY) && !stderr.contains(MASTER_KEY));

    let output = Command::new(tokenhost_bin())
        .arg("serve")
        .env("TOKENHOST_DATA_DIR", &dir)
        .env("TOKENHOST_DATABASE_URL", &db.url)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("TOKENHOST_MASTER_KEY"), "{stderr}");
}

#[tokio::test]
async fn logs_and_audit_of_every_node_are_listed_and_streamed_on_any() {
    let db = Database::fresh();
    let nodes = nodes_at_once(&db, 2);
    let (a, b) = (&nodes[0], &nodes[1]);
    let admin = a.admin_token().await;
    let (id, secret) = a
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    a.add_rule(&admin, "versioned", &versioned_rule("v1")).await;
    within(Duration::from_secs(5), || async {
        token(b, &id, &secret).await.ok()
    })
    .await
    .expect("B never knew the client");

    let mut stream = b
        .http
        .get(b.url("/api/v2/logs/stream"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    // The relay starts from when a stream opens: let it see this one.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let sent = Instant::now();
    token(a, &id, &secret).await.unwrap();
    let (entry, _) = first_event(&mut stream, Duration::from_secs(5)).await;
    let took = sent.elapsed();
    println!("an execution on A reached B's live stream after {took:?}");
    assert_eq!(entry["client_id"], id.as_str());
    assert!(took < Duration::from_millis(1_500), "{took:?}");

    let (status, listed) = b.api(&admin, Method::GET, "/logs", None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert!(
        listed
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["client_id"] == id.as_str()),
        "{listed}"
    );
    let (status, audit) = b
        .api(
            &admin,
            Method::GET,
            &format!("/audit?target_type=client&target_id={id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{audit}");
    assert!(
        !audit.as_array().unwrap().is_empty(),
        "A's change not in B's audit: {audit}"
    );
}

#[tokio::test]
async fn live_nodes_share_a_clients_rate_limit() {
    let db = Database::fresh();
    let limits = [
        ("TOKENHOST_RATE_LIMIT_PER_SECOND", "1"),
        ("TOKENHOST_RATE_LIMIT_BURST", "9"),
    ];
    let nodes = nodes_at_once_with(&db, 3, &limits);
    let admin = nodes[0].admin_token().await;
    let (id, secret) = nodes[0]
        .setup_client(&admin, API, "ES256", &["read"], json!({}))
        .await;
    // Every node has counted the three (heartbeats every 2 s).
    tokio::time::sleep(Duration::from_secs(5)).await;
    let b = &nodes[1];
    let mut statuses = Vec::new();
    for _ in 0..4 {
        let (status, _, _) = b.client_token(&id, &secret, API).await;
        statuses.push(status.as_u16());
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429],
        "a third of a burst of 9 per node"
    );
}

#[tokio::test]
async fn two_nodes_cannot_each_remove_one_of_the_last_two_administrators() {
    let db = Database::fresh();
    let nodes = nodes_at_once(&db, 2);
    let token = nodes[0].admin_token().await;
    let (_, grants) = nodes[0]
        .api(
            &token,
            Method::GET,
            &format!("/client-grants?client_id={ADMIN_ID}"),
            None,
        )
        .await;
    let grant = &grants[0];
    let scopes: Vec<&str> = grant["scope"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut survivor = (grant["id"].as_str().unwrap().to_string(), token);
    // Each round, two administrators, and each node removes one at the same moment: each
    // node alone sees the other administrator remain, so without a lock across nodes both
    // would commit and no one could administer again.
    for round in 0..8 {
        let other = nodes[round % 2]
            .management_client_with(&survivor.1, &scopes)
            .await;
        // Both nodes know both administrators before the race starts.
        for node in &nodes {
            let known = within(Duration::from_secs(5), || async {
                let (status, _) = node.api(&other.1, Method::GET, "/clients", None).await;
                (status == StatusCode::OK).then_some(())
            });
            assert!(
                known.await.is_some(),
                "round {round}: the new administrator"
            );
        }
        let (survivor_path, other_path) = (
            format!("/client-grants/{}", survivor.0),
            format!("/client-grants/{}", other.0),
        );
        let ((first, first_body), (second, second_body)) = tokio::join!(
            nodes[0].api(&survivor.1, Method::DELETE, &survivor_path, None),
            nodes[1].api(&other.1, Method::DELETE, &other_path, None),
        );
        let mut statuses = [first, second];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::NO_CONTENT, StatusCode::CONFLICT],
            "round {round}: {first} {first_body}, {second} {second_body}"
        );
        if first == StatusCode::NO_CONTENT {
            survivor = other;
        }
    }
    let (status, body) = nodes[1]
        .api(&survivor.1, Method::GET, "/clients", None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn two_nodes_creating_one_given_client_id_make_one_client() {
    let db = Database::fresh();
    let nodes = nodes_at_once(&db, 2);
    let admin = nodes[0].admin_token().await;
    for round in 0..5 {
        let id = format!("moved-service-{round}");
        let body = |n: usize| {
            json!({"name": "moved", "client_id": id,
                   "client_secret": format!("secret-of-node-{n}-0123456789abcdefghijklmnop")})
        };
        let ((first, first_body), (second, second_body)) = tokio::join!(
            nodes[0].api(&admin, Method::POST, "/clients", Some(body(0))),
            nodes[1].api(&admin, Method::POST, "/clients", Some(body(1))),
        );
        let mut statuses = [first, second];
        statuses.sort();
        assert_eq!(
            statuses,
            [StatusCode::CREATED, StatusCode::CONFLICT],
            "round {round}: {first} {first_body}, {second} {second_body}"
        );
        // The secret that works is the one whose creation was answered 201.
        let winner = usize::from(first != StatusCode::CREATED);
        let secret = body(winner)["client_secret"].as_str().unwrap().to_string();
        let audience = nodes[winner].management_audience();
        let (_, refused, _) = nodes[winner].client_token(&id, &secret, &audience).await;
        assert_eq!(
            refused["error"], "access_denied",
            "no grant, but a known secret"
        );
        let other = body(1 - winner)["client_secret"]
            .as_str()
            .unwrap()
            .to_string();
        let (_, unknown, _) = nodes[winner].client_token(&id, &other, &audience).await;
        assert_eq!(
            unknown["error"], "invalid_client",
            "the refused creation's secret"
        );
    }
}
