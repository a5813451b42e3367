//! The JS rule environment and outcome semantics, through the public engine API.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use tests::{compile, compile_rule_file, engine, event, run, SEED_RULE};
use tokenhost::rules::{
    ArtifactKey, ClientAuthenticationInfo, CompileError, DenialCode, DpopInfo, Failure, Level,
    Outcome, RuleInput, Token,
};

fn token(outcome: &Outcome) -> &Token {
    match outcome {
        Outcome::Issued { token } => token,
        other => panic!("expected a token, got {other:?}"),
    }
}

fn failure(outcome: &Outcome) -> &Failure {
    match outcome {
        Outcome::Failed { failure } => failure,
        other => panic!("expected a failure, got {other:?}"),
    }
}

fn denial(outcome: &Outcome) -> (DenialCode, &str) {
    match outcome {
        Outcome::Denied { denial } => (denial.code, denial.message.as_str()),
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[test]
fn seed_rule_adds_its_claim_and_the_extra_scope() {
    let execution = engine().execute(&compile_rule_file("myrule.js"), &event("seed.json"));
    let token = token(&execution.outcome);
    assert_eq!(token.scope, vec!["test", "extra"]);
    assert_eq!(
        token.claims.get("https://foo.com/claim"),
        Some(&json!("bar"))
    );
    assert!(execution.logs.is_empty(), "{:?}", execution.logs);
}

/// A cost regression in the runtime shows up here, in review.
#[test]
fn seed_rule_fuel_is_pinned() {
    let rule = compile(SEED_RULE);
    let fuel = engine().execute(&rule, &event("seed.json")).fuel_used;
    const EXPECTED: u64 = 35_000;
    const THRESHOLD_PCT: u64 = 10;
    let delta = fuel.abs_diff(EXPECTED) * 100 / EXPECTED;
    assert!(
        delta <= THRESHOLD_PCT,
        "seed rule used {fuel} fuel, expected {EXPECTED} +/- {THRESHOLD_PCT}%"
    );
}

#[test]
fn plain_error_is_a_denial() {
    let execution = engine().execute(&compile_rule_file("deny.js"), &event("seed.json"));
    assert_eq!(
        denial(&execution.outcome),
        (DenialCode::AccessDenied, "access denied")
    );
    assert_eq!(
        execution.logs[0].message,
        "denying m2m-client for https://api.example.com/"
    );
}

#[test]
fn metadata_rule_reads_client_metadata() {
    let rule = compile_rule_file("metadata.js");
    let gold = engine().execute(&rule, &event("gold-client.json"));
    assert_eq!(
        token(&gold.outcome)
            .claims
            .get("https://tokenhost.dev/tier"),
        Some(&json!("gold"))
    );
    let none = engine().execute(&rule, &event("no-metadata.json"));
    let (code, message) = denial(&none.outcome);
    assert_eq!(code, DenialCode::InvalidRequest);
    assert!(message.contains("anonymous-client"), "{message}");
}

#[test]
fn async_rule_resolves_to_its_token() {
    let execution = engine().execute(&compile_rule_file("async.js"), &event("gold-client.json"));
    let token = token(&execution.outcome);
    assert_eq!(token.scope, vec!["read:reports"]);
    assert_eq!(
        token.claims.get("https://tokenhost.dev/region"),
        Some(&json!("us"))
    );
}

#[test]
fn async_rejection_and_typed_errors_map_to_their_codes() {
    let cases = [
        ("cb(new InvalidScopeError('no'))", DenialCode::InvalidScope),
        (
            "cb(new InvalidRequestError('no'))",
            DenialCode::InvalidRequest,
        ),
        (
            "cb(new UnauthorizedClientError('no'))",
            DenialCode::UnauthorizedClient,
        ),
        ("cb(new ServerError('no'))", DenialCode::ServerError),
        ("cb('no')", DenialCode::AccessDenied),
        ("throw new Error('no')", DenialCode::AccessDenied),
    ];
    for (body, code) in cases {
        let source = format!(
            "module.exports = function (client, scope, audience, context, cb) {{ {body}; }};"
        );
        let execution = run(&source, &RuleInput::default());
        assert_eq!(denial(&execution.outcome), (code, "no"), "{body}");
    }
    let rejected = run(
        "module.exports = async function () { throw new InvalidScopeError('async no'); };",
        &RuleInput::default(),
    );
    assert_eq!(
        denial(&rejected.outcome),
        (DenialCode::InvalidScope, "async no")
    );
}

#[test]
fn type_error_is_a_failure_with_stack() {
    let execution = run(
        "module.exports = function (client, scope, audience, context, cb) {\n  null.boom();\n};",
        &RuleInput::default(),
    );
    match failure(&execution.outcome) {
        Failure::Exception { name, stack, .. } => {
            assert_eq!(name, "TypeError");
            assert!(
                stack.as_deref().unwrap_or("").contains("rule.js:2"),
                "{stack:?}"
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn second_callback_is_ignored_and_logged() {
    let execution = run(
        "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: ['one']}); cb(new Error('late')); };",
        &RuleInput::default(),
    );
    assert_eq!(token(&execution.outcome).scope, vec!["one"]);
    assert!(execution
        .logs
        .iter()
        .any(|l| l.level == Level::Warn && l.message.contains("second outcome")));
}

#[test]
fn no_state_survives_between_executions() {
    let counter = compile(
        "var count = 0;\nmodule.exports = function (c, s, a, ctx, cb) { count++; cb(null, {'https://t/count': count}); };",
    );
    for _ in 0..3 {
        let execution = engine().execute(&counter, &RuleInput::default());
        assert_eq!(
            token(&execution.outcome).claims.get("https://t/count"),
            Some(&json!(1))
        );
    }
    let patcher = compile(
        "module.exports = function (c, s, a, ctx, cb) {\n  var seen = ({}).polluted;\n  Object.prototype.polluted = 'yes';\n  cb(null, {'https://t/seen': String(seen)});\n};",
    );
    for _ in 0..2 {
        let execution = engine().execute(&patcher, &RuleInput::default());
        assert_eq!(
            token(&execution.outcome).claims.get("https://t/seen"),
            Some(&json!("undefined"))
        );
    }
}

#[test]
fn date_follows_the_host_clock_and_random_differs_per_execution() {
    // Math.random is also called at the top level, i.e. while the snapshot is taken.
    let rule = compile(
        "var atInit = Math.random();\nmodule.exports = function (c, s, a, ctx, cb) { cb(null, {'https://t/now': Date.now(), 'https://t/r': Math.random()}); };",
    );
    let first = engine().execute(&rule, &RuleInput::default());
    let second = engine().execute(&rule, &RuleInput::default());
    let host_now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as f64;
    let guest_now = token(&second.outcome).claims["https://t/now"]
        .as_f64()
        .unwrap();
    assert!(
        (host_now - guest_now).abs() < 1000.0,
        "guest {guest_now} host {host_now}"
    );
    assert_ne!(
        token(&first.outcome).claims["https://t/r"],
        token(&second.outcome).claims["https://t/r"]
    );
}

#[test]
fn unnamespaced_and_registered_claims_are_dropped_with_a_log_line() {
    let execution = run(
        "module.exports = function (c, s, a, ctx, cb) { cb(null, {sub: 'evil', plain: 1, 'https://ok.dev/x': 2}); };",
        &RuleInput::default(),
    );
    let token = token(&execution.outcome);
    assert_eq!(token.claims.len(), 1);
    assert!(
        token.scope.is_empty(),
        "a rule that leaves scope out grants none"
    );
    assert_eq!(
        execution
            .logs
            .iter()
            .filter(|l| l.message.contains("dropped"))
            .count(),
        2
    );
}

#[test]
fn unserializable_tokens_are_invalid_results() {
    for (value, expect) in [
        ("{'https://t/f': function () {}}", "function"),
        (
            "(function () { var o = {}; o.self = o; return {'https://t/c': o}; })()",
            "circular",
        ),
        ("{'https://t/b': 10n}", "BigInt"),
        ("'a string'", "token object"),
        ("{scope: 'read write'}", "array of strings"),
    ] {
        let source =
            format!("module.exports = function (c, s, a, ctx, cb) {{ cb(null, {value}); }};");
        let execution = run(&source, &RuleInput::default());
        match failure(&execution.outcome) {
            Failure::InvalidResult { message } => {
                assert!(
                    message.to_lowercase().contains(&expect.to_lowercase()),
                    "{value}: {message}"
                )
            }
            other => panic!("{value}: {other:?}"),
        }
    }
}

#[test]
fn chain_context_sees_the_token_so_far() {
    let input = RuleInput::from_json(
        r#"{"scope": ["a"], "context": {"accessToken": {"scope": ["a", "b"], "customClaims": {"https://t/first": "one"}}}}"#,
    )
    .unwrap();
    let execution = run(
        "module.exports = function (c, s, a, ctx, cb) { cb(null, {scope: ctx.accessToken.scope, 'https://t/saw': ctx.accessToken.customClaims['https://t/first']}); };",
        &input,
    );
    let token = token(&execution.outcome);
    assert_eq!(token.scope, vec!["a", "b"]);
    assert_eq!(token.claims["https://t/saw"], json!("one"));
}

#[test]
fn context_carries_request_and_secrets() {
    let input = RuleInput::from_json(
        r#"{"context": {"ip": "198.51.100.4", "request": {"body": {"audience": "x", "n": 3}}, "webtask": {"secrets": {"API_KEY": "k1"}}}}"#,
    )
    .unwrap();
    let execution = run(
        "module.exports = function (c, s, a, ctx, cb) { cb(null, {'https://t/v': [ctx.ip, ctx.request.body.n, ctx.webtask.secrets.API_KEY, ctx.secrets.API_KEY, c.tenant]}); };",
        &input,
    );
    assert_eq!(
        token(&execution.outcome).claims["https://t/v"],
        json!(["198.51.100.4", 3, "k1", "k1", "default"])
    );
}

#[test]
fn context_says_how_the_client_proved_itself() {
    let rule = compile(
        "module.exports = function (c, s, a, ctx, cb) {
           var auth = ctx.clientAuthentication;
           cb(null, {'https://t/auth': [auth.method, auth.credential_id],
                     'https://t/dpop': 'dpop' in ctx ? ctx.dpop.jkt : 'none'});
         };",
    );
    let bound = RuleInput {
        client_authentication: ClientAuthenticationInfo {
            method: "private_key_jwt".into(),
            credential_id: Some("cred_7".into()),
        },
        dpop: Some(DpopInfo {
            jkt: "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs".into(),
        }),
        ..RuleInput::default()
    };
    let execution = engine().execute(&rule, &bound);
    let claims = &token(&execution.outcome).claims;
    assert_eq!(
        claims["https://t/auth"],
        json!(["private_key_jwt", "cred_7"])
    );
    assert_eq!(
        claims["https://t/dpop"],
        json!("NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs")
    );

    // The defaults, on the same rule after a DPoP-bound execution: a secret in the body, no
    // credential (null), and no `dpop` at all.
    let execution = engine().execute(&rule, &RuleInput::default());
    let claims = &token(&execution.outcome).claims;
    assert_eq!(
        claims["https://t/auth"],
        json!(["client_secret_post", null])
    );
    assert_eq!(claims["https://t/dpop"], json!("none"));
}

#[test]
fn a_prototype_setter_named_dpop_never_sees_the_proof() {
    // `dpop` is defined on the context as a literal would define it, not assigned.
    let input = RuleInput {
        dpop: Some(DpopInfo { jkt: "k".into() }),
        ..RuleInput::default()
    };
    let execution = run(
        "var seen = 'nothing';
         Object.defineProperty(Object.prototype, 'dpop', {set: function (v) { seen = v.jkt; }, configurable: true});
         module.exports = function (c, s, a, ctx, cb) {
           cb(null, {'https://t/v': [seen, Object.keys(ctx).indexOf('dpop') !== -1, ctx.dpop.jkt]});
         };",
        &input,
    );
    assert_eq!(
        token(&execution.outcome).claims["https://t/v"],
        json!(["nothing", true, "k"])
    );
}

#[test]
fn syntax_error_is_a_compile_error_with_line_and_column() {
    let error = engine()
        .compile_js("module.exports = function (c, s, a, ctx, cb) {\n  var x = ;\n};")
        .unwrap_err();
    match error {
        CompileError::Script {
            line,
            column,
            message,
            ..
        } => {
            assert_eq!(line, 2, "{message}");
            assert!(column > 0, "{message}");
            assert!(message.contains("SyntaxError"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn top_level_exception_and_missing_export_are_compile_errors() {
    let thrown = engine()
        .compile_js("console.log('loading');\nthrow new TypeError('bad config');")
        .unwrap_err();
    match &thrown {
        CompileError::Script {
            line,
            message,
            logs,
            ..
        } => {
            assert_eq!(*line, 2);
            assert!(message.contains("bad config"));
            assert_eq!(logs[0].message, "loading");
        }
        other => panic!("{other:?}"),
    }
    let missing = engine().compile_js("var x = 1;").unwrap_err();
    assert!(missing.to_string().contains("module.exports"), "{missing}");
}

#[test]
fn sealed_artifacts_load_back_only_with_their_key() {
    let rule = compile(SEED_RULE);
    let (key, _) = ArtifactKey::generate().unwrap();
    let sealed = engine().seal(&rule, &key).unwrap();
    let loaded = engine().load(&sealed, &key).unwrap();
    assert!(engine()
        .execute(&loaded, &event("seed.json"))
        .outcome
        .token()
        .is_some());

    let (other_key, _) = ArtifactKey::generate().unwrap();
    assert!(
        engine().load(&sealed, &other_key).is_err(),
        "another server's artifact must not load"
    );
    let mut tampered = sealed.clone();
    let last = tampered.len() - 1;
    tampered[last] ^= 0x55;
    assert!(
        engine().load(&tampered, &key).is_err(),
        "a tampered artifact must not load"
    );
}
