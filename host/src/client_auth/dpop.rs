//! DPoP proofs at the token endpoint (RFC 9449 §4.2, §4.3): a JWS the client signs with the
//! key its token will be bound to, carrying that public key in its header.
//!
//! The key comes from a stranger, so it is held to public keys of accepted types and sizes
//! (RSA up to 4096 bits) before it verifies anything. `nonce` and `ath` are not checked
//! here: this server issues no DPoP nonces, and `ath` only concerns resource servers.

use serde_json::Value;
use url::Url;

use super::jwk::{shown, PRIVATE_MEMBERS};
use super::jws::{self, numeric_date, str_member};
use super::{thumbprint, AssertionAlg, VerifyingKey};

pub const MAX_PROOF_BYTES: usize = 8192;
/// iat no older than this.
pub const PROOF_MAX_AGE_SECONDS: i64 = 60;
/// iat no more than this in the future.
pub const PROOF_LEEWAY_SECONDS: i64 = 5;
/// The JWS algs accepted in proofs (discovery's `dpop_signing_alg_values_supported`).
pub const PROOF_ALGS: &[&str] = &["ES256", "RS256", "PS256", "EdDSA"];
/// The typ of a DPoP proof (RFC 9449 §4.2).
pub const PROOF_TYP: &str = "dpop+jwt";
/// The largest RSA key a proof may carry: larger ones only cost us verification time.
const MAX_PROOF_RSA_BITS: usize = 4096;

const WHAT: &str = "DPoP proof";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpopProof {
    /// The RFC 7638 thumbprint of the header's jwk: what the token's `cnf.jkt` will be.
    pub jkt: String,
    pub jti: String,
    /// The replay cache keeps the jti until iat + PROOF_MAX_AGE + PROOF_LEEWAY.
    pub replay_until: i64,
}

/// Verifies one DPoP proof for a request of method `htm` to `htu`, at `now`: form and
/// size, `typ`, `alg`, the header's public `jwk` and the signature made with it, then
/// `jti`, `htm`, `htu` (without query and fragment, scheme and host case-insensitive,
/// default port implied) and `iat`. Errors are `error_description`s for `invalid_dpop_proof`.
pub fn verify(proof: &str, htm: &str, htu: &str, now: i64) -> Result<DpopProof, String> {
    let jws = jws::decode(proof, MAX_PROOF_BYTES, WHAT)?;
    let header = &jws.header;
    if str_member(header, "typ") != Some(PROOF_TYP) {
        return Err(format!("DPoP proof typ must be {PROOF_TYP}"));
    }
    let named = str_member(header, "alg").ok_or_else(|| "DPoP proof has no alg".to_owned())?;
    let alg = PROOF_ALGS
        .contains(&named)
        .then(|| AssertionAlg::parse(named))
        .flatten()
        .ok_or_else(|| {
            format!(
                "DPoP proof alg {} is not accepted; use one of {}",
                shown(named),
                PROOF_ALGS.join(", ")
            )
        })?;
    let jwk = header
        .get("jwk")
        .ok_or_else(|| "DPoP proof header has no jwk".to_owned())?;
    let key = public_key(jwk, alg)?;
    if !key.verifies(jws.signing_input.as_bytes(), &jws.signature) {
        return Err("DPoP proof signature does not verify with its jwk".to_owned());
    }

    let claims = &jws.claims;
    let jti = jws::jti(claims, WHAT)?;
    if str_member(claims, "htm") != Some(htm) {
        return Err(format!("DPoP proof htm must be {htm}"));
    }
    let matches = str_member(claims, "htu").is_some_and(|claimed| same_target(claimed, htu));
    if !matches {
        return Err("DPoP proof htu does not match the token endpoint".to_owned());
    }
    let iat =
        numeric_date(claims, "iat", WHAT)?.ok_or_else(|| "DPoP proof has no iat".to_owned())?;
    if iat < now - PROOF_MAX_AGE_SECONDS {
        return Err("DPoP proof is too old".to_owned());
    }
    if iat > now + PROOF_LEEWAY_SECONDS {
        return Err("DPoP proof iat is in the future".to_owned());
    }
    Ok(DpopProof {
        jkt: thumbprint(jwk)?,
        jti,
        replay_until: iat + PROOF_MAX_AGE_SECONDS + PROOF_LEEWAY_SECONDS,
    })
}

/// The header's jwk as a verifying key for `alg`, refused if it is anything but a public
/// key (RFC 9449 §4.3 item 7) of the type `alg` needs.
fn public_key(jwk: &Value, alg: AssertionAlg) -> Result<VerifyingKey, String> {
    let members = jwk
        .as_object()
        .ok_or_else(|| "DPoP proof jwk is not a JSON object".to_owned())?;
    let private = PRIVATE_MEMBERS.iter().any(|m| members.contains_key(*m))
        || members.get("kty").and_then(Value::as_str) == Some("oct");
    if private {
        return Err("DPoP proof jwk must be a public key".to_owned());
    }
    VerifyingKey::from_jwk_bounded(jwk, alg, MAX_PROOF_RSA_BITS)
        .map_err(|reason| format!("DPoP proof jwk: {reason}"))
}

/// Whether the proof's `htu` names the same endpoint as `expected`, ignoring query and
/// fragment (RFC 9449 §4.3 item 9); the URL parser normalizes scheme and host case and
/// drops a default port (RFC 3986 §6.2.2.1, §6.2.3).
fn same_target(claimed: &str, expected: &str) -> bool {
    let target = |text: &str| {
        let mut url = Url::parse(text).ok()?;
        url.set_query(None);
        url.set_fragment(None);
        Some(url)
    };
    match (target(claimed), target(expected)) {
        (Some(claimed), Some(expected)) => claimed == expected,
        _ => false,
    }
}

#[cfg(test)]
#[path = "dpop_tests.rs"]
mod tests;
