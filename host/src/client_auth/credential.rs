//! A public-key credential as an administrator uploads it: one PEM block, a public key
//! (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) or an X.509 `CERTIFICATE`, becomes the
//! public JWK the store keeps and the catalog turns into a `VerifyingKey`.
//!
//! PEM (RFC 7468), SPKI and the certificate are decoded by RustCrypto's `pem-rfc7468`,
//! `spki` and `x509-cert`; RSA keys by aws-lc-rs, which reads both SPKI and PKCS#1. A
//! certificate only carries the key: its validity dates and issuer are not checked here.

use aws_lc_rs::rsa::PublicKey as RsaPublicKey;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};
use spki::der::{Decode, Encode};
use spki::ObjectIdentifier;
use x509_cert::Certificate;

use super::jwk::{bit_length, strip_leading_zeros, MAX_RSA_BITS, MIN_RSA_BITS};
use super::{thumbprint, AssertionAlg, VerifyingKey};

/// The largest PEM accepted: an RSA-8192 certificate with room to spare.
pub const MAX_PEM_BYTES: usize = 16 * 1024;

const RSA_ENCRYPTION: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
const P256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.3.1.7");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// What a public-key credential upload becomes.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedCredential {
    /// Public JWK: kty and key members only, no kid/alg/use.
    pub jwk: Value,
    /// `thumbprint(jwk)`.
    pub kid: String,
    /// The certificate's notAfter, unix seconds, if a certificate.
    pub not_after: Option<i64>,
}

/// Parses `pem` as a credential for `alg`: RS256/RS384/PS256 need RSA with a modulus of
/// 2048..=8192 bits, ES256 a P-256 key, EdDSA an Ed25519 key. Errors are for an
/// administrator; a private key is refused.
pub fn parse_pem(pem: &str, alg: AssertionAlg) -> Result<ParsedCredential, String> {
    if pem.len() > MAX_PEM_BYTES {
        return Err(format!("the PEM is longer than {MAX_PEM_BYTES} bytes"));
    }
    let pem = pem.trim();
    if pem.matches("-----BEGIN ").count() > 1 {
        return Err(
            "the PEM holds several blocks: upload one public key or one certificate (the client's own, not a chain)"
                .to_owned(),
        );
    }
    let label = pem_rfc7468::decode_label(pem.as_bytes())
        .map_err(|e| format!("not a PEM public key or certificate: {e}"))?;
    if label.ends_with("PRIVATE KEY") {
        return Err("this is a private key: upload the public key or a certificate".to_owned());
    }
    let der = decode(pem)?;
    let (key, not_after) = match label {
        "PUBLIC KEY" => (public_key(&der)?, None),
        "RSA PUBLIC KEY" => (rsa(&der)?, None),
        "CERTIFICATE" => {
            let certificate = Certificate::from_der(&der)
                .map_err(|e| format!("the certificate does not parse: {e}"))?;
            let tbs = certificate.tbs_certificate();
            let spki = tbs
                .subject_public_key_info()
                .to_der()
                .map_err(|e| format!("the certificate's public key does not encode: {e}"))?;
            let not_after = tbs.validity().not_after.to_unix_duration().as_secs();
            (public_key(&spki)?, i64::try_from(not_after).ok())
        }
        other => {
            return Err(format!(
                "a PEM labelled {other:?} is neither a public key nor a certificate"
            ))
        }
    };
    let jwk = fit(key, alg)?;
    // What the catalog will do with it, done now so a key aws-lc-rs refuses (an EC point
    // off the curve, an even RSA modulus) is refused at upload, not at the first token.
    VerifyingKey::from_jwk(&jwk, alg)?;
    let kid = thumbprint(&jwk)?;
    Ok(ParsedCredential {
        jwk,
        kid,
        not_after,
    })
}

/// The key a PEM holds, or what it holds instead, for the error message.
enum Key {
    Rsa { n: Vec<u8>, e: Vec<u8> },
    P256 { x: Vec<u8>, y: Vec<u8> },
    Ed25519 { x: Vec<u8> },
    Other(&'static str),
}

fn decode(pem: &str) -> Result<Vec<u8>, String> {
    let invalid = |e: pem_rfc7468::Error| format!("the PEM does not decode: {e}");
    // Line widths other than 64 are common in pasted keys.
    let mut decoder = pem_rfc7468::Decoder::new_detect_wrap(pem.as_bytes()).map_err(invalid)?;
    let mut der = Vec::new();
    decoder.decode_to_end(&mut der).map_err(invalid)?;
    Ok(der)
}

/// A DER SubjectPublicKeyInfo (RFC 5280 §4.1.2.7).
fn public_key(der: &[u8]) -> Result<Key, String> {
    let spki = spki::SubjectPublicKeyInfoRef::from_der(der)
        .map_err(|e| format!("the public key does not parse: {e}"))?;
    let bits = spki.subject_public_key.raw_bytes();
    let oid = spki.algorithm.oid;
    if oid == RSA_ENCRYPTION {
        return rsa(der);
    }
    if oid == ED25519 {
        return match bits.len() {
            32 => Ok(Key::Ed25519 { x: bits.to_vec() }),
            _ => Err("the Ed25519 public key is not 32 bytes".to_owned()),
        };
    }
    if oid != EC_PUBLIC_KEY {
        return Ok(Key::Other(match oid.to_string().as_str() {
            "1.2.840.113549.1.1.10" => "an RSA-PSS-only key (use an rsaEncryption key)",
            "1.3.101.113" => "an Ed448 key",
            "1.3.101.110" | "1.3.101.111" => "an X25519/X448 key-agreement key",
            _ => "a key of an unsupported type",
        }));
    }
    if spki.algorithm.parameters_oid().ok() != Some(P256) {
        return Ok(Key::Other("an EC key on a curve other than P-256"));
    }
    match bits {
        [0x04, point @ ..] if point.len() == 64 => {
            let (x, y) = point.split_at(32);
            Ok(Key::P256 {
                x: x.to_vec(),
                y: y.to_vec(),
            })
        }
        _ => Err("the P-256 public key is not an uncompressed point".to_owned()),
    }
}

/// An RSA public key as SPKI or PKCS#1 RSAPublicKey DER.
fn rsa(der: &[u8]) -> Result<Key, String> {
    let key =
        RsaPublicKey::from_der(der).map_err(|e| format!("the RSA key does not parse: {e}"))?;
    Ok(Key::Rsa {
        n: key.modulus().big_endian_without_leading_zero().to_vec(),
        e: key.exponent().big_endian_without_leading_zero().to_vec(),
    })
}

/// The JWK of `key` if it fits `alg`.
fn fit(key: Key, alg: AssertionAlg) -> Result<Value, String> {
    let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
    let needs = match alg {
        AssertionAlg::RS256 | AssertionAlg::RS384 | AssertionAlg::PS256 => "an RSA key",
        AssertionAlg::ES256 => "a P-256 key",
        AssertionAlg::EdDSA => "an Ed25519 key",
    };
    let holds = match key {
        Key::Rsa { n, e } if alg.is_rsa() => {
            let bits = bit_length(strip_leading_zeros(&n));
            if !(MIN_RSA_BITS..=MAX_RSA_BITS).contains(&bits) {
                return Err(format!(
                    "alg {alg} needs an RSA key of {MIN_RSA_BITS} to {MAX_RSA_BITS} bits; this one has {bits}"
                ));
            }
            return Ok(json!({"kty": "RSA", "n": b64(&n), "e": b64(&e)}));
        }
        Key::P256 { x, y } if alg == AssertionAlg::ES256 => {
            return Ok(json!({"kty": "EC", "crv": "P-256", "x": b64(&x), "y": b64(&y)}));
        }
        Key::Ed25519 { x } if alg == AssertionAlg::EdDSA => {
            return Ok(json!({"kty": "OKP", "crv": "Ed25519", "x": b64(&x)}));
        }
        Key::Rsa { .. } => "an RSA key",
        Key::P256 { .. } => "a P-256 key",
        Key::Ed25519 { .. } => "an Ed25519 key",
        Key::Other(holds) => holds,
    };
    Err(format!("alg {alg} needs {needs}; this PEM holds {holds}"))
}

#[cfg(test)]
#[path = "credential_tests.rs"]
mod tests;
