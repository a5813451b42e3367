//! `tokenhost serve`: logs, a multi-threaded runtime, and the server; and
//! `tokenhost admin reset-bootstrap`, which opens the server's store the same way.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

pub(super) fn run(config_file: Option<&Path>) -> ExitCode {
    init_logs();
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(crate::server::serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `tokenhost admin reset-bootstrap`: the server's configuration and store, no server.
pub(super) fn reset_bootstrap(config_file: Option<&Path>) -> ExitCode {
    init_logs();
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(e) => return usage_error(&e),
    };
    match crate::server::reset_bootstrap(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage_error(e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(super::EXIT_USAGE)
}

/// Logs on stderr, coloured only for a terminal (not into a redirected file).
fn init_logs() {
    let filter =
        EnvFilter::try_from_env("TOKENHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TOKENHOST_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
