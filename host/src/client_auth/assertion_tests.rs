//! Client assertions signed with real keys, and every way one must fail.

use serde_json::{json, Value};

use super::*;
use crate::client_auth::test_keys::{b64, ec, ed, hs256, jws, rsa, TestKey};
use crate::client_auth::thumbprint;

const CLIENT: &str = "client-1";
const ISSUER: &str = "https://tokenhost.test/";
const TOKEN_URL: &str = "https://tokenhost.test/oauth/token";
const NOW: i64 = 1_700_000_000;

fn claims() -> Value {
    json!({
        "iss": CLIENT, "sub": CLIENT, "aud": TOKEN_URL,
        "exp": NOW + 60, "iat": NOW, "jti": "jti-1",
    })
}

/// A credential as the catalog holds it.
struct Cred {
    id: String,
    kid: String,
    alg: AssertionAlg,
    key: VerifyingKey,
}

fn cred(id: &str, key: &TestKey, alg: AssertionAlg) -> Cred {
    let jwk = key.public_jwk();
    Cred {
        id: id.to_owned(),
        kid: thumbprint(&jwk).unwrap(),
        alg,
        key: VerifyingKey::from_jwk(&jwk, alg).unwrap(),
    }
}

fn check(token: &str, creds: &[Cred]) -> Result<VerifiedAssertion, String> {
    let keys: Vec<AssertionKey<'_>> = creds
        .iter()
        .map(|c| AssertionKey {
            credential_id: &c.id,
            kid: &c.kid,
            alg: c.alg,
            key: &c.key,
        })
        .collect();
    let expect = Expectations {
        client_id: CLIENT,
        audiences: &[ISSUER, TOKEN_URL],
        now: NOW,
    };
    verify(token, &keys, &expect)
}

fn signed(key: &TestKey, alg: AssertionAlg, kid: Option<&str>, claims: &Value) -> String {
    let mut header = json!({"alg": alg.as_str(), "typ": "JWT"});
    if let Some(kid) = kid {
        header["kid"] = json!(kid);
    }
    jws(&header, claims, key)
}

/// The error for `claims` signed by a fresh ES256 credential.
fn refused(claims: &Value) -> String {
    let key = ec();
    let creds = [cred("c1", &key, AssertionAlg::ES256)];
    check(&signed(&key, AssertionAlg::ES256, None, claims), &creds).unwrap_err()
}

#[test]
fn every_alg_verifies() {
    let (ec, ed) = (ec(), ed());
    let cases: [(&TestKey, AssertionAlg); 5] = [
        (rsa(0), AssertionAlg::RS256),
        (rsa(0), AssertionAlg::RS384),
        (rsa(0), AssertionAlg::PS256),
        (&ec, AssertionAlg::ES256),
        (&ed, AssertionAlg::EdDSA),
    ];
    for (key, alg) in cases {
        let creds = [cred("cred-a", key, alg)];
        let token = signed(key, alg, Some(&creds[0].kid), &claims());
        let verified = check(&token, &creds).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(
            verified,
            VerifiedAssertion {
                credential_id: "cred-a".to_owned(),
                jti: "jti-1".to_owned(),
                replay_until: NOW + 60 + LEEWAY_SECONDS,
            }
        );
        // The same key registered for another RSA alg does not verify this one.
        if alg == AssertionAlg::PS256 {
            let other = [cred("cred-b", key, AssertionAlg::RS256)];
            assert!(check(&signed(key, alg, None, &claims()), &other).is_err());
        }
    }
}

#[test]
fn kid_selects_the_one_credential_to_try() {
    let (a, b) = (ec(), ec());
    let creds = [
        cred("a", &a, AssertionAlg::ES256),
        cred("b", &b, AssertionAlg::ES256),
        cred("r", rsa(0), AssertionAlg::RS256),
    ];
    let by_b = |kid: Option<&str>| signed(&b, AssertionAlg::ES256, kid, &claims());
    assert_eq!(
        check(&by_b(Some(&creds[1].kid)), &creds)
            .unwrap()
            .credential_id,
        "b"
    );
    // Without a kid every ES256 credential is tried.
    assert_eq!(check(&by_b(None), &creds).unwrap().credential_id, "b");
    // B's signature under A's kid: only A is tried, so it fails though B would verify it.
    let err = check(&by_b(Some(&creds[0].kid)), &creds).unwrap_err();
    assert_eq!(
        err,
        "no credential of this client verifies the client assertion"
    );
    let err = check(&by_b(Some("who-knows")), &creds).unwrap_err();
    assert!(
        err.contains("\"who-knows\"") && err.contains("no credential"),
        "{err}"
    );
    let err = check(&by_b(Some(&creds[2].kid)), &creds).unwrap_err();
    assert!(err.contains("for RS256"), "{err}");
}

#[test]
fn lifetimes_are_bounded() {
    let at = |name: &str, value: Value| {
        let mut claims = claims();
        claims[name] = value;
        claims
    };
    let key = ec();
    let creds = [cred("c1", &key, AssertionAlg::ES256)];
    let ok = |claims: &Value| check(&signed(&key, AssertionAlg::ES256, None, claims), &creds);
    assert_eq!(
        refused(&at("exp", json!(NOW - LEEWAY_SECONDS))),
        "client assertion expired"
    );
    assert!(ok(&at("exp", json!(NOW - LEEWAY_SECONDS + 1))).is_ok());
    // With an iat: exp up to the hour stock clients use, accepted its first 5 minutes.
    let far = NOW + MAX_EXP_SECONDS + LEEWAY_SECONDS;
    assert!(refused(&at("exp", json!(far + 1))).contains("more than 3600 seconds"));
    assert_eq!(
        ok(&at("exp", json!(far))).unwrap().replay_until,
        NOW + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS
    );
    let old = NOW - MAX_LIFETIME_SECONDS - LEEWAY_SECONDS;
    assert!(refused(&at("iat", json!(old - 1))).contains("too old"));
    assert!(ok(&at("iat", json!(old))).is_ok());
    // Without one: exp at most 5 minutes away.
    let mut no_iat = claims();
    no_iat.as_object_mut().unwrap().remove("iat");
    no_iat["exp"] = json!(NOW + MAX_LIFETIME_SECONDS + LEEWAY_SECONDS + 1);
    assert!(refused(&no_iat).contains("more than 300 seconds"));
    no_iat["exp"] = json!(NOW + 200);
    assert_eq!(
        ok(&no_iat).unwrap().replay_until,
        NOW + 200 + LEEWAY_SECONDS
    );
    assert!(refused(&at("exp", json!("tomorrow"))).contains("exp must be a number"));
    let mut no_exp = claims();
    no_exp.as_object_mut().unwrap().remove("exp");
    assert_eq!(refused(&no_exp), "client assertion has no exp");
    assert!(refused(&at("iat", json!(NOW + LEEWAY_SECONDS + 1))).contains("iat is in the future"));
    assert!(ok(&at("iat", json!(NOW + LEEWAY_SECONDS))).is_ok());
    assert!(refused(&at("nbf", json!(NOW + LEEWAY_SECONDS + 1))).contains("nbf"));
    assert!(ok(&at("nbf", json!(NOW - 100))).is_ok());
}

#[test]
fn issuer_subject_and_audience_must_be_ours() {
    let with = |name: &str, value: Value| {
        let mut claims = claims();
        claims[name] = value;
        claims
    };
    let parties = "client assertion iss and sub must both be the client_id";
    assert_eq!(refused(&with("iss", json!("client-2"))), parties);
    assert_eq!(refused(&with("sub", json!("client-2"))), parties);
    let aud = "client assertion aud must be the issuer or the token endpoint URL";
    assert_eq!(refused(&with("aud", json!("https://elsewhere.test/"))), aud);
    assert_eq!(
        refused(&with("aud", json!(["https://elsewhere.test/"]))),
        aud
    );
    let mut no_aud = claims();
    no_aud.as_object_mut().unwrap().remove("aud");
    assert_eq!(refused(&no_aud), aud);
    let many: Vec<String> = (0..=MAX_AUDIENCES)
        .map(|i| format!("https://{i}.test/"))
        .collect();
    assert!(refused(&with("aud", json!(many))).contains("more than 16 aud"));

    let key = ed();
    let creds = [cred("c1", &key, AssertionAlg::EdDSA)];
    let listed = with("aud", json!(["https://elsewhere.test/", ISSUER]));
    assert!(check(&signed(&key, AssertionAlg::EdDSA, None, &listed), &creds).is_ok());
}

#[test]
fn jti_is_required() {
    let mut claims = claims();
    claims.as_object_mut().unwrap().remove("jti");
    assert_eq!(refused(&claims), "client assertion has no jti");
    claims["jti"] = json!("");
    assert!(refused(&claims).contains("jti must be 1 to 256 bytes"));
    claims["jti"] = json!("j".repeat(257));
    assert!(refused(&claims).contains("jti must be 1 to 256 bytes"));
}

#[test]
fn unsigned_and_hmac_assertions_are_refused() {
    let key = ec();
    let creds = [cred("c1", &key, AssertionAlg::ES256)];
    let body = b64(serde_json::to_vec(&claims()).unwrap());
    let none = format!("eyJhbGciOiJub25lIn0.{body}.");
    assert_eq!(
        check(&none, &creds).unwrap_err(),
        "client assertion is signed with alg none, which is not accepted"
    );
    // Key confusion: the public key's PEM, or its bytes, used as an HMAC secret.
    let pem = key.spki_pem();
    let x = key.public_jwk()["x"].as_str().unwrap().to_owned();
    for secret in [pem.as_bytes(), x.as_bytes()] {
        let err = check(&hs256(&claims(), secret), &creds).unwrap_err();
        assert_eq!(
            err,
            "client assertion is signed with alg HS256, which is not accepted"
        );
    }
}

#[test]
fn foreign_or_tampered_signatures_fail() {
    let (ours, theirs) = (ec(), ec());
    let creds = [cred("c1", &ours, AssertionAlg::ES256)];
    let stranger = signed(&theirs, AssertionAlg::ES256, None, &claims());
    let err = check(&stranger, &creds).unwrap_err();
    assert_eq!(
        err,
        "no credential of this client verifies the client assertion"
    );
    assert!(!err.contains(&stranger[..20]));

    let genuine = signed(&ours, AssertionAlg::ES256, None, &claims());
    let parts: Vec<&str> = genuine.split('.').collect();
    let mut forged = claims();
    forged["sub"] = json!("admin");
    let swapped = format!(
        "{}.{}.{}",
        parts[0],
        b64(serde_json::to_vec(&forged).unwrap()),
        parts[2]
    );
    assert!(check(&swapped, &creds)
        .unwrap_err()
        .starts_with("no credential"));
    // An RS256 header when the client has only ES256 credentials.
    let rs = signed(rsa(0), AssertionAlg::RS256, None, &claims());
    assert!(check(&rs, &creds).unwrap_err().starts_with("no credential"));
}

#[test]
fn malformed_oversized_and_crit_are_refused() {
    let key = ec();
    let creds = [cred("c1", &key, AssertionAlg::ES256)];
    let mut big = claims();
    big["pad"] = json!("x".repeat(MAX_ASSERTION_BYTES));
    let token = signed(&key, AssertionAlg::ES256, None, &big);
    assert!(check(&token, &creds)
        .unwrap_err()
        .contains("longer than 8192 bytes"));
    assert!(unverified_subject(&token)
        .unwrap_err()
        .contains("longer than 8192 bytes"));
    assert!(check("a.b", &creds)
        .unwrap_err()
        .contains("not a compact JWS"));
    let crit = jws(
        &json!({"alg": "ES256", "crit": ["urn:example"], "urn:example": 1}),
        &claims(),
        &key,
    );
    assert!(check(&crit, &creds).unwrap_err().contains("crit"));
}

#[test]
fn unverified_subject_names_the_client() {
    let key = ed();
    let token = |claims: &Value| signed(&key, AssertionAlg::EdDSA, None, claims);
    assert_eq!(unverified_subject(&token(&claims())).unwrap(), CLIENT);
    assert_eq!(
        unverified_subject(&token(&json!({"iss": "only-iss"}))).unwrap(),
        "only-iss"
    );
    assert!(unverified_subject(&token(&json!({"aud": ISSUER}))).is_err());
    assert!(unverified_subject(&token(&json!({"sub": ""}))).is_err());
    assert!(unverified_subject("not.a-jwt").is_err());
    assert!(unverified_subject("a.b.c.d").is_err());
}
