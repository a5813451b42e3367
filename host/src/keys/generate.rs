//! Making a new signing key pair, in the storage format of `SigningKey`.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{EcdsaKeyPair, Ed25519KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::{jwk, KeyError};
use crate::store::{KeyState, SigningAlg, SigningKey};

/// RSA modulus size. 2048 is the RFC 7518 minimum and what verifiers universally accept;
/// larger moduli make every signature slower for little gain over a rotated key's lifetime.
const RSA_BITS: usize = 2048;

/// Random bytes in a kid: 128 bits, so kids never collide across keys or servers.
const KID_BYTES: usize = 16;

/// A fresh key pair for `alg`, in `state`, created at `now`.
///
/// RS256 keys take tens to hundreds of milliseconds (prime search); call this off the
/// request path. The key is `retired_at: None` unless made `Retired`, which records `now`.
pub fn generate(alg: SigningAlg, state: KeyState, now: i64) -> Result<SigningKey, KeyError> {
    let rng = SystemRandom::new();
    let private_der = match alg {
        SigningAlg::RS256 => rsa_pkcs1_der()?,
        SigningAlg::ES256 => EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|e| KeyError::Generate(format!("P-256 key: {e}")))?
            .as_ref()
            .to_vec(),
        SigningAlg::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng)
            .map_err(|e| KeyError::Generate(format!("Ed25519 key: {e}")))?
            .as_ref()
            .to_vec(),
    };
    let kid = new_kid(&rng)?;
    // Derived by parsing the DER just made, so a key ring would refuse to sign with is never
    // handed out, and the JWK is exactly what `KeySet::new` will check it against.
    let public_jwk = jwk::public_jwk(&kid, alg, &private_der)?;
    Ok(SigningKey {
        kid,
        alg,
        state,
        private_der,
        public_jwk,
        created_at: now,
        retired_at: (state == KeyState::Retired).then_some(now),
    })
}

fn rsa_pkcs1_der() -> Result<Vec<u8>, KeyError> {
    use rsa::pkcs1::EncodeRsaPrivateKey;

    let key = rsa::RsaPrivateKey::new(&mut rand::rngs::OsRng, RSA_BITS)
        .map_err(|e| KeyError::Generate(format!("RSA key: {e}")))?;
    let der = key
        .to_pkcs1_der()
        .map_err(|e| KeyError::Generate(format!("RSA key encoding: {e}")))?;
    Ok(der.as_bytes().to_vec())
}

fn new_kid(rng: &SystemRandom) -> Result<String, KeyError> {
    let mut bytes = [0u8; KID_BYTES];
    rng.fill(&mut bytes)
        .map_err(|e| KeyError::Generate(format!("random kid: {e}")))?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check_common(key: &SigningKey, alg: SigningAlg) {
        assert_eq!(key.alg, alg);
        assert_eq!(key.state, KeyState::Next);
        assert_eq!(key.created_at, 1_700_000_000);
        assert_eq!(key.retired_at, None);
        assert_eq!(key.kid.len(), 22, "16 bytes base64url without padding");
        assert!(URL_SAFE_NO_PAD.decode(&key.kid).is_ok());
        assert_eq!(key.public_jwk["kid"], key.kid.as_str());
        assert_eq!(key.public_jwk["alg"], alg.as_str());
        assert_eq!(key.public_jwk["use"], "sig");
        // The public JWK never carries private members.
        for private in ["d", "p", "q", "dp", "dq", "qi"] {
            assert!(key.public_jwk.get(private).is_none(), "{private}");
        }
    }

    #[test]
    fn ec_and_ed_keys() {
        let es = generate(SigningAlg::ES256, KeyState::Next, 1_700_000_000).unwrap();
        check_common(&es, SigningAlg::ES256);
        assert_eq!(es.public_jwk["kty"], "EC");
        assert_eq!(es.public_jwk["crv"], "P-256");
        assert!(es.public_jwk["x"].is_string() && es.public_jwk["y"].is_string());

        let ed = generate(SigningAlg::EdDSA, KeyState::Next, 1_700_000_000).unwrap();
        check_common(&ed, SigningAlg::EdDSA);
        assert_eq!(ed.public_jwk["kty"], "OKP");
        assert_eq!(ed.public_jwk["crv"], "Ed25519");
        let x = URL_SAFE_NO_PAD
            .decode(ed.public_jwk["x"].as_str().unwrap())
            .unwrap();
        assert_eq!(x.len(), 32);

        assert_ne!(es.kid, ed.kid);
    }

    #[test]
    fn rsa_key_is_pkcs1_2048() {
        use rsa::pkcs1::DecodeRsaPrivateKey;
        use rsa::traits::PublicKeyParts;

        let key = generate(SigningAlg::RS256, KeyState::Next, 1_700_000_000).unwrap();
        check_common(&key, SigningAlg::RS256);
        assert_eq!(key.public_jwk["kty"], "RSA");
        let parsed = rsa::RsaPrivateKey::from_pkcs1_der(&key.private_der).unwrap();
        assert_eq!(parsed.size(), 256);
        let n = URL_SAFE_NO_PAD
            .decode(key.public_jwk["n"].as_str().unwrap())
            .unwrap();
        let e = URL_SAFE_NO_PAD
            .decode(key.public_jwk["e"].as_str().unwrap())
            .unwrap();
        assert_eq!(n, parsed.n().to_bytes_be());
        assert_eq!(e, parsed.e().to_bytes_be());
        assert_eq!(key.public_jwk["e"], "AQAB");
    }

    #[test]
    fn a_generated_retired_key_records_when() {
        let key = generate(SigningAlg::EdDSA, KeyState::Retired, 5).unwrap();
        assert_eq!(key.retired_at, Some(5));
    }
}
