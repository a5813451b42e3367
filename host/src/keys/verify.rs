//! Checking an access token this server issued, as a resource server would (RFC 9068 §4).

use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::keyset::TYP;
use super::{KeyError, KeySet};

/// Clock skew allowed when checking `exp` (and `nbf`), in seconds. Retired keys stay
/// published this much longer than the longest token lifetime, so a token accepted within the
/// leeway still finds its key.
pub const LEEWAY_SECS: i64 = 30;

impl KeySet {
    /// Checks a token from this server: known kid (any state, retired included), signature
    /// with that key's algorithm only, `typ`, `exp` (with `LEEWAY_SECS`), `iss` and `aud`
    /// (a string or an array containing `audience`). Returns its claims.
    pub fn verify(
        &self,
        token: &str,
        issuer: &str,
        audience: &str,
    ) -> Result<Map<String, Value>, KeyError> {
        let header = jsonwebtoken::decode_header(token).map_err(rejected)?;
        let kid = header
            .kid
            .ok_or_else(|| KeyError::Verify("token header has no kid".to_owned()))?;
        let verifier = self.verifiers.get(&kid).ok_or(KeyError::UnknownKid(kid))?;
        // RFC 9068 §4 (media types compare case-insensitively, RFC 7515 §4.1.9).
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(KeyError::Verify(format!(
                "typ {:?} is not at+jwt",
                header.typ
            )));
        }
        // One algorithm, the key's own: a header cannot talk us into another.
        let mut validation = Validation::new(verifier.algorithm);
        validation.leeway = LEEWAY_SECS.unsigned_abs();
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.set_issuer(&[issuer]);
        validation.set_audience(&[audience]);
        let data = jsonwebtoken::decode::<Map<String, Value>>(token, &verifier.key, &validation)
            .map_err(rejected)?;
        Ok(data.claims)
    }
}

fn rejected(error: jsonwebtoken::errors::Error) -> KeyError {
    KeyError::Verify(error.to_string())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::{Algorithm, EncodingKey, Header};
    use serde_json::json;

    use super::*;
    use crate::keys::generate;
    use crate::keys::tests::{claims, fixture, AUD, ISS, T0};
    use crate::store::{KeyState, SigningAlg, SigningKey};

    /// What signs tokens this server would not issue, for the tests to forge them.
    fn encoding_key(key: &SigningKey) -> EncodingKey {
        match key.alg {
            SigningAlg::RS256 => EncodingKey::from_rsa_der(&key.private_der),
            SigningAlg::ES256 => EncodingKey::from_ec_der(&key.private_der),
            SigningAlg::EdDSA => EncodingKey::from_ed_der(&key.private_der),
        }
    }

    fn reason(result: Result<Map<String, Value>, KeyError>) -> String {
        match result {
            Err(KeyError::Verify(reason)) => reason,
            other => panic!("expected a Verify error, got {other:?}"),
        }
    }

    #[test]
    fn tampered_tokens_fail() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        for alg in SigningAlg::ALL {
            let token = set.sign(alg, &claims(300)).unwrap();
            let parts: Vec<&str> = token.split('.').collect();
            let mut forged = claims(300);
            forged["scope"] = json!("admin");
            let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
            let swapped = format!("{}.{}.{}", parts[0], payload, parts[2]);
            assert_eq!(
                reason(set.verify(&swapped, ISS, AUD)),
                "InvalidSignature",
                "{alg:?}"
            );

            let mut signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
            signature[10] ^= 1;
            let flipped = format!(
                "{}.{}.{}",
                parts[0],
                parts[1],
                URL_SAFE_NO_PAD.encode(signature)
            );
            assert_eq!(
                reason(set.verify(&flipped, ISS, AUD)),
                "InvalidSignature",
                "{alg:?}"
            );
        }
        assert!(matches!(
            set.verify("not-a-jwt", ISS, AUD),
            Err(KeyError::Verify(_))
        ));
    }

    #[test]
    fn wrong_audience_or_issuer_fails() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let token = set.sign(SigningAlg::EdDSA, &claims(300)).unwrap();
        assert_eq!(
            reason(set.verify(&token, ISS, "https://other.test/")),
            "InvalidAudience"
        );
        assert_eq!(
            reason(set.verify(&token, "https://evil.test/", AUD)),
            "InvalidIssuer"
        );

        let mut many = claims(300);
        many["aud"] = json!(["https://other.test/", AUD]);
        let token = set.sign(SigningAlg::ES256, &many).unwrap();
        assert!(set.verify(&token, ISS, AUD).is_ok());

        let mut none = claims(300);
        none.as_object_mut().unwrap().remove("aud");
        let token = set.sign(SigningAlg::ES256, &none).unwrap();
        assert!(reason(set.verify(&token, ISS, AUD)).contains("aud"));
    }

    #[test]
    fn expiry_is_checked_with_leeway() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let expired = set
            .sign(SigningAlg::ES256, &claims(-LEEWAY_SECS - 10))
            .unwrap();
        assert_eq!(reason(set.verify(&expired, ISS, AUD)), "ExpiredSignature");
        let within_leeway = set
            .sign(SigningAlg::ES256, &claims(-LEEWAY_SECS + 10))
            .unwrap();
        assert!(set.verify(&within_leeway, ISS, AUD).is_ok());

        let mut no_exp = claims(0);
        no_exp.as_object_mut().unwrap().remove("exp");
        let token = set.sign(SigningAlg::ES256, &no_exp).unwrap();
        assert!(reason(set.verify(&token, ISS, AUD)).contains("exp"));
    }

    #[test]
    fn unknown_kid_and_foreign_typ_fail() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let stranger = generate(SigningAlg::EdDSA, KeyState::Current, T0).unwrap();
        let other = KeySet::new(vec![stranger.clone()]).unwrap();
        let token = other.sign(SigningAlg::EdDSA, &claims(300)).unwrap();
        let result = set.verify(&token, ISS, AUD);
        assert!(matches!(result, Err(KeyError::UnknownKid(k)) if k == stranger.kid));

        // Our own key, but a plain JWT rather than an access token.
        let current = set.current(SigningAlg::EdDSA).unwrap();
        let header = Header {
            kid: Some(current.kid.clone()),
            ..Header::new(Algorithm::EdDSA)
        };
        let plain = jsonwebtoken::encode(&header, &claims(300), &encoding_key(current)).unwrap();
        assert!(reason(set.verify(&plain, ISS, AUD)).contains("at+jwt"));

        let header = Header {
            typ: Some(TYP.to_owned()),
            ..Header::new(Algorithm::EdDSA)
        };
        let no_kid = jsonwebtoken::encode(&header, &claims(300), &encoding_key(current)).unwrap();
        assert!(reason(set.verify(&no_kid, ISS, AUD)).contains("kid"));
    }

    #[test]
    fn header_alg_must_be_the_keys() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let token = set.sign(SigningAlg::ES256, &claims(300)).unwrap();
        let es_kid = set.current(SigningAlg::ES256).unwrap().kid.clone();
        // An EdDSA-signed token claiming the ES256 key's kid.
        let ed = set.current(SigningAlg::EdDSA).unwrap();
        let header = Header {
            typ: Some(TYP.to_owned()),
            kid: Some(es_kid),
            ..Header::new(Algorithm::EdDSA)
        };
        let confused = jsonwebtoken::encode(&header, &claims(300), &encoding_key(ed)).unwrap();
        assert_eq!(reason(set.verify(&confused, ISS, AUD)), "InvalidAlgorithm");
        assert!(set.verify(&token, ISS, AUD).is_ok());
    }
}
