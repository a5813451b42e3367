//! What a rule keeps besides its current code: its secrets (sealed by the caller, never
//! stored in clear) and the numbered versions of its source. Reads here; the writes
//! (`StoreTx::change_rule_secrets`, `put_rule_version`) are part of a transaction.

use rusqlite::{params, Connection, OptionalExtension, Row};

use super::sqlite::SqliteStore;
use super::{RuleSource, StoreError, StoreResult};

/// A rule secret as stored: the value is sealed (see `secret_box`), bound to rule and name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealedSecret {
    pub name: String,
    pub sealed: Vec<u8>,
    pub updated_at: i64,
}

/// One version of a rule's source. Numbers count from 1 per rule; the highest is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleVersion {
    pub number: u32,
    pub source: RuleSource,
    pub created_at: i64,
    /// The management client that made the change (`None` for versions made by the
    /// migration that introduced versions).
    pub created_by: Option<String>,
    /// The version a rollback copied.
    pub deployed_from: Option<u32>,
}

/// Secrets and versions of rules. Blocking calls, like `Store`'s. Both disappear with their
/// rule (`StoreTx::delete_rule`).
pub trait RuleAdminStore {
    /// A rule's secrets, by name.
    fn list_rule_secrets(&self, rule_id: &str) -> StoreResult<Vec<SealedSecret>>;
    /// A rule's versions, oldest first.
    fn list_rule_versions(&self, rule_id: &str) -> StoreResult<Vec<RuleVersion>>;
    fn get_rule_version(&self, rule_id: &str, number: u32) -> StoreResult<Option<RuleVersion>>;
}

fn version_from_row(row: &Row<'_>) -> StoreResult<RuleVersion> {
    let kind: String = row.get(1)?;
    let source = match (kind.as_str(), row.get(2)?, row.get(3)?) {
        ("script", Some(script), None) => RuleSource::Script(script),
        ("component", None, Some(bytes)) => RuleSource::Component(bytes),
        _ => {
            return Err(StoreError::Corrupt(format!(
                "rule version source of kind {kind:?}"
            )))
        }
    };
    Ok(RuleVersion {
        number: row.get(0)?,
        source,
        created_at: row.get(4)?,
        created_by: row.get(5)?,
        deployed_from: row.get(6)?,
    })
}

const VERSION_COLUMNS: &str =
    "number, source_kind, script, component, created_at, created_by, deployed_from";

fn versions(conn: &Connection, rule_id: &str) -> StoreResult<Vec<RuleVersion>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE rule_id = ?1 ORDER BY number"
    ))?;
    let mut rows = stmt.query([rule_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(version_from_row(row)?);
    }
    Ok(out)
}

fn secrets(conn: &Connection, rule_id: &str) -> StoreResult<Vec<SealedSecret>> {
    let mut stmt = conn.prepare_cached(
        "SELECT name, value, updated_at FROM rule_secrets WHERE rule_id = ?1 ORDER BY name",
    )?;
    let mut rows = stmt.query([rule_id])?;
    let mut out = Vec::new();
    while let Some(row) = rows.next()? {
        out.push(SealedSecret {
            name: row.get(0)?,
            sealed: row.get(1)?,
            updated_at: row.get(2)?,
        });
    }
    Ok(out)
}

/// `StoreTx::change_rule_secrets`, on the transaction's connection.
pub(super) fn change_secrets(
    conn: &Connection,
    rule_id: &str,
    set: &[SealedSecret],
    remove: &[String],
) -> StoreResult<Vec<SealedSecret>> {
    {
        let mut upsert = conn.prepare_cached(
            "INSERT INTO rule_secrets (rule_id, name, value, updated_at)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (rule_id, name) DO UPDATE SET value = excluded.value,
                 updated_at = excluded.updated_at",
        )?;
        for secret in set {
            upsert.execute(params![
                rule_id,
                secret.name,
                secret.sealed,
                secret.updated_at
            ])?;
        }
        let mut delete =
            conn.prepare_cached("DELETE FROM rule_secrets WHERE rule_id = ?1 AND name = ?2")?;
        for name in remove {
            delete.execute(params![rule_id, name])?;
        }
    }
    secrets(conn, rule_id)
}

/// Inserts `version` as `rule_id`'s next version, on the transaction's connection (the
/// rule stored in the same transaction, so that a rule is never left without the version
/// of its current source); returns its number.
pub(super) fn insert_version(
    conn: &Connection,
    rule_id: &str,
    version: &RuleVersion,
) -> StoreResult<u32> {
    let (kind, script, component) = match &version.source {
        RuleSource::Script(s) => ("script", Some(s.as_str()), None),
        RuleSource::Component(c) => ("component", None, Some(c.as_slice())),
    };
    // Reading the last number and inserting happen in one write transaction (IMMEDIATE,
    // see `Store::atomically`), so two writers can never take the same number.
    let last: Option<u32> = conn
        .query_row(
            "SELECT MAX(number) FROM rule_versions WHERE rule_id = ?1",
            [rule_id],
            |row| row.get(0),
        )
        .optional()?
        .flatten();
    let number = last.unwrap_or(0).saturating_add(1);
    conn.prepare_cached(
        "INSERT INTO rule_versions (rule_id, number, source_kind, script, component,
             created_at, created_by, deployed_from)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?
    .execute(params![
        rule_id,
        number,
        kind,
        script,
        component,
        version.created_at,
        version.created_by,
        version.deployed_from,
    ])?;
    Ok(number)
}

impl RuleAdminStore for SqliteStore {
    fn list_rule_secrets(&self, rule_id: &str) -> StoreResult<Vec<SealedSecret>> {
        secrets(&self.conn(), rule_id)
    }

    fn list_rule_versions(&self, rule_id: &str) -> StoreResult<Vec<RuleVersion>> {
        versions(&self.conn(), rule_id)
    }

    fn get_rule_version(&self, rule_id: &str, number: u32) -> StoreResult<Option<RuleVersion>> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached(&format!(
            "SELECT {VERSION_COLUMNS} FROM rule_versions WHERE rule_id = ?1 AND number = ?2"
        ))?;
        let mut rows = stmt.query(params![rule_id, number])?;
        rows.next()?.map(version_from_row).transpose()
    }
}
