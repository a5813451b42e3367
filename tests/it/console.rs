//! The admin console at /console, driven in headless Chromium (Debian's) by Playwright:
//! `host/console/test_console.py` signs in, goes from nothing to a token shaped by a rule
//! written in the browser, and checks what no one should see (a token in web storage, a
//! request to another origin, a CSP violation). Its screenshots are kept under
//! `target/console-screenshots/`.

use std::time::Duration;

use reqwest::StatusCode;
use tests::server::{TestServer, ADMIN_ID, ADMIN_SECRET};
use tests::{output_text, repo, run_program};

/// The browser test compiles rules and waits on the live log: generous on a busy machine.
const BROWSER_LIMIT: Duration = Duration::from_secs(600);

#[tokio::test]
async fn the_console_takes_a_newcomer_from_nothing_to_a_token_shaped_by_a_rule() {
    let server = TestServer::start(&[]);
    let script = repo().join("host/console/test_console.py");
    let shots = repo().join("target/console-screenshots");
    let out = run_program(
        "python3",
        &[
            script.to_str().unwrap(),
            "--base-url",
            &server.base,
            "--client-id",
            ADMIN_ID,
            "--client-secret",
            ADMIN_SECRET,
            "--screenshots",
            shots.to_str().unwrap(),
        ],
        b"",
        BROWSER_LIMIT,
    );
    assert!(out.status.success(), "{}", output_text(&out));
}

#[tokio::test]
async fn the_console_is_served_under_a_policy_that_allows_only_its_own_origin() {
    let server = TestServer::start(&[]);
    for (path, content_type) in [
        ("/console", "text/html; charset=utf-8"),
        ("/console/", "text/html; charset=utf-8"),
        ("/console/app.js", "text/javascript; charset=utf-8"),
        ("/console/app.css", "text/css; charset=utf-8"),
    ] {
        let response = server.http.get(server.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK, "{path}");
        let headers = response.headers().clone();
        let header = |name: &str| headers[name].to_str().unwrap().to_string();
        assert_eq!(header("content-type"), content_type, "{path}");
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        assert_eq!(header("cache-control"), "no-cache", "{path}");
        let policy = header("content-security-policy");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(policy.contains(directive), "{path}: {policy}");
        }
        assert!(!policy.contains("unsafe"), "{path}: {policy}");
        let body = response.bytes().await.unwrap();
        let on_disk = std::fs::read(repo().join("host/console/dist").join(
            match path.trim_start_matches("/console").trim_start_matches('/') {
                "" => "index.html",
                file => file,
            },
        ))
        .unwrap();
        assert_eq!(
            body.as_ref(),
            on_disk.as_slice(),
            "{path} is the committed bundle"
        );
    }
    let missing = server
        .http
        .get(server.url("/console/other.js"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), StatusCode::NOT_FOUND);
}
