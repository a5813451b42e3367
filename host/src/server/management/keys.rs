//! `/api/v2/keys/signing`: list signing keys and rotate them.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::Authorized;
use super::json::Query;
use super::paging::{self, List, ListQuery};
use super::scopes::*;
use super::{blocking, write};
use crate::keys;
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState, StateError};
use crate::server::{cluster, rule_logs};
use crate::store::{KeyState, SigningAlg, SigningKey};

pub(super) const LIST: List = List {
    operation_id: "list_signing_keys",
    key: "keys",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct SigningKeyView {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    /// The public key as published in the JWKS.
    #[schema(value_type = Object)]
    pub public_jwk: serde_json::Value,
}

impl From<SigningKey> for SigningKeyView {
    fn from(k: SigningKey) -> Self {
        SigningKeyView {
            kid: k.kid,
            alg: k.alg,
            state: k.state,
            created_at: k.created_at,
            retired_at: k.retired_at,
            public_jwk: k.public_jwk,
        }
    }
}

#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RotateKeys {
    /// Rotate only this algorithm's keys; all algorithms when absent.
    pub alg: Option<SigningAlg>,
}

/// Public parts only: the audit trail never sees a private key.
fn public_views(keys: Vec<SigningKey>) -> Vec<SigningKeyView> {
    keys.into_iter().map(Into::into).collect()
}

/// The signing keys could not be read or opened: logged, a generic 500 answered.
fn key_error(e: StateError) -> ApiError {
    tracing::error!(error = %e, "cannot load the signing keys");
    ApiError::internal()
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(rotate))
}

/// List signing keys (public parts only).
#[utoipa::path(get, path = "/keys/signing", operation_id = "list_signing_keys", tag = "keys",
    security(("oauth2" = ["read:signing_keys"])),
    responses((status = 200, body = [SigningKeyView])),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadSigningKeys>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let keys = blocking(&state, |s| s.signing_keys().map_err(key_error)).await?;
    paging::answer(&LIST, &query, keys.into_iter().map(SigningKeyView::from))
}

/// How long until the `Next` keys that rotating `algs` would make sign have been stored
/// for `cluster::KEY_SETTLE`, so that every node has read and publishes them. Zero on a
/// node with a store of its own.
fn settle_wait(s: &AppState, algs: &[SigningAlg]) -> Result<Duration, ApiError> {
    if s.store.cluster().is_none() {
        return Ok(Duration::ZERO);
    }
    let stored = s.store.list_signing_keys()?;
    let now_ms = rule_logs::now_ms();
    Ok(algs
        .iter()
        .filter_map(|alg| {
            stored
                .iter()
                .filter(|k| k.alg == *alg && k.state == KeyState::Next)
                .map(|k| k.created_at)
                .min()
        })
        .map(|created_at| cluster::key_settle_wait(created_at, now_ms))
        .max()
        .unwrap_or(Duration::ZERO))
}

/// Rotate: the next key starts signing, the current one is retired (it stays in the JWKS
/// until every token it signed has expired) and a new next key is published.
#[utoipa::path(post, path = "/keys/signing/rotate", operation_id = "rotate_signing_keys", tag = "keys",
    security(("oauth2" = ["update:signing_keys"])),
    request_body(content = Option<RotateKeys>, description = "Optional: an empty body rotates every algorithm"),
    responses((status = 200, body = [SigningKeyView])))]
async fn rotate(
    State(state): State<AppState>,
    caller: Authorized<UpdateSigningKeys>,
    body: Bytes,
) -> Result<Json<Vec<SigningKeyView>>, ApiError> {
    // The body is optional: an empty POST rotates every algorithm.
    let alg = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        // `null` is an empty body too.
        serde_json::from_slice::<Option<RotateKeys>>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid body: {e}")))?
            .and_then(|body| body.alg)
    };
    let algs: Vec<SigningAlg> = alg
        .map(|a| vec![a])
        .unwrap_or_else(|| SigningAlg::ALL.to_vec());
    // With several nodes, the keys about to sign must be published by all of them first.
    for _ in 0..3 {
        let checking = algs.clone();
        let wait = blocking(&state, move |s| settle_wait(s, &checking)).await?;
        if wait.is_zero() {
            break;
        }
        tokio::time::sleep(wait).await;
    }
    let keys = write(&state, move |s| {
        if !settle_wait(s, &algs)?.is_zero() {
            return Err(ApiError::conflict(
                "the next signing key is still being published to every node (another \
                 rotation just happened): retry in a few seconds",
            ));
        }
        let existing = s.signing_keys().map_err(key_error)?;
        // A rotation changes only its algorithm's keys, so all of them can be computed
        // from one reading.
        let mut changed = Vec::new();
        for &alg in &algs {
            changed.extend(keys::rotate(&existing, alg, now()).map_err(|e| {
                tracing::error!(error = %e, "key rotation failed");
                ApiError::internal()
            })?);
        }
        let sealed = s.key_sealer.seal_all(&changed).map_err(|e| {
            tracing::error!(error = %e, "cannot seal the new signing keys");
            ApiError::internal()
        })?;
        let before = public_views(existing.clone());
        let after = public_views(keys::applied(&existing, &changed));
        let target = alg.map_or("all", SigningAlg::as_str);
        let change = Change::updated("signing_keys", target, &before, &after).action("rotate");
        s.store.transaction(|tx| {
            tx.put_signing_keys(&sealed)?;
            audit::record(tx, &caller, &change)
        })?;
        // Upkeep after the change (retired keys past their tokens' lifetime go), as at
        // start: not part of the audited rotation.
        s.ensure_signing_keys().map_err(|e| {
            tracing::error!(error = %e, "key maintenance failed");
            ApiError::internal()
        })?;
        s.signing_keys().map_err(key_error)
    })
    .await?;
    Ok(Json(keys.into_iter().map(Into::into).collect()))
}
