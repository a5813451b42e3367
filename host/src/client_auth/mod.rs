//! Client authentication without shared secrets: placeholder until the JOSE module lands.

/// Algorithms a client credential (and so a client assertion) may use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub enum AssertionAlg {
    RS256,
    RS384,
    PS256,
    ES256,
    EdDSA,
}

impl AssertionAlg {
    pub const ALL: [AssertionAlg; 5] = [
        AssertionAlg::RS256,
        AssertionAlg::RS384,
        AssertionAlg::PS256,
        AssertionAlg::ES256,
        AssertionAlg::EdDSA,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::RS256 => "RS256",
            AssertionAlg::RS384 => "RS384",
            AssertionAlg::PS256 => "PS256",
            AssertionAlg::ES256 => "ES256",
            AssertionAlg::EdDSA => "EdDSA",
        }
    }

    pub fn parse(s: &str) -> Option<AssertionAlg> {
        AssertionAlg::ALL.into_iter().find(|alg| alg.as_str() == s)
    }
}

/// Placeholder until the JOSE module lands.
pub mod credential {
    use super::AssertionAlg;

    pub struct ParsedCredential {
        pub jwk: serde_json::Value,
        pub kid: String,
        pub not_after: Option<i64>,
    }

    pub fn parse_pem(_pem: &str, _alg: AssertionAlg) -> Result<ParsedCredential, String> {
        Err("not yet".into())
    }
}

pub fn thumbprint(_jwk: &serde_json::Value) -> Result<String, String> {
    Err("not yet".into())
}

#[derive(Clone, Debug)]
pub struct VerifyingKey;

impl VerifyingKey {
    pub fn from_jwk(_jwk: &serde_json::Value, _alg: AssertionAlg) -> Result<VerifyingKey, String> {
        Err("not yet".into())
    }
}

pub mod assertion {
    use super::{AssertionAlg, VerifyingKey};
    pub const LEEWAY_SECONDS: i64 = 30;
    pub const MAX_LIFETIME_SECONDS: i64 = 300;
    pub const MAX_ASSERTION_BYTES: usize = 8192;
    pub fn unverified_subject(_assertion: &str) -> Result<String, String> {
        Err("not yet".into())
    }
    pub struct AssertionKey<'a> {
        pub credential_id: &'a str,
        pub kid: &'a str,
        pub alg: AssertionAlg,
        pub key: &'a VerifyingKey,
    }
    pub struct Expectations<'a> {
        pub client_id: &'a str,
        pub audiences: &'a [&'a str],
        pub now: i64,
    }
    pub struct VerifiedAssertion {
        pub credential_id: String,
        pub jti: String,
        pub replay_until: i64,
    }
    pub fn verify(
        _assertion: &str,
        _keys: &[AssertionKey<'_>],
        _expect: &Expectations<'_>,
    ) -> Result<VerifiedAssertion, String> {
        Err("not yet".into())
    }
}

pub mod dpop {
    pub const MAX_PROOF_BYTES: usize = 8192;
    pub const PROOF_MAX_AGE_SECONDS: i64 = 60;
    pub const PROOF_LEEWAY_SECONDS: i64 = 5;
    pub const PROOF_ALGS: &[&str] = &["ES256", "RS256", "PS256", "EdDSA"];
    pub struct DpopProof {
        pub jkt: String,
        pub jti: String,
        pub replay_until: i64,
    }
    pub fn verify(_proof: &str, _htm: &str, _htu: &str, _now: i64) -> Result<DpopProof, String> {
        Err("not yet".into())
    }
}
