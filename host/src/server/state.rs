//! The server's shared state: handles to the store, the engine, the keys and the catalog
//! (built in `catalog/build.rs`), and key upkeep.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::config::Config;
use crate::credentials::SecretHasher;
use crate::datadir::{self, DataDirError, ServerKey};
use crate::keys::{self, KeySealer};
use crate::rules::{ArtifactKey, CompileError, CompiledRule, RuleEngine};
use crate::secret_box::{SecretBox, SecretBoxError};
use crate::store::{
    Change, ResourceServer, Rule, RuleSource, ScopeDef, SigningAlg, SigningKey, Store, StoreError,
};

use super::catalog::{self, Catalog, CatalogBuilder, Sources};
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
    /// The token endpoint's snapshot, and what makes the next one.
    catalog: CatalogBuilder,
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
                catalog: CatalogBuilder::new()?,
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
        self.catalog.current()
    }

    /// What a catalog build reads, borrowed from here.
    fn sources(&self) -> Sources<'_> {
        Sources {
            store: &*self.store,
            engine: &self.engine,
            artifact_key: &self.artifact_key,
            secret_box: &self.secret_box,
            key_sealer: &self.key_sealer,
            management_api: self.management_api(),
        }
    }

    /// Applies `changes` to the catalog, re-reading what each names (`Everything`: all).
    /// Safe to call from any thread, at any time: updates are made one at a time, and a
    /// change applied twice or out of order still ends as the store is. Blocking.
    pub fn apply(&self, changes: &[Change]) -> Result<(), StateError> {
        self.catalog.apply(&self.sources(), changes, None)
    }

    /// Applies what this process committed and has not applied yet: after a write, so that
    /// the next request (the write's response first) sees it. Blocking.
    pub fn apply_committed(&self) -> Result<(), StateError> {
        self.catalog
            .apply(&self.sources(), &[], Some(self.store.changes()))
    }

    /// Rebuilds the whole catalog from storage. Blocking.
    pub fn reload(&self) -> Result<(), StateError> {
        self.catalog.apply(
            &self.sources(),
            &[Change::Everything],
            Some(self.store.changes()),
        )?;
        self.catalog_ready.store(true, Ordering::Release);
        Ok(())
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
        self.sources().signing_keys()
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

    /// Compiles (or loads) a rule, reusing what was compiled for the same source.
    pub fn compiled_rule(&self, rule: &Rule) -> Result<Arc<CompiledRule>, CompileError> {
        self.catalog
            .compiled
            .get(&self.engine, &self.artifact_key, rule)
            .map(|(compiled, _)| compiled)
    }

    /// Hands what an upload compiled to the next catalog build, which then neither loads
    /// the artifact stored with it nor compiles again.
    pub fn keep_compiled(&self, rule: &Rule, compiled: Arc<CompiledRule>) {
        self.catalog.compiled.keep(&rule.id, &rule.source, compiled);
    }

    pub fn compile_source(&self, source: &RuleSource) -> Result<CompiledRule, CompileError> {
        catalog::compile(&self.engine, source)
    }

    /// A rule's secrets, decrypted. Blocking.
    pub fn rule_secrets(&self, rule_id: &str) -> Result<BTreeMap<String, String>, StateError> {
        self.sources().rule_secrets(rule_id)
    }
}
