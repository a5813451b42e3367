//! What tokenhost stores: APIs, clients, grants, rules and signing keys.
//!
//! Plain data; no storage or HTTP concerns. Times are Unix seconds.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use crate::client_auth::AssertionAlg;
use crate::redacted::Redacted;

/// The algorithm an API's tokens are signed with.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
pub enum SigningAlg {
    RS256,
    ES256,
    EdDSA,
}

impl SigningAlg {
    pub const ALL: [SigningAlg; 3] = [SigningAlg::RS256, SigningAlg::ES256, SigningAlg::EdDSA];

    pub fn as_str(self) -> &'static str {
        match self {
            SigningAlg::RS256 => "RS256",
            SigningAlg::ES256 => "ES256",
            SigningAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<SigningAlg> {
        SigningAlg::ALL.into_iter().find(|alg| alg.as_str() == s)
    }
}

/// One scope an API defines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ScopeDef {
    /// Non-empty, without spaces.
    #[schema(pattern = r"^\S+$", example = "read:invoices")]
    pub value: String,
    #[serde(default)]
    pub description: String,
}

/// An API (resource server): the audience tokens are issued for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceServer {
    pub id: String,
    /// The audience value.
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<ScopeDef>,
    /// Access token lifetime in seconds.
    pub token_lifetime: u32,
    pub signing_alg: SigningAlg,
    /// May rules add scopes beyond the client's grant?
    pub allow_rule_added_scopes: bool,
    pub created_at: i64,
}

/// A keyed hash of a client secret, and when it stops being accepted (`None`: never).
/// Its `Debug` leaves the hash out, as the audit trail does.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretHash {
    pub hash: Vec<u8>,
    pub expires_at: Option<i64>,
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretHash")
            .field("hash", &Redacted)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// A machine-to-machine client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub client_metadata: BTreeMap<String, String>,
    /// Always `non_interactive` for now.
    pub app_type: String,
    /// The current secret's hash first; older ones during a rotation's grace period.
    pub secrets: Vec<SecretHash>,
    pub created_at: i64,
    /// This client's own token rate limit; `None`: the server's default.
    pub token_rate_limit: Option<RateLimit>,
    /// How it may authenticate and whether its tokens must be DPoP-bound.
    pub authentication: ClientAuthentication,
    /// Its public keys, for private_key_jwt: at most [`MAX_CLIENT_CREDENTIALS`].
    pub credentials: Vec<ClientCredential>,
}

/// The most public-key credentials one client holds.
pub const MAX_CLIENT_CREDENTIALS: usize = 10;

/// A way to send a client secret (RFC 6749 §2.3.1, RFC 7591 §2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SecretMethod {
    ClientSecretPost,
    ClientSecretBasic,
}

impl SecretMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            SecretMethod::ClientSecretPost => "client_secret_post",
            SecretMethod::ClientSecretBasic => "client_secret_basic",
        }
    }
}

/// How a client proves itself at the token endpoint, as the original platform's client
/// holds it (`token_endpoint_auth_method`, `client_authentication_methods`), and whether
/// its tokens must be sender-constrained (RFC 9449 §5.2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientAuthentication {
    /// The secret method it registered; `None`: its secret is refused (private_key_jwt
    /// only). Either secret method is accepted when one is set (RFC 6749 §2.3.1).
    pub token_endpoint_auth_method: Option<SecretMethod>,
    /// The ids of its credentials that may sign a client assertion.
    #[serde(default)]
    pub private_key_jwt: Vec<String>,
    /// Must every token request carry a DPoP proof?
    #[serde(default)]
    pub dpop_bound_access_tokens: bool,
}

impl Default for ClientAuthentication {
    /// A client secret, sent either way; no assertion; bearer tokens.
    fn default() -> Self {
        ClientAuthentication {
            token_endpoint_auth_method: Some(SecretMethod::ClientSecretPost),
            private_key_jwt: Vec::new(),
            dpop_bound_access_tokens: false,
        }
    }
}

/// A client's public key (`credential_type` `public_key`), as uploaded: what verifies its
/// client assertions while it is enabled for private_key_jwt and not expired.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientCredential {
    pub id: String,
    pub name: String,
    pub alg: AssertionAlg,
    /// The RFC 7638 thumbprint of its public key.
    pub kid: String,
    /// The PEM as uploaded (a public key or a certificate).
    pub pem: String,
    /// Its public key as a JWK, what verifies.
    pub jwk: serde_json::Value,
    pub created_at: i64,
    /// When it stops verifying; `None`: never.
    pub expires_at: Option<i64>,
}

/// The most either figure of a [`RateLimit`] may be (the schema's `maximum` says it too).
pub const MAX_RATE_LIMIT: u32 = 1_000_000;

/// A token rate limit: sustained requests per second, and how many may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000)]
    pub per_second: std::num::NonZeroU32,
    #[schema(value_type = u32, minimum = 1, maximum = 1_000_000)]
    pub burst: std::num::NonZeroU32,
}

/// Permission for a client to get tokens for an audience, with at most these scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientGrant {
    pub id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
    pub created_at: i64,
}

/// Where a rule's code came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// JavaScript source.
    Script(String),
    /// A component built elsewhere (wasm bytes), compiled here.
    Component(Vec<u8>),
}

/// A rule: code run on every client-credentials exchange, in `order`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub id: String,
    pub name: String,
    pub source: RuleSource,
    pub enabled: bool,
    pub order: i64,
    /// The compiled rule, sealed by this server (see rules::ArtifactKey); `None` until
    /// compiled.
    pub artifact: Option<Vec<u8>>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A signing key's place in its rotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    /// Published, not yet signing: verifiers learn it before it is used.
    Next,
    /// Signs new tokens.
    Current,
    /// No longer signs; published until the tokens it signed have expired.
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyState::Next => "next",
            KeyState::Current => "current",
            KeyState::Retired => "retired",
        }
    }

    pub fn parse(s: &str) -> Option<KeyState> {
        [KeyState::Next, KeyState::Current, KeyState::Retired]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// A signing key pair, its private key in the clear: what `keys` generates and signs with.
/// Never stored as such (the store takes a [`StoredSigningKey`]); its `Debug` leaves the
/// private key out.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    /// Private key, DER: PKCS#1 for RSA, PKCS#8 for ES256 and EdDSA.
    pub private_der: Vec<u8>,
    /// The public key as a JWK (with kid, alg and use).
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.alg)
            .field("state", &self.state)
            .field("private_der", &Redacted)
            .field("public_jwk", &self.public_jwk)
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish()
    }
}

/// A signing key as stored: a [`SigningKey`] whose private key is sealed
/// (`keys::KeySealer`), so that a copy of the database alone signs nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredSigningKey {
    pub kid: String,
    pub alg: SigningAlg,
    pub state: KeyState,
    pub private_key: PrivateKeyAtRest,
    pub public_jwk: serde_json::Value,
    pub created_at: i64,
    pub retired_at: Option<i64>,
}

/// A private signing key as the database holds it. Its `Debug` shows neither form.
#[derive(Clone, PartialEq, Eq)]
pub enum PrivateKeyAtRest {
    /// AES-256-GCM under the data directory's signing-keys key, bound to the kid.
    Sealed(Vec<u8>),
    /// DER in the clear: only in rows written before keys were sealed, read so that the
    /// first start can seal them. Never written.
    Plain(Vec<u8>),
}

impl fmt::Debug for PrivateKeyAtRest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrivateKeyAtRest::Sealed(bytes) => write!(f, "Sealed({} bytes)", bytes.len()),
            PrivateKeyAtRest::Plain(_) => f.debug_tuple("Plain").field(&Redacted).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_private_keys_or_secret_hashes() {
        let der = b"-private-der-bytes-".to_vec();
        let key = SigningKey {
            kid: "kid-1".into(),
            alg: SigningAlg::EdDSA,
            state: KeyState::Current,
            private_der: der.clone(),
            public_jwk: serde_json::json!({"kty": "OKP"}),
            created_at: 1,
            retired_at: None,
        };
        let stored = StoredSigningKey {
            kid: key.kid.clone(),
            alg: key.alg,
            state: key.state,
            private_key: PrivateKeyAtRest::Plain(der.clone()),
            public_jwk: key.public_jwk.clone(),
            created_at: 1,
            retired_at: None,
        };
        let sealed = PrivateKeyAtRest::Sealed(der.clone());
        let hash = SecretHash {
            hash: der.clone(),
            expires_at: Some(5),
        };
        // Debug prints a Vec<u8> as its numbers; look for those too.
        let as_numbers = format!("{:?}", &der[..4]);
        let as_numbers = as_numbers.trim_matches(['[', ']']);
        for shown in [
            format!("{key:?}"),
            format!("{key:#?}"),
            format!("{stored:?}"),
            format!("{stored:#?}"),
            format!("{sealed:?}"),
            format!("{hash:?}"),
            format!("{hash:#?}"),
        ] {
            assert!(!shown.contains("private-der"), "{shown}");
            assert!(!shown.contains(as_numbers), "{shown}");
        }
        assert!(format!("{key:?}").contains("kid-1"));
        assert!(format!("{key:?}").contains("[redacted]"));
        assert!(format!("{hash:?}").contains("expires_at: Some(5)"));
    }
}
