//! Compiled rules kept on disk, loaded back only if this server sealed them.
//!
//! `Component::deserialize` trusts its input (native code), so a stored artifact carries an
//! HMAC-SHA256 tag under a key of the data directory. A wrong tag, another engine version or
//! any other refusal means "recompile from source", never "run it anyway".

use aws_lc_rs::hmac;
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use wasmtime::component::Component;
use wasmtime::Engine;

const MAGIC: &[u8; 8] = b"THART001";
const TAG_LEN: usize = 32;

/// The key that authenticates this server's artifacts.
pub struct ArtifactKey(hmac::Key);

impl std::fmt::Debug for ArtifactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ArtifactKey(..)")
    }
}

/// Why a stored artifact was not loaded.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactError {
    #[error("not a tokenhost artifact")]
    NotAnArtifact,
    #[error("the artifact's tag does not match this server's key")]
    BadTag,
    #[error("the artifact was built by an incompatible engine: {0}")]
    Incompatible(String),
    #[error("cannot serialize the compiled rule: {0}")]
    Serialize(String),
    #[error("cannot generate a key: the system random source failed")]
    Random,
}

impl ArtifactKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        ArtifactKey(hmac::Key::new(hmac::HMAC_SHA256, bytes))
    }

    /// A fresh random key; returns its bytes too, for whoever persists it.
    pub fn generate() -> Result<(Self, [u8; 32]), ArtifactError> {
        let mut bytes = [0u8; 32];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| ArtifactError::Random)?;
        Ok((ArtifactKey::from_bytes(&bytes), bytes))
    }

    pub(crate) fn seal(&self, component: &Component) -> Result<Vec<u8>, ArtifactError> {
        let payload = component
            .serialize()
            .map_err(|e| ArtifactError::Serialize(format!("{e:#}")))?;
        let tag = hmac::sign(&self.0, &payload);
        let mut out = Vec::with_capacity(MAGIC.len() + TAG_LEN + payload.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(tag.as_ref());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    pub(crate) fn open(&self, engine: &Engine, sealed: &[u8]) -> Result<Component, ArtifactError> {
        let rest = sealed
            .strip_prefix(MAGIC.as_slice())
            .ok_or(ArtifactError::NotAnArtifact)?;
        if rest.len() < TAG_LEN {
            return Err(ArtifactError::NotAnArtifact);
        }
        let (tag, payload) = rest.split_at(TAG_LEN);
        hmac::verify(&self.0, payload, tag).map_err(|_| ArtifactError::BadTag)?;
        // SAFETY: the payload is exactly what `seal` produced from `Component::serialize` in
        // a server holding this key (the HMAC tag proves it); wasmtime itself rejects bytes
        // from another engine version or configuration.
        #[allow(unsafe_code)]
        let component = unsafe { Component::deserialize(engine, payload) };
        component.map_err(|e| ArtifactError::Incompatible(format!("{e:#}")))
    }
}

#[cfg(test)]
mod tests {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine as _;

    use super::*;

    /// An artifact whose tag ring 0.17 (the releases before aws-lc-rs) made under `[3; 32]`:
    /// the tag must still verify, so the bytes reach wasmtime (which refuses these: they are
    /// no component) instead of being taken for another server's.
    #[test]
    fn a_tag_ring_made_still_verifies() {
        let tag = STANDARD
            .decode("kAiV1sNuYo2ZmkANnc97RKupT2AuF4M5QeQBxXBb4Z0=")
            .unwrap();
        let payload = b"not a serialized component";
        let sealed = |tag: &[u8]| [MAGIC.as_slice(), tag, payload].concat();
        let key = ArtifactKey::from_bytes(&[3; 32]);
        let engine = Engine::default();
        assert!(matches!(
            key.open(&engine, &sealed(&tag)),
            Err(ArtifactError::Incompatible(_))
        ));
        let mut forged = tag.clone();
        forged[0] ^= 1;
        assert!(matches!(
            key.open(&engine, &sealed(&forged)),
            Err(ArtifactError::BadTag)
        ));
    }
}
