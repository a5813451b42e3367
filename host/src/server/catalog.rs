//! What the token endpoint reads: an immutable snapshot of clients, APIs, grants, enabled
//! rules and keys, swapped whole after every management change.
//!
//! Token requests never touch storage: one read lock and an `Arc` clone per request.

use std::collections::HashMap;
use std::sync::Arc;

use crate::keys::KeySet;
use crate::rules::{CompiledRule, RuleSecrets};
use crate::store::{Client, ClientGrant, ResourceServer};

/// An enabled rule, compiled, in chain order.
#[derive(Debug, Clone)]
pub struct ActiveRule {
    pub id: String,
    pub name: String,
    pub compiled: Arc<CompiledRule>,
    /// The rule's secrets, decrypted, with their redactor (built here once, not per
    /// request); given to this rule only. Their `Debug` shows names only.
    pub secrets: Arc<RuleSecrets>,
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
