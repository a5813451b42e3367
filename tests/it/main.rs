//! tokenhost's integration tests, one binary (linking wasmtime once), a module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cli;
mod components;
mod engine;
mod hostile;
mod management;
mod token_endpoint;
