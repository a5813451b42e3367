//! Shared helpers for tokenhost's integration tests: one engine per test process, paths
//! into the repository, and the real `tokenhost` binary.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod pg;
pub mod server;

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

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

/// Runs `program args` with `input` on stdin, killed past `limit`.
pub fn run_program(program: &str, args: &[&str], input: &[u8], limit: Duration) -> Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{program} (make test-deps installs it): {e}"));
    child.stdin.take().unwrap().write_all(input).unwrap();
    // Read both pipes while waiting: a child that fills one would otherwise block forever.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            pipe.read_to_end(&mut bytes).ok();
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > limit {
            child.kill().ok();
            child.wait().ok();
            let out = String::from_utf8_lossy(&stdout.join().unwrap()).into_owned();
            let err = String::from_utf8_lossy(&stderr.join().unwrap()).into_owned();
            panic!("{program} {args:?} ran past {limit:?}:\n{out}{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

/// A program's stdout then stderr, as text.
pub fn output_text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}
