//! Compiled rules kept across catalogs, by rule id and the digest of the source they were
//! compiled from: a catalog build reuses one whose source did not change (a rename, an
//! `enabled` or `order` change), and an upload hands over what it compiled, so the build
//! after it neither loads the sealed artifact nor compiles again.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, PoisonError};

use aws_lc_rs::digest::{Context, SHA256};

use crate::rules::{ArtifactKey, CompileError, CompiledRule, RuleEngine};
use crate::store::{Rule, RuleSource};

type Digest = [u8; 32];

#[derive(Default)]
pub struct CompiledRules {
    by_id: Mutex<HashMap<String, (Digest, Arc<CompiledRule>)>>,
}

impl std::fmt::Debug for CompiledRules {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        f.debug_struct("CompiledRules").field("ids", &ids).finish()
    }
}

/// What a compiled rule depends on: its kind and its bytes (the engine is the process's).
fn digest(source: &RuleSource) -> Digest {
    let mut context = Context::new(&SHA256);
    match source {
        RuleSource::Script(script) => {
            context.update(b"script\0");
            context.update(script.as_bytes());
        }
        RuleSource::Component(wasm) => {
            context.update(b"component\0");
            context.update(wasm);
        }
    }
    let mut out = [0; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

pub fn compile(engine: &RuleEngine, source: &RuleSource) -> Result<CompiledRule, CompileError> {
    match source {
        RuleSource::Script(script) => engine.compile_js(script),
        RuleSource::Component(wasm) => engine.compile_component(wasm),
    }
}

/// Where a compiled rule came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// Kept from before (a build, or the upload that compiled it).
    Kept,
    /// The stored artifact, loaded.
    Loaded,
    /// Compiled from source here (no artifact, or one this engine cannot load).
    Compiled,
}

impl CompiledRules {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Digest, Arc<CompiledRule>)>> {
        self.by_id.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The compiled rule: kept, loaded from its artifact, or compiled (not under the lock:
    /// a compilation takes a second).
    pub fn get(
        &self,
        engine: &RuleEngine,
        artifact_key: &ArtifactKey,
        rule: &Rule,
    ) -> Result<(Arc<CompiledRule>, Origin), CompileError> {
        let digest = digest(&rule.source);
        if let Some((kept, compiled)) = self.lock().get(&rule.id) {
            if *kept == digest {
                return Ok((compiled.clone(), Origin::Kept));
            }
        }
        let loaded = rule.artifact.as_deref().and_then(|artifact| {
            engine
                .load(artifact, artifact_key)
                .map_err(|e| tracing::warn!(rule = %rule.id, error = %e, "stored artifact not loaded; recompiling"))
                .ok()
        });
        let (compiled, origin) = match loaded {
            Some(compiled) => (Arc::new(compiled), Origin::Loaded),
            None => (Arc::new(compile(engine, &rule.source)?), Origin::Compiled),
        };
        self.lock()
            .insert(rule.id.clone(), (digest, compiled.clone()));
        Ok((compiled, origin))
    }

    /// Keeps what an upload compiled from `source` for the rule `rule_id`.
    pub fn keep(&self, rule_id: &str, source: &RuleSource, compiled: Arc<CompiledRule>) {
        self.lock()
            .insert(rule_id.to_string(), (digest(source), compiled));
    }

    /// Drops the rules not in `live` (deleted ones).
    pub fn retain(&self, live: &HashSet<&str>) {
        self.lock().retain(|id, _| live.contains(id.as_str()));
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.lock().len()
    }
}
