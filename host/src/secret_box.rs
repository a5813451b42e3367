//! Encryption at rest for rule secrets: AES-256-GCM with a random 96-bit nonce per value.
//!
//! The associated data names where a value belongs (the rule and the secret's name), so a
//! sealed value copied to another rule or name in the database no longer opens. The key
//! comes from the configuration (`secrets_key`, base64 of 32 bytes) or, failing that, from a
//! file made once in the data directory.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};

use crate::config::Config;
use crate::datadir::{self, DataDirError};

/// Why a value could not be sealed or opened, or the key not loaded.
#[derive(Debug, thiserror::Error)]
pub enum SecretBoxError {
    #[error("secrets_key must be the base64 of exactly 32 bytes")]
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

    /// The configured key, else the data directory's (created on first use, mode 0600).
    pub fn from_config(config: &Config) -> Result<SecretBox, SecretBoxError> {
        let key = match &config.secrets_key {
            Some(b64) => STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
                .ok_or(SecretBoxError::BadKey)?,
            None => datadir::key(&config.data_dir, datadir::SECRETS_KEY_FILE)?,
        };
        SecretBox::new(&key)
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
}

/// Length-prefixed, so no (rule id, name) pair can spell the same bytes as another.
fn rule_secret_aad(rule_id: &str, name: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(32 + rule_id.len() + name.len());
    aad.extend_from_slice(b"tokenhost rule secret v1\0");
    for part in [rule_id, name] {
        aad.extend_from_slice(&(part.len() as u64).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

#[cfg(test)]
mod tests {
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
    fn the_configured_key_must_be_32_bytes_of_base64() {
        let config = |key: &str| Config {
            secrets_key: Some(key.to_string()),
            ..Config::default()
        };
        assert!(SecretBox::from_config(&config(&STANDARD.encode([1u8; 32]))).is_ok());
        assert!(matches!(
            SecretBox::from_config(&config(&STANDARD.encode([1u8; 16]))),
            Err(SecretBoxError::BadKey)
        ));
        assert!(matches!(
            SecretBox::from_config(&config("not base64!")),
            Err(SecretBoxError::BadKey)
        ));
    }
}
