//! The management API as its users' tools expect it (the OpenAPI document: openapi.rs):
//! errors in the original platform's shape (query strings too), RFC 6750
//! challenges, `client_metadata` merged by `PATCH`, discovery that claims only what is
//! supported, and no way to lock every administrator out.

use std::process::Command;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{split, TestServer, ADMIN_ID, ISSUER};
use tests::tokenhost_bin;

#[tokio::test]
async fn errors_are_in_the_error_shape_and_a_401_challenges() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;

    let response = server
        .http
        .get(server.url("/api/v2/audit?limit=abc"))
        .bearer_auth(&admin)
        .send()
        .await
        .unwrap();
    let (status, body, headers) = split(response).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(headers["content-type"], "application/json");
    assert_eq!(body["statusCode"], 400);
    assert_eq!(body["errorCode"], "invalid_query_string");
    assert!(
        body["message"].as_str().unwrap().contains("limit"),
        "{body}"
    );

    // RFC 6750 §3: the scheme, and why.
    for token in [None, Some("not-a-token")] {
        let mut request = server.http.get(server.url("/api/v2/clients"));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let (status, body, headers) = split(request.send().await.unwrap()).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let challenge = headers["www-authenticate"].to_str().unwrap();
        assert!(
            challenge.starts_with("Bearer realm=\"tokenhost\", error=\"invalid_token\""),
            "{challenge}"
        );
    }
}

#[tokio::test]
async fn patching_client_metadata_merges_it_and_null_deletes_a_key() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (status, client) = server
        .api(
            &admin,
            Method::POST,
            "/clients",
            Some(json!({"name": "meta", "client_metadata": {"team": "a", "tier": "gold"}})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{client}");
    let path = format!("/clients/{}", client["client_id"].as_str().unwrap());

    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &path,
            Some(json!({"client_metadata": {"tier": null, "region": "eu"}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body["client_metadata"],
        json!({"team": "a", "region": "eu"})
    );
    let (_, fetched) = server.api(&admin, Method::GET, &path, None).await;
    assert_eq!(
        fetched["client_metadata"],
        json!({"team": "a", "region": "eu"})
    );

    // Bounded as on the original platform: 10 keys of 255 characters at most.
    let many: serde_json::Map<String, Value> =
        (0..9).map(|i| (format!("k{i}"), json!("v"))).collect();
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &path,
            Some(json!({"client_metadata": many})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("at most 10"),
        "{body}"
    );
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &path,
            Some(json!({"client_metadata": {"long": "x".repeat(256)}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    // Refused changes left it as it was.
    let (_, fetched) = server.api(&admin, Method::GET, &path, None).await;
    assert_eq!(
        fetched["client_metadata"],
        json!({"team": "a", "region": "eu"})
    );
}

#[tokio::test]
async fn discovery_claims_no_response_type() {
    let server = TestServer::start(&[]);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = server.get_json(path).await;
        // No authorization endpoint: neither `token` (implicit) nor `code`.
        assert_eq!(doc["response_types_supported"], json!([]), "{path}");
    }
}

/// The grants of `client_id` on the management API.
async fn management_grants(server: &TestServer, admin: &str, client_id: &str) -> Vec<Value> {
    let (status, grants) = server
        .api(
            admin,
            Method::GET,
            &format!("/client-grants?client_id={client_id}"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grants}");
    grants.as_array().unwrap().clone()
}

#[tokio::test]
async fn the_last_administrator_cannot_lock_everyone_out() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let grant = &management_grants(&server, &admin, ADMIN_ID).await[0];
    let grant_path = format!("/client-grants/{}", grant["id"].as_str().unwrap());

    let refusals = [
        (Method::DELETE, grant_path.clone(), None),
        (
            Method::PATCH,
            grant_path.clone(),
            Some(json!({"scope": ["read:clients", "create:clients"]})),
        ),
        (Method::DELETE, format!("/clients/{ADMIN_ID}"), None),
    ];
    for (method, path, body) in &refusals {
        let (status, error) = server.api(&admin, method.clone(), path, body.clone()).await;
        assert_eq!(status, StatusCode::CONFLICT, "{method} {path}: {error}");
        assert_eq!(error["statusCode"], 409);
        assert!(
            error["message"]
                .as_str()
                .unwrap()
                .contains("no client able to manage"),
            "{error}"
        );
    }
    assert_eq!(management_grants(&server, &admin, ADMIN_ID).await.len(), 1);

    // With a second administrator, the first may go.
    let scopes: Vec<&str> = grant["scope"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let second = server.management_token_with(&admin, &scopes).await;
    let (status, body) = server.api(&second, Method::DELETE, &grant_path, None).await;
    assert_eq!(status, StatusCode::NO_CONTENT, "{body}");
}

#[tokio::test]
async fn reset_bootstrap_makes_a_new_administrator() {
    let mut server = TestServer::start(&[]);
    server.stop_and_logs();
    let output = Command::new(tokenhost_bin())
        .args(["admin", "reset-bootstrap"])
        .env("TOKENHOST_ISSUER", ISSUER)
        .env("TOKENHOST_DATA_DIR", &server.data_dir)
        .env_remove("TOKENHOST_BOOTSTRAP_CLIENT_ID")
        .env_remove("TOKENHOST_BOOTSTRAP_CLIENT_SECRET")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let saved: Value = serde_json::from_slice(
        &std::fs::read(server.data_dir.join("bootstrap-client.json")).unwrap(),
    )
    .unwrap();
    let id = saved["client_id"].as_str().unwrap();
    assert_ne!(id, ADMIN_ID);

    server.restart();
    let audience = server.management_audience();
    let (status, body, _) = server
        .client_token(id, saved["client_secret"].as_str().unwrap(), &audience)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let token = body["access_token"].as_str().unwrap();
    // Every scope: it can read what the old administrator could, and grant anything.
    let old = management_grants(&server, token, ADMIN_ID).await;
    let new = management_grants(&server, token, id).await;
    assert_eq!(new[0]["scope"], old[0]["scope"]);
}

#[tokio::test]
async fn a_test_event_with_an_unknown_key_is_refused_by_its_name() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let rule = server.add_rule(&admin, "seed", tests::SEED_RULE).await;
    let (status, error) = server
        .api(
            &admin,
            Method::POST,
            &format!("/rules/{rule}/test"),
            Some(json!({"event": {"client": {"id": "c"}, "scopes": ["read"]}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `scopes`"),
        "{error}"
    );
}
