//! Keys and tokens made by the releases on ring 0.17 and rsa 0.9 (before aws-lc-rs): a key
//! store written then must load, publish the same JWKs, verify the tokens it signed, and
//! sign the same bytes where the algorithm is deterministic (RS256, EdDSA).
//!
//! `testdata/ring-0.17.json` was made by `generate` and `KeySet::sign` of that release.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde_json::Value;

use super::tests::{AUD, ISS, T0};
use super::{jwk, KeySet};
use crate::store::{KeyState, SigningAlg, SigningKey};

const FIXTURE: &str = include_str!("testdata/ring-0.17.json");

/// The fixture's keys, all current, and the token each signed.
fn fixture() -> (Value, Vec<(SigningKey, String)>) {
    let doc: Value = serde_json::from_str(FIXTURE).unwrap();
    let keys = doc["keys"].as_array().unwrap().iter().map(|entry| {
        let key = SigningKey {
            kid: entry["kid"].as_str().unwrap().to_owned(),
            alg: SigningAlg::parse(entry["alg"].as_str().unwrap()).unwrap(),
            state: KeyState::Current,
            private_der: STANDARD
                .decode(entry["private_der"].as_str().unwrap())
                .unwrap(),
            public_jwk: entry["public_jwk"].clone(),
            created_at: T0,
            retired_at: None,
        };
        (key, entry["token"].as_str().unwrap().to_owned())
    });
    (doc["claims"].clone(), keys.collect())
}

#[test]
fn keys_of_earlier_releases_load_and_publish_the_same_jwk() {
    let (_, keys) = fixture();
    let algs: Vec<SigningAlg> = keys.iter().map(|(key, _)| key.alg).collect();
    assert_eq!(algs, SigningAlg::ALL);
    for (key, _) in &keys {
        let derived = jwk::public_jwk(&key.kid, key.alg, &key.private_der).unwrap();
        assert_eq!(derived, key.public_jwk, "{:?}", key.alg);
    }
    KeySet::new(keys.into_iter().map(|(key, _)| key).collect()).unwrap();
}

#[test]
fn tokens_of_earlier_releases_verify_and_deterministic_ones_are_signed_alike() {
    let (claims, keys) = fixture();
    let set = KeySet::new(keys.iter().map(|(key, _)| key.clone()).collect()).unwrap();
    for (key, token) in &keys {
        let verified = set.verify(token, ISS, AUD).unwrap();
        assert_eq!(Value::Object(verified), claims, "{:?}", key.alg);
        // ECDSA signatures are randomized; RSASSA-PKCS1-v1_5 and Ed25519 are not.
        if key.alg != SigningAlg::ES256 {
            assert_eq!(&set.sign(key.alg, &claims).unwrap(), token, "{:?}", key.alg);
        }
    }
}
