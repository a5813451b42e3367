//! Each client's keys for private_key_jwt, parsed once when the client changes rather than
//! on every token request: the credentials it lists in `client_authentication_methods`.

use std::sync::Arc;

use crate::client_auth::VerifyingKey;
use crate::store::{AssertionAlg, Client};

/// A credential that may sign the client's assertions, ready to verify.
#[derive(Debug, Clone)]
pub struct CredentialKey {
    pub credential_id: String,
    pub kid: String,
    pub alg: AssertionAlg,
    pub expires_at: Option<i64>,
    pub key: VerifyingKey,
}

impl CredentialKey {
    pub fn is_active(&self, now: i64) -> bool {
        self.expires_at.is_none_or(|at| at > now)
    }
}

/// The keys of `client`'s enabled credentials; `None` when it has none. A stored JWK that
/// no longer parses (written by a newer release, or damaged) is left out and logged: the
/// client's other credentials keep working.
pub fn of(client: &Client) -> Option<Arc<[CredentialKey]>> {
    let enabled = &client.authentication.private_key_jwt;
    let keys: Vec<CredentialKey> = client
        .credentials
        .iter()
        .filter(|c| enabled.contains(&c.id))
        .filter_map(|c| match VerifyingKey::from_jwk(&c.jwk, c.alg) {
            Ok(key) => Some(CredentialKey {
                credential_id: c.id.clone(),
                kid: c.kid.clone(),
                alg: c.alg,
                expires_at: c.expires_at,
                key,
            }),
            Err(error) => {
                tracing::warn!(client_id = %client.client_id, credential = %c.id, %error,
                    "a stored credential cannot verify: left out");
                None
            }
        })
        .collect();
    (!keys.is_empty()).then(|| keys.into())
}
