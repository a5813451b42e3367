//! Checking an access token this server issued, as a resource server would (RFC 9068 §4).

use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::Validation;
use serde_json::{Map, Value};

use super::keyset::TYP;
use super::{KeyError, KeySet};

/// Clock skew allowed when checking `exp` (and `nbf`), in seconds. Retired keys stay
/// published this much longer than the longest token lifetime, so a token accepted within the
/// leeway still finds its key.
pub const LEEWAY_SECS: i64 = 30;

/// Why a token was refused, said so that its holder knows what to fix. Nothing of the
/// token itself is echoed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Rejection {
    #[error("it has expired")]
    Expired,
    #[error("it is not valid yet (its nbf is in the future)")]
    NotYetValid,
    #[error("it was issued for another audience")]
    WrongAudience,
    #[error("it was issued by another issuer")]
    WrongIssuer,
    #[error("its signature does not verify")]
    BadSignature,
    #[error("it is signed with another algorithm than its key's")]
    WrongAlgorithm,
    #[error("it has no {0} claim")]
    MissingClaim(String),
    #[error("it is not an access token (its typ must be at+jwt)")]
    NotAccessToken,
    #[error("its header names no signing key (kid)")]
    NoKid,
    #[error("it is not a well-formed JWT")]
    Malformed,
}

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
        let kid = header.kid.ok_or(KeyError::Verify(Rejection::NoKid))?;
        let verifier = self.verifiers.get(&kid).ok_or(KeyError::UnknownKid(kid))?;
        // RFC 9068 §4 (media types compare case-insensitively, RFC 7515 §4.1.9).
        let typ_ok = header.typ.as_deref().is_some_and(|typ| {
            typ.eq_ignore_ascii_case(TYP) || typ.eq_ignore_ascii_case("application/at+jwt")
        });
        if !typ_ok {
            return Err(KeyError::Verify(Rejection::NotAccessToken));
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
    KeyError::Verify(match error.into_kind() {
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidAudience => Rejection::WrongAudience,
        ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
        ErrorKind::InvalidSignature => Rejection::BadSignature,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => Rejection::WrongAlgorithm,
        ErrorKind::MissingRequiredClaim(claim) => Rejection::MissingClaim(claim),
        _ => Rejection::Malformed,
    })
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

    fn reason(result: Result<Map<String, Value>, KeyError>) -> Rejection {
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
                Rejection::BadSignature,
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
                Rejection::BadSignature,
                "{alg:?}"
            );
        }
        assert_eq!(
            reason(set.verify("not-a-jwt", ISS, AUD)),
            Rejection::Malformed
        );
    }

    #[test]
    fn wrong_audience_or_issuer_fails() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let token = set.sign(SigningAlg::EdDSA, &claims(300)).unwrap();
        assert_eq!(
            reason(set.verify(&token, ISS, "https://other.test/")),
            Rejection::WrongAudience
        );
        assert_eq!(
            reason(set.verify(&token, "https://evil.test/", AUD)),
            Rejection::WrongIssuer
        );

        let mut many = claims(300);
        many["aud"] = json!(["https://other.test/", AUD]);
        let token = set.sign(SigningAlg::ES256, &many).unwrap();
        assert!(set.verify(&token, ISS, AUD).is_ok());

        let mut none = claims(300);
        none.as_object_mut().unwrap().remove("aud");
        let token = set.sign(SigningAlg::ES256, &none).unwrap();
        assert_eq!(
            reason(set.verify(&token, ISS, AUD)),
            Rejection::MissingClaim("aud".into())
        );
    }

    #[test]
    fn expiry_is_checked_with_leeway() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let expired = set
            .sign(SigningAlg::ES256, &claims(-LEEWAY_SECS - 10))
            .unwrap();
        assert_eq!(reason(set.verify(&expired, ISS, AUD)), Rejection::Expired);
        let within_leeway = set
            .sign(SigningAlg::ES256, &claims(-LEEWAY_SECS + 10))
            .unwrap();
        assert!(set.verify(&within_leeway, ISS, AUD).is_ok());

        let mut no_exp = claims(0);
        no_exp.as_object_mut().unwrap().remove("exp");
        let token = set.sign(SigningAlg::ES256, &no_exp).unwrap();
        assert_eq!(
            reason(set.verify(&token, ISS, AUD)),
            Rejection::MissingClaim("exp".into())
        );
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
        assert_eq!(
            reason(set.verify(&plain, ISS, AUD)),
            Rejection::NotAccessToken
        );

        let header = Header {
            typ: Some(TYP.to_owned()),
            ..Header::new(Algorithm::EdDSA)
        };
        let no_kid = jsonwebtoken::encode(&header, &claims(300), &encoding_key(current)).unwrap();
        assert_eq!(reason(set.verify(&no_kid, ISS, AUD)), Rejection::NoKid);
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
        assert_eq!(
            reason(set.verify(&confused, ISS, AUD)),
            Rejection::WrongAlgorithm
        );
        assert!(set.verify(&token, ISS, AUD).is_ok());
    }
}
