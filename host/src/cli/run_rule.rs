//! `tokenhost run-rule <rule.js|rule.wasm> --event event.json`: the offline test runner.
//!
//! Prints the token or the error, the rule's logs, the fuel used and the time taken; exits
//! 0 only when a token was issued (the codes: `EXIT_*` in `cli/mod.rs`).

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::error::{CliError, CliResult};
use super::progress::Spinner;
use super::{EXIT_DENIED, EXIT_RULE_FAILED, EXIT_USAGE};
use crate::rules::{Execution, Outcome, RuleEngine, RuleInput};

pub(super) fn run(engine: &RuleEngine, rule: &Path, event: Option<&Path>, json: bool) -> CliResult {
    let input = match event {
        None => RuleInput::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| CliError::unreadable(path, &e))?;
            RuleInput::from_json(&text).map_err(|e| {
                CliError::new(
                    EXIT_USAGE,
                    "invalid_event",
                    format!(
                        "{}: not a valid event: {e} (see rules/events/ for examples)",
                        path.display()
                    ),
                )
                .with("file", path.display().to_string())
            })?
        }
    };
    let bytes = std::fs::read(rule).map_err(|e| CliError::unreadable(rule, &e))?;
    let compile_started = Instant::now();
    let spinner = Spinner::start(format!("compiling {}", rule.display()));
    let compiled = if bytes.starts_with(b"\0asm") {
        engine.compile_component(&bytes)
    } else {
        let source = String::from_utf8(bytes).map_err(|_| {
            CliError::new(
                EXIT_USAGE,
                "not_a_rule",
                format!(
                    "{} is neither UTF-8 JavaScript nor a wasm component",
                    rule.display()
                ),
            )
            .with("file", rule.display().to_string())
        })?;
        engine.compile_js(&source)
    };
    let compiled = compiled.map_err(|e| CliError::compile(rule, &e))?;
    drop(spinner);
    let compile_time = compile_started.elapsed();
    let execution = engine.execute(&compiled, &input);
    if json {
        let text = serde_json::to_string_pretty(&execution)
            .map_err(|e| CliError::failed("internal", format!("cannot print the report: {e}")))?;
        println!("{text}");
    } else {
        print_report(&execution, compile_time);
    }
    Ok(match execution.outcome {
        Outcome::Issued { .. } => ExitCode::SUCCESS,
        Outcome::Denied { .. } => ExitCode::from(EXIT_DENIED),
        Outcome::Failed { .. } => ExitCode::from(EXIT_RULE_FAILED),
    })
}

fn print_report(execution: &Execution, compile_time: std::time::Duration) {
    match &execution.outcome {
        Outcome::Issued { token } => {
            let mut shown = token.claims.clone();
            shown.insert("scope".into(), token.scope.clone().into());
            let text = serde_json::to_string_pretty(&shown).unwrap_or_default();
            println!("token issued:\n{text}");
        }
        Outcome::Denied { denial } => {
            println!("no token: {} ({})", denial.code.as_str(), denial.message);
        }
        Outcome::Failed { failure } => {
            println!("rule failed: {failure}");
            if let crate::rules::Failure::Exception {
                stack: Some(stack), ..
            } = failure
            {
                println!("{stack}");
            }
        }
    }
    if !execution.logs.is_empty() {
        println!("logs:");
        for line in &execution.logs {
            println!(
                "  [{}] {}",
                format!("{:?}", line.level).to_lowercase(),
                line.message
            );
        }
    }
    println!(
        "fuel used: {}   execution: {} us   compile: {:.2} s",
        execution.fuel_used,
        execution.duration.as_micros(),
        compile_time.as_secs_f64()
    );
}
