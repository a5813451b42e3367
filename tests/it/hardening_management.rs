//! Management authorization end to end: no caller hands out management scopes it lacks,
//! a grant narrowed or revoked applies to tokens already issued (open log streams too),
//! the scope is checked before the body is read, and the caps on log streams and rules.

use std::time::{Duration, Instant};

use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};
use tests::server::{TestServer, ADMIN_ID};
use tests::SEED_RULE;

const API: &str = "https://api.example.com/";

/// A client of the management API, created by the admin.
struct Manager {
    client_id: String,
    grant_id: String,
    token: String,
}

/// A new client granted `scopes` on the management API, and a token for it.
async fn manager(server: &TestServer, admin: &str, scopes: &[&str]) -> Manager {
    let (status, client) = server
        .api(
            admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "manager"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let client_id = client["client_id"].as_str().unwrap().to_string();
    let audience = server.management_audience();
    let grant = json!({"client_id": client_id, "audience": audience, "scope": scopes});
    let (status, grant) = server
        .api(admin, Method::POST, "/client-grants", Some(grant))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let secret = client["client_secret"].as_str().unwrap();
    let (status, body, _) = server.client_token(&client_id, secret, &audience).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    Manager {
        client_id,
        grant_id: grant["id"].as_str().unwrap().to_string(),
        token: body["access_token"].as_str().unwrap().to_string(),
    }
}

/// A client with no grant at all; returns its id.
async fn bare_client(server: &TestServer, admin: &str) -> String {
    let (status, client) = server
        .api(
            admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "bare"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    client["client_id"].as_str().unwrap().to_string()
}

fn assert_refused_scope(status: StatusCode, body: &Value) {
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["statusCode"], 403, "{body}");
    assert_eq!(body["errorCode"], "insufficient_scope", "{body}");
}

#[tokio::test]
async fn a_caller_hands_out_only_management_scopes_it_holds() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let audience = server.management_audience();
    let granter = manager(
        &server,
        &admin,
        &[
            "create:client_grants",
            "update:client_grants",
            "read:clients",
        ],
    )
    .await;
    let target = bare_client(&server, &admin).await;

    // The escalation of the issue: update:clients from a caller without it.
    let (status, body) = server
        .api(
            &granter.token,
            Method::POST,
            "/client-grants",
            Some(json!({"client_id": target, "audience": audience,
                "scope": ["read:clients", "update:clients"]})),
        )
        .await;
    assert_refused_scope(status, &body);
    let message = body["message"].as_str().unwrap();
    assert!(message.contains("update:clients"), "{message}");
    assert!(!message.contains("read:clients"), "{message}");

    // What it holds, it may give.
    let (status, grant) = server
        .api(
            &granter.token,
            Method::POST,
            "/client-grants",
            Some(json!({"client_id": target, "audience": audience, "scope": ["read:clients"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{grant}");
    let grant_id = grant["id"].as_str().unwrap();

    // Nor may an update widen a grant past the caller's own scopes.
    let (status, body) = server
        .api(
            &granter.token,
            Method::PATCH,
            &format!("/client-grants/{grant_id}"),
            Some(json!({"scope": ["read:clients", "update:clients", "delete:clients"]})),
        )
        .await;
    assert_refused_scope(status, &body);
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("update:clients") && message.contains("delete:clients"),
        "{message}"
    );
    let (status, body) = server
        .api(
            &granter.token,
            Method::PATCH,
            &format!("/client-grants/{grant_id}"),
            Some(json!({"scope": []})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Grants on other APIs are not limited by the caller's management scopes.
    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": API, "scopes": [{"value": "orders:read"}]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = server
        .api(
            &granter.token,
            Method::POST,
            "/client-grants",
            Some(json!({"client_id": target, "audience": API, "scope": ["orders:read"]})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");

    // What the caller holds is what its current grant allows, not what its token says.
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/client-grants/{}", granter.grant_id),
            Some(json!({"scope": ["create:client_grants"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let other = bare_client(&server, &admin).await;
    let (status, body) = server
        .api(
            &granter.token,
            Method::POST,
            "/client-grants",
            Some(json!({"client_id": other, "audience": audience, "scope": ["read:clients"]})),
        )
        .await;
    assert_refused_scope(status, &body);
}

#[tokio::test]
async fn rotating_a_secret_hands_out_no_management_scope_the_caller_lacks() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let rotator = manager(&server, &admin, &["update:clients"]).await;

    // The bootstrap client's secret is all of its scopes: not for this caller.
    let (status, body) = server
        .api(
            &rotator.token,
            Method::POST,
            &format!("/clients/{ADMIN_ID}/rotate-secret"),
            None,
        )
        .await;
    assert_refused_scope(status, &body);
    assert!(!server.admin_token().await.is_empty());

    // A client with no management grant, or one the caller covers, rotates as before.
    let plain = bare_client(&server, &admin).await;
    let peer = manager(&server, &admin, &["update:clients"]).await;
    for id in [plain, peer.client_id] {
        let (status, body) = server
            .api(
                &rotator.token,
                Method::POST,
                &format!("/clients/{id}/rotate-secret"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body["client_secret"].is_string(), "{body}");
    }
}

#[tokio::test]
async fn a_narrowed_or_revoked_grant_applies_to_tokens_already_issued() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let reader = manager(&server, &admin, &["read:clients", "read:rules"]).await;
    let (status, _) = server
        .api(&reader.token, Method::GET, "/clients", None)
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/client-grants/{}", reader.grant_id),
            Some(json!({"scope": ["read:rules"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .api(&reader.token, Method::GET, "/clients", None)
        .await;
    assert_refused_scope(status, &body);
    let (status, body) = server.api(&reader.token, Method::GET, "/rules", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    let (status, _) = server
        .api(
            &admin,
            Method::DELETE,
            &format!("/client-grants/{}", reader.grant_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server.api(&reader.token, Method::GET, "/rules", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert_eq!(body["errorCode"], "invalid_token");
    assert!(
        body["message"].as_str().unwrap().contains("revoked"),
        "{body}"
    );
}

#[tokio::test]
async fn every_endpoint_checks_its_scope_before_reading_the_request() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let nobody = manager(&server, &admin, &[]).await;
    let openapi = server.get_json("/api/v2/openapi.json").await;
    let mut checked = 0;
    for (path, operations) in openapi["paths"].as_object().unwrap() {
        let path = path.replace("{id}", "x").replace("{number}", "1");
        for method in operations.as_object().unwrap().keys() {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // A query and a body each handler would refuse, if it got to read them.
            let response = server
                .http
                .request(
                    method.clone(),
                    server.url(&format!("/api/v2{path}?limit=many&outcome=some")),
                )
                .bearer_auth(&nobody.token)
                .header("content-type", "application/json")
                .body("{\"name\": ")
                .send()
                .await
                .unwrap();
            let status = response.status();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            assert_eq!(status, StatusCode::FORBIDDEN, "{method} {path}: {body}");
            assert_eq!(
                body["errorCode"], "insufficient_scope",
                "{method} {path}: {body}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 30,
        "only {checked} operations in the OpenAPI document"
    );
}

/// Opens `/api/v2/logs/stream` with `token`.
async fn open_stream(server: &TestServer, token: &str) -> Response {
    server
        .http
        .get(server.url("/api/v2/logs/stream"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

/// Reads `stream` to its end; false if it is still open after `within`.
async fn ends_within(stream: &mut Response, within: Duration) -> bool {
    tokio::time::timeout(within, async {
        while stream.chunk().await.unwrap().is_some() {}
    })
    .await
    .is_ok()
}

#[tokio::test]
async fn a_stream_ends_when_its_client_is_deleted() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let watcher = manager(&server, &admin, &["read:logs"]).await;
    let mut doomed = open_stream(&server, &watcher.token).await;
    assert_eq!(doomed.status(), StatusCode::OK);
    let mut bystander = open_stream(&server, &admin).await;
    assert_eq!(bystander.status(), StatusCode::OK);

    let (status, _) = server
        .api(
            &admin,
            Method::DELETE,
            &format!("/clients/{}", watcher.client_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(ends_within(&mut doomed, Duration::from_secs(5)).await);
    // Only that stream: the admin's is still open.
    assert!(!ends_within(&mut bystander, Duration::from_secs(1)).await);
}

#[tokio::test]
async fn a_stream_ends_when_its_grant_is_revoked_or_loses_read_logs() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let revoked = manager(&server, &admin, &["read:logs"]).await;
    let narrowed = manager(&server, &admin, &["read:logs", "read:rules"]).await;
    let mut revoked_stream = open_stream(&server, &revoked.token).await;
    let mut narrowed_stream = open_stream(&server, &narrowed.token).await;
    assert_eq!(revoked_stream.status(), StatusCode::OK);
    assert_eq!(narrowed_stream.status(), StatusCode::OK);

    let (status, _) = server
        .api(
            &admin,
            Method::DELETE,
            &format!("/client-grants/{}", revoked.grant_id),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(ends_within(&mut revoked_stream, Duration::from_secs(5)).await);
    assert!(!ends_within(&mut narrowed_stream, Duration::from_secs(1)).await);

    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/client-grants/{}", narrowed.grant_id),
            Some(json!({"scope": ["read:rules"]})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert!(ends_within(&mut narrowed_stream, Duration::from_secs(5)).await);
}

#[tokio::test]
async fn management_tokens_live_as_configured_and_a_stream_ends_with_its_token() {
    let server = TestServer::start(&[("TOKENHOST_MANAGEMENT_TOKEN_LIFETIME", "3")]);
    let audience = server.management_audience();
    let (status, body, _) = server
        .client_token(ADMIN_ID, tests::server::ADMIN_SECRET, &audience)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["expires_in"], 3, "{body}");
    let token = body["access_token"].as_str().unwrap().to_string();
    let mut stream = open_stream(&server, &token).await;
    assert_eq!(stream.status(), StatusCode::OK);
    let opened = Instant::now();

    assert!(ends_within(&mut stream, Duration::from_secs(10)).await);
    // It ended because the token expired, not before: no earlier than its lifetime allows.
    assert!(opened.elapsed() >= Duration::from_secs(1));
    let (status, body) = server.api(&token, Method::GET, "/clients", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("expired"),
        "{body}"
    );
}

#[tokio::test]
async fn log_streams_are_capped_and_a_closed_one_frees_its_place() {
    let server = TestServer::start(&[("TOKENHOST_MAX_LOG_STREAMS", "2")]);
    let admin = server.admin_token().await;
    let first = open_stream(&server, &admin).await;
    let second = open_stream(&server, &admin).await;
    assert_eq!(first.status(), StatusCode::OK);
    assert_eq!(second.status(), StatusCode::OK);

    let third = open_stream(&server, &admin).await;
    assert_eq!(third.status(), StatusCode::TOO_MANY_REQUESTS);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["statusCode"], 429, "{body}");
    assert_eq!(body["errorCode"], "too_many_streams", "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("at most 2"),
        "{body}"
    );

    drop(first);
    // The server notices the closed connection on its own schedule: wait for it.
    let started = Instant::now();
    let status = loop {
        let attempt = open_stream(&server, &admin).await;
        if attempt.status() != StatusCode::TOO_MANY_REQUESTS
            || started.elapsed() > Duration::from_secs(10)
        {
            break attempt.status();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(status, StatusCode::OK);
    drop(second);
}

#[tokio::test]
async fn the_number_of_rules_is_capped_even_for_concurrent_uploads() {
    let server = TestServer::start(&[("TOKENHOST_MAX_RULES", "3")]);
    let admin = server.admin_token().await;
    server.add_rule(&admin, "first", SEED_RULE).await;

    let upload = |name: &'static str| {
        let server = &server;
        let admin = &admin;
        async move {
            server
                .api(
                    admin,
                    Method::POST,
                    "/rules",
                    Some(json!({"name": name, "script": SEED_RULE})),
                )
                .await
        }
    };
    let results = tokio::join!(upload("a"), upload("b"), upload("c"), upload("d"));
    let results = [results.0, results.1, results.2, results.3];
    let created = results
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 2, "{results:?}");
    for (status, body) in results.iter().filter(|(s, _)| *s != StatusCode::CREATED) {
        assert_eq!(*status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(body["errorCode"], "too_many_rules", "{body}");
        assert!(
            body["message"].as_str().unwrap().contains("at most 3"),
            "{body}"
        );
    }
    let (_, rules) = server.api(&admin, Method::GET, "/rules", None).await;
    assert_eq!(rules.as_array().unwrap().len(), 3, "{rules}");

    // Deleting one makes room again.
    let id = rules[0]["id"].as_str().unwrap();
    let (status, _) = server
        .api(&admin, Method::DELETE, &format!("/rules/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    server.add_rule(&admin, "after", SEED_RULE).await;
}
