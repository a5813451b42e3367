//! Building catalogs: the whole one from storage, and the next one from the current one
//! and what a write changed, re-reading only what each [`Change`] names.
//!
//! A change is never trusted beyond its id: the store is read again, so applying a change
//! twice, late or out of order converges to what the store holds. Updates are made one at
//! a time (a mutex around "read the current snapshot, build the next, swap"), whether they
//! come from this node's writes or from another node's notification; readers keep the
//! snapshot they took and never see half of a change.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use super::compiled::{CompiledRules, Origin};
use super::{ActiveRule, Catalog};
use crate::keys::{KeySealer, KeySet};
use crate::rules::{ArtifactKey, CompiledRule, RuleEngine, RuleSecrets};
use crate::secret_box::SecretBox;
use crate::server::state::{now, StateError};
use crate::store::{Change, ChangeFeed, ResourceServer, Rule, SigningKey, Store};

/// What a build reads and opens, borrowed from the state that holds it.
pub struct Sources<'a> {
    pub store: &'a dyn Store,
    pub engine: &'a RuleEngine,
    pub artifact_key: &'a ArtifactKey,
    pub secret_box: &'a SecretBox,
    pub key_sealer: &'a KeySealer,
    /// Not stored, always in the catalog.
    pub management_api: ResourceServer,
}

impl Sources<'_> {
    /// The signing keys, their private keys opened.
    pub fn signing_keys(&self) -> Result<Vec<SigningKey>, StateError> {
        Ok(self.key_sealer.open_all(self.store.list_signing_keys()?)?)
    }

    /// A rule's secrets, decrypted.
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
        match self.engine.seal(compiled, self.artifact_key) {
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

/// Holds the current catalog and makes the next ones.
#[derive(Debug)]
pub struct CatalogBuilder {
    current: RwLock<Arc<Catalog>>,
    /// Held while a next catalog is made; holds the changes that failed last time (a rule
    /// that did not compile, a secret that did not open), tried again with the next ones.
    updating: Mutex<Vec<Change>>,
    /// Held while everything is read again, outside `updating`: at 100,000 clients that
    /// takes seconds, and changes keep being applied meanwhile.
    rebuilding: Mutex<()>,
    /// While a full rebuild reads, the changes applied meanwhile, to apply again on top of
    /// what it read (which may predate them).
    replay: Mutex<Option<Vec<Change>>>,
    pub compiled: CompiledRules,
}

impl CatalogBuilder {
    /// A builder whose catalog is empty until the first update.
    pub fn new() -> Result<CatalogBuilder, StateError> {
        Ok(CatalogBuilder {
            current: RwLock::new(Arc::new(Catalog::empty()?)),
            updating: Mutex::new(Vec::new()),
            rebuilding: Mutex::new(()),
            replay: Mutex::new(None),
            compiled: CompiledRules::default(),
        })
    }

    /// The current snapshot.
    pub fn current(&self) -> Arc<Catalog> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Applies `changes` and, with `feed`, what this process committed and has not applied
    /// yet, taken under the update lock: whoever returns from here after a commit sees it
    /// in the catalog (another caller may have applied it first). Blocking.
    ///
    /// On an error the changes that worked are applied all the same; the ones that failed
    /// are tried again by the next call.
    pub fn apply(
        &self,
        sources: &Sources<'_>,
        changes: &[Change],
        feed: Option<&ChangeFeed>,
    ) -> Result<(), StateError> {
        let mut retry = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        let mut todo: Vec<Change> = std::mem::take(&mut *retry);
        if let Some(feed) = feed {
            todo.extend(feed.take());
        }
        todo.extend_from_slice(changes);
        let mut seen = HashSet::new();
        todo.retain(|change| seen.insert(change.clone()));
        if todo.is_empty() {
            return Ok(());
        }
        if todo.contains(&Change::Everything) {
            // Everything else in `todo` was committed before the rebuild reads: it is in it.
            drop(retry);
            return self.rebuild(sources);
        }
        if let Some(replay) = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_mut()
        {
            replay.extend(todo.iter().cloned());
        }
        let mut next = Catalog::clone(&self.current());
        let mut first_error = None;
        for change in todo {
            if let Err(e) = self.apply_one(sources, &mut next, &change) {
                tracing::warn!(?change, error = %e, "change not applied to the catalog; tried again with the next one");
                retry.push(change);
                first_error.get_or_insert(e);
            }
        }
        // The JWKS depends on the keys, the longest token lifetime and the time: rendered
        // again each time, it costs microseconds.
        next.jwks = jwks(&next)?;
        self.swap(next);
        first_error.map_or(Ok(()), Err)
    }

    /// Reads everything again without holding up other updates: they go on meanwhile and
    /// are applied again on top of what was read, then the result replaces the catalog.
    fn rebuild(&self, sources: &Sources<'_>) -> Result<(), StateError> {
        let _one_rebuild = self
            .rebuilding
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *self.replay.lock().unwrap_or_else(PoisonError::into_inner) = Some(Vec::new());
        let built = self.full(sources);
        let mut retry = self.updating.lock().unwrap_or_else(PoisonError::into_inner);
        let replayed = self
            .replay
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
            .unwrap_or_default();
        let mut catalog = match built {
            Ok(catalog) => catalog,
            Err(e) => {
                retry.push(Change::Everything);
                return Err(e);
            }
        };
        let mut seen = HashSet::new();
        let mut first_error = None;
        for change in replayed.into_iter().filter(|c| seen.insert(c.clone())) {
            if let Err(e) = self.apply_one(sources, &mut catalog, &change) {
                retry.push(change);
                first_error.get_or_insert(e);
            }
        }
        catalog.jwks = jwks(&catalog)?;
        self.swap(catalog);
        first_error.map_or(Ok(()), Err)
    }

    fn swap(&self, catalog: Catalog) {
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        let old = std::mem::replace(&mut *current, Arc::new(catalog));
        drop(current);
        // Freed outside the lock (after a full rebuild, 100,000 clients take a while), so
        // that no token request waits for it.
        drop(old);
    }

    /// The whole catalog, read from storage.
    fn full(&self, sources: &Sources<'_>) -> Result<Catalog, StateError> {
        let store = sources.store;
        let mut catalog = Catalog::empty()?;
        for client in store.list_clients()? {
            catalog.put_client(client);
        }
        for api in store.list_resource_servers()? {
            catalog.put_api(api);
        }
        catalog.put_api(sources.management_api.clone());
        for grant in store.list_client_grants()? {
            catalog.grants.put(grant);
        }
        catalog.rules = self.rules(sources)?;
        catalog.keys = Arc::new(KeySet::new(sources.signing_keys()?)?);
        catalog.jwks = jwks(&catalog)?;
        Ok(catalog)
    }

    fn apply_one(
        &self,
        sources: &Sources<'_>,
        catalog: &mut Catalog,
        change: &Change,
    ) -> Result<(), StateError> {
        let store = sources.store;
        match change {
            Change::ResourceServer(id) => {
                let before = catalog.api_identifier(id).map(str::to_string);
                let after = store.get_resource_server(id)?;
                let moved =
                    before.filter(|old| after.as_ref().is_none_or(|a| a.identifier != *old));
                match after {
                    Some(api) => catalog.put_api(api),
                    None => {
                        catalog.remove_api(id);
                    }
                }
                // Gone (or, never in practice, renamed): the store deleted the grants for
                // its audience along with it, so they are read again.
                if let Some(audience) = moved {
                    for grant in catalog.grants.ids_for_audience(&audience) {
                        refresh_grant(store, catalog, &grant)?;
                    }
                }
            }
            Change::Client(client_id) => {
                match store.get_client(client_id)? {
                    Some(client) => catalog.put_client(client),
                    None => catalog.remove_client(client_id),
                }
                // Always, not only when the client is gone: deleted and made again under
                // the same id, it must not keep the grants the deletion took.
                for grant in catalog.grants.ids_of_client(client_id) {
                    refresh_grant(store, catalog, &grant)?;
                }
            }
            Change::ClientGrant(id) => refresh_grant(store, catalog, id)?,
            Change::Rules => catalog.rules = self.rules(sources)?,
            Change::SigningKeys => {
                catalog.keys = Arc::new(KeySet::new(sources.signing_keys()?)?);
            }
            Change::Everything => *catalog = self.full(sources)?,
        }
        Ok(())
    }

    /// The enabled rules in chain order, compiled (reusing what was compiled for the same
    /// source), with their secrets.
    fn rules(&self, sources: &Sources<'_>) -> Result<Arc<[ActiveRule]>, StateError> {
        let stored = sources.store.list_rules()?;
        let mut rules = Vec::new();
        for rule in &stored {
            if !rule.enabled {
                continue;
            }
            let (compiled, origin) = self
                .compiled
                .get(sources.engine, sources.artifact_key, rule)
                .map_err(|error| StateError::Rule {
                    id: rule.id.clone(),
                    name: rule.name.clone(),
                    error,
                })?;
            if origin == Origin::Compiled && rule.artifact.is_none() {
                sources.store_artifact(rule, &compiled);
            }
            let secrets = Arc::new(RuleSecrets::new(sources.rule_secrets(&rule.id)?));
            rules.push(ActiveRule {
                secrets,
                id: rule.id.clone(),
                name: rule.name.clone(),
                compiled,
            });
        }
        self.compiled
            .retain(&stored.iter().map(|r| r.id.as_str()).collect());
        Ok(Arc::from(rules))
    }
}

/// Re-reads one grant: found, it is filed (again); gone, it is removed.
fn refresh_grant(store: &dyn Store, catalog: &mut Catalog, id: &str) -> Result<(), StateError> {
    match store.get_client_grant(id)? {
        Some(grant) => catalog.grants.put(grant),
        None => catalog.grants.remove(id),
    }
    Ok(())
}

fn jwks(catalog: &Catalog) -> Result<Arc<[u8]>, StateError> {
    let document = catalog.keys.jwks(now(), catalog.longest_lifetime());
    Ok(Arc::from(serde_json::to_vec(&document)?))
}
