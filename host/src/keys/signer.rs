//! A private key parsed once, and the JWS (RFC 7515 compact serialization) it signs.
//!
//! aws-lc-rs checks a key as it parses it, which for RSA-2048 takes longer than the signature
//! itself (`make bench-sign`), so a current key is parsed when the `KeySet` is built, never
//! per token, and its header is encoded once: per token there is only the payload to encode
//! and the signature to make.

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::json;

use super::KeyError;
use crate::store::SigningAlg;

/// A private key in our storage format, parsed for `alg` (PKCS#1 for RSA, PKCS#8 for the
/// others). ECDSA signs in the fixed-width `r || s` form JWS wants (RFC 7518 §3.4), not DER.
pub(super) enum PrivateKey {
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl PrivateKey {
    /// Parses `der` as a key for `alg`; the error says what it is not.
    pub(super) fn parse(alg: SigningAlg, der: &[u8]) -> Result<PrivateKey, String> {
        match alg {
            SigningAlg::RS256 => RsaKeyPair::from_der(der)
                .map(PrivateKey::Rsa)
                .map_err(|e| format!("not an RSA PKCS#1 key: {e}")),
            SigningAlg::ES256 => EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der)
                .map(PrivateKey::Ecdsa)
                .map_err(|e| format!("not a P-256 PKCS#8 key: {e}")),
            SigningAlg::EdDSA => Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map(PrivateKey::Ed25519)
                .map_err(|e| format!("not an Ed25519 PKCS#8 key: {e}")),
        }
    }

    pub(super) fn alg(&self) -> SigningAlg {
        match self {
            PrivateKey::Rsa(_) => SigningAlg::RS256,
            PrivateKey::Ecdsa(_) => SigningAlg::ES256,
            PrivateKey::Ed25519(_) => SigningAlg::EdDSA,
        }
    }

    /// The JWS signature of `message` for this key's algorithm.
    fn sign(&self, random: &SystemRandom, message: &[u8]) -> Result<Vec<u8>, KeyError> {
        let refused = |e: aws_lc_rs::error::Unspecified| KeyError::Sign(e.to_string());
        match self {
            PrivateKey::Rsa(pair) => {
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, random, message, &mut signature)
                    .map_err(refused)?;
                Ok(signature)
            }
            PrivateKey::Ecdsa(pair) => Ok(pair
                .sign(random, message)
                .map_err(refused)?
                .as_ref()
                .to_vec()),
            PrivateKey::Ed25519(pair) => Ok(pair.sign(message).as_ref().to_vec()),
        }
    }
}

/// Signs access tokens with one current key.
pub(super) struct Signer {
    /// base64url of `{"alg", "kid", "typ"}`, the same in every token this key signs.
    header: String,
    key: PrivateKey,
    random: SystemRandom,
}

impl Signer {
    pub(super) fn new(kid: &str, typ: &str, key: PrivateKey) -> Signer {
        let header = json!({ "alg": key.alg().as_str(), "kid": kid, "typ": typ });
        Signer {
            header: URL_SAFE_NO_PAD.encode(header.to_string()),
            key,
            random: SystemRandom::new(),
        }
    }

    /// `header.payload.signature`, each part base64url without padding.
    pub(super) fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, KeyError> {
        let payload = serde_json::to_vec(claims).map_err(|e| KeyError::Sign(e.to_string()))?;
        // Room for an RSA-2048 signature (342 characters), the longest a key of ours makes.
        let mut token = String::with_capacity(self.header.len() + payload.len() * 4 / 3 + 350);
        token.push_str(&self.header);
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&payload, &mut token);
        let signature = self.key.sign(&self.random, token.as_bytes())?;
        token.push('.');
        URL_SAFE_NO_PAD.encode_string(&signature, &mut token);
        Ok(token)
    }
}
