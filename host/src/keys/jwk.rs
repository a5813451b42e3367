//! The public half of a signing key as a JWK (RFC 7517/7518), and back to a verifying key.
//!
//! The JWK is always derived from the parsed private key that signs (`signer::PrivateKey`):
//! a key the crypto library would refuse is caught at generation or load, not on the first
//! token request, and a published JWK cannot drift from the key that signs.

use aws_lc_rs::signature::KeyPair;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{json, Value};

use super::signer::PrivateKey;
use super::KeyError;
use crate::store::SigningAlg;

/// The jsonwebtoken algorithm for one of ours.
pub(super) fn algorithm(alg: SigningAlg) -> Algorithm {
    match alg {
        SigningAlg::RS256 => Algorithm::RS256,
        SigningAlg::ES256 => Algorithm::ES256,
        SigningAlg::EdDSA => Algorithm::EdDSA,
    }
}

/// The public JWK (with kid, alg and use) of a private key in our storage format.
pub(super) fn public_jwk(
    kid: &str,
    alg: SigningAlg,
    private_der: &[u8],
) -> Result<Value, KeyError> {
    let key = PrivateKey::parse(alg, private_der).map_err(|reason| KeyError::InvalidKey {
        kid: kid.to_owned(),
        reason,
    })?;
    public_jwk_of(kid, &key)
}

/// The public JWK (with kid, alg and use) of a parsed private key.
pub(super) fn public_jwk_of(kid: &str, key: &PrivateKey) -> Result<Value, KeyError> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let mut jwk = match key {
        PrivateKey::Rsa(pair) => {
            let public = aws_lc_rs::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public_key());
            // RFC 7518 §6.3.1: n and e use the minimum number of octets.
            json!({
                "kty": "RSA",
                "n": b64(strip_leading_zeros(&public.n)),
                "e": b64(strip_leading_zeros(&public.e)),
            })
        }
        PrivateKey::Ecdsa(pair) => {
            // Uncompressed SEC1 point: 0x04 || x || y, each coordinate 32 bytes, which is
            // also the fixed length RFC 7518 §6.2.1.2 requires.
            let point = pair.public_key().as_ref();
            let (x, y) = match point {
                [0x04, rest @ ..] if rest.len() == 64 => rest.split_at(32),
                _ => {
                    return Err(KeyError::InvalidKey {
                        kid: kid.to_owned(),
                        reason: "unexpected P-256 public point encoding".to_owned(),
                    })
                }
            };
            json!({
                "kty": "EC", "crv": "P-256", "x": b64(x), "y": b64(y),
            })
        }
        PrivateKey::Ed25519(pair) => json!({
            "kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref()),
        }),
    };
    if let Value::Object(members) = &mut jwk {
        members.insert("kid".to_owned(), Value::from(kid));
        members.insert("alg".to_owned(), Value::from(key.alg().as_str()));
        members.insert("use".to_owned(), Value::from("sig"));
    }
    Ok(jwk)
}

/// A verifying key built from nothing but a public JWK's key parameters.
pub(super) fn decoding_key(alg: SigningAlg, jwk: &Value) -> Result<DecodingKey, String> {
    let field = |name: &str| {
        jwk.get(name)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("JWK has no string member {name:?}"))
    };
    let key = match alg {
        SigningAlg::RS256 => DecodingKey::from_rsa_components(field("n")?, field("e")?),
        SigningAlg::ES256 => DecodingKey::from_ec_components(field("x")?, field("y")?),
        SigningAlg::EdDSA => DecodingKey::from_ed_components(field("x")?),
    };
    key.map_err(|e| format!("JWK key parameters: {e}"))
}

fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

#[cfg(test)]
mod tests {
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

    use super::*;

    #[test]
    fn rejects_a_key_of_another_algorithm() {
        let rng = SystemRandom::new();
        let ed = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
        let err = public_jwk("k1", SigningAlg::ES256, ed.as_ref()).unwrap_err();
        assert!(
            matches!(err, KeyError::InvalidKey { ref kid, .. } if kid == "k1"),
            "{err}"
        );
        let err = public_jwk("k2", SigningAlg::RS256, b"garbage").unwrap_err();
        assert!(matches!(err, KeyError::InvalidKey { .. }), "{err}");
    }

    #[test]
    fn ec_coordinates_are_full_length() {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let jwk = public_jwk("k", SigningAlg::ES256, doc.as_ref()).unwrap();
        for coordinate in ["x", "y"] {
            let raw = URL_SAFE_NO_PAD
                .decode(jwk[coordinate].as_str().unwrap())
                .unwrap();
            assert_eq!(raw.len(), 32, "{coordinate}");
        }
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
    }

    #[test]
    fn decoding_key_needs_its_members() {
        let err = decoding_key(SigningAlg::ES256, &json!({"kty": "EC", "x": "AA"})).err();
        assert!(err.is_some_and(|e| e.contains("\"y\"")));
    }

    #[test]
    fn leading_zeros_are_stripped() {
        assert_eq!(strip_leading_zeros(&[0, 0, 1, 0]), &[1, 0]);
        assert_eq!(strip_leading_zeros(&[0]), &[] as &[u8]);
    }
}
