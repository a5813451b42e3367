//! The management API's door: every request is counted against its caller's rate limit
//! before any handler runs, and every response says what is left (`x-ratelimit-*`).
//!
//! The caller is the verified management client when the request carries a valid token,
//! else the address it came from, so nobody can spend a client's allowance without its
//! token, and a stranger sending garbage spends only its own. The verified caller is kept
//! in the request for [`super::auth::Authorized`], so a token is checked once.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use axum::extract::{ConnectInfo, Request, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use crate::server::api_error::ApiError;
use crate::server::client_ip::client_ip;
use crate::server::rate_limit::{retry_after_secs, ManagementCaller};
use crate::server::state::AppState;

/// The caller as the gate verified it: taken by `Authorized` instead of verifying again.
#[derive(Clone)]
pub(super) struct Verified(pub Result<Caller, ApiError>);

pub(super) async fn gate(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let (mut parts, body) = request.into_parts();
    let verified = Caller::from_parts(&parts, &state);
    let counted = match &verified {
        Ok(caller) => ManagementCaller::Client(caller.client_id.clone()),
        Err(_) => ManagementCaller::address(address(&parts, &state)),
    };
    match state.rate_limits.check_management(&counted) {
        Ok(allowance) => {
            parts.extensions.insert(Verified(verified));
            let mut response = next.run(Request::from_parts(parts, body)).await;
            allowance.write_headers(response.headers_mut());
            response
        }
        Err(exceeded) => {
            let mut response = ApiError::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                "Too many management requests from this caller: retry after Retry-After seconds",
            )
            .into_response();
            let headers = response.headers_mut();
            exceeded.allowance.write_headers(headers);
            let seconds = retry_after_secs(exceeded.retry_after);
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
            response
        }
    }
}

fn address(parts: &Parts, state: &AppState) -> IpAddr {
    match parts.extensions.get::<ConnectInfo<SocketAddr>>() {
        Some(ConnectInfo(peer)) => client_ip(*peer, &parts.headers, &state.config.trusted_proxies),
        None => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    }
}
