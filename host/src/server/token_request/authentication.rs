//! Who a token request says the client is, and how it proves it: a secret in the body
//! (`client_secret_post`) or by Basic (`client_secret_basic`, RFC 6749 §2.3.1), or a signed
//! client assertion (`private_key_jwt`, RFC 7521 §4.2, RFC 7523 §2.2). Exactly one: a
//! request that sends two is refused, whichever would have worked.
//!
//! Only the shape is checked here; `issuance::authenticate` checks the proof.

use axum::http::{header, HeaderMap};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::{Map, Value};
use std::fmt;

use super::{form_decode, text};
use crate::client_auth::assertion::{
    unverified_subject, ASSERTION_TYPE as JWT_BEARER, MAX_ASSERTION_BYTES,
};
use crate::redacted::Redacted;
use crate::server::oauth_error::OAuthError;

/// How the client authenticated, by its RFC 7591 name (what rules see as
/// `clientAuthentication.method`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    ClientSecretBasic,
    ClientSecretPost,
    PrivateKeyJwt,
}

impl AuthMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ClientSecretBasic => "client_secret_basic",
            AuthMethod::ClientSecretPost => "client_secret_post",
            AuthMethod::PrivateKeyJwt => "private_key_jwt",
        }
    }
}

/// What the client sent to prove who it is. Its `Debug` shows neither, so that no `{:?}`
/// of a request can print a secret or an unused assertion.
#[derive(Clone, PartialEq, Eq)]
pub enum ClientProof {
    Secret(String),
    /// A compact JWS, not yet verified.
    Assertion(String),
}

impl fmt::Debug for ClientProof {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientProof::Secret(_) => f.debug_tuple("Secret").field(&Redacted).finish(),
            ClientProof::Assertion(_) => f.debug_tuple("Assertion").field(&Redacted).finish(),
        }
    }
}

/// The client a request names, how, and its proof.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedClient {
    pub client_id: String,
    pub method: AuthMethod,
    pub proof: ClientProof,
}

/// Reads the client's authentication from the headers and body, and takes the proof out of
/// `fields` (so that rules, which see the body, never see it).
pub fn read(
    headers: &HeaderMap,
    fields: &mut Map<String, Value>,
) -> Result<ClaimedClient, OAuthError> {
    let basic = basic_credentials(headers)?;
    let body_id = text(fields, "client_id")?;
    let body_secret = text(fields, "client_secret")?;
    let assertion_type = text(fields, "client_assertion_type")?;
    let assertion = text(fields, "client_assertion")?;
    fields.remove("client_secret");
    fields.remove("client_assertion");
    let two_methods = |what: &str| {
        OAuthError::invalid_request(format!(
            "use one client authentication method: {what} were both sent"
        ))
    };
    if let Some(assertion) = assertion {
        if basic.is_some() {
            return Err(two_methods("client_assertion and Basic authorization"));
        }
        if body_secret.is_some() {
            return Err(two_methods("client_assertion and client_secret"));
        }
        return from_assertion(body_id, assertion_type, assertion);
    }
    if assertion_type.is_some() {
        return Err(OAuthError::invalid_client(
            "client_assertion_type was sent without client_assertion",
        ));
    }
    let (client_id, secret, method) = match (basic, body_id, body_secret) {
        (Some(_), _, Some(_)) => {
            return Err(two_methods(
                "client_secret in the body and Basic authorization",
            ))
        }
        (Some((id, _)), Some(body_id), None) if body_id != id => {
            return Err(OAuthError::invalid_request(
                "client_id in the body differs from the Basic authorization",
            ))
        }
        (Some((id, secret)), _, None) => (id, secret, AuthMethod::ClientSecretBasic),
        (None, Some(id), Some(secret)) => (id, secret, AuthMethod::ClientSecretPost),
        (None, Some(_), None) => {
            return Err(OAuthError::invalid_client(
                "client_secret is missing (or send client_assertion for private_key_jwt)",
            ))
        }
        (None, None, _) => {
            return Err(OAuthError::invalid_client(
                "client authentication is missing: send client_id and client_secret, Basic \
                 authorization, or client_assertion",
            ))
        }
    };
    Ok(ClaimedClient {
        client_id,
        method,
        proof: ClientProof::Secret(secret),
    })
}

/// A client assertion names its client in `sub`; a `client_id` sent beside it must agree
/// (RFC 7521 §4.2). Which client that is decides whose keys verify the assertion.
fn from_assertion(
    body_id: Option<String>,
    assertion_type: Option<String>,
    assertion: String,
) -> Result<ClaimedClient, OAuthError> {
    match assertion_type.as_deref() {
        Some(JWT_BEARER) => {}
        Some(other) => {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type {other:?} is not supported: use {JWT_BEARER}"
            )))
        }
        None => {
            return Err(OAuthError::invalid_client(format!(
                "client_assertion_type is missing: send {JWT_BEARER}"
            )))
        }
    }
    if assertion.len() > MAX_ASSERTION_BYTES {
        return Err(OAuthError::invalid_client(format!(
            "client_assertion is longer than {MAX_ASSERTION_BYTES} bytes"
        )));
    }
    let subject = unverified_subject(&assertion).map_err(OAuthError::invalid_client)?;
    if body_id.as_ref().is_some_and(|id| *id != subject) {
        return Err(OAuthError::invalid_client(
            "client_id differs from the client assertion's sub",
        ));
    }
    Ok(ClaimedClient {
        client_id: subject,
        method: AuthMethod::PrivateKeyJwt,
        proof: ClientProof::Assertion(assertion),
    })
}

/// `Authorization: Basic base64(urlencode(id) ":" urlencode(secret))`, if present.
fn basic_credentials(headers: &HeaderMap) -> Result<Option<(String, String)>, OAuthError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let malformed = || OAuthError::invalid_request("malformed Basic authorization header");
    let value = value.to_str().map_err(|_| malformed())?;
    let (scheme, encoded) = value.trim().split_once(' ').ok_or_else(malformed)?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return Err(OAuthError::invalid_request(format!(
            "unsupported authorization scheme {scheme:?}: use Basic, client_id and client_secret in the body, or client_assertion"
        )));
    }
    let decoded = STANDARD.decode(encoded.trim()).map_err(|_| malformed())?;
    let decoded = String::from_utf8(decoded).map_err(|_| malformed())?;
    let (id, secret) = decoded.split_once(':').ok_or_else(malformed)?;
    let (id, secret) = (form_decode(id)?, form_decode(secret)?);
    if id.is_empty() {
        return Err(malformed());
    }
    Ok(Some((id, secret)))
}
