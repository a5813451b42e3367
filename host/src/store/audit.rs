//! The audit trail of management changes: who changed what, when, from what to what.
//!
//! Append-only: an entry is written in the transaction of the change it records
//! (`StoreTx::record_audit`), never updated, and deleted only once older than the
//! retention (`prune_audit`). What goes in `before` and `after` is the caller's business:
//! the management API removes secrets before recording.

use rusqlite::{params, Connection, Row};
use serde::Serialize;
use serde_json::Value;

use super::{SqliteStore, StoreError, StoreResult};

/// One change to record.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditRecord {
    /// Unix seconds.
    pub at: i64,
    /// Who: the management client's id.
    pub actor: String,
    /// What was done: `create`, `update`, `delete`, `rotate_secret`, ...
    pub action: String,
    /// To what kind of thing: `client`, `rule`, `resource_server`, ...
    pub target_type: String,
    pub target_id: String,
    /// The target before the change (`None` for a creation).
    pub before: Option<Value>,
    /// The target after the change (`None` for a deletion).
    pub after: Option<Value>,
}

/// A recorded change, with its place in the trail (higher is newer).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: i64,
    #[serde(flatten)]
    pub record: AuditRecord,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    pub limit: u32,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    pub actor: Option<String>,
    /// Only entries older than this id (paging backwards).
    pub before_id: Option<i64>,
    /// Skips this many of the matching entries (paging by page number).
    pub offset: u64,
}

/// Where the audit trail lives. Blocking calls.
pub trait AuditStore {
    fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>>;
    /// How many entries match `filter` (its limit and offset aside).
    fn count_audit(&self, filter: &AuditFilter) -> StoreResult<u64>;
    /// Deletes the entries recorded before `before` (Unix seconds); returns how many.
    fn prune_audit(&self, before: i64) -> StoreResult<usize>;
}

fn json_column(row: &Row<'_>, index: usize, column: &str) -> StoreResult<Option<Value>> {
    row.get::<_, Option<String>>(index)?
        .map(|text| {
            serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

fn json_text(value: &Option<Value>) -> StoreResult<Option<String>> {
    value
        .as_ref()
        .map(|v| {
            serde_json::to_string(v).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
        })
        .transpose()
}

/// `StoreTx::record_audit`, on the transaction's connection.
pub(super) fn insert_audit(conn: &Connection, record: &AuditRecord) -> StoreResult<i64> {
    conn.prepare_cached(
        "INSERT INTO audit_log (at, actor, action, target_type, target_id, before, after)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        record.at,
        record.actor,
        record.action,
        record.target_type,
        record.target_id,
        json_text(&record.before)?,
        json_text(&record.after)?,
    ])?;
    Ok(conn.last_insert_rowid())
}

impl AuditStore for SqliteStore {
    fn prune_audit(&self, before: i64) -> StoreResult<usize> {
        Ok(self
            .conn()
            .prepare_cached("DELETE FROM audit_log WHERE at < ?1")?
            .execute([before])?)
    }

    fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let conn = self.conn();
        // NULL parameters match everything, so one cached statement serves every filter.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, at, actor, action, target_type, target_id, before, after
             FROM audit_log
             WHERE (?1 IS NULL OR target_type = ?1)
               AND (?2 IS NULL OR target_id = ?2)
               AND (?3 IS NULL OR actor = ?3)
               AND (?4 IS NULL OR seq < ?4)
             ORDER BY seq DESC
             LIMIT ?5 OFFSET ?6",
        )?;
        let mut rows = stmt.query(params![
            filter.target_type,
            filter.target_id,
            filter.actor,
            filter.before_id,
            filter.limit,
            i64::try_from(filter.offset).unwrap_or(i64::MAX),
        ])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(AuditEntry {
                id: row.get(0)?,
                record: AuditRecord {
                    at: row.get(1)?,
                    actor: row.get(2)?,
                    action: row.get(3)?,
                    target_type: row.get(4)?,
                    target_id: row.get(5)?,
                    before: json_column(row, 6, "audit_log.before")?,
                    after: json_column(row, 7, "audit_log.after")?,
                },
            });
        }
        Ok(out)
    }

    fn count_audit(&self, filter: &AuditFilter) -> StoreResult<u64> {
        let count: i64 = self
            .conn()
            .prepare_cached(
                "SELECT COUNT(*) FROM audit_log
                 WHERE (?1 IS NULL OR target_type = ?1)
                   AND (?2 IS NULL OR target_id = ?2)
                   AND (?3 IS NULL OR actor = ?3)
                   AND (?4 IS NULL OR seq < ?4)",
            )?
            .query_row(
                params![
                    filter.target_type,
                    filter.target_id,
                    filter.actor,
                    filter.before_id
                ],
                |row| row.get(0),
            )?;
        Ok(u64::try_from(count).unwrap_or(0))
    }
}
