//! Management request bodies and query strings: axum's `Json` and `Query`, with their
//! rejections in our error format. A body or query of the wrong shape is 400, as on the
//! original platform (axum says 422). A number with no fraction is an integer, as JSON
//! Schema (and so the OpenAPI document) has it: `5.0` is read where `5` is.

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::server::api_error::ApiError;

/// A JSON body; a malformed or oversized one is an [`ApiError`].
#[derive(Debug)]
pub struct Body<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let mut value = match axum::Json::<Value>::from_request(req, state).await {
            Ok(axum::Json(value)) => value,
            Err(rejection) => return Err(rejection_error(rejection)),
        };
        integral_numbers_as_integers(&mut value);
        serde_path_to_error::deserialize(value)
            .map(Body)
            .map_err(|e| {
                let path = e.path().to_string();
                let message = match path.as_str() {
                    "." => e.into_inner().to_string(),
                    _ => format!("{path}: {}", e.into_inner()),
                };
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "invalid_body",
                    format!("Failed to deserialize the JSON body into the target type: {message}"),
                )
            })
    }
}

/// An RFC 3339 time (any offset, as JSON Schema's `date-time`) as Unix milliseconds.
pub fn rfc3339_ms(text: &str) -> Result<i64, chrono::ParseError> {
    chrono::DateTime::parse_from_rfc3339(text).map(|t| t.timestamp_millis())
}

/// Rewrites every float with no fraction that fits an `i64` or a `u64` as that integer.
fn integral_numbers_as_integers(value: &mut Value) {
    match value {
        Value::Number(n) if n.is_f64() => {
            let f = n.as_f64().unwrap_or(f64::NAN);
            // Exact: both bounds are powers of two, and `f` has no fraction.
            if f.fract() == 0.0 && f >= -(2f64.powi(63)) && f < 2f64.powi(63) {
                *value = Value::from(f as i64);
            } else if f.fract() == 0.0 && f >= 0.0 && f < 2f64.powi(64) {
                *value = Value::from(f as u64);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(integral_numbers_as_integers),
        Value::Object(fields) => fields.values_mut().for_each(integral_numbers_as_integers),
        _ => {}
    }
}

fn rejection_error(rejection: JsonRejection) -> ApiError {
    let status = rejection.status();
    let (status, code) = match rejection {
        JsonRejection::MissingJsonContentType(_) => (status, "invalid_content_type"),
        _ if status == StatusCode::PAYLOAD_TOO_LARGE => (status, "payload_too_large"),
        _ => (StatusCode::BAD_REQUEST, "invalid_body"),
    };
    ApiError::new(status, code, rejection.body_text())
}

/// A query string; one of the wrong shape is a 400 [`ApiError`].
#[derive(Debug)]
pub struct Query<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for Query<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match axum::extract::Query::<T>::from_request_parts(parts, state).await {
            Ok(axum::extract::Query(value)) => Ok(Query(value)),
            Err(rejection) => Err(query_error(rejection)),
        }
    }
}

fn query_error(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "invalid_query_string",
        rejection.body_text(),
    )
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn whole_floats_become_integers_and_the_rest_stay() {
        let mut value =
            json!({"a": 5.0, "b": [-3.0, 2.5], "c": 1e300, "d": 7, "e": 1.8446744073709552e19});
        integral_numbers_as_integers(&mut value);
        assert_eq!(value["a"], json!(5));
        assert!(value["a"].is_i64());
        assert_eq!(value["b"], json!([-3, 2.5]));
        assert!(value["c"].is_f64());
        assert_eq!(value["d"], json!(7));
        // 2^64 fits neither.
        assert!(value["e"].is_f64());
    }
}
