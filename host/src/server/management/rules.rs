//! `/api/v2/rules`: upload, change, enable, order and delete rules.
//!
//! A rule is compiled when it is uploaded (a compile error is a 400 with its line and
//! column) and applies to the next token request; its compiled artifact is stored so a
//! restart does not recompile.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::Authorized;
use super::json::{Body, Query};
use super::paging::{self, List, ListQuery};
use super::scopes::*;
use super::{blocking, write};
use crate::credentials::generate_id;
use crate::rules::{CompileError, CompiledRule};
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{Rule, RuleSource, RuleVersion};

pub(super) const LIST: List = List {
    operation_id: "list_rules",
    key: "rules",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct RuleView {
    pub id: String,
    pub name: String,
    /// The JS source (absent for a rule uploaded as a component).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    /// `script` or `component`.
    pub kind: &'static str,
    pub enabled: bool,
    pub order: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

impl From<Rule> for RuleView {
    fn from(rule: Rule) -> Self {
        let (script, kind) = match rule.source {
            RuleSource::Script(script) => (Some(script), "script"),
            RuleSource::Component(_) => (None, "component"),
        };
        RuleView {
            id: rule.id,
            name: rule.name,
            script,
            kind,
            enabled: rule.enabled,
            order: rule.order,
            created_at: rule.created_at,
            updated_at: rule.updated_at,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateRule {
    /// 1-128 letters, digits, spaces, `-` and `_`.
    #[schema(pattern = "^[A-Za-z0-9 _-]{1,128}$", example = "add-tier-claim")]
    pub name: Option<String>,
    /// JavaScript source: `module.exports = function (client, scope, audience, context, cb) {...}`.
    pub script: Option<String>,
    /// Or a WebAssembly component implementing `wit/rule.wit`, base64.
    pub component: Option<String>,
    pub enabled: Option<bool>,
    /// Position in the chain (ascending); default: after the last rule.
    pub order: Option<i64>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateRule {
    /// 1-128 letters, digits, spaces, `-` and `_`.
    #[schema(pattern = "^[A-Za-z0-9 _-]{1,128}$")]
    pub name: Option<String>,
    pub script: Option<String>,
    pub component: Option<String>,
    pub enabled: Option<bool>,
    pub order: Option<i64>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

fn source(
    script: Option<String>,
    component: Option<String>,
) -> Result<Option<RuleSource>, ApiError> {
    match (script, component) {
        (Some(_), Some(_)) => Err(ApiError::bad_request(
            "give either script or component, not both",
        )),
        (Some(script), None) => Ok(Some(RuleSource::Script(script))),
        (None, Some(b64)) => STANDARD
            .decode(b64.trim())
            .map(|wasm| Some(RuleSource::Component(wasm)))
            .map_err(|e| ApiError::bad_request(format!("component is not valid base64: {e}"))),
        (None, None) => Ok(None),
    }
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == ' ');
    if ok {
        Ok(())
    } else {
        Err(ApiError::bad_request(
            "name must be 1-128 characters of letters, digits, spaces, '-' and '_'",
        ))
    }
}

/// Each rule holds its compiled code (~11 MB) in memory: their number is capped.
fn too_many_rules(max: usize) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "too_many_rules",
        format!("Too many rules: at most {max} may exist (max_rules); delete one first"),
    )
}

pub(super) fn compile_error(error: CompileError) -> ApiError {
    match error {
        CompileError::Script {
            message,
            line,
            column,
            ..
        } => ApiError {
            line: Some(line),
            column: Some(column),
            ..ApiError::new(StatusCode::BAD_REQUEST, "compile_error", message)
        },
        CompileError::Runtime(reason) => {
            tracing::error!(%reason, "rule compilation failed inside tokenhost");
            ApiError::internal()
        }
        other => ApiError::new(StatusCode::BAD_REQUEST, "compile_error", other.to_string()),
    }
}

/// Compiles `rule`'s source: the rule with its sealed artifact, and its source as its next
/// version, made `by` a management client (`deployed_from`: the version a rollback
/// copied), for the caller to store in the transaction that records the change
/// (`StoreTx::put_rule_version`); and the compiled rule, for the caller to hand to the
/// catalog once stored (`AppState::keep_compiled`). Compiling comes first, so no
/// transaction waits on it.
pub(super) fn compile_for_store(
    state: &AppState,
    mut rule: Rule,
    by: &str,
    deployed_from: Option<u32>,
) -> Result<(Rule, RuleVersion, Arc<CompiledRule>), ApiError> {
    let compiled = state.compile_source(&rule.source).map_err(compile_error)?;
    rule.artifact = state
        .engine
        .seal(&compiled, &state.artifact_key)
        .map_err(|e| tracing::warn!(error = %e, "cannot seal the compiled rule"))
        .ok();
    let version = RuleVersion {
        number: 0,
        source: rule.source.clone(),
        created_at: rule.updated_at,
        created_by: Some(by.to_string()),
        deployed_from,
    };
    Ok((rule, version, Arc::new(compiled)))
}

pub(super) fn find(state: &AppState, id: &str) -> Result<Rule, ApiError> {
    state
        .store
        .list_rules()?
        .into_iter()
        .find(|r| r.id == id)
        .ok_or_else(|| ApiError::not_found("The rule"))
}

/// List rules in chain order.
#[utoipa::path(get, path = "/rules", operation_id = "list_rules", tag = "rules",
    security(("oauth2" = ["read:rules"])),
    responses((status = 200, body = [RuleView])),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadRules>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let rules = blocking(&state, |s| Ok(s.store.list_rules()?)).await?;
    paging::answer(&LIST, &query, rules.into_iter().map(RuleView::from))
}

/// Upload a rule (JS `script`, or a `component`); it is compiled now and runs from the
/// next token request on.
#[utoipa::path(post, path = "/rules", operation_id = "create_rule", tag = "rules",
    security(("oauth2" = ["create:rules"])),
    request_body = CreateRule,
    responses((status = 201, body = RuleView), (status = 400, description = "Compile error, with line and column", body = ApiError)))]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<CreateRules>,
    Body(body): Body<CreateRule>,
) -> Result<(StatusCode, Json<RuleView>), ApiError> {
    let source = source(body.script, body.component)?
        .ok_or_else(|| ApiError::bad_request("a rule needs a script (or a component)"))?;
    let id = generate_id("rul_").map_err(|_| ApiError::internal())?;
    let name = body.name.unwrap_or_else(|| id.clone());
    validate_name(&name)?;
    let by = caller.client_id.clone();
    let rule = write(&state, move |s| {
        let existing = s.store.list_rules()?;
        // Under the write lock: two uploads at once cannot both take the last place.
        if existing.len() >= s.config.max_rules {
            return Err(too_many_rules(s.config.max_rules));
        }
        if existing.iter().any(|r| r.name == name) {
            return Err(ApiError::conflict(format!(
                "a rule named {name:?} already exists"
            )));
        }
        let order = body
            .order
            .unwrap_or_else(|| existing.iter().map(|r| r.order + 1).max().unwrap_or(1));
        let at = now();
        let rule = Rule {
            id,
            name,
            source,
            enabled: body.enabled.unwrap_or(true),
            order,
            artifact: None,
            created_at: at,
            updated_at: at,
        };
        let (rule, version, compiled) = compile_for_store(s, rule, &by, None)?;
        let change = Change::created("rule", &rule.id, &RuleView::from(rule.clone()));
        s.store.transaction(|tx| {
            tx.put_rule_version(&rule, &version)?;
            audit::record(tx, &caller, &change)
        })?;
        s.keep_compiled(&rule, compiled);
        Ok(rule)
    })
    .await?;
    Ok((StatusCode::CREATED, Json(rule.into())))
}

/// Get one rule.
#[utoipa::path(get, path = "/rules/{id}", operation_id = "get_rule", tag = "rules",
    security(("oauth2" = ["read:rules"])),
    responses((status = 200, body = RuleView), (status = 404, body = ApiError)))]
async fn get_one(
    State(state): State<AppState>,
    _: Authorized<ReadRules>,
    Path(id): Path<String>,
) -> Result<Json<RuleView>, ApiError> {
    Ok(Json(blocking(&state, move |s| find(s, &id)).await?.into()))
}

/// Change a rule's script (recompiled), name, `enabled` or `order`.
#[utoipa::path(patch, path = "/rules/{id}", operation_id = "update_rule", tag = "rules",
    security(("oauth2" = ["update:rules"])),
    request_body = UpdateRule,
    responses((status = 200, body = RuleView), (status = 400, body = ApiError), (status = 404, body = ApiError)))]
async fn update(
    State(state): State<AppState>,
    caller: Authorized<UpdateRules>,
    Path(id): Path<String>,
    Body(body): Body<UpdateRule>,
) -> Result<Json<RuleView>, ApiError> {
    let new_source = source(body.script, body.component)?;
    let by = caller.client_id.clone();
    let rule = write(&state, move |s| {
        let mut rule = find(s, &id)?;
        let before = RuleView::from(rule.clone());
        if let Some(name) = body.name {
            validate_name(&name)?;
            if s.store
                .list_rules()?
                .iter()
                .any(|r| r.name == name && r.id != rule.id)
            {
                return Err(ApiError::conflict(format!(
                    "a rule named {name:?} already exists"
                )));
            }
            rule.name = name;
        }
        if let Some(enabled) = body.enabled {
            rule.enabled = enabled;
        }
        if let Some(order) = body.order {
            rule.order = order;
        }
        rule.updated_at = now();
        // A new source is compiled now and stored with its version; other changes store
        // the rule alone.
        let (rule, version, compiled) = match new_source {
            Some(source) => {
                rule.source = source;
                rule.artifact = None;
                let (rule, version, compiled) = compile_for_store(s, rule, &by, None)?;
                (rule, Some(version), Some(compiled))
            }
            None => (rule, None, None),
        };
        let change = Change::updated("rule", &id, &before, &RuleView::from(rule.clone()));
        s.store.transaction(|tx| {
            match &version {
                Some(version) => tx.put_rule_version(&rule, version).map(drop)?,
                None => tx.put_rule(&rule)?,
            }
            audit::record(tx, &caller, &change)
        })?;
        if let Some(compiled) = compiled {
            s.keep_compiled(&rule, compiled);
        }
        Ok(rule)
    })
    .await?;
    Ok(Json(rule.into()))
}

/// Delete a rule.
#[utoipa::path(delete, path = "/rules/{id}", operation_id = "delete_rule", tag = "rules",
    security(("oauth2" = ["delete:rules"])),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete(
    State(state): State<AppState>,
    caller: Authorized<DeleteRules>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    write(&state, move |s| {
        let before = RuleView::from(find(s, &id)?);
        let change = Change::deleted("rule", &id, &before);
        let deleted = s.store.transaction(|tx| {
            let deleted = tx.delete_rule(&id)?;
            if deleted {
                audit::record(tx, &caller, &change)?;
            }
            Ok(deleted)
        })?;
        if deleted {
            Ok(())
        } else {
            Err(ApiError::not_found("The rule"))
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
