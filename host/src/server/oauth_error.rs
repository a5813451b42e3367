//! Errors of the token endpoint, in RFC 6749 §5.2's format.
//!
//! JSON `{error, error_description}`, 400 unless the code says otherwise, 401 with
//! `WWW-Authenticate` for `invalid_client`, never cached. Internal failures say only
//! "internal error"; the cause is kept beside it for the server's log (the token endpoint
//! writes it once, tagged with the request id) and never sent.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use super::issuance::Refusal;
use super::rate_limit::{retry_after_secs, Allowance};

/// An OAuth 2.0 error response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthError {
    pub status: StatusCode,
    pub code: &'static str,
    pub description: String,
    /// Seconds before trying again, sent as `Retry-After` (with 429).
    pub retry_after: Option<u64>,
    /// The allowance a rate limit left (with 429), sent as `x-ratelimit-*`.
    pub allowance: Option<Allowance>,
    /// Why an internal error happened: for the server's log, never in the response.
    pub cause: Option<String>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: &'a str,
    error_description: &'a str,
}

impl OAuthError {
    fn new(status: StatusCode, code: &'static str, description: impl Into<String>) -> Self {
        OAuthError {
            status,
            code,
            description: description.into(),
            retry_after: None,
            allowance: None,
            cause: None,
        }
    }

    pub fn invalid_request(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", description)
    }

    pub fn invalid_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_client", description)
    }

    pub fn unsupported_grant_type(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            description,
        )
    }

    pub fn invalid_scope(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_scope", description)
    }

    pub fn unauthorized_client(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "unauthorized_client", description)
    }

    /// A DPoP proof that is missing, malformed, stale or replayed (RFC 9449 §5).
    pub fn invalid_dpop_proof(description: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_dpop_proof", description)
    }

    /// CONTRACT.md's extension: a deliberate refusal (unknown audience, no grant, a rule's
    /// denial) is 403 `access_denied`.
    pub fn access_denied(description: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "access_denied", description)
    }

    /// A `server_error` whose description the client may see (a rule's `ServerError`).
    pub fn server_error(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            description,
        )
    }

    /// A failure inside tokenhost or a rule: generic text for the client, the cause kept
    /// for the log.
    pub fn internal(cause: impl Into<String>) -> Self {
        OAuthError {
            cause: Some(cause.into()),
            ..Self::server_error("internal error")
        }
    }

    /// A rate limit: 429 `too_many_requests` (CONTRACT.md) with `Retry-After` in whole
    /// seconds.
    pub fn too_many_requests(retry_after: u64, description: impl Into<String>) -> Self {
        OAuthError {
            retry_after: Some(retry_after),
            ..Self::new(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_requests",
                description,
            )
        }
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "invalid_request",
            format!("request body larger than {limit} bytes"),
        )
    }
}

impl From<Refusal> for OAuthError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::InvalidRequest(d) => Self::invalid_request(d),
            Refusal::InvalidClient(d) => Self::invalid_client(d),
            Refusal::InvalidDpopProof(d) => Self::invalid_dpop_proof(d),
            Refusal::UnsupportedGrantType(d) => Self::unsupported_grant_type(d),
            Refusal::InvalidScope(d) => Self::invalid_scope(d),
            Refusal::UnauthorizedClient(d) => Self::unauthorized_client(d),
            Refusal::AccessDenied(d) => Self::access_denied(d),
            Refusal::ServerError(d) => Self::server_error(d),
            Refusal::TooManyRequests {
                exceeded,
                description,
            } => OAuthError {
                allowance: Some(exceeded.allowance),
                ..Self::too_many_requests(retry_after_secs(exceeded.retry_after), description)
            },
            Refusal::Internal { cause } => Self::internal(cause),
        }
    }
}

impl IntoResponse for OAuthError {
    fn into_response(self) -> Response {
        let body = Body {
            error: self.code,
            error_description: &self.description,
        };
        let mut response = (self.status, Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
        if let Some(seconds) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if let Some(allowance) = self.allowance {
            allowance.write_headers(headers);
        }
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"tokenhost\""),
            );
        }
        if self.status == StatusCode::PAYLOAD_TOO_LARGE {
            // The body was not read to its end, so the connection cannot carry another
            // request; saying so stops a client from reusing it and losing that request.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::rate_limit::Exceeded;

    #[tokio::test]
    async fn an_internal_cause_is_kept_for_the_log_and_never_sent() {
        let error = OAuthError::from(Refusal::Internal {
            cause: "cannot sign the token: key kid-7 is unusable".into(),
        });
        assert_eq!(error.code, "server_error");
        assert_eq!(
            error.cause.as_deref(),
            Some("cannot sign the token: key kid-7 is unusable")
        );
        let response = error.into_response();
        assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        let body = String::from_utf8(body.to_vec()).unwrap();
        assert_eq!(
            body,
            r#"{"error":"server_error","error_description":"internal error"}"#
        );
    }

    #[test]
    fn a_rate_limit_says_when_to_retry_in_whole_seconds() {
        let allowance = Allowance {
            limit: 5,
            remaining: 0,
            whole_in: std::time::Duration::from_secs(9),
        };
        let error = OAuthError::from(Refusal::TooManyRequests {
            exceeded: Exceeded {
                retry_after: std::time::Duration::from_millis(1500),
                allowance,
            },
            description: "slow down",
        });
        assert_eq!(error.status, StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(error.retry_after, Some(2));
        assert_eq!(error.cause, None);
        let response = error.into_response();
        assert_eq!(response.headers()["retry-after"], "2");
        assert_eq!(response.headers()["x-ratelimit-limit"], "5");
        assert_eq!(response.headers()["x-ratelimit-remaining"], "0");
    }
}
