//! PEM uploads: public keys and a certificate accepted, everything else explained.

use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};

use super::*;
use crate::client_auth::test_keys::{ec, ed, rsa, TestKey};

const CERT: &str = include_str!("testdata/ec-cert.pem");
const CERT_KEY: &str = include_str!("testdata/ec-cert.key.pem");
/// `date -d "$(openssl x509 -in ec-cert.pem -noout -enddate | cut -d= -f2)" +%s`
const CERT_NOT_AFTER: i64 = 2_111_556_069;
const RSA_1024: &str = include_str!("testdata/rsa-1024.pub.pem");
const P384: &str = include_str!("testdata/p384.pub.pem");

/// The credential's key verifies what `key` signs.
fn verifies(parsed: &ParsedCredential, alg: AssertionAlg, key: &TestKey) {
    let verifying = VerifyingKey::from_jwk(&parsed.jwk, alg).unwrap();
    let signature = key.sign(alg.as_str(), b"message");
    assert!(verifying.verifies(b"message", &signature), "{alg}");
    assert!(!verifying.verifies(b"massage", &signature), "{alg}");
}

#[test]
fn public_key_pems_become_jwks() {
    let (ec, ed) = (ec(), ed());
    for (key, alg) in [
        (rsa(0), AssertionAlg::RS256),
        (rsa(0), AssertionAlg::PS256),
        (&ec, AssertionAlg::ES256),
        (&ed, AssertionAlg::EdDSA),
    ] {
        let parsed = parse_pem(&key.spki_pem(), alg).unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(parsed.jwk, key.public_jwk(), "{alg}");
        assert_eq!(parsed.kid, thumbprint(&key.public_jwk()).unwrap());
        assert_eq!(parsed.not_after, None);
        verifies(&parsed, alg, key);
    }
}

#[test]
fn pkcs1_rsa_public_key_is_the_same_key() {
    let TestKey::Rsa(pair) = rsa(1) else {
        unreachable!()
    };
    let pkcs1 = pair.public_key().as_ref().to_vec();
    let pem =
        pem_rfc7468::encode_string("RSA PUBLIC KEY", pem_rfc7468::LineEnding::LF, &pkcs1).unwrap();
    let parsed = parse_pem(&pem, AssertionAlg::RS384).unwrap();
    assert_eq!(
        parsed,
        parse_pem(&rsa(1).spki_pem(), AssertionAlg::RS384).unwrap()
    );
    verifies(&parsed, AssertionAlg::RS384, rsa(1));
}

#[test]
fn a_certificate_gives_its_key_and_expiry() {
    let parsed = parse_pem(CERT, AssertionAlg::ES256).unwrap();
    assert_eq!(parsed.not_after, Some(CERT_NOT_AFTER));
    assert_eq!(parsed.jwk["kty"], "EC");
    assert!(parsed.jwk.get("kid").is_none() && parsed.jwk.get("alg").is_none());
    assert_eq!(parsed.kid, thumbprint(&parsed.jwk).unwrap());
    // The certificate's own key signs what its credential verifies.
    let (_, pkcs8) = pem_rfc7468::decode_vec(CERT_KEY.as_bytes()).unwrap();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &pkcs8).unwrap();
    verifies(&parsed, AssertionAlg::ES256, &TestKey::Ec(pair));
    // Pasted with CRLF line ends and surrounding blank lines.
    let pasted = format!("\n  {}\n\n", CERT.replace('\n', "\r\n"));
    assert_eq!(parse_pem(&pasted, AssertionAlg::ES256).unwrap(), parsed);
    let err = parse_pem(CERT, AssertionAlg::EdDSA).unwrap_err();
    assert_eq!(
        err,
        "alg EdDSA needs an Ed25519 key; this PEM holds a P-256 key"
    );
}

#[test]
fn private_keys_are_refused() {
    let message = "this is a private key: upload the public key or a certificate";
    assert_eq!(
        parse_pem(CERT_KEY, AssertionAlg::ES256).unwrap_err(),
        message
    );
    let TestKey::Rsa(pair) = rsa(0) else {
        unreachable!()
    };
    use aws_lc_rs::encoding::AsDer;
    let der = AsDer::<aws_lc_rs::encoding::Pkcs8V1Der>::as_der(pair).unwrap();
    for label in ["PRIVATE KEY", "RSA PRIVATE KEY", "ENCRYPTED PRIVATE KEY"] {
        let pem =
            pem_rfc7468::encode_string(label, pem_rfc7468::LineEnding::LF, der.as_ref()).unwrap();
        assert_eq!(
            parse_pem(&pem, AssertionAlg::RS256).unwrap_err(),
            message,
            "{label}"
        );
    }
}

#[test]
fn a_key_that_does_not_fit_the_alg_is_explained() {
    let rsa_pem = rsa(0).spki_pem();
    let err = |pem: &str, alg| parse_pem(pem, alg).unwrap_err();
    assert_eq!(
        err(&rsa_pem, AssertionAlg::ES256),
        "alg ES256 needs a P-256 key; this PEM holds an RSA key"
    );
    assert_eq!(
        err(&ed().spki_pem(), AssertionAlg::RS256),
        "alg RS256 needs an RSA key; this PEM holds an Ed25519 key"
    );
    assert_eq!(
        err(P384, AssertionAlg::ES256),
        "alg ES256 needs a P-256 key; this PEM holds an EC key on a curve other than P-256"
    );
    assert_eq!(
        err(RSA_1024, AssertionAlg::RS256),
        "alg RS256 needs an RSA key of 2048 to 8192 bits; this one has 1024"
    );
}

#[test]
fn other_input_is_refused() {
    let err = |pem: &str| parse_pem(pem, AssertionAlg::ES256).unwrap_err();
    assert!(err(&"A".repeat(MAX_PEM_BYTES + 1)).contains("longer than 16384 bytes"));
    assert!(err(&format!("{CERT}{CERT}")).contains("several blocks"));
    assert!(err("hello").contains("not a PEM"));
    let request = CERT.replace("CERTIFICATE", "CERTIFICATE REQUEST");
    assert!(err(&request).contains("neither a public key nor a certificate"));
    let truncated = CERT.replace("\n", "").replacen("MI", "", 1);
    assert!(parse_pem(&truncated, AssertionAlg::ES256).is_err());
}
