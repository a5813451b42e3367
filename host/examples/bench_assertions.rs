//! Signed client assertions and DPoP proofs for `make bench` (bench/run.py): each may be
//! used once, so wrk cannot repeat one request; it walks a file of them instead.
//!
//!   bench_assertions keygen DIR
//!       An ES256 key pair: DIR/key.pk8 (PKCS#8, the client's private key) and
//!       DIR/public.pem (SPKI, what is uploaded as the client's credential).
//!   bench_assertions sign DIR CLIENT_ID ENDPOINT AUDIENCE COUNT OUT [--dpop]
//!       COUNT token requests into OUT, one per line: the form body (a fresh ES256 client
//!       assertion for CLIENT_ID, audience ENDPOINT), then with --dpop a tab and a DPoP proof
//!       (htm POST, htu ENDPOINT) signed with the same key. iat is now: sign just before use.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use base64::Engine as _;
use serde_json::json;

/// SubjectPublicKeyInfo DER up to the P-256 point: id-ecPublicKey, prime256v1, BIT STRING.
const P256_SPKI_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jws(key: &EcdsaKeyPair, header: &serde_json::Value, claims: &serde_json::Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = key.sign(&SystemRandom::new(), input.as_bytes()).unwrap();
    format!("{input}.{}", b64(signature.as_ref()))
}

fn keygen(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &SystemRandom::new())
            .unwrap();
    std::fs::write(dir.join("key.pk8"), pkcs8.as_ref()).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref()).unwrap();
    let mut spki = P256_SPKI_PREFIX.to_vec();
    spki.extend_from_slice(key.public_key().as_ref());
    let body = STANDARD.encode(&spki);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    let pem = format!(
        "-----BEGIN PUBLIC KEY-----\n{}\n-----END PUBLIC KEY-----\n",
        lines.join("\n")
    );
    std::fs::write(dir.join("public.pem"), pem).unwrap();
}

fn sign(args: &[String]) {
    let [dir, client_id, endpoint, audience, count, out] = &args[..6] else {
        panic!("sign DIR CLIENT_ID ENDPOINT AUDIENCE COUNT OUT [--dpop]");
    };
    let dpop = args.get(6).is_some_and(|a| a == "--dpop");
    let count: usize = count.parse().unwrap();
    let pkcs8 = std::fs::read(Path::new(dir).join("key.pk8")).unwrap();
    let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    let point = key.public_key().as_ref();
    let jwk = json!({"kty": "EC", "crv": "P-256", "x": b64(&point[1..33]), "y": b64(&point[33..])});
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let run = format!(
        "{:x}",
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let assertion_header = json!({"alg": "ES256", "typ": "JWT"});
    let proof_header = json!({"typ": "dpop+jwt", "alg": "ES256", "jwk": jwk});
    let form = |s: &str| {
        percent_encoding::utf8_percent_encode(s, percent_encoding::NON_ALPHANUMERIC).to_string()
    };
    let mut file = std::io::BufWriter::new(std::fs::File::create(out).unwrap());
    for i in 0..count {
        let claims = json!({
            "iss": client_id, "sub": client_id, "aud": endpoint,
            "iat": now, "exp": now + 300, "jti": format!("{run}-{i}"),
        });
        let assertion = jws(&key, &assertion_header, &claims);
        write!(
            file,
            "grant_type=client_credentials&audience={}&client_assertion_type={}&client_assertion={assertion}",
            form(audience),
            form("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
        )
        .unwrap();
        if dpop {
            let claims =
                json!({"jti": format!("{run}-p{i}"), "htm": "POST", "htu": endpoint, "iat": now});
            write!(file, "\t{}", jws(&key, &proof_header, &claims)).unwrap();
        }
        writeln!(file).unwrap();
    }
    file.flush().unwrap();
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("keygen") if args.len() == 2 => keygen(Path::new(&args[1])),
        Some("sign") if args.len() >= 7 => sign(&args[1..]),
        _ => {
            eprintln!(
                "usage: bench_assertions keygen DIR | sign DIR CLIENT_ID ENDPOINT AUDIENCE COUNT OUT [--dpop]"
            );
            std::process::exit(2);
        }
    }
}
