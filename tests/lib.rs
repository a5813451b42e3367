//! Shared helpers for tokenhost's integration tests: one engine per test process, paths
//! into the repository, and the real `tokenhost` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pg;
pub mod server;

use std::path::PathBuf;
use std::sync::OnceLock;

use tokenhost::rules::{CompiledRule, Execution, Limits, RuleEngine, RuleInput};

/// The repository's root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The engine all tests share (its JS pre-initializer is built once per process).
pub fn engine() -> &'static RuleEngine {
    static ENGINE: OnceLock<RuleEngine> = OnceLock::new();
    ENGINE.get_or_init(|| RuleEngine::new(Limits::default()).expect("engine"))
}

/// Compiles JS source, failing the test with the compile error.
pub fn compile(source: &str) -> CompiledRule {
    engine()
        .compile_js(source)
        .unwrap_or_else(|e| panic!("compile failed: {e}"))
}

/// Compiles a file of `rules/`.
pub fn compile_rule_file(name: &str) -> CompiledRule {
    let source = std::fs::read_to_string(repo().join("rules").join(name)).expect("read rule");
    compile(&source)
}

/// Reads an event file of `rules/events/`.
pub fn event(name: &str) -> RuleInput {
    let text = std::fs::read_to_string(repo().join("rules/events").join(name)).expect("read event");
    RuleInput::from_json(&text).expect("event json")
}

/// Compiles and runs `source` once on `input`.
pub fn run(source: &str, input: &RuleInput) -> Execution {
    engine().execute(&compile(source), input)
}

/// The release `tokenhost` binary (`make test` builds it first).
pub fn tokenhost_bin() -> PathBuf {
    let path = std::env::var_os("TOKENHOST_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/release/tokenhost"));
    assert!(
        path.exists(),
        "{} is missing: run `make test` (it builds the binary first)",
        path.display()
    );
    path
}

/// The seed rule, as the README and the seed document show it.
pub const SEED_RULE: &str = include_str!("../rules/myrule.js");
