//! Issue 9, items 2 and 3, end to end against the real binary: secret values with quotes,
//! backslashes, newlines and control characters never reach a surface a rule's output goes
//! to, in any spelling, and the console cap bounds what one execution keeps whatever the
//! number of lines.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::TestServer;

const API: &str = "https://api.example.com/";

/// Each secret ends in a tag no other text has: a tag anywhere means a piece leaked.
const S: &str = "line one\nsays \"hi\" from C:\\dir-Zq81x";
const T: &str = "tab\there, escape \u{1b}[0m, bell \u{7}-Kp27y";
const TAGS: [&str; 3] = ["Zq81x", "Kp27y", "Wx93z"];

/// Every control character, a quote and a backslash: what `JSON.stringify` escapes.
fn all_escapes() -> String {
    let mut value: String = (1u8..0x20).map(char::from).collect();
    value.push_str("\"\\-Wx93z");
    value
}

/// The bounds of one entry (`tokenhost::rules::max_kept_output_bytes` at the default
/// 4 KiB console cap): its rule output (`logs` and `cause` as JSON), and the whole entry
/// with its ids, names and times.
const MAX_OUTPUT_BYTES: usize = 5_952;
const MAX_ENTRY_BYTES: usize = MAX_OUTPUT_BYTES + 1_024;

const LEAKY_RULE: &str = r#"module.exports = function (client, scope, audience, context, cb) {
  var s = context.secrets;
  console.log(s);
  console.log(JSON.stringify(s.ALL));
  console.log('wrapped', JSON.stringify({s: JSON.stringify(s)}));
  console.log('raw ' + s.S + ' and ' + s.T);
  console.warn(new Error('logged ' + s.S));
  var kind = client.metadata.kind;
  if (kind === 'deny') return cb(new Error(s.S));
  if (kind === 'scope') return cb(new InvalidScopeError('scope ' + JSON.stringify(s.S)));
  if (kind === 'server') return cb(new ServerError('upstream said ' + s.T));
  if (kind === 'issue') {
    var token = {scope: scope, 'https://t.dev/k': 'v'};
    token['not-namespaced ' + s.T] = 1;
    return cb(null, token);
  }
  throw new TypeError('bad ' + s.S);
};"#;

/// The spellings a value may take on its way out: raw, JSON-escaped once and twice, and
/// Rust's `{:?}` (the server's text log).
fn spellings(value: &str) -> Vec<String> {
    let escape = |v: &str| {
        let quoted = serde_json::to_string(v).unwrap();
        quoted[1..quoted.len() - 1].to_string()
    };
    let once = escape(value);
    let twice = escape(&once);
    let debug = format!("{value:?}");
    vec![
        value.to_string(),
        once,
        twice,
        debug[1..debug.len() - 1].to_string(),
    ]
}

fn assert_hidden(surface: &str, text: &str) {
    for value in [S.to_string(), T.to_string(), all_escapes()] {
        for spelling in spellings(&value) {
            assert!(
                !text.contains(&spelling),
                "{surface} holds the secret spelled {spelling:?}:\n{text}"
            );
        }
    }
    for tag in TAGS {
        assert!(
            !text.contains(tag),
            "{surface} holds part of a secret ({tag}):\n{text}"
        );
    }
}

async fn logs(server: &TestServer, admin: &str, query: &str) -> (Vec<Value>, usize) {
    let response = server
        .http
        .get(server.url(&format!("/api/v2/logs{query}")))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    let entries: Value = serde_json::from_str(&text).unwrap();
    (entries.as_array().unwrap().clone(), text.len())
}

/// Entries are written in batches off the request path: wait for them.
async fn wait_for_logs(server: &TestServer, admin: &str, count: usize) -> (Vec<Value>, usize) {
    let started = Instant::now();
    loop {
        let (entries, size) = logs(server, admin, "?limit=1000").await;
        if entries.len() >= count || started.elapsed() > Duration::from_secs(10) {
            return (entries, size);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Creates a rule with `secrets` and clients with `metadata.kind` each of `kinds`.
async fn rule_and_clients(
    server: &TestServer,
    admin: &str,
    script: &str,
    secrets: Value,
    kinds: &[&str],
) -> (String, Vec<(String, String)>) {
    let rule = server.add_rule(admin, "under test", script).await;
    let (status, body) = server
        .api(
            admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(secrets),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut clients = Vec::new();
    for kind in kinds {
        clients.push(
            server
                .setup_client(admin, API, "ES256", &["test"], json!({"kind": kind}))
                .await,
        );
    }
    (rule, clients)
}

#[tokio::test]
async fn secrets_with_quotes_and_newlines_reach_no_log_surface_in_any_spelling() {
    // The debug level too, so that the server's per-execution log lines are checked.
    let mut server = TestServer::start(&[("TOKENHOST_LOG", "info,tokenhost=debug")]);
    let admin = server.admin_token().await;
    let kinds = ["throw", "deny", "scope", "server", "issue"];
    let secrets = json!({"S": S, "T": T, "ALL": all_escapes()});
    let (rule, clients) = rule_and_clients(&server, &admin, LEAKY_RULE, secrets, &kinds).await;

    let mut stream = server
        .http
        .get(server.url("/api/v2/logs/stream"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), StatusCode::OK);

    // What clients are told.
    let expected = [
        (StatusCode::INTERNAL_SERVER_ERROR, "server_error", None),
        (StatusCode::FORBIDDEN, "access_denied", Some("[redacted]")),
        (
            StatusCode::BAD_REQUEST,
            "invalid_scope",
            Some("scope \"[redacted]\""),
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            Some("upstream said [redacted]"),
        ),
    ];
    for ((id, secret), (status, code, description)) in clients.iter().zip(expected) {
        let (got, body, _) = server.client_token(id, secret, API).await;
        assert_eq!(
            (got, body["error"].as_str()),
            (status, Some(code)),
            "{body}"
        );
        if let Some(description) = description {
            assert_eq!(body["error_description"], description, "{body}");
        }
        assert_hidden("the token endpoint's answer", &body.to_string());
    }
    let (id, secret) = &clients[4];
    let (status, body, _) = server.client_token(id, secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The stored entries.
    let (entries, _) = wait_for_logs(&server, &admin, kinds.len()).await;
    assert_eq!(entries.len(), kinds.len(), "{entries:?}");
    let listed = serde_json::to_string(&entries).unwrap();
    assert_hidden("GET /api/v2/logs", &listed);
    let issued = &entries[0];
    assert_eq!(issued["outcome"], "issued");
    assert_eq!(issued["truncated"], false);
    let lines: Vec<&str> = issued["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["message"].as_str().unwrap())
        .collect();
    // QuickJS's JSON.stringify escapes exactly as the redactor expects: nothing is left
    // around the hidden values.
    assert_eq!(
        lines[..4],
        [
            r#"{"ALL":"[redacted]","S":"[redacted]","T":"[redacted]"}"#,
            r#""[redacted]""#,
            r#"wrapped {"s":"{\"ALL\":\"[redacted]\",\"S\":\"[redacted]\",\"T\":\"[redacted]\"}"}"#,
            "raw [redacted] and [redacted]",
        ],
        "{issued}"
    );
    assert!(lines[4].starts_with("Error: logged [redacted]"), "{issued}");
    assert!(
        lines[5].contains("claim \"not-namespaced [redacted]\" dropped"),
        "{issued}"
    );
    let thrown = &entries[kinds.len() - 1];
    assert_eq!(thrown["outcome"], "failed");
    assert_eq!(
        thrown["cause"], "the rule threw TypeError: bad [redacted]",
        "{thrown}"
    );

    // The live stream.
    let mut received = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        // Complete lines only: the last one may still be arriving.
        let events = |text: &str| {
            let complete = &text[..text.rfind('\n').map_or(0, |end| end + 1)];
            complete.lines().filter(|l| l.starts_with("data:")).count()
        };
        while events(&received) < kinds.len() {
            let chunk = stream.chunk().await.unwrap().expect("stream ended");
            received.push_str(&String::from_utf8_lossy(&chunk));
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not every entry was streamed within 10 s:\n{received}"));
    assert!(received.contains("[redacted]"), "{received}");
    assert_hidden("the SSE stream", &received);

    // The test endpoint's answer (its token is what the token endpoint would issue, and
    // this one holds no secret).
    for kind in ["throw", "deny", "issue"] {
        let event = json!({"event": {"client": {"metadata": {"kind": kind}}, "scope": ["test"]}});
        let (status, body) = server
            .api(
                &admin,
                Method::POST,
                &format!("/rules/{rule}/test"),
                Some(event),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.to_string().contains("[redacted]"), "{body}");
        assert_hidden("the test endpoint's answer", &body.to_string());
        if kind == "issue" {
            assert_eq!(body["token"]["claims"], json!({"https://t.dev/k": "v"}));
        }
    }

    // The server's own log.
    let server_log = server.stop_and_logs();
    assert!(server_log.contains("rule failed"), "{server_log}");
    assert!(server_log.contains("rule executed"), "{server_log}");
    assert_hidden("the server's log", &server_log);
}

#[tokio::test]
async fn a_secret_across_the_console_cap_leaves_no_prefix() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    // The secret starts `n` bytes into a line: across the 4 KiB cap, whichever way the
    // cap's bytes are counted.
    let script = "module.exports = function (client, scope, audience, context, cb) {
  console.log('x'.repeat(Number(client.metadata.kind)) + context.secrets.K + ' and after');
  cb(null, {scope: scope});
};";
    let secret = "Zq81x-the-rest-of-the-secret-value";
    let offsets = ["4050", "4070", "4080", "4090"];
    let (_, clients) =
        rule_and_clients(&server, &admin, script, json!({"K": secret}), &offsets).await;
    for (id, client_secret) in &clients {
        let (status, body, _) = server.client_token(id, client_secret, API).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (entries, _) = wait_for_logs(&server, &admin, offsets.len()).await;
    assert_eq!(entries.len(), offsets.len(), "{entries:?}");
    for entry in &entries {
        let message = entry["logs"][0]["message"].as_str().unwrap();
        assert!(message.starts_with("xxxx"), "{entry}");
        // Not even the first characters of the secret.
        assert!(!message.contains("Zq8"), "{message}");
        assert!(message.contains("truncated"), "{entry}");
        assert_eq!(entry["truncated"], true, "{entry}");
    }
}

#[tokio::test]
async fn the_console_cap_bounds_an_entry_whatever_the_number_of_lines() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let script = "module.exports = function (client, scope, audience, context, cb) {
  if (client.metadata.kind === 'empty') {
    for (var i = 0; i < 20000; i++) console.log('');
    return cb(null, {scope: scope});
  }
  var n = 0;
  while (true) console.log('looping ' + n++ + ' \"quoted\" \\u0001');
};";
    let kinds = ["empty", "loop"];
    let (_, clients) = rule_and_clients(&server, &admin, script, json!({}), &kinds).await;
    let rounds = 6;
    for _ in 0..rounds {
        for (id, secret) in &clients {
            server.client_token(id, secret, API).await;
        }
    }
    let count = rounds * kinds.len();
    let (entries, answer_bytes) = wait_for_logs(&server, &admin, count).await;
    assert_eq!(entries.len(), count);
    for entry in &entries {
        let lines = entry["logs"].as_array().unwrap();
        assert!(lines.len() <= 4096 / 32 + 2, "{} lines", lines.len());
        let output = serde_json::to_string(&entry["logs"]).unwrap().len()
            + entry["cause"]
                .as_str()
                .map_or(0, |c| json!(c).to_string().len());
        assert!(output <= MAX_OUTPUT_BYTES, "{output} bytes of output");
        let whole = entry.to_string().len();
        assert!(whole <= MAX_ENTRY_BYTES, "{whole} bytes");
        assert_eq!(entry["truncated"], true, "{entry}");
    }
    // The listing is bounded by its entries: `limit` times the entry bound at most.
    assert!(
        answer_bytes <= count * MAX_ENTRY_BYTES,
        "{answer_bytes} bytes for {count} entries"
    );
}

#[tokio::test]
async fn a_scope_a_rule_added_is_logged_redacted_when_dropped() {
    let mut server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let strict = "https://strict.example.com/";
    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": strict, "scopes": [{"value": "test"}],
                "allow_rule_added_scopes": false})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let script = "module.exports = function (client, scope, audience, context, cb) {
  cb(null, {scope: scope.concat(['extra:' + context.secrets.K])});
};";
    // A secret a scope-token may hold, so that the scope is a valid one to drop.
    let secret = "sk_live_Wx93z_scope";
    let (_, _) = rule_and_clients(&server, &admin, script, json!({"K": secret}), &[]).await;
    let (id, client_secret) = server
        .setup_client(&admin, strict, "ES256", &["test"], json!({}))
        .await;
    let (status, body, _) = server.client_token(&id, &client_secret, strict).await;
    assert_eq!(
        (status, body["scope"].as_str()),
        (StatusCode::OK, Some("test")),
        "{body}"
    );
    let server_log = server.stop_and_logs();
    assert!(
        server_log.contains("scopes added by rules dropped"),
        "{server_log}"
    );
    assert!(server_log.contains("extra:[redacted]"), "{server_log}");
    assert!(!server_log.contains("Wx93z"), "{server_log}");
}
