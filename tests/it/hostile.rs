//! The hostile corpus: every attack ends in its typed failure, and the engine serves a good
//! rule right after each one.

use std::time::{Duration, Instant};

use tests::{compile, engine, event, SEED_RULE};
use tokenhost::rules::{CompileError, Failure, Limits, Outcome, RuleEngine, RuleInput};

fn assert_fails_with(source: &str, expected: impl Fn(&Failure) -> bool) -> Failure {
    fails_within(source, expected).0
}

/// The failure and how long the execution took.
fn fails_within(source: &str, expected: impl Fn(&Failure) -> bool) -> (Failure, Duration) {
    let rule = compile(source);
    let execution = engine().execute(&rule, &RuleInput::default());
    let duration = execution.duration;
    let failure = match execution.outcome {
        Outcome::Failed { failure } => failure,
        other => panic!("expected a failure from\n{source}\ngot {other:?}"),
    };
    assert!(
        expected(&failure),
        "unexpected failure {failure:?} from\n{source}"
    );
    // The engine must be unharmed: the seed rule still issues its token.
    let good = engine().execute(&compile(SEED_RULE), &event("seed.json"));
    assert!(
        good.outcome.token().is_some(),
        "after {failure:?} the seed rule got {:?}",
        good.outcome
    );
    (failure, duration)
}

const HEAD: &str = "module.exports = function (client, scope, audience, context, cb) {";

fn rule(body: &str) -> String {
    format!("{HEAD}\n{body}\n}};")
}

#[test]
fn infinite_loop_runs_out_of_fuel() {
    assert_fails_with(&rule("while (true) {}"), |f| {
        matches!(f, Failure::OutOfFuel { .. })
    });
}

#[test]
fn memory_bomb_hits_the_memory_limit() {
    assert_fails_with(
        &rule("var a = []; while (true) { a.push(new ArrayBuffer(1 << 20)); }"),
        |f| matches!(f, Failure::MemoryLimit),
    );
}

#[test]
fn string_bomb_hits_the_memory_limit() {
    // Materialized doubling, and the classic `s + s` (a rope in QuickJS, stopped by its
    // maximum string length).
    assert_fails_with(
        &rule("var s = 'x'; while (true) { s = s.repeat(2); }"),
        |f| matches!(f, Failure::MemoryLimit),
    );
    assert_fails_with(&rule("var s = 'x'; while (true) { s = s + s; }"), |f| {
        matches!(f, Failure::MemoryLimit)
    });
}

#[test]
fn deep_recursion_overflows_the_stack() {
    assert_fails_with(
        &rule("function down(n) { return down(n + 1) + 1; } down(0); cb(null, {});"),
        |f| matches!(f, Failure::StackOverflow),
    );
}

#[test]
fn throwing_a_non_error_is_a_failure() {
    let failure = assert_fails_with(&rule("throw 42;"), |f| {
        matches!(f, Failure::Exception { .. })
    });
    assert!(failure.to_string().contains("42"), "{failure}");
    assert_fails_with(&rule("throw {code: 'x'};"), |f| {
        matches!(f, Failure::Exception { .. })
    });
}

#[test]
fn callback_never_called_fails_at_once() {
    let (failure, took) = fails_within(&rule("var unused = 1;"), |f| {
        matches!(f, Failure::NoCallback)
    });
    assert_eq!(failure.to_string(), "rule finished without calling cb");
    assert!(
        took < Duration::from_millis(100),
        "took {took:?}: must not wait for the deadline"
    );
    assert_fails_with("module.exports = async function () {};", |f| {
        matches!(f, Failure::NoCallback)
    });
}

#[test]
fn callback_twice_keeps_the_first_outcome() {
    let execution = engine().execute(
        &compile(&rule("cb(new Error('first')); cb(null, {scope: []});")),
        &RuleInput::default(),
    );
    assert!(
        matches!(execution.outcome, Outcome::Denied { .. }),
        "{:?}",
        execution.outcome
    );
    assert!(execution.logs.iter().any(|l| l.message.contains("ignored")));
}

#[test]
fn oversized_claims_are_refused() {
    assert_fails_with(
        &rule("cb(null, {'https://t/big': 'x'.repeat(200 * 1024)});"),
        |f| matches!(f, Failure::ClaimsTooLarge { limit: 102_400, .. }),
    );
}

#[test]
fn require_fetch_and_process_are_unavailable() {
    let require = assert_fails_with(
        &rule("var fs = require('fs'); cb(null, {});"),
        |f| matches!(f, Failure::Exception { name, .. } if name == "ReferenceError"),
    );
    assert!(require.to_string().contains("not available"), "{require}");
    for body in ["fetch('http://127.0.0.1/')", "process.env.HOME"] {
        assert_fails_with(
            &rule(&format!("{body}; cb(null, {{}});")),
            |f| matches!(f, Failure::Exception { name, .. } if name == "ReferenceError"),
        );
    }
}

#[test]
fn log_flood_is_capped() {
    let execution = engine().execute(
        &compile(&rule(
            "for (var i = 0; i < 10000; i++) console.log('line ' + i); cb(null, {});",
        )),
        &RuleInput::default(),
    );
    let bytes: usize = execution.logs.iter().map(|l| l.message.len()).sum();
    assert!(bytes < 4 * 1024 + 200, "kept {bytes} bytes of logs");
    assert!(execution
        .logs
        .last()
        .is_some_and(|l| l.message.contains("truncated")));
}

#[test]
fn deadline_stops_a_rule_with_fuel_to_spare() {
    let limits = Limits {
        fuel: u64::MAX / 2,
        deadline: Duration::from_millis(200),
        ..Limits::default()
    };
    let engine = RuleEngine::new(limits).unwrap();
    let rule = engine.compile_js(&rule("while (true) {}")).unwrap();
    let started = Instant::now();
    let execution = engine.execute(&rule, &RuleInput::default());
    let elapsed = started.elapsed();
    assert!(
        matches!(
            execution.outcome,
            Outcome::Failed {
                failure: Failure::Deadline { deadline_ms: 200 }
            }
        ),
        "{:?}",
        execution.outcome
    );
    assert!(
        elapsed < Duration::from_millis(300),
        "stopped after {elapsed:?}"
    );
}

#[test]
fn top_level_infinite_loop_fails_the_upload() {
    let error = engine().compile_js("while (true) {}").unwrap_err();
    assert!(matches!(error, CompileError::TopLevel { .. }), "{error:?}");
    // The top level's own budget, four executions' worth, not one execution's.
    let budget = Limits::default().fuel * 4;
    assert!(
        error
            .to_string()
            .contains(&format!("out of fuel ({budget} units)")),
        "{error}"
    );
}

#[test]
fn oversized_source_is_refused() {
    let source = format!(
        "// {}\nmodule.exports = function (c, s, a, x, cb) {{ cb(null, {{}}); }};",
        "x".repeat(101 * 1024)
    );
    assert!(matches!(
        engine().compile_js(&source),
        Err(CompileError::TooLarge { .. })
    ));
}
