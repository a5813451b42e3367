//! `/api/v2/logs`: rule executions, recent ones from storage and live ones as Server-Sent
//! Events (one entry per event, JSON in `data:`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::blocking;
use super::scopes::READ_LOGS;
use crate::server::api_error::ApiError;
use crate::server::rule_logs;
use crate::server::state::AppState;
use crate::store::{LogEntry, LogFilter};

pub const DEFAULT_LIMIT: usize = 50;
pub const MAX_LIMIT: usize = 1000;

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct LogQuery {
    pub rule_id: Option<String>,
    pub client_id: Option<String>,
    /// `issued`, `denied` or `failed`.
    pub outcome: Option<String>,
    /// RFC 3339: entries at or after this time.
    pub since: Option<String>,
    /// At most this many entries (default 50, at most 1000).
    pub limit: Option<usize>,
}

impl LogQuery {
    fn filter(self) -> Result<LogFilter, ApiError> {
        if let Some(outcome) = &self.outcome {
            if !["issued", "denied", "failed"].contains(&outcome.as_str()) {
                return Err(ApiError::bad_request(
                    "outcome must be issued, denied or failed",
                ));
            }
        }
        let since_ms = match &self.since {
            Some(since) => {
                let time = humantime::parse_rfc3339_weak(since).map_err(|e| {
                    ApiError::bad_request(format!("since must be an RFC 3339 time: {e}"))
                })?;
                let ms = time
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or(Duration::ZERO)
                    .as_millis();
                Some(i64::try_from(ms).unwrap_or(i64::MAX))
            }
            None => None,
        };
        let limit = self.limit.unwrap_or(DEFAULT_LIMIT);
        if limit == 0 || limit > MAX_LIMIT {
            return Err(ApiError::bad_request(format!(
                "limit must be between 1 and {MAX_LIMIT}"
            )));
        }
        Ok(LogFilter {
            rule_id: self.rule_id,
            client_id: self.client_id,
            outcome: self.outcome,
            since_ms,
            limit,
        })
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(follow))
}

/// Recent rule executions, newest first. The answer is bounded: each entry's rule output
/// takes at most `max_kept_output_bytes` of JSON (5,952 bytes at the default 4 KiB console
/// cap), entries stored before that bound held included, so `limit` entries take at most
/// `limit` times that plus their ids and names (under 7 MB at `limit=1000`).
#[utoipa::path(get, path = "/logs", tag = "logs", params(LogQuery),
    responses((status = 200, description = "Log entries, newest first"), (status = 400, body = ApiError)))]
async fn list(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<LogQuery>,
) -> Result<Json<Vec<LogEntry>>, ApiError> {
    caller.require(READ_LOGS)?;
    let filter = query.filter()?;
    let max_log_bytes = state.engine.limits().max_log_bytes;
    let entries = blocking(&state, move |s| {
        let entries = s.store.list_logs(&filter)?;
        Ok(entries
            .into_iter()
            .map(|entry| rule_logs::bounded(entry, max_log_bytes))
            .collect())
    })
    .await?;
    Ok(Json(entries))
}

/// Rule executions as they happen (Server-Sent Events), with the same filters.
#[utoipa::path(get, path = "/logs/stream", tag = "logs", params(LogQuery),
    responses((status = 200, description = "text/event-stream, one JSON log entry per event")))]
async fn follow(
    State(state): State<AppState>,
    caller: Caller,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    caller.require(READ_LOGS)?;
    let filter = query.filter()?;
    let receiver = state.logs.subscribe();
    let events = stream::unfold((receiver, filter), |(mut receiver, filter)| async move {
        loop {
            match receiver.recv().await {
                Ok(entry) if filter.matches(&entry) => {
                    let event = Event::default()
                        .json_data(&*entry)
                        .unwrap_or_else(|_| Event::default().comment("unserializable entry"));
                    return Some((Ok(event), (receiver, filter)));
                }
                Ok(_) => continue,
                Err(RecvError::Lagged(missed)) => {
                    let event = Event::default()
                        .comment(format!("{missed} entries skipped: the reader fell behind"));
                    return Some((Ok(event), (receiver, filter)));
                }
                Err(RecvError::Closed) => return None,
            }
        }
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
