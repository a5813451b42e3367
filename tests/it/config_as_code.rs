//! Configuration as code through the real binary against real servers: `tokenhost export`
//! of one server applied to an empty one reproduces it; `apply` prints its plan, changes
//! nothing with `--dry-run` or when a rule does not compile, and nothing the second time;
//! a client the file creates gets a token shaped by the file's rule. And the management
//! API's part: a client created with its own `client_id` and `client_secret`.

use std::path::PathBuf;
use std::process::{Command, Output};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tests::server::{TestServer, ADMIN_ID, ADMIN_SECRET};
use tests::{repo, tokenhost_bin};

const API: &str = "https://billing.example.com/";
const BILLING_KEY: &str = "sk_live_never_printed_4711";
const TIER_RULE: &str = "module.exports = function (client, scope, audience, context, cb) {
  var token = {scope: scope};
  token['https://tokenhost.dev/tier'] = client.metadata.tier;
  token['https://tokenhost.dev/key_length'] = (context.secrets.BILLING_KEY || '').length;
  cb(null, token);
};";

/// `tokenhost <args>` against `server` as its bootstrap client, none of the caller's
/// TOKENHOST_* settings.
fn tokenhost(server: &TestServer, args: &[&str]) -> Output {
    Command::new(tokenhost_bin())
        .args(args)
        .current_dir(repo())
        .env_remove("TOKENHOST_MANAGEMENT_TOKEN")
        .env_remove("TOKENHOST_DATA_DIR")
        .env("TOKENHOST_URL", &server.base)
        .env("TOKENHOST_CLIENT_ID", ADMIN_ID)
        .env("TOKENHOST_CLIENT_SECRET", ADMIN_SECRET)
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// stdout and stderr together, for assertions and their messages.
fn shown(output: &Output) -> String {
    format!("{}{}", text(&output.stdout), text(&output.stderr))
}

fn scratch(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenhost-cac-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn export(server: &TestServer) -> String {
    let exported = tokenhost(server, &["export"]);
    assert!(exported.status.success(), "{}", shown(&exported));
    text(&exported.stdout)
}

/// An API, a client with metadata, its grant, and a rule with a secret.
async fn configure(server: &TestServer) {
    let admin = server.admin_token().await;
    let (client_id, _) = server
        .setup_client(
            &admin,
            API,
            "ES256",
            &["read", "write"],
            json!({"tier": "gold"}),
        )
        .await;
    let rule = server.add_rule(&admin, "tier", TIER_RULE).await;
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}/secrets"),
            Some(json!({ "BILLING_KEY": BILLING_KEY })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/clients/{client_id}"),
            Some(json!({"token_rate_limit": {"per_second": 5, "burst": 10}})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn export_then_apply_to_an_empty_server_reproduces_it_and_a_second_apply_changes_nothing() {
    let source = TestServer::start(&[]);
    configure(&source).await;
    let exported = export(&source);
    assert_eq!(exported, export(&source), "an export is deterministic");
    assert!(
        exported.contains("BILLING_KEY: '##BILLING_KEY##'"),
        "{exported}"
    );
    assert!(!exported.contains(BILLING_KEY), "{exported}");
    assert!(!exported.contains("client_secret:"), "{exported}");
    assert!(exported.contains("tier: gold"), "{exported}");

    let file = scratch("exported.yaml", &exported);
    let mappings = scratch(
        "mappings.json",
        &json!({ "BILLING_KEY": BILLING_KEY }).to_string(),
    );
    let file = file.to_str().unwrap();
    let mappings = mappings.to_str().unwrap();
    let target = TestServer::start(&[]);
    let applied = tokenhost(
        &target,
        &["apply", "-f", file, "--keyword-mappings", mappings],
    );
    let out = shown(&applied);
    assert!(applied.status.success(), "{out}");
    for line in [
        format!("+ create api {API:?}"),
        "+ create client \"e2e client\"".into(),
        format!("+ create grant \"e2e client\" -> {API:?}"),
        "+ create rule \"tier\"".into(),
    ] {
        assert!(out.contains(&line), "{line} in {out}");
    }
    assert!(out.contains("its client_secret, shown this once"), "{out}");
    assert!(!out.contains(BILLING_KEY), "{out}");
    assert_eq!(export(&target), exported, "the target now exports the same");

    let again = tokenhost(
        &target,
        &["apply", "-f", file, "--keyword-mappings", mappings],
    );
    assert!(again.status.success(), "{}", shown(&again));
    assert_eq!(text(&again.stdout), "No changes.\n");
    // Even pruning: the file is the whole server.
    let pruned = tokenhost(&target, &["apply", "-f", file, "--prune"]);
    assert_eq!(text(&pruned.stdout), "No changes.\n", "{}", shown(&pruned));
}

#[tokio::test]
async fn a_client_of_the_file_gets_a_token_shaped_by_its_rule_after_a_dry_run_changed_nothing() {
    let server = TestServer::start(&[]);
    let before = export(&server);
    let secret = "worker-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    let file = format!(
        "resource_servers:
  - identifier: @@AUDIENCE@@
    scopes: [{{value: read}}]
clients:
  - name: Billing worker
    client_id: billing-worker
    client_secret: '##WORKER_SECRET##'
    client_metadata: {{tier: gold}}
client_grants:
  - client: Billing worker
    audience: {API}
    scope: [read]
rules:
  - name: tier
    script: |
{}
    secrets:
      BILLING_KEY: '##BILLING_KEY##'
",
        TIER_RULE
            .lines()
            .map(|l| format!("      {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let file = scratch("worker.yaml", &file);
    let mappings = json!({"AUDIENCE": API, "WORKER_SECRET": secret, "BILLING_KEY": BILLING_KEY});
    let mappings = scratch("worker-mappings.json", &mappings.to_string());
    let args = [
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--keyword-mappings",
        mappings.to_str().unwrap(),
    ];

    let dry = tokenhost(&server, &[&args[..], &["--dry-run"]].concat());
    let out = shown(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("+ create client \"Billing worker\" (billing-worker)"),
        "{out}"
    );
    assert!(
        out.contains("Dry run: nothing was changed (4 changes to do)."),
        "{out}"
    );
    assert_eq!(export(&server), before, "a dry run changes nothing");

    // Without mappings, the file is no YAML (an `@@KEY@@` stands for JSON); without the
    // secrets' values the plan is refused: before any change, either way.
    let unmapped = tokenhost(&server, &["apply", "-f", file.to_str().unwrap()]);
    let out = shown(&unmapped);
    assert_eq!(unmapped.status.code(), Some(2), "{out}");
    assert!(
        out.contains("@@AUDIENCE@@ has no value: give AUDIENCE in --keyword-mappings"),
        "{out}"
    );
    let partial = scratch("partial.json", &json!({ "AUDIENCE": API }).to_string());
    let partial = [
        "apply",
        "-f",
        file.to_str().unwrap(),
        "--keyword-mappings",
        partial.to_str().unwrap(),
    ];
    let unmapped = tokenhost(&server, &partial);
    let out = shown(&unmapped);
    assert_eq!(unmapped.status.code(), Some(1), "{out}");
    assert!(
        out.contains("give WORKER_SECRET in --keyword-mappings"),
        "{out}"
    );
    assert!(!out.contains("+ create"), "no plan is printed: {out}");
    assert_eq!(export(&server), before);

    let applied = tokenhost(&server, &args);
    let out = shown(&applied);
    assert!(applied.status.success(), "{out}");
    assert!(!out.contains(secret) && !out.contains(BILLING_KEY), "{out}");
    let (status, body, _) = server.client_token("billing-worker", secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = server
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims["https://tokenhost.dev/tier"], "gold", "{claims}");
    assert_eq!(
        claims["https://tokenhost.dev/key_length"],
        BILLING_KEY.len(),
        "{claims}"
    );
    assert_eq!(claims["scope"], "read", "{claims}");

    let again = tokenhost(&server, &args);
    assert_eq!(text(&again.stdout), "No changes.\n", "{}", shown(&again));

    // A rule that does not compile stops the apply before anything changes.
    let configured = export(&server);
    let broken = std::fs::read_to_string(&file)
        .unwrap()
        .replace("scope: [read]", "scope: []")
        .replace("cb(null, token);", "cb(null, token;");
    std::fs::write(&file, broken).unwrap();
    let refused = tokenhost(&server, &args);
    let out = shown(&refused);
    assert_eq!(refused.status.code(), Some(3), "{out}");
    assert!(
        out.contains("rule \"tier\"") && out.contains("nothing was changed"),
        "{out}"
    );
    assert_eq!(export(&server), configured);
}

#[tokio::test]
async fn a_client_created_with_its_own_credentials_keeps_them_and_they_are_checked() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let secret = "kept-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    let create = |body| server.api(&admin, Method::POST, "/clients", Some(body));

    let (status, body) =
        create(json!({"name": "kept", "client_id": "kept.id", "client_secret": secret})).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["client_id"], "kept.id");
    assert!(
        body.get("client_secret").is_none(),
        "a given secret is not echoed: {body}"
    );
    let (status, body) = create(json!({"name": "again", "client_id": "kept.id"})).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["errorCode"], "conflict");

    for (body, says) in [
        (json!({"name": "x", "client_id": ".."}), "client_id must be"),
        (
            json!({"name": "x", "client_id": "a b"}),
            "client_id must be",
        ),
        (
            json!({"name": "x", "client_secret": "short-secret"}),
            "32 to 256 characters long",
        ),
        (
            json!({"name": "x", "client_secret": "has a space 0123456789abcdefghijklmnop"}),
            "may hold only",
        ),
    ] {
        let (status, answer) = create(body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}: {answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
        assert!(
            !message.contains("has a space") && !message.contains(secret),
            "{message}"
        );
    }
    let grant = json!({"client_id": "kept.id", "audience": API, "scope": []});
    let (status, _) = server
        .api(&admin, Method::POST, "/client-grants", Some(grant))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "no such API yet");
    server
        .api(
            &admin,
            Method::POST,
            "/resource-servers",
            Some(json!({"identifier": API})),
        )
        .await;
    let grant = json!({"client_id": "kept.id", "audience": API, "scope": []});
    let (status, body) = server
        .api(&admin, Method::POST, "/client-grants", Some(grant))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body, _) = server.client_token("kept.id", secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

/// A Deploy CLI directory export: an API, an M2M client and a single-page app, grants, a
/// credentials-exchange hook and a bound action.
fn auth0_export() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenhost-a0deploy-{}", std::process::id()));
    let hook = "module.exports = function (client, scope, audience, context, cb) {
  var token = {scope: scope};
  token['https://tokenhost.dev/tier'] = client.metadata.tier;
  token['https://tokenhost.dev/key_length'] = (context.secrets.HOOK_KEY || '').length;
  cb(null, token);
};";
    let action = "exports.onExecuteCredentialsExchange = async (event, api) => {
  api.accessToken.setCustomClaim('https://tokenhost.dev/by', 'action after ' + event.accessToken.customClaims['https://tokenhost.dev/tier']);
  // require('in-a-comment') is no use of it
  if (event.never) { const axios = require('axios'); }
};";
    let files = [
        (
            "resource-servers/Billing.json",
            json!({"name": "Billing", "identifier": API, "token_lifetime": 3600,
                "scopes": [{"value": "read", "description": "Read"}], "signing_alg": "RS256"})
            .to_string(),
        ),
        (
            "clients/Worker.json",
            json!({"name": "Worker", "app_type": "non_interactive", "client_id": "a0-worker",
                "client_secret": "##WORKER_SECRET##", "client_metadata": {"tier": "gold"},
                "callbacks": []})
            .to_string(),
        ),
        (
            "clients/Dashboard.json",
            json!({"name": "Dashboard", "app_type": "spa"}).to_string(),
        ),
        (
            "grants/Worker-Billing.json",
            json!({"client_id": "Worker", "audience": API, "scope": ["read"]}).to_string(),
        ),
        (
            "hooks/add-tier.json",
            json!({"name": "add-tier", "enabled": true, "script": "./add-tier.js",
                "triggerId": "credentials-exchange", "secrets": {"HOOK_KEY": "_VALUE_NOT_SHOWN_"}})
            .to_string(),
        ),
        ("hooks/add-tier.js", hook.to_string()),
        (
            "actions/mark.json",
            json!({"name": "mark", "code": "./actions/mark/code.js", "runtime": "node18",
                "supported_triggers": [{"id": "credentials-exchange", "version": "v2"}]})
            .to_string(),
        ),
        ("actions/mark/code.js", action.to_string()),
        (
            "triggers/triggers.json",
            json!({"credentials-exchange": [{"action_name": "mark", "display_name": "mark"}],
                "post-login": []})
            .to_string(),
        ),
    ];
    for (path, text) in files {
        let path = dir.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

#[tokio::test]
async fn an_auth0_deploy_cli_export_is_imported_and_its_client_keeps_its_credentials() {
    let server = TestServer::start(&[]);
    let secret = "a0-worker-secret-0123456789abcdefghijklmnopqrstuvwxyz";
    let dir = auth0_export();
    let mappings = json!({"WORKER_SECRET": secret, "HOOK_KEY": BILLING_KEY});
    let mappings = scratch("a0-mappings.json", &mappings.to_string());
    let args = [
        "import",
        "auth0",
        dir.to_str().unwrap(),
        "--keyword-mappings",
        mappings.to_str().unwrap(),
    ];
    let before = export(&server);
    let dry = tokenhost(&server, &[&args[..], &["--dry-run"]].concat());
    let out = shown(&dry);
    assert!(dry.status.success(), "{out}");
    assert!(
        out.contains("skipped client \"Dashboard\": its app_type is spa"),
        "{out}"
    );
    assert!(
        out.contains("client \"Worker\"'s fields callbacks: tokenhost does not have them"),
        "{out}"
    );
    assert!(
        out.contains("actions/mark/code.js:4: if (event.never) { const axios = require('axios'); }: uses require"),
        "{out}"
    );
    assert!(!out.contains("in-a-comment"), "{out}");
    for line in [
        "+ create client \"Worker\" (a0-worker)",
        "+ create rule \"add-tier\"",
        "+ create rule \"mark\"",
    ] {
        assert!(out.contains(line), "{line} in {out}");
    }
    assert_eq!(export(&server), before, "a dry run changes nothing");

    let imported = tokenhost(&server, &args);
    let out = shown(&imported);
    assert!(imported.status.success(), "{out}");
    assert!(!out.contains(secret) && !out.contains(BILLING_KEY), "{out}");
    let (status, body, _) = server.client_token("a0-worker", secret, API).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let claims = server
        .verify(body["access_token"].as_str().unwrap(), API)
        .await;
    assert_eq!(claims["https://tokenhost.dev/tier"], "gold", "{claims}");
    assert_eq!(
        claims["https://tokenhost.dev/key_length"],
        BILLING_KEY.len()
    );
    assert_eq!(
        claims["https://tokenhost.dev/by"], "action after gold",
        "{claims}"
    );
    assert_eq!(claims["scope"], "read", "{claims}");

    let again = tokenhost(&server, &args);
    let out = text(&again.stdout);
    assert!(again.status.success(), "{out}");
    assert!(out.ends_with("No changes.\n"), "{out}");
}
