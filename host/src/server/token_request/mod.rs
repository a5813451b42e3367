//! Reading a token request (RFC 6749 §4.4.2): a form or JSON body, the client's
//! authentication (`authentication.rs`), an optional DPoP proof, every malformation
//! answered with its OAuth error.
//!
//! [`TokenRequest`] is also the token endpoint's extractor: the body read under
//! `max_token_body_bytes`, a rejection always an [`OAuthError`].

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderMap};
use percent_encoding::percent_decode;
use serde::de::{Deserialize, Deserializer, Error as _, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

mod authentication;

pub use authentication::{AuthMethod, ClaimedClient, ClientProof};

use super::oauth_error::OAuthError;
use super::state::AppState;
use crate::client_auth::dpop::MAX_PROOF_BYTES;
use crate::scope;

/// A parsed token request.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRequest {
    /// Who the client says it is and its proof, not yet checked.
    pub client: ClaimedClient,
    pub grant_type: String,
    /// `audience`, or `resource` (RFC 8707) as its synonym.
    pub audience: Option<String>,
    /// Space-delimited `scope`, split.
    pub scope: Option<Vec<String>>,
    /// The body's fields without the client secret, for `context.request.body`.
    pub body: Map<String, Value>,
    /// `User-Agent` and `Host`, empty when absent or not text (`context.request`).
    pub user_agent: String,
    pub hostname: String,
    /// The `DPoP` header (RFC 9449 §4), not yet checked.
    pub dpop: Option<String>,
}

impl FromRequest<AppState> for TokenRequest {
    type Rejection = OAuthError;

    async fn from_request(request: Request, state: &AppState) -> Result<Self, OAuthError> {
        let limit = state.config.max_token_body_bytes;
        let (parts, body) = request.into_parts();
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(OAuthError::payload_too_large(limit));
        }
        let bytes: Bytes = axum::body::to_bytes(body, limit)
            .await
            .map_err(|_| OAuthError::payload_too_large(limit))?;
        let bounds = ScopeBounds {
            max_scopes: state.config.max_request_scopes,
            max_length: state.config.max_scope_length,
        };
        parse(&parts.headers, &bytes, bounds)
    }
}

/// How many scopes one request may name and how long each may be (the configuration's
/// `max_request_scopes` and `max_scope_length`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ScopeBounds {
    pub max_scopes: usize,
    pub max_length: usize,
}

/// Parses headers and body into a [`TokenRequest`].
pub fn parse(
    headers: &HeaderMap,
    body: &[u8],
    bounds: ScopeBounds,
) -> Result<TokenRequest, OAuthError> {
    let mut fields = parse_body(headers, body)?;
    let client = authentication::read(headers, &mut fields)?;
    let grant_type = text(&fields, "grant_type")?
        .ok_or_else(|| OAuthError::invalid_request("grant_type is missing"))?;
    let audience = match (text(&fields, "audience")?, text(&fields, "resource")?) {
        (Some(a), Some(r)) if a != r => {
            return Err(OAuthError::invalid_request(
                "audience and resource name different APIs",
            ))
        }
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    };
    let scope = text(&fields, "scope")?
        .map(|s| split_scope(&s, bounds))
        .transpose()?;
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Ok(TokenRequest {
        client,
        grant_type,
        audience,
        scope,
        body: fields,
        user_agent: header(header::USER_AGENT),
        hostname: header(header::HOST),
        dpop: dpop_header(headers)?,
    })
}

/// A parameter that must be a string, if present.
pub(super) fn text(fields: &Map<String, Value>, name: &str) -> Result<Option<String>, OAuthError> {
    match fields.get(name) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(OAuthError::invalid_request(format!(
            "{name} must be a string"
        ))),
    }
}

/// The one `DPoP` header, if sent (RFC 9449 §4.3: more than one is invalid). Its bound is
/// checked here, before anything reads it.
fn dpop_header(headers: &HeaderMap) -> Result<Option<String>, OAuthError> {
    let mut values = headers.get_all("dpop").iter();
    let Some(value) = values.next() else {
        return Ok(None);
    };
    if values.next().is_some() {
        return Err(OAuthError::invalid_dpop_proof(
            "more than one DPoP header was sent",
        ));
    }
    if value.len() > MAX_PROOF_BYTES {
        return Err(OAuthError::invalid_dpop_proof(format!(
            "the DPoP proof is longer than {MAX_PROOF_BYTES} bytes"
        )));
    }
    value
        .to_str()
        .map(|v| Some(v.trim().to_owned()))
        .map_err(|_| OAuthError::invalid_dpop_proof("the DPoP header is not text"))
}

/// The space-delimited `scope` (RFC 6749 §3.3), split, checked, each scope kept once. The
/// bounds are checked while splitting: a flood is refused at its first scope over the count,
/// having cost no more than a request at the bound. A repeated scope counts each time.
fn split_scope(raw: &str, bounds: ScopeBounds) -> Result<Vec<String>, OAuthError> {
    let mut scopes = Vec::new();
    for part in raw.split(' ').filter(|p| !p.is_empty()) {
        if scopes.len() == bounds.max_scopes {
            return Err(OAuthError::invalid_request(format!(
                "scope names more than {} scopes, the most one request may ask for",
                bounds.max_scopes
            )));
        }
        if part.len() > bounds.max_length {
            return Err(OAuthError::invalid_scope(format!(
                "a scope is longer than {} bytes, the longest one request may ask for",
                bounds.max_length
            )));
        }
        scope::check(part).map_err(|e| OAuthError::invalid_scope(e.to_string()))?;
        scopes.push(part.to_string());
    }
    Ok(scope::distinct(scopes))
}

fn parse_body(headers: &HeaderMap, body: &[u8]) -> Result<Map<String, Value>, OAuthError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        });
    let text = std::str::from_utf8(body)
        .map_err(|_| OAuthError::invalid_request("the request body is not UTF-8"))?;
    match content_type.as_deref() {
        Some("application/x-www-form-urlencoded") => parse_form(text),
        Some("application/json") => match serde_json::from_str::<JsonParameters>(text) {
            Ok(JsonParameters(map)) => Ok(map),
            Err(e) if e.is_data() => Err(OAuthError::invalid_request(format!(
                "the JSON body must be an object naming each parameter once: {e}"
            ))),
            Err(e) => Err(OAuthError::invalid_request(format!("the JSON body is malformed: {e}"))),
        },
        Some(other) => Err(OAuthError::invalid_request(format!(
            "unsupported content type {other:?}: use application/x-www-form-urlencoded or application/json"
        ))),
        None => Err(OAuthError::invalid_request(
            "Content-Type is missing: use application/x-www-form-urlencoded or application/json",
        )),
    }
}

/// A JSON body's parameters: an object, each key once. A repeated parameter is as invalid
/// in JSON as in a form (RFC 6749 §3.2), but `serde_json` alone keeps the last silently.
struct JsonParameters(Map<String, Value>);

impl<'de> Deserialize<'de> for JsonParameters {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Parameters;
        impl<'de> Visitor<'de> for Parameters {
            type Value = JsonParameters;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object of parameters")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<JsonParameters, A::Error> {
                let mut fields = Map::new();
                while let Some(name) = map.next_key::<String>()? {
                    if fields.contains_key(&name) {
                        return Err(A::Error::custom(format_args!(
                            "parameter {name} is repeated"
                        )));
                    }
                    let value = map.next_value()?;
                    fields.insert(name, value);
                }
                Ok(JsonParameters(fields))
            }
        }
        deserializer.deserialize_map(Parameters)
    }
}

/// `application/x-www-form-urlencoded`, strictly: no parameter twice (RFC 6749 §3.2), no
/// value that is not UTF-8 once decoded.
fn parse_form(text: &str) -> Result<Map<String, Value>, OAuthError> {
    let mut fields = Map::new();
    for pair in text.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let name = form_decode(name)?;
        let value = form_decode(value)?;
        if fields.contains_key(&name) {
            return Err(OAuthError::invalid_request(format!(
                "parameter {name} is repeated"
            )));
        }
        fields.insert(name, Value::String(value));
    }
    Ok(fields)
}

pub(super) fn form_decode(raw: &str) -> Result<String, OAuthError> {
    let plus_as_space = raw.replace('+', " ");
    percent_decode(plus_as_space.as_bytes())
        .decode_utf8()
        .map(|s| s.into_owned())
        .map_err(|_| OAuthError::invalid_request("a form value is not UTF-8 once decoded"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    const BOUNDS: ScopeBounds = ScopeBounds {
        max_scopes: 3,
        max_length: 8,
    };

    fn parse(headers: &HeaderMap, body: &[u8]) -> Result<TokenRequest, OAuthError> {
        super::parse(headers, body, BOUNDS)
    }

    fn form_headers() -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        h
    }

    #[test]
    fn client_secret_post_form() {
        let req = parse(
            &form_headers(),
            b"grant_type=client_credentials&client_id=a&client_secret=s%2Bx&audience=https%3A%2F%2Fapi&scope=read+write+read",
        )
        .unwrap();
        assert_eq!(req.client.proof, ClientProof::Secret("s+x".into()));
        assert!(
            !format!("{req:?}").contains("s+x"),
            "Debug hides the secret"
        );
        assert_eq!(req.audience.as_deref(), Some("https://api"));
        assert_eq!(
            req.scope,
            Some(vec!["read".to_string(), "write".to_string()])
        );
        assert!(!req.body.contains_key("client_secret"));
        assert_eq!(req.client.method, AuthMethod::ClientSecretPost);
    }

    #[test]
    fn basic_with_matching_body_id_is_fine_but_not_with_a_body_secret() {
        let mut h = form_headers();
        let creds = STANDARD.encode("a%3Ab:s");
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {creds}")).unwrap(),
        );
        let req = parse(&h, b"grant_type=client_credentials&client_id=a%3Ab").unwrap();
        assert_eq!(req.client.client_id, "a:b");
        assert_eq!(req.client.method, AuthMethod::ClientSecretBasic);
        let both = parse(&h, b"grant_type=client_credentials&client_secret=s").unwrap_err();
        assert_eq!(both.code, "invalid_request");
    }

    #[test]
    fn repeated_parameters_and_bad_encodings_are_invalid_requests() {
        let repeated = parse(
            &form_headers(),
            b"grant_type=x&grant_type=y&client_id=a&client_secret=s",
        )
        .unwrap_err();
        assert_eq!(repeated.code, "invalid_request");
        let not_utf8 = parse(
            &form_headers(),
            b"grant_type=%FF&client_id=a&client_secret=s",
        )
        .unwrap_err();
        assert_eq!(not_utf8.code, "invalid_request");
        let raw = parse(&form_headers(), &[0x67, 0xff]).unwrap_err();
        assert_eq!(raw.code, "invalid_request");
    }

    #[test]
    fn a_json_body_names_each_parameter_once() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let fine = br#"{"grant_type":"client_credentials","client_id":"a","client_secret":"s"}"#;
        assert_eq!(parse(&h, fine).unwrap().client.client_id, "a");
        let refused = |body: &[u8], why: &str| {
            let err = parse(&h, body).unwrap_err();
            assert_eq!(err.code, "invalid_request");
            assert!(err.description.contains(why), "{}", err.description);
        };
        refused(
            br#"{"grant_type":"client_credentials","client_id":"a","client_secret":"s","client_id":"b"}"#,
            "client_id is repeated",
        );
        refused(br#"["grant_type"]"#, "must be an object");
        refused(br#"{"grant_type":"#, "malformed");
    }

    #[test]
    fn audience_and_resource_must_agree() {
        let err = parse(
            &form_headers(),
            b"grant_type=g&client_id=a&client_secret=s&audience=x&resource=y",
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_request");
        let ok = parse(
            &form_headers(),
            b"grant_type=g&client_id=a&client_secret=s&resource=y",
        )
        .unwrap();
        assert_eq!(ok.audience.as_deref(), Some("y"));
    }

    #[test]
    fn a_client_assertion_is_one_method_and_never_combined_with_another() {
        // {"alg":"ES256"}.{"iss":"c1","sub":"c1"}.sig: shape only, verified later.
        let jwt = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJjMSIsInN1YiI6ImMxIn0.c2ln";
        let form = |extra: &str| {
            format!(
                "grant_type=client_credentials&client_assertion_type={}&client_assertion={jwt}{extra}",
                crate::client_auth::assertion::ASSERTION_TYPE.replace(':', "%3A")
            )
        };
        let req = parse(&form_headers(), form("").as_bytes()).unwrap();
        assert_eq!(req.client.client_id, "c1");
        assert_eq!(req.client.method, AuthMethod::PrivateKeyJwt);
        assert!(!req.body.contains_key("client_assertion"));
        assert!(
            !format!("{req:?}").contains(jwt),
            "Debug hides the assertion"
        );
        assert_eq!(
            parse(&form_headers(), form("&client_id=c1").as_bytes())
                .unwrap()
                .client
                .client_id,
            "c1"
        );
        let other = parse(&form_headers(), form("&client_id=c2").as_bytes()).unwrap_err();
        assert_eq!(other.code, "invalid_client");
        let both = parse(&form_headers(), form("&client_secret=s").as_bytes()).unwrap_err();
        assert_eq!(both.code, "invalid_request");
        let mut h = form_headers();
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_str(&format!("Basic {}", STANDARD.encode("c1:s"))).unwrap(),
        );
        assert_eq!(
            parse(&h, form("").as_bytes()).unwrap_err().code,
            "invalid_request"
        );
        let wrong_type = format!(
            "grant_type=client_credentials&client_assertion_type=saml&client_assertion={jwt}"
        );
        let err = parse(&form_headers(), wrong_type.as_bytes()).unwrap_err();
        assert_eq!(err.code, "invalid_client");
    }

    #[test]
    fn one_dpop_header_at_most() {
        let body = b"grant_type=client_credentials&client_id=a&client_secret=s";
        let mut h = form_headers();
        assert_eq!(parse(&h, body).unwrap().dpop, None);
        h.append("dpop", HeaderValue::from_static("a.b.c"));
        assert_eq!(parse(&h, body).unwrap().dpop.as_deref(), Some("a.b.c"));
        h.append("dpop", HeaderValue::from_static("d.e.f"));
        assert_eq!(parse(&h, body).unwrap_err().code, "invalid_dpop_proof");
    }

    #[test]
    fn missing_authentication_is_invalid_client() {
        let err = parse(&form_headers(), b"grant_type=client_credentials").unwrap_err();
        assert_eq!(err.code, "invalid_client");
    }

    #[test]
    fn scopes_are_bounded_while_split_and_each_must_be_a_scope_token() {
        let scope = |raw: &str| split_scope(raw, BOUNDS);
        assert_eq!(scope(" a  b a ").unwrap(), ["a", "b"]);
        assert_eq!(scope("a b 12345678").unwrap().len(), 3);
        let many = scope("a b c d").unwrap_err();
        assert_eq!(many.code, "invalid_request");
        assert!(
            many.description.contains("more than 3 scopes"),
            "{}",
            many.description
        );
        // A repeat counts: the bound is on what the request lists, not on what it keeps.
        assert_eq!(scope("a a a a").unwrap_err().code, "invalid_request");
        let long = scope("123456789").unwrap_err();
        assert_eq!(long.code, "invalid_scope");
        assert!(
            long.description.contains("longer than 8 bytes"),
            "{}",
            long.description
        );
        let odd = scope("a\"b").unwrap_err();
        assert_eq!(odd.code, "invalid_scope");
        assert!(
            odd.description.contains("scope-token"),
            "{}",
            odd.description
        );
        assert_eq!(scope("tab\tx").unwrap_err().code, "invalid_scope");
        // A flood stops at the first scope over the count, before reading the rest (which
        // here would be refused as over-long, were it reached).
        let flood = format!("{} {}", "a ".repeat(14_000), "x".repeat(100));
        assert_eq!(scope(&flood).unwrap_err().code, "invalid_request");
    }

    #[test]
    fn a_scope_that_is_not_a_string_is_an_invalid_request() {
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, "application/json".parse().unwrap());
        let err = parse(
            &h,
            br#"{"grant_type":"client_credentials","client_id":"a","client_secret":"s","scope":["a"]}"#,
        )
        .unwrap_err();
        assert_eq!(err.code, "invalid_request");
    }
}
