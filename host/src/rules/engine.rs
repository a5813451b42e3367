//! The rule engine: one wasmtime `Engine` for the process, and the way in for every rule.
//!
//! Pooling allocator with copy-on-write memory images (instantiation in microseconds),
//! fuel and epoch interruption on for all code, an epoch ticker thread for deadlines, and a
//! slot count equal to the pool's capacity so that excess executions wait instead of
//! failing to instantiate.
//!
//! Executions are async: the guest runs on a fiber of the calling task and yields at every
//! epoch tick, so the server runs rules on its own workers without a thread handoff per
//! request; `lanes.rs` keeps slow or looping rules from holding those workers.

use std::sync::OnceLock;
use std::thread;

use tokio::sync::Semaphore;
use wasmtime::component::Linker;
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

use super::artifact::{ArtifactError, ArtifactKey};
use super::bindings::CredentialsExchange;
use super::compile::{self, CompileError, CompiledRule};
use super::lanes::SlowLane;
use super::limits::{Limits, LimitsError};
use super::snapshot::Snapshotter;
use super::store::{StoreData, EPOCH_TICK};

/// Pages the pool keeps resident between instances: the guest's hot heap fits in it.
const KEEP_RESIDENT: usize = 4 * 1024 * 1024;

/// What one rule's component may instantiate, transitively. The JS runtime's component
/// (main module, WASI adapter, wit-component's shims) and the Rust fixture fit; wasmtime
/// checks every component against these in `Component::new`, so a component that would
/// not fit its share of the pool is refused at upload, and no execution can fail for lack
/// of pool space.
pub const CORE_INSTANCES_PER_RULE: u32 = 8;
pub const MEMORIES_PER_RULE: u32 = 2;
pub const TABLES_PER_RULE: u32 = 4;

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error(transparent)]
    Limits(#[from] LimitsError),
    #[error("cannot configure wasmtime: {0}")]
    Wasmtime(String),
}

/// Compiles and runs rules under the configured [`Limits`].
pub struct RuleEngine {
    pub(crate) engine: Engine,
    pub(crate) linker: Linker<StoreData>,
    pub(crate) limits: Limits,
    /// The pool's instance slots: an execution holds a permit, excess executions wait.
    pub(crate) slots: Semaphore,
    pub(crate) slow_lane: SlowLane,
    snapshotter: OnceLock<Result<Snapshotter, String>>,
}

impl std::fmt::Debug for RuleEngine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuleEngine")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl RuleEngine {
    pub fn new(limits: Limits) -> Result<Self, EngineError> {
        limits.validate()?;
        let wasmtime_err = |e: wasmtime::Error| EngineError::Wasmtime(format!("{e:#}"));
        let slots = limits.concurrency;
        // Every slot may hold one rule's worth of instances, memories and tables, and
        // pre-initialization (one core instance of the runtime) one more share.
        let mut pool = PoolingAllocationConfig::default();
        pool.max_core_instances_per_component(CORE_INSTANCES_PER_RULE)
            .max_memories_per_component(MEMORIES_PER_RULE)
            .max_tables_per_component(TABLES_PER_RULE)
            .total_component_instances(slots + 1)
            .total_core_instances((slots + 1) * CORE_INSTANCES_PER_RULE)
            .total_memories((slots + 1) * MEMORIES_PER_RULE)
            .total_tables((slots + 1) * TABLES_PER_RULE)
            // One fiber stack per execution in flight (plus pre-initialization).
            .total_stacks(slots + 1)
            .max_memory_size(limits.memory_bytes)
            .linear_memory_keep_resident(KEEP_RESIDENT)
            .table_keep_resident(KEEP_RESIDENT)
            // Reset only the pages an execution dirtied (Linux 6.7+; ignored elsewhere).
            .pagemap_scan(wasmtime::Enabled::Auto);
        let mut config = Config::new();
        config
            .wasm_component_model(true)
            .consume_fuel(true)
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
        let engine = Engine::new(&config).map_err(wasmtime_err)?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker).map_err(wasmtime_err)?;
        CredentialsExchange::add_to_linker::<_, wasmtime::component::HasSelf<StoreData>>(
            &mut linker,
            |data| data,
        )
        .map_err(wasmtime_err)?;
        start_epoch_ticker(&engine);
        Ok(RuleEngine {
            engine,
            linker,
            slots: Semaphore::new(limits.concurrency as usize),
            slow_lane: SlowLane::for_this_machine(),
            limits,
            snapshotter: OnceLock::new(),
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// JS source to a pre-initialized component (what `tokenhost compile` writes).
    pub fn componentize_js(&self, source: &str) -> Result<Vec<u8>, CompileError> {
        if source.len() > self.limits.max_script_bytes {
            return Err(CompileError::TooLarge {
                size: source.len(),
                limit: self.limits.max_script_bytes,
            });
        }
        let snapshotter = self
            .snapshotter
            .get_or_init(|| Snapshotter::new(&self.engine).map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| CompileError::Runtime(e.clone()))?;
        let module = snapshotter.snapshot(&self.engine, source, &self.limits)?;
        compile::componentize(&module)
    }

    /// Prepares the one-off machinery of JS compilation now rather than on first upload.
    pub fn warm_up(&self) -> Result<(), CompileError> {
        self.snapshotter
            .get_or_init(|| Snapshotter::new(&self.engine).map_err(|e| e.to_string()))
            .as_ref()
            .map(|_| ())
            .map_err(|e| CompileError::Runtime(e.clone()))
    }

    /// JS source to a rule ready to run.
    pub fn compile_js(&self, source: &str) -> Result<CompiledRule, CompileError> {
        let component = self.componentize_js(source)?;
        self.compile_component(&component)
    }

    /// A component built elsewhere (any language implementing the world), checked against
    /// the world and compiled here.
    pub fn compile_component(&self, wasm: &[u8]) -> Result<CompiledRule, CompileError> {
        compile::compile_component(&self.engine, &self.linker, wasm)
    }

    /// Serializes a compiled rule for storage, sealed with `key`.
    pub fn seal(&self, rule: &CompiledRule, key: &ArtifactKey) -> Result<Vec<u8>, ArtifactError> {
        key.seal(rule.component())
    }

    /// Loads a sealed artifact if, and only if, this key sealed it for this engine.
    pub fn load(&self, sealed: &[u8], key: &ArtifactKey) -> Result<CompiledRule, ArtifactError> {
        let component = key.open(&self.engine, sealed)?;
        compile::ready(&self.linker, component)
            .map_err(|e| ArtifactError::Incompatible(e.to_string()))
    }
}

/// Advances the engine's epoch every tick for as long as the engine lives.
fn start_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    // If the thread cannot start, deadlines degrade to fuel alone; say so loudly.
    let spawned = thread::Builder::new()
        .name("tokenhost-epoch".into())
        .spawn(move || loop {
            thread::sleep(EPOCH_TICK);
            match weak.upgrade() {
                Some(engine) => engine.increment_epoch(),
                None => break,
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the epoch ticker, rule deadlines will not be enforced: {e}");
    }
}
