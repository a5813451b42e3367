//! Pre-initialization: the JS runtime with one rule's source already evaluated, as a module.
//!
//! Wizer's instrumentation of the runtime and the Cranelift compile of the instrumented
//! module happen once per process (~1 s); each rule then costs one instantiation, the
//! evaluation of its source and a memory snapshot (milliseconds). The rule's source goes in
//! on stdin; the runtime answers with one JSON status line on stdout.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use serde::Deserialize;
use wasmtime::{Engine, Instance, Linker, Module, Store};
use wasmtime_wasi::p1::{self, WasiP1Ctx};
use wasmtime_wasi::p2::pipe::{MemoryInputPipe, MemoryOutputPipe};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wizer::{InstanceState, ModuleContext, SnapshotVal, ValType, Wizer};

use super::compile::CompileError;
use super::limits::Limits;
use super::outcome::{Level, LogLine};
use super::store::{ticks_until, Limiter};

/// The JS rule runtime (guest-sdk), built from source and committed.
pub const RULE_RUNTIME: &[u8] = include_bytes!("../../../guest-sdk/rule-runtime.wasm");

/// Name of the runtime's init export.
const INIT_EXPORT: &str = "wizer-initialize";
/// A rule's top level gets more room than one execution (it may build tables) but not
/// unbounded: a top-level `while (true) {}` must end the upload, not hang it.
const INIT_FUEL_FACTOR: u64 = 4;
const INIT_DEADLINE: Duration = Duration::from_secs(10);

/// The fuel a rule's top level gets.
pub(crate) fn init_fuel(limits: &Limits) -> u64 {
    limits.fuel.saturating_mul(INIT_FUEL_FACTOR)
}

struct InitData {
    wasi: WasiP1Ctx,
    limiter: Limiter,
    logs: Vec<LogLine>,
}

/// The instrumented runtime, ready to take one rule after another.
pub(crate) struct Snapshotter {
    wizer: Wizer,
    cx: ModuleContext<'static>,
    module: Module,
    linker: Linker<InitData>,
}

/// The runtime's report on evaluating a rule.
#[derive(Deserialize)]
struct Status {
    ok: bool,
    #[serde(default)]
    name: String,
    #[serde(default)]
    message: String,
    #[serde(default)]
    line: u32,
    #[serde(default)]
    column: u32,
}

impl Snapshotter {
    pub(crate) fn new(engine: &Engine) -> Result<Self, CompileError> {
        let mut wizer = Wizer::new();
        wizer.init_func(INIT_EXPORT);
        let (cx, instrumented) = wizer
            .instrument(RULE_RUNTIME)
            .map_err(CompileError::runtime)?;
        let module = Module::new(engine, &instrumented).map_err(CompileError::runtime)?;
        let mut linker: Linker<InitData> = Linker::new(engine);
        p1::add_to_linker_sync(&mut linker, |data: &mut InitData| &mut data.wasi)
            .map_err(CompileError::runtime)?;
        // The world's `log` import, as wit-bindgen lowers it: (level, ptr, len). Console
        // output of the rule's top level is kept and shown with a compile error.
        linker
            .func_wrap(
                "$root",
                "log",
                |mut caller: wasmtime::Caller<'_, InitData>, level: i32, ptr: i32, len: i32| {
                    let message = read_string(&mut caller, ptr, len);
                    let level = match level {
                        0 => Level::Debug,
                        1 => Level::Info,
                        2 => Level::Warn,
                        _ => Level::Error,
                    };
                    caller.data_mut().logs.push(LogLine { level, message });
                },
            )
            .map_err(CompileError::runtime)?;
        // The `cache` import: a rule's top level has no `api` to reach it through (the
        // Actions `api` exists only inside an execution), so it only has to link.
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(CompileError::runtime)?;
        Ok(Snapshotter {
            wizer,
            cx,
            module,
            linker,
        })
    }

    /// Evaluates `source` in a fresh runtime instance and returns the snapshot module.
    pub(crate) fn snapshot(
        &self,
        engine: &Engine,
        source: &str,
        limits: &Limits,
    ) -> Result<Vec<u8>, CompileError> {
        let stdout = MemoryOutputPipe::new(64 * 1024);
        let wasi = WasiCtxBuilder::new()
            .stdin(MemoryInputPipe::new(source.as_bytes().to_vec()))
            .stdout(stdout.clone())
            .build_p1();
        let data = InitData {
            wasi,
            limiter: Limiter::new(limits.memory_bytes),
            logs: Vec::new(),
        };
        let mut store = Store::new(engine, data);
        store.limiter(|data| &mut data.limiter);
        store
            .set_fuel(init_fuel(limits))
            .map_err(CompileError::runtime)?;
        store.set_epoch_deadline(ticks_until(Instant::now() + INIT_DEADLINE));
        store.epoch_deadline_trap();

        let instance = self
            .linker
            .instantiate(&mut store, &self.module)
            .map_err(CompileError::runtime)?;
        let init = instance
            .get_typed_func::<(), ()>(&mut store, INIT_EXPORT)
            .map_err(CompileError::runtime)?;
        if let Err(trap) = init.call(&mut store, ()) {
            return Err(CompileError::TopLevel {
                message: super::execute::classify_trap(
                    &trap,
                    store.data().limiter.memory_refused,
                    init_fuel(limits),
                    INIT_DEADLINE,
                )
                .to_string(),
                logs: std::mem::take(&mut store.data_mut().logs),
            });
        }
        let status: Status = serde_json::from_slice(&stdout.contents())
            .map_err(|e| CompileError::runtime(format!("the runtime gave no status: {e}")))?;
        if !status.ok {
            let logs = std::mem::take(&mut store.data_mut().logs);
            return Err(CompileError::Script {
                message: format!("{}: {}", status.name, status.message),
                line: status.line,
                column: status.column,
                logs,
            });
        }
        let mut state = Evaluated { store, instance };
        block_on_ready(self.wizer.snapshot(&self.cx, &mut state))
            .map_err(CompileError::runtime)?
            .map_err(CompileError::runtime)
    }
}

fn read_string(caller: &mut wasmtime::Caller<'_, InitData>, ptr: i32, len: i32) -> String {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return String::new();
    };
    let data = memory.data(&caller);
    let start = ptr as u32 as usize;
    let end = start.saturating_add(len as u32 as usize);
    data.get(start..end)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// The state Wizer snapshots: our evaluated instance.
struct Evaluated {
    store: Store<InitData>,
    instance: Instance,
}

impl InstanceState for Evaluated {
    fn global_get(
        &mut self,
        name: &str,
        _type_hint: ValType,
    ) -> impl Future<Output = SnapshotVal> + Send {
        let value = self
            .instance
            .get_global(&mut self.store, name)
            .map(|g| g.get(&mut self.store));
        let value = match value {
            Some(wasmtime::Val::I32(x)) => SnapshotVal::I32(x),
            Some(wasmtime::Val::I64(x)) => SnapshotVal::I64(x),
            Some(wasmtime::Val::F32(x)) => SnapshotVal::F32(x),
            Some(wasmtime::Val::F64(x)) => SnapshotVal::F64(x),
            Some(wasmtime::Val::V128(x)) => SnapshotVal::V128(x.as_u128()),
            // Wizer only asks for the globals its instrumentation exported, all numeric.
            _ => SnapshotVal::I32(0),
        };
        std::future::ready(value)
    }

    fn memory_contents(
        &mut self,
        name: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) -> impl Future<Output = ()> + Send {
        match self.instance.get_memory(&mut self.store, name) {
            Some(memory) => contents(memory.data(&self.store)),
            None => contents(&[]),
        }
        std::future::ready(())
    }
}

/// Wizer's snapshot API is async so that it can wait on an async store; ours answers at
/// once, so the future completes on its first poll.
fn block_on_ready<F: Future>(future: F) -> Result<F::Output, String> {
    let mut future = pin!(future);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return Ok(out);
        }
    }
    Err("the snapshot did not complete".into())
}
