//! `/api/v2/clients`: machine-to-machine clients and their secrets.
//!
//! A secret is shown once (at creation or rotation) and stored only as a keyed hash.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::audit::{self, Change};
use super::auth::Authorized;
use super::json::{Body, Query};
use super::lockout;
use super::paging::{self, List, ListQuery};
use super::scopes::*;
use super::{across_nodes, blocking, write};
use crate::credentials::{generate_id, generate_secret};
use crate::server::api_error::ApiError;
use crate::server::state::{now, AppState};
use crate::store::{
    Client, ClientAuthentication, ClientCredential, RateLimit, SecretHash, SecretMethod,
    MAX_RATE_LIMIT,
};

pub const APP_TYPE: &str = "non_interactive";

pub(super) const LIST: List = List {
    operation_id: "list_clients",
    key: "clients",
};

#[derive(Debug, Serialize, ToSchema)]
pub struct ClientView {
    pub client_id: String,
    pub name: String,
    pub client_metadata: BTreeMap<String, String>,
    pub app_type: String,
    /// This client's own token rate limit; absent: the server's default.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_rate_limit: Option<RateLimit>,
    /// The secret method it registered; `null`: its secret is refused.
    #[schema(value_type = Option<SecretMethod>)]
    pub token_endpoint_auth_method: Option<SecretMethod>,
    /// Absent: no private_key_jwt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_authentication_methods: Option<AuthenticationMethods>,
    /// Must its token requests carry a DPoP proof (RFC 9449 §5.2)?
    pub dpop_bound_access_tokens: bool,
    /// Only in the answer to a creation that generated it, or to a rotation.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
}

impl ClientView {
    pub(super) fn new(client: Client, secret: Option<String>) -> Self {
        let auth = client.authentication;
        ClientView {
            client_id: client.client_id,
            name: client.name,
            client_metadata: client.client_metadata,
            app_type: client.app_type,
            token_rate_limit: client.token_rate_limit,
            token_endpoint_auth_method: auth.token_endpoint_auth_method,
            client_authentication_methods: (!auth.private_key_jwt.is_empty())
                .then(|| AuthenticationMethods::listing(auth.private_key_jwt)),
            dpop_bound_access_tokens: auth.dpop_bound_access_tokens,
            client_secret: secret,
        }
    }
}

/// `client_authentication_methods`, as on the original platform.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthenticationMethods {
    pub private_key_jwt: PrivateKeyJwt,
}

/// The credentials (by id, see `/clients/{id}/credentials`) that may sign the client's
/// assertions.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PrivateKeyJwt {
    pub credentials: Vec<CredentialRef>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CredentialRef {
    pub id: String,
}

impl AuthenticationMethods {
    fn listing(ids: Vec<String>) -> Self {
        AuthenticationMethods {
            private_key_jwt: PrivateKeyJwt {
                credentials: ids.into_iter().map(|id| CredentialRef { id }).collect(),
            },
        }
    }

    fn ids(self) -> Vec<String> {
        self.private_key_jwt
            .credentials
            .into_iter()
            .map(|c| c.id)
            .collect()
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateClient {
    /// Not blank.
    #[schema(min_length = 1, pattern = r"\S", example = "billing-service")]
    pub name: String,
    #[schema(schema_with = metadata_schema)]
    pub client_metadata: Option<BTreeMap<String, String>>,
    /// Only `non_interactive` (machine to machine) is supported.
    #[schema(pattern = "^non_interactive$")]
    pub app_type: Option<String>,
    /// Token requests per second and burst for this client, instead of the server's.
    pub token_rate_limit: Option<RateLimit>,
    /// Default `client_secret_post`; `null`: no secret (add a credential and enable
    /// private_key_jwt with a PATCH).
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SecretMethod>)]
    pub token_endpoint_auth_method: Option<Option<SecretMethod>>,
    /// Default false.
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
    /// The client's id, to keep one it has elsewhere (moving from another server); default:
    /// generated. 1-128 characters of `A-Z a-z 0-9 . _ ~ -`, the first a letter or digit
    /// (so that it is a path segment); 409 if a client has it.
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = "^[A-Za-z0-9][A-Za-z0-9._~-]{0,127}$"
    )]
    pub client_id: Option<String>,
    /// The client's secret, to keep one it has elsewhere; default: generated and shown in
    /// the answer this once. 32-256 characters of `A-Z a-z 0-9 . _ ~ -` (a form or Basic
    /// header never changes them); stored only as a keyed hash, never shown. With
    /// `token_endpoint_auth_method` `null` it is kept but refused until a method is set.
    #[schema(
        min_length = 32,
        max_length = 256,
        pattern = "^[A-Za-z0-9._~-]{32,256}$"
    )]
    pub client_secret: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateClient {
    /// Not blank.
    #[schema(min_length = 1, pattern = r"\S")]
    pub name: Option<String>,
    /// Merged into the client's metadata key by key, as on the original platform: a key
    /// given `null` is deleted, a key not given is kept.
    #[schema(schema_with = metadata_patch_schema)]
    pub client_metadata: Option<BTreeMap<String, Option<String>>>,
    /// A limit of the client's own; `null` returns it to the server's default.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<RateLimit>)]
    pub token_rate_limit: Option<Option<RateLimit>>,
    /// `client_secret_post` or `client_secret_basic` (either accepts the secret both ways);
    /// `null`: the secret is refused.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<SecretMethod>)]
    pub token_endpoint_auth_method: Option<Option<SecretMethod>>,
    /// The credentials that may sign client assertions; `null`: none.
    #[serde(default, deserialize_with = "present")]
    #[schema(value_type = Option<AuthenticationMethods>)]
    pub client_authentication_methods: Option<Option<AuthenticationMethods>>,
    pub dpop_bound_access_tokens: Option<bool>,
}

/// Tells a field set to `null` (`Some(None)`) from a field left out (`None`).
fn present<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list, create))
        .routes(routes!(get_one, update, delete))
        .routes(routes!(rotate_secret))
}

pub(super) fn find(state: &AppState, id: &str) -> Result<Client, ApiError> {
    state
        .store
        .list_clients()?
        .into_iter()
        .find(|c| c.client_id == id)
        .ok_or_else(|| ApiError::not_found("The client"))
}

fn validate_name(name: &str) -> Result<(), ApiError> {
    if name.trim().is_empty() {
        return Err(ApiError::bad_request("name must not be empty"));
    }
    Ok(())
}

/// The bounds of a `client_id` or `client_secret` given at creation.
const MAX_CLIENT_ID_CHARS: usize = 128;
const MIN_CLIENT_SECRET_CHARS: usize = 32;
const MAX_CLIENT_SECRET_CHARS: usize = 256;

/// RFC 3986's unreserved characters: form-encoding leaves them as they are, so a value
/// reaches the token endpoint unchanged however a client sends it.
fn unreserved(value: &str) -> bool {
    value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '~' | '-'))
}

/// The first character a letter or digit: `.` and `..` are no path segment.
fn validate_given_id(id: &str) -> Result<(), ApiError> {
    let starts_well = id.starts_with(|c: char| c.is_ascii_alphanumeric());
    if !starts_well || id.len() > MAX_CLIENT_ID_CHARS || !unreserved(id) {
        return Err(ApiError::bad_request(format!(
            "client_id must be 1 to {MAX_CLIENT_ID_CHARS} characters of A-Z, a-z, 0-9, \
             '.', '_', '~' and '-', the first a letter or digit"
        )));
    }
    Ok(())
}

/// Never echoes the secret: the message names only what is wrong with it.
fn validate_given_secret(secret: &str) -> Result<(), ApiError> {
    let length = secret.chars().count();
    if !(MIN_CLIENT_SECRET_CHARS..=MAX_CLIENT_SECRET_CHARS).contains(&length) {
        return Err(ApiError::bad_request(format!(
            "client_secret must be {MIN_CLIENT_SECRET_CHARS} to {MAX_CLIENT_SECRET_CHARS} \
             characters long; it has {length}"
        )));
    }
    if !unreserved(secret) {
        return Err(ApiError::bad_request(
            "client_secret may hold only A-Z, a-z, 0-9, '.', '_', '~' and '-'",
        ));
    }
    Ok(())
}

/// The original platform's bounds on `client_metadata`.
const MAX_METADATA_KEYS: usize = 10;
const MAX_METADATA_CHARS: usize = 255;

/// `client_metadata` in the OpenAPI document, with the bounds [`validate_metadata`] checks.
fn metadata_schema() -> Object {
    metadata_object(Type::String.into())
}

/// The same in a `PATCH`, where `null` deletes a key.
fn metadata_patch_schema() -> Object {
    metadata_object(SchemaType::from_iter([Type::String, Type::Null]))
}

fn metadata_object(value: SchemaType) -> Object {
    let string = ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length(Some(1))
        .max_length(Some(MAX_METADATA_CHARS));
    let value = ObjectBuilder::new()
        .schema_type(value)
        .max_length(Some(MAX_METADATA_CHARS));
    ObjectBuilder::new()
        .schema_type(SchemaType::from_iter([Type::Object, Type::Null]))
        .property_names(Some(string))
        .additional_properties(Some(value))
        .max_properties(Some(MAX_METADATA_KEYS))
        .build()
}

fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<(), ApiError> {
    if metadata.len() > MAX_METADATA_KEYS {
        return Err(ApiError::bad_request(format!(
            "client_metadata has {} keys; at most {MAX_METADATA_KEYS} are allowed",
            metadata.len()
        )));
    }
    for (key, value) in metadata {
        if key.is_empty() || key.chars().count() > MAX_METADATA_CHARS {
            return Err(ApiError::bad_request(format!(
                "client_metadata keys are 1 to {MAX_METADATA_CHARS} characters"
            )));
        }
        if value.chars().count() > MAX_METADATA_CHARS {
            return Err(ApiError::bad_request(format!(
                "client_metadata.{key} is longer than {MAX_METADATA_CHARS} characters"
            )));
        }
    }
    Ok(())
}

fn validate_rate_limit(limit: Option<&RateLimit>) -> Result<(), ApiError> {
    match limit {
        Some(l) if l.per_second.get() > MAX_RATE_LIMIT || l.burst.get() > MAX_RATE_LIMIT => {
            Err(ApiError::bad_request(format!(
                "token_rate_limit: per_second and burst are 1 to {MAX_RATE_LIMIT}"
            )))
        }
        _ => Ok(()),
    }
}

/// `PATCH`'s merge: `null` deletes a key, a value sets it.
fn merge_metadata(
    metadata: &mut BTreeMap<String, String>,
    patch: BTreeMap<String, Option<String>>,
) {
    for (key, value) in patch {
        match value {
            Some(value) => metadata.insert(key, value),
            None => metadata.remove(&key),
        };
    }
}

/// List clients (secrets are never listed).
#[utoipa::path(get, path = "/clients", operation_id = "list_clients", tag = "clients",
    security(("oauth2" = ["read:clients"])),
    responses((status = 200, body = [ClientView])),
    params(ListQuery))]
async fn list(
    State(state): State<AppState>,
    _: Authorized<ReadClients>,
    Query(query): Query<ListQuery>,
) -> Result<Json<Value>, ApiError> {
    let clients = blocking(&state, |s| Ok(s.store.list_clients()?)).await?;
    let views = clients.into_iter().map(|c| ClientView::new(c, None));
    paging::answer(&LIST, &query, views)
}

/// Create a client; the answer carries its secret, shown this once, unless the request
/// gave it.
#[utoipa::path(post, path = "/clients", operation_id = "create_client", tag = "clients",
    security(("oauth2" = ["create:clients"])),
    request_body = CreateClient,
    responses((status = 201, body = ClientView), (status = 400, body = ApiError),
        (status = 409, description = "A client has the client_id given", body = ApiError)))]
async fn create(
    State(state): State<AppState>,
    caller: Authorized<CreateClients>,
    Body(body): Body<CreateClient>,
) -> Result<(StatusCode, Json<ClientView>), ApiError> {
    validate_name(&body.name)?;
    if let Some(metadata) = &body.client_metadata {
        validate_metadata(metadata)?;
    }
    validate_rate_limit(body.token_rate_limit.as_ref())?;
    if body.app_type.as_deref().is_some_and(|t| t != APP_TYPE) {
        return Err(ApiError::bad_request(format!(
            "app_type must be {APP_TYPE:?}"
        )));
    }
    if let Some(id) = &body.client_id {
        validate_given_id(id)?;
    }
    if let Some(secret) = &body.client_secret {
        validate_given_secret(secret)?;
    }
    let method = body
        .token_endpoint_auth_method
        .unwrap_or(Some(SecretMethod::ClientSecretPost));
    // A client without a secret method gets no generated secret: it would be refused
    // anyway. A given one is kept (as a PATCH to `null` keeps it), refused until a PATCH
    // sets a method: the document can say no rule that ties the two fields.
    let generated = match (&method, &body.client_secret) {
        (Some(_), None) => Some(generate_secret().map_err(|_| ApiError::internal())?),
        _ => None,
    };
    let secret = body.client_secret.clone().or_else(|| generated.clone());
    let given_id = body.client_id.is_some();
    let client_id = match body.client_id {
        Some(id) => id,
        None => generate_id("").map_err(|_| ApiError::internal())?,
    };
    let client = Client {
        client_id,
        name: body.name,
        client_metadata: body.client_metadata.unwrap_or_default(),
        app_type: APP_TYPE.into(),
        secrets: secret
            .iter()
            .map(|secret| SecretHash {
                hash: state.hasher.hash(secret),
                expires_at: None,
            })
            .collect(),
        created_at: now(),
        token_rate_limit: body.token_rate_limit,
        authentication: ClientAuthentication {
            token_endpoint_auth_method: method,
            private_key_jwt: Vec::new(),
            dpop_bound_access_tokens: body.dpop_bound_access_tokens,
        },
        credentials: Vec::new(),
    };
    let stored = client.clone();
    write(&state, move |s| {
        let view = ClientView::new(stored.clone(), None);
        let change = Change::created("client", &stored.client_id, &view);
        let store = || {
            s.store.transaction(|tx| {
                tx.put_client(&stored)?;
                audit::record(tx, &caller, &change)
            })?;
            Ok(())
        };
        if !given_id {
            return store();
        }
        // A generated id is new; a given one may not be, and storing is an upsert.
        across_nodes(s, || {
            if s.store.get_client(&stored.client_id)?.is_some() {
                return Err(ApiError::conflict(format!(
                    "a client with the client_id {:?} exists already",
                    stored.client_id
                )));
            }
            store()
        })
    })
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(ClientView::new(client, generated)),
    ))
}

/// Get one client.
#[utoipa::path(get, path = "/clients/{id}", operation_id = "get_client", tag = "clients",
    security(("oauth2" = ["read:clients"])),
    responses((status = 200, body = ClientView), (status = 404, body = ApiError)))]
async fn get_one(
    State(state): State<AppState>,
    _: Authorized<ReadClients>,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    let client = blocking(&state, move |s| find(s, &id)).await?;
    Ok(Json(ClientView::new(client, None)))
}

/// Change a client's name, metadata, rate limit or how it authenticates.
#[utoipa::path(patch, path = "/clients/{id}", operation_id = "update_client", tag = "clients",
    security(("oauth2" = ["update:clients"])),
    request_body = UpdateClient,
    responses((status = 200, body = ClientView), (status = 400, body = ApiError),
        (status = 404, body = ApiError)))]
async fn update(
    State(state): State<AppState>,
    caller: Authorized<UpdateClients>,
    Path(id): Path<String>,
    Body(body): Body<UpdateClient>,
) -> Result<Json<ClientView>, ApiError> {
    if body.client_authentication_methods.is_some() {
        // Enabling a key is handing its holder the client: as rotating the secret.
        caller.may_act_as(&state, &id)?;
    }
    let client = write(&state, move |s| {
        let mut client = find(s, &id)?;
        let before = ClientView::new(client.clone(), None);
        if let Some(name) = body.name {
            validate_name(&name)?;
            client.name = name;
        }
        if let Some(patch) = body.client_metadata {
            merge_metadata(&mut client.client_metadata, patch);
            validate_metadata(&client.client_metadata)?;
        }
        if let Some(limit) = body.token_rate_limit {
            validate_rate_limit(limit.as_ref())?;
            client.token_rate_limit = limit;
        }
        let auth = &mut client.authentication;
        if let Some(method) = body.token_endpoint_auth_method {
            auth.token_endpoint_auth_method = method;
        }
        if let Some(methods) = body.client_authentication_methods {
            let ids = methods.map(AuthenticationMethods::ids).unwrap_or_default();
            check_credential_ids(&client.credentials, &ids)?;
            // In the credentials' order, each once.
            auth.private_key_jwt = client
                .credentials
                .iter()
                .filter(|c| ids.contains(&c.id))
                .map(|c| c.id.clone())
                .collect();
        }
        if let Some(dpop) = body.dpop_bound_access_tokens {
            auth.dpop_bound_access_tokens = dpop;
        }
        if auth.token_endpoint_auth_method.is_none() && auth.private_key_jwt.is_empty() {
            return Err(ApiError::bad_request(
                "the client would have no way to authenticate: set token_endpoint_auth_method \
                 or client_authentication_methods.private_key_jwt.credentials",
            ));
        }
        let after = ClientView::new(client.clone(), None);
        let change = Change::updated("client", &id, &before, &after);
        s.store.transaction(|tx| {
            tx.put_client(&client)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(client)
    })
    .await?;
    Ok(Json(ClientView::new(client, None)))
}

/// Every id must name one of the client's credentials.
fn check_credential_ids(credentials: &[ClientCredential], ids: &[String]) -> Result<(), ApiError> {
    match ids
        .iter()
        .find(|id| !credentials.iter().any(|c| &c.id == *id))
    {
        Some(unknown) => Err(ApiError::bad_request(format!(
            "client_authentication_methods.private_key_jwt names credential {unknown:?}, \
             which this client does not have (POST /api/v2/clients/{{id}}/credentials first)"
        ))),
        None => Ok(()),
    }
}

/// Delete a client and its grants.
#[utoipa::path(delete, path = "/clients/{id}", operation_id = "delete_client", tag = "clients",
    security(("oauth2" = ["delete:clients"])),
    responses((status = 204), (status = 404, body = ApiError), (status = 409, description = "It would leave no administrator", body = ApiError)))]
async fn delete(
    State(state): State<AppState>,
    caller: Authorized<DeleteClients>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    write(&state, move |s| {
        let before = ClientView::new(find(s, &id)?, None);
        let change = Change::deleted("client", &id, &before);
        let deleted = across_nodes(s, || {
            lockout::keeps_an_administrator(s, lockout::Proposed::DeleteClient(&id))?;
            Ok(s.store.transaction(|tx| {
                let deleted = tx.delete_client(&id)?;
                if deleted {
                    audit::record(tx, &caller, &change)?;
                }
                Ok(deleted)
            })?)
        })?;
        if deleted {
            Ok(())
        } else {
            Err(ApiError::not_found("The client"))
        }
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issue a new secret. The old one keeps working for the configured grace period
/// (`TOKENHOST_SECRET_GRACE_SECONDS`, default 0: it stops at once).
#[utoipa::path(post, path = "/clients/{id}/rotate-secret", operation_id = "rotate_client_secret", tag = "clients",
    security(("oauth2" = ["update:clients"])),
    responses((status = 200, body = ClientView), (status = 404, body = ApiError)))]
async fn rotate_secret(
    State(state): State<AppState>,
    caller: Authorized<UpdateClients>,
    Path(id): Path<String>,
) -> Result<Json<ClientView>, ApiError> {
    // The new secret is the client's management grant too, in the caller's hands.
    caller.may_act_as(&state, &id)?;
    let secret = generate_secret().map_err(|_| ApiError::internal())?;
    let hash = state.hasher.hash(&secret);
    let client = write(&state, move |s| {
        let mut client = find(s, &id)?;
        let before = ClientView::new(client.clone(), None);
        let now = now();
        let grace = i64::try_from(s.config.secret_grace_seconds).unwrap_or(i64::MAX);
        let mut secrets = vec![SecretHash {
            hash,
            expires_at: None,
        }];
        if grace > 0 {
            let until = now.saturating_add(grace);
            secrets.extend(
                client
                    .secrets
                    .into_iter()
                    .filter(|old| old.expires_at.is_none_or(|at| at > now))
                    .map(|old| SecretHash {
                        expires_at: Some(old.expires_at.map_or(until, |at| at.min(until))),
                        ..old
                    }),
            );
        }
        client.secrets = secrets;
        // The views hold no secret: the trail says a rotation happened, never to what.
        let after = ClientView::new(client.clone(), None);
        let change = Change::updated("client", &id, &before, &after).action("rotate_secret");
        s.store.transaction(|tx| {
            tx.put_client(&client)?;
            audit::record(tx, &caller, &change)
        })?;
        Ok(client)
    })
    .await?;
    Ok(Json(ClientView::new(client, Some(secret))))
}
