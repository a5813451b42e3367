//! The management API end to end: authentication and scopes, rules compiled at upload,
//! persistence across restarts, secret and key rotation, discovery and OpenAPI.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{TestServer, ISSUER};
use tests::SEED_RULE;

const API: &str = "https://api.example.com/";

#[tokio::test]
async fn the_management_api_wants_a_token_with_the_right_scope() {
    let server = TestServer::start(&[]);
    let (status, body) = server
        .api("not-a-token", Method::GET, "/clients", None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["statusCode"], 401);
    assert_eq!(body["errorCode"], "invalid_token");

    let admin = server.admin_token().await;
    let read_only = &server
        .management_token_with(&admin, &["read:clients"])
        .await;
    let (status, _) = server.api(read_only, Method::GET, "/clients", None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = server
        .api(
            read_only,
            Method::POST,
            "/rules",
            Some(json!({"script": SEED_RULE})),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["errorCode"], "insufficient_scope");

    // Rules never run for the management audience, even a rule that denies everything.
    server
        .add_rule(
            &admin,
            "deny-all",
            "module.exports = function (c, s, a, x, cb) { cb(new Error('no')); };",
        )
        .await;
    assert!(!server.admin_token().await.is_empty());
}

#[tokio::test]
async fn a_rule_that_does_not_compile_is_a_400_with_line_and_column() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (status, body) = server
        .api(&admin, Method::POST, "/rules", Some(json!({"name": "broken", "script": "module.exports = function (c, s, a, x, cb) {\n  cb(null, {\n};"})))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["errorCode"], "compile_error");
    assert_eq!(body["line"], 3);
    assert!(body["column"].as_u64().unwrap() > 0);
    let (status, body) = server.api(&admin, Method::GET, "/rules", None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!([]),
        "a rule that does not compile is not stored"
    );

    let (status, body) = server
        .api(
            &admin,
            Method::POST,
            "/rules",
            Some(json!({"component": "AGFzbQ0AAQA="})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("execute"),
        "{body}"
    );
}

#[tokio::test]
async fn rules_and_clients_survive_a_restart_without_recompiling() {
    let mut server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "RS256", &["test"], json!({}))
        .await;
    server.add_rule(&admin, "seed", SEED_RULE).await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", API),
    ];
    let (_, before, _) = server.token_form(&form).await;
    let first_run_logs = server.restart();
    assert!(!first_run_logs.contains("recompiling"), "{first_run_logs}");
    let (status, after, _) = server.token_form(&form).await;
    assert_eq!(status, StatusCode::OK, "{after}");
    assert_eq!(after["scope"], "test extra");
    // The key survived too: the token from before the restart still verifies.
    server
        .verify(before["access_token"].as_str().unwrap(), API)
        .await;
    let second_run_logs = server.stop_and_logs();
    assert!(
        !second_run_logs.contains("recompiling"),
        "the stored artifact must load: {second_run_logs}"
    );
}

#[tokio::test]
async fn rotating_a_secret_retires_the_old_one() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, old) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let (status, rotated) = server
        .api(
            &admin,
            Method::POST,
            &format!("/clients/{id}/rotate-secret"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{rotated}");
    let new = rotated["client_secret"].as_str().unwrap();
    assert_ne!(new, old);
    let attempt = |secret: String| {
        let server = &server;
        let id = id.clone();
        async move { server.client_token(&id, &secret, API).await.0 }
    };
    assert_eq!(attempt(new.to_string()).await, StatusCode::OK);
    assert_eq!(attempt(old).await, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_grace_period_keeps_the_old_secret_working() {
    let server = TestServer::start(&[("TOKENHOST_SECRET_GRACE_SECONDS", "3600")]);
    let admin = server.admin_token().await;
    let (id, old) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    server
        .api(
            &admin,
            Method::POST,
            &format!("/clients/{id}/rotate-secret"),
            None,
        )
        .await;
    let (status, body, _) = server.client_token(&id, &old, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn key_rotation_keeps_issued_tokens_verifiable() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let form = [
        ("grant_type", "client_credentials"),
        ("client_id", id.as_str()),
        ("client_secret", secret.as_str()),
        ("audience", API),
    ];
    let (_, before, _) = server.token_form(&form).await;
    let old_token = before["access_token"].as_str().unwrap().to_string();
    let jwks_before: Value = server.get_json("/.well-known/jwks.json").await;
    let (status, keys) = server
        .api(
            &admin,
            Method::POST,
            "/keys/signing/rotate",
            Some(json!({"alg": "ES256"})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{keys}");
    let states: Vec<&str> = keys
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["alg"] == "ES256")
        .map(|k| k["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states.iter().filter(|s| **s == "retired").count(),
        1,
        "{keys}"
    );
    let (_, after, _) = server.token_form(&form).await;
    let new_token = after["access_token"].as_str().unwrap();
    let kid = |t: &str| jsonwebtoken::decode_header(t).unwrap().kid.unwrap();
    assert_ne!(kid(&old_token), kid(new_token));
    // The key that signs now was published before the rotation, as the next key.
    assert!(jwks_before.to_string().contains(&kid(new_token)));
    server.verify(&old_token, API).await;
    server.verify(new_token, API).await;
}

#[tokio::test]
async fn discovery_documents_derive_from_the_issuer() {
    let server = TestServer::start(&[]);
    for path in [
        "/.well-known/oauth-authorization-server",
        "/.well-known/openid-configuration",
    ] {
        let doc: Value = server.get_json(path).await;
        assert_eq!(doc["issuer"], ISSUER);
        assert_eq!(doc["token_endpoint"], format!("{ISSUER}oauth/token"));
        assert_eq!(doc["jwks_uri"], format!("{ISSUER}.well-known/jwks.json"));
        assert_eq!(doc["grant_types_supported"], json!(["client_credentials"]));
    }
    let jwks: Value = server.get_json("/.well-known/jwks.json").await;
    // Current and next key for each of three algorithms.
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 6, "{jwks}");
    let openapi: Value = server.get_json("/api/v2/openapi.json").await;
    for path in [
        "/rules",
        "/clients/{id}/rotate-secret",
        "/client-grants",
        "/resource-servers/{id}",
        "/keys/signing/rotate",
    ] {
        assert!(
            openapi["paths"].get(path).is_some(),
            "{path} missing from the OpenAPI document"
        );
    }
}

#[tokio::test]
async fn a_generated_bootstrap_client_is_saved_privately() {
    let mut server = TestServer::start(&[
        ("TOKENHOST_BOOTSTRAP_CLIENT_ID", ""),
        ("TOKENHOST_BOOTSTRAP_CLIENT_SECRET", ""),
    ]);
    assert!(
        server.startup_output.contains("client_secret"),
        "{}",
        server.startup_output
    );
    let path = server.data_dir.join("bootstrap-client.json");
    let saved: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let (status, body, _) = server
        .client_token(
            saved["client_id"].as_str().unwrap(),
            saved["client_secret"].as_str().unwrap(),
            saved["audience"].as_str().unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Printed once: a restart neither prints nor replaces it.
    server.restart();
    assert!(
        !server.startup_output.contains("client_secret"),
        "{}",
        server.startup_output
    );
    assert_eq!(
        serde_json::from_str::<Value>(&std::fs::read_to_string(&path).unwrap()).unwrap(),
        saved
    );
}
