//! `tokenhost logs [--follow]`: a rule's executions from the terminal, like the original
//! platform's `wt logs`. Without `--follow`, the recent entries (oldest first); with it,
//! the live stream (`/api/v2/logs/stream`) until interrupted.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use crate::store::LogEntry;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing executions as they happen.
    #[arg(short, long)]
    pub follow: bool,
    /// The server's base URL.
    #[arg(long, env = "TOKENHOST_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// A management API token with read:logs (else one is requested with the credentials).
    #[arg(long, env = "TOKENHOST_MANAGEMENT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Management client id (default: the bootstrap client saved in the data directory).
    #[arg(long, env = "TOKENHOST_CLIENT_ID")]
    pub client_id: Option<String>,
    #[arg(long, env = "TOKENHOST_CLIENT_SECRET", hide_env_values = true)]
    pub client_secret: Option<String>,
    /// Where `bootstrap-client.json` is, when no credentials are given.
    #[arg(long, env = "TOKENHOST_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,
    /// Only this rule's executions.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only this client's requests.
    #[arg(long = "for-client")]
    pub for_client: Option<String>,
    /// Only `issued`, `denied` or `failed`.
    #[arg(long)]
    pub outcome: Option<String>,
    /// Print each entry as one JSON line.
    #[arg(long)]
    pub json: bool,
}

pub(super) fn run(args: LogsArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(logs(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn logs(args: LogsArgs) -> Result<(), String> {
    let http = reqwest::Client::new();
    let base = args.url.trim_end_matches('/').to_string();
    let token = match &args.token {
        Some(token) => token.clone(),
        None => management_token(&http, &base, &args).await?,
    };
    let mut query: Vec<(&str, &str)> = Vec::new();
    for (name, value) in [
        ("rule_id", &args.rule),
        ("client_id", &args.for_client),
        ("outcome", &args.outcome),
    ] {
        if let Some(value) = value {
            query.push((name, value));
        }
    }
    if !args.follow {
        let response = http
            .get(format!("{base}/api/v2/logs"))
            .query(&query)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| format!("cannot reach {base}: {e}"))?;
        let entries: Vec<LogEntry> = checked(response)
            .await?
            .json()
            .await
            .map_err(|e| e.to_string())?;
        for entry in entries.iter().rev() {
            print_entry(entry, args.json);
        }
        return Ok(());
    }
    let mut response = checked(
        http.get(format!("{base}/api/v2/logs/stream"))
            .query(&query)
            .bearer_auth(&token)
            .send()
            .await
            .map_err(|e| format!("cannot reach {base}: {e}"))?,
    )
    .await?;
    eprintln!("following rule executions at {base} (Ctrl-C to stop)");
    let mut buffer = String::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| format!("stream interrupted: {e}"))?
    {
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            let data: String = event
                .lines()
                .filter_map(|line| line.strip_prefix("data:"))
                .map(str::trim_start)
                .collect::<Vec<_>>()
                .join("\n");
            if data.is_empty() {
                continue;
            }
            match serde_json::from_str::<LogEntry>(&data) {
                Ok(entry) => print_entry(&entry, args.json),
                Err(_) => println!("{data}"),
            }
        }
    }
    Ok(())
}

async fn checked(response: reqwest::Response) -> Result<reqwest::Response, String> {
    if response.status().is_success() {
        return Ok(response);
    }
    let status = response.status();
    let body = response.text().await.unwrap_or_default();
    Err(format!("{status}: {body}"))
}

/// A token for the management API, from the given or the bootstrap credentials.
async fn management_token(
    http: &reqwest::Client,
    base: &str,
    args: &LogsArgs,
) -> Result<String, String> {
    let (id, secret) = match (&args.client_id, &args.client_secret) {
        (Some(id), Some(secret)) => (id.clone(), secret.clone()),
        _ => {
            let path = args.data_dir.join(crate::datadir::BOOTSTRAP_FILE);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                format!("no credentials: give --client-id/--client-secret or --token, or run where {} is ({e})", path.display())
            })?;
            let saved: Value =
                serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
            let field = |name: &str| {
                saved[name]
                    .as_str()
                    .map(str::to_string)
                    .ok_or(format!("{}: no {name}", path.display()))
            };
            (field("client_id")?, field("client_secret")?)
        }
    };
    let metadata: Value = http
        .get(format!("{base}/.well-known/oauth-authorization-server"))
        .send()
        .await
        .map_err(|e| format!("cannot reach {base}: {e}"))?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    let issuer = metadata["issuer"]
        .as_str()
        .ok_or("the server published no issuer")?;
    let audience = format!("{issuer}api/v2/");
    let response = http
        .post(format!("{base}/oauth/token"))
        .form(&[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("audience", &audience),
        ])
        .send()
        .await
        .map_err(|e| e.to_string())?;
    let body: Value = checked(response)
        .await?
        .json()
        .await
        .map_err(|e| e.to_string())?;
    body["access_token"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| "no access_token in the answer".to_string())
}

fn print_entry(entry: &LogEntry, json: bool) {
    if json {
        println!("{}", serde_json::to_string(entry).unwrap_or_default());
        return;
    }
    let detail = match (&entry.code, &entry.cause) {
        (Some(code), _) => format!(" {code}"),
        (_, Some(cause)) => format!(" ({cause})"),
        _ => String::new(),
    };
    println!(
        "{}  {}{detail}  rule={} ({})  client={}  aud={}  fuel={}  {:.2} ms  req={}",
        entry.time,
        entry.outcome,
        entry.rule_name,
        entry.rule_id,
        entry.client_id,
        entry.audience,
        entry.fuel_used,
        entry.duration_us as f64 / 1000.0,
        entry.request_id
    );
    for line in &entry.logs {
        println!(
            "    [{}] {}",
            format!("{:?}", line.level).to_lowercase(),
            line.message
        );
    }
}
