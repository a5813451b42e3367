//! The `tokenhost` command as a user meets it, through the real binary: compile, then
//! run-rule; one exit-status scheme; errors as JSON with `--json`; shell completions; and
//! `tokenhost logs` against a real server, its refusals explained.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use tests::server::{TestServer, ADMIN_ID, ADMIN_SECRET};
use tests::{repo, tokenhost_bin};

const API: &str = "https://api.example.com/";
const LOGGED_RULE: &str = "module.exports = function (client, scope, audience, context, cb) {
  console.log('issuing for', client.id);
  cb(null, {scope: scope});
};";

/// `tokenhost <args>` from the repository's root, none of the caller's TOKENHOST_* settings.
fn tokenhost(args: &[&str]) -> Output {
    tokenhost_with(args, &[])
}

/// [`tokenhost`] with these environment variables set.
fn tokenhost_with(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(tokenhost_bin())
        .args(args)
        .current_dir(repo())
        .env_remove("TOKENHOST_URL")
        .env_remove("TOKENHOST_MANAGEMENT_TOKEN")
        .env_remove("TOKENHOST_CLIENT_ID")
        .env_remove("TOKENHOST_CLIENT_SECRET")
        .env_remove("TOKENHOST_DATA_DIR")
        .env_remove("TOKENHOST_WASI_ADAPTER")
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The `error` object a `--json` command printed: stdout holds exactly one JSON object.
fn json_error(output: &Output) -> Value {
    let stdout = text(&output.stdout);
    let parsed: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}): {stdout}"));
    assert!(parsed["error"]["message"].is_string(), "{parsed}");
    parsed["error"].clone()
}

/// A file in a directory of this test process's own.
fn scratch(name: &str, content: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("tokenhost-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, content).unwrap();
    path
}

fn path(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[test]
fn compile_then_run_rule_prints_the_token() {
    let wasm = scratch("myrule.wasm", "");
    let compiled = tokenhost(&["compile", "rules/myrule.js", "-o", path(&wasm)]);
    assert!(compiled.status.success(), "{}", text(&compiled.stderr));
    // stderr is a pipe here, not a terminal: no spinner, nothing at all.
    assert_eq!(text(&compiled.stderr), "");

    let ran = tokenhost(&["run-rule", path(&wasm), "--event", "rules/events/seed.json"]);
    let stdout = text(&ran.stdout);
    assert!(ran.status.success(), "{stdout}{}", text(&ran.stderr));
    assert!(
        stdout.contains("\"https://foo.com/claim\": \"bar\""),
        "{stdout}"
    );
    assert!(stdout.contains("\"extra\""), "{stdout}");
    assert!(stdout.contains("fuel used:"), "{stdout}");
    assert_eq!(text(&ran.stderr), "");
}

#[test]
fn a_rule_built_with_the_wasi_adapter_runs_alike() {
    // Default: WASI written into the module; TOKENHOST_WASI_ADAPTER=1: the preview1 adapter
    // beside it, which brings the rest of WASI's interfaces (files among them) as imports.
    let contains = |bytes: &[u8], needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    for (adapter, name) in [(false, "inlined.wasm"), (true, "adapter.wasm")] {
        let wasm = scratch(name, "");
        let env: &[(&str, &str)] = if adapter {
            &[("TOKENHOST_WASI_ADAPTER", "1")]
        } else {
            &[]
        };
        let compiled = tokenhost_with(&["compile", "rules/myrule.js", "-o", path(&wasm)], env);
        assert!(compiled.status.success(), "{}", text(&compiled.stderr));
        let bytes = std::fs::read(&wasm).unwrap();
        assert_eq!(contains(&bytes, b"wasi:filesystem/"), adapter, "{name}");
        assert!(contains(&bytes, b"wasi:clocks/wall-clock@"), "{name}");

        let ran = tokenhost(&["run-rule", path(&wasm), "--event", "rules/events/seed.json"]);
        let stdout = text(&ran.stdout);
        assert!(
            ran.status.success(),
            "{name}: {stdout}{}",
            text(&ran.stderr)
        );
        assert!(
            stdout.contains("\"https://foo.com/claim\": \"bar\""),
            "{name}: {stdout}"
        );
    }
}

#[test]
fn a_terminal_sees_a_spinner_while_the_rule_compiles() {
    let wasm = scratch("spun.wasm", "");
    let command = format!(
        "{} compile rules/myrule.js -o {}",
        tokenhost_bin().display(),
        wasm.display()
    );
    // util-linux's `script` runs the command on a pseudo-terminal and copies what it shows.
    let shown = Command::new("script")
        .args(["-q", "-e", "-c", &command, "/dev/null"])
        .current_dir(repo())
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs the command on a pseudo-terminal");
    let screen = text(&shown.stdout);
    assert!(shown.status.success(), "{screen}{}", text(&shown.stderr));
    assert!(screen.contains("compiling rules/myrule.js"), "{screen:?}");
    assert!(screen.contains("-> "), "{screen:?}");
}

#[test]
fn exit_codes_follow_one_scheme() {
    let bad_event = scratch("bad-event.json", r#"{"clinet": {"id": "x"}}"#);
    let throws = scratch(
        "throws.js",
        "module.exports = function (c, s, a, x, cb) { throw new TypeError('boom'); };",
    );
    let broken = scratch(
        "broken.js",
        "module.exports = function (c, s, a, x, cb) {\n  cb(null, {\n};",
    );
    let seed = "rules/events/seed.json";
    let cases: [(&str, Vec<&str>, i32); 8] = [
        (
            "unknown option",
            vec!["run-rule", "rules/myrule.js", "--bogus"],
            2,
        ),
        ("unknown subcommand", vec!["frobnicate"], 2),
        (
            "deadline over its maximum",
            vec!["run-rule", "rules/myrule.js", "--deadline-ms", "20001"],
            2,
        ),
        ("missing rule file", vec!["run-rule", "rules/nope.js"], 2),
        (
            "invalid event",
            vec!["run-rule", "rules/myrule.js", "--event", path(&bad_event)],
            2,
        ),
        (
            "denial",
            vec!["run-rule", "rules/deny.js", "--event", seed],
            1,
        ),
        (
            "exception",
            vec!["run-rule", path(&throws), "--event", seed],
            3,
        ),
        ("compile error", vec!["run-rule", path(&broken)], 3),
    ];
    for (name, args, code) in cases {
        let output = tokenhost(&args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{name}: {}{}",
            text(&output.stdout),
            text(&output.stderr)
        );
    }

    let over = tokenhost(&["run-rule", "rules/myrule.js", "--deadline-ms", "20001"]);
    let said = text(&over.stderr);
    assert!(
        said.contains("--deadline-ms") && said.contains("1..=20000"),
        "{said}"
    );
    let missing = tokenhost(&["run-rule", "rules/nope.js"]);
    assert_eq!(text(&missing.stdout), "");
    assert!(
        text(&missing.stderr).starts_with("error: cannot read rules/nope.js: "),
        "{}",
        text(&missing.stderr)
    );
    let never = std::env::temp_dir().join("tokenhost-cli-never.wasm");
    let compile_error = tokenhost(&["compile", path(&broken), "-o", path(&never)]);
    assert_eq!(compile_error.status.code(), Some(3));
    let said = text(&compile_error.stderr);
    assert_eq!(said.matches("error:").count(), 1, "one prefix: {said}");
    assert!(said.contains(":3:"), "line:column expected in {said}");
}

#[test]
fn json_errors_are_one_object_on_stdout() {
    let bad_event = scratch(
        "bad-event-json.json",
        r#"{"client": {"id": "x"}, "scop": []}"#,
    );
    let broken = scratch(
        "broken-json.js",
        "module.exports = function (c, s, a, x, cb) {\n  cb(null, {\n};",
    );
    let cases: [(Vec<&str>, i32, &str); 5] = [
        (
            vec!["run-rule", "rules/nope.js", "--json"],
            2,
            "unreadable_file",
        ),
        (
            vec![
                "run-rule",
                "rules/myrule.js",
                "--json",
                "--event",
                path(&bad_event),
            ],
            2,
            "invalid_event",
        ),
        (
            vec!["run-rule", path(&broken), "--json"],
            3,
            "compile_error",
        ),
        (
            vec!["run-rule", "rules/myrule.js", "--json", "--fuel", "0"],
            2,
            "usage",
        ),
        (
            vec![
                "logs",
                "--json",
                "--url",
                "http://127.0.0.1:9",
                "--token",
                "t",
            ],
            1,
            "unreachable",
        ),
    ];
    let mut errors = Vec::new();
    for (args, code, error_code) in cases {
        let output = tokenhost(&args);
        assert_eq!(
            output.status.code(),
            Some(code),
            "{args:?}: {}",
            text(&output.stdout)
        );
        let error = json_error(&output);
        assert_eq!(error["code"], error_code, "{args:?}: {error}");
        assert_eq!(text(&output.stderr), "", "{args:?}: JSON only");
        errors.push(error);
    }
    assert!(
        errors[1]["message"].as_str().unwrap().contains("scop"),
        "the unknown key is named: {}",
        errors[1]
    );
    assert_eq!(errors[2]["line"], 3, "{}", errors[2]);
    assert!(errors[2]["column"].as_u64().is_some(), "{}", errors[2]);
    assert!(
        errors[4]["message"].as_str().unwrap().contains("--url"),
        "{}",
        errors[4]
    );
}

#[test]
fn completions_cover_every_subcommand() {
    let bash = tokenhost(&["completions", "bash"]);
    assert!(bash.status.success(), "{}", text(&bash.stderr));
    let script = text(&bash.stdout);
    for subcommand in [
        "serve",
        "logs",
        "compile",
        "run-rule",
        "admin",
        "completions",
    ] {
        assert!(script.contains(subcommand), "{subcommand} missing");
    }
    let file = scratch("tokenhost.bash", &script);
    let checked = Command::new("bash").arg("-n").arg(&file).output().unwrap();
    assert!(checked.status.success(), "{}", text(&checked.stderr));
    for shell in ["zsh", "fish", "elvish", "powershell"] {
        let output = tokenhost(&["completions", shell]);
        assert!(output.status.success(), "{shell}");
        assert!(text(&output.stdout).contains("run-rule"), "{shell}");
    }
    // A reader that stops early (`| head`) is no crash: here it is gone before the
    // script is written.
    let mut gone = Command::new(tokenhost_bin())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(gone.stdout.take());
    let gone = gone.wait_with_output().unwrap();
    assert!(gone.status.success(), "{}", text(&gone.stderr));
    assert_eq!(text(&gone.stderr), "");
    let unknown = tokenhost(&["completions", "tcsh"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(text(&unknown.stderr).contains("tcsh"));
}

/// A server with `count` recorded executions, listed by the API (newest first).
async fn server_with_executions(count: usize) -> (TestServer, String, Vec<Value>) {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    server.add_rule(&admin, "logged", LOGGED_RULE).await;
    for _ in 0..count {
        let (status, body, _) = server.client_token(&id, &secret, API).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // Entries are written in batches off the request path.
    let started = Instant::now();
    loop {
        let (status, body) = server.api(&admin, Method::GET, "/logs", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let entries = body.as_array().unwrap().clone();
        if entries.len() >= count {
            return (server, admin, entries);
        }
        assert!(started.elapsed() < Duration::from_secs(5), "{entries:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `tokenhost logs --json <args>` as the bootstrap client: the ids of the entries printed.
fn logged_ids(server: &TestServer, args: &[&str]) -> Vec<String> {
    let mut all = vec![
        "logs",
        "--json",
        "--url",
        &server.base,
        "--client-id",
        ADMIN_ID,
        "--client-secret",
        ADMIN_SECRET,
    ];
    all.extend_from_slice(args);
    let output = tokenhost(&all);
    let stdout = text(&output.stdout);
    assert!(
        output.status.success(),
        "{args:?}: {stdout}{}",
        text(&output.stderr)
    );
    stdout
        .lines()
        .map(|line| {
            let entry: Value = serde_json::from_str(line).unwrap();
            entry["id"].as_str().unwrap().to_string()
        })
        .collect()
}

fn ids(entries: &[Value]) -> Vec<String> {
    entries
        .iter()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn logs_takes_a_limit_and_a_since() {
    let (server, _admin, entries) = server_with_executions(3).await;
    let newest_first = ids(&entries);
    // The newest two, printed oldest first.
    assert_eq!(
        logged_ids(&server, &["--limit", "2"]),
        [newest_first[1].clone(), newest_first[0].clone()]
    );
    assert_eq!(logged_ids(&server, &["--since", "1h"]).len(), 3);
    assert_eq!(
        logged_ids(
            &server,
            &["--since", "2026-01-01T00:00:00Z", "--limit", "1"]
        ),
        [newest_first[0].clone()]
    );
    assert!(logged_ids(&server, &["--since", "2999-01-01T00:00:00Z"]).is_empty());

    for bad in [
        vec!["--limit", "0"],
        vec!["--limit", "1001"],
        vec!["--since", "yesterday"],
        vec!["--outcome", "maybe"],
        vec!["--client-id", ADMIN_ID],
    ] {
        let mut args = vec!["logs", "--url", &server.base];
        args.extend_from_slice(&bad);
        let output = tokenhost(&args);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{bad:?}: {}",
            text(&output.stderr)
        );
    }
}

#[tokio::test]
async fn logs_follow_prints_its_backlog_then_says_why_the_stream_ended() {
    let (server, admin, entries) = server_with_executions(2).await;
    let reader = server.management_token_with(&admin, &["read:logs"]).await;
    let claims = server.verify(&reader, &server.management_audience()).await;
    let reader_id = claims["client_id"].as_str().unwrap().to_string();

    let mut follow = Command::new(tokenhost_bin())
        .args([
            "logs",
            "--follow",
            "--json",
            "--limit",
            "1",
            "--url",
            &server.base,
            "--token",
            &reader,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stderr = BufReader::new(follow.stderr.take().unwrap()).lines();
    let ready = stderr.next().and_then(Result::ok).unwrap_or_default();
    assert!(ready.contains("following"), "{ready}");
    let (status, body) = server
        .api(
            &admin,
            Method::DELETE,
            &format!("/clients/{reader_id}"),
            None,
        )
        .await;
    assert!(status.is_success(), "{status} {body}");
    let exited = Instant::now();
    let status = loop {
        if let Some(status) = follow.try_wait().unwrap() {
            break status;
        }
        if exited.elapsed() > Duration::from_secs(10) {
            let _ = follow.kill();
            panic!("tokenhost logs --follow kept running after its client was deleted");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut follow.stdout.take().unwrap(), &mut stdout).unwrap();
    assert_eq!(status.code(), Some(1), "{stdout}");
    let mut lines = stdout.lines();
    let backlog: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(backlog["id"], entries[0]["id"], "the newest entry first");
    let ended: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    assert_eq!(ended["error"]["code"], "stream_ended", "{ended}");
    let message = ended["error"]["message"].as_str().unwrap();
    assert!(message.contains("no longer exists"), "{message}");
}

#[tokio::test]
async fn a_refused_token_is_explained_with_what_to_do() {
    let server = TestServer::start(&[]);
    let admin = server.admin_token().await;
    let (id, secret) = server
        .setup_client(&admin, API, "ES256", &["test"], json!({}))
        .await;
    let (_, body, _) = server.client_token(&id, &secret, API).await;
    let not_for_management = body["access_token"].as_str().unwrap();

    let refused = tokenhost(&["logs", "--url", &server.base, "--token", "not-a-jwt"]);
    assert_eq!(refused.status.code(), Some(1));
    let said = text(&refused.stderr);
    assert!(
        said.contains("the management token was refused: Invalid token: it is not a well-formed JWT; pass a valid --token"),
        "{said}"
    );
    assert!(
        said.contains("read:logs") && said.contains("bootstrap-client.json"),
        "{said}"
    );
    assert!(
        !said.contains("InvalidToken") && !said.contains("token rejected"),
        "{said}"
    );

    let other = tokenhost(&[
        "logs",
        "--json",
        "--url",
        &server.base,
        "--token",
        not_for_management,
    ]);
    assert_eq!(other.status.code(), Some(1));
    let error = json_error(&other);
    assert_eq!(error["code"], "unauthorized");
    assert_eq!(error["status"], 401);
    assert_eq!(error["server"]["errorCode"], "invalid_token");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains(&format!(
            "issued for another audience; the management API's is {}",
            server.management_audience()
        )),
        "{message}"
    );
    assert!(!message.contains(not_for_management), "{message}");

    let wrong_secret = tokenhost(&[
        "logs",
        "--url",
        &server.base,
        "--client-id",
        ADMIN_ID,
        "--client-secret",
        "wrong",
    ]);
    assert_eq!(wrong_secret.status.code(), Some(1));
    let said = text(&wrong_secret.stderr);
    assert!(
        said.contains(&format!("refused the credentials of client {ADMIN_ID}")),
        "{said}"
    );
    assert!(said.contains("check --client-id/--client-secret"), "{said}");

    let nowhere = tokenhost(&["logs", "--url", &server.base, "--data-dir", "/nonexistent"]);
    assert_eq!(nowhere.status.code(), Some(2));
    let said = text(&nowhere.stderr);
    assert!(
        said.contains("no management credentials: pass --token"),
        "{said}"
    );
}
