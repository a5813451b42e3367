//! `tokenhost compile rule.js -o rule.wasm`: JS to a pre-initialized component, offline.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::error::{CliError, CliResult};
use super::progress::Spinner;
use super::EXIT_USAGE;
use crate::rules::RuleEngine;

pub(super) fn run(engine: &RuleEngine, input: &Path, output: &Path) -> CliResult {
    let source = std::fs::read_to_string(input).map_err(|e| CliError::unreadable(input, &e))?;
    let started = Instant::now();
    let spinner = Spinner::start(format!("compiling {}", input.display()));
    let component = engine
        .componentize_js(&source)
        .map_err(|e| CliError::compile(input, &e))?;
    // Check the result the way an upload would, so a component that compiles here loads
    // in the server.
    engine
        .compile_component(&component)
        .map_err(|e| CliError::compile(input, &e))?;
    drop(spinner);
    std::fs::write(output, &component).map_err(|e| {
        CliError::new(
            EXIT_USAGE,
            "unwritable_file",
            format!("cannot write {}: {e}", output.display()),
        )
        .with("file", output.display().to_string())
    })?;
    println!(
        "{} -> {} ({} bytes, {:.2} s)",
        input.display(),
        output.display(),
        component.len(),
        started.elapsed().as_secs_f64()
    );
    Ok(ExitCode::SUCCESS)
}
