//! Using a client assertion or a DPoP proof up: its `jti` goes into the store's replay
//! cache, which every node of a cluster shares, under a key that names what it was.

use aws_lc_rs::digest::{digest, SHA256};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;

use crate::server::state::AppState;

/// A `jti` to use once, and until when it must stay used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UseOnce {
    /// SHA-256 of what it is, base64url: fixed length, whatever the `jti` holds.
    key: String,
    until: i64,
}

impl UseOnce {
    /// A client assertion's `jti`, unique per client (RFC 7523 §3 item 7).
    pub fn assertion(client_id: &str, jti: &str, until: i64) -> UseOnce {
        UseOnce::new(&["assertion", client_id, jti], until)
    }

    /// A DPoP proof's `jti`, unique per proof key (RFC 9449 §11.1).
    pub fn dpop(jkt: &str, jti: &str, until: i64) -> UseOnce {
        UseOnce::new(&["dpop", jkt, jti], until)
    }

    fn new(parts: &[&str], until: i64) -> UseOnce {
        // Each part length-prefixed: no two different lists of parts hash the same input.
        let mut input = Vec::new();
        for part in parts {
            input.extend_from_slice(&(part.len() as u64).to_be_bytes());
            input.extend_from_slice(part.as_bytes());
        }
        UseOnce {
            key: URL_SAFE_NO_PAD.encode(digest(&SHA256, &input)),
            until,
        }
    }
}

/// Marks `what` used; `Ok(false)` when it was already: a replay. `Err` carries the cause of
/// a store failure, for the log.
pub async fn use_once(state: &AppState, what: UseOnce, now: i64) -> Result<bool, String> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.use_once(&what.key, what.until, now))
        .await
        .map_err(|e| format!("the replay cache task failed: {e}"))?
        .map_err(|e| format!("the replay cache is unavailable: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_apart_what_was_used_and_by_whom() {
        let a = UseOnce::assertion("c1", "j", 9);
        assert_eq!(a, UseOnce::assertion("c1", "j", 9));
        assert_ne!(a.key, UseOnce::assertion("c2", "j", 9).key);
        assert_ne!(a.key, UseOnce::dpop("c1", "j", 9).key);
        // Boundaries count: ("ab", "c") is not ("a", "bc").
        assert_ne!(
            UseOnce::assertion("ab", "c", 9).key,
            UseOnce::assertion("a", "bc", 9).key
        );
        assert_eq!(a.key.len(), 43);
    }
}
