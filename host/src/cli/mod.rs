//! The `tokenhost` command line: run the server; compile and test rules offline.

mod compile;
mod logs;
mod run_rule;
mod serve;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::rules::{Limits, RuleEngine};

/// Exit status when the rule ran and issued no token because it denied.
pub const EXIT_DENIED: u8 = 1;
/// Exit status when the rule failed (exception, limit, invalid result).
pub const EXIT_FAILED: u8 = 2;
/// Exit status when the rule could not be read or compiled, or the event is invalid.
pub const EXIT_USAGE: u8 = 3;

#[derive(Debug, Parser)]
#[command(
    name = "tokenhost",
    version,
    about = "A programmable OAuth 2.0 client-credentials token server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the token server (configuration: --config FILE, then TOKENHOST_* variables).
    Serve {
        /// A TOML configuration file.
        #[arg(long, env = "TOKENHOST_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Show rule executions (`--follow` to stream them live).
    Logs(logs::LogsArgs),
    /// Compile a JS rule into a pre-initialized WebAssembly component.
    Compile {
        /// The rule's JavaScript source.
        input: PathBuf,
        /// Where to write the component.
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Run a rule (JS source or component) once against an event file, as the server would.
    RunRule {
        /// The rule: a `.js` source or a `.wasm` component.
        rule: PathBuf,
        /// JSON with the rule's arguments: {"client", "scope", "audience", "context"}.
        #[arg(long)]
        event: Option<PathBuf>,
        /// Print the whole report as JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Recovery on the server's host, with access to its data directory or database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Add a new management client with every scope, for an installation whose
    /// administrators are locked out. With SQLite, stop the server first: it reads its
    /// clients at start. PostgreSQL nodes hear of the new client while they run.
    ResetBootstrap {
        /// The server's TOML configuration file.
        #[arg(long, env = "TOKENHOST_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Sandbox limits, each defaulting to CONTRACT.md's value.
#[derive(Debug, Args)]
pub struct LimitArgs {
    /// Fuel per execution.
    #[arg(long)]
    pub fuel: Option<u64>,
    /// Guest linear memory cap in bytes.
    #[arg(long)]
    pub memory_bytes: Option<usize>,
    /// Deadline in milliseconds (at most 20000).
    #[arg(long)]
    pub deadline_ms: Option<u64>,
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self.memory_bytes.unwrap_or(defaults.memory_bytes),
            deadline: self
                .deadline_ms
                .map(Duration::from_millis)
                .unwrap_or(defaults.deadline),
            // The CLI runs one rule at a time.
            concurrency: 2,
            ..defaults
        }
    }
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Logs(args) => logs::run(args),
        Command::Admin(AdminCommand::ResetBootstrap { config }) => {
            serve::reset_bootstrap(config.as_deref())
        }
        Command::Compile {
            input,
            output,
            limits,
        } => with_engine(&limits, |engine| compile::run(engine, &input, &output)),
        Command::RunRule {
            rule,
            event,
            json,
            limits,
        } => with_engine(&limits, |engine| {
            run_rule::run(engine, &rule, event.as_deref(), json)
        }),
    }
}

fn with_engine(limits: &LimitArgs, f: impl FnOnce(&RuleEngine) -> ExitCode) -> ExitCode {
    match RuleEngine::new(limits.limits()) {
        Ok(engine) => f(&engine),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Prints a compile error with the rule's console output and its location.
fn report_compile_error(path: &std::path::Path, error: &crate::rules::CompileError) {
    for line in error.logs() {
        eprintln!("[{:?}] {}", line.level, line.message);
    }
    match error {
        crate::rules::CompileError::Script {
            message,
            line,
            column,
            ..
        } => {
            eprintln!("error: {}:{line}:{column}: {message}", path.display());
        }
        other => eprintln!("error: {}: {other}", path.display()),
    }
}
