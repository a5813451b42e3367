//! `/api/v2/audit`: the trail of management changes, the one call that records one, and
//! its retention.
//!
//! A handler records its change in the transaction that makes it, so that neither is
//! stored without the other: `s.store.transaction(|tx| { tx.put_rule(&rule)?;
//! audit::record(tx, &caller, &change) })?`. A failure to record fails the request, with
//! nothing changed. `before` and `after` are the API's own views of the resource; whatever
//! they hold, values under a key naming a secret (or a hash, or a private key) are replaced
//! before storing, so no client secret, secret hash or rule secret value ever reaches the
//! trail. Entries older than `audit_retention_days` are deleted at start and hourly.

use std::time::Duration;

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Authorized, Caller};
use super::blocking;
use super::json::Query;
use super::paging::{List, ListQuery, Paging};
use super::scopes::ReadAudit;
use crate::redacted::REDACTED;
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{rfc3339_ms, AuditEntry, AuditFilter, AuditRecord, StoreResult, StoreTx};
/// The most `limit` may ask for.
pub const MAX_LIMIT: u32 = 1000;

pub(super) const LIST: List = List {
    operation_id: "list_audit_entries",
    key: "audit",
};

/// One change, before it is recorded.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl Change {
    fn new(action: &str, target_type: &str, target_id: &str) -> Change {
        Change {
            action: action.into(),
            target_type: target_type.into(),
            target_id: target_id.into(),
            before: None,
            after: None,
        }
    }

    pub fn created(target_type: &str, target_id: &str, after: &impl Serialize) -> Change {
        Change {
            after: Some(snapshot(after)),
            ..Change::new("create", target_type, target_id)
        }
    }

    pub fn updated(
        target_type: &str,
        target_id: &str,
        before: &impl Serialize,
        after: &impl Serialize,
    ) -> Change {
        Change {
            before: Some(snapshot(before)),
            after: Some(snapshot(after)),
            ..Change::new("update", target_type, target_id)
        }
    }

    pub fn deleted(target_type: &str, target_id: &str, before: &impl Serialize) -> Change {
        Change {
            before: Some(snapshot(before)),
            ..Change::new("delete", target_type, target_id)
        }
    }

    /// The same change under a more specific action (`rotate_secret`, `deploy`, ...).
    pub fn action(mut self, action: &str) -> Change {
        self.action = action.into();
        self
    }
}

/// Records `change` as made by `caller`, now, in `tx`: the transaction that makes the
/// change, after its writes. An error fails the transaction, so the change is not stored
/// without its record (the caller's `?` turns it into a 500).
pub fn record(tx: &dyn StoreTx, caller: &Caller, change: &Change) -> StoreResult<()> {
    let record = AuditRecord {
        at: now(),
        actor: caller.client_id.clone(),
        action: change.action.clone(),
        target_type: change.target_type.clone(),
        target_id: change.target_id.clone(),
        before: change.before.clone(),
        after: change.after.clone(),
    };
    tx.record_audit(&record).map(drop).inspect_err(|e| {
        tracing::error!(error = %e, actor = %record.actor, action = %record.action,
            target_type = %record.target_type, target_id = %record.target_id,
            "cannot record a management change in the audit trail: the change is not made");
    })
}

/// How often the audit trail is pruned after the first time, at start.
const PRUNE_EVERY: Duration = Duration::from_secs(60 * 60);

/// Deletes the audit entries older than `audit_retention_days` now, before the server
/// serves, then every hour, on a blocking thread off the request path.
pub async fn keep_within_retention(state: &AppState) {
    prune(state).await;
    let state = state.clone();
    tokio::spawn(async move {
        let first = tokio::time::Instant::now() + PRUNE_EVERY;
        let mut every = tokio::time::interval_at(first, PRUNE_EVERY);
        loop {
            every.tick().await;
            prune(&state).await;
        }
    });
}

async fn prune(state: &AppState) {
    let days = i64::from(state.config.audit_retention_days.get());
    let before = now().saturating_sub(days.saturating_mul(86_400));
    let store = state.store.clone();
    match tokio::task::spawn_blocking(move || store.prune_audit(before)).await {
        Ok(Ok(0)) => {}
        Ok(Ok(pruned)) => tracing::info!(pruned, days, "pruned the audit trail"),
        Ok(Err(e)) => tracing::warn!(error = %e, "cannot prune the audit trail"),
        Err(e) => tracing::warn!(error = %e, "the audit pruning task failed"),
    }
}

/// `value` as JSON with its secrets replaced.
fn snapshot(value: &impl Serialize) -> Value {
    match serde_json::to_value(value) {
        Ok(mut json) => {
            redact(&mut json);
            json
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot serialize an audited resource");
            Value::Null
        }
    }
}

fn is_secret_key(key: &str) -> bool {
    let key = key.to_ascii_lowercase();
    key.contains("secret") || key.contains("password") || key.contains("private") || key == "hash"
}

/// Replaces every value under a secret-naming key. A map of secrets keeps its names (which
/// secrets changed is worth auditing), a list of named secrets keeps each `name`.
fn redact(value: &mut Value) {
    match value {
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if is_secret_key(key) {
                    *inner = redacted(inner);
                } else {
                    redact(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact),
        _ => {}
    }
}

fn redacted(value: &Value) -> Value {
    match value {
        Value::Null => Value::Null,
        Value::Object(map) => Value::Object(
            map.keys()
                .map(|name| (name.clone(), Value::from(REDACTED)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(
            items
                .iter()
                .map(|item| match item.get("name") {
                    Some(name) => {
                        let mut kept = Map::new();
                        kept.insert("name".into(), name.clone());
                        kept.insert("value".into(), Value::from(REDACTED));
                        Value::Object(kept)
                    }
                    None => Value::from(REDACTED),
                })
                .collect(),
        ),
        _ => Value::from(REDACTED),
    }
}

/// One recorded change.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditView {
    pub id: i64,
    /// When, RFC 3339 (UTC).
    pub time: String,
    /// When, Unix seconds.
    pub at: i64,
    /// The management client that made the change.
    pub actor: String,
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    /// The resource before the change (any JSON: a list for signing keys); secrets
    /// redacted.
    #[schema(value_type = Option<serde_json::Value>)]
    pub before: Option<Value>,
    /// The resource after the change, likewise.
    #[schema(value_type = Option<serde_json::Value>)]
    pub after: Option<Value>,
}

impl From<AuditEntry> for AuditView {
    fn from(entry: AuditEntry) -> Self {
        let r = entry.record;
        AuditView {
            id: entry.id,
            time: rfc3339_ms(r.at.saturating_mul(1000)),
            at: r.at,
            actor: r.actor,
            action: r.action,
            target_type: r.target_type,
            target_id: r.target_id,
            before: r.before,
            after: r.after,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct AuditQuery {
    /// Only the first this many entries (1 to 1000), instead of `page` and `per_page`.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<u32>,
    /// Only changes to this kind of resource (`client`, `rule`, `resource_server`, ...).
    pub target_type: Option<String>,
    /// Only changes to this resource.
    pub target_id: Option<String>,
    /// Only changes by this management client.
    pub actor: Option<String>,
    /// Only entries older than this id (the next page: the last id of the previous one).
    pub before_id: Option<i64>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list))
}

/// List management changes, newest first.
#[utoipa::path(get, path = "/audit", operation_id = "list_audit_entries", tag = "audit",
    security(("oauth2" = ["read:audit"])),
    responses((status = 200, body = [AuditView]), (status = 403, body = ApiError)),
    params(AuditQuery, ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadAudit>,
    Query(query): Query<AuditQuery>,
    Query(list): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let paging = Paging::new::<AuditView>(&list)?.or_limit(query.limit, MAX_LIMIT, &list)?;
    let filter = AuditFilter {
        limit: paging.per_page,
        offset: paging.start,
        target_type: query.target_type,
        target_id: query.target_id,
        actor: query.actor,
        before_id: query.before_id,
    };
    let totals = paging.totals();
    let (entries, total) = blocking(&state, move |s| {
        let entries = s.store.list_audit(&filter)?;
        let total = if totals {
            s.store.count_audit(&filter)?
        } else {
            0
        };
        Ok((entries, total))
    })
    .await?;
    let views = entries.into_iter().map(AuditView::from).collect();
    paging.answer_page(&LIST, views, total)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn secrets_are_replaced_and_names_kept() {
        let mut value = json!({
            "client_id": "c1",
            "client_secret": "s3cr3t",
            "secrets": {"API_KEY": "xyz"},
            "nested": [{"secret_hash": [1, 2]}, {"rule_secrets": [{"name": "K", "value": "v"}]}],
            "script": "module.exports = ...",
            "scopes": [{"value": "test"}],
        });
        redact(&mut value);
        let text = value.to_string();
        assert!(!text.contains("s3cr3t") && !text.contains("xyz") && !text.contains("\"v\""));
        assert_eq!(value["client_id"], "c1");
        assert_eq!(value["secrets"]["API_KEY"], REDACTED);
        assert_eq!(value["nested"][1]["rule_secrets"][0]["name"], "K");
        assert_eq!(value["script"], "module.exports = ...");
        assert_eq!(value["scopes"][0]["value"], "test");
    }

    #[test]
    fn changes_carry_snapshots() {
        let change = Change::updated("client", "c1", &json!({"name": "a"}), &json!({"name": "b"}))
            .action("rename");
        assert_eq!(change.action, "rename");
        assert_eq!(change.before, Some(json!({"name": "a"})));
        assert_eq!(change.after, Some(json!({"name": "b"})));
        assert_eq!(Change::deleted("rule", "r", &json!({})).after, None);
    }
}
