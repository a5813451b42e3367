//! The management API from the command line: which server, a token for it, and each
//! refusal turned into what the user should do about it.

use std::path::PathBuf;

use clap::Args;
use serde_json::Value;

use super::error::CliError;

/// Where the server is and how to get a management token from it.
#[derive(Debug, Args)]
pub struct ApiArgs {
    /// The server's base URL.
    #[arg(long, env = "TOKENHOST_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A management API token (else one is requested with the client credentials).
    #[arg(long, env = "TOKENHOST_MANAGEMENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Management client id (default: the bootstrap client saved in the data directory).
    #[arg(long, env = "TOKENHOST_CLIENT_ID", requires = "client_secret")]
    pub client_id: Option<String>,
    /// That client's secret.
    #[arg(
        long,
        env = "TOKENHOST_CLIENT_SECRET",
        hide_env_values = true,
        requires = "client_id"
    )]
    pub client_secret: Option<String>,
    /// Where `bootstrap-client.json` is, when no credentials are given.
    #[arg(long, env = "TOKENHOST_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
}

/// Where the token came from, so that a refusal can say what to change.
#[derive(Debug)]
enum TokenSource {
    Given,
    Client { id: String },
    Bootstrap { path: PathBuf },
}

/// A management API session: the server and a token for it (no `Debug`: it holds the
/// token).
pub struct Api {
    http: reqwest::Client,
    pub base: String,
    token: String,
    source: TokenSource,
    /// The scope the command needs, named in the advice when it is refused.
    scope: &'static str,
}

impl Api {
    /// Connects as `args` say, with a token that should hold `scope`.
    pub async fn connect(args: &ApiArgs, scope: &'static str) -> Result<Api, CliError> {
        let http = reqwest::Client::new();
        let base = args.url.trim_end_matches('/').to_string();
        let (token, source) = match &args.token {
            Some(token) => (token.clone(), TokenSource::Given),
            None => {
                let (id, secret, source) = credentials(args)?;
                let token = request_token(&http, &base, &id, &secret, &source, scope).await?;
                (token, source)
            }
        };
        Ok(Api {
            http,
            base,
            token,
            source,
            scope,
        })
    }

    /// GET `path` (under `/api/v2`), its refusals explained.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<reqwest::Response, CliError> {
        self.send(reqwest::Method::GET, path, query, None).await
    }

    /// `method` on `path` (under `/api/v2`) with a JSON body, the answer's JSON (`null`
    /// for none), its refusals explained.
    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Value, CliError> {
        let response = self.send(method, path, &[], body).await?;
        let text = response.text().await.map_err(|e| {
            CliError::failed(
                "bad_response",
                format!("{} ended its answer early: {}", self.base, cause(&e)),
            )
        })?;
        if text.is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| {
            CliError::failed(
                "bad_response",
                format!("{}/api/v2{path} answered no JSON: {e}", self.base),
            )
        })
    }

    /// Every item of the list at `path`, page by page.
    pub async fn list_all(&self, path: &str) -> Result<Vec<Value>, CliError> {
        const PER_PAGE: usize = 100;
        let mut items = Vec::new();
        for page in 0.. {
            let query = [
                ("page", page.to_string()),
                ("per_page", PER_PAGE.to_string()),
            ];
            let response = self.send(reqwest::Method::GET, path, &query, None).await?;
            let batch: Vec<Value> = response.json().await.map_err(|e| {
                CliError::failed(
                    "bad_response",
                    format!("{}/api/v2{path} answered no list: {e}", self.base),
                )
            })?;
            let last = batch.len() < PER_PAGE;
            items.extend(batch);
            if last {
                break;
            }
        }
        Ok(items)
    }

    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, CliError> {
        let mut request = self
            .http
            .request(method, format!("{}/api/v2{path}", self.base))
            .query(query)
            .bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| cannot_reach(&self.base, &e))?;
        if response.status().is_success() {
            return Ok(response);
        }
        let (status, body) = error_body(response).await;
        let said = server_message(&body);
        let error = match status {
            401 => CliError::failed(
                "unauthorized",
                format!(
                    "the management token was refused: {said}; {}",
                    self.advice()
                ),
            ),
            403 => CliError::failed(
                "forbidden",
                format!(
                    "the management client may not do this: {said}; grant it {} on the \
                     management API, or use a client that holds it",
                    self.scope
                ),
            ),
            _ => CliError::failed(
                "api_error",
                format!("{} answered {status}: {said}", self.base),
            ),
        };
        Err(error.with("status", status).with("server", body))
    }

    /// What to try after a refused token.
    fn advice(&self) -> String {
        let scope = self.scope;
        match &self.source {
            TokenSource::Given => format!(
                "pass a valid --token (or TOKENHOST_MANAGEMENT_TOKEN), or leave it out to use \
                 --client-id/--client-secret of a client granted {scope}, or run from the \
                 server's directory so ./data/bootstrap-client.json is found"
            ),
            TokenSource::Client { id } => format!(
                "check that {} is the server that client {id} belongs to (--url)",
                self.base
            ),
            TokenSource::Bootstrap { path } => format!(
                "check that {} is the server whose bootstrap client {} holds (--url)",
                self.base,
                path.display()
            ),
        }
    }
}

/// The client credentials to ask for a token with: given, or the saved bootstrap client.
fn credentials(args: &ApiArgs) -> Result<(String, String, TokenSource), CliError> {
    if let (Some(id), Some(secret)) = (&args.client_id, &args.client_secret) {
        let source = TokenSource::Client { id: id.clone() };
        return Ok((id.clone(), secret.clone(), source));
    }
    let path = args.data_dir.join(crate::datadir::BOOTSTRAP_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| {
        CliError::new(
            super::EXIT_USAGE,
            "no_credentials",
            format!(
                "no management credentials: pass --token, or --client-id/--client-secret, \
                 or run from the server's directory (or pass --data-dir) so {} is found \
                 ({e})",
                path.display()
            ),
        )
        .with("file", path.display().to_string())
    })?;
    let unusable = |why: String| {
        CliError::new(
            super::EXIT_USAGE,
            "no_credentials",
            format!(
                "{} is not a bootstrap client file ({why}); pass --client-id/--client-secret \
                 or --token",
                path.display()
            ),
        )
    };
    let saved: Value = serde_json::from_str(&text).map_err(|e| unusable(e.to_string()))?;
    let field = |name: &str| {
        saved[name]
            .as_str()
            .map(str::to_string)
            .ok_or_else(|| unusable(format!("no {name}")))
    };
    let (id, secret) = (field("client_id")?, field("client_secret")?);
    Ok((id, secret, TokenSource::Bootstrap { path }))
}

/// A management API token by client credentials, for the audience the server names.
async fn request_token(
    http: &reqwest::Client,
    base: &str,
    id: &str,
    secret: &str,
    source: &TokenSource,
    scope: &str,
) -> Result<String, CliError> {
    let metadata = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .map_err(|e| cannot_reach(base, &e))?;
    let metadata: Value = metadata.json().await.map_err(|e| {
        CliError::failed(
            "bad_response",
            format!("{base} does not look like a tokenhost server (no OAuth metadata: {e}); check --url"),
        )
    })?;
    let issuer = metadata["issuer"].as_str().ok_or_else(|| {
        CliError::failed(
            "bad_response",
            format!("{base} published no issuer in its OAuth metadata; check --url"),
        )
    })?;
    let audience = format!("{issuer}api/v2/");
    let response = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", id),
            ("client_secret", secret),
            ("audience", &audience),
        ])
        .send()
        .await
        .map_err(|e| cannot_reach(base, &e))?;
    if !response.status().is_success() {
        let (status, body) = error_body(response).await;
        let said = server_message(&body);
        let whose = match source {
            TokenSource::Bootstrap { path } => {
                format!("the bootstrap client in {}", path.display())
            }
            _ => format!("client {id}"),
        };
        let (code, message) = match status {
            401 => {
                let check = match source {
                    TokenSource::Bootstrap { .. } => {
                        "it may have been replaced (tokenhost admin reset-bootstrap); pass \
                         --client-id/--client-secret or --token"
                    }
                    _ => "check --client-id/--client-secret (TOKENHOST_CLIENT_ID/_SECRET)",
                };
                let said = format!("{base} refused the credentials of {whose}: {said}; {check}");
                ("unauthorized", said)
            }
            400 | 403 => (
                "forbidden",
                format!(
                    "{base} issued no management token to {whose}: {said}; grant it {scope} \
                     on the management API ({audience})"
                ),
            ),
            _ => (
                "api_error",
                format!("{base}/oauth/token answered {status}: {said}"),
            ),
        };
        return Err(CliError::failed(code, message)
            .with("status", status)
            .with("server", body));
    }
    let body: Value = response.json().await.map_err(|e| {
        CliError::failed(
            "bad_response",
            format!("{base}/oauth/token answered no JSON: {e}"),
        )
    })?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| {
            CliError::failed(
                "bad_response",
                format!("{base}/oauth/token answered no access_token"),
            )
        })
}

/// The server could not be reached at all.
pub fn cannot_reach(base: &str, error: &reqwest::Error) -> CliError {
    CliError::failed(
        "unreachable",
        format!(
            "cannot reach the server at {base} ({}); is it running? pass --url (or \
             TOKENHOST_URL) to point at it",
            cause(error)
        ),
    )
    .with("url", base)
}

/// reqwest's own text names only the URL; the cause (refused, reset, no such host) is the
/// deepest source.
pub fn cause(error: &reqwest::Error) -> String {
    let mut cause: &dyn std::error::Error = error;
    while let Some(source) = cause.source() {
        cause = source;
    }
    cause.to_string()
}

/// An error answer's status and body (JSON where it is JSON, else its text).
async fn error_body(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// What the server said: the management API's `message`, the token endpoint's
/// `error_description` (or `error`), or the text it sent.
fn server_message(body: &Value) -> String {
    ["message", "error_description", "error"]
        .iter()
        .find_map(|key| body[key].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| match body {
            Value::String(text) if !text.is_empty() => text.clone(),
            _ => "no reason given".to_string(),
        })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_servers_words_are_found_in_either_error_shape() {
        let api = json!({"statusCode": 401, "error": "Unauthorized",
            "message": "Invalid token: it has expired", "errorCode": "invalid_token"});
        assert_eq!(server_message(&api), "Invalid token: it has expired");
        let oauth = json!({"error": "invalid_client", "error_description": "bad secret"});
        assert_eq!(server_message(&oauth), "bad secret");
        assert_eq!(server_message(&json!("Bad Gateway")), "Bad Gateway");
        assert_eq!(server_message(&json!("")), "no reason given");
    }
}
