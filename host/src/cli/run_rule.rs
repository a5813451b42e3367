//! `tokenhost run-rule <rule.js|rule.wasm> --event event.json`: the offline test runner.
//!
//! Prints the token or the error, the rule's logs, the fuel used and the time taken; exits
//! 0 only when a token was issued.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::{report_compile_error, EXIT_DENIED, EXIT_FAILED, EXIT_USAGE};
use crate::rules::{Execution, Outcome, RuleEngine, RuleInput};

pub(super) fn run(engine: &RuleEngine, rule: &Path, event: Option<&Path>, json: bool) -> ExitCode {
    let input = match event.map(std::fs::read_to_string) {
        None => RuleInput::default(),
        Some(Ok(text)) => match RuleInput::from_json(&text) {
            Ok(input) => input,
            Err(e) => {
                eprintln!(
                    "error: {}: not a valid event: {e}",
                    event
                        .map(Path::display)
                        .map(|d| d.to_string())
                        .unwrap_or_default()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        },
        Some(Err(e)) => {
            eprintln!("error: cannot read the event file: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let bytes = match std::fs::read(rule) {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", rule.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let compile_started = Instant::now();
    let compiled = if bytes.starts_with(b"\0asm") {
        engine.compile_component(&bytes)
    } else {
        match String::from_utf8(bytes) {
            Ok(source) => engine.compile_js(&source),
            Err(_) => {
                eprintln!(
                    "error: {} is neither UTF-8 JavaScript nor a wasm component",
                    rule.display()
                );
                return ExitCode::from(EXIT_USAGE);
            }
        }
    };
    let compiled = match compiled {
        Ok(compiled) => compiled,
        Err(e) => {
            report_compile_error(rule, &e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let compile_time = compile_started.elapsed();
    let execution = engine.execute(&compiled, &input);
    if json {
        match serde_json::to_string_pretty(&execution) {
            Ok(text) => println!("{text}"),
            Err(e) => eprintln!("error: cannot print the report: {e}"),
        }
    } else {
        print_report(&execution, compile_time);
    }
    match execution.outcome {
        Outcome::Issued { .. } => ExitCode::SUCCESS,
        Outcome::Denied { .. } => ExitCode::from(EXIT_DENIED),
        Outcome::Failed { .. } => ExitCode::from(EXIT_FAILED),
    }
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
