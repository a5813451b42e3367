//! The loaded signing keys, prepared once: signs access tokens and publishes the JWKS.
//!
//! Verifying is in `verify`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::{json, Value};

use super::signer::{PrivateKey, Signer};
use super::{jwk, rotation, KeyError};
use crate::store::{KeyState, SigningAlg, SigningKey};

/// RFC 9068 §2.1: access tokens say what they are, so an ID token or other JWT signed by the
/// same key cannot be replayed as one.
pub(super) const TYP: &str = "at+jwt";

/// The keys of one generation of the key store, prepared once for signing and verifying.
///
/// Build a new one (and swap it in) after every rotation; it never changes once built.
pub struct KeySet {
    /// Ordered by `created_at`, then `kid`.
    keys: Vec<SigningKey>,
    signers: BTreeMap<SigningAlg, Signer>,
    /// Every key, any state, by kid.
    pub(super) verifiers: HashMap<String, Verifier>,
}

pub(super) struct Verifier {
    pub(super) algorithm: Algorithm,
    pub(super) key: DecodingKey,
}

impl KeySet {
    /// Checks and prepares `keys`: every private key must parse and match its public JWK,
    /// kids must be unique, and each algorithm may have at most one `Current` key.
    pub fn new(mut keys: Vec<SigningKey>) -> Result<KeySet, KeyError> {
        keys.sort_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
        let mut signers = BTreeMap::new();
        let mut verifiers = HashMap::with_capacity(keys.len());
        for key in &keys {
            let invalid = |reason: String| KeyError::InvalidKey {
                kid: key.kid.clone(),
                reason,
            };
            let private = PrivateKey::parse(key.alg, &key.private_der).map_err(invalid)?;
            check_public_jwk(key, &private)?;
            let algorithm = jwk::algorithm(key.alg);
            // Verifying with what is published is what third parties do: if the JWKS were
            // wrong, our own checks would fail too.
            let decoding = jwk::decoding_key(key.alg, &key.public_jwk).map_err(invalid)?;
            let verifier = Verifier {
                algorithm,
                key: decoding,
            };
            if verifiers.insert(key.kid.clone(), verifier).is_some() {
                return Err(invalid("duplicate kid".to_owned()));
            }
            if key.state == KeyState::Current {
                let signer = Signer::new(&key.kid, TYP, private);
                // Two current keys means a rotation was half written; picking one silently
                // could sign with a key verifiers have not seen yet.
                if signers.insert(key.alg, signer).is_some() {
                    let reason = format!("a second current {} key", key.alg.as_str());
                    return Err(invalid(reason));
                }
            }
        }
        Ok(KeySet {
            keys,
            signers,
            verifiers,
        })
    }

    /// Signs `claims` as an RFC 9068 access token with the current key for `alg`.
    pub fn sign<T: serde::Serialize>(
        &self,
        alg: SigningAlg,
        claims: &T,
    ) -> Result<String, KeyError> {
        let signer = self.signers.get(&alg).ok_or(KeyError::NoCurrentKey(alg))?;
        signer.sign(claims)
    }

    /// The JWKS document: `{"keys": [...]}` with the public JWKs of current and next keys,
    /// and of retired keys until the tokens they signed have expired (`retired_at +
    /// max_token_lifetime + LEEWAY_SECS`). Ordered by `created_at`, then `kid`.
    pub fn jwks(&self, now: i64, max_token_lifetime: i64) -> Value {
        let keys: Vec<&Value> = self
            .keys
            .iter()
            .filter(|key| !rotation::past_retention(key, now, max_token_lifetime))
            .map(|key| &key.public_jwk)
            .collect();
        json!({ "keys": keys })
    }

    /// All keys, ordered by `created_at`, then `kid`.
    pub fn keys(&self) -> &[SigningKey] {
        &self.keys
    }

    /// The key that signs new tokens for `alg`.
    pub fn current(&self, alg: SigningAlg) -> Option<&SigningKey> {
        self.keys
            .iter()
            .find(|key| key.alg == alg && key.state == KeyState::Current)
    }
}

/// Kids and states only: a derived Debug would print private keys into logs.
impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut list = f.debug_list();
        for key in &self.keys {
            list.entry(&format_args!(
                "{} {} {}",
                key.kid,
                key.alg.as_str(),
                key.state.as_str()
            ));
        }
        list.finish()
    }
}

/// Every member derivable from the private key must be in the stored JWK, unchanged.
fn check_public_jwk(key: &SigningKey, private: &PrivateKey) -> Result<(), KeyError> {
    let derived = jwk::public_jwk_of(&key.kid, private)?;
    let members = derived.as_object().into_iter().flatten();
    for (name, value) in members {
        if key.public_jwk.get(name) != Some(value) {
            return Err(KeyError::InvalidKey {
                kid: key.kid.clone(),
                reason: format!("public JWK member {name:?} does not match the private key"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine;
    use jsonwebtoken::jwk::JwkSet;
    use jsonwebtoken::Validation;

    use super::*;
    use crate::keys::tests::{apply, claims, fixture, keys_where, AUD, ISS, T0};
    use crate::keys::{rotate, LEEWAY_SECS};

    #[test]
    fn signs_and_verifies_each_alg() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let published: JwkSet = serde_json::from_value(set.jwks(T0, 3600)).unwrap();
        for alg in SigningAlg::ALL {
            let current = set.current(alg).unwrap();
            let token = set.sign(alg, &claims(300)).unwrap();

            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(current.kid.as_str()));
            assert_eq!(header.alg, jwk::algorithm(alg));

            let got = set.verify(&token, ISS, AUD).unwrap();
            assert_eq!(got.get("sub"), Some(&json!("client-1@clients")));
            assert_eq!(got.get("scope"), Some(&json!("read:things write:things")));

            // A third party with nothing but the JWKS document can verify it.
            let entry = published.find(&current.kid).unwrap();
            let key = DecodingKey::from_jwk(entry).unwrap();
            let mut validation = Validation::new(jwk::algorithm(alg));
            validation.set_audience(&[AUD]);
            let data = jsonwebtoken::decode::<Value>(&token, &key, &validation).unwrap();
            assert_eq!(data.claims["iss"], ISS);
        }
    }

    #[test]
    fn the_header_says_alg_kid_and_typ_only() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        for alg in SigningAlg::ALL {
            let token = set.sign(alg, &claims(300)).unwrap();
            let header = token.split('.').next().unwrap();
            let header: Value =
                serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap();
            let kid = &set.current(alg).unwrap().kid;
            assert_eq!(
                header,
                json!({"alg": alg.as_str(), "kid": kid, "typ": "at+jwt"})
            );
        }
    }

    #[test]
    fn claims_that_do_not_serialize_are_a_sign_error() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        // JSON object keys are strings; serde_json refuses a map keyed by pairs.
        let claims = std::collections::BTreeMap::from([((1, 2), "v")]);
        let err = set.sign(SigningAlg::ES256, &claims).unwrap_err();
        assert!(matches!(err, KeyError::Sign(_)), "{err}");
    }

    #[test]
    fn sign_needs_a_current_key() {
        let set = KeySet::new(keys_where(|k| k.state == KeyState::Next)).unwrap();
        let err = set.sign(SigningAlg::RS256, &claims(300)).unwrap_err();
        assert!(matches!(err, KeyError::NoCurrentKey(SigningAlg::RS256)));
        assert!(set.current(SigningAlg::RS256).is_none());
    }

    #[test]
    fn new_rejects_inconsistent_keys() {
        let es = keys_where(|k| k.alg == SigningAlg::ES256);

        let mut swapped = es.clone();
        swapped[0].public_jwk = es[1].public_jwk.clone();
        swapped[0].public_jwk["kid"] = json!(es[0].kid);
        let err = KeySet::new(swapped).unwrap_err();
        assert!(
            matches!(err, KeyError::InvalidKey { ref reason, .. } if reason.contains("\"x\"")),
            "{err}"
        );

        let mut relabelled = es.clone();
        relabelled[0].alg = SigningAlg::EdDSA;
        assert!(matches!(
            KeySet::new(relabelled),
            Err(KeyError::InvalidKey { .. })
        ));

        let mut duplicate = es.clone();
        duplicate.push(es[0].clone());
        let err = KeySet::new(duplicate).unwrap_err();
        assert!(err.to_string().contains("duplicate kid"), "{err}");

        let mut two_current = es.clone();
        for key in &mut two_current {
            key.state = KeyState::Current;
        }
        let err = KeySet::new(two_current).unwrap_err();
        assert!(err.to_string().contains("second current ES256"), "{err}");
    }

    #[test]
    fn jwks_is_ordered_and_drops_expired_retired_keys() {
        let keys = fixture().to_vec();
        let rotated = rotate(&keys, SigningAlg::EdDSA, T0 + 100).unwrap();
        let old_kid = rotated[0].kid.clone();
        let mut keys = apply(keys, rotated);
        keys.reverse();
        let set = KeySet::new(keys.clone()).unwrap();

        keys.sort_by_key(|k| (k.created_at, k.kid.clone()));
        let all: Vec<&str> = keys.iter().map(|k| k.kid.as_str()).collect();
        let published = |now: i64| -> Vec<String> {
            let doc = set.jwks(now, 3600);
            let entries = doc["keys"].as_array().unwrap().iter();
            entries
                .map(|k| k["kid"].as_str().unwrap().to_owned())
                .collect()
        };
        assert_eq!(published(T0 + 100), all);
        let last_second = T0 + 100 + 3600 + LEEWAY_SECS - 1;
        assert!(published(last_second).contains(&old_kid));
        let after = published(last_second + 1);
        assert!(!after.contains(&old_kid));
        assert_eq!(after.len(), all.len() - 1);
    }

    #[test]
    fn debug_shows_no_key_material() {
        let set = KeySet::new(fixture().to_vec()).unwrap();
        let shown = format!("{set:?}");
        assert!(shown.contains(&fixture()[0].kid) && shown.contains("current"));
        assert!(!shown.contains("private_der") && !shown.contains("\"x\""));
    }

    #[test]
    fn is_shareable_across_threads() {
        fn check<T: Send + Sync>() {}
        check::<KeySet>();
    }
}
