//! `X-Request-Id`: taken from the request if it carries a sane one, else made up; echoed on
//! the response and attached to every log line of the request through a tracing span.

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use tracing::Instrument;

pub const HEADER: &str = "x-request-id";
const MAX_LEN: usize = 128;

/// The request's id, as handlers see it.
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

fn new_id() -> String {
    let mut bytes = [0u8; 12];
    // If the random source fails the id is merely less unique; the request goes on.
    let _ = SystemRandom::new().fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

fn acceptable(value: &HeaderValue) -> Option<String> {
    let text = value.to_str().ok()?;
    let ok =
        !text.is_empty() && text.len() <= MAX_LEN && text.bytes().all(|b| b.is_ascii_graphic());
    ok.then(|| text.to_string())
}

pub async fn middleware(mut request: Request, next: Next) -> Response {
    let id = request
        .headers()
        .get(HEADER)
        .and_then(acceptable)
        .unwrap_or_else(new_id);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", request_id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(HEADER, value);
    }
    response
}
