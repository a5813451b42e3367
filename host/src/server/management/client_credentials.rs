//! `/api/v2/clients/{id}/credentials`: a client's public keys, shaped like the original
//! platform's (`credential_type` `public_key`). A credential verifies client assertions
//! (private_key_jwt) once the client lists it in `client_authentication_methods`.
//!
//! Whoever holds a credential's private key can act as the client, so adding one asks what
//! rotating its secret asks: the caller must hold every management scope the client has.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::{Authorized, Caller};
use super::clients::find;
use super::json::{rfc3339_ms as parse_rfc3339_ms, Body, Query};
use super::paging::{self, List, ListQuery};
use super::scopes::*;
use super::{blocking, write};
use crate::client_auth::credential::parse_pem;
use crate::credentials::generate_id;
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{rfc3339_ms, AssertionAlg, Client, ClientCredential, MAX_CLIENT_CREDENTIALS};

pub(super) const LIST: List = List {
    operation_id: "list_client_credentials",
    key: "credentials",
};

/// The only credential type: a public key or a certificate, in PEM.
pub const PUBLIC_KEY: &str = "public_key";
/// The longest credential name.
const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, Serialize, ToSchema)]
pub struct CredentialView {
    pub id: String,
    pub name: String,
    /// Always `public_key`.
    pub credential_type: &'static str,
    /// The RFC 7638 thumbprint of the public key: the `kid` a client assertion names.
    pub kid: String,
    pub alg: AssertionAlg,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339; absent: it never expires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl From<&ClientCredential> for CredentialView {
    fn from(c: &ClientCredential) -> Self {
        CredentialView {
            id: c.id.clone(),
            name: c.name.clone(),
            credential_type: PUBLIC_KEY,
            kid: c.kid.clone(),
            alg: c.alg,
            created_at: rfc3339(c.created_at),
            expires_at: c.expires_at.map(rfc3339),
        }
    }
}

fn rfc3339(seconds: i64) -> String {
    rfc3339_ms(seconds.saturating_mul(1000))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// `public_key`.
    #[schema(pattern = "^public_key$", example = "public_key")]
    pub credential_type: String,
    #[schema(max_length = 128)]
    pub name: Option<String>,
    /// A public key (`PUBLIC KEY`, `RSA PUBLIC KEY`) or an X.509 certificate, PEM.
    pub pem: String,
    /// What the client signs its assertions with; default RS256, as on the original
    /// platform.
    pub alg: Option<AssertionAlg>,
    /// RFC 3339, in the future.
    #[schema(format = DateTime)]
    pub expires_at: Option<String>,
    /// A certificate's `notAfter` as `expires_at`.
    #[serde(default)]
    pub parse_expiry_from_cert: bool,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, delete))
}

/// List a client's credentials.
#[utoipa::path(get, path = "/clients/{id}/credentials", operation_id = "list_client_credentials", tag = "clients",
    security(("oauth2" = ["read:clients"])),
    responses((status = 200, body = [CredentialView]), (status = 404, body = ApiError)),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadClients>,
    Path(id): Path<String>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let client = blocking(&state, move |s| find(s, &id)).await?;
    let views = client.credentials.iter().map(CredentialView::from);
    paging::answer(&LIST, &query, views)
}

/// Add a public-key credential to a client. It verifies nothing until the client lists it
/// under `client_authentication_methods.private_key_jwt`.
#[utoipa::path(post, path = "/clients/{id}/credentials", operation_id = "create_client_credential", tag = "clients",
    security(("oauth2" = ["update:clients"])),
    request_body = CreateCredential,
    responses((status = 201, body = CredentialView), (status = 400, body = ApiError),
        (status = 404, body = ApiError), (status = 409, body = ApiError)))]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<UpdateClients>,
    Path(id): Path<String>,
    Body(body): Body<CreateCredential>,
) -> Result<(StatusCode, Json<CredentialView>), ApiError> {
    caller.may_act_as(&state, &id)?;
    if body.credential_type != PUBLIC_KEY {
        return Err(ApiError::bad_request(format!(
            "credential_type must be {PUBLIC_KEY:?}"
        )));
    }
    let name = body.name.unwrap_or_default();
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(ApiError::bad_request(format!(
            "name is longer than {MAX_NAME_CHARS} characters"
        )));
    }
    let alg = body.alg.unwrap_or(AssertionAlg::RS256);
    let parsed =
        parse_pem(&body.pem, alg).map_err(|e| ApiError::bad_request(format!("pem: {e}")))?;
    let now = now();
    let expires_at = match (&body.expires_at, body.parse_expiry_from_cert) {
        (Some(_), true) => {
            return Err(ApiError::bad_request(
                "give expires_at or parse_expiry_from_cert, not both",
            ))
        }
        (Some(text), false) => Some(parse_time(text)?),
        (None, true) => Some(parsed.not_after.ok_or_else(|| {
            ApiError::bad_request("parse_expiry_from_cert needs a certificate, not a public key")
        })?),
        (None, false) => None,
    };
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::bad_request("expires_at is in the past"));
    }
    let credential = ClientCredential {
        id: generate_id("cred_").map_err(|_| ApiError::internal())?,
        name,
        alg,
        kid: parsed.kid,
        pem: body.pem,
        jwk: parsed.jwk,
        created_at: now,
        expires_at,
    };
    let stored = credential.clone();
    write(&state, move |s| {
        let mut client = find(s, &id)?;
        if client.credentials.len() >= MAX_CLIENT_CREDENTIALS {
            return Err(ApiError::bad_request(format!(
                "a client holds at most {MAX_CLIENT_CREDENTIALS} credentials: delete one first"
            )));
        }
        if client.credentials.iter().any(|c| c.kid == stored.kid) {
            return Err(ApiError::conflict(format!(
                "this client already has a credential with this key (kid {})",
                stored.kid
            )));
        }
        client.credentials.push(stored.clone());
        let change = Change::created(
            "client_credential",
            &stored.id,
            &CredentialView::from(&stored),
        );
        save(s, &caller, &client, &change)
    })
    .await?;
    Ok((StatusCode::CREATED, Json((&credential).into())))
}

fn parse_time(text: &str) -> Result<i64, ApiError> {
    let ms = parse_rfc3339_ms(text)
        .map_err(|e| ApiError::bad_request(format!("expires_at is not an RFC 3339 time: {e}")))?;
    Ok(ms.div_euclid(1000))
}

/// Get one credential of a client.
#[utoipa::path(get, path = "/clients/{id}/credentials/{credential_id}", operation_id = "get_client_credential", tag = "clients",
    security(("oauth2" = ["read:clients"])),
    responses((status = 200, body = CredentialView), (status = 404, body = ApiError)))]
async fn get_one(
    State(state): State<AppState>,
    _: Authorized<ReadClients>,
    Path((id, credential_id)): Path<(String, String)>,
) -> Result<Json<CredentialView>, ApiError> {
    let client = blocking(&state, move |s| find(s, &id)).await?;
    client
        .credentials
        .iter()
        .find(|c| c.id == credential_id)
        .map(|c| Json(c.into()))
        .ok_or_else(|| ApiError::not_found("The credential"))
}

/// Delete a credential; it stops verifying at once, and leaves the client's
/// `client_authentication_methods`.
#[utoipa::path(delete, path = "/clients/{id}/credentials/{credential_id}", operation_id = "delete_client_credential", tag = "clients",
    security(("oauth2" = ["update:clients"])),
    responses((status = 204), (status = 404, body = ApiError)))]
async fn delete(
    State(state): State<AppState>,
    caller: Authorized<UpdateClients>,
    Path((id, credential_id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    write(&state, move |s| {
        let mut client = find(s, &id)?;
        let position = client
            .credentials
            .iter()
            .position(|c| c.id == credential_id)
            .ok_or_else(|| ApiError::not_found("The credential"))?;
        let removed = client.credentials.remove(position);
        client
            .authentication
            .private_key_jwt
            .retain(|id| *id != credential_id);
        let change = Change::deleted(
            "client_credential",
            &credential_id,
            &CredentialView::from(&removed),
        );
        save(s, &caller, &client, &change)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stores the client with its changed credentials, and the change's audit record, together.
fn save(s: &AppState, caller: &Caller, client: &Client, change: &Change) -> Result<(), ApiError> {
    s.store.transaction(|tx| {
        tx.put_client(client)?;
        audit::record(tx, caller, change)
    })?;
    Ok(())
}
