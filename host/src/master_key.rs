//! One master key for a cluster: every node of a cluster is given the same
//! `TOKENHOST_MASTER_KEY`, and each of the server's own keys derives from it (HKDF-SHA256,
//! one label per purpose), so a node with an empty data directory serves everything.
//!
//! The database keeps only a check value (one more derivation, under its own label), so a
//! node given another master key refuses to start instead of failing on every secret.

use aws_lc_rs::hkdf;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;

use crate::datadir::ServerKey;

pub const KEY_LEN: usize = 32;

/// Fixed, public: HKDF's salt only separates tokenhost's derivations from any other use of
/// the same key material (RFC 5869 §3.1).
const SALT: &[u8] = b"tokenhost master key v1";

/// The master key. Its `Debug` never shows it.
#[derive(Clone)]
pub struct MasterKey(hkdf::Prk);

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(redacted)")
    }
}

#[derive(Debug, thiserror::Error)]
#[error("master_key (TOKENHOST_MASTER_KEY) must be the base64 of exactly 32 bytes")]
pub struct BadMasterKey;

/// `[u8; 32]` as an HKDF output length.
struct Len32;

impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        KEY_LEN
    }
}

impl MasterKey {
    pub fn from_base64(text: &str) -> Result<MasterKey, BadMasterKey> {
        let bytes = STANDARD.decode(text.trim()).map_err(|_| BadMasterKey)?;
        let key = <[u8; KEY_LEN]>::try_from(bytes).map_err(|_| BadMasterKey)?;
        Ok(MasterKey(
            hkdf::Salt::new(hkdf::HKDF_SHA256, SALT).extract(&key),
        ))
    }

    /// The key for `purpose`.
    pub fn derive(&self, purpose: ServerKey) -> [u8; KEY_LEN] {
        self.expand(label(purpose))
    }

    /// What the database keeps to recognise this key: a derivation no server key uses.
    pub fn check_value(&self) -> String {
        STANDARD.encode(self.expand(b"tokenhost master key check v1"))
    }

    fn expand(&self, label: &'static [u8]) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        let info = [label];
        // Fails only for an output longer than 255 hash lengths; 32 bytes never is.
        if let Ok(okm) = self.0.expand(&info, Len32) {
            let _ = okm.fill(&mut out);
        }
        out
    }
}

/// One label per purpose: never reuse one for another purpose, never change one (the keys
/// it derived would change with it).
fn label(purpose: ServerKey) -> &'static [u8] {
    match purpose {
        ServerKey::Artifacts => b"tokenhost artifacts v1",
        ServerKey::SecretHashes => b"tokenhost client secret hashes v1",
        ServerKey::RuleSecrets => b"tokenhost rule secrets v1",
        ServerKey::SigningKeys => b"tokenhost signing keys v1",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn each_purpose_gets_its_own_stable_key() {
        let master = MasterKey::from_base64(KEY).unwrap();
        let again = MasterKey::from_base64(KEY).unwrap();
        let purposes = ServerKey::ALL;
        let keys: Vec<_> = purposes.iter().map(|p| master.derive(*p)).collect();
        for (i, key) in keys.iter().enumerate() {
            assert_eq!(*key, again.derive(purposes[i]));
            assert_ne!(*key, [0u8; KEY_LEN]);
            for other in &keys[i + 1..] {
                assert_ne!(key, other);
            }
        }
        assert_eq!(master.check_value(), again.check_value());
    }

    #[test]
    fn another_master_key_derives_other_keys_and_check_value() {
        let a = MasterKey::from_base64(KEY).unwrap();
        let b = MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap();
        assert_ne!(
            a.derive(ServerKey::SigningKeys),
            b.derive(ServerKey::SigningKeys)
        );
        assert_ne!(a.check_value(), b.check_value());
        // The check value is not the key, nor any derived key.
        assert_ne!(a.check_value(), KEY);
        assert_ne!(
            a.check_value(),
            STANDARD.encode(a.derive(ServerKey::SigningKeys))
        );
    }

    #[test]
    fn only_32_bytes_of_base64_are_a_master_key() {
        for bad in [
            "",
            "not base64!",
            &STANDARD.encode([1u8; 31]),
            &STANDARD.encode([1u8; 33]),
        ] {
            assert!(MasterKey::from_base64(bad).is_err(), "{bad:?}");
        }
    }

    /// What ring 0.17 (the releases before aws-lc-rs) derived from KEY: a cluster's keys,
    /// and the check value in its database, must not change with the library.
    #[test]
    fn derives_what_ring_derived() {
        let master = MasterKey::from_base64(KEY).unwrap();
        let hex =
            |bytes: [u8; KEY_LEN]| -> String { bytes.iter().map(|b| format!("{b:02x}")).collect() };
        let expected = [
            (
                ServerKey::Artifacts,
                "4fb27546c38ef09e6919b84c3665cd2bcb9f53303e543e45ca80035ba77bce77",
            ),
            (
                ServerKey::SecretHashes,
                "3d493253cdae4246218931bcda95115e677a263dc1d5e3663afb1eec4e76d3f7",
            ),
            (
                ServerKey::RuleSecrets,
                "20842965d23710c630bad994c2458c54e1f07b005bf8a08df87b0e3f306d4068",
            ),
            (
                ServerKey::SigningKeys,
                "1be367f96492dfbb2e30b2d84fcae981646a44588c13ce98eff704148ed56c90",
            ),
        ];
        assert_eq!(expected.len(), ServerKey::ALL.len());
        for (purpose, key) in expected {
            assert_eq!(hex(master.derive(purpose)), key, "{purpose:?}");
        }
        assert_eq!(
            master.check_value(),
            "Ppf2LTpiCsM5r0kO9ftKWqDrczxQOqRnyH27uOyCjyg="
        );
    }

    #[test]
    fn debug_never_shows_the_key() {
        let shown = format!("{:?}", MasterKey::from_base64(KEY).unwrap());
        assert!(
            !shown.contains(KEY) && shown.contains("redacted"),
            "{shown}"
        );
    }
}
