//! Signing keys: generation, rotation, JWKS, signing and verifying access tokens.
//!
//! Storage-free: `generate` and `rotation` return the keys to write, `sealing` turns them
//! into what the store holds (private keys sealed) and back, `KeySet` is built from the
//! keys read back and does all signing and verifying: `signer` holds each current key parsed
//! once and writes the JWS itself, jsonwebtoken verifies. One crypto stack: aws-lc-rs
//! generates every key (RSA included), signs, and verifies under jsonwebtoken. What the
//! releases on ring and the `rsa` crate stored still loads and signs alike (`compat_tests`).

#[cfg(test)]
mod compat_tests;
mod generate;
mod jwk;
mod keyset;
mod rotation;
mod sealing;
mod signer;
mod verify;

pub use generate::generate;
pub use keyset::KeySet;
pub use rotation::{applied, expired, missing, rotate};
pub use sealing::KeySealer;
pub use verify::{Rejection, LEEWAY_SECS};

use crate::store::SigningAlg;

/// Why a key could not be made or used, or a token not signed or verified.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The system random source or key generation failed.
    #[error("key generation failed: {0}")]
    Generate(String),
    /// Nothing can sign for this algorithm until a key is made current.
    #[error("no current {} signing key", .0.as_str())]
    NoCurrentKey(SigningAlg),
    /// A stored key is unusable (unparsable, or its public JWK does not match it).
    #[error("signing key {kid} is invalid: {reason}")]
    InvalidKey { kid: String, reason: String },
    /// The claims did not serialize, or the crypto library refused to sign (its error kept
    /// as text).
    #[error("signing failed: {0}")]
    Sign(String),
    /// The token is malformed, badly signed, expired, or for another issuer or audience.
    #[error("token rejected: {0}")]
    Verify(Rejection),
    /// The token's `kid` names no key of this set (never known, or deleted after expiry).
    #[error("token signed by unknown key {0:?}")]
    UnknownKid(String),
    /// A private key could not be sealed for storage (the system random source failed).
    #[error("cannot seal a private key: {0}")]
    Seal(String),
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::OnceLock;
    use std::time::{SystemTime, UNIX_EPOCH};

    use serde_json::{json, Value};

    use crate::store::SigningKey;

    pub(crate) const ISS: &str = "https://tokenhost.test/";
    pub(crate) const AUD: &str = "https://api.test/";

    /// The fixture's creation time.
    pub(crate) const T0: i64 = 1_700_000_000;

    /// A full key store as `missing` makes it from nothing (current and next for every
    /// algorithm), generated once per test binary because RSA key generation is slow.
    pub(crate) fn fixture() -> &'static [SigningKey] {
        static KEYS: OnceLock<Vec<SigningKey>> = OnceLock::new();
        KEYS.get_or_init(|| super::missing(&[], T0).unwrap())
    }

    /// Access token claims for ISS and AUD, expiring `exp_in` seconds from the real clock
    /// (jsonwebtoken checks `exp` against it).
    pub(crate) fn claims(exp_in: i64) -> Value {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let now = i64::try_from(now).unwrap();
        json!({
            "iss": ISS, "aud": AUD, "sub": "client-1@clients",
            "exp": now + exp_in, "iat": now, "scope": "read:things write:things",
        })
    }

    /// The fixture keys matching `pred`.
    pub(crate) fn keys_where(pred: impl Fn(&SigningKey) -> bool) -> Vec<SigningKey> {
        fixture().iter().filter(|k| pred(k)).cloned().collect()
    }

    /// What storage does with rotation output: upsert by kid.
    pub(crate) fn apply(keys: Vec<SigningKey>, changed: Vec<SigningKey>) -> Vec<SigningKey> {
        super::applied(&keys, &changed)
    }
}
