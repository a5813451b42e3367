//! How a client proves who it is with a key instead of a secret: `private_key_jwt` client
//! assertions (RFC 7523, `assertion`) made with a public-key credential (`credential`), and
//! the DPoP proofs (RFC 9449, `dpop`) that bind a token to a key.
//!
//! Pure verification: no storage, no HTTP, no clock (callers pass `now`), no logging. Every
//! error is a short `String` meant for an administrator (`credential`) or for an OAuth
//! client's developer (`error_description`), never holding key material or the token.
//! Signatures are checked by aws-lc-rs, the one crypto stack, with keys parsed once
//! (`VerifyingKey`); the JWS compact form is split and decoded here (`jws`) because every
//! header member must be judged (`alg`, `kid`, `typ`, `jwk`, `crit`) before a key is chosen.

pub mod assertion;
pub mod credential;
pub mod dpop;
mod jwk;
mod jws;
#[cfg(test)]
mod test_keys;

pub use jwk::{thumbprint, VerifyingKey};

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

    /// The JWS `alg` name (RFC 7518 §3.1, RFC 8037 §3.1).
    pub fn as_str(self) -> &'static str {
        match self {
            AssertionAlg::RS256 => "RS256",
            AssertionAlg::RS384 => "RS384",
            AssertionAlg::PS256 => "PS256",
            AssertionAlg::ES256 => "ES256",
            AssertionAlg::EdDSA => "EdDSA",
        }
    }

    /// The algorithm a JWS `alg` names, exactly (JOSE names are case-sensitive).
    pub fn parse(s: &str) -> Option<AssertionAlg> {
        AssertionAlg::ALL.into_iter().find(|alg| alg.as_str() == s)
    }

    fn is_rsa(self) -> bool {
        matches!(
            self,
            AssertionAlg::RS256 | AssertionAlg::RS384 | AssertionAlg::PS256
        )
    }
}

impl std::fmt::Display for AssertionAlg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alg_names_round_trip_and_nothing_else_parses() {
        for alg in AssertionAlg::ALL {
            assert_eq!(AssertionAlg::parse(alg.as_str()), Some(alg));
            let json = serde_json::to_string(&alg).unwrap();
            assert_eq!(json, format!("\"{alg}\""));
        }
        for other in ["none", "HS256", "rs256", "ES384", "EdDSA ", ""] {
            assert_eq!(AssertionAlg::parse(other), None, "{other:?}");
        }
    }
}
