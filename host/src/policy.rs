//! What an access token may say: the scope and claims policy, in one place.
//!
//! - A request's scopes must all be granted; a request naming none gets the whole grant
//!   ([`GrantedScope::requested`]).
//! - What one rule returns: its scopes must be scope-tokens (kept once each), its claims
//!   JSON, namespaced and not registered, their size bounded ([`rule_token`]).
//! - A chain's claims merge later-wins and are bounded again ([`claims_fit`]).
//! - Scopes a rule added beyond the grant are dropped unless the API allows them
//!   ([`GrantedScope::restrict`]).
//!
//! CONTRACT.md gives the rules; the engine (for every execution, in the server, the CLI and
//! the test endpoint alike) and the token issuance call these and nothing else decides.

use std::collections::HashSet;
use std::io;

use serde_json::{Map, Value};

use crate::rules::{Failure, Level, LogLine, Token};
use crate::scope;

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

/// Is `name` a claim a rule may set? Only namespaced claims (an `http:` or `https:` URL).
pub fn is_namespaced(name: &str) -> bool {
    let rest = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"));
    matches!(rest, Some(host) if !host.is_empty())
}

/// A client's grant for one API, as a set: checking a thousand requested scopes against a
/// large grant is a thousand lookups, not a thousand scans.
#[derive(Debug)]
pub struct GrantedScope<'a> {
    grant: &'a [String],
    set: HashSet<&'a str>,
}

impl<'a> GrantedScope<'a> {
    pub fn new(grant: &'a [String]) -> Self {
        GrantedScope {
            grant,
            set: grant.iter().map(String::as_str).collect(),
        }
    }

    /// The token's scope before any rule: what was asked, if every scope of it is granted,
    /// or the whole grant when nothing was asked. The error names the first ungranted one.
    pub fn requested(&self, requested: Option<&[String]>) -> Result<Vec<String>, String> {
        match requested {
            Some(requested) => match requested.iter().find(|s| !self.set.contains(s.as_str())) {
                Some(missing) => Err(format!("scope {missing:?} is not granted to this client")),
                None => Ok(requested.to_vec()),
            },
            None => Ok(self.grant.to_vec()),
        }
    }

    /// Without `allow_rule_added_scopes`, keeps only granted scopes in `token` and returns
    /// the others (for the server's log: the caller redacts them, a rule wrote them).
    pub fn restrict(&self, token: &mut Token, allow_rule_added_scopes: bool) -> Vec<String> {
        if allow_rule_added_scopes {
            return Vec::new();
        }
        let (kept, dropped) = std::mem::take(&mut token.scope)
            .into_iter()
            .partition(|s| self.set.contains(s.as_str()));
        token.scope = kept;
        dropped
    }
}

/// What one rule returned (its scope, and claims as JSON texts by name) as the token it
/// may shape: claims that are not JSON, a scope that is not a scope-token, or claims over
/// `max_claims_bytes` fail the rule; claims it may not set are dropped with a note in
/// `notes`.
pub fn rule_token(
    scope: Vec<String>,
    claims: impl IntoIterator<Item = (String, String)>,
    max_claims_bytes: usize,
    notes: &mut Vec<LogLine>,
) -> Result<Token, Failure> {
    let mut raw = Map::new();
    for (name, value) in claims {
        match serde_json::from_str::<Value>(&value) {
            Ok(value) => {
                raw.insert(name, value);
            }
            Err(e) => {
                let message = format!("claim \"{name}\" is not JSON: {e}");
                return Err(Failure::InvalidResult { message });
            }
        }
    }
    claims_fit(&raw, max_claims_bytes)?;
    // Joined by spaces in the token, a scope holding one would read back as two scopes.
    if let Err(invalid) = scope.iter().try_for_each(|s| scope::check(s)) {
        return Err(Failure::InvalidResult {
            message: invalid.to_string(),
        });
    }
    Ok(Token {
        scope: scope::distinct(scope),
        claims: settable_claims(raw, notes),
    })
}

/// Claims over `limit` bytes as JSON fail: one rule's, and a chain's merged claims, which
/// must fit the bound each rule's own had to.
pub fn claims_fit(claims: &Map<String, Value>, limit: usize) -> Result<(), Failure> {
    let size = json_len(claims);
    if size > limit {
        return Err(Failure::ClaimsTooLarge { size, limit });
    }
    Ok(())
}

/// The length of `claims` as JSON, counted without building the text.
fn json_len(claims: &Map<String, Value>) -> usize {
    struct Count(usize);
    impl io::Write for Count {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0 += buf.len();
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }
    let mut count = Count(0);
    match serde_json::to_writer(&mut count, claims) {
        Ok(()) => count.0,
        Err(_) => usize::MAX,
    }
}

/// Keeps the claims a rule may set and notes each one dropped, so its author learns why a
/// claim did not appear.
fn settable_claims(claims: Map<String, Value>, notes: &mut Vec<LogLine>) -> Map<String, Value> {
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
            Some(why) => notes.push(LogLine {
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

    fn pairs(claims: Value) -> Vec<(String, String)> {
        claims
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.to_string()))
            .collect()
    }

    #[test]
    fn only_namespaced_claims_survive_and_drops_are_noted() {
        let claims = json!({"https://foo.com/claim": "bar", "http://x.org/n": 1, "sub": "me", "plain": true});
        let mut notes = Vec::new();
        let token = rule_token(vec![], pairs(claims), 1000, &mut notes).unwrap();
        assert_eq!(token.claims.len(), 2);
        assert!(token.claims.contains_key("https://foo.com/claim"));
        assert_eq!(notes.len(), 2);
        assert!(notes.iter().any(|l| l.message.contains("\"sub\"")));
    }

    #[test]
    fn a_bare_scheme_is_not_a_namespace() {
        assert!(!is_namespaced("https://"));
        assert!(is_namespaced("https://a"));
        assert!(!is_namespaced("urn:x"));
    }

    #[test]
    fn a_rule_token_is_checked_and_its_scopes_kept_once() {
        let mut notes = Vec::new();
        let scope = vec!["a".to_string(), "b".to_string(), "a".to_string()];
        let token = rule_token(scope, vec![], 10, &mut notes).unwrap();
        assert_eq!(token.scope, ["a", "b"]);
        let spaced = rule_token(vec!["a b".into()], vec![], 10, &mut notes);
        assert!(matches!(spaced, Err(Failure::InvalidResult { .. })));
        let not_json = vec![("https://x/y".to_string(), "{".to_string())];
        let not_json = rule_token(vec![], not_json, 10, &mut notes);
        assert!(matches!(not_json, Err(Failure::InvalidResult { .. })));
        let big = pairs(json!({"https://x/y": "0123456789"}));
        let big = rule_token(vec![], big, 10, &mut notes);
        assert!(matches!(
            big,
            Err(Failure::ClaimsTooLarge { limit: 10, .. })
        ));
    }

    #[test]
    fn the_size_counted_is_the_json_length() {
        let claims = json!({"https://x/y": "é\"", "https://x/z": [1, 2]});
        let map = claims.as_object().unwrap();
        assert_eq!(json_len(map), serde_json::to_vec(map).unwrap().len());
    }

    #[test]
    fn requested_scopes_must_be_granted_and_rule_added_ones_can_be_dropped() {
        let grant = vec!["read".to_string(), "write".to_string()];
        let granted = GrantedScope::new(&grant);
        assert_eq!(granted.requested(None).unwrap(), grant);
        assert_eq!(granted.requested(Some(&["read".into()])).unwrap(), ["read"]);
        let refused = granted.requested(Some(&["read".into(), "admin".into()]));
        assert_eq!(
            refused.unwrap_err(),
            "scope \"admin\" is not granted to this client"
        );
        let mut token = Token {
            scope: vec!["read".into(), "extra".into()],
            claims: Map::new(),
        };
        assert!(granted.restrict(&mut token, true).is_empty());
        assert_eq!(token.scope, ["read", "extra"]);
        assert_eq!(granted.restrict(&mut token, false), ["extra"]);
        assert_eq!(token.scope, ["read"]);
    }
}
