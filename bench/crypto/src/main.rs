//! ring against aws-lc-rs on the operations tokenhost does, with keys parsed once: JWS
//! signatures (RS256, ES256, EdDSA) and their verification, AES-256-GCM on a rule secret and
//! on a compiled rule artifact, HMAC-SHA256 on a client secret.
//!
//! Prints a markdown table: the median microseconds per operation of each library, and the
//! ratio ring / aws-lc-rs (above 1: aws-lc-rs is faster). Both libraries are measured in
//! alternating rounds of the same run, so a busy machine slows both alike.
//!
//! `cargo run --release` (or `make bench-crypto` at the repository root); `--quick` for a
//! shorter run.

use std::hint::black_box;
use std::time::{Duration, Instant};

/// A JWS signing input of about a typical access token's size.
const MESSAGE_LEN: usize = 300;
/// A rule secret's value, sealed by `SecretBox`.
const SECRET_LEN: usize = 200;
/// A compiled rule artifact (a serialized component is ~4.3 MB).
const ARTIFACT_LEN: usize = 4 << 20;
/// A client secret as `credentials::generate_secret` makes it is 64 characters; a ~40-byte
/// one is what a client might choose.
const CLIENT_SECRET: &[u8] = b"Xq3-ZcT_8rL0pVw2yNb6Hs1KmJd9FgAeUo4iRt7Q";

/// One operation of one library: runs it `n` times.
type Op = Box<dyn FnMut(u64)>;

/// Key material made once, parsed by each library from the same bytes.
struct Keys {
    rsa_pkcs8: Vec<u8>,
    p256_pkcs8: Vec<u8>,
    ed25519_pkcs8: Vec<u8>,
    aes_key: [u8; 32],
    hmac_key: [u8; 32],
}

impl Keys {
    fn new() -> Keys {
        use aws_lc_rs::encoding::AsDer;
        // ring cannot generate RSA keys; aws-lc-rs makes it, ring parses the same PKCS#8.
        let rsa = aws_lc_rs::rsa::KeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048)
            .expect("RSA-2048 key");
        let rsa_pkcs8 = rsa.as_der().expect("PKCS#8").as_ref().to_vec();
        // P-256 and Ed25519 keys as the server makes them today (ring).
        let rng = ring::rand::SystemRandom::new();
        let p256_pkcs8 = ring::signature::EcdsaKeyPair::generate_pkcs8(
            &ring::signature::ECDSA_P256_SHA256_FIXED_SIGNING,
            &rng,
        )
        .expect("P-256 key")
        .as_ref()
        .to_vec();
        let ed25519_pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng)
            .expect("Ed25519 key")
            .as_ref()
            .to_vec();
        Keys {
            rsa_pkcs8,
            p256_pkcs8,
            ed25519_pkcs8,
            aes_key: [0x42; 32],
            hmac_key: [0x17; 32],
        }
    }
}

/// The same operations for each library: their APIs are the same but for the paths (and
/// the `rng` argument ring's ECDSA parser takes), so one macro writes both.
macro_rules! suite {
    ($name:ident, $lib:ident, $ecdsa_from_pkcs8:expr) => {
        mod $name {
            use super::*;
            use $lib::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
            use $lib::hmac;
            use $lib::rand::SystemRandom;
            use $lib::signature::{
                self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair, UnparsedPublicKey,
            };

            pub fn ops(keys: &Keys) -> Vec<(&'static str, Op)> {
                let message = vec![b'm'; MESSAGE_LEN];
                let rng = SystemRandom::new();
                let mut ops: Vec<(&'static str, Op)> = Vec::new();

                let rsa = RsaKeyPair::from_pkcs8(&keys.rsa_pkcs8).expect("RSA key");
                let rsa_public = rsa.public_key().as_ref().to_vec();
                let mut rsa_sig = vec![0u8; 2048 / 8];
                rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut rsa_sig)
                    .expect("RSA signature");
                {
                    let (message, rng) = (message.clone(), rng.clone());
                    let mut out = rsa_sig.clone();
                    ops.push((
                        "RS256 sign (RSA-2048, PKCS#1 v1.5)",
                        Box::new(move |n| {
                            for _ in 0..n {
                                rsa.sign(&signature::RSA_PKCS1_SHA256, &rng, &message, &mut out)
                                    .expect("sign");
                                black_box(&out);
                            }
                        }),
                    ));
                }
                ops.push(verify_op(
                    "RS256 verify",
                    &signature::RSA_PKCS1_2048_8192_SHA256,
                    rsa_public,
                    &message,
                    rsa_sig,
                ));

                let alg = &signature::ECDSA_P256_SHA256_FIXED_SIGNING;
                let ec: EcdsaKeyPair = $ecdsa_from_pkcs8(alg, &keys.p256_pkcs8, &rng);
                let ec_public = ec.public_key().as_ref().to_vec();
                let ec_sig = ec.sign(&rng, &message).expect("ECDSA signature");
                {
                    let (message, rng) = (message.clone(), rng.clone());
                    ops.push((
                        "ES256 sign (P-256, fixed)",
                        Box::new(move |n| {
                            for _ in 0..n {
                                black_box(ec.sign(&rng, &message).expect("sign"));
                            }
                        }),
                    ));
                }
                ops.push(verify_op(
                    "ES256 verify",
                    &signature::ECDSA_P256_SHA256_FIXED,
                    ec_public,
                    &message,
                    ec_sig.as_ref().to_vec(),
                ));

                let ed = Ed25519KeyPair::from_pkcs8(&keys.ed25519_pkcs8).expect("Ed25519 key");
                let ed_public = ed.public_key().as_ref().to_vec();
                let ed_sig = ed.sign(&message);
                {
                    let message = message.clone();
                    ops.push((
                        "EdDSA sign (Ed25519)",
                        Box::new(move |n| {
                            for _ in 0..n {
                                black_box(ed.sign(&message));
                            }
                        }),
                    ));
                }
                ops.push(verify_op(
                    "EdDSA verify",
                    &signature::ED25519,
                    ed_public,
                    &message,
                    ed_sig.as_ref().to_vec(),
                ));

                for (len, seal, open) in [
                    (
                        SECRET_LEN,
                        "AES-256-GCM seal 200 B",
                        "AES-256-GCM open 200 B",
                    ),
                    (
                        ARTIFACT_LEN,
                        "AES-256-GCM seal 4 MiB",
                        "AES-256-GCM open 4 MiB",
                    ),
                ] {
                    ops.push((seal, seal_op(&keys.aes_key, len)));
                    ops.push((open, open_op(&keys.aes_key, len)));
                }

                let key = hmac::Key::new(hmac::HMAC_SHA256, &keys.hmac_key);
                let tag = hmac::sign(&key, CLIENT_SECRET).as_ref().to_vec();
                {
                    let key = key.clone();
                    ops.push((
                        "HMAC-SHA256 sign (40 B)",
                        Box::new(move |n| {
                            for _ in 0..n {
                                black_box(hmac::sign(&key, black_box(CLIENT_SECRET)));
                            }
                        }),
                    ));
                }
                ops.push((
                    "HMAC-SHA256 verify (40 B)",
                    Box::new(move |n| {
                        for _ in 0..n {
                            hmac::verify(&key, black_box(CLIENT_SECRET), &tag).expect("verify");
                        }
                    }),
                ));
                ops
            }

            /// What jsonwebtoken does to verify: the public key as bytes, parsed per call.
            fn verify_op(
                name: &'static str,
                alg: &'static dyn signature::VerificationAlgorithm,
                public: Vec<u8>,
                message: &[u8],
                sig: Vec<u8>,
            ) -> (&'static str, Op) {
                let message = message.to_vec();
                let key = UnparsedPublicKey::new(alg, public);
                key.verify(&message, &sig).expect("the signature verifies");
                (
                    name,
                    Box::new(move |n| {
                        for _ in 0..n {
                            key.verify(black_box(&message), &sig).expect("verify");
                        }
                    }),
                )
            }

            fn aes_key(key: &[u8; 32]) -> LessSafeKey {
                LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("AES-256 key"))
            }

            /// As `SecretBox::seal` does: the plaintext copied into a buffer, sealed in it.
            fn seal_op(key: &[u8; 32], len: usize) -> Op {
                let key = aes_key(key);
                let plaintext = vec![0x5a; len];
                let mut buffer = Vec::with_capacity(len + 16);
                Box::new(move |n| {
                    for _ in 0..n {
                        buffer.clear();
                        buffer.extend_from_slice(&plaintext);
                        key.seal_in_place_append_tag(
                            Nonce::assume_unique_for_key([7; 12]),
                            Aad::from(b"tokenhost bench"),
                            &mut buffer,
                        )
                        .expect("seal");
                        black_box(&buffer);
                    }
                })
            }

            /// As `SecretBox::open` does: the sealed bytes copied into a buffer, opened in it.
            fn open_op(key: &[u8; 32], len: usize) -> Op {
                let key = aes_key(key);
                let mut sealed = vec![0x5a; len];
                key.seal_in_place_append_tag(
                    Nonce::assume_unique_for_key([7; 12]),
                    Aad::from(b"tokenhost bench"),
                    &mut sealed,
                )
                .expect("seal");
                let mut buffer = Vec::with_capacity(sealed.len());
                Box::new(move |n| {
                    for _ in 0..n {
                        buffer.clear();
                        buffer.extend_from_slice(&sealed);
                        let plain = key
                            .open_in_place(
                                Nonce::assume_unique_for_key([7; 12]),
                                Aad::from(b"tokenhost bench"),
                                &mut buffer,
                            )
                            .expect("open");
                        black_box(plain);
                    }
                })
            }
        }
    };
}

suite!(with_ring, ring, |alg, pkcs8: &[u8], rng: &SystemRandom| {
    EcdsaKeyPair::from_pkcs8(alg, pkcs8, rng).expect("P-256 key")
});
suite!(
    with_aws_lc,
    aws_lc_rs,
    |alg, pkcs8: &[u8], _rng: &SystemRandom| EcdsaKeyPair::from_pkcs8(alg, pkcs8)
        .expect("P-256 key")
);

/// How long to measure each operation of each library, and to warm it up first.
struct Budget {
    warm_up: Duration,
    measure: Duration,
}

/// Per-call times of one operation: `batch` calls per sample, so that samples of the fastest
/// operations are long enough for the clock.
struct Samples {
    batch: u64,
    per_call_us: Vec<f64>,
}

impl Samples {
    fn new(op: &mut Op, warm_up: Duration) -> Samples {
        let start = Instant::now();
        let mut calls = 0u64;
        while start.elapsed() < warm_up {
            op(1);
            calls += 1;
        }
        let per_call = warm_up.as_secs_f64() / calls as f64;
        // A sample of at least ~100 us.
        let batch = ((100e-6 / per_call).ceil() as u64).max(1);
        Samples {
            batch,
            per_call_us: Vec::new(),
        }
    }

    fn take(&mut self, op: &mut Op) {
        let start = Instant::now();
        op(self.batch);
        let us = start.elapsed().as_secs_f64() * 1e6 / self.batch as f64;
        self.per_call_us.push(us);
    }

    fn median(&mut self) -> f64 {
        self.per_call_us.sort_by(f64::total_cmp);
        let n = self.per_call_us.len();
        if n % 2 == 1 {
            self.per_call_us[n / 2]
        } else {
            (self.per_call_us[n / 2 - 1] + self.per_call_us[n / 2]) / 2.0
        }
    }

    fn calls(&self) -> u64 {
        self.batch * self.per_call_us.len() as u64
    }
}

/// Medians of `a` and `b`, measured in alternating samples.
fn compare(a: &mut Op, b: &mut Op, budget: &Budget) -> (f64, f64, u64) {
    let mut sa = Samples::new(a, budget.warm_up);
    let mut sb = Samples::new(b, budget.warm_up);
    let start = Instant::now();
    while start.elapsed() < budget.measure * 2 || sa.per_call_us.len() < 21 {
        sa.take(a);
        sb.take(b);
    }
    let calls = sa.calls().min(sb.calls());
    (sa.median(), sb.median(), calls)
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let budget = if quick {
        Budget {
            warm_up: Duration::from_millis(50),
            measure: Duration::from_millis(150),
        }
    } else {
        Budget {
            warm_up: Duration::from_millis(300),
            measure: Duration::from_millis(1500),
        }
    };
    let keys = Keys::new();
    let ring_ops = with_ring::ops(&keys);
    let aws_ops = with_aws_lc::ops(&keys);

    println!("| operation | ring µs | aws-lc-rs µs | ring / aws-lc-rs | calls each |");
    println!("|---|---:|---:|---:|---:|");
    for ((name, mut ring_op), (aws_name, mut aws_op)) in ring_ops.into_iter().zip(aws_ops) {
        assert_eq!(name, aws_name);
        let (ring_us, aws_us, calls) = compare(&mut ring_op, &mut aws_op, &budget);
        println!(
            "| {name} | {} | {} | {:.2} | {calls} |",
            fmt_us(ring_us),
            fmt_us(aws_us),
            ring_us / aws_us
        );
    }
    println!();
    println!(
        "Median per call after {} ms of warm-up, samples alternating between the libraries; \
         verify parses the public key per call (as jsonwebtoken does); seal/open include \
         copying the input into a buffer (as SecretBox does).",
        budget.warm_up.as_millis()
    );
}

fn fmt_us(us: f64) -> String {
    if us >= 100.0 {
        format!("{us:.0}")
    } else if us >= 1.0 {
        format!("{us:.1}")
    } else {
        format!("{us:.3}")
    }
}
