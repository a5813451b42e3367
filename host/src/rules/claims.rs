//! Which of a rule's claims reach the token (CONTRACT.md, "Claims the rule may not set").
//!
//! Only namespaced claims (an `http:` or `https:` URL) are applied; registered and protocol
//! claims are never taken from a rule. Whatever is dropped is reported in the rule's logs,
//! so its author learns why a claim did not appear.

use serde_json::{Map, Value};

use super::outcome::{Level, LogLine};

/// Claims a rule may never set, whatever their spelling of namespace.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "azp",
    "client_id",
    "gty",
    "scope",
    "cnf",
    "act",
    "may_act",
    "auth_time",
    "acr",
    "amr",
    "nonce",
    "sid",
    "typ",
    "cty",
    "kid",
    "jku",
    "jwk",
    "x5u",
    "x5c",
    "x5t",
    "x5t#S256",
    "at_hash",
    "c_hash",
];

/// Is `name` a claim a rule may set?
pub fn is_namespaced(name: &str) -> bool {
    let rest = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"));
    matches!(rest, Some(host) if !host.is_empty())
}

/// Keeps the claims a rule may set and notes each one dropped.
pub fn filter(claims: Map<String, Value>, logs: &mut Vec<LogLine>) -> Map<String, Value> {
    let mut kept = Map::new();
    for (name, value) in claims {
        let why = if RESERVED_CLAIMS.contains(&name.as_str()) {
            Some("it is a registered claim that tokenhost sets itself")
        } else if !is_namespaced(&name) {
            Some("custom claims must be namespaced with an http:// or https:// URL")
        } else {
            None
        };
        match why {
            Some(why) => logs.push(LogLine {
                level: Level::Warn,
                message: format!("tokenhost: claim \"{name}\" dropped: {why}"),
            }),
            None => {
                kept.insert(name, value);
            }
        }
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn only_namespaced_claims_survive_and_drops_are_logged() {
        let claims = json!({"https://foo.com/claim": "bar", "http://x.org/n": 1, "sub": "me", "plain": true})
            .as_object()
            .cloned()
            .unwrap_or_default();
        let mut logs = Vec::new();
        let kept = filter(claims, &mut logs);
        assert_eq!(kept.len(), 2);
        assert!(kept.contains_key("https://foo.com/claim"));
        assert_eq!(logs.len(), 2);
        assert!(logs.iter().any(|l| l.message.contains("\"sub\"")));
    }

    #[test]
    fn a_bare_scheme_is_not_a_namespace() {
        assert!(!is_namespaced("https://"));
        assert!(is_namespaced("https://a"));
        assert!(!is_namespaced("urn:x"));
    }
}
