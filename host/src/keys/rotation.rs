//! Key rotation as pure functions: given the stored keys, which keys to write or delete.
//!
//! A key is published as `Next` before it signs, so verifiers that cache the JWKS already
//! know it when it becomes `Current`; a `Retired` key stays published until every token it
//! signed has expired. Callers write the returned keys (upsert by kid) in one transaction,
//! then build a new `KeySet`.

use super::{generate, KeyError, LEEWAY_SECS};
use crate::store::{KeyState, SigningAlg, SigningKey};

/// The keys needed so that every algorithm has a `Current` and a `Next` key.
///
/// Empty when nothing is missing. An algorithm without a `Current` key is rotated (its
/// oldest `Next`, already published, becomes `Current`), so the result may contain existing
/// keys with a new state.
pub fn missing(existing: &[SigningKey], now: i64) -> Result<Vec<SigningKey>, KeyError> {
    let mut out = Vec::new();
    for alg in SigningAlg::ALL {
        let has = |state: KeyState| existing.iter().any(|k| k.alg == alg && k.state == state);
        if !has(KeyState::Current) {
            out.extend(rotate(existing, alg, now)?);
        } else if !has(KeyState::Next) {
            out.push(generate(alg, KeyState::Next, now)?);
        }
    }
    Ok(out)
}

/// One rotation step for `alg`: every `Current` key becomes `Retired` (at `now`), the oldest
/// `Next` key becomes `Current` (a fresh one is generated if there is none), and a fresh
/// `Next` key is generated. Returns only the changed and new keys.
pub fn rotate(
    existing: &[SigningKey],
    alg: SigningAlg,
    now: i64,
) -> Result<Vec<SigningKey>, KeyError> {
    let of_alg = || existing.iter().filter(move |k| k.alg == alg);
    let mut out: Vec<SigningKey> = of_alg()
        .filter(|k| k.state == KeyState::Current)
        .map(|k| SigningKey {
            state: KeyState::Retired,
            retired_at: Some(now),
            ..k.clone()
        })
        .collect();
    let oldest_next = of_alg()
        .filter(|k| k.state == KeyState::Next)
        .min_by(|a, b| (a.created_at, &a.kid).cmp(&(b.created_at, &b.kid)));
    out.push(match oldest_next {
        Some(next) => SigningKey {
            state: KeyState::Current,
            ..next.clone()
        },
        None => generate(alg, KeyState::Current, now)?,
    });
    out.push(generate(alg, KeyState::Next, now)?);
    Ok(out)
}

/// The keys once `changed` is written over `existing` (upsert by kid, as the store does):
/// what a rotation leaves, known before it is stored.
pub fn applied(existing: &[SigningKey], changed: &[SigningKey]) -> Vec<SigningKey> {
    let mut keys = existing.to_vec();
    for key in changed {
        match keys.iter_mut().find(|k| k.kid == key.kid) {
            Some(stored) => *stored = key.clone(),
            None => keys.push(key.clone()),
        }
    }
    keys
}

/// Kids of retired keys that may be deleted: every token they signed has expired
/// (`retired_at + max_token_lifetime + LEEWAY_SECS` has passed).
pub fn expired(existing: &[SigningKey], now: i64, max_token_lifetime: i64) -> Vec<String> {
    existing
        .iter()
        .filter(|key| past_retention(key, now, max_token_lifetime))
        .map(|key| key.kid.clone())
        .collect()
}

/// Whether `key` is retired and no longer needed to verify anything. A retired key without
/// `retired_at` is kept: without the time, no token's expiry can be ruled out.
pub(super) fn past_retention(key: &SigningKey, now: i64, max_token_lifetime: i64) -> bool {
    match (key.state, key.retired_at) {
        (KeyState::Retired, Some(retired_at)) => {
            let until = retired_at
                .saturating_add(max_token_lifetime)
                .saturating_add(LEEWAY_SECS);
            until <= now
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::tests::{apply, claims, fixture, keys_where, AUD, ISS, T0};
    use crate::keys::KeySet;

    const MAX: i64 = 3600;

    fn state_of(keys: &[SigningKey], kid: &str) -> KeyState {
        keys.iter().find(|k| k.kid == kid).map(|k| k.state).unwrap()
    }

    #[test]
    fn missing_fills_an_empty_store_then_nothing() {
        let keys = fixture();
        assert_eq!(keys.len(), 6);
        for alg in SigningAlg::ALL {
            for state in [KeyState::Current, KeyState::Next] {
                let n = keys
                    .iter()
                    .filter(|k| k.alg == alg && k.state == state)
                    .count();
                assert_eq!(n, 1, "{alg:?} {state:?}");
            }
        }
        assert!(keys
            .iter()
            .all(|k| k.created_at == T0 && k.retired_at.is_none()));
        assert!(KeySet::new(keys.to_vec()).is_ok());
        assert!(missing(keys, T0 + 1).unwrap().is_empty());
    }

    #[test]
    fn missing_promotes_a_published_next_key() {
        let keys = keys_where(|k| !(k.alg == SigningAlg::EdDSA && k.state == KeyState::Current));
        let next = keys
            .iter()
            .find(|k| k.alg == SigningAlg::EdDSA)
            .unwrap()
            .kid
            .clone();
        let out = missing(&keys, T0 + 5).unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(state_of(&out, &next), KeyState::Current);
        assert!(out
            .iter()
            .any(|k| k.kid != next && k.state == KeyState::Next));

        let mut no_next = fixture().to_vec();
        no_next.retain(|k| !(k.alg == SigningAlg::ES256 && k.state == KeyState::Next));
        let out = missing(&no_next, T0 + 5).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(
            (out[0].alg, out[0].state, out[0].created_at),
            (SigningAlg::ES256, KeyState::Next, T0 + 5)
        );
    }

    #[test]
    fn rotate_moves_states_and_old_tokens_keep_verifying() {
        let before = fixture().to_vec();
        let set = KeySet::new(before.clone()).unwrap();
        let old_current = set.current(SigningAlg::ES256).unwrap().kid.clone();
        let old_next = before
            .iter()
            .find(|k| k.alg == SigningAlg::ES256 && k.state == KeyState::Next)
            .unwrap()
            .kid
            .clone();
        let old_token = set.sign(SigningAlg::ES256, &claims(300)).unwrap();

        let changed = rotate(&before, SigningAlg::ES256, T0 + 60).unwrap();
        assert_eq!(changed.len(), 3);
        assert!(changed.iter().all(|k| k.alg == SigningAlg::ES256));
        let retired = changed.iter().find(|k| k.kid == old_current).unwrap();
        assert_eq!(
            (retired.state, retired.retired_at),
            (KeyState::Retired, Some(T0 + 60))
        );
        assert_eq!(state_of(&changed, &old_next), KeyState::Current);
        let fresh = changed
            .iter()
            .find(|k| k.kid != old_current && k.kid != old_next)
            .unwrap();
        assert_eq!((fresh.state, fresh.created_at), (KeyState::Next, T0 + 60));

        let after = KeySet::new(apply(before, changed)).unwrap();
        assert_eq!(after.current(SigningAlg::ES256).unwrap().kid, old_next);
        assert!(after.verify(&old_token, ISS, AUD).is_ok());
        let new_token = after.sign(SigningAlg::ES256, &claims(300)).unwrap();
        let header = jsonwebtoken::decode_header(&new_token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(old_next.as_str()));

        let published = |now: i64| after.jwks(now, MAX).to_string().contains(&old_current);
        assert!(published(T0 + 60 + MAX));
        assert!(!published(T0 + 60 + MAX + LEEWAY_SECS));
        assert!(expired(after.keys(), T0 + 60 + MAX + LEEWAY_SECS - 1, MAX).is_empty());
        assert_eq!(
            expired(after.keys(), T0 + 60 + MAX + LEEWAY_SECS, MAX),
            vec![old_current]
        );
    }

    #[test]
    fn rotate_without_next_generates_current_directly() {
        let before = keys_where(|k| k.alg == SigningAlg::EdDSA && k.state == KeyState::Current);
        let changed = rotate(&before, SigningAlg::EdDSA, T0 + 1).unwrap();
        let states: Vec<KeyState> = changed.iter().map(|k| k.state).collect();
        assert_eq!(
            states,
            [KeyState::Retired, KeyState::Current, KeyState::Next]
        );
        assert_eq!(changed[0].kid, before[0].kid);
        assert!(changed[1..]
            .iter()
            .all(|k| k.created_at == T0 + 1 && k.kid != before[0].kid));
        assert!(KeySet::new(apply(before, changed)).is_ok());

        // An empty store: rotation is bootstrap.
        let fresh = rotate(&[], SigningAlg::EdDSA, T0).unwrap();
        let states: Vec<KeyState> = fresh.iter().map(|k| k.state).collect();
        assert_eq!(states, [KeyState::Current, KeyState::Next]);
    }

    #[test]
    fn expired_only_lists_retired_keys_past_retention() {
        let mut keys = fixture().to_vec();
        keys[0].state = KeyState::Retired;
        keys[0].retired_at = Some(T0);
        keys[1].state = KeyState::Retired;
        keys[1].retired_at = None;
        let far_future = T0 + 100 * MAX;
        assert_eq!(expired(&keys, far_future, MAX), vec![keys[0].kid.clone()]);
        assert!(expired(&keys, T0, MAX).is_empty());
        // No overflow on absurd inputs.
        assert!(expired(&keys, i64::MAX - 1, i64::MAX).is_empty());
    }
}
