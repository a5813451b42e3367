//! Encryption at rest for rule secrets and private signing keys: AES-256-GCM with a random
//! 96-bit nonce per value.
//!
//! The associated data names what a value is and where it belongs (a rule secret of this
//! rule and name, the private key of this kid), so a sealed value copied to another row of
//! the database no longer opens. Each kind has its own key (`datadir::server_key`): rule
//! secrets the configured `secrets_key` or `secrets.key`, signing keys `signing-keys.key`.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

use crate::config::Config;
use crate::datadir::{self, DataDirError, ServerKey};

/// Why a value could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("the crypto library refused the key as an AES-256 key")]
    BadKey,
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    #[error("the system random source failed")]
    Random,
    #[error("encryption failed")]
    Seal,
    /// Wrong key, wrong associated data, or tampered bytes: AEAD cannot tell which.
    #[error("the sealed value does not open with this key and place")]
    Open,
}

/// Seals and opens values under one key.
pub struct SecretBox {
    key: LessSafeKey,
    random: SystemRandom,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(..)")
    }
}

impl SecretBox {
    pub fn new(key: &[u8; 32]) -> Result<SecretBox, SecretBoxError> {
        let unbound = UnboundKey::new(&AES_256_GCM, key).map_err(|_| SecretBoxError::BadKey)?;
        Ok(SecretBox {
            key: LessSafeKey::new(unbound),
            random: SystemRandom::new(),
        })
    }

    /// The rule secrets' box: the configured key, else the data directory's (created on
    /// first use, mode 0600).
    pub fn from_config(config: &Config) -> Result<SecretBox, SecretBoxError> {
        SecretBox::new(&datadir::server_key(config, ServerKey::RuleSecrets)?)
    }

    /// `nonce || ciphertext || tag`.
    pub fn seal(&self, aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let mut nonce = [0u8; NONCE_LEN];
        self.random
            .fill(&mut nonce)
            .map_err(|_| SecretBoxError::Random)?;
        let mut in_out = plaintext.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| SecretBoxError::Seal)?;
        let mut sealed = Vec::with_capacity(NONCE_LEN + in_out.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&in_out);
        Ok(sealed)
    }

    pub fn open(&self, aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        let (nonce, ciphertext) = sealed
            .split_first_chunk::<NONCE_LEN>()
            .ok_or(SecretBoxError::Open)?;
        let mut in_out = ciphertext.to_vec();
        let plaintext = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(*nonce),
                Aad::from(aad),
                &mut in_out,
            )
            .map_err(|_| SecretBoxError::Open)?;
        Ok(plaintext.to_vec())
    }

    /// Seals a rule secret's value, bound to its rule and name.
    pub fn seal_rule_secret(
        &self,
        rule_id: &str,
        name: &str,
        value: &str,
    ) -> Result<Vec<u8>, SecretBoxError> {
        self.seal(&rule_secret_aad(rule_id, name), value.as_bytes())
    }

    /// Opens what [`SecretBox::seal_rule_secret`] sealed for the same rule and name.
    pub fn open_rule_secret(
        &self,
        rule_id: &str,
        name: &str,
        sealed: &[u8],
    ) -> Result<String, SecretBoxError> {
        let bytes = self.open(&rule_secret_aad(rule_id, name), sealed)?;
        String::from_utf8(bytes).map_err(|_| SecretBoxError::Open)
    }

    /// Seals a private signing key (its DER), bound to its kid.
    pub fn seal_signing_key(&self, kid: &str, der: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        self.seal(&aad(SIGNING_KEY_LABEL, &[kid]), der)
    }

    /// Opens what [`SecretBox::seal_signing_key`] sealed for the same kid.
    pub fn open_signing_key(&self, kid: &str, sealed: &[u8]) -> Result<Vec<u8>, SecretBoxError> {
        self.open(&aad(SIGNING_KEY_LABEL, &[kid]), sealed)
    }
}

/// What each kind of sealed value is, first in its associated data: a value of one kind
/// never opens as another, even under the same key.
const RULE_SECRET_LABEL: &[u8] = b"tokenhost rule secret v1\0";
const SIGNING_KEY_LABEL: &[u8] = b"tokenhost signing key v1\0";

fn rule_secret_aad(rule_id: &str, name: &str) -> Vec<u8> {
    aad(RULE_SECRET_LABEL, &[rule_id, name])
}

/// The label, then each part length-prefixed, so no parts can spell the same bytes as
/// others.
fn aad(label: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut aad =
        Vec::with_capacity(label.len() + parts.iter().map(|p| 8 + p.len()).sum::<usize>());
    aad.extend_from_slice(label);
    for part in parts {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;

    fn boxed() -> SecretBox {
        SecretBox::new(&[7u8; 32]).unwrap()
    }

    #[test]
    fn a_value_round_trips_with_a_fresh_nonce_each_time() {
        let secret_box = boxed();
        let a = secret_box
            .seal_rule_secret("rul_1", "API_KEY", "s3cr3t")
            .unwrap();
        let b = secret_box
            .seal_rule_secret("rul_1", "API_KEY", "s3cr3t")
            .unwrap();
        assert_ne!(a, b, "the nonce must differ per value");
        assert!(!a.windows(6).any(|w| w == b"s3cr3t"));
        assert_eq!(
            secret_box.open_rule_secret("rul_1", "API_KEY", &a).unwrap(),
            "s3cr3t"
        );
        assert_eq!(
            secret_box.open_rule_secret("rul_1", "API_KEY", &b).unwrap(),
            "s3cr3t"
        );
    }

    #[test]
    fn a_value_moved_to_another_rule_or_name_does_not_open() {
        let secret_box = boxed();
        let sealed = secret_box
            .seal_rule_secret("rul_1", "API_KEY", "v")
            .unwrap();
        assert!(matches!(
            secret_box.open_rule_secret("rul_2", "API_KEY", &sealed),
            Err(SecretBoxError::Open)
        ));
        assert!(matches!(
            secret_box.open_rule_secret("rul_1", "OTHER", &sealed),
            Err(SecretBoxError::Open)
        ));
        // The boundary between id and name is part of the associated data.
        let sealed = secret_box.seal_rule_secret("rul_1A", "B", "v").unwrap();
        assert!(secret_box.open_rule_secret("rul_1", "AB", &sealed).is_err());
    }

    #[test]
    fn tampered_bytes_or_another_key_do_not_open() {
        let secret_box = boxed();
        let sealed = secret_box.seal_rule_secret("rul_1", "K", "value").unwrap();
        for i in 0..sealed.len() {
            let mut tampered = sealed.clone();
            tampered[i] ^= 0x01;
            assert!(
                secret_box
                    .open_rule_secret("rul_1", "K", &tampered)
                    .is_err(),
                "flipping byte {i} went unnoticed"
            );
        }
        assert!(secret_box
            .open_rule_secret("rul_1", "K", &sealed[..sealed.len() - 1])
            .is_err());
        assert!(secret_box.open_rule_secret("rul_1", "K", &[]).is_err());
        let other = SecretBox::new(&[8u8; 32]).unwrap();
        assert!(other.open_rule_secret("rul_1", "K", &sealed).is_err());
    }

    #[test]
    fn a_signing_key_opens_only_for_its_kid() {
        let secret_box = boxed();
        let der = b"0\x82private der".to_vec();
        let sealed = secret_box.seal_signing_key("kid-1", &der).unwrap();
        assert!(!sealed.windows(der.len()).any(|w| w == der));
        assert_eq!(secret_box.open_signing_key("kid-1", &sealed).unwrap(), der);
        assert!(matches!(
            secret_box.open_signing_key("kid-2", &sealed),
            Err(SecretBoxError::Open)
        ));
        // A sealed key is not a rule secret, nor the other way round.
        assert!(secret_box.open_rule_secret("kid-1", "", &sealed).is_err());
        let secret = secret_box.seal_rule_secret("kid-1", "K", "v").unwrap();
        assert!(secret_box.open_signing_key("kid-1", &secret).is_err());
    }

    /// Sealed under `[7; 32]` by ring 0.17, the library of the releases before aws-lc-rs: a
    /// data directory's sealed values must open whatever library seals new ones.
    #[test]
    fn opens_what_ring_sealed() {
        let secret_box = boxed();
        let rule_secret = STANDARD
            .decode("dNNSzxL7lK2CLJbfbQZwVWFf3Fjevnqx9+0039+FEHPxpw==")
            .unwrap();
        assert_eq!(
            secret_box
                .open_rule_secret("rul_1", "API_KEY", &rule_secret)
                .unwrap(),
            "s3cr3t"
        );
        let signing_key = STANDARD
            .decode("My4Mp6ykuSNYDHXy2hxm3QL71GjPRU7IXC/5AqTdPQC6dbPvJkrzpME=")
            .unwrap();
        assert_eq!(
            secret_box.open_signing_key("kid-1", &signing_key).unwrap(),
            b"0\x82private der"
        );
    }

    #[test]
    fn the_configured_key_must_be_32_bytes_of_base64() {
        let config = |key: &str| Config {
            secrets_key: Some(key.to_string()),
            ..Config::default()
        };
        assert!(SecretBox::from_config(&config(&STANDARD.encode([1u8; 32]))).is_ok());
        assert!(matches!(
            SecretBox::from_config(&config(&STANDARD.encode([1u8; 16]))),
            Err(SecretBoxError::DataDir(DataDirError::BadConfiguredKey))
        ));
        assert!(matches!(
            SecretBox::from_config(&config("not base64!")),
            Err(SecretBoxError::DataDir(DataDirError::BadConfiguredKey))
        ));
    }
}
