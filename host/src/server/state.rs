//! The server's shared state, and the one place that turns storage into a [`Catalog`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::{Config, MANAGEMENT_TOKEN_LIFETIME};
use crate::credentials::SecretHasher;
use crate::keys::{self, KeySet};
use crate::rules::{ArtifactKey, CompileError, CompiledRule, RuleEngine};
use crate::store::{ResourceServer, Rule, RuleSource, ScopeDef, SigningAlg, Store, StoreError};

use super::catalog::{ActiveRule, Catalog};
use super::management::scopes::MANAGEMENT_SCOPES;

/// Why the catalog could not be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("signing keys: {0}")]
    Keys(#[from] keys::KeyError),
    #[error("cannot serialize the JWKS: {0}")]
    Jwks(#[from] serde_json::Error),
    #[error("rule {id} ({name}) does not compile: {error}")]
    Rule {
        id: String,
        name: String,
        error: CompileError,
    },
}

/// Shared by every handler; cheap to clone.
#[derive(Clone)]
pub struct AppState {
    pub inner: Arc<Inner>,
}

pub struct Inner {
    pub config: Config,
    pub store: Arc<dyn Store>,
    pub engine: Arc<RuleEngine>,
    pub hasher: SecretHasher,
    pub artifact_key: ArtifactKey,
    catalog: RwLock<Arc<Catalog>>,
    /// Compiled rules by id, with the `updated_at` they were compiled for.
    compiled: Mutex<HashMap<String, (i64, Arc<CompiledRule>)>>,
    /// Management changes (write, then rebuild the catalog) happen one at a time, and so
    /// do rule compilations, so an upload never takes both cores from token requests.
    pub write_lock: tokio::sync::Mutex<()>,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

pub fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

impl AppState {
    /// Builds the state and its first catalog (blocking: compiles rules whose artifacts
    /// cannot be loaded).
    pub fn new(
        config: Config,
        store: Arc<dyn Store>,
        engine: Arc<RuleEngine>,
        hasher: SecretHasher,
        artifact_key: ArtifactKey,
    ) -> Result<AppState, StateError> {
        let empty = Catalog {
            clients: HashMap::new(),
            apis: HashMap::new(),
            grants: HashMap::new(),
            rules: Vec::new(),
            keys: Arc::new(KeySet::new(Vec::new())?),
            jwks: Arc::from(&b"{\"keys\":[]}"[..]),
            max_token_lifetime: 0,
        };
        let state = AppState {
            inner: Arc::new(Inner {
                config,
                store,
                engine,
                hasher,
                artifact_key,
                catalog: RwLock::new(Arc::new(empty)),
                compiled: Mutex::new(HashMap::new()),
                write_lock: tokio::sync::Mutex::new(()),
            }),
        };
        state.ensure_signing_keys()?;
        state.reload()?;
        Ok(state)
    }

    /// The current snapshot.
    pub fn catalog(&self) -> Arc<Catalog> {
        self.catalog
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The management API as an API: not stored, always present, rules never run for it.
    pub fn management_api(&self) -> ResourceServer {
        ResourceServer {
            id: "management".into(),
            identifier: self.config.management_audience(),
            name: "tokenhost Management API".into(),
            scopes: MANAGEMENT_SCOPES
                .iter()
                .map(|s| ScopeDef {
                    value: (*s).to_string(),
                    description: String::new(),
                })
                .collect(),
            token_lifetime: MANAGEMENT_TOKEN_LIFETIME,
            signing_alg: SigningAlg::RS256,
            allow_rule_added_scopes: false,
            created_at: 0,
        }
    }

    /// Creates the signing keys that are missing and drops retired keys whose tokens have
    /// all expired.
    pub fn ensure_signing_keys(&self) -> Result<(), StateError> {
        let existing = self.store.list_signing_keys()?;
        let max_lifetime = self.max_token_lifetime()?;
        for kid in keys::expired(&existing, now(), max_lifetime) {
            self.store.delete_signing_key(&kid)?;
        }
        let missing = keys::missing(&existing, now())?;
        if !missing.is_empty() {
            self.store.put_signing_keys(&missing)?;
        }
        Ok(())
    }

    fn max_token_lifetime(&self) -> Result<i64, StoreError> {
        let apis = self.store.list_resource_servers()?;
        Ok(apis
            .iter()
            .map(|api| i64::from(api.token_lifetime))
            .chain([i64::from(MANAGEMENT_TOKEN_LIFETIME)])
            .max()
            .unwrap_or(0))
    }

    /// Compiles (or loads) a rule, reusing what was compiled for the same version.
    pub fn compiled_rule(&self, rule: &Rule) -> Result<Arc<CompiledRule>, CompileError> {
        if let Some((version, compiled)) = self
            .compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&rule.id)
        {
            if *version == rule.updated_at {
                return Ok(compiled.clone());
            }
        }
        let loaded = rule.artifact.as_deref().and_then(|artifact| {
            self.engine
                .load(artifact, &self.artifact_key)
                .map_err(|e| tracing::warn!(rule = %rule.id, error = %e, "stored artifact not loaded; recompiling"))
                .ok()
        });
        let compiled = match loaded {
            Some(compiled) => Arc::new(compiled),
            None => Arc::new(self.compile_source(&rule.source)?),
        };
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(rule.id.clone(), (rule.updated_at, compiled.clone()));
        Ok(compiled)
    }

    /// Drops the compiled copy of a rule whose source changed.
    pub fn forget_compiled(&self, rule_id: &str) {
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(rule_id);
    }

    pub fn compile_source(&self, source: &RuleSource) -> Result<CompiledRule, CompileError> {
        match source {
            RuleSource::Script(script) => self.engine.compile_js(script),
            RuleSource::Component(wasm) => self.engine.compile_component(wasm),
        }
    }

    /// Rebuilds the catalog from storage. Blocking.
    pub fn reload(&self) -> Result<(), StateError> {
        let store = &self.store;
        let clients = store
            .list_clients()?
            .into_iter()
            .map(|c| (c.client_id.clone(), c))
            .collect();
        let mut apis: HashMap<String, ResourceServer> = store
            .list_resource_servers()?
            .into_iter()
            .map(|a| (a.identifier.clone(), a))
            .collect();
        let management = self.management_api();
        apis.insert(management.identifier.clone(), management);
        let mut grants: HashMap<String, HashMap<String, _>> = HashMap::new();
        for grant in store.list_client_grants()? {
            grants
                .entry(grant.client_id.clone())
                .or_default()
                .insert(grant.audience.clone(), grant);
        }
        let mut rules = Vec::new();
        let mut live = Vec::new();
        for rule in store.list_rules()? {
            live.push(rule.id.clone());
            if !rule.enabled {
                continue;
            }
            let compiled = self
                .compiled_rule(&rule)
                .map_err(|error| StateError::Rule {
                    id: rule.id.clone(),
                    name: rule.name.clone(),
                    error,
                })?;
            if rule.artifact.is_none() {
                self.store_artifact(&rule, &compiled);
            }
            rules.push(ActiveRule {
                id: rule.id,
                name: rule.name,
                compiled,
            });
        }
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id));
        let key_list = store.list_signing_keys()?;
        let keys = Arc::new(KeySet::new(key_list)?);
        let max_token_lifetime = apis
            .values()
            .map(|a| i64::from(a.token_lifetime))
            .max()
            .unwrap_or(0);
        let jwks = serde_json::to_vec(&keys.jwks(now(), max_token_lifetime))?;
        let catalog = Catalog {
            clients,
            apis,
            grants,
            rules,
            keys,
            jwks: Arc::from(jwks),
            max_token_lifetime,
        };
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        Ok(())
    }

    /// Persists a compiled rule's artifact so a restart loads instead of recompiling.
    pub fn store_artifact(&self, rule: &Rule, compiled: &CompiledRule) {
        match self.engine.seal(compiled, &self.artifact_key) {
            Ok(artifact) => {
                let stored = Rule {
                    artifact: Some(artifact),
                    ..rule.clone()
                };
                if let Err(e) = self.store.put_rule(&stored) {
                    tracing::warn!(rule = %rule.id, error = %e, "cannot store the compiled artifact");
                }
            }
            Err(e) => {
                tracing::warn!(rule = %rule.id, error = %e, "cannot seal the compiled artifact")
            }
        }
    }
}
