//! What the token endpoint reads: an immutable snapshot of clients, APIs, grants, enabled
//! rules and keys, swapped whole after every management change.
//!
//! Token requests never touch storage: one read lock and an `Arc` clone per request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::keys::KeySet;
use crate::rules::{CompiledRule, RuleSecrets};
use crate::store::{Client, ClientGrant, ResourceServer};

/// An enabled rule, compiled, in chain order. Its `Debug` shows secret names, never values.
#[derive(Clone)]
pub struct ActiveRule {
    pub id: String,
    pub name: String,
    pub compiled: Arc<CompiledRule>,
    /// The rule's secrets, decrypted, with their redactor (built here once, not per
    /// request); given to this rule only. Their `Debug` shows names only.
    pub secrets: Arc<RuleSecrets>,
}

impl std::fmt::Debug for ActiveRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActiveRule")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("compiled", &self.compiled)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// The snapshot.
#[derive(Debug)]
pub struct Catalog {
    pub clients: HashMap<String, Client>,
    /// By identifier (audience), the management API's own included.
    pub apis: HashMap<String, ResourceServer>,
    /// By client_id, then audience.
    pub grants: HashMap<String, HashMap<String, ClientGrant>>,
    pub rules: Vec<ActiveRule>,
    pub keys: Arc<KeySet>,
    /// The JWKS document, rendered once per snapshot.
    pub jwks: Arc<[u8]>,
}

impl Catalog {
    pub fn grant(&self, client_id: &str, audience: &str) -> Option<&ClientGrant> {
        self.grants.get(client_id)?.get(audience)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::rules::{ChainRule, Limits, RuleEngine};

    #[test]
    fn active_and_chain_rules_debug_secret_names_but_no_values() {
        let engine = RuleEngine::new(Limits::default()).unwrap();
        let compiled = engine
            .compile_js("module.exports = function (c, s, a, ctx, cb) { cb(null, {}); };")
            .unwrap();
        let rule = ActiveRule {
            id: "rul_1".into(),
            name: "billing".into(),
            compiled: Arc::new(compiled),
            secrets: Arc::new(RuleSecrets::new(BTreeMap::from([(
                "API_KEY".to_string(),
                "sk_live_123".to_string(),
            )]))),
        };
        let chained = ChainRule {
            id: &rule.id,
            name: &rule.name,
            rule: &rule.compiled,
            secrets: &rule.secrets,
        };
        for shown in [
            format!("{rule:?}"),
            format!("{rule:#?}"),
            format!("{chained:?}"),
            format!("{chained:#?}"),
        ] {
            assert!(
                shown.contains("rul_1") && shown.contains("API_KEY"),
                "{shown}"
            );
            assert!(!shown.contains("sk_live_123"), "{shown}");
        }
    }
}
