//! The writes of `SqliteStore`, on the connection of one transaction
//! (`Store::atomically`): each is part of the caller's change, none commits on its own.

use rusqlite::{ffi, params, Connection, ErrorCode};
use serde::Serialize;

use super::audit::insert_audit;
use super::rule_admin::{change_secrets, insert_version};
use super::sqlite::SEALED;
use super::{
    AuditRecord, Client, ClientGrant, PrivateKeyAtRest, ResourceServer, Rule, RuleSource,
    RuleVersion, SealedSecret, StoreError, StoreResult, StoreTx, StoredSigningKey,
};

/// The open transaction's connection.
pub(super) struct SqliteTx<'c>(pub(super) &'c Connection);

/// Inserts or replaces `rule`.
fn upsert_rule(conn: &Connection, rule: &Rule) -> StoreResult<()> {
    let (kind, script, component) = match &rule.source {
        RuleSource::Script(s) => ("script", Some(s.as_str()), None),
        RuleSource::Component(c) => ("component", None, Some(c.as_slice())),
    };
    conn.prepare_cached(
        "INSERT INTO rules (id, name, source_kind, script, component, enabled, ord,
             artifact, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)
         ON CONFLICT (id) DO UPDATE SET name = excluded.name,
             source_kind = excluded.source_kind, script = excluded.script,
             component = excluded.component, enabled = excluded.enabled,
             ord = excluded.ord, artifact = excluded.artifact,
             created_at = excluded.created_at, updated_at = excluded.updated_at",
    )?
    .execute(params![
        rule.id,
        rule.name,
        kind,
        script,
        component,
        rule.enabled,
        rule.order,
        rule.artifact,
        rule.created_at,
        rule.updated_at,
    ])
    .map_err(on_unique(|| format!("a rule named {}", rule.name)))?;
    Ok(())
}

/// Maps a write's error: a UNIQUE clash is `Conflict` about `what`, anything else `Backend`.
fn on_unique(what: impl FnOnce() -> String) -> impl FnOnce(rusqlite::Error) -> StoreError {
    move |e| match e.sqlite_error() {
        Some(f)
            if f.code == ErrorCode::ConstraintViolation
                && f.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE =>
        {
            StoreError::Conflict { what: what() }
        }
        _ => e.into(),
    }
}

pub(super) fn to_json<T: Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Backend(format!("encoding JSON: {e}")))
}

fn delete(conn: &Connection, sql: &str, key: &str) -> StoreResult<bool> {
    Ok(conn.execute(sql, [key])? > 0)
}

impl StoreTx for SqliteTx<'_> {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "INSERT INTO resource_servers (id, identifier, name, scopes, token_lifetime,
                     signing_alg, allow_rule_added_scopes, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
                 ON CONFLICT (id) DO UPDATE SET identifier = excluded.identifier,
                     name = excluded.name, scopes = excluded.scopes,
                     token_lifetime = excluded.token_lifetime,
                     signing_alg = excluded.signing_alg,
                     allow_rule_added_scopes = excluded.allow_rule_added_scopes,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                api.id,
                api.identifier,
                api.name,
                to_json(&api.scopes)?,
                api.token_lifetime,
                api.signing_alg.as_str(),
                api.allow_rule_added_scopes,
                api.created_at,
            ])
            .map_err(on_unique(|| {
                format!("an API with identifier {}", api.identifier)
            }))?;
        Ok(())
    }

    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        // Grants name their API by audience, not by a foreign key, so no cascade removes
        // them: delete them here, in the same transaction as the API.
        self.0.execute(
            "DELETE FROM client_grants WHERE audience IN
                 (SELECT identifier FROM resource_servers WHERE id = ?1)",
            [id],
        )?;
        delete(self.0, "DELETE FROM resource_servers WHERE id = ?1", id)
    }

    fn put_client(&self, client: &Client) -> StoreResult<()> {
        let conn = self.0;
        // An upsert, not REPLACE: REPLACE deletes the row first and would cascade to grants.
        conn.prepare_cached(
            "INSERT INTO clients (client_id, name, client_metadata, app_type, created_at,
                 token_rate_limit, authentication, credentials)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (client_id) DO UPDATE SET name = excluded.name,
                 client_metadata = excluded.client_metadata, app_type = excluded.app_type,
                 created_at = excluded.created_at,
                 token_rate_limit = excluded.token_rate_limit,
                 authentication = excluded.authentication,
                 credentials = excluded.credentials",
        )?
        .execute(params![
            client.client_id,
            client.name,
            to_json(&client.client_metadata)?,
            client.app_type,
            client.created_at,
            client.token_rate_limit.as_ref().map(to_json).transpose()?,
            to_json(&client.authentication)?,
            to_json(&client.credentials)?,
        ])?;
        conn.execute(
            "DELETE FROM client_secrets WHERE client_id = ?1",
            [&client.client_id],
        )?;
        {
            let mut insert = conn.prepare_cached(
                "INSERT INTO client_secrets (client_id, position, hash, expires_at)
                 VALUES (?1, ?2, ?3, ?4)",
            )?;
            for (position, secret) in (0_i64..).zip(&client.secrets) {
                insert.execute(params![
                    client.client_id,
                    position,
                    secret.hash,
                    secret.expires_at
                ])?;
            }
        }
        Ok(())
    }

    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        delete(
            self.0,
            "DELETE FROM clients WHERE client_id = ?1",
            client_id,
        )
    }

    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        self.0
            .prepare_cached(
                "INSERT INTO client_grants (id, client_id, audience, scope, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id,
                     audience = excluded.audience, scope = excluded.scope,
                     created_at = excluded.created_at",
            )?
            .execute(params![
                grant.id,
                grant.client_id,
                grant.audience,
                to_json(&grant.scope)?,
                grant.created_at,
            ])
            .map_err(on_unique(|| {
                format!(
                    "a grant for client {} to audience {}",
                    grant.client_id, grant.audience
                )
            }))?;
        Ok(())
    }

    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        delete(self.0, "DELETE FROM client_grants WHERE id = ?1", id)
    }

    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        upsert_rule(self.0, rule)
    }

    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        delete(self.0, "DELETE FROM rules WHERE id = ?1", id)
    }

    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>> {
        change_secrets(self.0, rule_id, set, remove)
    }

    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32> {
        upsert_rule(self.0, rule)?;
        insert_version(self.0, &rule.id, version)
    }

    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()> {
        let mut upsert = self.0.prepare_cached(
            "INSERT INTO signing_keys (kid, alg, state, private_key, private_format,
                 public_jwk, created_at, retired_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (kid) DO UPDATE SET alg = excluded.alg, state = excluded.state,
                 private_key = excluded.private_key,
                 private_format = excluded.private_format,
                 public_jwk = excluded.public_jwk, created_at = excluded.created_at,
                 retired_at = excluded.retired_at",
        )?;
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
            upsert.execute(params![
                key.kid,
                key.alg.as_str(),
                key.state.as_str(),
                sealed,
                SEALED,
                to_json(&key.public_jwk)?,
                key.created_at,
                key.retired_at,
            ])?;
        }
        Ok(())
    }

    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        delete(self.0, "DELETE FROM signing_keys WHERE kid = ?1", kid)
    }

    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        insert_audit(self.0, record)
    }
}

/// In tests, each write is a transaction of its own, so that they read like single calls.
#[cfg(test)]
impl StoreTx for super::SqliteStore {
    fn put_resource_server(&self, api: &ResourceServer) -> StoreResult<()> {
        alone(self, |tx| tx.put_resource_server(api))
    }
    fn delete_resource_server(&self, id: &str) -> StoreResult<bool> {
        alone(self, |tx| tx.delete_resource_server(id))
    }
    fn put_client(&self, client: &Client) -> StoreResult<()> {
        alone(self, |tx| tx.put_client(client))
    }
    fn delete_client(&self, client_id: &str) -> StoreResult<bool> {
        alone(self, |tx| tx.delete_client(client_id))
    }
    fn put_client_grant(&self, grant: &ClientGrant) -> StoreResult<()> {
        alone(self, |tx| tx.put_client_grant(grant))
    }
    fn delete_client_grant(&self, id: &str) -> StoreResult<bool> {
        alone(self, |tx| tx.delete_client_grant(id))
    }
    fn put_rule(&self, rule: &Rule) -> StoreResult<()> {
        alone(self, |tx| tx.put_rule(rule))
    }
    fn delete_rule(&self, id: &str) -> StoreResult<bool> {
        alone(self, |tx| tx.delete_rule(id))
    }
    fn change_rule_secrets(
        &self,
        rule_id: &str,
        set: &[SealedSecret],
        remove: &[String],
    ) -> StoreResult<Vec<SealedSecret>> {
        alone(self, |tx| tx.change_rule_secrets(rule_id, set, remove))
    }
    fn put_rule_version(&self, rule: &Rule, version: &RuleVersion) -> StoreResult<u32> {
        alone(self, |tx| tx.put_rule_version(rule, version))
    }
    fn put_signing_keys(&self, keys: &[StoredSigningKey]) -> StoreResult<()> {
        alone(self, |tx| tx.put_signing_keys(keys))
    }
    fn delete_signing_key(&self, kid: &str) -> StoreResult<bool> {
        alone(self, |tx| tx.delete_signing_key(kid))
    }
    fn record_audit(&self, record: &AuditRecord) -> StoreResult<i64> {
        alone(self, |tx| tx.record_audit(record))
    }
}

#[cfg(test)]
fn alone<T>(
    store: &super::SqliteStore,
    f: impl FnMut(&dyn StoreTx) -> StoreResult<T>,
) -> StoreResult<T> {
    (store as &dyn super::Store).transaction(f)
}
