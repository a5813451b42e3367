//! `private_key_jwt` client authentication: a client assertion (RFC 7523 §3, RFC 7521 §4.2,
//! `client_assertion_type` `urn:ietf:params:oauth:client-assertion-type:jwt-bearer`) checked
//! against the keys of the client it names.
//!
//! The signature is checked before any claim, so a claim's error only ever describes an
//! assertion the client's own key signed; the header's `alg` must be one a credential uses
//! (never `none` or an HMAC, so a public key can never serve as an HMAC secret).

use serde_json::{Map, Value};

use super::jwk::shown;
use super::jws::{self, numeric_date, str_member};
use super::{AssertionAlg, VerifyingKey};

/// The `client_assertion_type` of a JWT client assertion (RFC 7523 §2.2).
pub const ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// Clock skew allowed on exp / iat / nbf.
pub const LEEWAY_SECONDS: i64 = 30;
/// How long an assertion is accepted: until its exp, and no longer than this after its iat
/// (or, without iat, exp no further than this away). Its jti stays in the replay cache that
/// long, so the cache holds a few minutes of assertions at most.
pub const MAX_LIFETIME_SECONDS: i64 = 300;
/// The furthest exp accepted with an iat: the hour stock clients default to (authlib,
/// google-auth), though such an assertion is accepted only its first
/// [`MAX_LIFETIME_SECONDS`].
pub const MAX_EXP_SECONDS: i64 = 3600;
pub const MAX_ASSERTION_BYTES: usize = 8192;
/// At most this many `aud` entries are looked at; more is refused.
pub const MAX_AUDIENCES: usize = 16;
/// A `sub`/`iss` longer than this names no client.
const MAX_SUBJECT_BYTES: usize = 512;

const WHAT: &str = "client assertion";

/// The assertion's unverified `sub` (falling back to `iss`), to find the client whose keys
/// then verify it. Bounded; errors for a malformed JWT.
pub fn unverified_subject(assertion: &str) -> Result<String, String> {
    let claims = jws::unverified_claims(assertion, MAX_ASSERTION_BYTES, WHAT)?;
    let subject = str_member(&claims, "sub")
        .or_else(|| str_member(&claims, "iss"))
        .ok_or_else(|| "client assertion has no sub".to_owned())?;
    if subject.is_empty() || subject.len() > MAX_SUBJECT_BYTES {
        return Err(format!(
            "client assertion sub must be 1 to {MAX_SUBJECT_BYTES} bytes"
        ));
    }
    Ok(subject.to_owned())
}

/// One credential of the client, as the catalog holds it.
pub struct AssertionKey<'a> {
    pub credential_id: &'a str,
    pub kid: &'a str,
    pub alg: AssertionAlg,
    pub key: &'a VerifyingKey,
}

pub struct Expectations<'a> {
    pub client_id: &'a str,
    /// Accepted `aud` values: the issuer and the token endpoint URL.
    pub audiences: &'a [&'a str],
    pub now: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedAssertion {
    pub credential_id: String,
    pub jti: String,
    /// The replay cache keeps (client, jti) until this time: exp + LEEWAY.
    pub replay_until: i64,
}

/// Verifies a client assertion: its form and size, its header `alg` (one of
/// `AssertionAlg`) and `kid` (if present, only that credential is tried; otherwise every
/// credential of that alg), the signature, then `iss` == `sub` == client_id, `aud`, `exp`
/// (required; see `check_times` for how far), `iat`/`nbf` (if present, not in the future)
/// and `jti` (required). Each error is an `error_description` for `invalid_client`.
pub fn verify(
    assertion: &str,
    keys: &[AssertionKey<'_>],
    expect: &Expectations<'_>,
) -> Result<VerifiedAssertion, String> {
    let jws = jws::decode(assertion, MAX_ASSERTION_BYTES, WHAT)?;
    let alg = header_alg(&jws.header)?;
    let message = jws.signing_input.as_bytes();
    let verifies = |key: &&AssertionKey<'_>| {
        key.alg == alg && key.key.alg() == alg && key.key.verifies(message, &jws.signature)
    };
    let credential = match str_member(&jws.header, "kid") {
        Some(kid) => {
            let key = keys.iter().find(|key| key.kid == kid).ok_or_else(|| {
                format!(
                    "client assertion kid {:?} is no credential of this client",
                    shown(kid)
                )
            })?;
            if key.alg != alg {
                return Err(format!(
                    "client assertion is signed with alg {alg}, but credential {:?} is for {}",
                    shown(kid),
                    key.alg
                ));
            }
            Some(key).filter(verifies)
        }
        None => keys.iter().find(verifies),
    };
    let credential = credential
        .ok_or_else(|| "no credential of this client verifies the client assertion".to_owned())?;
    let claims = &jws.claims;
    check_parties(claims, expect)?;
    let accepted_until = check_times(claims, expect.now)?;
    Ok(VerifiedAssertion {
        credential_id: credential.credential_id.to_owned(),
        jti: jws::jti(claims, WHAT)?,
        replay_until: accepted_until.saturating_add(LEEWAY_SECONDS),
    })
}

fn header_alg(header: &Map<String, Value>) -> Result<AssertionAlg, String> {
    let named =
        str_member(header, "alg").ok_or_else(|| "client assertion has no alg".to_owned())?;
    AssertionAlg::parse(named).ok_or_else(|| {
        format!(
            "client assertion is signed with alg {}, which is not accepted",
            shown(named)
        )
    })
}

/// iss == sub == client_id (RFC 7523 §3 items 1 and 2); aud names us (item 3).
fn check_parties(claims: &Map<String, Value>, expect: &Expectations<'_>) -> Result<(), String> {
    let client_id = Some(expect.client_id);
    if str_member(claims, "iss") != client_id || str_member(claims, "sub") != client_id {
        return Err("client assertion iss and sub must both be the client_id".to_owned());
    }
    let named = |aud: &Value| {
        aud.as_str()
            .is_some_and(|aud| expect.audiences.contains(&aud))
    };
    let ours = match claims.get("aud") {
        Some(Value::Array(list)) if list.len() > MAX_AUDIENCES => {
            return Err(format!(
                "client assertion has more than {MAX_AUDIENCES} aud values"
            ))
        }
        Some(Value::Array(list)) => list.iter().any(named),
        Some(aud) => named(aud),
        None => false,
    };
    if !ours {
        return Err("client assertion aud must be the issuer or the token endpoint URL".to_owned());
    }
    Ok(())
}

/// exp, iat and nbf against `now` (RFC 7523 §3 items 4 to 6); returns until when the
/// assertion is accepted: exp, or iat + [`MAX_LIFETIME_SECONDS`] if sooner (RFC 7523 §3
/// lets a server refuse an iat unreasonably far in the past).
fn check_times(claims: &Map<String, Value>, now: i64) -> Result<i64, String> {
    let exp = numeric_date(claims, "exp", WHAT)?
        .ok_or_else(|| "client assertion has no exp".to_owned())?;
    if exp <= now - LEEWAY_SECONDS {
        return Err("client assertion expired".to_owned());
    }
    let iat = numeric_date(claims, "iat", WHAT)?;
    let furthest = if iat.is_some() {
        MAX_EXP_SECONDS
    } else {
        MAX_LIFETIME_SECONDS
    };
    if exp > now + furthest + LEEWAY_SECONDS {
        return Err(format!(
            "client assertion exp is more than {furthest} seconds away"
        ));
    }
    if iat.is_some_and(|iat| iat > now + LEEWAY_SECONDS) {
        return Err("client assertion iat is in the future".to_owned());
    }
    if iat.is_some_and(|iat| iat < now - MAX_LIFETIME_SECONDS - LEEWAY_SECONDS) {
        return Err(format!(
            "client assertion is too old: its iat is more than {MAX_LIFETIME_SECONDS} seconds \
             ago; make a new one per request"
        ));
    }
    if numeric_date(claims, "nbf", WHAT)?.is_some_and(|nbf| nbf > now + LEEWAY_SECONDS) {
        return Err("client assertion is not valid yet (nbf)".to_owned());
    }
    Ok(iat.map_or(exp, |iat| exp.min(iat.saturating_add(MAX_LIFETIME_SECONDS))))
}

#[cfg(test)]
#[path = "assertion_tests.rs"]
mod tests;
