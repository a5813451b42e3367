//! Errors of the management API, in the original platform's JSON shape:
//! `{statusCode, error, message, errorCode}`, plus `line` and `column` for a rule that does
//! not compile.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

use crate::store::StoreError;

/// A management API error response.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApiError {
    pub status_code: u16,
    /// The HTTP reason phrase.
    pub error: String,
    pub message: String,
    pub error_code: String,
    /// 1-based line of a compile error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// 1-based column of a compile error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub column: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, error_code: &str, message: impl Into<String>) -> Self {
        ApiError {
            status_code: status.as_u16(),
            error: status.canonical_reason().unwrap_or("Error").to_string(),
            message: message.into(),
            error_code: error_code.to_string(),
            line: None,
            column: None,
        }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_body", message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "inexistent_resource",
            format!("{what} does not exist"),
        )
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "invalid_token", message)
    }

    pub fn insufficient_scope(needed: &str) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "insufficient_scope",
            format!("Insufficient scope, expected: {needed}"),
        )
    }

    /// An internal failure: generic text; the caller logs the cause.
    pub fn internal() -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "internal error",
        )
    }
}

impl From<StoreError> for ApiError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Conflict { what } => ApiError::conflict(format!("{what} already exists")),
            other => {
                tracing::error!(error = %other, "storage failure");
                ApiError::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.status_code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let challenge = (status == StatusCode::UNAUTHORIZED).then(|| self.bearer_challenge());
        let mut response = (status, Json(self)).into_response();
        if let Some(challenge) = challenge {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

impl ApiError {
    /// RFC 6750 §3: a 401 names the scheme it wants, and why the token was refused.
    fn bearer_challenge(&self) -> HeaderValue {
        // A quoted-string holds visible ASCII but `"` and `\`.
        let description: String = self
            .message
            .chars()
            .map(|c| match c {
                '"' | '\\' => '\'',
                ' '..='~' => c,
                _ => '?',
            })
            .collect();
        HeaderValue::from_str(&format!(
            "Bearer realm=\"tokenhost\", error=\"{}\", error_description=\"{description}\"",
            self.error_code
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer realm=\"tokenhost\""))
    }
}
