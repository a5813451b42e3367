//! Making a new signing key pair, in the storage format of `SigningKey`.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

use super::{jwk, KeyError};
use crate::store::{KeyState, SigningAlg, SigningKey};

/// RSA modulus size. 2048 is the RFC 7518 minimum and what verifiers universally accept;
/// larger moduli make every signature slower for little gain over a rotated key's lifetime.
const RSA_SIZE: KeySize = KeySize::Rsa2048;

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
    // Derived by parsing the DER just made, so a key the signer would refuse is never
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

/// A new RSA key as PKCS#1 `RSAPrivateKey`, the format RSA keys have always been stored in:
/// a node of a cluster still on an earlier release reads the keys a newer node makes.
/// aws-lc-rs exports PKCS#8, which wraps exactly that structure.
fn rsa_pkcs1_der() -> Result<Vec<u8>, KeyError> {
    let failed = |what: &str| KeyError::Generate(format!("RSA key: {what}"));
    let pair = aws_lc_rs::rsa::KeyPair::generate(RSA_SIZE).map_err(|_| failed("generation"))?;
    let pkcs8 = pair.as_der().map_err(|_| failed("PKCS#8 encoding"))?;
    let pkcs1 = pkcs1_in_pkcs8(pkcs8.as_ref()).ok_or_else(|| failed("unexpected PKCS#8"))?;
    let reparsed = RsaKeyPair::from_der(pkcs1).map_err(|_| failed("PKCS#1 does not parse"))?;
    if reparsed.public_key().as_ref() != pair.public_key().as_ref() {
        return Err(failed("PKCS#1 is another key"));
    }
    Ok(pkcs1.to_vec())
}

/// The `privateKey` of an RSA `PrivateKeyInfo` (RFC 5208 §5): `SEQUENCE { INTEGER 0,
/// AlgorithmIdentifier rsaEncryption, OCTET STRING RSAPrivateKey, .. }`.
fn pkcs1_in_pkcs8(pkcs8: &[u8]) -> Option<&[u8]> {
    /// rsaEncryption, 1.2.840.113549.1.1.1, as a DER OBJECT IDENTIFIER.
    const RSA_ENCRYPTION: &[u8] = &[
        0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01,
    ];
    let (info, rest) = der_element(pkcs8, 0x30)?;
    if !rest.is_empty() {
        return None;
    }
    let (version, info) = der_element(info, 0x02)?;
    let (algorithm, info) = der_element(info, 0x30)?;
    let (private_key, _attributes) = der_element(info, 0x04)?;
    (version == [0] && algorithm.starts_with(RSA_ENCRYPTION)).then_some(private_key)
}

/// The content of the DER element with `tag` that `input` starts with, and what follows it.
fn der_element(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&first, input) = input.split_first()?;
    let (&len, mut input) = input.split_first()?;
    if first != tag {
        return None;
    }
    let len = match len {
        0..=0x7f => usize::from(len),
        // Long form: the next 1 or 2 bytes are the length (an RSA key is under 64 KiB).
        0x81 | 0x82 => {
            let (bytes, rest) = input.split_at_checked(usize::from(len - 0x80))?;
            input = rest;
            bytes.iter().fold(0, |n, b| n << 8 | usize::from(*b))
        }
        _ => return None,
    };
    input.split_at_checked(len)
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
        use aws_lc_rs::rsa::PublicKeyComponents;

        let key = generate(SigningAlg::RS256, KeyState::Next, 1_700_000_000).unwrap();
        check_common(&key, SigningAlg::RS256);
        assert_eq!(key.public_jwk["kty"], "RSA");
        // PKCS#1 RSAPrivateKey, not PKCS#8: a SEQUENCE whose first member is INTEGER 0
        // (two-prime), then the modulus, not an AlgorithmIdentifier.
        let (body, rest) = der_element(&key.private_der, 0x30).unwrap();
        assert!(rest.is_empty());
        let (version, body) = der_element(body, 0x02).unwrap();
        assert_eq!(version, [0]);
        assert!(der_element(body, 0x02).is_some(), "the modulus follows");
        assert!(RsaKeyPair::from_pkcs8(&key.private_der).is_err());

        let parsed = RsaKeyPair::from_der(&key.private_der).unwrap();
        assert_eq!(parsed.public_modulus_len(), 256);
        let public = PublicKeyComponents::<Vec<u8>>::from(parsed.public_key());
        let n = URL_SAFE_NO_PAD
            .decode(key.public_jwk["n"].as_str().unwrap())
            .unwrap();
        assert_eq!(n.len(), 256);
        assert_eq!(n, public.n.strip_prefix(&[0]).unwrap_or(&public.n));
        assert_eq!(key.public_jwk["e"], "AQAB");
    }

    #[test]
    fn pkcs1_is_taken_only_from_an_rsa_pkcs8() {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        assert_eq!(pkcs1_in_pkcs8(ec.as_ref()), None);
        let rsa = aws_lc_rs::rsa::KeyPair::generate(RSA_SIZE).unwrap();
        let pkcs8 = rsa.as_der().unwrap();
        let pkcs8 = pkcs8.as_ref();
        assert!(pkcs1_in_pkcs8(pkcs8).is_some());
        for cut in [1, 10, pkcs8.len() / 2, pkcs8.len() - 1] {
            assert_eq!(pkcs1_in_pkcs8(&pkcs8[..cut]), None, "cut at {cut}");
        }
        assert_eq!(pkcs1_in_pkcs8(&[pkcs8, &[0]].concat()), None);
    }

    #[test]
    fn a_generated_retired_key_records_when() {
        let key = generate(SigningAlg::EdDSA, KeyState::Retired, 5).unwrap();
        assert_eq!(key.retired_at, Some(5));
    }
}
