//! The JavaScript rule runtime: QuickJS (through `javy`) exporting tokenhost's WIT world.
//!
//! Life of a rule: the host pre-initializes this module with Wizer, calling
//! [`initialize`] with the rule's source on stdin; the rule is evaluated once and the
//! whole heap snapshotted. Every token request then gets a fresh instance of that snapshot,
//! and `execute` only calls the already-evaluated function. The glue a rule sees (the
//! typed errors, `console`, `cb`, the Actions `event` and `api`, outcome reading) lives in
//! `prelude.js`; this file provides the natives it calls and runs an execution:
//! [`inputs`] writes the WIT arguments into the objects the prelude built for them, the
//! prelude's `run` calls the rule, and [`outcome`] reads the result back.
//!
//! An execution costs wasm instructions (the host's fuel) on every token request, so its
//! path is kept short: whatever can be built before the snapshot is, the inputs are
//! written in place with raw QuickJS calls ([`js`]), and common tokens are read without
//! running JS. Each shortcut only stands where the rule cannot tell the difference
//! ([`builtins`]).

mod builtins;
mod inputs;
mod js;
mod outcome;

use std::cell::{Cell, OnceCell};
use std::io::{Read, Write};

use javy::quickjs::{
    context::EvalOptions, prelude::Func, qjs, CatchResultExt, CaughtError, Ctx, Function, Object,
    Value,
};
use javy::{Config, Runtime};

use builtins::Builtins;
use inputs::{Inputs, Unfilled};
use js::{Js, Kept};
use outcome::{read_outcome, Reader};

mod bindings {
    wit_bindgen::generate!({
        path: "../wit/rule.wit",
        world: "credentials-exchange",
    });
}

use bindings::tokenhost::rule::cache;
use bindings::tokenhost::rule::client_proof::{self, Proof};
use bindings::tokenhost::rule::types::{
    AccessToken, Client, Context, FailureKind, LogLevel, RuleError, RuleFailure,
};

/// QuickJS's own heap limit: below the host's default 32 MiB linear-memory cap, so that a
/// memory bomb ends as a clean JS "out of memory" error the guest can report.
const QUICKJS_HEAP_LIMIT: usize = 24 * 1024 * 1024;
/// Below the 1 MiB shadow stack, so deep JS recursion is a JS RangeError, not a trap.
const QUICKJS_STACK_LIMIT: usize = 512 * 1024;
/// Allocation an execution may make before QuickJS's cycle collector runs. The snapshot's
/// heap is collected once at load and the threshold set this far above what is left, so an
/// ordinary execution never starts with a full GC of the runtime's built-in objects just
/// because the snapshot sat near the threshold, while a rule producing much cyclic garbage
/// still gets it collected.
const GC_HEADROOM: usize = 8 * 1024 * 1024;
/// How often pending promise jobs are drained before the rule counts as stuck.
const MAX_JOB_ROUNDS: usize = 10_000;

struct Guest {
    runtime: Runtime,
    glue: Glue,
}

/// What an execution uses of the prelude, kept from initialization.
struct Glue {
    /// The prelude's `run` and `read`.
    run: Kept,
    read: Kept,
    inputs: Inputs,
    reader: Reader,
}

thread_local! {
    static GUEST: OnceCell<Guest> = const { OnceCell::new() };
    static RANDOM: Cell<u64> = const { Cell::new(0) };
    /// Whether this instance has run its execution: the prelude's arguments are filled in
    /// place, for one execution, so each needs a fresh instance of the snapshot.
    static EXECUTED: Cell<bool> = const { Cell::new(false) };
}

/// Wizer's init export: evaluates the rule read from stdin, then reports on stdout, as one
/// JSON line, `{"ok":true,...}` or the compile error with its line and column.
#[export_name = "wizer-initialize"]
pub extern "C" fn initialize() {
    // Static constructors run now, inside the snapshot; otherwise wit-bindgen would run
    // them on the first `execute` of every instance.
    wit_bindgen::rt::run_ctors_once();
    let mut source = String::new();
    let status = match std::io::stdin().read_to_string(&mut source) {
        Ok(_) => load(&source),
        Err(e) => Loaded::failed(&format!("cannot read the rule source: {e}")),
    };
    // The snapshot must not carry a seed: every instance seeds itself on first use.
    RANDOM.with(|r| r.set(0));
    let mut out = std::io::stdout();
    // Nothing else can be reported if stdout fails; the host then sees no status and fails.
    let _ = out.write_all(status.report().as_bytes());
    let _ = out.flush();
    // Last, so that nothing allocated during initialization comes after it; only for a
    // snapshot that will be kept (the host discards one whose rule did not load).
    if let Loaded::Yes(_) = status {
        allocate_from_fresh_pages();
    }
}

/// What loading the rule came to, with its status line for the host.
enum Loaded {
    Yes(String),
    No(String),
}

impl Loaded {
    /// The status of a load that failed outside the rule (no line or column to give).
    fn failed(message: &str) -> Loaded {
        Loaded::No(format!(
            "{{\"ok\":false,\"name\":\"Error\",\"message\":{},\"line\":0,\"column\":0}}",
            outcome::json_string(message)
        ))
    }

    fn report(&self) -> &str {
        match self {
            Loaded::Yes(status) | Loaded::No(status) => status,
        }
    }
}

/// The smallest block the C allocator hands out (dlmalloc's 16-byte chunk on wasm32).
const PLUG_BYTES: usize = 8;
/// Blocks taken at most (1 MiB of free chunks): the loop runs on the top level's fuel,
/// which a heavy top level may have nearly spent.
const MAX_PLUGS: usize = 65_536;
/// Room left at the top of the heap for executions to allocate from.
const FRESH_ROOM: usize = 512 * 1024;

/// Makes an execution's allocations come from fresh pages at the top of the heap.
///
/// Every page an execution writes is copied back from the snapshot when its instance is
/// dropped. Loading a rule leaves free chunks all over the heap, and an execution's small
/// allocations (its input strings, say) would land in them, one written page each, besides
/// the free-list links they rewrite in other chunks. So the snapshot takes every free
/// chunk (smallest blocks until the heap has to grow) and then leaves `FRESH_ROOM` free at
/// the top. The blocks are never freed: the instance is discarded after one execution, and
/// what they hold was free memory of the snapshot. QuickJS's heap limit does not count them
/// (they are the C allocator's, not QuickJS's).
fn allocate_from_fresh_pages() {
    extern "C" {
        fn malloc(size: usize) -> *mut u8;
        fn free(block: *mut u8);
    }
    use core::arch::wasm32::memory_size;
    let pages = memory_size(0);
    let mut left = MAX_PLUGS;
    // SAFETY: libc's allocator on blocks this function owns; each block is written within
    // its size, and `room` is freed once, as allocated.
    unsafe {
        while memory_size(0) == pages && left > 0 {
            // black_box and the write keep the compiler from removing an unused allocation.
            let block = core::hint::black_box(malloc(PLUG_BYTES));
            if block.is_null() {
                return;
            }
            block.write_volatile(0);
            left -= 1;
        }
        let room = core::hint::black_box(malloc(FRESH_ROOM));
        if !room.is_null() {
            free(room);
        }
    }
}

fn load(source: &str) -> Loaded {
    let mut config = Config::default();
    config
        .memory_limit(QUICKJS_HEAP_LIMIT)
        .max_stack_size(QUICKJS_STACK_LIMIT)
        .gc_threshold(4 * 1024 * 1024);
    let runtime = match Runtime::new(config) {
        Ok(runtime) => runtime,
        Err(e) => return Loaded::failed(&format!("runtime: {e}")),
    };
    let outcome = runtime
        .context()
        .with(|cx| -> Result<(Glue, String), String> {
            let globals = cx.globals();
            let natives = globals
                .set("__th_log", Func::from(log_native))
                .and_then(|_| globals.set("__th_random", Func::from(random_native)))
                .and_then(|_| globals.set("__th_cache_get", Func::from(cache_get_native)))
                .and_then(|_| globals.set("__th_cache_set", Func::from(cache_set_native)))
                .and_then(|_| globals.set("__th_cache_delete", Func::from(cache_delete_native)));
            natives.map_err(|e| format!("natives: {e}"))?;
            let glue: Object = cx
                .eval_with_options(include_str!("prelude.js"), script_options("prelude.js"))
                .catch(&cx)
                .map_err(|e| format!("prelude: {e}"))?;
            let status = match cx
                .eval_with_options::<(), _>(source, script_options("rule.js"))
                .catch(&cx)
            {
                Ok(()) => call_glue::<String>(&glue, "checkLoaded", ()),
                Err(CaughtError::Exception(e)) => call_glue::<String>(&glue, "compileError", (e,)),
                Err(CaughtError::Value(v)) => call_glue::<String>(&glue, "compileError", (v,)),
                Err(CaughtError::Error(e)) => Err(e.to_string()),
            }?;
            let glue = keep_glue(&cx, &glue)?;
            collect_and_raise_gc_threshold(&cx);
            Ok((glue, status))
        });
    match outcome {
        Ok((glue, status)) => {
            GUEST.with(|cell| {
                let _ = cell.set(Guest { runtime, glue });
            });
            // The prelude's `stringify` writes `ok` first: `{"ok":true,"style":...}` is
            // the one status of a rule that loaded (checkLoaded's), every other has false.
            if status.starts_with("{\"ok\":true") {
                Loaded::Yes(status)
            } else {
                Loaded::No(status)
            }
        }
        Err(message) => Loaded::failed(&message),
    }
}

/// Keeps what executions use of the prelude, once the rule is loaded and its style known.
fn keep_glue<'js>(cx: &Ctx<'js>, glue: &Object<'js>) -> Result<Glue, String> {
    let layout: Object = call_glue(glue, "layout", ())?;
    let layout_error = |e: javy::quickjs::Error| format!("layout: {e}");
    let builtins = Builtins::new(cx, &layout).map_err(layout_error)?;
    let js = Js::new(cx);
    // Whether the rule left the built-ins that assigning the inputs and parsing the prior
    // claims would call as they were; if not, those go the long way, as they always did.
    let assignment_intact = builtins.assignment_intact(js);
    let claims_here = assignment_intact && builtins.destructuring_intact(js);
    let function = |name: &str| -> Result<Kept, String> {
        let f: Function = glue.get(name).map_err(|e| format!("glue {name}: {e}"))?;
        Ok(Kept::keep(f.as_value()))
    };
    let inputs = Inputs::new(cx, &layout, claims_here).map_err(layout_error)?;
    if assignment_intact {
        inputs.preshape(js).map_err(|Unfilled(message)| message)?;
    }
    Ok(Glue {
        run: function("run")?,
        read: function("read")?,
        inputs,
        reader: Reader::new(cx, &layout, builtins).map_err(layout_error)?,
    })
}

fn collect_and_raise_gc_threshold(cx: &Ctx) {
    // SAFETY: `cx` is a live context; the runtime pointer comes from it and is only used
    // for the duration of these calls, on this (the only) thread.
    unsafe {
        let rt = qjs::JS_GetRuntime(cx.as_raw().as_ptr());
        qjs::JS_RunGC(rt);
        let mut usage = std::mem::MaybeUninit::<qjs::JSMemoryUsage>::zeroed();
        qjs::JS_ComputeMemoryUsage(rt, usage.as_mut_ptr());
        let used = usage.assume_init().malloc_size.max(0) as usize;
        qjs::JS_SetGCThreshold(rt, (used + GC_HEADROOM) as qjs::size_t);
    }
}

fn script_options(filename: &str) -> EvalOptions {
    let mut options = EvalOptions::default();
    options.global = true;
    options.strict = false;
    options.filename = Some(filename.to_string());
    options
}

fn call_glue<'js, R: javy::quickjs::FromJs<'js>>(
    glue: &Object<'js>,
    name: &str,
    args: impl javy::quickjs::function::IntoArgs<'js>,
) -> Result<R, String> {
    let f: Function = glue.get(name).map_err(|e| format!("glue {name}: {e}"))?;
    call_function(&f, name, args)
}

fn call_function<'js, R: javy::quickjs::FromJs<'js>>(
    f: &Function<'js>,
    name: &str,
    args: impl javy::quickjs::function::IntoArgs<'js>,
) -> Result<R, String> {
    f.call(args)
        .catch(f.ctx())
        .map_err(|e| format!("glue {name}: {e}"))
}

fn log_native(level: i32, message: String) {
    let level = match level {
        0 => LogLevel::Debug,
        1 => LogLevel::Info,
        2 => LogLevel::Warn,
        _ => LogLevel::Error,
    };
    bindings::log(level, &message);
}

/// `api.cache.get`: `{value, expires_at}` (the successor platform's cache record) or
/// `undefined`.
fn cache_get_native<'js>(cx: Ctx<'js>, key: String) -> javy::quickjs::Result<Value<'js>> {
    let Some(entry) = cache::get(&key) else {
        return Ok(Value::new_undefined(cx));
    };
    let record = Object::new(cx)?;
    record.set("value", entry.value)?;
    // Milliseconds since the epoch fit a JS number exactly until the year 287396.
    record.set("expires_at", entry.expires_at as f64)?;
    Ok(record.into_value())
}

/// `api.cache.set`: `undefined` once stored, or `{code, message}` naming the limit hit.
/// `ttl` is in milliseconds; `null` asks for the host's default. A negative, fractional
/// or absurd ttl is rounded into `u64` here and refused by the host, which owns the limits.
fn cache_set_native<'js>(
    cx: Ctx<'js>,
    key: String,
    value: String,
    ttl: Option<f64>,
) -> javy::quickjs::Result<Value<'js>> {
    // `as` saturates: NaN and negatives become 0, infinities u64::MAX; both are refused.
    let ttl_ms = ttl.map(|ms| ms.ceil() as u64);
    let Err(error) = cache::set(&key, &value, ttl_ms) else {
        return Ok(Value::new_undefined(cx));
    };
    let code = match error.refusal {
        cache::Refusal::KeyTooLong => "key_too_long",
        cache::Refusal::ValueTooLarge => "value_too_large",
        cache::Refusal::InvalidTtl => "invalid_ttl",
    };
    let refused = Object::new(cx)?;
    refused.set("code", code)?;
    refused.set("message", error.message)?;
    Ok(refused.into_value())
}

/// `api.cache.delete`: whether a live entry was removed.
fn cache_delete_native(key: String) -> bool {
    cache::delete(&key)
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
unsafe extern "C" {
    #[link_name = "random_get"]
    fn wasi_random_get(buf: *mut u8, len: usize) -> i32;
}

/// `Math.random`: xorshift64*, seeded from WASI on first use in each instance (a seed
/// taken at pre-initialization would be shared by every instance of the snapshot).
fn random_native() -> f64 {
    RANDOM.with(|state| {
        let mut x = state.get();
        if x == 0 {
            let mut seed = [0u8; 8];
            // SAFETY: the buffer is valid for 8 bytes for the duration of the call.
            let errno = unsafe { wasi_random_get(seed.as_mut_ptr(), seed.len()) };
            x = if errno == 0 {
                u64::from_le_bytes(seed)
            } else {
                0
            } | 1;
        }
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 11) as f64 / (1u64 << 53) as f64
    })
}

struct Component;

impl bindings::Guest for Component {
    fn execute(
        client: Client,
        scope: Vec<String>,
        audience: String,
        context: Context,
    ) -> Result<AccessToken, RuleError> {
        if EXECUTED.replace(true) {
            return Err(failure(
                FailureKind::Exception,
                "Error",
                "an instance of the rule runtime runs one execution",
            ));
        }
        // One call per execution: the answer cannot change during it.
        let proof = client_proof::get();
        let result = GUEST.with(|cell| match cell.get() {
            Some(guest) => execute(
                &guest.runtime,
                &guest.glue,
                &client,
                &scope,
                &audience,
                &context,
                &proof,
            ),
            None => Err(failure(
                FailureKind::Exception,
                "Error",
                "the rule was never loaded",
            )),
        });
        // The instance is discarded after this call: freeing the inputs would be work for
        // nothing.
        std::mem::forget((client, scope, audience, context, proof));
        result
    }
}

bindings::export!(Component with_types_in bindings);

fn failure(kind: FailureKind, name: &str, message: &str) -> RuleError {
    RuleError::Failure(RuleFailure {
        kind,
        name: name.into(),
        message: message.into(),
        stack: None,
    })
}

fn execute(
    runtime: &Runtime,
    glue: &Glue,
    client: &Client,
    scope: &[String],
    audience: &str,
    context: &Context,
    proof: &Proof,
) -> Result<AccessToken, RuleError> {
    runtime
        .context()
        .with(|cx| start(glue, &cx, client, scope, audience, context, proof))
        .map_err(|message| failure(FailureKind::Exception, "InternalError", &message))?;

    // Drain promise jobs: an async rule settles here. Nothing else can be pending (no
    // timers, no I/O), so once the queue is empty the outcome is final.
    let mut rounds = 0;
    while runtime.has_pending_jobs() && rounds < MAX_JOB_ROUNDS {
        if let Err(e) = runtime.resolve_pending_jobs() {
            return Err(failure(FailureKind::Exception, "Error", &e.to_string()));
        }
        rounds += 1;
    }

    runtime.context().with(|cx| {
        if let Some(token) = glue.reader.token(Js::new(&cx)) {
            return Ok(token);
        }
        // The reference path: the prelude's `read()`.
        let outcome = glue
            .read
            .value(&cx)
            .into_function()
            .ok_or_else(|| "glue read: not a function".to_string())
            .and_then(|read| call_function::<Object>(&read, "read", ()))
            .map_err(|message| failure(FailureKind::Exception, "InternalError", &message))?;
        read_outcome(&outcome)
            .map_err(|e| failure(FailureKind::InvalidResult, "TypeError", &e.to_string()))?
    })
}

/// Writes the inputs in place and calls the prelude's `run(audience, priorPairs)`.
fn start(
    glue: &Glue,
    cx: &Ctx,
    client: &Client,
    scope: &[String],
    audience: &str,
    context: &Context,
    proof: &Proof,
) -> Result<(), String> {
    let js = Js::new(cx);
    let prior_pairs = glue
        .inputs
        .fill(js, cx, client, scope, context, proof)
        .map_err(|Unfilled(message)| message)?;
    let audience = js
        .string(audience)
        .ok_or_else(|| javy::quickjs::Error::Exception.to_string())?;
    js.call(glue.run.raw(), &[audience.raw(), prior_pairs.raw()])
        .map(drop)
        .ok_or_else(|| caught(cx, "run"))
}

/// The pending exception of a failed glue call, described as `call_glue` describes it.
fn caught(cx: &Ctx, name: &str) -> String {
    let e = CaughtError::from_error(cx, javy::quickjs::Error::Exception);
    format!("glue {name}: {e}")
}
