//! The served OpenAPI document, tried with the tools its users script the management API
//! with: a standard validator, the scope each operation states against the scope it
//! enforces, a generated client (openapi-python-client), the answers' schemas (jsonschema),
//! and a fuzzer (Schemathesis, every check) against the running server.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::TestServer;
use tests::{output_text, repo, run_program};

const METHODS: [&str; 5] = ["get", "put", "post", "patch", "delete"];

/// Every (method, path, operation) of the document.
fn operations(doc: &Value) -> Vec<(String, String, Value)> {
    let mut all = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in METHODS {
            if let Some(op) = item.get(method) {
                all.push((method.to_string(), path.clone(), op.clone()));
            }
        }
    }
    all
}

/// The one scope an operation's `security` names.
fn scope_of(op: &Value) -> String {
    let security = op["security"].as_array().expect("security");
    assert_eq!(security.len(), 1, "{op}");
    let scopes = security[0]["oauth2"].as_array().expect("oauth2 scopes");
    assert_eq!(scopes.len(), 1, "{op}");
    scopes[0].as_str().unwrap().to_string()
}

#[tokio::test]
async fn the_document_is_valid_and_states_each_operations_scope_and_errors() {
    let server = TestServer::start(&[]);
    let doc: Value = server.get_json("/api/v2/openapi.json").await;
    let out = run_program(
        "python3",
        &["-m", "openapi_spec_validator", "-"],
        doc.to_string().as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "openapi-spec-validator refused the document:\n{}",
        output_text(&out)
    );

    let flow = &doc["components"]["securitySchemes"]["oauth2"]["flows"]["clientCredentials"];
    assert_eq!(flow["tokenUrl"], "http://tokenhost.test/oauth/token");
    let mut ids = BTreeSet::new();
    let all = operations(&doc);
    assert!(all.len() >= 35, "only {} operations", all.len());
    for (method, path, op) in &all {
        let id = op["operationId"].as_str().unwrap_or_default();
        assert!(
            ids.insert(id.to_string()),
            "{method} {path}: {id:?} repeated"
        );
        let scope = scope_of(op);
        assert!(
            flow["scopes"].get(&scope).is_some(),
            "{method} {path}: {scope} is not a scope of the flow"
        );
        assert!(
            op["description"]
                .as_str()
                .unwrap_or_default()
                .contains(&format!("`{scope}`")),
            "{method} {path}: the description does not name {scope}"
        );
        let mut statuses = vec!["401", "403", "429"];
        if path.contains('{') {
            statuses.push("404");
        }
        if op.get("requestBody").is_some() {
            statuses.extend(["400", "413", "415"]);
        }
        for status in statuses {
            let response = &op["responses"][status];
            assert!(
                response["content"]["application/json"]["schema"]["$ref"]
                    .as_str()
                    .is_some_and(|r| r.ends_with("/ApiError")),
                "{method} {path}: {status} is not documented with the error shape"
            );
        }
        for (status, response) in op["responses"].as_object().unwrap() {
            assert!(
                response["headers"].get("x-ratelimit-remaining").is_some(),
                "{method} {path}: {status} does not document the rate-limit headers"
            );
        }
    }
}

/// A path of the document with each `{param}` filled in: the scope is checked first, so
/// the resource need not exist.
fn concrete(path: &str) -> String {
    path.split('/')
        .map(|part| if part.starts_with('{') { "x" } else { part })
        .collect::<Vec<_>>()
        .join("/")
}

#[tokio::test]
async fn each_operation_needs_the_scope_it_documents() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let doc: Value = server.get_json("/api/v2/openapi.json").await;
    let scopes: Vec<String> = doc["components"]["securitySchemes"]["oauth2"]["flows"]
        ["clientCredentials"]["scopes"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    // One token per scope: every other management scope but that one.
    let mut without = BTreeMap::new();
    for scope in &scopes {
        let others: Vec<&str> = scopes
            .iter()
            .filter(|s| *s != scope)
            .map(String::as_str)
            .collect();
        let token = server.management_token_with(&admin, &others).await;
        without.insert(scope.clone(), token);
    }
    for (method, path, op) in operations(&doc) {
        let scope = scope_of(&op);
        let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
        let url = server.url(&format!("/api/v2{}", concrete(&path)));
        let body = op.get("requestBody").map(|_| json!({}));
        let mut refused = server.http.request(method.clone(), &url);
        refused = refused.bearer_auth(&without[&scope]);
        if let Some(body) = &body {
            refused = refused.json(body);
        }
        let response = refused.send().await.unwrap();
        assert_eq!(
            response.status(),
            StatusCode::FORBIDDEN,
            "{method} {path} without {scope}"
        );
        let error: Value = response.json().await.unwrap();
        assert!(
            error["message"].as_str().unwrap().contains(&scope),
            "{method} {path}: {error}"
        );
    }
}

#[tokio::test]
async fn a_generated_client_covers_every_operation() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let doc: Value = server.get_json("/api/v2/openapi.json").await;
    // In the server's data directory: removed with it.
    let dir = server.data_dir.join("generated-client");
    std::fs::create_dir_all(&dir).unwrap();
    let doc_path = dir.join("openapi.json");
    std::fs::write(&doc_path, doc.to_string()).unwrap();
    let out_dir = dir.join("tokenhost_client");
    let tools = repo().join("tests/openapi_tools.py");
    let base = server.url("/api/v2");
    let out = run_program(
        "python3",
        &[
            tools.to_str().unwrap(),
            "client",
            doc_path.to_str().unwrap(),
            out_dir.to_str().unwrap(),
            &base,
            &admin,
        ],
        b"",
        Duration::from_secs(180),
    );
    assert!(out.status.success(), "{}", output_text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let listed: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    assert!(
        listed["listed"].as_array().is_some_and(|c| !c.is_empty()),
        "{listed}"
    );
}

/// Checks `instances` against the document's schema `name`.
fn assert_conforms(doc: &Value, name: &str, instances: &[Value]) {
    let input = json!({"doc": doc, "instances": instances}).to_string();
    let tools = repo().join("tests/openapi_tools.py");
    let out = run_program(
        "python3",
        &[tools.to_str().unwrap(), "conforms", name],
        input.as_bytes(),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "answers that do not match the document's {name}:\n{}",
        output_text(&out)
    );
}

#[tokio::test]
async fn rule_test_reports_and_log_entries_match_their_schemas() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let doc: Value = server.get_json("/api/v2/openapi.json").await;
    let rule = server.add_rule(&admin, "seed", tests::SEED_RULE).await;
    let path = format!("/rules/{rule}/test");
    let mut reports = Vec::new();
    for script in [
        None,
        Some("module.exports = function (c, s, a, x, cb) { console.log('no'); cb(new Error('no')); };"),
        Some("module.exports = function (c, s, a, x, cb) { throw new TypeError('bug'); };"),
    ] {
        let body = json!({"event": {"client": {"id": "c1", "name": "n", "metadata": {}}}, "script": script});
        let (status, report) = server.api(&admin, Method::POST, &path, Some(body)).await;
        assert_eq!(status, StatusCode::OK, "{report}");
        reports.push(report);
    }
    let outcomes: Vec<&str> = reports
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["issued", "denied", "failed"]);
    assert_conforms(&doc, "TestReport", &reports);

    // A token request through the rule, so that the log holds an entry.
    let audience = "https://api.openapi.test/";
    let (id, secret) = server
        .setup_client(&admin, audience, "RS256", &["read"], json!({}))
        .await;
    let (status, body, _) = server.client_token(&id, &secret, audience).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let entries = server.logs_when(&admin, "", 1).await;
    assert!(!entries.is_empty(), "the token request left no log entry");
    assert_conforms(&doc, "LogEntry", &entries);
}

/// How long the fuzzer may run in CI; it stops earlier once every operation had its
/// examples.
const FUZZ_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test]
async fn the_fuzzer_finds_nothing() {
    let server = TestServer::start(&[
        ("TOKENHOST_MANAGEMENT_RATE_LIMIT_PER_SECOND", "100000"),
        ("TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST", "100000"),
    ]);
    let admin = server.admin_token().await;
    let doc_url = server.url("/api/v2/openapi.json");
    let base = server.url("/api/v2");
    let auth = format!("Authorization: Bearer {admin}");
    let report = server.data_dir.join("schemathesis-report");
    let config = concat!(env!("CARGO_MANIFEST_DIR"), "/schemathesis.toml");
    let out = run_program(
        "python3",
        &[
            "-m",
            "schemathesis.cli",
            "--no-color",
            "--config-file",
            config,
            "run",
            &doc_url,
            "--url",
            &base,
            "--checks",
            "all",
            "--header",
            &auth,
            "--max-examples",
            "30",
            "--seed",
            "20261202",
            // One worker: CPython 3.11.7's parser keeps its recursion depth per process,
            // and Hypothesis parsing lambdas in two threads at once fails with
            // "AST constructor recursion depth mismatch" (a runtime error, not a finding).
            "--workers",
            "1",
            "--report-dir",
            report.to_str().unwrap(),
        ],
        b"",
        FUZZ_LIMIT,
    );
    assert!(
        out.status.success(),
        "Schemathesis found problems:\n{}",
        output_text(&out)
    );
}
