//! Keys and metadata for verifiers and clients: the JWKS (RFC 7517) and the authorization
//! server metadata (RFC 8414, and its OpenID Connect spelling).

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

use super::state::AppState;
use crate::client_auth::dpop;
use crate::store::{AssertionAlg, SigningAlg};

/// `GET /.well-known/jwks.json`: current and next keys, and retired ones still needed.
pub async fn jwks(State(state): State<AppState>) -> Response {
    let body = state.catalog().jwks.to_vec();
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Short enough that a rotation's next key is picked up long before it signs.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    response
}

fn metadata(state: &AppState) -> Value {
    let config = &state.config;
    json!({
        "issuer": config.issuer,
        "token_endpoint": config.token_endpoint(),
        "jwks_uri": config.jwks_uri(),
        "grant_types_supported": ["client_credentials"],
        "token_endpoint_auth_methods_supported":
            ["client_secret_basic", "client_secret_post", "private_key_jwt"],
        // Required by RFC 8414 and OIDC discovery; no authorization endpoint, so none.
        "response_types_supported": [],
        // What client assertions may be signed with (RFC 8414 §2).
        "token_endpoint_auth_signing_alg_values_supported":
            AssertionAlg::ALL.map(AssertionAlg::as_str),
        "dpop_signing_alg_values_supported": dpop::PROOF_ALGS,
        "service_documentation": format!("{}api/v2/openapi.json", config.issuer),
    })
}

/// `GET /.well-known/oauth-authorization-server`.
pub async fn oauth_metadata(State(state): State<AppState>) -> Json<Value> {
    Json(metadata(&state))
}

/// `GET /.well-known/openid-configuration`: the same, with the fields OIDC discovery
/// clients insist on.
pub async fn openid_configuration(State(state): State<AppState>) -> Json<Value> {
    let mut doc = metadata(&state);
    if let Some(object) = doc.as_object_mut() {
        object.insert("subject_types_supported".into(), json!(["public"]));
        object.insert(
            "id_token_signing_alg_values_supported".into(),
            json!(SigningAlg::ALL.map(SigningAlg::as_str)),
        );
    }
    Json(doc)
}
