//! Rule secrets, versions and the test endpoint, end to end against the real binary: a secret
//! set through the API reaches its rule (and no other) and never comes back out, a rollback
//! restores what a rule did, and a test run reports without issuing.

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{TestServer, ADMIN_ID};

const API: &str = "https://api.example.com/";
const SECRET_VALUE: &str = "sk_live_9f8e7d6c5b4a";
const OTHER_VALUE: &str = "b-only-0a1b2c3d";

/// A token for `API`, as a client would ask for it; returns its verified claims.
async fn token_claims(server: &TestServer, id: &str, secret: &str) -> Value {
    let (status, body, _) = server.client_token(id, secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    server
        .verify(body["access_token"].as_str().unwrap(), API)
        .await
}

async fn patch_secrets(
    server: &TestServer,
    admin: &str,
    rule: &str,
    body: Value,
) -> (StatusCode, Value) {
    server
        .api(
            admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(body),
        )
        .await
}

fn names(list: &Value) -> Vec<&str> {
    list.as_array()
        .unwrap_or_else(|| panic!("not a list: {list}"))
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn a_secret_reaches_its_rule_only_and_never_comes_back_out() {
    let mut server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let first = server
        .add_rule(&admin, "first", "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/key': ctx.secrets.API_KEY || 'none', 'https://t.dev/webtask': ctx.webtask.secrets.API_KEY || 'none', 'https://t.dev/first_sees_b': ctx.secrets.B_ONLY || 'none'}); };")
        .await;
    let second = server
        .add_rule(&admin, "second", "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/b': ctx.secrets.B_ONLY || 'none', 'https://t.dev/second_sees_key': ctx.secrets.API_KEY || 'none'}); };")
        .await;

    let (status, body) =
        patch_secrets(&server, &admin, &first, json!({"API_KEY": SECRET_VALUE})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["API_KEY"]);
    assert!(!body.to_string().contains(SECRET_VALUE), "{body}");
    let (status, _) = patch_secrets(&server, &admin, &second, json!({"B_ONLY": OTHER_VALUE})).await;
    assert_eq!(status, StatusCode::OK);

    // The next token request sees them, each rule its own.
    let claims = token_claims(&server, &id, &secret).await;
    assert_eq!(claims["https://t.dev/key"], SECRET_VALUE);
    assert_eq!(claims["https://t.dev/webtask"], SECRET_VALUE);
    assert_eq!(claims["https://t.dev/b"], OTHER_VALUE);
    assert_eq!(claims["https://t.dev/first_sees_b"], "none");
    assert_eq!(claims["https://t.dev/second_sees_key"], "none");

    // Names only, everywhere the API shows a rule.
    let (status, listed) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{first}/secrets"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(names(&listed), ["API_KEY"]);
    assert!(listed[0]["updated_at"].as_i64().is_some());
    for path in [
        format!("/rules/{first}/secrets"),
        "/rules".to_string(),
        format!("/rules/{first}"),
        format!("/rules/{first}/versions"),
        format!("/rules/{first}/versions/1"),
        "/audit".to_string(),
    ] {
        let (status, body) = server.api(&admin, Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        let text = body.to_string();
        assert!(
            !text.contains(SECRET_VALUE) && !text.contains(OTHER_VALUE),
            "{path}: {text}"
        );
    }

    // Encrypted at rest: the plaintext is nowhere in the database files.
    for file in ["tokenhost.db", "tokenhost.db-wal"] {
        if let Ok(bytes) = std::fs::read(server.data_dir.join(file)) {
            assert!(
                !bytes
                    .windows(SECRET_VALUE.len())
                    .any(|w| w == SECRET_VALUE.as_bytes()),
                "{file} holds the secret in clear"
            );
        }
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(server.data_dir.join("secrets.key"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    // The generated key survives a restart, and with it the secrets.
    let logs = server.restart();
    assert!(
        !logs.contains(SECRET_VALUE),
        "the server logged a secret:\n{logs}"
    );
    let admin = server.admin_token().await;
    let claims = token_claims(&server, &id, &secret).await;
    assert_eq!(claims["https://t.dev/key"], SECRET_VALUE);

    // Replace one, add one, remove one; others stay.
    let (status, body) = patch_secrets(
        &server,
        &admin,
        &first,
        json!({"API_KEY": "rotated", "EXTRA_1": "x"}),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["API_KEY", "EXTRA_1"]);
    assert_eq!(
        token_claims(&server, &id, &secret).await["https://t.dev/key"],
        "rotated"
    );
    let (status, body) = patch_secrets(&server, &admin, &first, json!({"API_KEY": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(names(&body), ["EXTRA_1"]);
    assert_eq!(
        token_claims(&server, &id, &secret).await["https://t.dev/key"],
        "none"
    );

    // Deleting the rule deletes its secrets; an unknown rule has none to show.
    let (status, _) = server
        .api(&admin, Method::DELETE, &format!("/rules/{first}"), None)
        .await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{first}/secrets"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["errorCode"], "inexistent_resource");
    let logs = server.stop_and_logs();
    assert!(
        !logs.contains(SECRET_VALUE) && !logs.contains("rotated"),
        "the server logged a secret:\n{logs}"
    );
}

#[tokio::test]
async fn secret_limits_give_clear_400s() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let rule = server
        .add_rule(
            &admin,
            "limits",
            "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s}); };",
        )
        .await;
    let long_name = "N".repeat(129);
    let cases = [
        (json!({"bad-name": "v"}), "bad-name"),
        (json!({"": "v"}), "must be 1-128"),
        (json!({ long_name.as_str(): "v" }), "must be 1-128"),
        (json!({"BIG": "v".repeat(4097)}), "4097 bytes"),
        (json!({"NUM": 5}), "must be a string"),
    ];
    for (body, expected) in cases {
        let (status, error) = patch_secrets(&server, &admin, &rule, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {error}");
        assert_eq!(error["statusCode"], 400);
        assert_eq!(error["errorCode"], "invalid_body");
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(expected), "{message}");
    }
    let (status, error) =
        patch_secrets(&server, &admin, &rule, json!(["not", "an", "object"])).await;
    // Not an object at all: the management API's usual body rejection.
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // At the limits exactly: fine.
    let name = "N".repeat(128);
    let (status, body) = patch_secrets(
        &server,
        &admin,
        &rule,
        json!({ name.as_str(): "v".repeat(4096) }),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let thirty: serde_json::Map<String, Value> =
        (1..30).map(|i| (format!("S{i}"), json!("v"))).collect();
    let (status, body) = patch_secrets(&server, &admin, &rule, Value::Object(thirty)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 30);

    // One more is refused, and nothing of the refused change is kept; replacing one while
    // removing another stays at 30 and is fine.
    let (status, error) =
        patch_secrets(&server, &admin, &rule, json!({"S31": "v", "S1": "w"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert!(
        error["message"].as_str().unwrap().contains("at most 30"),
        "{error}"
    );
    let (_, listed) = server
        .api(&admin, Method::GET, &format!("/rules/{rule}/secrets"), None)
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 30);
    assert!(!names(&listed).contains(&"S31"));
    let (status, body) =
        patch_secrets(&server, &admin, &rule, json!({"S31": "v", "S1": null})).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body.as_array().unwrap().len(), 30);

    let (status, _) = patch_secrets(&server, &admin, "rul_missing", json!({"A": "v"})).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_configured_secrets_key_is_used_instead_of_a_generated_one() {
    // base64 of 32 bytes 0x01..0x20.
    let key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
    let server = TestServer::start(&[("TOKENHOST_SECRETS_KEY", key)]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "EdDSA", &["test"], json!({}))
        .await;
    let rule = server
        .add_rule(&admin, "keyed", "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/key': ctx.secrets.K}); };")
        .await;
    let (status, _) = patch_secrets(&server, &admin, &rule, json!({"K": SECRET_VALUE})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        token_claims(&server, &id, &secret).await["https://t.dev/key"],
        SECRET_VALUE
    );
    assert!(!server.data_dir.join("secrets.key").exists());
}

#[tokio::test]
async fn deploying_an_old_version_restores_its_behaviour() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "RS256", &["test"], json!({}))
        .await;
    let v1 = "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/a': 'A'}); };";
    let v2 = "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/b': 'B'}); };";
    let rule = server.add_rule(&admin, "versioned", v1).await;
    assert_eq!(
        token_claims(&server, &id, &secret).await["https://t.dev/a"],
        "A"
    );
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": v2})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = token_claims(&server, &id, &secret).await;
    assert_eq!(claims["https://t.dev/b"], "B");
    assert!(claims.get("https://t.dev/a").is_none());
    // A change that is not to the code makes no version.
    let (status, _) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"order": 7})),
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    let (status, versions) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{rule}/versions"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{versions}");
    let numbers: Vec<i64> = versions
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["number"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [1, 2]);
    assert_eq!(versions[1]["current"], true);
    assert_eq!(versions[0]["current"], false);
    assert_eq!(versions[0]["created_by"], ADMIN_ID);
    assert!(versions[0]["created_at"].as_i64().is_some());
    let (status, one) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{rule}/versions/1"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["script"], v1);
    assert_eq!(one["kind"], "script");

    // Roll back: a new version 3 with version 1's code, applied to the next request.
    let (status, deployed) = server
        .api(
            &admin,
            Method::POST,
            &format!("/rules/{rule}/versions/1/deploy"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{deployed}");
    assert_eq!(deployed["number"], 3);
    assert_eq!(deployed["deployed_from"], 1);
    assert_eq!(deployed["current"], true);
    assert_eq!(deployed["script"], v1);
    let claims = token_claims(&server, &id, &secret).await;
    assert_eq!(claims["https://t.dev/a"], "A");
    assert!(claims.get("https://t.dev/b").is_none());
    let (_, versions) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{rule}/versions"),
            None,
        )
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 3);
    assert_eq!(versions[2]["current"], true);
    let (_, current) = server
        .api(&admin, Method::GET, &format!("/rules/{rule}"), None)
        .await;
    assert_eq!(current["script"], v1);

    for path in ["/versions/9", "/versions/x", "/versions/9/deploy"] {
        let method = if path.ends_with("deploy") {
            Method::POST
        } else {
            Method::GET
        };
        let (status, body) = server
            .api(&admin, method, &format!("/rules/{rule}{path}"), None)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["errorCode"], "inexistent_resource");
    }

    // Versions go with their rule.
    server
        .api(&admin, Method::DELETE, &format!("/rules/{rule}"), None)
        .await;
    let (status, _) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{rule}/versions"),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_test_endpoint_reports_saved_and_unsaved_rules_and_issues_nothing() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let saved = "module.exports = function (client, scope, audience, context, cb) {\n  console.log('tier ' + client.metadata.tier);\n  var t = {scope: scope.concat(['extra'])};\n  t['https://t.dev/tier'] = client.metadata.tier;\n  t['https://t.dev/key_len'] = context.secrets.API_KEY.length;\n  cb(null, t);\n};";
    let rule = server.add_rule(&admin, "tried", saved).await;
    let (status, _) = patch_secrets(&server, &admin, &rule, json!({"API_KEY": SECRET_VALUE})).await;
    assert_eq!(status, StatusCode::OK);
    let event = json!({"client": {"id": "c1", "metadata": {"tier": "gold"}}, "scope": ["test"], "audience": API});
    let path = format!("/rules/{rule}/test");

    // The saved rule, with its secrets.
    let (status, report) = server
        .api(&admin, Method::POST, &path, Some(json!({"event": event})))
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["outcome"], "issued");
    assert_eq!(report["version"], 1);
    assert_eq!(report["token"]["scope"], json!(["test", "extra"]));
    assert_eq!(report["token"]["claims"]["https://t.dev/tier"], "gold");
    assert_eq!(
        report["token"]["claims"]["https://t.dev/key_len"],
        SECRET_VALUE.len()
    );
    assert_eq!(report["logs"][0]["message"], "tier gold");
    assert!(report["fuel_used"].as_u64().unwrap() > 1000, "{report}");
    assert!(report["duration_us"].as_u64().is_some(), "{report}");
    assert!(report.get("access_token").is_none());

    // An unsaved script: run, not stored.
    let unsaved = "module.exports = function (c, s, a, ctx, cb) { console.warn('no ' + c.id); cb(new Error('not today')); };";
    let (status, report) = server
        .api(
            &admin,
            Method::POST,
            &path,
            Some(json!({"event": event, "script": unsaved})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["outcome"], "denied");
    assert_eq!(report["token"], Value::Null);
    assert_eq!(report["version"], Value::Null);
    assert_eq!(
        report["denial"],
        json!({"code": "access_denied", "message": "not today"})
    );
    assert_eq!(report["logs"][0]["message"], "no c1");
    assert!(report["fuel_used"].as_u64().unwrap() > 0);

    let issuing = "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s, 'https://t.dev/k': ctx.secrets.API_KEY, 'https://t.dev/given': ctx.secrets.GIVEN}); };";
    let with_secret = json!({"context": {"secrets": {"GIVEN": "from the event"}}});
    let (status, report) = server
        .api(
            &admin,
            Method::POST,
            &path,
            Some(json!({"event": with_secret, "script": issuing})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["token"]["claims"]["https://t.dev/k"], SECRET_VALUE);
    assert_eq!(
        report["token"]["claims"]["https://t.dev/given"],
        "from the event"
    );

    // How the client proved itself comes from the event, as in `run-rule`.
    let proof = "module.exports = function (c, s, a, ctx, cb) { cb(null, {'https://t.dev/proof': [ctx.clientAuthentication.method, ctx.clientAuthentication.credential_id, ctx.dpop && ctx.dpop.jkt]}); };";
    let signed = json!({"context": {"clientAuthentication": {"method": "private_key_jwt", "credential_id": "cred_1"}, "dpop": {"jkt": "j1"}}});
    for (event, expected) in [
        (signed, json!(["private_key_jwt", "cred_1", "j1"])),
        (json!({}), json!(["client_secret_post", null, null])),
    ] {
        let (status, report) = server
            .api(
                &admin,
                Method::POST,
                &path,
                Some(json!({"event": event, "script": proof})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{report}");
        assert_eq!(report["token"]["claims"]["https://t.dev/proof"], expected);
    }

    let failing = "module.exports = function (c, s, a, ctx, cb) { null.boom(); };";
    let (status, report) = server
        .api(
            &admin,
            Method::POST,
            &path,
            Some(json!({"script": failing})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["outcome"], "failed");
    assert_eq!(report["failure"]["kind"], "exception");
    assert_eq!(report["token"], Value::Null);

    // A script that does not compile is refused like an upload.
    let (status, error) = server
        .api(
            &admin,
            Method::POST,
            &path,
            Some(json!({"script": "module.exports = function (\n  cb(;"})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");
    assert_eq!(error["errorCode"], "compile_error");
    assert_eq!(error["line"], 2);
    assert!(error["column"].as_u64().is_some());
    let (status, error) = server
        .api(
            &admin,
            Method::POST,
            &path,
            Some(json!({"event": {"scope": 5}})),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{error}");

    // None of it changed the rule.
    let (_, versions) = server
        .api(
            &admin,
            Method::GET,
            &format!("/rules/{rule}/versions"),
            None,
        )
        .await;
    assert_eq!(versions.as_array().unwrap().len(), 1);
    let (_, current) = server
        .api(&admin, Method::GET, &format!("/rules/{rule}"), None)
        .await;
    assert_eq!(current["script"], saved);
    let (status, _) = server
        .api(
            &admin,
            Method::POST,
            "/rules/rul_missing/test",
            Some(json!({})),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn reading_needs_read_rules_and_changing_or_testing_needs_update_rules() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let rule = server
        .add_rule(
            &admin,
            "scoped",
            "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: s}); };",
        )
        .await;
    let read_only = &server.management_token_with(&admin, &["read:rules"]).await;
    for path in ["secrets", "versions", "versions/1"] {
        let (status, body) = server
            .api(
                read_only,
                Method::GET,
                &format!("/rules/{rule}/{path}"),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
    }
    for (method, path, body) in [
        (Method::PATCH, "secrets", json!({"A": "v"})),
        (Method::POST, "versions/1/deploy", json!({})),
        (Method::POST, "test", json!({})),
    ] {
        let (status, body) = server
            .api(
                read_only,
                method,
                &format!("/rules/{rule}/{path}"),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {body}");
        assert_eq!(body["errorCode"], "insufficient_scope");
    }
}
