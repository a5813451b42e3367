//! `POST /oauth/token`: the HTTP side of the client-credentials grant.
//!
//! The request arrives parsed ([`TokenRequest`], [`ClientIp`]); issuance (`issuance/`) makes
//! the token or says why not; this turns either into the response, counts it, and writes an
//! internal failure's cause to the log, once, with the request id.

use std::time::Instant;

use axum::extract::State;
use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use serde::Serialize;

use super::client_ip::ClientIp;
use super::issuance::{self, Caller, Issued};
use super::oauth_error::OAuthError;
use super::request_id::RequestId;
use super::state::AppState;
use super::token_request::TokenRequest;

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u32,
    scope: String,
}

pub async fn token(
    State(state): State<AppState>,
    Extension(request_id): Extension<RequestId>,
    ClientIp(ip): ClientIp,
    request: Result<TokenRequest, OAuthError>,
) -> Response {
    let started = Instant::now();
    let caller = Caller {
        ip,
        request_id: &request_id.0,
    };
    let issued = match request {
        Ok(request) => issuance::issue(&state, &request, caller)
            .await
            .map_err(OAuthError::from),
        Err(rejected) => Err(rejected),
    };
    match issued {
        Ok(issued) => {
            state.metrics.token_issued(issued.alg, started.elapsed());
            response(issued)
        }
        Err(error) => {
            state.metrics.token_refused(error.code, started.elapsed());
            if let Some(cause) = &error.cause {
                tracing::error!(request_id = %request_id.0, %cause, "token request failed");
            }
            error.into_response()
        }
    }
}

fn response(issued: Issued) -> Response {
    let body = TokenResponse {
        access_token: issued.access_token,
        token_type: issued.token_type,
        expires_in: issued.expires_in,
        scope: issued.scope,
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    response
}
