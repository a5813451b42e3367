//! The token endpoint against strangers and odd rules (issue 9): a scope flood refused by
//! its bound before any work that grows with it, a known and an unknown client_id answered
//! alike through a whole failure sequence, and a rule's scope that is not a scope-token
//! treated as the rule failure it is.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::TestServer;

const API: &str = "https://api.example.com/";

/// `count` distinct short scopes: `s000`, `s001`, ...
fn scopes(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("s{i:03}")).collect()
}

/// `count` distinct three-character scopes (base 36), as a stranger's flood would be.
fn flood(count: usize) -> String {
    const DIGITS: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let name = |i: usize| -> String {
        [i / 1296, i / 36 % 36, i % 36]
            .iter()
            .map(|&d| char::from(DIGITS[d]))
            .collect()
    };
    (0..count).map(name).collect::<Vec<_>>().join(" ")
}

async fn ask(
    server: &TestServer,
    id: &str,
    secret: &str,
    scope: &str,
) -> (StatusCode, Value, HeaderMap) {
    server
        .token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", API),
            ("scope", scope),
        ])
        .await
}

/// The description of a refusal, with its status and code checked; a token body (the
/// old behaviour) is not worth printing whole.
fn refusal(status: StatusCode, body: &Value, code: &str) -> String {
    let description = body["error_description"].as_str().unwrap_or_default();
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::BAD_REQUEST, Some(code)),
        "{description}"
    );
    description.to_string()
}

#[tokio::test]
async fn a_scope_flood_is_refused_by_its_bound_and_the_bound_itself_is_served() {
    let server = TestServer::start(&[]);
    // The flood of issue 9, from a stranger: 14,000 distinct short scopes (56 KB, under
    // the body cap), refused by the bound before the client is even looked at.
    let flood = flood(14_000);
    assert!(flood.len() > 50_000 && flood.len() < 60 * 1024);
    let (status, body, _) = ask(&server, "nobody", "guess", &flood).await;
    let description = refusal(status, &body, "invalid_request");
    assert!(
        description.contains("more than 1000 scopes"),
        "{description}"
    );

    // A grant at both bounds: 1,000 scopes (the default count), one of them 1,024 bytes
    // (the default length), is served.
    let admin = server.admin_token().await;
    let mut granted = scopes(999);
    granted.push("l".repeat(1024));
    let names: Vec<&str> = granted.iter().map(String::as_str).collect();
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &names, json!({}))
        .await;
    let (status, body, _) = ask(&server, &id, &secret, &granted.join(" ")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let issued: BTreeSet<&str> = body["scope"].as_str().unwrap().split(' ').collect();
    assert_eq!(issued, names.iter().copied().collect());

    // One more scope, even a repeat, is over the count.
    let over = format!("{} s000", granted.join(" "));
    let (status, body, _) = ask(&server, &id, &secret, &over).await;
    let description = refusal(status, &body, "invalid_request");
    assert!(
        description.contains("more than 1000 scopes"),
        "{description}"
    );
    // One byte more is over the length; a scope that is not a scope-token is refused too.
    let (status, body, _) = ask(&server, &id, &secret, &"l".repeat(1025)).await;
    let description = refusal(status, &body, "invalid_scope");
    assert!(
        description.contains("longer than 1024 bytes"),
        "{description}"
    );
    let (status, body, _) = ask(&server, &id, &secret, "s000 s\"1").await;
    let description = refusal(status, &body, "invalid_scope");
    assert!(description.contains("scope-token"), "{description}");
}

/// What a stranger could compare between two answers: everything but the request id and
/// the date.
#[derive(Debug, PartialEq)]
struct Answer {
    status: StatusCode,
    body: Value,
    header_names: BTreeSet<String>,
    retry_after: Option<u64>,
}

fn answer(status: StatusCode, body: Value, headers: &HeaderMap) -> Answer {
    let header_names = headers
        .keys()
        .map(|name| name.as_str().to_string())
        .filter(|name| name != "x-request-id" && name != "date")
        .collect();
    let retry_after = headers
        .get("retry-after")
        .map(|v| v.to_str().unwrap().parse().unwrap());
    Answer {
        status,
        body,
        header_names,
        retry_after,
    }
}

#[tokio::test]
async fn a_known_and_an_unknown_client_id_get_the_same_answers_at_every_failure() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (known, _) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    // As long as the real id and shaped like it; no client has it.
    let mut unknown = known.clone();
    let last = if unknown.ends_with('A') { "B" } else { "A" };
    unknown.replace_range(unknown.len() - 1.., last);

    let mut statuses = Vec::new();
    for attempt in 1..=15 {
        let (status, body, headers) = server.client_token(&known, "wrong", API).await;
        let for_known = answer(status, body, &headers);
        let (status, body, headers) = server.client_token(&unknown, "wrong", API).await;
        let mut for_unknown = answer(status, body, &headers);
        // Retry-After counts down in whole seconds between the two requests: present in
        // both and within the interval is what must match, not the second it was read.
        if let (Some(a), Some(b)) = (for_known.retry_after, for_unknown.retry_after) {
            assert!((1..=6).contains(&a) && (1..=6).contains(&b), "{a} {b}");
            for_unknown.retry_after = for_known.retry_after;
        }
        assert_eq!(for_known, for_unknown, "attempt {attempt}");
        statuses.push(for_known.status);
    }
    // The slowdown holds for both: ten failures answered as such, then 429 with Retry-After.
    let expected: Vec<StatusCode> = [StatusCode::UNAUTHORIZED; 10]
        .into_iter()
        .chain([StatusCode::TOO_MANY_REQUESTS; 5])
        .collect();
    assert_eq!(statuses, expected);
}

const SPLIT_LEGACY: &str =
    "module.exports = function (c, s, a, x, cb) { cb(null, {scope: ['read write']}); };";
const SPLIT_ACTIONS: &str = "exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.addScope('read write');
};";
const TWO_SCOPES: &str =
    "module.exports = function (c, s, a, x, cb) { cb(null, {scope: ['read', 'write']}); };";

/// The newest rule log entry once there are `count`: entries are stored in batches.
async fn nth_log(server: &TestServer, admin: &str, count: usize) -> Value {
    let started = Instant::now();
    loop {
        let (status, body) = server.api(admin, Method::GET, "/logs", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entries = body.as_array().unwrap();
        if entries.len() >= count {
            return entries[0].clone();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{count} log entries never came: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_rule_scope_holding_a_space_is_a_rule_failure_in_both_styles() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["read", "write"], json!({}))
        .await;
    let rule = server.add_rule(&admin, "splitter", SPLIT_LEGACY).await;
    for (n, script) in [SPLIT_LEGACY, SPLIT_ACTIONS].into_iter().enumerate() {
        let (status, body) = server
            .api(
                &admin,
                Method::PATCH,
                &format!("/rules/{rule}"),
                Some(json!({"script": script})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body, _) = server.client_token(&id, &secret, API).await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{script}: {body}"
        );
        assert_eq!(
            body,
            json!({"error": "server_error", "error_description": "internal error"})
        );
        let entry = nth_log(&server, &admin, n + 1).await;
        assert_eq!(entry["outcome"], "failed", "{entry}");
        let cause = entry["cause"].as_str().unwrap();
        assert!(
            cause.contains("scope \"read write\" is not an RFC 6749 scope-token"),
            "{cause}"
        );
    }
    // Two scopes, as two strings, are two scopes.
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": TWO_SCOPES})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = server.client_token(&id, &secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "read write");
}
