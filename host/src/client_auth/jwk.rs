//! Public JWKs (RFC 7517/7518, RFC 8037): their RFC 7638 thumbprint, and the aws-lc-rs key
//! they hold, parsed once so that a verification costs only the signature check.

use aws_lc_rs::digest::{digest, SHA256};
use aws_lc_rs::rsa::PublicKeyComponents;
use aws_lc_rs::signature::{self, ParsedPublicKey, RsaParameters};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde_json::{Map, Value};

use super::AssertionAlg;

/// Members only a private or symmetric JWK has (RFC 7518 §6.3.2, §6.2.2, §6.4.1; RFC 8037 §2).
pub(super) const PRIVATE_MEMBERS: [&str; 8] = ["d", "p", "q", "dp", "dq", "qi", "oth", "k"];

/// The RSA sizes a credential may have; aws-lc-rs's verifiers accept exactly these.
pub(super) const MIN_RSA_BITS: usize = 2048;
pub(super) const MAX_RSA_BITS: usize = 8192;

/// RFC 7638 SHA-256 JWK thumbprint, base64url without padding, of a public JWK
/// (RSA: e,kty,n; EC: crv,kty,x,y; OKP: crv,kty,x — required members only, lexicographic
/// order, no whitespace).
pub fn thumbprint(jwk: &Value) -> Result<String, String> {
    let members = object(jwk)?;
    let required: &[&str] = match string(members, "kty")? {
        "RSA" => &["e", "kty", "n"],
        "EC" => &["crv", "kty", "x", "y"],
        "OKP" => &["crv", "kty", "x"],
        other => {
            return Err(format!(
                "JWK kty {:?} is not a public key type",
                shown(other)
            ))
        }
    };
    let mut canonical = String::from("{");
    for (i, name) in required.iter().enumerate() {
        if i > 0 {
            canonical.push(',');
        }
        // A JSON string as serde_json escapes it, the same escaping RFC 7638 §3.3 asks for.
        let value = Value::from(string(members, name)?);
        canonical.push_str(&format!("\"{name}\":{value}"));
    }
    canonical.push('}');
    Ok(URL_SAFE_NO_PAD.encode(digest(&SHA256, canonical.as_bytes())))
}

/// A public key ready to verify signatures, parsed once (the catalog holds these).
#[derive(Clone)]
pub struct VerifyingKey {
    alg: AssertionAlg,
    key: ParsedPublicKey,
}

impl VerifyingKey {
    /// From a public JWK (as stored for a credential), for `alg`; refuses a JWK whose key
    /// type/curve does not fit alg, or holding private members.
    pub fn from_jwk(jwk: &Value, alg: AssertionAlg) -> Result<VerifyingKey, String> {
        VerifyingKey::from_jwk_bounded(jwk, alg, MAX_RSA_BITS)
    }

    /// As `from_jwk`, with RSA moduli of at most `max_rsa_bits` (a stranger's DPoP key is
    /// held to less than an administrator's credential).
    pub(super) fn from_jwk_bounded(
        jwk: &Value,
        alg: AssertionAlg,
        max_rsa_bits: usize,
    ) -> Result<VerifyingKey, String> {
        let members = object(jwk)?;
        if let Some(private) = PRIVATE_MEMBERS.iter().find(|m| members.contains_key(**m)) {
            return Err(format!(
                "JWK has the private member {private:?}: only a public key is accepted"
            ));
        }
        if let Some(named) = members.get("alg") {
            if named.as_str() != Some(alg.as_str()) {
                return Err(format!("JWK alg {named} is not {alg}"));
            }
        }
        let kty = string(members, "kty")?;
        let (want_kty, want_crv) = match alg {
            AssertionAlg::RS256 | AssertionAlg::RS384 | AssertionAlg::PS256 => ("RSA", None),
            AssertionAlg::ES256 => ("EC", Some("P-256")),
            AssertionAlg::EdDSA => ("OKP", Some("Ed25519")),
        };
        if kty != want_kty {
            return Err(format!(
                "alg {alg} needs a JWK of kty {want_kty}, not {:?}",
                shown(kty)
            ));
        }
        if let Some(want_crv) = want_crv {
            let crv = string(members, "crv")?;
            if crv != want_crv {
                return Err(format!(
                    "alg {alg} needs crv {want_crv}, not {:?}",
                    shown(crv)
                ));
            }
        }
        let rejected = |e: aws_lc_rs::error::KeyRejected| format!("JWK is not a valid key: {e}");
        let key = match alg {
            AssertionAlg::RS256 | AssertionAlg::RS384 | AssertionAlg::PS256 => {
                let n = bytes(members, "n", max_rsa_bits / 8 + 1)?;
                let n = strip_leading_zeros(&n);
                let bits = bit_length(n);
                if !(MIN_RSA_BITS..=max_rsa_bits).contains(&bits) {
                    return Err(format!(
                        "RSA key of {bits} bits; {MIN_RSA_BITS} to {max_rsa_bits} are accepted"
                    ));
                }
                let e = bytes(members, "e", 8)?;
                let components = PublicKeyComponents {
                    n,
                    e: strip_leading_zeros(&e),
                };
                components
                    .to_parsed_public_key(rsa_parameters(alg))
                    .map_err(rejected)?
            }
            AssertionAlg::ES256 => {
                // Uncompressed SEC1 point, each coordinate its fixed 32 bytes (RFC 7518 §6.2.1.2).
                let x = fixed(members, "x", 32)?;
                let y = fixed(members, "y", 32)?;
                let point = [&[0x04][..], &x, &y].concat();
                ParsedPublicKey::new(&signature::ECDSA_P256_SHA256_FIXED, point)
                    .map_err(rejected)?
            }
            AssertionAlg::EdDSA => {
                let x = fixed(members, "x", 32)?;
                ParsedPublicKey::new(&signature::ED25519, x).map_err(rejected)?
            }
        };
        Ok(VerifyingKey { alg, key })
    }

    /// The one algorithm this key verifies.
    pub fn alg(&self) -> AssertionAlg {
        self.alg
    }

    /// Whether `signature` is this key's JWS signature of `message` (for ES256 the fixed
    /// `r || s` form of RFC 7518 §3.4).
    pub(super) fn verifies(&self, message: &[u8], signature: &[u8]) -> bool {
        self.key.verify_sig(message, signature).is_ok()
    }
}

impl std::fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifyingKey")
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

fn rsa_parameters(alg: AssertionAlg) -> &'static RsaParameters {
    match alg {
        AssertionAlg::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
        // aws-lc-rs's PSS verifier expects the salt as long as the digest, as RFC 7518 §3.5 does.
        AssertionAlg::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
        _ => &signature::RSA_PKCS1_2048_8192_SHA256,
    }
}

fn object(jwk: &Value) -> Result<&Map<String, Value>, String> {
    jwk.as_object()
        .ok_or_else(|| "JWK is not a JSON object".to_owned())
}

fn string<'a>(members: &'a Map<String, Value>, name: &str) -> Result<&'a str, String> {
    members
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("JWK has no string member {name:?}"))
}

/// A base64url member of at most `max` bytes, its length checked before it is decoded.
fn bytes(members: &Map<String, Value>, name: &str, max: usize) -> Result<Vec<u8>, String> {
    let text = string(members, name)?;
    if text.len() > max.div_ceil(3) * 4 {
        return Err(format!("JWK member {name:?} is too long"));
    }
    URL_SAFE_NO_PAD
        .decode(text)
        .map_err(|_| format!("JWK member {name:?} is not base64url without padding"))
}

fn fixed(members: &Map<String, Value>, name: &str, len: usize) -> Result<Vec<u8>, String> {
    let raw = bytes(members, name, len)?;
    if raw.len() != len {
        return Err(format!("JWK member {name:?} must be {len} bytes"));
    }
    Ok(raw)
}

pub(super) fn strip_leading_zeros(bytes: &[u8]) -> &[u8] {
    let first = bytes.iter().position(|b| *b != 0).unwrap_or(bytes.len());
    &bytes[first..]
}

/// The bit length of a big-endian unsigned integer without leading zero bytes.
pub(super) fn bit_length(n: &[u8]) -> usize {
    match n.first() {
        Some(top) => n.len() * 8 - top.leading_zeros() as usize,
        None => 0,
    }
}

/// A stranger's value as an error may quote it: at most 40 printable ASCII characters.
pub(super) fn shown(value: &str) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic() || *c == ' ')
        .take(40)
        .collect();
    if clean.len() < value.len() {
        format!("{clean}…")
    } else {
        clean
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn thumbprints_match_the_rfc_examples() {
        // RFC 7638 §3.1.
        let rsa = json!({
            "kty": "RSA",
            "n": "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",
            "e": "AQAB", "alg": "RS256", "kid": "2011-04-29",
        });
        assert_eq!(
            thumbprint(&rsa).unwrap(),
            "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
        );
        // RFC 9449 §4.1's proof key, whose jkt §6.1 gives.
        let ec = json!({
            "kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        });
        assert_eq!(
            thumbprint(&ec).unwrap(),
            "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"
        );
        // RFC 8037 §A.3.
        let okp = json!({"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        assert_eq!(
            thumbprint(&okp).unwrap(),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
        // The RFC 9449 key verifies for ES256, the RFC 7638 one for RS256.
        assert!(VerifyingKey::from_jwk(&ec, AssertionAlg::ES256).is_ok());
        assert!(VerifyingKey::from_jwk(&rsa, AssertionAlg::RS256).is_ok());
        assert!(VerifyingKey::from_jwk(&okp, AssertionAlg::EdDSA).is_ok());
    }

    #[test]
    fn thumbprint_needs_a_public_key_type_and_its_members() {
        assert!(thumbprint(&json!({"kty": "oct", "k": "c2VjcmV0"})).is_err());
        assert!(thumbprint(&json!({"kty": "EC", "crv": "P-256", "x": "AA"})).is_err());
        assert!(thumbprint(&json!({"kty": "RSA", "n": 1, "e": "AQAB"})).is_err());
        assert!(thumbprint(&json!([])).is_err());
    }

    #[test]
    fn from_jwk_refuses_what_does_not_fit() {
        let ec = json!({
            "kty": "EC", "crv": "P-256",
            "x": "l8tFrhx-34tV3hRICRDY9zCkDlpBhF42UQUfWVAWBFs",
            "y": "9VE4jf_Ok_o64zbTTlcuNJajHmt6v9TDVrU0CdvGRDA",
        });
        let err = |jwk: &Value, alg| VerifyingKey::from_jwk(jwk, alg).unwrap_err();
        assert!(err(&ec, AssertionAlg::RS256).contains("kty RSA"));
        assert!(err(&ec, AssertionAlg::EdDSA).contains("kty OKP"));
        let mut private = ec.clone();
        private["d"] = json!("AAAA");
        assert!(err(&private, AssertionAlg::ES256).contains("private member \"d\""));
        let mut p384 = ec.clone();
        p384["crv"] = json!("P-384");
        assert!(err(&p384, AssertionAlg::ES256).contains("crv P-256"));
        let mut labelled = ec.clone();
        labelled["alg"] = json!("ES384");
        assert!(err(&labelled, AssertionAlg::ES256).contains("is not ES256"));
        let mut short = ec.clone();
        short["x"] = json!("AAAA");
        assert!(err(&short, AssertionAlg::ES256).contains("32 bytes"));
        let mut off_curve = ec.clone();
        off_curve["y"] = json!(URL_SAFE_NO_PAD.encode([1u8; 32]));
        assert!(err(&off_curve, AssertionAlg::ES256).contains("not a valid key"));
        let small = json!({"kty": "RSA", "n": URL_SAFE_NO_PAD.encode([0xc1u8; 128]), "e": "AQAB"});
        assert!(err(&small, AssertionAlg::RS256).contains("RSA key of 1024 bits"));
        let key = VerifyingKey::from_jwk(&ec, AssertionAlg::ES256).unwrap();
        assert_eq!(format!("{key:?}"), "VerifyingKey { alg: ES256, .. }");
    }

    #[test]
    fn shown_bounds_a_strangers_text() {
        assert_eq!(shown("ES256"), "ES256");
        assert_eq!(shown(&"a".repeat(50)), format!("{}…", "a".repeat(40)));
        assert_eq!(shown("a\nb"), "ab…");
    }
}
