//! `POST /api/v2/rules/{id}/test`: run a rule (its current version, or an unsaved script)
//! once against a sample event, with the rule's secrets, and report what it did. Nothing is
//! issued and nothing is stored: the original dashboard's "Try".

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Path, State};
use axum::Json;
use serde::Deserialize;
use serde_json::{json, Value};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Authorized;
use super::blocking;
use super::json::Body;
use super::rules::{compile_error, find};
use super::scopes::*;
use crate::rules::{Denial, EventFile, Failure, LogLine, RuleCache, RuleInput, RuleSecrets, Token};
use crate::server::api_error::ApiError;
use crate::server::state::AppState;

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRule {
    /// The rule's arguments as `tokenhost run-rule`'s event file gives them:
    /// `{"client": {...}, "scope": [...], "audience": "...", "context": {...}}`; missing parts
    /// get defaults. Secrets in `context.secrets` override the rule's own of the same name.
    #[serde(default)]
    #[schema(value_type = Option<EventFile>)]
    pub event: Value,
    /// JavaScript source to run instead of the rule's current version; it is not saved.
    pub script: Option<String>,
}

// The answer's shape in the OpenAPI document. The handler builds the answer from the
// execution's own serialization; tests/it/openapi.rs checks real answers against this.
/// What a test execution did.
#[derive(ToSchema)]
#[allow(dead_code)]
struct TestReport {
    outcome: ReportOutcome,
    /// The token as the token endpoint would issue it; null unless one would be issued.
    token: Option<Token>,
    /// Present when the rule denied.
    #[schema(required = false)]
    denial: Option<Denial>,
    /// Present when the rule failed.
    #[schema(required = false)]
    failure: Option<Failure>,
    logs: Vec<LogLine>,
    /// Some of the rule's output was cut to its bounds.
    truncated: bool,
    fuel_used: u64,
    duration_us: u64,
    /// The saved version that ran; null for an unsaved script.
    version: Option<u32>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)]
enum ReportOutcome {
    Issued,
    Denied,
    Failed,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new().routes(routes!(test))
}

/// Run a rule against a sample event without issuing a token. Answers
/// `{outcome, token, denial | failure, logs, fuel_used, duration_us, version}` (`token` is
/// null unless one would be issued; `version` is null for an unsaved script).
#[utoipa::path(post, path = "/rules/{id}/test", operation_id = "test_rule", tag = "rules",
    security(("oauth2" = ["update:rules"])),
    request_body = TestRule,
    responses((status = 200, description = "What the execution did", body = TestReport),
        (status = 400, description = "A bad event, or an unsaved script that does not compile", body = ApiError),
        (status = 404, body = ApiError)))]
async fn test(
    State(state): State<AppState>,
    // The rule's secrets reach whatever code runs here: as much trust as changing the rule.
    _: Authorized<UpdateRules>,
    Path(id): Path<String>,
    Body(body): Body<TestRule>,
) -> Result<Json<Value>, ApiError> {
    let event = match body.event {
        Value::Null => json!({}),
        event => event,
    };
    let mut input: RuleInput =
        serde_json::from_value(event).map_err(|e| ApiError::bad_request(format!("event: {e}")))?;
    let script = body.script;
    let (compiled, secrets, version) = {
        // Compilations happen one at a time, like uploads (ARCHITECTURE.md).
        let _one_at_a_time = state.write_lock.lock().await;
        blocking(&state, move |s| {
            let rule = find(s, &id)?;
            let secrets = s.rule_secrets(&rule.id).map_err(|e| {
                tracing::error!(rule = %rule.id, error = %e, "cannot read the rule's secrets");
                ApiError::internal()
            })?;
            match script {
                Some(script) => {
                    let compiled = s.engine.compile_js(&script).map_err(compile_error)?;
                    Ok((Arc::new(compiled), secrets, None))
                }
                None => {
                    // A dry run gets a cache of its own: it must not change what live
                    // executions of the rule read from `api.cache`.
                    let live = s.compiled_rule(&rule).map_err(compile_error)?;
                    let compiled = Arc::new((*live).clone().with_cache(RuleCache::new()));
                    let version = s
                        .store
                        .list_rule_versions(&rule.id)?
                        .iter()
                        .map(|v| v.number)
                        .max();
                    Ok((compiled, secrets, version))
                }
            }
        })
        .await?
    };
    let mut given = secrets;
    given.extend(input.secrets.values().clone());
    input.secrets = Arc::new(RuleSecrets::new(given));
    let deadline = Instant::now() + state.engine.limits().deadline;
    // The execution comes back with its logs, denial and failure redacted; the token is
    // shown as the token endpoint would issue it.
    let execution = state.engine.run(&compiled, &input, deadline).await;
    let mut report = serde_json::to_value(&execution).map_err(|e| {
        tracing::error!(error = %e, "cannot serialize a rule test's execution");
        ApiError::internal()
    })?;
    if let Value::Object(fields) = &mut report {
        fields.entry("token").or_insert(Value::Null);
        fields.insert("version".into(), json!(version));
    }
    Ok(Json(report))
}
