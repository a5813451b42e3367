//! `/api/v2/resource-servers`: the APIs tokens are issued for.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
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
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{ResourceServer, ScopeDef, SigningAlg};

/// Default access token lifetime: 24 hours.
pub const DEFAULT_TOKEN_LIFETIME: u32 = 86_400;
/// At most 30 days.
pub const MAX_TOKEN_LIFETIME: u32 = 2_592_000;

pub(super) const LIST: List = List {
    operation_id: "list_resource_servers",
    key: "resource_servers",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ResourceServerView {
    pub id: String,
    /// The audience value clients ask for.
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<ScopeDef>,
    pub token_lifetime: u32,
    pub signing_alg: SigningAlg,
    pub allow_rule_added_scopes: bool,
}

impl From<ResourceServer> for ResourceServerView {
    fn from(api: ResourceServer) -> Self {
        ResourceServerView {
            id: api.id,
            identifier: api.identifier,
            name: api.name,
            scopes: api.scopes,
            token_lifetime: api.token_lifetime,
            signing_alg: api.signing_alg,
            allow_rule_added_scopes: api.allow_rule_added_scopes,
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateResourceServer {
    /// The audience clients will ask for (not the management API's own).
    #[schema(min_length = 1, example = "https://api.example.com/")]
    pub identifier: String,
    pub name: Option<String>,
    pub scopes: Option<Vec<ScopeDef>>,
    /// Seconds a token for this API is valid (default 86400).
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub token_lifetime: Option<u32>,
    pub signing_alg: Option<SigningAlg>,
    pub allow_rule_added_scopes: Option<bool>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateResourceServer {
    pub name: Option<String>,
    pub scopes: Option<Vec<ScopeDef>>,
    /// Seconds a token for this API is valid (default 86400).
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub token_lifetime: Option<u32>,
    pub signing_alg: Option<SigningAlg>,
    pub allow_rule_added_scopes: Option<bool>,
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
}

fn validate(api: &ResourceServer, management_audience: &str) -> Result<(), ApiError> {
    if api.identifier.trim().is_empty() {
        return Err(ApiError::bad_request("identifier must not be empty"));
    }
    if api.identifier == management_audience {
        return Err(ApiError::bad_request(
            "identifier is the management API's own audience",
        ));
    }
    if api.token_lifetime == 0 || api.token_lifetime > MAX_TOKEN_LIFETIME {
        return Err(ApiError::bad_request(format!(
            "token_lifetime must be between 1 and {MAX_TOKEN_LIFETIME} seconds"
        )));
    }
    for scope in &api.scopes {
        if scope.value.is_empty() || scope.value.contains(char::is_whitespace) {
            return Err(ApiError::bad_request(format!(
                "scope {:?} must be non-empty and without spaces",
                scope.value
            )));
        }
    }
    Ok(())
}

/// The API whose id is `id`, or else the one whose identifier (audience) is `id`, as on
/// the original platform.
fn find(state: &AppState, id: &str) -> Result<ResourceServer, ApiError> {
    let apis = state.store.list_resource_servers()?;
    let by_id = apis.iter().position(|api| api.id == id);
    by_id
        .or_else(|| apis.iter().position(|api| api.identifier == id))
        .and_then(|at| apis.into_iter().nth(at))
        .ok_or_else(|| ApiError::not_found("The resource server"))
}

/// List APIs.
#[utoipa::path(get, path = "/resource-servers", operation_id = "list_resource_servers", tag = "resource-servers",
    security(("oauth2" = ["read:resource_servers"])),
    responses((status = 200, body = [ResourceServerView]), (status = 403, body = ApiError)),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadResourceServers>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let apis = blocking(&state, |s| Ok(s.store.list_resource_servers()?)).await?;
    paging::answer(
        &LIST,
        &query,
        apis.into_iter().map(ResourceServerView::from),
    )
}

/// Create an API.
#[utoipa::path(post, path = "/resource-servers", operation_id = "create_resource_server", tag = "resource-servers",
    security(("oauth2" = ["create:resource_servers"])),
    request_body = CreateResourceServer,
    responses((status = 201, body = ResourceServerView), (status = 400, body = ApiError), (status = 409, body = ApiError)))]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<CreateResourceServers>,
    Body(body): Body<CreateResourceServer>,
) -> Result<(StatusCode, Json<ResourceServerView>), ApiError> {
    let api = ResourceServer {
        id: generate_id("api_").map_err(|_| ApiError::internal())?,
        name: body.name.unwrap_or_else(|| body.identifier.clone()),
        identifier: body.identifier,
        scopes: body.scopes.unwrap_or_default(),
        token_lifetime: body.token_lifetime.unwrap_or(DEFAULT_TOKEN_LIFETIME),
        signing_alg: body.signing_alg.unwrap_or(SigningAlg::RS256),
        allow_rule_added_scopes: body.allow_rule_added_scopes.unwrap_or(true),
        created_at: now(),
    };
    validate(&api, &state.config.management_audience())?;
    let stored = api.clone();
    write(&state, move |s| {
        let view = ResourceServerView::from(stored.clone());
        let change = Change::created("resource_server", &stored.id, &view);
        s.store.transaction(|tx| {
            tx.put_resource_server(&stored)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(())
    })
    .await?;
    Ok((StatusCode::CREATED, Json(api.into())))
}

/// Get one API.
#[utoipa::path(get, path = "/resource-servers/{id}", operation_id = "get_resource_server", tag = "resource-servers",
    security(("oauth2" = ["read:resource_servers"])),
    responses((status = 200, body = ResourceServerView), (status = 404, body = ApiError)),
    params(("id" = String, Path, description = "The API's `id`, or its `identifier` (the audience), percent-encoded: `https%3A%2F%2Fapi.example.com%2F`")))]
async fn get_one(
    State(state): State<AppState>,
    _: Authorized<ReadResourceServers>,
    Path(id): Path<String>,
) -> Result<Json<ResourceServerView>, ApiError> {
    Ok(Json(blocking(&state, move |s| find(s, &id)).await?.into()))
}

/// Change an API (its identifier cannot change).
#[utoipa::path(patch, path = "/resource-servers/{id}", operation_id = "update_resource_server", tag = "resource-servers",
    security(("oauth2" = ["update:resource_servers"])),
    request_body = UpdateResourceServer,
    responses((status = 200, body = ResourceServerView), (status = 400, body = ApiError), (status = 404, body = ApiError)),
    params(("id" = String, Path, description = "The API's `id`, or its `identifier` (the audience), percent-encoded: `https%3A%2F%2Fapi.example.com%2F`")))]
async fn update(
    State(state): State<AppState>,
    caller: Authorized<UpdateResourceServers>,
    Path(id): Path<String>,
    Body(body): Body<UpdateResourceServer>,
) -> Result<Json<ResourceServerView>, ApiError> {
    let api = write(&state, move |s| {
        let mut api = find(s, &id)?;
        let before = ResourceServerView::from(api.clone());
        if let Some(name) = body.name {
            api.name = name;
        }
        if let Some(scopes) = body.scopes {
            api.scopes = scopes;
        }
        if let Some(lifetime) = body.token_lifetime {
            api.token_lifetime = lifetime;
        }
        if let Some(alg) = body.signing_alg {
            api.signing_alg = alg;
        }
        if let Some(allow) = body.allow_rule_added_scopes {
            api.allow_rule_added_scopes = allow;
        }
        validate(&api, &s.config.management_audience())?;
        let after = ResourceServerView::from(api.clone());
        let change = Change::updated("resource_server", &api.id, &before, &after);
        s.store.transaction(|tx| {
            tx.put_resource_server(&api)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(api)
    })
    .await?;
    Ok(Json(api.into()))
}

/// Delete an API; its client grants go with it.
#[utoipa::path(delete, path = "/resource-servers/{id}", operation_id = "delete_resource_server", tag = "resource-servers",
    security(("oauth2" = ["delete:resource_servers"])),
    responses((status = 204), (status = 404, body = ApiError)),
    params(("id" = String, Path, description = "The API's `id`, or its `identifier` (the audience), percent-encoded: `https%3A%2F%2Fapi.example.com%2F`")))]
async fn delete(
    State(state): State<AppState>,
    caller: Authorized<DeleteResourceServers>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    write(&state, move |s| {
        let api = find(s, &id)?;
        let before = ResourceServerView::from(api.clone());
        let change = Change::deleted("resource_server", &api.id, &before);
        // The API's grants go with it, in the same transaction.
        s.store.transaction(|tx| {
            tx.delete_resource_server(&api.id)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
