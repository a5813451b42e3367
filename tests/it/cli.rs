//! The offline workflow through the real binary: compile, then run-rule.

use std::process::Command;

use tests::{repo, tokenhost_bin};

#[test]
fn compile_then_run_rule_prints_the_token() {
    let dir = std::env::temp_dir().join(format!("tokenhost-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let wasm = dir.join("myrule.wasm");
    let compiled = Command::new(tokenhost_bin())
        .args(["compile", "rules/myrule.js", "-o"])
        .arg(&wasm)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        compiled.status.success(),
        "{}",
        String::from_utf8_lossy(&compiled.stderr)
    );

    let ran = Command::new(tokenhost_bin())
        .arg("run-rule")
        .arg(&wasm)
        .args(["--event", "rules/events/seed.json"])
        .current_dir(repo())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&ran.stdout);
    assert!(
        ran.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ran.stderr)
    );
    assert!(
        stdout.contains("\"https://foo.com/claim\": \"bar\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"extra\""), "{stdout}");
    assert!(stdout.contains("fuel used:"), "{stdout}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn run_rule_exits_non_zero_without_a_token() {
    let denied = Command::new(tokenhost_bin())
        .args([
            "run-rule",
            "rules/deny.js",
            "--event",
            "rules/events/seed.json",
            "--json",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    assert_eq!(denied.status.code(), Some(1));
    let report: serde_json::Value = serde_json::from_slice(&denied.stdout).unwrap();
    assert_eq!(report["outcome"], "denied");
    assert_eq!(
        report["logs"][0]["message"],
        "denying m2m-client for https://api.example.com/"
    );

    let broken = std::env::temp_dir().join(format!("tokenhost-broken-{}.js", std::process::id()));
    std::fs::write(
        &broken,
        "module.exports = function (c, s, a, x, cb) {\n  cb(null, {\n};",
    )
    .unwrap();
    let compile_error = Command::new(tokenhost_bin())
        .arg("run-rule")
        .arg(&broken)
        .output()
        .unwrap();
    assert_eq!(compile_error.status.code(), Some(3));
    let stderr = String::from_utf8_lossy(&compile_error.stderr);
    assert!(stderr.contains(":3:"), "line:column expected in {stderr}");
    std::fs::remove_file(&broken).ok();
}
