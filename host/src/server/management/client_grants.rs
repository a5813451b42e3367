//! `/api/v2/client-grants`: which client may get tokens for which API, with which scopes.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::{Authorized, Caller};
use super::json::{Body, Query};
use super::lockout;
use super::paging::{self, List, ListQuery};
use super::scopes::*;
use super::{across_nodes, blocking, write};
use crate::credentials::generate_id;
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::ClientGrant;

pub(super) const LIST: List = List {
    operation_id: "list_client_grants",
    key: "client_grants",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientGrantView {
    pub id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
}

impl From<ClientGrant> for ClientGrantView {
    fn from(g: ClientGrant) -> Self {
        ClientGrantView {
            id: g.id,
            client_id: g.client_id,
            audience: g.audience,
            scope: g.scope,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClientGrant {
    pub client_id: String,
    pub audience: String,
    #[serde(default)]
    pub scope: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClientGrant {
    pub scope: Vec<String>,
}

#[derive(Debug, Deserialize, IntoParams)]
pub struct GrantFilter {
    pub client_id: Option<String>,
    pub audience: Option<String>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(update, delete))
}

/// The grant's scopes must be scopes its API defines.
fn validate(state: &AppState, grant: &ClientGrant) -> Result<(), ApiError> {
    let catalog = state.catalog();
    if !catalog.clients.contains_key(&grant.client_id) {
        return Err(ApiError::bad_request(format!(
            "client {} does not exist",
            grant.client_id
        )));
    }
    let api = catalog.apis.get(&grant.audience).ok_or_else(|| {
        ApiError::bad_request(format!("no API has the identifier {:?}", grant.audience))
    })?;
    if let Some(unknown) = grant
        .scope
        .iter()
        .find(|s| !api.scopes.iter().any(|d| &d.value == *s))
    {
        return Err(ApiError::bad_request(format!(
            "scope {unknown:?} is not defined by the API {:?}",
            api.identifier
        )));
    }
    Ok(())
}

/// A grant on the management API hands out management scopes: only those the caller holds
/// itself (as its current grant allows). Grants on other APIs are not limited this way.
fn may_give(state: &AppState, caller: &Caller, grant: &ClientGrant) -> Result<(), ApiError> {
    if grant.audience == state.config.management_audience() {
        caller.may_hand_out(&grant.scope)
    } else {
        Ok(())
    }
}

/// List grants, optionally for one client or one audience.
#[utoipa::path(get, path = "/client-grants", operation_id = "list_client_grants", tag = "client-grants",
    security(("oauth2" = ["read:client_grants"])),
    responses((status = 200, body = [ClientGrantView])),
    params(GrantFilter, ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadClientGrants>,
    Query(filter): Query<GrantFilter>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let grants = blocking(&state, |s| Ok(s.store.list_client_grants()?)).await?;
    let views = grants
        .into_iter()
        .filter(|g| filter.client_id.as_ref().is_none_or(|c| &g.client_id == c))
        .filter(|g| filter.audience.as_ref().is_none_or(|a| &g.audience == a))
        .map(ClientGrantView::from);
    paging::answer(&LIST, &query, views)
}

/// Grant a client access to an API.
#[utoipa::path(post, path = "/client-grants", operation_id = "create_client_grant", tag = "client-grants",
    security(("oauth2" = ["create:client_grants"])),
    request_body = CreateClientGrant,
    responses((status = 201, body = ClientGrantView), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<CreateClientGrants>,
    Body(body): Body<CreateClientGrant>,
) -> Result<(StatusCode, Json<ClientGrantView>), ApiError> {
    let grant = ClientGrant {
        id: generate_id("cgr_").map_err(|_| ApiError::internal())?,
        client_id: body.client_id,
        audience: body.audience,
        scope: body.scope,
        created_at: now(),
    };
    let stored = grant.clone();
    write(&state, move |s| {
        validate(s, &stored)?;
        may_give(s, &caller, &stored)?;
        let view = ClientGrantView::from(stored.clone());
        let change = Change::created("client_grant", &stored.id, &view);
        s.store.transaction(|tx| {
            tx.put_client_grant(&stored)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(grant.into())))
}

/// Change a grant's scopes.
#[utoipa::path(patch, path = "/client-grants/{id}", operation_id = "update_client_grant", tag = "client-grants",
    security(("oauth2" = ["update:client_grants"])),
    request_body = UpdateClientGrant,
    responses((status = 200, body = ClientGrantView), (status = 404, body = ApiError), (status = 409, description = "It would leave no administrator", body = ApiError)))]
async fn update(
    State(state): State<AppState>,
    caller: Authorized<UpdateClientGrants>,
    Path(id): Path<String>,
    Body(body): Body<UpdateClientGrant>,
) -> Result<Json<ClientGrantView>, ApiError> {
    let grant = write(&state, move |s| {
        let mut grant = s
            .store
            .list_client_grants()?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| ApiError::not_found("The client grant"))?;
        let before = ClientGrantView::from(grant.clone());
        grant.scope = body.scope;
        validate(s, &grant)?;
        may_give(s, &caller, &grant)?;
        let after = ClientGrantView::from(grant.clone());
        let change = Change::updated("client_grant", &id, &before, &after);
        across_nodes(s, || {
            lockout::keeps_an_administrator(s, lockout::Proposed::UpdateGrant(&grant))?;
            s.store.transaction(|tx| {
                tx.put_client_grant(&grant)?;
                audit::record(tx, &caller, &change)
            })?;
            Ok(())
        })?;
        Ok(grant)
    })
    .await?;
    Ok(Json(grant.into()))
}

/// Revoke a grant.
#[utoipa::path(delete, path = "/client-grants/{id}", operation_id = "delete_client_grant", tag = "client-grants",
    security(("oauth2" = ["delete:client_grants"])),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, description = "It would leave no administrator", body = ApiError)))]
async fn delete(
    State(state): State<AppState>,
    caller: Authorized<DeleteClientGrants>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    write(&state, move |s| {
        let before = s
            .store
            .list_client_grants()?
            .into_iter()
            .find(|g| g.id == id)
            .ok_or_else(|| ApiError::not_found("The client grant"))?;
        let change = Change::deleted("client_grant", &id, &ClientGrantView::from(before));
        let deleted = across_nodes(s, || {
            lockout::keeps_an_administrator(s, lockout::Proposed::DeleteGrant(&id))?;
            Ok(s.store.transaction(|tx| {
                let deleted = tx.delete_client_grant(&id)?;
                if deleted {
                    audit::record(tx, &caller, &change)?;
                }
                Ok(deleted)
            })?)
        })?;
        if deleted {
            Ok(())
        } else {
            Err(ApiError::not_found("The client grant"))
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
