//! `tokenhost logs [--follow]`: a rule's executions from the terminal, like the original
//! platform's `wt logs`. Without `--follow`, the recent entries (oldest first); with it,
//! the live stream (`/api/v2/logs/stream`) until interrupted, after the backlog that
//! `--since`/`--limit` ask for.

use std::collections::HashSet;
use std::io::Write;
use std::process::ExitCode;
use std::time::SystemTime;

use clap::Args;

use super::error::{CliError, CliResult};
use super::management::{cause, Api, ApiArgs};
use crate::store::LogEntry;

/// The largest page `GET /api/v2/logs` gives.
const MAX_LIMIT: u64 = 1000;

#[derive(Debug, Args)]
pub struct LogsArgs {
    /// Keep printing executions as they happen (after the backlog --since/--limit ask for;
    /// none without them).
    #[arg(short, long)]
    pub follow: bool,
    #[command(flatten)]
    pub api: ApiArgs,
    /// Only this rule's executions.
    #[arg(long)]
    pub rule: Option<String>,
    /// Only this client's requests.
    #[arg(long = "for-client")]
    pub for_client: Option<String>,
    /// Only `issued`, `denied` or `failed`.
    #[arg(long, value_parser = ["issued", "denied", "failed"])]
    pub outcome: Option<String>,
    /// Only executions at or after this time: RFC 3339 (2026-12-01T09:00:00Z) or a
    /// duration ago (10m, 2h, 1d).
    #[arg(long, value_parser = since)]
    pub since: Option<String>,
    /// At most this many entries, the newest (the server's default: 50).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_LIMIT))]
    pub limit: Option<u64>,
    /// Print each entry as one JSON line, and an error as one JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `--since` as the server takes it: RFC 3339, a duration ago made a time now.
fn since(value: &str) -> Result<String, String> {
    if humantime::parse_rfc3339_weak(value).is_ok() {
        return Ok(value.to_string());
    }
    let ago = humantime::parse_duration(value).map_err(|_| {
        format!("{value:?} is neither an RFC 3339 time (2026-12-01T09:00:00Z) nor a duration (10m, 2h, 1d)")
    })?;
    let time = SystemTime::now()
        .checked_sub(ago)
        .ok_or_else(|| format!("{value} ago is before the epoch"))?;
    Ok(humantime::format_rfc3339_millis(time).to_string())
}

pub(super) fn run(args: LogsArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            return CliError::failed("internal", format!("cannot start the async runtime: {e}"))
                .report(args.json)
        }
    };
    match runtime.block_on(logs(&args)) {
        Ok(code) => code,
        Err(error) => error.report(args.json),
    }
}

async fn logs(args: &LogsArgs) -> CliResult {
    let api = Api::connect(&args.api, "read:logs").await?;
    let mut filters: Vec<(&str, String)> = Vec::new();
    for (name, value) in [
        ("rule_id", &args.rule),
        ("client_id", &args.for_client),
        ("outcome", &args.outcome),
    ] {
        if let Some(value) = value {
            filters.push((name, value.clone()));
        }
    }
    let mut backlog_query = filters.clone();
    if let Some(since) = &args.since {
        backlog_query.push(("since", since.clone()));
    }
    if let Some(limit) = args.limit {
        backlog_query.push(("limit", limit.to_string()));
    }
    if !args.follow {
        for entry in backlog(&api, &backlog_query).await?.iter().rev() {
            if print_entry(entry, args.json).is_err() {
                break; // The reader stopped reading (`| head`): nothing more to do.
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Subscribed first, then the backlog read: an execution in between shows in both, and
    // is printed once.
    let mut stream = api.get("/logs/stream", &filters).await?;
    let mut printed = HashSet::new();
    if args.since.is_some() || args.limit.is_some() {
        for entry in backlog(&api, &backlog_query).await?.iter().rev() {
            if print_entry(entry, args.json).is_err() {
                return Ok(ExitCode::SUCCESS);
            }
            printed.insert(entry.id.clone());
        }
    }
    eprintln!("following rule executions at {} (Ctrl-C to stop)", api.base);
    let mut buffer = String::new();
    let mut ended_because = None;
    loop {
        let chunk = stream.chunk().await.map_err(|e| {
            CliError::failed(
                "stream_interrupted",
                format!(
                    "the log stream from {} was cut off ({}); run tokenhost logs --follow again",
                    api.base,
                    cause(&e)
                ),
            )
        })?;
        let Some(chunk) = chunk else { break };
        buffer.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffer.find("\n\n") {
            let event: String = buffer.drain(..end + 2).collect();
            match parse_event(&event) {
                Event::Entry(entry) => {
                    if !printed.remove(&entry.id) && print_entry(&entry, args.json).is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Event::Unreadable(data) => {
                    if writeln!(std::io::stdout(), "{data}").is_err() {
                        return Ok(ExitCode::SUCCESS);
                    }
                }
                Event::Note(note) => match note.strip_prefix("stream ended: ") {
                    Some(reason) => ended_because = Some(reason.to_string()),
                    None => eprintln!("note: {note}"),
                },
                Event::Nothing => {}
            }
        }
    }
    let message = match ended_because {
        Some(reason) => format!(
            "the server ended the log stream: {reason}; run tokenhost logs --follow again \
             with a valid token or client"
        ),
        None => "the server closed the log stream (it is shutting down or restarting); run \
                 tokenhost logs --follow again once it is back"
            .to_string(),
    };
    Err(CliError::failed("stream_ended", message))
}

/// `GET /api/v2/logs`: newest first.
async fn backlog(api: &Api, query: &[(&str, String)]) -> Result<Vec<LogEntry>, CliError> {
    api.get("/logs", query).await?.json().await.map_err(|e| {
        CliError::failed(
            "bad_response",
            format!(
                "{} answered log entries this tokenhost cannot read: {e}",
                api.base
            ),
        )
    })
}

/// One Server-Sent Event of the log stream.
#[derive(Debug, PartialEq)]
enum Event {
    Entry(Box<LogEntry>),
    /// Data that is no log entry (a newer server's?): shown as it came.
    Unreadable(String),
    /// A comment the server wrote for a person (why the stream ends, entries skipped).
    Note(String),
    /// A keep-alive.
    Nothing,
}

fn parse_event(event: &str) -> Event {
    let data: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix("data:"))
        .map(str::trim_start)
        .collect();
    if !data.is_empty() {
        let data = data.join("\n");
        return match serde_json::from_str::<LogEntry>(&data) {
            Ok(entry) => Event::Entry(Box::new(entry)),
            Err(_) => Event::Unreadable(data),
        };
    }
    let note: Vec<&str> = event
        .lines()
        .filter_map(|line| line.strip_prefix(':'))
        .map(str::trim)
        .filter(|comment| !comment.is_empty())
        .collect();
    if note.is_empty() {
        Event::Nothing
    } else {
        Event::Note(note.join(" "))
    }
}

/// Prints one entry; an error means stdout is closed (the reader stopped reading).
fn print_entry(entry: &LogEntry, json: bool) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    if json {
        let line = serde_json::to_string(entry).unwrap_or_default();
        return writeln!(out, "{line}");
    }
    let detail = match (&entry.code, &entry.cause) {
        (Some(code), _) => format!(" {code}"),
        (_, Some(cause)) => format!(" ({cause})"),
        _ => String::new(),
    };
    writeln!(
        out,
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
    )?;
    for line in &entry.logs {
        writeln!(
            out,
            "    [{}] {}",
            format!("{:?}", line.level).to_lowercase(),
            line.message
        )?;
    }
    // Live entries show at once, whatever buffers stdout.
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_ago() {
        assert_eq!(
            since("2026-12-01T09:00:00Z").unwrap(),
            "2026-12-01T09:00:00Z"
        );
        let ten_minutes_ago = since("10m").unwrap();
        let parsed = humantime::parse_rfc3339(&ten_minutes_ago).unwrap();
        let ago = SystemTime::now().duration_since(parsed).unwrap();
        assert!((599..=601).contains(&ago.as_secs()), "{ago:?}");
        assert!(since("1d").is_ok());
        let refused = since("yesterday").unwrap_err();
        assert!(refused.contains("RFC 3339"), "{refused}");
    }

    #[test]
    fn stream_events_are_entries_notes_or_keep_alives() {
        assert_eq!(parse_event(":\n\n"), Event::Nothing);
        assert_eq!(
            parse_event(": stream ended: Invalid token: it has expired\n\n"),
            Event::Note("stream ended: Invalid token: it has expired".into())
        );
        assert_eq!(
            parse_event("data: {\"new\": 1}\n\n"),
            Event::Unreadable("{\"new\": 1}".into())
        );
    }
}
