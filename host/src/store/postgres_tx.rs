//! The writes of `PgStore`, on the connection of one transaction (`Store::atomically`):
//! each is part of the caller's change, none commits on its own.

use std::cell::RefCell;

use deadpool_postgres::Transaction;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::Row;

use super::postgres::Bridge;
use super::postgres_admin::{secret_from_row, SECRETS};
use super::sqlite::SEALED;
use super::sqlite_tx::to_json;
use super::{
    AuditRecord, Client, ClientGrant, PrivateKeyAtRest, ResourceServer, Rule, RuleSource,
    RuleVersion, SealedSecret, StoreError, StoreResult, StoreTx, StoredSigningKey,
};

/// The open transaction, and the state of its first failed statement: after one, the
/// server refuses every other statement of the transaction until it ends.
pub(super) struct PgTx<'t> {
    tx: &'t Transaction<'t>,
    bridge: &'t Bridge,
    failure: RefCell<Option<SqlState>>,
}

type Params<'p> = &'p [&'p (dyn ToSql + Sync)];

impl<'t> PgTx<'t> {
    pub(super) fn new(tx: &'t Transaction<'t>, bridge: &'t Bridge) -> PgTx<'t> {
        PgTx {
            tx,
            bridge,
            failure: RefCell::new(None),
        }
    }

    /// The SQLSTATE of the first statement that failed, if one did.
    pub(super) fn failure(&self) -> Option<SqlState> {
        self.failure.borrow().clone()
    }

    fn noted<T>(
        &self,
        result: Result<T, tokio_postgres::Error>,
    ) -> Result<T, tokio_postgres::Error> {
        if let Err(e) = &result {
            let mut failure = self.failure.borrow_mut();
            if failure.is_none() {
                *failure = Some(e.code().cloned().unwrap_or(SqlState::CONNECTION_FAILURE));
            }
        }
        result
    }

    fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, tokio_postgres::Error> {
        let tx = self.tx;
        self.noted(self.bridge.block_on(async move {
            let statement = tx.prepare_cached(sql).await?;
            tx.execute(&statement, params).await
        }))
    }

    fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, tokio_postgres::Error> {
        let tx = self.tx;
        self.noted(self.bridge.block_on(async move {
            let statement = tx.prepare_cached(sql).await?;
            tx.query(&statement, params).await
        }))
    }

    fn delete(&self, sql: &str, key: &str) -> StoreResult<bool> {
        Ok(self.execute(sql, &[&key])? > 0)
    }

    /// Inserts or replaces `rule`.
    fn upsert_rule(&self, rule: &Rule) -> StoreResult<()> {
        let (kind, script, component) = source_columns(&rule.source);
        self.execute(
            "INSERT INTO rules (id, name, source_kind, script, component, enabled, ord,
                 artifact, created_at, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO UPDATE SET name = excluded.name,
                 source_kind = excluded.source_kind, script = excluded.script,
                 component = excluded.component, enabled = excluded.enabled,
                 ord = excluded.ord, artifact = excluded.artifact,
                 created_at = excluded.created_at, updated_at = excluded.updated_at",
            &[
                &rule.id,
                &rule.name,
                &kind,
                &script,
                &component,
                &rule.enabled,
                &rule.order,
                &rule.artifact,
                &rule.created_at,
                &rule.updated_at,
            ],
        )
        .map_err(on_unique(|| format!("a rule named {}", rule.name)))?;
        Ok(())
    }
}

fn source_columns(source: &RuleSource) -> (&'static str, Option<&str>, Option<&[u8]>) {
    match source {
        RuleSource::Script(s) => ("script", Some(s.as_str()), None),
        RuleSource::Component(c) => ("component", None, Some(c.as_slice())),
    }
}

/// Maps a write's error: a unique clash (SQLSTATE 23505) is `Conflict` about `what`,
/// anything else `Backend`.
fn on_unique(what: impl FnOnce() -> String) -> impl FnOnce(tokio_postgres::Error) -> StoreError {
    move |e| match e.code() {
        Some(state) if *state == SqlState::UNIQUE_VIOLATION => {
            StoreError::Conflict { what: what() }
        }
        _ => e.into(),
    }
}

fn number(value: u32) -> StoreResult<i32> {
    i32::try_from(value).map_err(|_| StoreError::Backend(format!("version {value} out of range")))
}

impl StoreTx for PgTx<'_> {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        self.execute(
            "INSERT INTO resource_servers (id, identifier, name, scopes, token_lifetime,
                 signing_alg, allow_rule_added_scopes, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET identifier = excluded.identifier,
                 name = excluded.name, scopes = excluded.scopes,
                 token_lifetime = excluded.token_lifetime,
                 signing_alg = excluded.signing_alg,
                 allow_rule_added_scopes = excluded.allow_rule_added_scopes,
                 created_at = excluded.created_at",
            &[
                &api.id,
                &api.identifier,
                &api.name,
                &to_json(&api.scopes)?,
                &i64::from(api.token_lifetime),
                &api.signing_alg.as_str(),
                &api.allow_rule_added_scopes,
                &api.created_at,
            ],
        )
        .map_err(on_unique(|| {
            format!("an API with identifier {}", api.identifier)
        }))?;
        Ok(())
    }

    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        // Grants name their API by audience, not by a foreign key, so no cascade removes
        // them: delete them here, in the same transaction as the API.
        self.execute(
            "DELETE FROM client_grants WHERE audience IN
                 (SELECT identifier FROM resource_servers WHERE id = $1)",
            &[&id],
        )?;
        self.delete("DELETE FROM resource_servers WHERE id = $1", id)
    }

    fn put_client(&self, client: &Client) -> StoreResult<()> {
        // An upsert, not a delete and insert, which would cascade to the grants.
        self.execute(
            "INSERT INTO clients (client_id, name, client_metadata, app_type, created_at,
                 token_rate_limit, authentication, credentials)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (client_id) DO UPDATE SET name = excluded.name,
                 client_metadata = excluded.client_metadata, app_type = excluded.app_type,
                 created_at = excluded.created_at,
                 token_rate_limit = excluded.token_rate_limit,
                 authentication = excluded.authentication,
                 credentials = excluded.credentials",
            &[
                &client.client_id,
                &client.name,
                &to_json(&client.client_metadata)?,
                &client.app_type,
                &client.created_at,
                &client.token_rate_limit.as_ref().map(to_json).transpose()?,
                &to_json(&client.authentication)?,
                &to_json(&client.credentials)?,
            ],
        )?;
        // The secrets in one statement: positions, hashes and expiries as arrays.
        let positions: Vec<i32> = (0..).take(client.secrets.len()).collect();
        let hashes: Vec<&[u8]> = client.secrets.iter().map(|s| s.hash.as_slice()).collect();
        let expiries: Vec<Option<i64>> = client.secrets.iter().map(|s| s.expires_at).collect();
        self.execute(
            "DELETE FROM client_secrets WHERE client_id = $1",
            &[&client.client_id],
        )?;
        if !client.secrets.is_empty() {
            self.execute(
                "INSERT INTO client_secrets (client_id, position, hash, expires_at)
                 SELECT $1, * FROM UNNEST($2::integer[], $3::bytea[], $4::bigint[])",
                &[&client.client_id, &positions, &hashes, &expiries],
            )?;
        }
        Ok(())
    }

    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        self.delete("DELETE FROM clients WHERE client_id = $1", client_id)
    }

    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.execute(
            "INSERT INTO client_grants (id, client_id, audience, scope, created_at)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id,
                 audience = excluded.audience, scope = excluded.scope,
                 created_at = excluded.created_at",
            &[
                &grant.id,
                &grant.client_id,
                &grant.audience,
                &to_json(&grant.scope)?,
                &grant.created_at,
            ],
        )
        .map_err(on_unique(|| {
            format!(
                "a grant for client {} to audience {}",
                grant.client_id, grant.audience
            )
        }))?;
        Ok(())
    }

    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        self.delete("DELETE FROM client_grants WHERE id = $1", id)
    }

    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        self.upsert_rule(rule)
    }

    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        self.delete("DELETE FROM rules WHERE id = $1", id)
    }

    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>> {
        for secret in set {
            self.execute(
                "INSERT INTO rule_secrets (rule_id, name, value, updated_at)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (rule_id, name) DO UPDATE SET value = excluded.value,
                     updated_at = excluded.updated_at",
                &[&rule_id, &secret.name, &secret.sealed, &secret.updated_at],
            )?;
        }
        if !remove.is_empty() {
            self.execute(
                "DELETE FROM rule_secrets WHERE rule_id = $1 AND name = ANY($2)",
                &[&rule_id, &remove],
            )?;
        }
        let rows = self.query(SECRETS, &[&rule_id])?;
        rows.iter().map(secret_from_row).collect()
    }

    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32> {
        // The rule first, so that a rule is never left without the version of its source.
        self.upsert_rule(rule)?;
        let (kind, script, component) = source_columns(&version.source);
        // Reading the last number and taking the next happen in one serializable
        // transaction, so two writers can never take the same number.
        let rows = self.query(
            "INSERT INTO rule_versions (rule_id, number, source_kind, script, component,
                 created_at, created_by, deployed_from)
             SELECT $1, COALESCE(MAX(number), 0) + 1, $2, $3, $4, $5, $6, $7
             FROM rule_versions WHERE rule_id = $1
             RETURNING number",
            &[
                &rule.id,
                &kind,
                &script,
                &component,
                &version.created_at,
                &version.created_by,
                &version.deployed_from.map(number).transpose()?,
            ],
        )?;
        let number: i32 = rows
            .first()
            .ok_or_else(|| StoreError::Backend("no version number came back".into()))?
            .try_get(0)?;
        u32::try_from(number).map_err(|_| StoreError::Corrupt(format!("version {number}")))
    }

    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()> {
        for key in keys {
            let sealed = match &key.private_key {
                PrivateKeyAtRest::Sealed(sealed) => sealed,
                // The invariant "no private key in the clear at rest" holds here, whatever
                // a caller passes.
                PrivateKeyAtRest::Plain(_) => {
                    return Err(StoreError::Backend(format!(
                        "refusing to store signing key {} in the clear",
                        key.kid
                    )))
                }
            };
            self.execute(
                "INSERT INTO signing_keys (kid, alg, state, private_key, private_format,
                     public_jwk, created_at, retired_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, state = excluded.state,
                     private_key = excluded.private_key,
                     private_format = excluded.private_format,
                     public_jwk = excluded.public_jwk, created_at = excluded.created_at,
                     retired_at = excluded.retired_at",
                &[
                    &key.kid,
                    &key.alg.as_str(),
                    &key.state.as_str(),
                    sealed,
                    &SEALED,
                    &to_json(&key.public_jwk)?,
                    &key.created_at,
                    &key.retired_at,
                ],
            )?;
        }
        Ok(())
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        self.delete("DELETE FROM signing_keys WHERE kid = $1", kid)
    }

    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        let json = |value: &Option<serde_json::Value>| value.as_ref().map(to_json).transpose();
        let rows = self.query(
            "INSERT INTO audit_log (at, actor, action, target_type, target_id, before, after)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq",
            &[
                &record.at,
                &record.actor,
                &record.action,
                &record.target_type,
                &record.target_id,
                &json(&record.before)?,
                &json(&record.after)?,
            ],
        )?;
        Ok(rows
            .first()
            .ok_or_else(|| StoreError::Backend("no audit id came back".into()))?
            .try_get(0)?)
    }
}
