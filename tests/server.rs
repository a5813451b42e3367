//! A real `tokenhost serve` on 127.0.0.1:0 for end-to-end tests, and a client for it.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{decode, decode_header, DecodingKey, Validation};
use reqwest::{Method, Response, StatusCode};
use serde_json::{json, Value};

use crate::tokenhost_bin;

pub const ADMIN_ID: &str = "e2e-admin";
pub const ADMIN_SECRET: &str = "e2e-admin-secret-0123456789abcdefghijklmnopqrstuvwxyz";
pub const ISSUER: &str = "http://tokenhost.test/";

/// A running server; killed and its data directory removed on drop.
pub struct TestServer {
    pub base: String,
    pub data_dir: PathBuf,
    child: Option<Child>,
    pub http: reqwest::Client,
    env: Vec<(String, String)>,
    stderr: Option<std::thread::JoinHandle<String>>,
    /// What the latest start printed on stdout before it listened.
    pub startup_output: String,
}

impl TestServer {
    /// Starts a server on a fresh data directory with extra environment variables.
    pub fn start(env: &[(&str, &str)]) -> TestServer {
        let data_dir = std::env::temp_dir().join(format!(
            "tokenhost-e2e-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos()
        ));
        let env = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let mut server = TestServer {
            base: String::new(),
            data_dir,
            child: None,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            env,
            stderr: None,
            startup_output: String::new(),
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let mut command = Command::new(tokenhost_bin());
        command
            .arg("serve")
            .env("TOKENHOST_LISTEN", "127.0.0.1:0")
            .env("TOKENHOST_ISSUER", ISSUER)
            .env("TOKENHOST_DATA_DIR", &self.data_dir)
            .env("TOKENHOST_BOOTSTRAP_CLIENT_ID", ADMIN_ID)
            .env("TOKENHOST_BOOTSTRAP_CLIENT_SECRET", ADMIN_SECRET)
            .env("TOKENHOST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in &self.env {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start tokenhost");
        let stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        self.stderr = Some(std::thread::spawn(move || {
            let mut all = String::new();
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                all.push_str(&line);
                all.push('\n');
            }
            all
        }));
        let mut lines = BufReader::new(stdout).lines();
        self.startup_output.clear();
        let base = loop {
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(rest) = line.strip_prefix("tokenhost listening on ") {
                        break rest.split_whitespace().next().unwrap().to_string();
                    }
                    self.startup_output.push_str(&line);
                    self.startup_output.push('\n');
                }
                _ => panic!(
                    "tokenhost exited before listening: {}",
                    self.stop_and_logs()
                ),
            }
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        self.base = base;
        self.child = Some(child);
    }

    /// Stops the server and returns what it wrote to stderr.
    pub fn stop_and_logs(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default()
    }

    /// Stops and starts the server again on the same data directory; returns the first
    /// run's stderr.
    pub fn restart(&mut self) -> String {
        let logs = self.stop_and_logs();
        self.spawn();
        logs
    }

    /// Stops the server as an operator does, with SIGTERM, and waits (at most 10 s) for
    /// its graceful shutdown; then starts it again on the same data directory. Returns the
    /// first run's stderr.
    pub fn terminate_and_restart(&mut self) -> String {
        if let Some(mut child) = self.child.take() {
            let sent = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            assert!(sent.is_ok_and(|s| s.success()), "cannot send SIGTERM");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() {
                if std::time::Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("tokenhost did not stop within 10 s of SIGTERM");
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let logs = self.stop_and_logs();
        self.spawn();
        logs
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub fn management_audience(&self) -> String {
        format!("{ISSUER}api/v2/")
    }

    /// POST /oauth/token with a form body.
    pub async fn token_form(
        &self,
        form: &[(&str, &str)],
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let response = self
            .http
            .post(self.url("/oauth/token"))
            .form(form)
            .send()
            .await
            .unwrap();
        split(response).await
    }

    /// POST /oauth/token for `client_id` with `client_secret_post`, for `audience`.
    pub async fn client_token(
        &self,
        client_id: &str,
        client_secret: &str,
        audience: &str,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        self.token_form(&[
            ("grant_type", "client_credentials"),
            ("client_id", client_id),
            ("client_secret", client_secret),
            ("audience", audience),
        ])
        .await
    }

    /// A management API token for a new client granted only `scopes`.
    pub async fn management_token_with(&self, admin: &str, scopes: &[&str]) -> String {
        self.management_client_with(admin, scopes).await.1
    }

    /// A new client granted only `scopes` on the management API: its grant's id and a
    /// token.
    pub async fn management_client_with(&self, admin: &str, scopes: &[&str]) -> (String, String) {
        let (status, client) = self
            .api(
                admin,
                Method::POST,
                "/clients",
                Some(json!({"name": "scoped admin"})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{client}");
        let id = client["client_id"].as_str().unwrap();
        let audience = self.management_audience();
        let grant = json!({"client_id": id, "audience": audience, "scope": scopes});
        let (status, grant) = self
            .api(admin, Method::POST, "/client-grants", Some(grant))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{grant}");
        let secret = client["client_secret"].as_str().unwrap();
        let (status, body, _) = self.client_token(id, secret, &audience).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        (
            grant["id"].as_str().unwrap().to_string(),
            body["access_token"].as_str().unwrap().to_string(),
        )
    }

    /// A token for the management API with the bootstrap client.
    pub async fn admin_token(&self) -> String {
        let audience = self.management_audience();
        let (status, body, _) = self.client_token(ADMIN_ID, ADMIN_SECRET, &audience).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body["access_token"].as_str().unwrap().to_string()
    }

    /// A management API call with a bearer token.
    pub async fn api(
        &self,
        token: &str,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .request(method, self.url(&format!("/api/v2{path}")))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let (status, body, _) = split(request.send().await.unwrap()).await;
        (status, body)
    }

    /// `GET /logs{query}` once it lists at least `count` entries (they are stored in
    /// batches off the request path), or what it lists after five seconds.
    pub async fn logs_when(&self, token: &str, query: &str, count: usize) -> Vec<Value> {
        let started = std::time::Instant::now();
        loop {
            let path = format!("/logs{query}");
            let (status, body) = self.api(token, Method::GET, &path, None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            let entries = body.as_array().cloned().unwrap_or_default();
            if entries.len() >= count || started.elapsed() > Duration::from_secs(5) {
                return entries;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Creates what a token request needs: an API, a client granted `scopes`, optionally
    /// with metadata. Returns (client_id, client_secret).
    pub async fn setup_client(
        &self,
        admin: &str,
        audience: &str,
        alg: &str,
        scopes: &[&str],
        metadata: Value,
    ) -> (String, String) {
        let defs: Vec<Value> = scopes.iter().map(|s| json!({"value": s})).collect();
        let (status, body) = self
            .api(
                admin,
                Method::POST,
                "/resource-servers",
                Some(json!({"identifier": audience, "scopes": defs, "signing_alg": alg})),
            )
            .await;
        assert!(
            status == StatusCode::CREATED || status == StatusCode::CONFLICT,
            "{status} {body}"
        );
        let (status, client) = self
            .api(
                admin,
                Method::POST,
                "/clients",
                Some(json!({"name": "e2e client", "client_metadata": metadata})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{client}");
        let id = client["client_id"].as_str().unwrap().to_string();
        let (status, body) = self
            .api(
                admin,
                Method::POST,
                "/client-grants",
                Some(json!({"client_id": id, "audience": audience, "scope": scopes})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        (id, client["client_secret"].as_str().unwrap().to_string())
    }

    /// Uploads a rule and returns its id.
    pub async fn add_rule(&self, admin: &str, name: &str, script: &str) -> String {
        let (status, body) = self
            .api(
                admin,
                Method::POST,
                "/rules",
                Some(json!({"name": name, "script": script})),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_string()
    }

    /// GET `path` and its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        let response = self.http.get(self.url(path)).send().await.unwrap();
        response.json().await.unwrap()
    }

    /// Verifies `token` against the published JWKS (jsonwebtoken, the way an API would) and
    /// returns its claims.
    pub async fn verify(&self, token: &str, audience: &str) -> Value {
        let jwks: JwkSet =
            serde_json::from_value(self.get_json("/.well-known/jwks.json").await).unwrap();
        let header = decode_header(token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        let kid = header.kid.clone().expect("kid");
        let jwk = jwks
            .find(&kid)
            .unwrap_or_else(|| panic!("kid {kid} not in the JWKS"));
        let key = DecodingKey::from_jwk(jwk).unwrap();
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[audience]);
        validation.set_issuer(&[ISSUER]);
        decode::<Value>(token, &key, &validation)
            .unwrap_or_else(|e| panic!("token does not verify: {e}"))
            .claims
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.stop_and_logs();
        let _ = std::fs::remove_dir_all(&self.data_dir);
    }
}

/// The first event of a `/api/v2/logs/stream` response within `limit`, and everything the
/// stream sent until then.
pub async fn first_event(stream: &mut Response, limit: Duration) -> (Value, String) {
    let mut received = String::new();
    let entry = tokio::time::timeout(limit, async {
        loop {
            let chunk = stream.chunk().await.unwrap().expect("stream ended");
            received.push_str(&String::from_utf8_lossy(&chunk));
            if let Some(data) = received.lines().find_map(|l| l.strip_prefix("data:")) {
                return serde_json::from_str::<Value>(data.trim()).unwrap();
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event within {limit:?}"));
    (entry, received)
}

/// Status, JSON body (or the text as a JSON string), headers.
pub async fn split(response: Response) -> (StatusCode, Value, reqwest::header::HeaderMap) {
    let status = response.status();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body, headers)
}
