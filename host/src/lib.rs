//! tokenhost: an OAuth 2.0 authorization server for machine-to-machine clients whose token
//! issuance is programmed by JavaScript rules running in a WebAssembly sandbox.
//!
//! `rules` is the rule engine (compile, sandbox, execute); `server` the HTTP server (token
//! endpoint, discovery, management API) over `store` (persistence) and `keys` (signing);
//! `cli` is the `tokenhost` command.

pub mod cli;
pub mod client_auth;
pub mod config;
pub mod credentials;
pub mod datadir;
pub mod keys;
pub mod master_key;
pub mod policy;
pub mod redacted;
pub mod rules;
pub mod scope;
pub mod secret_box;
pub mod server;
pub mod store;
