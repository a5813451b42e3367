//! Who is calling the management API: a bearer token tokenhost itself issued for the
//! management audience, and the scopes it carries.

use axum::extract::FromRequestParts;
use axum::http::header;
use axum::http::request::Parts;

use crate::server::api_error::ApiError;
use crate::server::state::AppState;

/// A verified management caller.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The management client's id (the token's `client_id`).
    pub client_id: String,
    pub scopes: Vec<String>,
}

impl Caller {
    /// 403 `insufficient_scope` unless the token carries `scope`.
    pub fn require(&self, scope: &str) -> Result<(), ApiError> {
        if self.scopes.iter().any(|s| s == scope) {
            Ok(())
        } else {
            Err(ApiError::insufficient_scope(scope))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| {
                ApiError::unauthorized("Missing authentication: send Authorization: Bearer <token>")
            })?;
        let token = value
            .split_once(' ')
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim())
            .ok_or_else(|| ApiError::unauthorized("Bad authorization scheme: expected Bearer"))?;
        let catalog = state.catalog();
        let claims = catalog
            .keys
            .verify(
                token,
                &state.config.issuer,
                &state.config.management_audience(),
            )
            .map_err(|e| ApiError::unauthorized(format!("Invalid token: {e}")))?;
        let client_id = claims
            .get("client_id")
            .and_then(|v| v.as_str())
            .unwrap_or_default()
            .to_string();
        if !catalog.clients.contains_key(&client_id) {
            return Err(ApiError::unauthorized(
                "Invalid token: its client no longer exists",
            ));
        }
        let scopes = claims
            .get("scope")
            .and_then(|v| v.as_str())
            .map(|s| {
                s.split(' ')
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_default();
        Ok(Caller { client_id, scopes })
    }
}
