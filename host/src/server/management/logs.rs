//! `/api/v2/logs`: rule executions, recent ones from storage and live ones as Server-Sent
//! Events (one entry per event, JSON in `data:`).

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::Json;
use futures_util::stream::{self, Stream};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;
use tokio::time::{Interval, MissedTickBehavior};
use utoipa::IntoParams;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authorized, Caller};
use super::blocking;
use super::json::{rfc3339_ms, Query};
use super::paging::{List, ListQuery, Paging};
use super::scopes::{ReadLogs, Scope};
use crate::server::api_error::ApiError;
use crate::server::rule_logs::{self, Subscription};
use crate::server::state::AppState;
use crate::store::{LogEntry, LogFilter};

/// The most `limit` may ask for.
pub const MAX_LIMIT: u32 = 1000;

pub(super) const LIST: List = List {
    operation_id: "list_logs",
    key: "logs",
};

#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct LogQuery {
    pub rule_id: Option<String>,
    pub client_id: Option<String>,
    /// `issued`, `denied` or `failed`.
    #[param(pattern = "^(issued|denied|failed)$")]
    pub outcome: Option<String>,
    /// RFC 3339: entries at or after this time.
    #[param(format = DateTime)]
    pub since: Option<String>,
}

/// `/logs` only (a stream has no length).
#[derive(Debug, Default, Deserialize, IntoParams)]
pub struct LogLimit {
    /// Only the first this many entries (1 to 1000), instead of `page` and `per_page`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
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
                let ms = rfc3339_ms(since).map_err(|e| {
                    ApiError::bad_request(format!("since must be an RFC 3339 time: {e}"))
                })?;
                Some(ms)
            }
            None => None,
        };
        Ok(LogFilter {
            rule_id: self.rule_id,
            client_id: self.client_id,
            outcome: self.outcome,
            since_ms,
            ..LogFilter::default()
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
#[utoipa::path(get, path = "/logs", operation_id = "list_logs", tag = "logs",
    security(("oauth2" = ["read:logs"])),
    responses((status = 200, description = "Log entries, newest first", body = [LogEntry]), (status = 400, body = ApiError)),
    params(LogQuery, LogLimit, ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadLogs>,
    Query(query): Query<LogQuery>,
    Query(limit): Query<LogLimit>,
    Query(list): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::new::<LogEntry>(&list)?.or_limit(limit.limit, MAX_LIMIT, &list)?;
    let filter = LogFilter {
        limit: paging.per_page as usize,
        offset: usize::try_from(paging.start).unwrap_or(usize::MAX),
        ..query.filter()?
    };
    let totals = paging.totals();
    let max_log_bytes = state.engine.limits().max_log_bytes;
    let (entries, total) = blocking(&state, move |s| {
        let entries: Vec<LogEntry> = s
            .store
            .list_logs(&filter)?
            .into_iter()
            .map(|entry| rule_logs::bounded(entry, max_log_bytes))
            .collect();
        let total = if totals {
            s.store.count_logs(&filter)?
        } else {
            0
        };
        Ok((entries, total))
    })
    .await?;
    paging.answer_page(&LIST, entries, total)
}

/// Rule executions as they happen (Server-Sent Events), with the same filters. The stream
/// ends within [`RECHECK_EVERY`] of its caller's client being deleted, its grant losing
/// `read:logs` or its token expiring.
#[utoipa::path(get, path = "/logs/stream", operation_id = "stream_logs", tag = "logs",
    security(("oauth2" = ["read:logs"])),
    params(LogQuery),
    responses((status = 200, description = "Server-Sent Events: each event's data is one log entry \
            (a `LogEntry` as JSON); comments say when entries were skipped or why the stream ended",
            content_type = "text/event-stream", body = String),
        (status = 429, description = "max_log_streams streams are open already", body = ApiError)))]
async fn follow(
    State(state): State<AppState>,
    caller: Authorized<ReadLogs>,
    Query(query): Query<LogQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    let filter = query.filter()?;
    let subscription = state.logs.subscribe().map_err(|full| {
        ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_streams",
            format!(
                "Too many log streams: at most {} may be open at once (max_log_streams); \
                 close one and retry",
                full.max
            ),
        )
    })?;
    let mut recheck = tokio::time::interval(RECHECK_EVERY);
    recheck.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let follower = Follower {
        state,
        caller: caller.into_caller(),
        subscription,
        filter,
        recheck,
        ended: false,
    };
    let events = stream::unfold(follower, |mut follower| async move {
        let event = follower.next().await?;
        Some((Ok(event), follower))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

/// How often an open stream checks its caller again. A catalog lookup, no storage.
const RECHECK_EVERY: Duration = Duration::from_millis(250);

/// One open stream: its caller, checked again on every tick, and its place among the
/// recorder's subscribers (freed when the stream is dropped).
struct Follower {
    state: AppState,
    caller: Caller,
    subscription: Subscription,
    filter: LogFilter,
    recheck: Interval,
    /// The caller was refused: the reason went out, the stream ends.
    ended: bool,
}

impl Follower {
    /// The next event; `None` ends the stream.
    async fn next(&mut self) -> Option<Event> {
        if self.ended {
            return None;
        }
        loop {
            tokio::select! {
                received = self.subscription.receiver.recv() => match received {
                    Ok(entry) if self.filter.matches(&entry) => {
                        return Some(Event::default().json_data(&*entry).unwrap_or_else(|_| {
                            Event::default().comment("unserializable entry")
                        }));
                    }
                    Ok(_) => continue,
                    Err(RecvError::Lagged(missed)) => {
                        return Some(Event::default().comment(format!(
                            "{missed} entries skipped: the reader fell behind"
                        )));
                    }
                    Err(RecvError::Closed) => return None,
                },
                _ = self.recheck.tick() => {
                    let allowed = self
                        .caller
                        .recheck(&self.state)
                        .and_then(|now| now.require(ReadLogs::NAME));
                    if let Err(refused) = allowed {
                        tracing::info!(client_id = %self.caller.client_id,
                            reason = %refused.message, "log stream ended");
                        self.ended = true;
                        // A comment: SSE readers skip it, a person watching sees why.
                        return Some(Event::default().comment(format!(
                            "stream ended: {}", refused.message
                        )));
                    }
                }
            }
        }
    }
}
