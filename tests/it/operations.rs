//! Running tokenhost: `/metrics` read as Prometheus reads it, `/readyz`, per-client rate
//! limits and the failed-authentication slowdown, and the audit trail of management
//! changes; all against the real binary.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use prometheus_parse::{Scrape, Value as Metric};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{split, TestServer, ADMIN_ID, ADMIN_SECRET};
use tests::SEED_RULE;

const API: &str = "https://ops.example.com/";

fn form<'a>(id: &'a str, secret: &'a str) -> [(&'static str, &'a str); 4] {
    [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
    ]
}

/// `x-ratelimit-limit`, `-remaining` and `-reset`, each required.
fn ratelimit_headers(headers: &reqwest::header::HeaderMap) -> [u64; 3] {
    ["limit", "remaining", "reset"].map(|name| {
        let name = format!("x-ratelimit-{name}");
        let value = headers.get(&name).unwrap_or_else(|| panic!("no {name}"));
        value.to_str().unwrap().parse().unwrap()
    })
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// A management GET's status, body and `x-ratelimit-*` values.
async fn management_get(server: &TestServer, token: &str) -> (StatusCode, Value, [u64; 3]) {
    let response = server
        .http
        .get(server.url("/api/v2/clients"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let (status, body, headers) = split(response).await;
    (status, body, ratelimit_headers(&headers))
}

async fn scrape(server: &TestServer) -> Scrape {
    let response = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let text = response.text().await.unwrap();
    Scrape::parse(text.lines().map(|l| Ok(l.to_string()))).unwrap()
}

/// The value of a counter (0 when the series does not exist yet).
fn counter(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match s.value {
            Metric::Counter(v) => v,
            ref other => panic!("{name} is not a counter: {other:?}"),
        })
        .sum()
}

/// A histogram's observation count (its `+Inf` bucket).
fn histogram_count(scrape: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    scrape
        .samples
        .iter()
        .filter(|s| s.metric == name)
        .filter(|s| labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .map(|s| match &s.value {
            Metric::Histogram(buckets) => buckets
                .iter()
                .find(|b| b.less_than.is_infinite())
                .map(|b| b.count)
                .unwrap_or(0.0),
            other => panic!("{name} is not a histogram: {other:?}"),
        })
        .sum()
}

#[tokio::test]
async fn metrics_count_tokens_refusals_and_rules_in_prometheus_text() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    server.add_rule(&admin, "seed", SEED_RULE).await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let before = scrape(&server).await;

    for _ in 0..3 {
        let (status, body, _) = server.token_form(&form(&id, &secret)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let (status, _, _) = server.token_form(&form(&id, "wrong")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = server
        .client_token(&id, &secret, "https://nowhere.example.com/")
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);

    let after = scrape(&server).await;
    let moved = |name: &str, labels: &[(&str, &str)]| {
        counter(&after, name, labels) - counter(&before, name, labels)
    };
    assert_eq!(
        moved("tokenhost_tokens_issued_total", &[("alg", "ES256")]),
        3.0
    );
    assert_eq!(
        moved(
            "tokenhost_tokens_refused_total",
            &[("reason", "invalid_client")]
        ),
        1.0
    );
    assert_eq!(
        moved(
            "tokenhost_tokens_refused_total",
            &[("reason", "access_denied")]
        ),
        1.0
    );
    assert_eq!(
        moved("tokenhost_rule_executions_total", &[("outcome", "issued")]),
        3.0
    );
    let latency = "tokenhost_token_request_duration_seconds";
    assert_eq!(
        histogram_count(&after, latency, &[("result", "issued")])
            - histogram_count(&before, latency, &[("result", "issued")]),
        3.0
    );
    assert_eq!(
        histogram_count(&after, latency, &[("result", "refused")])
            - histogram_count(&before, latency, &[("result", "refused")]),
        2.0
    );
    for name in [
        "tokenhost_rule_execution_duration_seconds",
        "tokenhost_rule_fuel_used",
    ] {
        assert_eq!(
            histogram_count(&after, name, &[]) - histogram_count(&before, name, &[]),
            3.0,
            "{name}"
        );
    }
    // The seed rule's fuel (about 150 k units) lands in a bucket below the limit.
    let fuel = after
        .samples
        .iter()
        .find(|s| s.metric == "tokenhost_rule_fuel_used")
        .unwrap();
    let Metric::Histogram(buckets) = &fuel.value else {
        panic!("fuel is not a histogram")
    };
    assert!(buckets
        .iter()
        .any(|b| b.less_than <= 1_000_000.0 && b.count >= 3.0));

    // A failing rule is counted by its kind.
    let (status, rules) = server.api(&admin, Method::GET, "/rules", None).await;
    assert_eq!(status, StatusCode::OK);
    let seed = rules[0]["id"].as_str().unwrap();
    let (status, _) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{seed}"),
            Some(json!({"script": "module.exports = function (c, s, a, x, cb) { null.boom(); };"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = server.token_form(&form(&id, &secret)).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    let last = scrape(&server).await;
    assert_eq!(
        counter(
            &last,
            "tokenhost_rule_executions_total",
            &[("outcome", "failed"), ("kind", "exception")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &last,
            "tokenhost_tokens_refused_total",
            &[("reason", "server_error")]
        ),
        1.0
    );
}

#[tokio::test]
async fn readyz_answers_200_once_the_rules_and_the_compiler_are_ready() {
    let server = TestServer::start(&[]);
    let (status, body, _) = split(
        server
            .http
            .get(server.url("/healthz"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The JS compiler warms up in the background after start: 503 (with the reason) until
    // it is ready, then 200.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (status, body, _) =
            split(server.http.get(server.url("/readyz")).send().await.unwrap()).await;
        if status == StatusCode::OK {
            assert_eq!(body, "ready");
            break;
        }
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(body, "the JS rule compiler is not ready");
        assert!(Instant::now() < deadline, "never ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_burst_over_a_clients_own_limit_gets_429_while_another_client_is_served() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (limited, limited_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let (other, other_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{limited}"),
            Some(json!({"token_rate_limit": {"per_second": 1, "burst": 3}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["token_rate_limit"],
        json!({"per_second": 1, "burst": 3})
    );
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{limited}"),
            Some(json!({"token_rate_limit": {"per_second": 0, "burst": 3}})),
        )
        .await;
    // A body of the wrong shape is 400, as for every management body.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(body["errorCode"], "invalid_body", "{body}");
    assert!(body.to_string().contains("nonzero"), "{body}");

    // Unauthenticated requests do not spend the client's allowance.
    for _ in 0..5 {
        let (status, _, _) = server.token_form(&form(&limited, "wrong")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    let mut statuses = Vec::new();
    let mut retry_after = None;
    for _ in 0..6 {
        let (status, body, headers) = server.token_form(&form(&limited, &limited_secret)).await;
        if status == StatusCode::TOO_MANY_REQUESTS {
            assert_eq!(body["error"], "too_many_requests");
            assert!(body["error_description"].is_string());
            // Beside Retry-After, what the original platform's clients read.
            let allowance = ratelimit_headers(&headers);
            assert_eq!(allowance[..2], [3, 0], "limit, remaining");
            assert!(allowance[2] > unix_now(), "reset {allowance:?}");
            retry_after = Some(
                headers["retry-after"]
                    .to_str()
                    .unwrap()
                    .parse::<u64>()
                    .unwrap(),
            );
        }
        statuses.push(status);
    }
    assert_eq!(&statuses[..3], &[StatusCode::OK; 3], "{statuses:?}");
    assert!(
        statuses[3..].contains(&StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert_eq!(retry_after, Some(1));

    // Another client, at the same moment, is not affected (its default: burst 100).
    for _ in 0..20 {
        let (status, body, _) = server.token_form(&form(&other, &other_secret)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }

    // A rate, not a lock-out: after Retry-After the client is served again.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, _) = server.token_form(&form(&limited, &limited_secret)).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // `null` returns the client to the default limit.
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{limited}"),
            Some(json!({"token_rate_limit": null})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(body.get("token_rate_limit").is_none(), "{body}");
}

#[tokio::test]
async fn failed_authentication_is_slowed_down_per_client_and_address_only() {
    let server = TestServer::start(&[("TOKENHOST_AUTH_FAILURE_BURST", "4")]);
    let admin = server.admin_token().await;
    let (victim, victim_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let (bystander, bystander_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    // The attacker at 127.0.0.1 guesses; 4 failures are answered as such...
    for _ in 0..4 {
        let (status, body, _) = server.token_form(&form(&victim, "guess")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    }
    // ...then the pair is refused, the secret no longer even checked: the right one too.
    for secret in ["guess", victim_secret.as_str()] {
        let (status, body, headers) = server.token_form(&form(&victim, secret)).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        assert_eq!(body["error"], "too_many_requests");
        let wait: u64 = headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=6).contains(&wait), "{wait}");
    }
    // The same address is not blocked for another client.
    let (status, body, _) = server
        .token_form(&form(&bystander, &bystander_secret))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The real client, at another address, is not locked out.
    let elsewhere = reqwest::Client::builder()
        .local_address("127.0.0.2".parse::<IpAddr>().unwrap())
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let url = server.url("/oauth/token");
    let response = elsewhere
        .post(&url)
        .form(&form(&victim, &victim_secret))
        .send()
        .await
        .unwrap();
    let (status, body, _) = split(response).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // And its own mistakes count apart from the attacker's.
    let response = elsewhere
        .post(&url)
        .form(&form(&victim, "typo"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_rule_change_is_audited_with_before_and_after_and_no_secret() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (client, first_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"tier": "gold"}))
        .await;
    let (status, rotated) = server
        .api(
            &admin,
            Method::POST,
            &format!("/clients/{client}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let second_secret = rotated["client_secret"].as_str().unwrap().to_string();

    let rule = server.add_rule(&admin, "audited", SEED_RULE).await;
    let changed = SEED_RULE.replace("'bar'", "'baz'");
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": changed, "enabled": false})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, entries) = server
        .api(
            &admin,
            Method::GET,
            &format!("/audit?target_type=rule&target_id={rule}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{entries}");
    let entries = entries.as_array().unwrap();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (update, create) = (&entries[0], &entries[1]);
    assert_eq!(update["action"], "update");
    assert_eq!(create["action"], "create");
    assert!(update["id"].as_i64() > create["id"].as_i64());
    assert_eq!(update["actor"], ADMIN_ID);
    assert_eq!(update["target_type"], "rule");
    assert_eq!(update["target_id"], rule.as_str());
    assert_eq!(update["before"]["script"], SEED_RULE);
    assert_eq!(update["before"]["enabled"], true);
    assert_eq!(update["after"]["script"], changed.as_str());
    assert_eq!(update["after"]["enabled"], false);
    assert_eq!(create["before"], Value::Null);
    assert_eq!(create["after"]["name"], "audited");
    let time = update["time"].as_str().unwrap();
    assert!(
        time.len() >= 20 && time.ends_with('Z') && time.contains('T'),
        "{time}"
    );
    assert!(update["at"].as_i64().unwrap() > 1_700_000_000);

    // The whole trail: every change so far, newest first, and no secret anywhere in it.
    let response = server
        .http
        .get(server.url("/api/v2/audit?limit=1000"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.unwrap();
    for secret in [first_secret.as_str(), second_secret.as_str(), ADMIN_SECRET] {
        assert!(!text.contains(secret), "a secret in the trail");
    }
    let all: Vec<Value> = serde_json::from_str(&text).unwrap();
    let actions: Vec<(&str, &str)> = all
        .iter()
        .map(|e| {
            (
                e["target_type"].as_str().unwrap(),
                e["action"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        actions,
        [
            ("rule", "update"),
            ("rule", "create"),
            ("client", "rotate_secret"),
            ("client_grant", "create"),
            ("client", "create"),
            ("resource_server", "create"),
        ]
    );
    assert_eq!(all[4]["after"]["client_metadata"]["tier"], "gold");
    let (status, page) = server
        .api(&admin, Method::GET, "/audit?limit=1", None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(page.as_array().unwrap().len(), 1);

    // Reading the trail takes its own scope.
    let reader = server
        .management_token_with(&admin, &["read:clients"])
        .await;
    let (status, _) = server.api(&reader, Method::GET, "/audit", None).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn management_callers_are_limited_apart_and_every_answer_says_what_is_left() {
    let server = TestServer::start(&[
        ("TOKENHOST_MANAGEMENT_RATE_LIMIT_PER_SECOND", "1"),
        ("TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST", "8"),
    ]);
    let admin = server.admin_token().await;
    // Two requests of the admin's eight: the other management client and its grant.
    let reader = server
        .management_token_with(&admin, &["read:clients"])
        .await;

    let mut remaining = Vec::new();
    let refused = loop {
        let (status, body, allowance) = management_get(&server, &admin).await;
        assert_eq!(allowance[0], 8, "x-ratelimit-limit is the burst");
        assert!(allowance[2] >= unix_now(), "reset {allowance:?}");
        if status == StatusCode::TOO_MANY_REQUESTS {
            break (body, allowance);
        }
        assert_eq!(status, StatusCode::OK, "{body}");
        remaining.push(allowance[1]);
        assert!(remaining.len() <= 8, "never limited: {remaining:?}");
    };
    // Eight, less the two spent above and this one; one more if a second has passed.
    assert!((5..=6).contains(&remaining[0]), "{remaining:?}");
    assert_eq!(remaining.last(), Some(&0), "{remaining:?}");
    let (body, allowance) = refused;
    assert_eq!(body["statusCode"], 429, "{body}");
    assert_eq!(body["errorCode"], "too_many_requests", "{body}");
    assert_eq!(allowance[1], 0);

    // The other client, and a stranger without a token, have allowances of their own.
    let (status, body, allowance) = management_get(&server, &reader).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(allowance[1], 7);
    let (status, body, allowance) = management_get(&server, "not-a-token").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(allowance[1], 7);

    // A rate, not a lock-out.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, _) = management_get(&server, &admin).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}
