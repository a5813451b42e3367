//! The per-execution store: one struct owns every limit and the captured logs.
//!
//! [`new_store`] is the only way an execution gets a `Store`, so no call path can forget
//! fuel, the memory cap or the deadline.

use std::time::{Duration, Instant};

use wasmtime::{Engine, ResourceLimiter, Store, UpdateDeadline};
use wasmtime_wasi::{ResourceTable, WasiCtx, WasiCtxView, WasiView};

use super::bindings::{self, cache as wit_cache, client_proof, LogLevel};
use super::cache::{CacheError, RuleCache};
use super::console::Logs;
use super::input::RuleInput;
use super::lanes::{SlowLane, Turn};
use super::limits::Limits;
use super::outcome::Level;

/// How often the engine's epoch advances: the deadline's resolution, and the longest a
/// running guest keeps a server worker before yielding it to other requests.
pub const EPOCH_TICK: Duration = Duration::from_millis(1);

/// Linear memory and table growth under a cap, remembering whether a grow was refused so a
/// trap that follows can be reported as the memory limit it really is.
#[derive(Debug)]
pub(crate) struct Limiter {
    memory_bytes: usize,
    pub(crate) memory_refused: bool,
}

impl Limiter {
    pub(crate) fn new(memory_bytes: usize) -> Self {
        Limiter {
            memory_bytes,
            memory_refused: false,
        }
    }
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.memory_refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }
}

/// Everything a rule's store holds.
pub(crate) struct StoreData {
    pub(crate) limiter: Limiter,
    pub(crate) logs: Logs,
    /// The executing rule's cache: the one thing its executions share.
    cache: RuleCache,
    /// What the `client-proof` import answers: this execution's, from its input.
    proof: client_proof::Proof,
    /// Made on the guest's first WASI call: a JS rule's module makes one only when it
    /// reads a clock or asks for randomness (`inline_wasi.rs`), and most executions never
    /// do, so they skip building one (a dozen allocations, two random generators seeded).
    wasi: Option<WasiCtx>,
    table: ResourceTable,
}

impl WasiView for StoreData {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            // Empty: no filesystem, environment, arguments, network or stdio.
            ctx: self.wasi.get_or_insert_with(WasiCtx::default),
            table: &mut self.table,
        }
    }
}

impl bindings::CredentialsExchangeImports for StoreData {
    fn log(&mut self, level: LogLevel, message: String) {
        let level = match level {
            LogLevel::Debug => Level::Debug,
            LogLevel::Info => Level::Info,
            LogLevel::Warn => Level::Warn,
            LogLevel::Error => Level::Error,
        };
        self.logs.push(level, message);
    }
}

impl bindings::tokenhost::rule::types::Host for StoreData {}

impl wit_cache::Host for StoreData {
    fn get(&mut self, key: String) -> Option<wit_cache::Entry> {
        self.cache.get(&key).map(|cached| wit_cache::Entry {
            value: cached.value,
            expires_at: cached.expires_at_ms,
        })
    }

    fn set(
        &mut self,
        key: String,
        value: String,
        ttl_ms: Option<u64>,
    ) -> Result<(), wit_cache::CacheError> {
        let ttl = ttl_ms.map(Duration::from_millis);
        self.cache.set(&key, &value, ttl).map_err(|e| {
            let refusal = match e {
                CacheError::KeyTooLong { .. } => wit_cache::Refusal::KeyTooLong,
                CacheError::ValueTooLarge { .. } => wit_cache::Refusal::ValueTooLarge,
                CacheError::InvalidTtl { .. } => wit_cache::Refusal::InvalidTtl,
            };
            wit_cache::CacheError {
                refusal,
                message: e.to_string(),
            }
        })
    }

    fn delete(&mut self, key: String) -> bool {
        self.cache.delete(&key)
    }
}

impl client_proof::Host for StoreData {
    fn get(&mut self) -> client_proof::Proof {
        self.proof.clone()
    }
}

/// A fresh store with every limit set, reaching `cache` (the executing rule's), capturing
/// logs redacted with `input`'s secrets and answering `client-proof` from `input`; its
/// guest must be called with wasmtime's `*_async` methods (it yields at epoch ticks). The
/// guest sees an empty WASI context: no filesystem, environment, arguments or network;
/// only clocks and randomness.
pub(crate) fn new_store(
    engine: &Engine,
    limits: &Limits,
    deadline: Instant,
    cache: RuleCache,
    input: &RuleInput,
    lane: &SlowLane,
) -> wasmtime::Result<Store<StoreData>> {
    let data = StoreData {
        limiter: Limiter::new(limits.memory_bytes),
        logs: Logs::new(limits.max_log_bytes, input.secrets.clone()),
        cache,
        proof: input.wit_proof(),
        wasi: None,
        table: ResourceTable::new(),
    };
    let mut store = Store::new(engine, data);
    store.limiter(|data| &mut data.limiter);
    store.set_fuel(limits.fuel)?;
    // At every epoch tick the guest yields its worker (lanes.rs says how long runners
    // share them), until the deadline interrupts it.
    let turn = Turn::new(lane);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if Instant::now() >= deadline {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::YieldCustom(1, turn.at_tick())
        })
    });
    Ok(store)
}

/// Epoch ticks from now until `deadline`, rounded up, at least one.
pub(crate) fn ticks_until(deadline: Instant) -> u64 {
    let left = deadline.saturating_duration_since(Instant::now());
    let tick = EPOCH_TICK.as_micros().max(1);
    (left.as_micros().div_ceil(tick) as u64).max(1)
}
