//! Client credentials: random identifiers and secrets, and secrets stored only as keyed
//! hashes, compared in constant time.

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

/// Random bytes behind a client secret (64 characters of `[A-Za-z0-9_-]`, 384 bits).
const SECRET_BYTES: usize = 48;
/// Random bytes behind an identifier (32 characters).
const ID_BYTES: usize = 24;

#[derive(Debug, thiserror::Error)]
#[error("the system random source failed")]
pub struct RandomError;

/// `len` random bytes, base64url without padding (identifiers, secrets, a token's `jti`).
pub fn random_b64(len: usize) -> Result<String, RandomError> {
    let mut bytes = vec![0u8; len];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| RandomError)?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}

/// A new client secret: `[A-Za-z0-9_-]` only, so Basic's form-encoding never changes it.
pub fn generate_secret() -> Result<String, RandomError> {
    random_b64(SECRET_BYTES)
}

/// A new random identifier (client ids, rule ids, ...), with a readable prefix.
pub fn generate_id(prefix: &str) -> Result<String, RandomError> {
    Ok(format!("{prefix}{}", random_b64(ID_BYTES)?))
}

/// Hashes and checks client secrets under the data directory's secret-hash key.
pub struct SecretHasher(hmac::Key);

impl std::fmt::Debug for SecretHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretHasher(..)")
    }
}

impl SecretHasher {
    pub fn new(key: &[u8; 32]) -> Self {
        SecretHasher(hmac::Key::new(hmac::HMAC_SHA256, key))
    }

    pub fn hash(&self, secret: &str) -> Vec<u8> {
        hmac::sign(&self.0, secret.as_bytes()).as_ref().to_vec()
    }

    /// Constant-time comparison of `secret` against a stored hash.
    pub fn verify(&self, secret: &str, hash: &[u8]) -> bool {
        hmac::verify(&self.0, secret.as_bytes(), hash).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    #[test]
    fn secrets_are_long_and_form_safe() {
        let secret = generate_secret().unwrap();
        assert_eq!(secret.len(), 64);
        assert!(secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_'));
        assert_ne!(secret, generate_secret().unwrap());
    }

    #[test]
    fn only_the_right_secret_verifies() {
        let hasher = SecretHasher::new(&[7; 32]);
        let hash = hasher.hash("s3cret");
        assert!(hasher.verify("s3cret", &hash));
        assert!(!hasher.verify("s3cres", &hash));
        assert!(!SecretHasher::new(&[8; 32]).verify("s3cret", &hash));
    }

    /// A stored hash made by ring 0.17 (the releases before aws-lc-rs) under `[7; 32]`:
    /// clients registered then must keep authenticating.
    #[test]
    fn hashes_as_ring_did() {
        let secret = "Xq3-ZcT_8rL0pVw2yNb6Hs1KmJd9FgAeUo4iRt7QaBcDeFgHiJkLmNoPqRsTuVwX";
        let stored = STANDARD
            .decode("+wd+hgzp0Ra1+rL/jFaSAznjLMqyI7qA86k30w5HhHs=")
            .unwrap();
        let hasher = SecretHasher::new(&[7; 32]);
        assert_eq!(hasher.hash(secret), stored);
        assert!(hasher.verify(secret, &stored));
    }
}
