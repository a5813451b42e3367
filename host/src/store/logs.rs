//! Rule execution logs: what each execution did, kept for a while, newest first.

use rusqlite::{params, params_from_iter, types::Value as SqlValue};
use serde::{Deserialize, Serialize};

use super::sqlite::SqliteStore;
use super::{StoreError, StoreResult};
use crate::rules::LogLine;

/// One rule execution, as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogEntry {
    pub id: String,
    /// RFC 3339, UTC, milliseconds.
    pub time: String,
    /// Unix milliseconds (for filtering and ordering).
    pub time_ms: i64,
    pub request_id: String,
    pub rule_id: String,
    pub rule_name: String,
    pub client_id: String,
    pub audience: String,
    /// `issued`, `denied` or `failed`.
    #[schema(pattern = "^(issued|denied|failed)$")]
    pub outcome: String,
    /// The OAuth error code of a denial.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// What a failure was (kind and message, secrets redacted).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub fuel_used: u64,
    pub duration_us: u64,
    /// The rule's console output, capped per execution, secrets redacted.
    #[schema(value_type = Vec<Object>)]
    pub logs: Vec<LogLine>,
    /// Some of the rule's output was cut to its bounds (the console cap, a failure's
    /// allowances). Absent in entries from servers before it was recorded.
    #[serde(default)]
    pub truncated: bool,
}

/// Which entries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogFilter {
    pub rule_id: Option<String>,
    pub client_id: Option<String>,
    pub outcome: Option<String>,
    /// Unix milliseconds: entries at or after.
    pub since_ms: Option<i64>,
    pub limit: usize,
    /// Skips this many of the matching entries (paging by page number).
    pub offset: usize,
}

impl LogFilter {
    /// Does `entry` pass this filter (the same test as the query, for live streams)?
    pub fn matches(&self, entry: &LogEntry) -> bool {
        self.rule_id.as_ref().is_none_or(|r| &entry.rule_id == r)
            && self
                .client_id
                .as_ref()
                .is_none_or(|c| &entry.client_id == c)
            && self.outcome.as_ref().is_none_or(|o| &entry.outcome == o)
            && self.since_ms.is_none_or(|t| entry.time_ms >= t)
    }
}

/// Where execution logs live.
pub trait LogStore {
    fn append_logs(&self, entries: &[LogEntry]) -> StoreResult<()>;
    /// Newest first.
    fn list_logs(&self, filter: &LogFilter) -> StoreResult<Vec<LogEntry>>;
    /// How many entries match `filter` (its limit and offset aside).
    fn count_logs(&self, filter: &LogFilter) -> StoreResult<u64>;
    /// Keeps at most `max_entries`, none older than `min_time_ms`; returns how many went.
    fn prune_logs(&self, max_entries: usize, min_time_ms: i64) -> StoreResult<usize>;
}

/// `select` with the `WHERE` of `filter`, and its arguments.
fn where_clause(select: &str, filter: &LogFilter) -> (String, Vec<SqlValue>) {
    let mut sql = format!("{select} WHERE 1 = 1");
    let mut args: Vec<SqlValue> = Vec::new();
    let mut add = |clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&format!(" AND {clause} ?{}", args.len()));
    };
    if let Some(rule) = &filter.rule_id {
        add("rule_id =", SqlValue::Text(rule.clone()));
    }
    if let Some(client) = &filter.client_id {
        add("client_id =", SqlValue::Text(client.clone()));
    }
    if let Some(outcome) = &filter.outcome {
        add("outcome =", SqlValue::Text(outcome.clone()));
    }
    if let Some(since) = filter.since_ms {
        add("time_ms >=", SqlValue::Integer(since));
    }
    (sql, args)
}

impl LogStore for SqliteStore {
    fn append_logs(&self, entries: &[LogEntry]) -> StoreResult<()> {
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        {
            let mut insert = tx.prepare_cached(
                "INSERT INTO rule_logs (id, time_ms, request_id, rule_id, rule_name, client_id, audience,
                     outcome, code, cause, fuel_used, duration_us, console, truncated)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
            )?;
            for e in entries {
                let console = serde_json::to_string(&e.logs)
                    .map_err(|err| StoreError::Corrupt(err.to_string()))?;
                insert.execute(params![
                    e.id,
                    e.time_ms,
                    e.request_id,
                    e.rule_id,
                    e.rule_name,
                    e.client_id,
                    e.audience,
                    e.outcome,
                    e.code,
                    e.cause,
                    i64::try_from(e.fuel_used).unwrap_or(i64::MAX),
                    i64::try_from(e.duration_us).unwrap_or(i64::MAX),
                    console,
                    e.truncated,
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    fn list_logs(&self, filter: &LogFilter) -> StoreResult<Vec<LogEntry>> {
        let (mut sql, args) = where_clause(
            "SELECT id, time_ms, request_id, rule_id, rule_name, client_id, audience, outcome, code, cause,
                    fuel_used, duration_us, console, truncated FROM rule_logs",
            filter,
        );
        sql.push_str(&format!(
            " ORDER BY seq DESC LIMIT {} OFFSET {}",
            filter.limit, filter.offset
        ));
        let conn = self.conn();
        let mut query = conn.prepare(&sql)?;
        let rows = query.query_map(params_from_iter(args), |row| {
            Ok((
                LogEntry {
                    id: row.get(0)?,
                    time: String::new(),
                    time_ms: row.get(1)?,
                    request_id: row.get(2)?,
                    rule_id: row.get(3)?,
                    rule_name: row.get(4)?,
                    client_id: row.get(5)?,
                    audience: row.get(6)?,
                    outcome: row.get(7)?,
                    code: row.get(8)?,
                    cause: row.get(9)?,
                    fuel_used: row.get::<_, i64>(10)?.max(0) as u64,
                    duration_us: row.get::<_, i64>(11)?.max(0) as u64,
                    logs: Vec::new(),
                    truncated: row.get(13)?,
                },
                row.get::<_, String>(12)?,
            ))
        })?;
        let mut entries = Vec::new();
        for row in rows {
            let (mut entry, console) = row?;
            entry.logs =
                serde_json::from_str(&console).map_err(|e| StoreError::Corrupt(e.to_string()))?;
            entry.time = rfc3339_ms(entry.time_ms);
            entries.push(entry);
        }
        Ok(entries)
    }

    fn count_logs(&self, filter: &LogFilter) -> StoreResult<u64> {
        let (sql, args) = where_clause("SELECT COUNT(*) FROM rule_logs", filter);
        let count: i64 = self
            .conn()
            .query_row(&sql, params_from_iter(args), |row| row.get(0))?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    fn prune_logs(&self, max_entries: usize, min_time_ms: i64) -> StoreResult<usize> {
        let conn = self.conn();
        let old = conn.execute(
            "DELETE FROM rule_logs WHERE time_ms < ?1",
            params![min_time_ms],
        )?;
        let excess = conn.execute(
            "DELETE FROM rule_logs WHERE seq <= (SELECT seq FROM rule_logs ORDER BY seq DESC LIMIT 1 OFFSET ?1)",
            params![i64::try_from(max_entries).unwrap_or(i64::MAX)],
        )?;
        Ok(old + excess)
    }
}

/// Unix milliseconds as RFC 3339 UTC with milliseconds.
pub fn rfc3339_ms(time_ms: i64) -> String {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(time_ms.max(0) as u64);
    humantime::format_rfc3339_millis(time).to_string()
}
