//! The management API under `/api/v2/`, shaped like the original platform's.
//!
//! Every handler checks its scope first, runs storage work on a blocking thread, and
//! makes changes one at a time, applying what each committed to the token endpoint's
//! catalog before it answers, so the change applies to the next token request.

pub(crate) mod audit;
pub mod auth;
mod client_credentials;
mod client_grants;
mod clients;
mod gate;
mod json;
mod keys;
mod lockout;
mod logs;
mod openapi;
mod paging;
mod resource_servers;
mod rule_secrets;
mod rule_test;
mod rule_versions;
mod rules;
pub mod scopes;

use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use axum::{Json, Router};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;

use super::api_error::ApiError;
use super::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tokenhost management API",
        description = "Manage APIs, clients, grants, rules and signing keys."
    ),
    components(schemas(ApiError))
)]
struct ApiDoc;

/// The `/api/v2` router, with `/api/v2/openapi.json` generated from the handlers.
pub fn router(state: &AppState) -> Router<AppState> {
    let config = &state.config;
    let (rules, rules_doc) = rules::router().split_for_parts();
    let (api, mut doc) = OpenApiRouter::with_openapi(ApiDoc::openapi())
        .merge(resource_servers::router())
        .merge(clients::router())
        .merge(client_credentials::router())
        .merge(client_grants::router())
        .merge(keys::router())
        .merge(rule_secrets::router())
        .merge(rule_versions::router())
        .merge(rule_test::router())
        .merge(logs::router())
        .merge(audit::router())
        .split_for_parts();
    doc.merge(rules_doc);
    openapi::complete(&mut doc, &config.token_endpoint());
    paging::describe(
        &mut doc,
        &[
            clients::LIST,
            client_credentials::LIST,
            client_grants::LIST,
            resource_servers::LIST,
            keys::LIST,
            rules::LIST,
            rule_secrets::LIST,
            rule_versions::LIST,
            audit::LIST,
            logs::LIST,
        ],
    );
    doc.servers = Some(vec![utoipa::openapi::Server::new(format!(
        "{}api/v2",
        config.issuer
    ))]);
    // Serializing cannot fail for a document of string keys; if it ever does, the
    // endpoint says so rather than the server refusing to start.
    let doc = openapi::to_json(&doc).map(Json).map_err(|error| {
        tracing::error!(%error, "the OpenAPI document does not serialize");
        ApiError::internal()
    });
    api.layer(DefaultBodyLimit::max(config.max_management_body_bytes))
        // Rules may carry a component: the larger limit.
        .merge(rules.layer(DefaultBodyLimit::max(config.max_component_body_bytes)))
        .route("/openapi.json", get(move || async move { doc.clone() }))
        .fallback(|| async { ApiError::not_found("This endpoint") })
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            gate::gate,
        ))
}

/// Runs `f`, a check and the commit it allows, so that no other change run this way comes
/// between them on any node: `write` serializes the changes of this node, and on a cluster
/// the cluster's lock those of the others, which would otherwise each pass the check and
/// both commit (two nodes each removing one of the last two administrators, or creating
/// the same given `client_id`). Blocking; call it inside `write`.
pub(crate) fn across_nodes<T>(
    state: &AppState,
    f: impl FnOnce() -> Result<T, ApiError>,
) -> Result<T, ApiError> {
    let Some(cluster) = state.store.cluster() else {
        return f();
    };
    let mut f = Some(f);
    let mut out = None;
    // The lock passes only the store's error through; the change's own is kept aside.
    cluster.exclusively(&mut || {
        out = f.take().map(|f| f());
        Ok(())
    })?;
    out.unwrap_or_else(|| Err(ApiError::internal()))
}

/// Runs `f` on a blocking thread.
pub(crate) async fn blocking<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let state = state.clone();
    tokio::task::spawn_blocking(move || f(&state))
        .await
        .map_err(|e| {
            tracing::error!(error = %e, "management task failed");
            ApiError::internal()
        })?
}

/// Runs a change on a blocking thread, one change at a time, then applies what it
/// committed to the catalog (only that: the rest of the catalog is shared, not rebuilt).
pub(crate) async fn write<T: Send + 'static>(
    state: &AppState,
    f: impl FnOnce(&AppState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let _one_at_a_time = state.write_lock.lock().await;
    blocking(state, move |s| {
        // Applied even when `f` failed: it may have committed before failing.
        let out = f(s);
        let applied = s.apply_committed().map_err(|e| {
            tracing::error!(error = %e, "cannot apply a change to the catalog");
            ApiError::internal()
        });
        let out = out?;
        applied?;
        Ok(out)
    })
    .await
}
