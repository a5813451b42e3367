//! POST /oauth/token end to end, against the real binary on a real port: the seed's own
//! test, rule outcomes, isolation between clients, and every bad request's RFC 6749 error.

use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{split, TestServer, ISSUER};
use tests::{repo, SEED_RULE};

const API: &str = "https://api.example.com/";

/// The seed's test, as the seed document writes it: a JSON body, the seed rule, scope
/// `test extra` and the claim, in a JWT that verifies against the published JWKS.
#[tokio::test]
async fn the_seed_test_passes_for_every_signing_algorithm() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    server.add_rule(&admin, "seed", SEED_RULE).await;
    for alg in ["RS256", "ES256", "EdDSA"] {
        let audience = format!("{API}{alg}");
        let (id, secret) = server
            .setup_client(&admin, &audience, alg, &["test"], json!({}))
            .await;
        let response = server
            .http
            .post(server.url("/oauth/token"))
            .json(&json!({"client_id": id, "client_secret": secret, "audience": audience, "grant_type": "client_credentials"}))
            .send()
            .await
            .unwrap();
        let (status, body, headers) = split(response).await;
        assert_eq!(status, StatusCode::OK, "{alg}: {body}");
        assert_eq!(body["scope"], "test extra");
        assert_eq!(body["token_type"], "Bearer");
        assert_eq!(body["expires_in"], 86400);
        assert_eq!(headers["cache-control"], "no-store");
        assert_eq!(headers["pragma"], "no-cache");
        let claims = server
            .verify(body["access_token"].as_str().unwrap(), &audience)
            .await;
        assert_eq!(claims["https://foo.com/claim"], "bar");
        assert_eq!(claims["scope"], "test extra");
        assert_eq!(claims["sub"], format!("{id}@clients"));
        assert_eq!(claims["client_id"], id.as_str());
        assert_eq!(claims["azp"], id.as_str());
        assert_eq!(claims["gty"], "client-credentials");
        assert_eq!(claims["iss"], ISSUER);
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            86400
        );
        assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    }
}

#[tokio::test]
async fn a_plain_error_denies_with_403_and_a_typed_error_with_its_code() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"tier": "free"}))
        .await;
    let deny = std::fs::read_to_string(repo().join("rules/deny.js")).unwrap();
    let rule = server.add_rule(&admin, "deny", &deny).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", &id),
        ("client_secret", &secret),
        ("audience", API),
    ];
    let (status, body, _) = server.token_form(&form).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": "access_denied", "error_description": "access denied"})
    );

    let scope_rule = "module.exports = function (c, s, a, x, cb) { cb(new InvalidScopeError('tier ' + c.metadata.tier + ' cannot')); };";
    let (status, _) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": scope_rule})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, body, _) = server.token_form(&form).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_scope", "error_description": "tier free cannot"})
    );

    // A change applies to the next request: disabled, the rule no longer runs.
    server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"enabled": false})),
        )
        .await;
    let (status, body, _) = server.token_form(&form).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "test");
}

#[tokio::test]
async fn a_chain_of_rules_merges_claims_in_order() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(
            &admin,
            API,
            "ES256",
            &["test", "more"],
            json!({"tier": "gold"}),
        )
        .await;
    server
        .add_rule(&admin, "first", "module.exports = function (c, s, a, x, cb) { cb(null, {scope: ['test'], 'https://t.dev/a': 1, 'https://t.dev/both': 'first'}); };")
        .await;
    server
        .add_rule(&admin, "second", "module.exports = function (c, s, a, x, cb) { cb(null, {scope: x.accessToken.scope.concat(['added']), 'https://t.dev/saw': x.accessToken.customClaims['https://t.dev/a'], 'https://t.dev/both': 'second', 'https://t.dev/tier': c.metadata.tier}); };")
        .await;
    let (status, body, _) = server.client_token(&id, &secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "test added");
    let claims = server
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims["https://t.dev/a"], 1);
    assert_eq!(claims["https://t.dev/saw"], 1);
    assert_eq!(claims["https://t.dev/both"], "second");
    assert_eq!(claims["https://t.dev/tier"], "gold");
}

/// A looping rule answers 500 within its deadline plus 100 ms; meanwhile, another
/// client's requests all succeed quickly and none is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_rule_fails_alone_and_other_clients_are_unaffected() {
    let server = TestServer::start(&[
        ("TOKENHOST_RULE_DEADLINE_MS", "1000"),
        ("TOKENHOST_RULE_FUEL", "1000000000000"),
    ]);
    let admin = server.admin_token().await;
    let (looper, looper_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "looper"}))
        .await;
    let (good, good_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"kind": "good"}))
        .await;
    server
        .add_rule(&admin, "looper", "module.exports = function (c, s, a, x, cb) { if (c.metadata.kind === 'looper') { while (true) {} } cb(null, {scope: s, 'https://t.dev/ok': true}); };")
        .await;

    let started = Instant::now();
    let (status, body, _) = server.client_token(&looper, &looper_secret, API).await;
    let took = started.elapsed();
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body,
        json!({"error": "server_error", "error_description": "internal error"})
    );
    assert!(
        took < Duration::from_millis(1100),
        "took {took:?} for a 1000 ms deadline"
    );

    let loops: Vec<_> = (0..4)
        .map(|_| {
            let (http, url, form) = (
                server.http.clone(),
                server.url("/oauth/token"),
                looper_form(&looper, &looper_secret),
            );
            tokio::spawn(async move { http.post(url).form(&form).send().await.map(|r| r.status()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut latencies = Vec::new();
    for _ in 0..50 {
        let started = Instant::now();
        let (status, body, _) = server.client_token(&good, &good_secret, API).await;
        latencies.push(started.elapsed());
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    for handle in loops {
        assert_eq!(
            handle.await.unwrap().unwrap(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(
        p99 < Duration::from_millis(100),
        "p99 {p99:?} while four rules looped"
    );
}

fn looper_form(id: &str, secret: &str) -> Vec<(String, String)> {
    [
        ("grant_type", "client_credentials"),
        ("client_id", id),
        ("client_secret", secret),
        ("audience", API),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

#[tokio::test]
async fn bad_requests_get_their_rfc_6749_errors() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": "https://other.example.com/", "scopes": [{"value": "x"}]})),
        )
        .await;
    let form = |extra: &str| {
        format!("grant_type=client_credentials&client_id={id}&client_secret={secret}{extra}")
    };
    let basic = |user: &str, pass: &str| {
        use base64::Engine as _;
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{pass}"))
        )
    };
    let audience = "&audience=https%3A%2F%2Fapi.example.com%2F";
    let big = "x".repeat(70 * 1024);
    struct Case {
        name: &'static str,
        content_type: &'static str,
        authorization: Option<String>,
        body: Vec<u8>,
        status: u16,
        error: &'static str,
    }
    let case = |name, content_type, authorization, body: String, status, error| Case {
        name,
        content_type,
        authorization,
        body: body.into_bytes(),
        status,
        error,
    };
    let form_type = "application/x-www-form-urlencoded";
    let mut cases = vec![
        case(
            "wrong content type",
            "text/plain",
            None,
            form(audience),
            400,
            "invalid_request",
        ),
        case(
            "missing grant_type",
            form_type,
            None,
            format!("client_id={id}&client_secret={secret}{audience}"),
            400,
            "invalid_request",
        ),
        case(
            "duplicated parameter",
            form_type,
            None,
            form(&format!("{audience}{audience}")),
            400,
            "invalid_request",
        ),
        case(
            "other grant type",
            form_type,
            None,
            form(audience).replace("client_credentials", "password"),
            400,
            "unsupported_grant_type",
        ),
        case(
            "missing audience",
            form_type,
            None,
            form(""),
            400,
            "invalid_request",
        ),
        case(
            "bad Basic header",
            form_type,
            Some("Basic !!!".into()),
            format!("grant_type=client_credentials{audience}"),
            400,
            "invalid_request",
        ),
        case(
            "Basic and body secret",
            form_type,
            Some(basic(&id, &secret)),
            form(audience),
            400,
            "invalid_request",
        ),
        case(
            "no client authentication",
            form_type,
            None,
            format!("grant_type=client_credentials{audience}"),
            401,
            "invalid_client",
        ),
        case(
            "unknown client",
            form_type,
            Some(basic("nobody", &secret)),
            format!("grant_type=client_credentials{audience}"),
            401,
            "invalid_client",
        ),
        case(
            "wrong secret",
            form_type,
            None,
            format!("grant_type=client_credentials&client_id={id}&client_secret=wrong{audience}"),
            401,
            "invalid_client",
        ),
        case(
            "unknown audience",
            form_type,
            None,
            form("&audience=https%3A%2F%2Fnowhere%2F"),
            403,
            "access_denied",
        ),
        case(
            "ungranted audience",
            form_type,
            None,
            form("&audience=https%3A%2F%2Fother.example.com%2F"),
            403,
            "access_denied",
        ),
        case(
            "ungranted scope",
            form_type,
            None,
            form(&format!("{audience}&scope=test%20admin")),
            400,
            "invalid_scope",
        ),
        case(
            "audience and resource differ",
            form_type,
            None,
            form(&format!("{audience}&resource=https%3A%2F%2Fx%2F")),
            400,
            "invalid_request",
        ),
        case(
            "oversized body",
            form_type,
            None,
            form(&format!("{audience}&pad={big}")),
            413,
            "invalid_request",
        ),
        case(
            "malformed JSON",
            "application/json",
            None,
            "{\"grant_type\": ".into(),
            400,
            "invalid_request",
        ),
        case(
            "JSON that is not an object",
            "application/json",
            None,
            "[1, 2]".into(),
            400,
            "invalid_request",
        ),
        case(
            "duplicated JSON parameter",
            "application/json",
            None,
            // Valid but for the repeat: the same audience twice would otherwise get a token.
            format!(
                r#"{{"grant_type":"client_credentials","client_id":"{id}","client_secret":"{secret}","audience":"https://api.example.com/","audience":"https://api.example.com/"}}"#
            ),
            400,
            "invalid_request",
        ),
    ];
    let mut not_utf8 = form(audience).into_bytes();
    not_utf8.extend_from_slice(b"&note=\xff\xfe");
    cases.push(Case {
        name: "non-UTF-8 body",
        content_type: form_type,
        authorization: None,
        body: not_utf8,
        status: 400,
        error: "invalid_request",
    });

    for case in cases {
        let mut request = server
            .http
            .post(server.url("/oauth/token"))
            .header("content-type", case.content_type)
            .body(case.body);
        if let Some(auth) = &case.authorization {
            request = request.header("authorization", auth);
        }
        let (status, body, headers) = split(request.send().await.unwrap()).await;
        assert_eq!(status.as_u16(), case.status, "{}: {body}", case.name);
        assert_eq!(body["error"], case.error, "{}: {body}", case.name);
        assert!(
            body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{}: {body}",
            case.name
        );
        assert_eq!(headers["cache-control"], "no-store", "{}", case.name);
        if status == StatusCode::PAYLOAD_TOO_LARGE {
            assert_eq!(headers["connection"], "close", "{}", case.name);
        }
        if status == StatusCode::UNAUTHORIZED {
            assert!(headers.contains_key("www-authenticate"), "{}", case.name);
        }
    }

    // Basic done right works, with the scope narrowed.
    let (status, body, _) = split(
        server
            .http
            .post(server.url("/oauth/token"))
            .header("authorization", basic(&id, &secret))
            .form(&[
                ("grant_type", "client_credentials"),
                ("audience", API),
                ("scope", "test"),
            ])
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["scope"], "test");
}

#[tokio::test]
async fn request_ids_are_echoed_or_made() {
    let server = TestServer::start(&[]);
    let response = server
        .http
        .get(server.url("/healthz"))
        .header("x-request-id", "trace-me-42")
        .send()
        .await
        .unwrap();
    assert_eq!(response.headers()["x-request-id"], "trace-me-42");
    let response = server
        .http
        .get(server.url("/healthz"))
        .send()
        .await
        .unwrap();
    assert!(response.headers()["x-request-id"].to_str().unwrap().len() >= 8);
}

/// A JWT library outside Rust (PyJWT) verifies our tokens against the JWKS.
#[tokio::test]
async fn pyjwt_verifies_the_token() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    server.add_rule(&admin, "seed", SEED_RULE).await;
    for alg in ["RS256", "ES256", "EdDSA"] {
        let audience = format!("{API}{alg}");
        let (id, secret) = server
            .setup_client(&admin, &audience, alg, &["test"], json!({}))
            .await;
        let (status, body, _) = server.client_token(&id, &secret, &audience).await;
        assert_eq!(status, StatusCode::OK);
        let output = std::process::Command::new("python3")
            .arg(repo().join("tests/verify_token.py"))
            .args([
                &server.url("/.well-known/jwks.json"),
                body["access_token"].as_str().unwrap(),
                &audience,
                ISSUER,
            ])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{alg}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let claims: Value = serde_json::from_slice(&output.stdout).unwrap();
        assert_eq!(claims["https://foo.com/claim"], "bar", "{alg}");
    }
}
