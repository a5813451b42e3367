//! The admin console at `/console`: three files built from `host/console/src/` and embedded
//! in the binary, so running the server needs no front-end step and the console cannot be
//! out of step with the API it calls.
//!
//! The console is plain same-origin code: its policy allows nothing else (no inline script
//! or style, no request to another origin, no framing), which is what keeps a management
//! token typed into it from going anywhere but this server.

use axum::http::{header, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

use super::state::AppState;

const INDEX_HTML: &[u8] = include_bytes!("../../console/dist/index.html");
const APP_JS: &[u8] = include_bytes!("../../console/dist/app.js");
const APP_CSS: &[u8] = include_bytes!("../../console/dist/app.css");

/// The policy the console is built to work under (see `host/console/README.md`).
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self'; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// `/console` (and `/console/`), `/console/app.js`, `/console/app.css`.
pub fn router() -> Router<AppState> {
    let page = get(|| async { asset(INDEX_HTML, "text/html; charset=utf-8") });
    Router::new()
        .route("/console", page.clone())
        .route("/console/", page)
        .route(
            "/console/app.js",
            get(|| async { asset(APP_JS, "text/javascript; charset=utf-8") }),
        )
        .route(
            "/console/app.css",
            get(|| async { asset(APP_CSS, "text/css; charset=utf-8") }),
        )
}

fn asset(body: &'static [u8], content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    // Embedded in the binary: an upgraded server must not be met by yesterday's bundle.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}
