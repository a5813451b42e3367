//! Private signing keys at rest: sealed with AES-256-GCM (`secret_box`) under the data
//! directory's signing-keys key and bound to their kid, so that a copy of the database
//! alone (a backup) signs nothing, and a sealed key moved to another row does not open.
//!
//! The one way between a [`SigningKey`] (what signs) and a [`StoredSigningKey`] (what the
//! store holds).

use super::KeyError;
use crate::secret_box::SecretBox;
use crate::store::{PrivateKeyAtRest, SigningKey, StoredSigningKey};

/// Seals private signing keys for the store and opens them for the `KeySet`.
#[derive(Debug)]
pub struct KeySealer(SecretBox);

impl KeySealer {
    /// A sealer under `key` (`datadir::server_key(config, ServerKey::SigningKeys)`).
    pub fn new(key: &[u8; 32]) -> Result<KeySealer, KeyError> {
        SecretBox::new(key)
            .map(KeySealer)
            .map_err(|e| KeyError::Seal(e.to_string()))
    }

    /// `key` as the store keeps it, its private key sealed under a fresh nonce.
    pub fn seal(&self, key: &SigningKey) -> Result<StoredSigningKey, KeyError> {
        let sealed = self
            .0
            .seal_signing_key(&key.kid, &key.private_der)
            .map_err(|e| KeyError::Seal(e.to_string()))?;
        Ok(StoredSigningKey {
            kid: key.kid.clone(),
            alg: key.alg,
            state: key.state,
            private_key: PrivateKeyAtRest::Sealed(sealed),
            public_jwk: key.public_jwk.clone(),
            created_at: key.created_at,
            retired_at: key.retired_at,
        })
    }

    /// The stored key, its private key opened (a key stored in the clear by an earlier
    /// release is taken as it is; see [`KeySealer::seal_plain`]).
    pub fn open(&self, key: StoredSigningKey) -> Result<SigningKey, KeyError> {
        let private_der = match key.private_key {
            PrivateKeyAtRest::Sealed(sealed) => self
                .0
                .open_signing_key(&key.kid, &sealed)
                .map_err(|_| KeyError::InvalidKey {
                    kid: key.kid.clone(),
                    reason: "its sealed private key does not open with this data \
                                 directory's signing-keys.key (was the file replaced, or the \
                                 row altered?)"
                        .to_owned(),
                })?,
            PrivateKeyAtRest::Plain(der) => der,
        };
        Ok(SigningKey {
            kid: key.kid,
            alg: key.alg,
            state: key.state,
            private_der,
            public_jwk: key.public_jwk,
            created_at: key.created_at,
            retired_at: key.retired_at,
        })
    }

    pub fn seal_all(&self, keys: &[SigningKey]) -> Result<Vec<StoredSigningKey>, KeyError> {
        keys.iter().map(|key| self.seal(key)).collect()
    }

    pub fn open_all(&self, keys: Vec<StoredSigningKey>) -> Result<Vec<SigningKey>, KeyError> {
        keys.into_iter().map(|key| self.open(key)).collect()
    }

    /// The keys of `stored` kept in the clear (by a release before sealing), sealed: what
    /// to write back once, on the first start after an upgrade.
    pub fn seal_plain(
        &self,
        stored: &[StoredSigningKey],
    ) -> Result<Vec<StoredSigningKey>, KeyError> {
        stored
            .iter()
            .filter(|key| matches!(key.private_key, PrivateKeyAtRest::Plain(_)))
            .map(|key| self.seal(&self.open(key.clone())?))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::fixture;

    fn sealer(byte: u8) -> KeySealer {
        KeySealer::new(&[byte; 32]).unwrap()
    }

    #[test]
    fn a_sealed_key_opens_to_the_same_key_and_holds_no_der() {
        let sealer = sealer(1);
        for key in fixture() {
            let stored = sealer.seal(key).unwrap();
            let PrivateKeyAtRest::Sealed(bytes) = &stored.private_key else {
                panic!("not sealed: {stored:?}");
            };
            assert!(!bytes
                .windows(16)
                .any(|w| key.private_der.windows(16).any(|d| d == w)));
            assert_eq!(stored.public_jwk, key.public_jwk);
            assert_eq!(&sealer.open(stored).unwrap(), key);
        }
    }

    #[test]
    fn a_sealed_key_opens_only_under_its_kid_and_key() {
        let key = &fixture()[0];
        let stored = sealer(1).seal(key).unwrap();
        let moved = StoredSigningKey {
            kid: "another-row".into(),
            ..stored.clone()
        };
        let err = sealer(1).open(moved).unwrap_err();
        assert!(err.to_string().contains("signing-keys.key"), "{err}");
        assert!(sealer(2).open(stored).is_err());
    }

    #[test]
    fn only_plain_keys_are_sealed_on_upgrade() {
        let sealer = sealer(1);
        let keys = &fixture()[..2];
        let plain = StoredSigningKey {
            private_key: PrivateKeyAtRest::Plain(keys[0].private_der.clone()),
            ..sealer.seal(&keys[0]).unwrap()
        };
        let sealed = sealer.seal(&keys[1]).unwrap();
        let upgraded = sealer.seal_plain(&[plain, sealed]).unwrap();
        assert_eq!(upgraded.len(), 1);
        assert_eq!(upgraded[0].kid, keys[0].kid);
        assert!(matches!(
            upgraded[0].private_key,
            PrivateKeyAtRest::Sealed(_)
        ));
        assert_eq!(sealer.open(upgraded[0].clone()).unwrap(), keys[0]);
    }
}
