//! tokenhost: an OAuth 2.0 authorization server for machine-to-machine clients whose token
//! issuance is programmed by JavaScript rules running in a WebAssembly sandbox.
//!
//! `rules` is the rule engine (compile, sandbox, execute); `cli` is the `tokenhost` command.

pub mod cli;
pub mod rules;
