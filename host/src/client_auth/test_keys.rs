//! Test keys made with aws-lc-rs, and JWS signed by hand with them, for the module's tests.

use std::sync::OnceLock;

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
    RSA_PKCS1_SHA384, RSA_PSS_SHA256,
};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{json, Value};

pub(crate) enum TestKey {
    Rsa(RsaKeyPair),
    Ec(EcdsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// Two RSA-2048 keys, made once per test binary (RSA generation is slow).
pub(crate) fn rsa(which: usize) -> &'static TestKey {
    static KEYS: OnceLock<[TestKey; 2]> = OnceLock::new();
    let keys = KEYS.get_or_init(|| {
        let make = || TestKey::Rsa(RsaKeyPair::generate(KeySize::Rsa2048).unwrap());
        [make(), make()]
    });
    &keys[which]
}

pub(crate) fn ec() -> TestKey {
    TestKey::Ec(EcdsaKeyPair::generate(&ECDSA_P256_SHA256_FIXED_SIGNING).unwrap())
}

pub(crate) fn ed() -> TestKey {
    TestKey::Ed(Ed25519KeyPair::generate().unwrap())
}

pub(crate) fn b64(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl TestKey {
    pub(crate) fn public_jwk(&self) -> Value {
        match self {
            TestKey::Rsa(pair) => {
                let public = pair.public_key();
                json!({
                    "kty": "RSA",
                    "n": b64(public.modulus().big_endian_without_leading_zero()),
                    "e": b64(public.exponent().big_endian_without_leading_zero()),
                })
            }
            TestKey::Ec(pair) => {
                let point = pair.public_key().as_ref();
                json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])})
            }
            TestKey::Ed(pair) => {
                json!({"kty": "OKP", "crv": "Ed25519", "x": b64(pair.public_key().as_ref())})
            }
        }
    }

    /// The public key as an SPKI `PUBLIC KEY` PEM.
    pub(crate) fn spki_pem(&self) -> String {
        let der = match self {
            TestKey::Rsa(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            TestKey::Ec(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
            TestKey::Ed(pair) => pair.public_key().as_der().unwrap().as_ref().to_vec(),
        };
        pem_rfc7468::encode_string("PUBLIC KEY", pem_rfc7468::LineEnding::LF, &der).unwrap()
    }

    /// The JWS signature of `message` with `alg`.
    pub(crate) fn sign(&self, alg: &str, message: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            TestKey::Rsa(pair) => {
                let padding = match alg {
                    "RS384" => &RSA_PKCS1_SHA384,
                    "PS256" => &RSA_PSS_SHA256,
                    _ => &RSA_PKCS1_SHA256,
                };
                let mut signature = vec![0; pair.public_modulus_len()];
                pair.sign(padding, &rng, message, &mut signature).unwrap();
                signature
            }
            TestKey::Ec(pair) => pair.sign(&rng, message).unwrap().as_ref().to_vec(),
            TestKey::Ed(pair) => pair.sign(message).as_ref().to_vec(),
        }
    }
}

/// A compact JWS of `header` and `claims` signed by `key` with the header's alg.
pub(crate) fn jws(header: &Value, claims: &Value, key: &TestKey) -> String {
    let alg = header["alg"].as_str().unwrap();
    let input = format!(
        "{}.{}",
        b64(serde_json::to_vec(header).unwrap()),
        b64(serde_json::to_vec(claims).unwrap())
    );
    let signature = key.sign(alg, input.as_bytes());
    format!("{input}.{}", b64(signature))
}

/// `claims` signed as `HS256`, HMAC-SHA256 under `secret`: the key-confusion forgery.
pub(crate) fn hs256(claims: &Value, secret: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let input = format!(
        "{}.{}",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(serde_json::to_vec(claims).unwrap())
    );
    let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, secret), input.as_bytes());
    format!("{input}.{}", b64(tag))
}
