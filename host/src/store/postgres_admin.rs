//! `PgStore`'s execution logs, audit trail and rule secrets and versions: the same
//! semantics as SQLite's (`logs.rs`, `audit.rs`, `rule_admin.rs`).

use tokio_postgres::Row;

use super::postgres::{source_at, PgStore};
use super::{
    rfc3339_ms, AuditEntry, AuditFilter, AuditRecord, AuditStore, LogEntry, LogFilter, LogStore,
    RuleAdminStore, RuleVersion, SealedSecret, StoreError, StoreResult,
};

/// The columns `log_from_row` reads, in its order.
pub(super) const LOG_COLUMNS: &str = "id, time_ms, request_id, rule_id, rule_name, client_id,
    audience, outcome, code, cause, fuel_used, duration_us, console, truncated";

pub(super) const LOG_COLUMN_COUNT: usize = 14;

pub(super) fn log_from_row(row: &Row) -> StoreResult<LogEntry> {
    let time_ms: i64 = row.try_get(1)?;
    Ok(LogEntry {
        id: row.try_get(0)?,
        time: rfc3339_ms(time_ms),
        time_ms,
        request_id: row.try_get(2)?,
        rule_id: row.try_get(3)?,
        rule_name: row.try_get(4)?,
        client_id: row.try_get(5)?,
        audience: row.try_get(6)?,
        outcome: row.try_get(7)?,
        code: row.try_get(8)?,
        cause: row.try_get(9)?,
        fuel_used: row.try_get::<_, i64>(10)?.max(0) as u64,
        duration_us: row.try_get::<_, i64>(11)?.max(0) as u64,
        logs: serde_json::from_str(row.try_get(12)?)
            .map_err(|e| StoreError::Corrupt(format!("rule_logs.console: {e}")))?,
        truncated: row.try_get(13)?,
    })
}

fn saturating_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

impl LogStore for PgStore {
    fn append_logs(&self, entries: &[LogEntry]) -> StoreResult<()> {
        if entries.is_empty() {
            return Ok(());
        }
        let console = entries
            .iter()
            .map(|e| serde_json::to_string(&e.logs))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let column = |f: fn(&LogEntry) -> &str| entries.iter().map(f).collect::<Vec<_>>();
        let optional = |f: fn(&LogEntry) -> Option<&str>| entries.iter().map(f).collect::<Vec<_>>();
        let number = |f: fn(&LogEntry) -> i64| entries.iter().map(f).collect::<Vec<_>>();
        // One statement for the batch, every column an array: one round trip.
        self.execute(
            "INSERT INTO rule_logs (id, time_ms, request_id, rule_id, rule_name, client_id,
                 audience, outcome, code, cause, fuel_used, duration_us, console, truncated,
                 node)
             SELECT *, $15 FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[],
                 $5::text[], $6::text[], $7::text[], $8::text[], $9::text[], $10::text[],
                 $11::bigint[], $12::bigint[], $13::text[], $14::boolean[])",
            &[
                &column(|e| &e.id),
                &number(|e| e.time_ms),
                &column(|e| &e.request_id),
                &column(|e| &e.rule_id),
                &column(|e| &e.rule_name),
                &column(|e| &e.client_id),
                &column(|e| &e.audience),
                &column(|e| &e.outcome),
                &optional(|e| e.code.as_deref()),
                &optional(|e| e.cause.as_deref()),
                &number(|e| saturating_i64(e.fuel_used)),
                &number(|e| saturating_i64(e.duration_us)),
                &console,
                &entries.iter().map(|e| e.truncated).collect::<Vec<_>>(),
                &self.node_id,
            ],
        )?;
        Ok(())
    }

    fn list_logs(&self, filter: &LogFilter) -> StoreResult<Vec<LogEntry>> {
        // NULL parameters match everything, so one cached statement serves every filter.
        let rows = self.query(
            &format!(
                "SELECT {LOG_COLUMNS} FROM rule_logs
                 WHERE ($1::text IS NULL OR rule_id = $1)
                   AND ($2::text IS NULL OR client_id = $2)
                   AND ($3::text IS NULL OR outcome = $3)
                   AND ($4::bigint IS NULL OR time_ms >= $4)
                 ORDER BY seq DESC LIMIT $5 OFFSET $6"
            ),
            &[
                &filter.rule_id,
                &filter.client_id,
                &filter.outcome,
                &filter.since_ms,
                &saturating_i64(filter.limit as u64),
                &saturating_i64(filter.offset as u64),
            ],
        )?;
        rows.iter().map(log_from_row).collect()
    }

    fn count_logs(&self, filter: &LogFilter) -> StoreResult<u64> {
        let row = self.query_one(
            "SELECT COUNT(*) FROM rule_logs
             WHERE ($1::text IS NULL OR rule_id = $1)
               AND ($2::text IS NULL OR client_id = $2)
               AND ($3::text IS NULL OR outcome = $3)
               AND ($4::bigint IS NULL OR time_ms >= $4)",
            &[
                &filter.rule_id,
                &filter.client_id,
                &filter.outcome,
                &filter.since_ms,
            ],
        )?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
    }

    fn prune_logs(&self, max_entries: usize, min_time_ms: i64) -> StoreResult<usize> {
        let old = self.execute("DELETE FROM rule_logs WHERE time_ms < $1", &[&min_time_ms])?;
        let excess = self.execute(
            "DELETE FROM rule_logs WHERE seq <= (SELECT seq FROM rule_logs ORDER BY seq DESC
                 LIMIT 1 OFFSET $1)",
            &[&saturating_i64(max_entries as u64)],
        )?;
        Ok(usize::try_from(old + excess).unwrap_or(usize::MAX))
    }
}

fn json_column(row: &Row, index: usize, column: &str) -> StoreResult<Option<serde_json::Value>> {
    row.try_get::<_, Option<&str>>(index)?
        .map(|text| {
            serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
        })
        .transpose()
}

impl AuditStore for PgStore {
    fn list_audit(&self, filter: &AuditFilter) -> StoreResult<Vec<AuditEntry>> {
        let rows = self.query(
            "SELECT seq, at, actor, action, target_type, target_id, before, after
             FROM audit_log
             WHERE ($1::text IS NULL OR target_type = $1)
               AND ($2::text IS NULL OR target_id = $2)
               AND ($3::text IS NULL OR actor = $3)
               AND ($4::bigint IS NULL OR seq < $4)
             ORDER BY seq DESC
             LIMIT $5 OFFSET $6",
            &[
                &filter.target_type,
                &filter.target_id,
                &filter.actor,
                &filter.before_id,
                &i64::from(filter.limit),
                &saturating_i64(filter.offset),
            ],
        )?;
        rows.iter()
            .map(|row| {
                Ok(AuditEntry {
                    id: row.try_get(0)?,
                    record: AuditRecord {
                        at: row.try_get(1)?,
                        actor: row.try_get(2)?,
                        action: row.try_get(3)?,
                        target_type: row.try_get(4)?,
                        target_id: row.try_get(5)?,
                        before: json_column(row, 6, "audit_log.before")?,
                        after: json_column(row, 7, "audit_log.after")?,
                    },
                })
            })
            .collect()
    }

    fn count_audit(&self, filter: &AuditFilter) -> StoreResult<u64> {
        let row = self.query_one(
            "SELECT COUNT(*) FROM audit_log
             WHERE ($1::text IS NULL OR target_type = $1)
               AND ($2::text IS NULL OR target_id = $2)
               AND ($3::text IS NULL OR actor = $3)
               AND ($4::bigint IS NULL OR seq < $4)",
            &[
                &filter.target_type,
                &filter.target_id,
                &filter.actor,
                &filter.before_id,
            ],
        )?;
        Ok(u64::try_from(row.try_get::<_, i64>(0)?).unwrap_or(0))
    }

    fn prune_audit(&self, before: i64) -> StoreResult<usize> {
        let gone = self.execute("DELETE FROM audit_log WHERE at < $1", &[&before])?;
        Ok(usize::try_from(gone).unwrap_or(usize::MAX))
    }
}

const VERSION_COLUMNS: &str =
    "number, source_kind, script, component, created_at, created_by, deployed_from";

fn version_from_row(row: &Row) -> StoreResult<RuleVersion> {
    let unsigned = |value: i32| {
        u32::try_from(value).map_err(|_| StoreError::Corrupt(format!("version {value}")))
    };
    Ok(RuleVersion {
        number: unsigned(row.try_get(0)?)?,
        source: source_at(row, 1, "rule version")?,
        created_at: row.try_get(4)?,
        created_by: row.try_get(5)?,
        deployed_from: row
            .try_get::<_, Option<i32>>(6)?
            .map(unsigned)
            .transpose()?,
    })
}

/// A rule's secrets, by name (bytewise, as SQLite sorts).
pub(super) const SECRETS: &str = "SELECT name, value, updated_at FROM rule_secrets
     WHERE rule_id = $1 ORDER BY name COLLATE \"C\"";

pub(super) fn secret_from_row(row: &Row) -> StoreResult<SealedSecret> {
    Ok(SealedSecret {
        name: row.try_get(0)?,
        sealed: row.try_get(1)?,
        updated_at: row.try_get(2)?,
    })
}

impl RuleAdminStore for PgStore {
    fn list_rule_secrets(&self, rule_id: &str) -> StoreResult<Vec<SealedSecret>> {
        let rows = self.query(SECRETS, &[&rule_id])?;
        rows.iter().map(secret_from_row).collect()
    }

    fn list_rule_versions(&self, rule_id: &str) -> StoreResult<Vec<RuleVersion>> {
        let rows = self.query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE rule_id = $1 ORDER BY number"
            ),
            &[&rule_id],
        )?;
        rows.iter().map(version_from_row).collect()
    }

    fn get_rule_version(&self, rule_id: &str, number: u32) -> StoreResult<Option<RuleVersion>> {
        let Ok(number) = i32::try_from(number) else {
            return Ok(None);
        };
        let rows = self.query(
            &format!(
                "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE rule_id = $1 AND number = $2"
            ),
            &[&rule_id, &number],
        )?;
        rows.first().map(version_from_row).transpose()
    }
}
