//! `/api/v2/rules/{id}/secrets`: values a rule reads as `context.secrets` (and
//! `context.webtask.secrets`, `event.secrets`) instead of keeping them in its source.
//!
//! Values go in and never come out: they are sealed before storage (`secret_box`) and the
//! API lists names only. A change applies from the next token request on.

use std::collections::BTreeSet;

use axum::extract::{Path, State};
use axum::Json;
use serde::Serialize;
use serde_json::{Map, Value};
use utoipa::openapi::schema::{ObjectBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::Authorized;
use super::json::{Body, Query};
use super::paging::{self, List, ListQuery};
use super::rules::find;
use super::scopes::*;
use super::{blocking, write};
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::SealedSecret;

pub(super) const LIST: List = List {
    operation_id: "list_rule_secrets",
    key: "secrets",
};

/// At most this many secrets per rule (CONTRACT.md).
pub const MAX_SECRETS: usize = 30;
/// A name is 1 to this many characters of `[A-Za-z0-9_]`.
pub const MAX_NAME_CHARS: usize = 128;
/// A value is at most this many bytes of UTF-8.
pub const MAX_VALUE_BYTES: usize = 4096;

/// A secret as the API shows it: never its value.
#[derive(Debug, Serialize, ToSchema)]
pub struct SecretView {
    pub name: String,
    pub updated_at: i64,
}

/// The body of `PATCH /rules/{id}/secrets` in the OpenAPI document: names to values (at
/// most [`MAX_VALUE_BYTES`] bytes of UTF-8), `null` removing one.
struct SecretsPatch;

impl utoipa::PartialSchema for SecretsPatch {
    fn schema() -> RefOr<Schema> {
        let value = ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .max_length(Some(MAX_VALUE_BYTES));
        ObjectBuilder::new()
            .schema_type(Type::Object)
            .property_names(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .pattern(Some(format!("^[A-Za-z0-9_]{{1,{MAX_NAME_CHARS}}}$"))),
            ))
            .additional_properties(Some(value))
            .max_properties(Some(MAX_SECRETS))
            .examples([serde_json::json!({"API_KEY": "s3cr3t", "OLD_KEY": null})])
            .into()
    }
}

impl ToSchema for SecretsPatch {}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(list, patch))
}

fn views(secrets: Vec<SealedSecret>) -> Vec<SecretView> {
    secrets
        .into_iter()
        .map(|s| SecretView {
            name: s.name,
            updated_at: s.updated_at,
        })
        .collect()
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_CHARS
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "secret name {name:?} must be 1-{MAX_NAME_CHARS} characters of letters, digits and '_'"
        )))
    }
}

/// A PATCH body, every entry checked.
struct Changes {
    /// Names and new values.
    set: Vec<(String, String)>,
    remove: Vec<String>,
}

fn parse_changes(body: Map<String, Value>) -> Result<Changes, ApiError> {
    let mut set = Vec::new();
    let mut remove = Vec::new();
    for (name, value) in body {
        validate_name(&name)?;
        match value {
            Value::Null => remove.push(name),
            Value::String(value) if value.len() <= MAX_VALUE_BYTES => set.push((name, value)),
            Value::String(value) => {
                return Err(ApiError::bad_request(format!(
                    "the value of secret {name} is {} bytes, over the limit of {MAX_VALUE_BYTES}",
                    value.len()
                )))
            }
            _ => {
                return Err(ApiError::bad_request(format!(
                    "the value of secret {name} must be a string (or null to remove it)"
                )))
            }
        }
    }
    Ok(Changes { set, remove })
}

/// List a rule's secrets: names only, never values.
#[utoipa::path(get, path = "/rules/{id}/secrets", operation_id = "list_rule_secrets", tag = "rules",
    security(("oauth2" = ["read:rules"])),
    responses((status = 200, body = [SecretView]), (status = 404, body = ApiError)),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadRules>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let secrets = blocking(&state, move |s| {
        find(s, &id)?;
        Ok(s.store.list_rule_secrets(&id)?)
    })
    .await?;
    paging::answer(&LIST, &query, views(secrets))
}

/// Set a rule's secrets: `{"NAME": "value"}` sets (or replaces) one, `{"NAME": null}`
/// removes one; others are kept. Answers with the names the rule now has.
#[utoipa::path(patch, path = "/rules/{id}/secrets", operation_id = "update_rule_secrets", tag = "rules",
    security(("oauth2" = ["update:rules"])),
    request_body(content = SecretsPatch, description = "Secret names to string values, or null to remove"),
    responses((status = 200, body = [SecretView]),
        (status = 400, description = "A bad name or value, or over 30 secrets", body = ApiError),
        (status = 404, body = ApiError)))]
async fn patch(
    State(state): State<AppState>,
    caller: Authorized<UpdateRules>,
    Path(id): Path<String>,
    Body(body): Body<Map<String, Value>>,
) -> Result<Json<Vec<SecretView>>, ApiError> {
    let Changes { set, remove } = parse_changes(body)?;
    let secrets = write(&state, move |s| {
        find(s, &id)?;
        let existing = s.store.list_rule_secrets(&id)?;
        let mut names: BTreeSet<&str> = existing.iter().map(|e| e.name.as_str()).collect();
        names.extend(set.iter().map(|(name, _)| name.as_str()));
        for name in &remove {
            names.remove(name.as_str());
        }
        if names.len() > MAX_SECRETS {
            return Err(ApiError::bad_request(format!(
                "a rule may have at most {MAX_SECRETS} secrets; this change would leave it {}",
                names.len()
            )));
        }
        let at = now();
        let sealed = set
            .iter()
            .map(|(name, value)| {
                let sealed = s
                    .secret_box
                    .seal_rule_secret(&id, name, value)
                    .map_err(|e| {
                        tracing::error!(error = %e, "cannot encrypt a rule secret");
                        ApiError::internal()
                    })?;
                Ok(SealedSecret {
                    name: name.clone(),
                    sealed,
                    updated_at: at,
                })
            })
            .collect::<Result<Vec<_>, ApiError>>()?;
        let after = s.store.transaction(|tx| {
            let after = tx.change_rule_secrets(&id, &sealed, &remove)?;
            // Names and times only: the views hold no value.
            let (old, new) = (views(existing.clone()), views(after.clone()));
            audit::record(
                tx,
                &caller,
                &Change::updated("rule_secrets", &id, &old, &new),
            )?;
            Ok(after)
        })?;
        Ok(after)
    })
    .await?;
    Ok(Json(views(secrets)))
}
