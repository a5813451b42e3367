//! Actions-style rules (`exports.onExecuteCredentialsExchange = async (event, api) => ...`)
//! through the public engine API: the event they see, what `api` decides, and the per-rule
//! cache the host keeps for them; then one uploaded to the real server.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;
use tests::server::TestServer;
use tests::{compile, compile_rule_file, engine, event, repo, run};
use tokenhost::rules::{DenialCode, Execution, Failure, Level, Outcome, RuleInput, Token};

fn token(outcome: &Outcome) -> &Token {
    match outcome {
        Outcome::Issued { token } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

fn denial(outcome: &Outcome) -> (DenialCode, &str) {
    match outcome {
        Outcome::Denied { denial } => (denial.code, denial.message.as_str()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

fn failure(outcome: &Outcome) -> &Failure {
    match outcome {
        Outcome::Failed { failure } => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn with_metadata(pairs: serde_json::Value) -> RuleInput {
    RuleInput::from_json(&json!({"client": {"id": "c1", "metadata": pairs}}).to_string()).unwrap()
}

/// The value of claim `https://t/out` of an issued token.
fn out(execution: &Execution) -> &serde_json::Value {
    &token(&execution.outcome).claims["https://t/out"]
}

#[test]
fn event_says_how_the_client_proved_itself() {
    let rule = compile(
        "exports.onExecuteCredentialsExchange = async (event, api) => {
           const auth = event.client_authentication;
           api.accessToken.setCustomClaim('https://t/out', [auth.method, auth.credential_id, event.dpop?.jkt ?? 'none']);
         };",
    );
    // The example event file: private_key_jwt with a DPoP proof.
    let signed = engine().execute(&rule, &event("private-key-jwt.json"));
    assert_eq!(
        out(&signed),
        &json!([
            "private_key_jwt",
            "cred_2xW9vTq4",
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        ])
    );
    let basic = RuleInput::from_json(
        r#"{"context": {"client_authentication": {"method": "client_secret_basic"}}}"#,
    )
    .unwrap();
    assert_eq!(
        out(&engine().execute(&rule, &basic)),
        &json!(["client_secret_basic", null, "none"])
    );
    let plain = engine().execute(&rule, &RuleInput::default());
    assert_eq!(out(&plain), &json!(["client_secret_post", null, "none"]));
}

#[test]
fn the_example_rule_issues_its_claim_and_denies_without_a_tier() {
    let rule = compile_rule_file("actions.js");
    let gold = engine().execute(&rule, &event("gold-client.json"));
    let issued = token(&gold.outcome);
    // No scope change: the scope as given.
    assert_eq!(issued.scope, vec!["read:reports", "admin"]);
    assert_eq!(issued.claims["https://tokenhost.dev/tier"], json!("gold"));
    let first_seen = issued.claims["https://tokenhost.dev/first_seen"].clone();
    assert!(
        first_seen.as_str().is_some_and(|s| s.ends_with('Z')),
        "{first_seen}"
    );

    // The second exchange finds the first one's entry in the rule's cache.
    let again = engine().execute(&rule, &event("gold-client.json"));
    assert_eq!(
        token(&again.outcome).claims["https://tokenhost.dev/first_seen"],
        first_seen
    );

    let none = engine().execute(&rule, &event("no-metadata.json"));
    assert_eq!(
        denial(&none.outcome),
        (
            DenialCode::InvalidRequest,
            "client anonymous-client has no tier in its metadata"
        )
    );
}

#[test]
fn the_event_carries_every_input() {
    let input = RuleInput::from_json(
        r#"{"client": {"id": "c9", "name": "Nine", "tenant": "acme", "metadata": {"tier": "gold"}},
            "scope": ["read", "write"], "audience": "https://api.example.com/",
            "context": {"ip": "198.51.100.4", "userAgent": "curl/8", "hostname": "auth.example.com",
                        "request": {"method": "POST", "body": {"n": 3}},
                        "secrets": {"API_KEY": "k1"},
                        "accessToken": {"scope": ["read", "write"], "customClaims": {"https://t/first": 1}},
                        "clientAuthentication": {"method": "private_key_jwt", "credential_id": "cred_1"},
                        "dpop": {"jkt": "j1"}}}"#,
    )
    .unwrap();
    let execution = run(
        "exports.onExecuteCredentialsExchange = async (event, api) => {
           api.accessToken.setCustomClaim('https://t/out', event);
         };",
        &input,
    );
    assert_eq!(
        out(&execution),
        &json!({
            "client": {"client_id": "c9", "name": "Nine", "metadata": {"tier": "gold"}},
            "resource_server": {"identifier": "https://api.example.com/"},
            "request": {"ip": "198.51.100.4", "user_agent": "curl/8", "hostname": "auth.example.com",
                        "method": "POST", "body": {"n": 3}},
            "transaction": {"requested_scopes": ["read", "write"]},
            "accessToken": {"scope": ["read", "write"], "customClaims": {"https://t/first": 1}},
            "tenant": {"id": "acme"},
            "secrets": {"API_KEY": "k1"},
            "client_authentication": {"method": "private_key_jwt", "credential_id": "cred_1"},
            "dpop": {"jkt": "j1"}
        })
    );
}

#[test]
fn claims_and_scopes_are_shaped_through_api() {
    let input = RuleInput::from_json(r#"{"scope": ["a", "b"]}"#).unwrap();
    // `module.exports.x` and a plain (not async) handler work too; later claims win, and a
    // claim the host never takes from a rule is dropped with a log line, as in the legacy style.
    let execution = run(
        "module.exports.onExecuteCredentialsExchange = function (event, api) {
           api.accessToken.setCustomClaim('https://t/out', 1).accessToken.setCustomClaim('https://t/out', 2);
           api.accessToken.setCustomClaim('sub', 'me');
           api.accessToken.addScope('c').accessToken.removeScope('a');
         };",
        &input,
    );
    let issued = token(&execution.outcome);
    assert_eq!(issued.scope, vec!["b", "c"]);
    assert_eq!(issued.claims.len(), 1, "{:?}", issued.claims);
    assert_eq!(issued.claims["https://t/out"], json!(2));
    assert!(
        execution.logs.iter().any(|l| l.message.contains("sub")),
        "{:?}",
        execution.logs
    );
}

#[test]
fn deny_gives_each_code_and_the_first_outcome_wins() {
    let rule = compile(
        "exports.onExecuteCredentialsExchange = async (event, api) => {
           api.access.deny(event.client.metadata.code, 'because ' + event.client.metadata.code);
           // Neither a second denial nor a claim set afterwards changes the outcome.
           api.access.deny('server_error', 'second');
           api.accessToken.setCustomClaim('https://t/late', true);
         };",
    );
    for code in [
        DenialCode::InvalidScope,
        DenialCode::InvalidRequest,
        DenialCode::ServerError,
        DenialCode::AccessDenied,
        DenialCode::UnauthorizedClient,
    ] {
        let input = with_metadata(json!({"code": code.as_str()}));
        let execution = engine().execute(&rule, &input);
        let reason = format!("because {}", code.as_str());
        assert_eq!(denial(&execution.outcome), (code, reason.as_str()));
        assert!(
            execution
                .logs
                .iter()
                .any(|l| l.level == Level::Warn && l.message.contains("second outcome")),
            "{:?}",
            execution.logs
        );
    }
    // An unknown code is a bug in the rule, said clearly.
    let unknown = engine().execute(&rule, &with_metadata(json!({"code": "nope"})));
    match failure(&unknown.outcome) {
        Failure::Exception { name, message, .. } => {
            assert_eq!(name, "TypeError");
            assert!(message.contains("invalid_scope"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn exceptions_are_classified_as_in_the_legacy_style() {
    let rule = compile(
        "exports.onExecuteCredentialsExchange = async (event, api) => {
           const what = event.client.metadata.throw;
           if (what === 'Error') throw new Error('plain');
           if (what === 'InvalidScopeError') throw new InvalidScopeError('typed');
           if (what === 'string') throw 'a string';
           if (what === 'TypeError') null.boom();
           if (what === 'number') throw 42;
           if (what === 'pending') await new Promise(() => {});
         };",
    );
    let outcome = |what: &str| {
        engine()
            .execute(&rule, &with_metadata(json!({ "throw": what })))
            .outcome
    };
    assert_eq!(
        denial(&outcome("Error")),
        (DenialCode::AccessDenied, "plain")
    );
    assert_eq!(
        denial(&outcome("InvalidScopeError")),
        (DenialCode::InvalidScope, "typed")
    );
    assert_eq!(
        denial(&outcome("string")),
        (DenialCode::AccessDenied, "a string")
    );
    match failure(&outcome("TypeError")) {
        Failure::Exception { name, stack, .. } => {
            assert_eq!(name, "TypeError");
            assert!(
                stack.as_deref().unwrap_or("").contains("rule.js"),
                "{stack:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        failure(&outcome("number")),
        Failure::Exception { name, .. } if name == "number"
    ));
    assert_eq!(failure(&outcome("pending")), &Failure::NoCallback);
    // Nothing thrown, no deny: the token.
    assert!(outcome("nothing").token().is_some());
}

/// A rule that runs one cache operation per execution, chosen by the client's metadata,
/// and puts what it got in `https://t/out`.
const CACHE_RULE: &str = "exports.onExecuteCredentialsExchange = async (event, api) => {
  const m = event.client.metadata;
  let got;
  if (m.op === 'get') got = api.cache.get(m.key) ?? null;
  if (m.op === 'set') got = api.cache.set(m.key, m.value, m.ttl === undefined ? undefined : { ttl: Number(m.ttl) });
  if (m.op === 'delete') got = api.cache.delete(m.key);
  if (m.op === 'big') got = api.cache.set('k', 'x'.repeat(Number(m.size)));
  if (m.op === 'longkey') got = api.cache.set('k'.repeat(257), 'v');
  if (m.op === 'expires_at') got = api.cache.set('k', 'v', { expires_at: Date.now() - 1 });
  if (m.op === 'number') got = api.cache.set('k', 42);
  api.accessToken.setCustomClaim('https://t/out', got);
};";

fn cache_op(rule: &tokenhost::rules::CompiledRule, op: serde_json::Value) -> serde_json::Value {
    let execution = engine().execute(rule, &with_metadata(op));
    match &execution.outcome {
        Outcome::Issued { token } => token.claims["https://t/out"].clone(),
        other => json!({ "outcome": format!("{other:?}") }),
    }
}

#[test]
fn the_cache_keeps_values_across_executions_of_one_rule_only() {
    let rule = compile(CACHE_RULE);
    let other = compile(CACHE_RULE);
    assert_eq!(
        cache_op(&rule, json!({"op": "set", "key": "k", "value": "v1"})),
        json!({"type": "success"})
    );
    let got = cache_op(&rule, json!({"op": "get", "key": "k"}));
    assert_eq!(got["value"], json!("v1"));
    // 15 minutes by default, reported in milliseconds since the epoch.
    let expires_at = got["expires_at"].as_f64().unwrap();
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    assert!(
        (expires_at - now_ms - 900_000.0).abs() < 10_000.0,
        "{expires_at} vs {now_ms}"
    );
    // Another rule (the same source, compiled separately) has its own cache.
    assert_eq!(
        cache_op(&other, json!({"op": "get", "key": "k"})),
        json!(null)
    );
    assert_eq!(rule.cache().len(), 1);
    assert!(other.cache().is_empty());

    assert_eq!(
        cache_op(&rule, json!({"op": "delete", "key": "k"})),
        json!({"type": "success"})
    );
    assert_eq!(
        cache_op(&rule, json!({"op": "get", "key": "k"})),
        json!(null)
    );
}

#[test]
fn cache_entries_expire_after_their_ttl() {
    let rule = compile(CACHE_RULE);
    cache_op(
        &rule,
        json!({"op": "set", "key": "short", "value": "v", "ttl": "150"}),
    );
    assert_eq!(
        cache_op(&rule, json!({"op": "get", "key": "short"}))["value"],
        json!("v")
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        cache_op(&rule, json!({"op": "get", "key": "short"})),
        json!(null)
    );
}

#[test]
fn cache_limits_come_back_as_error_results() {
    let rule = compile(CACHE_RULE);
    let at_limit = cache_op(&rule, json!({"op": "big", "size": "2048"}));
    assert_eq!(at_limit, json!({"type": "success"}));
    let over = cache_op(&rule, json!({"op": "big", "size": "2049"}));
    assert_eq!(over["type"], json!("error"));
    assert_eq!(over["code"], json!("value_too_large"));
    assert!(over["message"].as_str().unwrap().contains("2048"), "{over}");
    let long_key = cache_op(&rule, json!({"op": "longkey"}));
    assert_eq!(long_key["code"], json!("key_too_long"));
    for ttl in ["0", "-5", "86400001"] {
        let refused = cache_op(
            &rule,
            json!({"op": "set", "key": "k", "value": "v", "ttl": ttl}),
        );
        assert_eq!(
            refused["code"],
            json!("invalid_ttl"),
            "ttl {ttl}: {refused}"
        );
    }
    assert_eq!(
        cache_op(&rule, json!({"op": "expires_at"}))["code"],
        json!("invalid_ttl")
    );
    // Nothing refused was stored: the 2048-byte value is still there.
    assert_eq!(rule.cache().len(), 1);

    // A value that is not a string is a bug in the rule, not a limit.
    let wrong_type = engine().execute(&rule, &with_metadata(json!({"op": "number"})));
    match failure(&wrong_type.outcome) {
        Failure::Exception { name, message, .. } => {
            assert_eq!(name, "TypeError");
            assert!(message.contains("value must be a string"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn the_cache_holds_at_most_256_entries() {
    let rule = compile(
        "exports.onExecuteCredentialsExchange = async (event, api) => {
           for (let i = 0; i < 300; i++) api.cache.set('k' + i, 'v', { ttl: 60000 + i });
           api.accessToken.setCustomClaim('https://t/out', [api.cache.get('k0') ?? null, api.cache.get('k299')?.value]);
         };",
    );
    let execution = engine().execute(&rule, &RuleInput::default());
    // The entries closest to expiry made room.
    assert_eq!(out(&execution), &json!([null, "v"]));
    assert_eq!(rule.cache().len(), 256);
}

#[test]
fn a_rule_exporting_neither_style_is_refused() {
    let error = engine()
        .compile_js("exports.onExecuteSomethingElse = async () => {};")
        .unwrap_err();
    let message = error.to_string();
    assert!(
        message.contains("onExecuteCredentialsExchange"),
        "{message}"
    );
    assert!(message.contains("module.exports"), "{message}");
}

#[tokio::test]
async fn an_uploaded_actions_rule_issues_its_claim_and_denies_with_its_code() {
    const API: &str = "https://api.example.com/";
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (gold, gold_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({"tier": "gold"}))
        .await;
    let (bare, bare_secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let script = std::fs::read_to_string(repo().join("rules/actions.js")).unwrap();
    let rule = server.add_rule(&admin, "actions", &script).await;

    let mut first_seen = None;
    for _ in 0..2 {
        let (status, body, _) = server.client_token(&gold, &gold_secret, API).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["scope"], "test");
        let claims = server
            .verify(body["access_token"].as_str().unwrap(), API)
            .await;
        assert_eq!(claims["https://tokenhost.dev/tier"], "gold");
        // The second request reads what the first left in the rule's cache.
        let seen = claims["https://tokenhost.dev/first_seen"].clone();
        assert!(seen.is_string(), "{claims}");
        assert_eq!(first_seen.get_or_insert_with(|| seen.clone()), &seen);
    }

    let (status, body, _) = server.client_token(&bare, &bare_secret, API).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        json!({"error": "invalid_request", "error_description": format!("client {bare} has no tier in its metadata")})
    );

    let deny = "exports.onExecuteCredentialsExchange = async (event, api) => {
      api.access.deny('access_denied', 'no tokens for ' + event.client.metadata.tier);
    };";
    let (status, body) = server
        .api(
            &admin,
            Method::PATCH,
            &format!("/rules/{rule}"),
            Some(json!({"script": deny})),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body, _) = server.client_token(&gold, &gold_secret, API).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(
        body,
        json!({"error": "access_denied", "error_description": "no tokens for gold"})
    );
}
