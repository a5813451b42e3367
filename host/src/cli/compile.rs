//! `tokenhost compile rule.js -o rule.wasm`: JS to a pre-initialized component, offline.

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use super::{report_compile_error, EXIT_USAGE};
use crate::rules::RuleEngine;

pub(super) fn run(engine: &RuleEngine, input: &Path, output: &Path) -> ExitCode {
    let source = match std::fs::read_to_string(input) {
        Ok(source) => source,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", input.display());
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let started = Instant::now();
    let component = match engine.componentize_js(&source) {
        Ok(component) => component,
        Err(e) => {
            report_compile_error(input, &e);
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Check the result the way an upload would, so a component that compiles here loads
    // in the server.
    if let Err(e) = engine.compile_component(&component) {
        report_compile_error(input, &e);
        return ExitCode::from(EXIT_USAGE);
    }
    if let Err(e) = std::fs::write(output, &component) {
        eprintln!("error: cannot write {}: {e}", output.display());
        return ExitCode::from(EXIT_USAGE);
    }
    println!(
        "{} -> {} ({} bytes, {:.2} s)",
        input.display(),
        output.display(),
        component.len(),
        started.elapsed().as_secs_f64()
    );
    ExitCode::SUCCESS
}
