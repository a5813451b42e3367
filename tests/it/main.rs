//! tokenhost's integration tests, one binary (linking wasmtime once), a module per area.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod actions;
mod api_conventions;
mod cli;
mod client_auth;
mod cluster;
mod components;
mod config_as_code;
mod console;
mod engine;
mod hardening_logs;
mod hardening_management;
mod hardening_storage;
mod hardening_token;
mod hostile;
mod logs;
mod management;
mod openapi;
mod operations;
mod paging;
mod rule_admin;
mod token_endpoint;
