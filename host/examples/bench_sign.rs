//! `make bench-sign`: what signing one access token costs, per algorithm.
//!
//! For ES256, RS256 and EdDSA, in the same run, the median microseconds of
//! (a) the raw signature of a ~300-byte message by the crypto library, key parsed once;
//! (b) `KeySet::sign` of a typical access-token claim set (what the token endpoint does);
//! (c) the old path: `jsonwebtoken::encode` with an `EncodingKey` made per call, which parses
//!     the private key on every token.
//! Prints a markdown table, or with `--json` one JSON object per line
//! (`{"alg":"RS256","raw_us":..,"keyset_us":..,"parse_and_sign_us":..}`) for bench/run.py.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{
    EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING, RSA_PKCS1_SHA256,
};
use jsonwebtoken::{EncodingKey, Header};
use serde_json::{json, Value};
use tokenhost::keys::{generate, KeySet};
use tokenhost::store::{KeyState, SigningAlg, SigningKey};

const WARM_UP: Duration = Duration::from_millis(300);
const MEASURE: Duration = Duration::from_millis(1500);
/// Enough samples for a median even of the slowest operation.
const MIN_SAMPLES: usize = 200;

/// Median microseconds per call of each of `ops`, warmed up, then sampled in turn (one call
/// of each per round), so that a machine slowing down or speeding up mid-run moves all alike.
fn medians_us<const N: usize>(mut ops: [&mut dyn FnMut(); N]) -> [f64; N] {
    for op in ops.iter_mut() {
        let start = Instant::now();
        while start.elapsed() < WARM_UP {
            op();
        }
    }
    let mut samples: [Vec<f64>; N] = std::array::from_fn(|_| Vec::new());
    let start = Instant::now();
    while start.elapsed() < MEASURE * N as u32 || samples[0].len() < MIN_SAMPLES {
        for (op, samples) in ops.iter_mut().zip(samples.iter_mut()) {
            let call = Instant::now();
            op();
            samples.push(call.elapsed().as_secs_f64() * 1e6);
        }
    }
    samples.map(|mut samples| {
        samples.sort_by(f64::total_cmp);
        samples[samples.len() / 2]
    })
}

/// What the token endpoint signs: the registered claims, the scope and two rule claims.
fn claims() -> Value {
    let now = 1_700_000_000;
    json!({
        "iss": "https://tokenhost.example.com/",
        "sub": "cli_4pQ2xVbN7rT0kLmZs8dEwYhC3uJf6aGi@clients",
        "aud": "https://api.example.com/",
        "iat": now,
        "exp": now + 3600,
        "jti": "Yk3vQ9sLx2TnB7cWm4RzPq",
        "client_id": "cli_4pQ2xVbN7rT0kLmZs8dEwYhC3uJf6aGi",
        "azp": "cli_4pQ2xVbN7rT0kLmZs8dEwYhC3uJf6aGi",
        "gty": "client-credentials",
        "scope": "read:orders write:orders",
        "https://example.com/tenant": "acme",
        "https://example.com/roles": ["billing", "support"],
    })
}

/// (a): the library's own signature, key parsed once.
fn raw_signer(key: &SigningKey) -> Box<dyn FnMut()> {
    let message = vec![b'm'; 300];
    let random = SystemRandom::new();
    let der = key.private_der.clone();
    match key.alg {
        SigningAlg::RS256 => {
            let pair = RsaKeyPair::from_der(&der).unwrap();
            let mut signature = vec![0; pair.public_modulus_len()];
            Box::new(move || {
                pair.sign(&RSA_PKCS1_SHA256, &random, &message, &mut signature)
                    .unwrap();
                black_box(&signature);
            })
        }
        SigningAlg::ES256 => {
            let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der).unwrap();
            Box::new(move || {
                black_box(pair.sign(&random, &message).unwrap());
            })
        }
        SigningAlg::EdDSA => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(&der).unwrap();
            Box::new(move || {
                black_box(pair.sign(&message));
            })
        }
    }
}

/// (c): how KeySet signed before, through jsonwebtoken (9 on ring, 12 on aws-lc-rs alike):
/// `encode` makes its key pair from the `EncodingKey`'s DER on every call.
fn parse_and_sign(key: &SigningKey, claims: &Value) -> String {
    let (algorithm, encoding) = match key.alg {
        SigningAlg::RS256 => (
            jsonwebtoken::Algorithm::RS256,
            EncodingKey::from_rsa_der(&key.private_der),
        ),
        SigningAlg::ES256 => (
            jsonwebtoken::Algorithm::ES256,
            EncodingKey::from_ec_der(&key.private_der),
        ),
        SigningAlg::EdDSA => (
            jsonwebtoken::Algorithm::EdDSA,
            EncodingKey::from_ed_der(&key.private_der),
        ),
    };
    let header = Header {
        typ: Some("at+jwt".to_owned()),
        kid: Some(key.kid.clone()),
        ..Header::new(algorithm)
    };
    jsonwebtoken::encode(&header, claims, &encoding).unwrap()
}

struct Row {
    alg: SigningAlg,
    raw_us: f64,
    keyset_us: f64,
    parse_and_sign_us: f64,
}

fn main() {
    let as_json = std::env::args().any(|a| a == "--json");
    let algs = [SigningAlg::ES256, SigningAlg::RS256, SigningAlg::EdDSA];
    let keys: Vec<SigningKey> = algs
        .iter()
        .map(|alg| generate(*alg, KeyState::Current, 1_700_000_000).unwrap())
        .collect();
    let set = KeySet::new(keys.clone()).unwrap();
    let claims = claims();

    let rows: Vec<Row> = keys
        .iter()
        .map(|key| {
            // Both paths must make tokens a verifier accepts before they are timed.
            let issuer = "https://tokenhost.example.com/";
            let audience = "https://api.example.com/";
            let mut expiring = claims.clone();
            expiring["exp"] = json!(i64::MAX / 2);
            let token = set.sign(key.alg, &expiring).unwrap();
            set.verify(&token, issuer, audience).unwrap();
            let token = parse_and_sign(key, &expiring);
            set.verify(&token, issuer, audience).unwrap();

            let [raw_us, keyset_us, parse_and_sign_us] = medians_us([
                &mut raw_signer(key),
                &mut || {
                    black_box(set.sign(key.alg, &claims).unwrap());
                },
                &mut || {
                    black_box(parse_and_sign(key, &claims));
                },
            ]);
            Row {
                alg: key.alg,
                raw_us,
                keyset_us,
                parse_and_sign_us,
            }
        })
        .collect();

    if as_json {
        for row in &rows {
            println!(
                "{}",
                json!({
                    "alg": row.alg.as_str(),
                    "raw_us": round(row.raw_us),
                    "keyset_us": round(row.keyset_us),
                    "parse_and_sign_us": round(row.parse_and_sign_us),
                })
            );
        }
        return;
    }
    let token_len = set.sign(SigningAlg::ES256, &claims).unwrap().len();
    println!("| alg | raw signature µs | `KeySet::sign` µs | parse + sign µs (`jsonwebtoken::encode`) | parse + sign / `KeySet::sign` |");
    println!("|---|---:|---:|---:|---:|");
    for row in &rows {
        println!(
            "| {} | {:.1} | {:.1} | {:.1} | {:.2} |",
            row.alg.as_str(),
            row.raw_us,
            row.keyset_us,
            row.parse_and_sign_us,
            row.parse_and_sign_us / row.keyset_us
        );
    }
    println!();
    println!(
        "Median per call, {} ms warm-up, the three measured in turn; raw: a 300-byte message; \
         the claim set: {} bytes of JSON (an ES256 token of {token_len} characters).",
        WARM_UP.as_millis(),
        claims.to_string().len()
    );
}

/// Two decimals are plenty for microseconds.
fn round(us: f64) -> f64 {
    (us * 100.0).round() / 100.0
}
