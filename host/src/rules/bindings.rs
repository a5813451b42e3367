//! The one place the host generates bindings for `wit/rule.wit`.
//!
//! Everything else refers to the guest boundary through the types re-exported here, so a
//! change to the WIT file shows up as compile errors in the code that must follow it.

wasmtime::component::bindgen!({
    path: "../wit/rule.wit",
    world: "credentials-exchange",
    // `execute` is called with `call_async` so that a long execution can yield its thread
    // at every epoch tick; the imports (log, cache, client-proof) are quick and stay synchronous.
    exports: { default: async },
});

// The world `use`s these at its top level already; the rest come from the interface.
pub use tokenhost::rule::types::{BodyField, Claim, FailureKind, RequestInfo};

pub use tokenhost::rule::{cache, client_proof};
