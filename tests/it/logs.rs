//! Rule execution logs end to end: listed, streamed live over SSE to a real HTTP client and
//! to `tokenhost logs --follow`, and never carrying a secret's value.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{first_event, TestServer, ADMIN_ID, ADMIN_SECRET};
use tests::tokenhost_bin;

const API: &str = "https://api.example.com/";
const SECRET: &str = "sk_live_do_not_leak_4242";

const NOISY_RULE: &str = "module.exports = function (client, scope, audience, context, cb) {
  console.log('calling upstream with', context.secrets.API_KEY);
  if (client.metadata.kind === 'broken') { throw new TypeError('upstream refused key ' + context.secrets.API_KEY); }
  cb(null, {scope: scope, 'https://t.dev/ok': true});
};";

async fn logs(server: &TestServer, admin: &str, query: &str) -> Vec<Value> {
    let (status, body) = server
        .api(admin, Method::GET, &format!("/logs{query}"), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

#[tokio::test]
async fn executions_are_listed_filtered_and_redacted() {
    let mut server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (good, good_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "good"}))
        .await;
    let (broken, broken_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "broken"}))
        .await;
    let rule = server.add_rule(&admin, "noisy", NOISY_RULE).await;
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({"API_KEY": SECRET})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    for (id, secret) in [(&good, &good_secret), (&broken, &broken_secret)] {
        server.client_token(id, secret, API).await;
    }
    let entries = server.logs_when(&admin, "", 2).await;
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (newest, oldest) = (&entries[0], &entries[1]);
    assert_eq!(newest["outcome"], "failed");
    assert_eq!(newest["client_id"], broken.as_str());
    assert!(
        newest["cause"].as_str().unwrap().contains("TypeError"),
        "{newest}"
    );
    assert_eq!(oldest["outcome"], "issued");
    assert_eq!(oldest["rule_id"], rule.as_str());
    assert_eq!(oldest["audience"], API);
    assert!(oldest["fuel_used"].as_u64().unwrap() > 0);
    assert!(oldest["request_id"].as_str().is_some_and(|r| !r.is_empty()));
    assert_eq!(
        oldest["logs"][0]["message"],
        "calling upstream with [redacted]"
    );

    let failed = logs(&server, &admin, "?outcome=failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(
        logs(&server, &admin, &format!("?client_id={good}"))
            .await
            .len(),
        1
    );
    assert_eq!(logs(&server, &admin, "?limit=1").await.len(), 1);
    assert_eq!(
        logs(&server, &admin, "?since=2999-01-01T00:00:00Z")
            .await
            .len(),
        0
    );
    let (status, _) = server
        .api(&admin, Method::GET, "/logs?since=yesterday", None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);

    // The secret appears nowhere: not in the API's answers, not in the server's own log.
    let everything = serde_json::to_string(&logs(&server, &admin, "").await).unwrap();
    assert!(!everything.contains(SECRET));
    let server_log = server.stop_and_logs();
    assert!(server_log.contains("rule failed"), "{server_log}");
    assert!(
        !server_log.contains(SECRET),
        "the server's log leaked the secret:\n{server_log}"
    );
}

#[tokio::test]
async fn the_stream_delivers_executions_live() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "good"}))
        .await;
    let rule = server.add_rule(&admin, "noisy", NOISY_RULE).await;
    server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({"API_KEY": SECRET})),
        )
        .await;

    let mut stream = server
        .http
        .get(server.url("/api/v2/logs/stream"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);
    assert!(stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    server.client_token(&id, &secret, API).await;
    let (entry, received) = first_event(&mut stream, Duration::from_secs(10)).await;
    assert_eq!(entry["rule_name"], "noisy");
    assert_eq!(entry["outcome"], "issued");
    assert!(!received.contains(SECRET));
}

#[tokio::test]
async fn tokenhost_logs_follow_prints_a_live_execution() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "good"}))
        .await;
    server.add_rule(&admin, "followed", NOISY_RULE).await;

    let mut follow = Command::new(tokenhost_bin())
        .args([
            "logs",
            "--follow",
            "--url",
            &server.base,
            "--client-id",
            ADMIN_ID,
            "--client-secret",
            ADMIN_SECRET,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = follow.stderr.take().unwrap();
    let mut stderr_lines = BufReader::new(stderr).lines();
    let ready = stderr_lines.next().and_then(Result::ok).unwrap_or_default();
    assert!(ready.contains("following"), "{ready}");
    server.client_token(&id, &secret, API).await;
    let stdout = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let first = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("tokenhost logs --follow printed nothing");
    let console = rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default();
    let _ = follow.kill();
    let _ = follow.wait();
    assert!(first.contains("issued"), "{first}");
    assert!(first.contains("rule=followed"), "{first}");
    assert!(first.contains(&format!("client={id}")), "{first}");
    assert!(console.contains("calling upstream with"), "{console}");
}

#[tokio::test]
async fn executions_just_before_a_graceful_shutdown_are_kept() {
    let mut server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "good"}))
        .await;
    server.add_rule(&admin, "last words", NOISY_RULE).await;
    // Entries wait up to 50 ms in the recorder for their batch; SIGTERM comes sooner.
    for _ in 0..3 {
        server.client_token(&id, &secret, API).await;
    }
    server.terminate_and_restart();
    let admin = server.admin_token().await;
    let entries = logs(&server, &admin, &format!("?client_id={id}")).await;
    assert_eq!(entries.len(), 3, "{entries:?}");
    assert!(
        entries.iter().all(|e| e["outcome"] == "issued"),
        "{entries:?}"
    );
}
