//! `tokenhost serve`: logs, a multi-threaded runtime, and the server.

use std::path::Path;
use std::process::ExitCode;

use tracing_subscriber::EnvFilter;

use crate::config::Config;

pub(super) fn run(config_file: Option<&Path>) -> ExitCode {
    let filter =
        EnvFilter::try_from_env("TOKENHOST_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let json = std::env::var("TOKENHOST_LOG_FORMAT").is_ok_and(|f| f == "json");
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    let config = match Config::load(config_file) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(super::EXIT_USAGE);
        }
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
