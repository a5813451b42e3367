//! DPoP proofs made as RFC 9449 §4.1 shows them, and each check that refuses one.

use serde_json::{json, Value};

use super::*;
use crate::client_auth::test_keys::{b64, ec, ed, jws, rsa, TestKey};

const HTU: &str = "https://server.example.com/token";
const NOW: i64 = 1_700_000_000;

fn header(alg: &str, key: &TestKey) -> Value {
    json!({"typ": "dpop+jwt", "alg": alg, "jwk": key.public_jwk()})
}

fn claims() -> Value {
    json!({"jti": "-BwC3ESc6acc2lTc", "htm": "POST", "htu": HTU, "iat": NOW})
}

fn check(proof: &str) -> Result<DpopProof, String> {
    verify(proof, "POST", HTU, NOW)
}

/// The error for a proof by a fresh ES256 key with `claims`.
fn refused(claims: &Value) -> String {
    let key = ec();
    check(&jws(&header("ES256", &key), claims, &key)).unwrap_err()
}

#[test]
fn valid_proofs_of_every_alg() {
    let (ec, ed) = (ec(), ed());
    for (alg, key) in [
        ("ES256", &ec),
        ("EdDSA", &ed),
        ("RS256", rsa(0)),
        ("PS256", rsa(0)),
    ] {
        let proof =
            check(&jws(&header(alg, key), &claims(), key)).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(proof.jkt, thumbprint(&key.public_jwk()).unwrap(), "{alg}");
        assert_eq!(proof.jti, "-BwC3ESc6acc2lTc");
        assert_eq!(
            proof.replay_until,
            NOW + PROOF_MAX_AGE_SECONDS + PROOF_LEEWAY_SECONDS
        );
    }
}

#[test]
fn typ_and_htm_must_match() {
    let key = ec();
    for typ in [json!("JWT"), json!("DPOP+JWT"), Value::Null] {
        let mut header = header("ES256", &key);
        header["typ"] = typ;
        let err = check(&jws(&header, &claims(), &key)).unwrap_err();
        assert_eq!(err, "DPoP proof typ must be dpop+jwt");
    }
    let mut get = claims();
    get["htm"] = json!("GET");
    assert_eq!(refused(&get), "DPoP proof htm must be POST");
    get["htm"] = json!("post");
    assert_eq!(refused(&get), "DPoP proof htm must be POST");
}

#[test]
fn htu_is_compared_without_query_fragment_or_case() {
    let key = ed();
    let with_htu = |htu: &str| {
        let mut claims = claims();
        claims["htu"] = json!(htu);
        check(&jws(&header("EdDSA", &key), &claims, &key))
    };
    for same in [
        "https://server.example.com/token?client=1",
        "https://server.example.com/token#frag",
        "HTTPS://Server.EXAMPLE.com/token",
        "https://server.example.com:443/token",
    ] {
        assert!(with_htu(same).is_ok(), "{same}");
    }
    for other in [
        "https://server.example.com/token2",
        "https://server.example.com/TOKEN",
        "http://server.example.com/token",
        "https://server.example.com:8443/token",
        "https://other.example.com/token",
        "/token",
    ] {
        let err = with_htu(other).unwrap_err();
        assert_eq!(
            err, "DPoP proof htu does not match the token endpoint",
            "{other}"
        );
    }
}

#[test]
fn iat_must_be_recent() {
    let at = |iat: Value| {
        let mut claims = claims();
        claims["iat"] = iat;
        claims
    };
    let key = ec();
    let ok = |claims: &Value| check(&jws(&header("ES256", &key), claims, &key));
    assert_eq!(
        refused(&at(json!(NOW - PROOF_MAX_AGE_SECONDS - 1))),
        "DPoP proof is too old"
    );
    assert!(ok(&at(json!(NOW - PROOF_MAX_AGE_SECONDS))).is_ok());
    assert_eq!(
        refused(&at(json!(NOW + PROOF_LEEWAY_SECONDS + 1))),
        "DPoP proof iat is in the future"
    );
    assert!(ok(&at(json!(NOW + PROOF_LEEWAY_SECONDS))).is_ok());
    assert!(refused(&at(json!("now"))).contains("must be a number"));
    let mut no_iat = claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    assert_eq!(refused(&no_iat), "DPoP proof has no iat");
    let mut no_jti = claims();
    no_jti.as_object_mut().unwrap().remove("jti");
    assert_eq!(refused(&no_jti), "DPoP proof has no jti");
}

#[test]
fn the_jwk_must_be_a_public_key_of_the_alg() {
    let key = ec();
    let with_jwk = |alg: &str, jwk: Value| {
        let mut header = header(alg, &key);
        header["jwk"] = jwk;
        check(&jws(&header, &claims(), &key)).unwrap_err()
    };
    let mut private = key.public_jwk();
    private["d"] = json!(b64([7u8; 32]));
    assert_eq!(
        with_jwk("ES256", private),
        "DPoP proof jwk must be a public key"
    );
    let oct = json!({"kty": "oct", "k": b64(b"secret")});
    assert_eq!(
        with_jwk("ES256", oct),
        "DPoP proof jwk must be a public key"
    );
    assert!(with_jwk("ES256", rsa(0).public_jwk()).contains("kty EC"));
    assert!(with_jwk("ES256", json!("jwk")).contains("not a JSON object"));
    // RSA beyond 4096 bits is refused before it is parsed.
    let huge = json!({"kty": "RSA", "n": b64([0xffu8; 513]), "e": "AQAB"});
    assert!(with_jwk("RS256", huge).contains("RSA key of 4104 bits"));
    let mut header = header("ES256", &key);
    header.as_object_mut().unwrap().remove("jwk");
    assert_eq!(
        check(&jws(&header, &claims(), &key)).unwrap_err(),
        "DPoP proof header has no jwk"
    );
}

#[test]
fn symmetric_and_unlisted_algs_are_refused() {
    let key = ec();
    let body = b64(serde_json::to_vec(&claims()).unwrap());
    for alg in ["HS256", "none", "ES384", "RS384"] {
        let mut header = header(alg, &key);
        header["alg"] = json!(alg);
        let token = format!(
            "{}.{body}.{}",
            b64(serde_json::to_vec(&header).unwrap()),
            b64("sig")
        );
        let err = check(&token).unwrap_err();
        assert!(
            err.starts_with(&format!("DPoP proof alg {alg} is not accepted")),
            "{err}"
        );
    }
}

#[test]
fn a_proof_signed_by_another_key_than_its_jwk_fails() {
    let (claimed, signer) = (ec(), ec());
    let proof = jws(&header("ES256", &claimed), &claims(), &signer);
    assert_eq!(
        check(&proof).unwrap_err(),
        "DPoP proof signature does not verify with its jwk"
    );
    let mut big = claims();
    big["pad"] = json!("x".repeat(MAX_PROOF_BYTES));
    assert!(refused(&big).contains("longer than 8192 bytes"));
}
