//! The server's shared state, and the one place that turns storage into a [`Catalog`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::credentials::SecretHasher;
use crate::datadir::{self, DataDirError, ServerKey};
use crate::keys::{self, KeySealer, KeySet};
use crate::rules::{ArtifactKey, CompileError, CompiledRule, RuleEngine, RuleSecrets};
use crate::secret_box::{SecretBox, SecretBoxError};
use crate::store::{
    ResourceServer, Rule, RuleSource, ScopeDef, SigningAlg, SigningKey, Store, StoreError,
};

use super::catalog::{ActiveRule, Catalog};
use super::management::scopes::MANAGEMENT_SCOPES;
use super::metrics::{Metrics, MetricsError};
use super::rate_limit::RateLimits;
use super::rule_logs::LogRecorder;

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
    #[error(transparent)]
    Metrics(#[from] MetricsError),
    #[error("rule secrets key: {0}")]
    SecretsKey(SecretBoxError),
    #[error("signing keys key: {0}")]
    SigningKeysKey(DataDirError),
    /// The secrets key is not the one the secret was sealed with, or the row was altered.
    #[error(
        "secret {secret} of rule {id} cannot be decrypted (was secrets_key changed?): {error}"
    )]
    Secret {
        id: String,
        secret: String,
        error: SecretBoxError,
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
    /// Seals rule secrets for storage and opens them for the catalog.
    pub secret_box: SecretBox,
    /// Seals private signing keys for storage and opens them for the catalog.
    pub key_sealer: KeySealer,
    catalog: RwLock<Arc<Catalog>>,
    /// Compiled rules by id, with the `updated_at` they were compiled for.
    compiled: Mutex<HashMap<String, (i64, Arc<CompiledRule>)>>,
    /// Rule execution logs: live subscribers and the batched writer.
    pub logs: LogRecorder,
    /// Management changes (write, then rebuild the catalog) happen one at a time, and so
    /// do rule compilations, so an upload never takes both cores from token requests.
    pub write_lock: tokio::sync::Mutex<()>,
    pub metrics: Metrics,
    pub rate_limits: RateLimits,
    /// Set once the first catalog is built (its rules compiled or loaded).
    catalog_ready: AtomicBool,
    /// Set once the JS compiler is warmed up, so uploads compile.
    compiler_ready: AtomicBool,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.inner
    }
}

/// The longest token lifetime of `apis`: how long a retired key must stay published.
fn longest_lifetime<'a>(apis: impl Iterator<Item = &'a ResourceServer>) -> i64 {
    apis.map(|api| i64::from(api.token_lifetime))
        .max()
        .unwrap_or(0)
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
        };
        let secret_box = SecretBox::from_config(&config).map_err(StateError::SecretsKey)?;
        let key_sealer = KeySealer::new(
            &datadir::server_key(&config, ServerKey::SigningKeys)
                .map_err(StateError::SigningKeysKey)?,
        )?;
        let rate_limits = RateLimits::new(config.rate_limit);
        let logs = LogRecorder::new(config.max_log_streams);
        let state = AppState {
            inner: Arc::new(Inner {
                secret_box,
                key_sealer,
                config,
                store,
                engine,
                hasher,
                artifact_key,
                catalog: RwLock::new(Arc::new(empty)),
                compiled: Mutex::new(HashMap::new()),
                write_lock: tokio::sync::Mutex::new(()),
                logs,
                metrics: Metrics::new()?,
                rate_limits,
                catalog_ready: AtomicBool::new(false),
                compiler_ready: AtomicBool::new(false),
            }),
        };
        state.ensure_signing_keys()?;
        state.reload()?;
        Ok(state)
    }

    /// The JS compiler is warmed up (`RuleEngine::warm_up` succeeded).
    pub fn mark_compiler_ready(&self) {
        self.compiler_ready.store(true, Ordering::Release);
    }

    /// Why the server is not ready to serve yet, if it is not (the store is checked apart).
    pub fn not_ready_reason(&self) -> Option<&'static str> {
        if !self.catalog_ready.load(Ordering::Acquire) {
            Some("rules not compiled yet")
        } else if !self.compiler_ready.load(Ordering::Acquire) {
            Some("the JS rule compiler is not ready")
        } else {
            None
        }
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
            token_lifetime: self.config.management_token_lifetime,
            signing_alg: SigningAlg::RS256,
            allow_rule_added_scopes: false,
            created_at: 0,
        }
    }

    /// Seals the signing keys an earlier release stored in the clear, creates the signing
    /// keys that are missing and drops retired keys whose tokens have all expired.
    pub fn ensure_signing_keys(&self) -> Result<(), StateError> {
        self.seal_plain_keys()?;
        let existing = self.signing_keys()?;
        let apis = self.store.list_resource_servers()?;
        let max_lifetime = longest_lifetime(apis.iter().chain([&self.management_api()]));
        let expired = keys::expired(&existing, now(), max_lifetime);
        let missing = self
            .key_sealer
            .seal_all(&keys::missing(&existing, now())?)?;
        if !expired.is_empty() || !missing.is_empty() {
            self.store.transaction(|tx| {
                for kid in &expired {
                    tx.delete_signing_key(kid)?;
                }
                tx.put_signing_keys(&missing)
            })?;
        }
        Ok(())
    }

    /// The signing keys, their private keys opened. Blocking.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, StateError> {
        Ok(self.key_sealer.open_all(self.store.list_signing_keys()?)?)
    }

    /// The first start after an upgrade: the keys stored in the clear are sealed, and the
    /// database compacted so that no copy of the clear DER stays in its files.
    fn seal_plain_keys(&self) -> Result<(), StateError> {
        let sealed = self
            .key_sealer
            .seal_plain(&self.store.list_signing_keys()?)?;
        if sealed.is_empty() {
            return Ok(());
        }
        self.store.transaction(|tx| tx.put_signing_keys(&sealed))?;
        match self.store.compact() {
            Ok(()) => tracing::info!(
                keys = sealed.len(),
                "sealed the signing keys stored in the clear by an earlier release"
            ),
            // The keys are sealed either way; only their old copies may linger.
            Err(e) => tracing::warn!(
                keys = sealed.len(), error = %e,
                "sealed the signing keys stored in the clear, but could not compact the \
                 database: copies of the clear keys may remain in its files until it is \
                 vacuumed"
            ),
        }
        Ok(())
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

    /// TEMPORARY until the incremental catalog lands: applies `changes` by rebuilding all.
    pub fn apply(&self, _changes: &[crate::store::Change]) -> Result<(), StateError> {
        self.reload()
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
            let secrets = Arc::new(RuleSecrets::new(self.rule_secrets(&rule.id)?));
            rules.push(ActiveRule {
                secrets,
                id: rule.id,
                name: rule.name,
                compiled,
            });
        }
        self.compiled
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|id, _| live.contains(id));
        let keys = Arc::new(KeySet::new(self.signing_keys()?)?);
        let jwks = serde_json::to_vec(&keys.jwks(now(), longest_lifetime(apis.values())))?;
        let catalog = Catalog {
            clients,
            apis,
            grants,
            rules,
            keys,
            jwks: Arc::from(jwks),
        };
        *self.catalog.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(catalog);
        self.catalog_ready.store(true, Ordering::Release);
        Ok(())
    }

    /// A rule's secrets, decrypted. Blocking.
    pub fn rule_secrets(&self, rule_id: &str) -> Result<BTreeMap<String, String>, StateError> {
        self.store
            .list_rule_secrets(rule_id)?
            .into_iter()
            .map(|secret| {
                self.secret_box
                    .open_rule_secret(rule_id, &secret.name, &secret.sealed)
                    .map(|value| (secret.name.clone(), value))
                    .map_err(|error| StateError::Secret {
                        id: rule_id.to_string(),
                        secret: secret.name,
                        error,
                    })
            })
            .collect()
    }

    /// Persists a compiled rule's artifact so a restart loads instead of recompiling.
    pub fn store_artifact(&self, rule: &Rule, compiled: &CompiledRule) {
        match self.engine.seal(compiled, &self.artifact_key) {
            Ok(artifact) => {
                let stored = Rule {
                    artifact: Some(artifact),
                    ..rule.clone()
                };
                if let Err(e) = self.store.transaction(|tx| tx.put_rule(&stored)) {
                    tracing::warn!(rule = %rule.id, error = %e, "cannot store the compiled artifact");
                }
            }
            Err(e) => {
                tracing::warn!(rule = %rule.id, error = %e, "cannot seal the compiled artifact")
            }
        }
    }
}
