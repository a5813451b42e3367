//! What the token endpoint reads: an immutable snapshot of clients, APIs, grants, enabled
//! rules and keys. A change makes the next snapshot from the current one (`build.rs`);
//! the maps are persistent (`imbl`), so the two share all but the path to what changed.
//!
//! Token requests never touch storage: one read lock and an `Arc` clone per request.

mod assertion_keys;
mod build;
mod compiled;
mod grants;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use crate::keys::{KeyError, KeySet};
use crate::rules::{CompiledRule, RuleSecrets};
use crate::store::{Client, ClientGrant, ResourceServer};

pub use assertion_keys::CredentialKey;
pub use build::{CatalogBuilder, Sources};
pub use compiled::compile;
pub use grants::Grants;

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

/// The snapshot. Cloning it is cheap (the maps share their nodes, the rest is `Arc`s):
/// that is how the next one starts.
#[derive(Debug, Clone)]
pub struct Catalog {
    pub clients: imbl::HashMap<String, Arc<Client>>,
    /// By client id, for the clients that have private_key_jwt credentials enabled.
    pub assertion_keys: imbl::HashMap<String, Arc<[CredentialKey]>>,
    /// By identifier (audience), the management API's own included.
    pub apis: imbl::HashMap<String, Arc<ResourceServer>>,
    pub grants: Grants,
    /// In chain order.
    pub rules: Arc<[ActiveRule]>,
    pub keys: Arc<KeySet>,
    /// The JWKS document, rendered once per snapshot.
    pub jwks: Arc<[u8]>,
    /// What updating needs and readers do not: each API's identifier by id (a change names
    /// the id), and the token lifetimes (the longest sets how long retired keys stay
    /// published).
    api_ids: imbl::HashMap<String, String>,
    lifetimes: imbl::OrdSet<(u32, String)>,
}

impl Catalog {
    /// Nothing in it, not even the management API, and no keys.
    pub fn empty() -> Result<Catalog, KeyError> {
        Ok(Catalog {
            clients: imbl::HashMap::new(),
            assertion_keys: imbl::HashMap::new(),
            apis: imbl::HashMap::new(),
            grants: Grants::default(),
            rules: Arc::from(Vec::new()),
            keys: Arc::new(KeySet::new(Vec::new())?),
            jwks: Arc::from(&b"{\"keys\":[]}"[..]),
            api_ids: imbl::HashMap::new(),
            lifetimes: imbl::OrdSet::new(),
        })
    }

    pub fn grant(&self, client_id: &str, audience: &str) -> Option<&ClientGrant> {
        self.grants.get(client_id, audience)
    }

    /// Adds or replaces a client, with its assertion keys.
    pub(crate) fn put_client(&mut self, client: Client) {
        match assertion_keys::of(&client) {
            Some(keys) => self.assertion_keys.insert(client.client_id.clone(), keys),
            None => self.assertion_keys.remove(&client.client_id),
        };
        self.clients
            .insert(client.client_id.clone(), Arc::new(client));
    }

    pub(crate) fn remove_client(&mut self, client_id: &str) {
        self.assertion_keys.remove(client_id);
        self.clients.remove(client_id);
    }

    /// Adds or replaces an API (by id: one whose identifier changed leaves its old one).
    pub(crate) fn put_api(&mut self, api: ResourceServer) {
        self.remove_api(&api.id);
        if let Some(displaced) = self.apis.get(&api.identifier) {
            // Another id under this identifier: deleted in the store, its change not
            // applied yet. Its id stays indexed, so that its change still finds its grants.
            self.lifetimes
                .remove(&(displaced.token_lifetime, displaced.id.clone()));
        }
        self.lifetimes.insert((api.token_lifetime, api.id.clone()));
        self.api_ids.insert(api.id.clone(), api.identifier.clone());
        self.apis.insert(api.identifier.clone(), Arc::new(api));
    }

    /// Removes the API with this id; returns the identifier it had.
    pub(crate) fn remove_api(&mut self, id: &str) -> Option<String> {
        let identifier = self.api_ids.remove(id)?;
        if let Some(api) = self.apis.get(&identifier).filter(|api| api.id == id) {
            self.lifetimes.remove(&(api.token_lifetime, api.id.clone()));
            self.apis.remove(&identifier);
        }
        Some(identifier)
    }

    /// The identifier of the API with this id, as this snapshot has it.
    pub(crate) fn api_identifier(&self, id: &str) -> Option<&str> {
        self.api_ids.get(id).map(String::as_str)
    }

    /// The longest token lifetime of the APIs: how long a retired key stays published.
    pub fn longest_lifetime(&self) -> i64 {
        self.lifetimes
            .get_max()
            .map_or(0, |(lifetime, _)| i64::from(*lifetime))
    }
}

#[cfg(test)]
mod debug_tests {
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
