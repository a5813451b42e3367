//! `/api/v2/rules/{id}/versions`: every change to a rule's code is a numbered version, and
//! an old one can be deployed again (a rollback: a new version with the old code).

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::Serialize;
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::Authorized;
use super::json::Query;
use super::paging::{self, List, ListQuery};
use super::rules::{compile_for_store, find, RuleView};
use super::scopes::*;
use super::{blocking, write};
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{RuleSource, RuleVersion};

pub(super) const LIST: List = List {
    operation_id: "list_rule_versions",
    key: "versions",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct VersionView {
    pub number: u32,
    /// Is this the version that runs (the latest)?
    pub current: bool,
    /// `script` or `component`.
    pub kind: &'static str,
    /// The JS source: in a single version's view, for a script rule.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub script: Option<String>,
    pub created_at: i64,
    /// The management client that made the change.
    pub created_by: Option<String>,
    /// For a rollback: the version whose code it copied.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployed_from: Option<u32>,
}

impl VersionView {
    fn new(version: RuleVersion, current: u32, with_script: bool) -> VersionView {
        let (kind, script) = match version.source {
            RuleSource::Script(script) => ("script", Some(script).filter(|_| with_script)),
            RuleSource::Component(_) => ("component", None),
        };
        VersionView {
            number: version.number,
            current: version.number == current,
            kind,
            script,
            created_at: version.created_at,
            created_by: version.created_by,
            deployed_from: version.deployed_from,
        }
    }
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(get_one))
        .routes(routes!(deploy))
}

/// A path's version number; anything else names no version (404, in our error shape rather
/// than axum's plain-text rejection).
fn version_number(text: &str) -> Result<u32, ApiError> {
    text.parse()
        .map_err(|_| ApiError::not_found("The rule version"))
}

fn latest(versions: &[RuleVersion]) -> u32 {
    versions.iter().map(|v| v.number).max().unwrap_or(0)
}

/// List a rule's versions, oldest first (without their code).
#[utoipa::path(get, path = "/rules/{id}/versions", operation_id = "list_rule_versions", tag = "rules",
    security(("oauth2" = ["read:rules"])),
    responses((status = 200, body = [VersionView]), (status = 404, body = ApiError)),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadRules>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let versions = blocking(&state, move |s| {
        find(s, &id)?;
        Ok(s.store.list_rule_versions(&id)?)
    })
    .await?;
    let current = latest(&versions);
    let views = versions
        .into_iter()
        .map(|v| VersionView::new(v, current, false));
    paging::answer(&LIST, &query, views)
}

/// Get one version of a rule, with its script.
#[utoipa::path(get, path = "/rules/{id}/versions/{number}", operation_id = "get_rule_version", tag = "rules",
    security(("oauth2" = ["read:rules"])),
    responses((status = 200, body = VersionView), (status = 404, body = ApiError)))]
async fn get_one(
    State(state): State<AppState>,
    _: Authorized<ReadRules>,
    Path((id, number)): Path<(String, String)>,
) -> Result<Json<VersionView>, ApiError> {
    let number = version_number(&number)?;
    let (version, current) = blocking(&state, move |s| {
        find(s, &id)?;
        let versions = s.store.list_rule_versions(&id)?;
        let current = latest(&versions);
        let version = versions
            .into_iter()
            .find(|v| v.number == number)
            .ok_or_else(|| ApiError::not_found("The rule version"))?;
        Ok((version, current))
    })
    .await?;
    Ok(Json(VersionView::new(version, current, true)))
}

/// Deploy an earlier version again: its code is compiled like an upload and becomes a new
/// version, the current one, from the next token request on.
#[utoipa::path(post, path = "/rules/{id}/versions/{number}/deploy", operation_id = "deploy_rule_version", tag = "rules",
    security(("oauth2" = ["update:rules"])),
    responses((status = 201, description = "The new version", body = VersionView),
        (status = 400, description = "The old code no longer compiles", body = ApiError),
        (status = 404, body = ApiError)))]
async fn deploy(
    State(state): State<AppState>,
    caller: Authorized<UpdateRules>,
    Path((id, number)): Path<(String, String)>,
) -> Result<(StatusCode, Json<VersionView>), ApiError> {
    let number = version_number(&number)?;
    let by = caller.client_id.clone();
    let version = write(&state, move |s| {
        let mut rule = find(s, &id)?;
        let before = RuleView::from(rule.clone());
        let old = s
            .store
            .get_rule_version(&id, number)?
            .ok_or_else(|| ApiError::not_found("The rule version"))?;
        rule.source = old.source;
        rule.artifact = None;
        rule.updated_at = now();
        let (rule, version, compiled) = compile_for_store(s, rule, &by, Some(number))?;
        let change =
            Change::updated("rule", &id, &before, &RuleView::from(rule.clone())).action("deploy");
        let new = s.store.transaction(|tx| {
            let new = tx.put_rule_version(&rule, &version)?;
            audit::record(tx, &caller, &change)?;
            Ok(new)
        })?;
        s.keep_compiled(&rule, compiled);
        s.store
            .get_rule_version(&id, new)?
            .ok_or_else(ApiError::internal)
    })
    .await?;
    let current = version.number;
    Ok((
        StatusCode::CREATED,
        Json(VersionView::new(version, current, true)),
    ))
}
