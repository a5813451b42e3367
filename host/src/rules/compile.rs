//! Upload to ready: JS source or a component built elsewhere, to a rule that can run.
//!
//! JS: the runtime pre-initialized with the rule (snapshot.rs), its WASI preview1 imports
//! written into it (inline_wasi.rs) or else given the preview1 adapter, then made a
//! component. Either way the component is checked against the world and compiled by
//! Cranelift here; nothing precompiled is ever accepted from outside.

use std::sync::OnceLock;

use wasmtime::component::{Component, Linker};
use wasmtime::Engine;

use super::bindings::CredentialsExchangePre;
use super::cache::RuleCache;
use super::inline_wasi;
use super::outcome::LogLine;
use super::store::StoreData;

/// Why a rule could not be made ready.
#[derive(Debug, thiserror::Error)]
pub enum CompileError {
    #[error("the rule's source is {size} bytes, over the limit of {limit}")]
    TooLarge { size: usize, limit: usize },
    /// A syntax error, or an exception thrown by the rule's top level.
    #[error("{message} (rule.js:{line}:{column})")]
    Script {
        message: String,
        line: u32,
        column: u32,
        logs: Vec<LogLine>,
    },
    /// The rule's top level hit a limit (fuel, memory, deadline) while it was evaluated.
    #[error("the rule's top level failed: {message}")]
    TopLevel { message: String, logs: Vec<LogLine> },
    /// A component that is not a tokenhost rule.
    #[error("not a valid tokenhost rule component: {0}")]
    InvalidComponent(String),
    /// tokenhost's own machinery failed; not the rule's fault.
    #[error("rule compilation failed inside tokenhost: {0}")]
    Runtime(String),
}

impl CompileError {
    pub(crate) fn runtime(e: impl std::fmt::Display) -> Self {
        CompileError::Runtime(format!("{e:#}"))
    }

    /// The rule's console output during evaluation, where there was any.
    pub fn logs(&self) -> &[LogLine] {
        match self {
            CompileError::Script { logs, .. } | CompileError::TopLevel { logs, .. } => logs,
            _ => &[],
        }
    }
}

/// A rule ready to run: compiled code plus the pre-resolved imports of every instance,
/// and the rule's cache, which all its executions share (clones share it too).
#[derive(Clone)]
pub struct CompiledRule {
    pub(crate) pre: CredentialsExchangePre<StoreData>,
    cache: RuleCache,
}

impl std::fmt::Debug for CompiledRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompiledRule").finish_non_exhaustive()
    }
}

impl CompiledRule {
    pub(crate) fn component(&self) -> &Component {
        self.pre.instance_pre().component()
    }

    /// The rule's cache (`api.cache`). Every compile or load starts with an empty one.
    pub fn cache(&self) -> &RuleCache {
        &self.cache
    }

    /// The same rule using `cache`: lets a caller keep a rule's cache across a recompile.
    pub fn with_cache(self, cache: RuleCache) -> Self {
        CompiledRule { cache, ..self }
    }
}

/// Set to `1`, JS rules are built with the WASI adapter even where it could be inlined:
/// for measuring what inlining saves (`bench/run.py`'s seed-adapter phase), and a way back should
/// the inlined functions ever misbehave.
pub const WASI_ADAPTER_ENV: &str = "TOKENHOST_WASI_ADAPTER";

/// Turns a pre-initialized core module into a component: with its WASI preview1 imports
/// written inside it (`inline_wasi.rs`), or, for a module that rewrite does not handle or
/// with [`WASI_ADAPTER_ENV`] set, with the reactor adapter.
pub(crate) fn componentize(module: &[u8]) -> Result<Vec<u8>, CompileError> {
    static FORCE_ADAPTER: OnceLock<bool> = OnceLock::new();
    let force_adapter =
        *FORCE_ADAPTER.get_or_init(|| std::env::var(WASI_ADAPTER_ENV).is_ok_and(|v| v == "1"));
    let inlined = if force_adapter {
        None
    } else {
        inline_wasi::inline_preview1(module).map_err(CompileError::runtime)?
    };
    let encoder = match &inlined {
        Some(module) => wit_component::ComponentEncoder::default().module(module),
        None => wit_component::ComponentEncoder::default()
            .module(module)
            .and_then(|encoder| {
                encoder.adapter(
                    "wasi_snapshot_preview1",
                    wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_REACTOR_ADAPTER,
                )
            }),
    };
    encoder
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(CompileError::runtime)
}

/// Compiles a component and checks it against the world: its imports must be satisfied by
/// the linker (WASI, `log` and `cache` of any 0.1 release of the world, nothing else) and
/// it must export `execute` with our types.
pub(crate) fn compile_component(
    engine: &Engine,
    linker: &Linker<StoreData>,
    wasm: &[u8],
) -> Result<CompiledRule, CompileError> {
    if !wasmparser_is_component(wasm) {
        return Err(CompileError::InvalidComponent(
            "expected a WebAssembly component (a core module is not accepted)".into(),
        ));
    }
    let component = Component::new(engine, wasm)
        .map_err(|e| CompileError::InvalidComponent(format!("{e:#}")))?;
    ready(linker, component)
}

/// Resolves imports once and checks the exports, for a component compiled or loaded here.
pub(crate) fn ready(
    linker: &Linker<StoreData>,
    component: Component,
) -> Result<CompiledRule, CompileError> {
    let instance_pre = linker
        .instantiate_pre(&component)
        .map_err(|e| CompileError::InvalidComponent(format!("{e:#}")))?;
    let pre = CredentialsExchangePre::new(instance_pre)
        .map_err(|e| CompileError::InvalidComponent(format!("{e:#}")))?;
    Ok(CompiledRule {
        pre,
        cache: RuleCache::new(),
    })
}

/// The component-model binary header: magic, then layer 1.
fn wasmparser_is_component(wasm: &[u8]) -> bool {
    wasm.len() >= 8 && &wasm[0..4] == b"\0asm" && wasm[6..8] == [0x01, 0x00]
}
