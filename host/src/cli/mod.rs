//! The `tokenhost` command line: run the server; compile and test rules offline; read
//! rule logs. One exit-status scheme for every command (the `EXIT_*` constants), and with
//! `--json` every error is one JSON object on stdout (`error.rs`).

mod apply;
mod compile;
mod config_file;
mod error;
mod export;
mod import_auth0;
mod logs;
mod management;
mod plan;
mod progress;
mod run_rule;
mod serve;
mod server_state;

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use crate::rules::{EngineError, Limits, RuleEngine, MAX_DEADLINE};
use error::{CliError, CliResult};

/// run-rule: the rule ran and denied, so no token was issued.
pub const EXIT_DENIED: u8 = 1;
/// Any command: it could not do its work for a reason other than its command line (the
/// server unreachable or refusing, an API error, tokenhost's own failure).
pub const EXIT_FAILED: u8 = 1;
/// Any command: a usage error. What clap refuses (an unknown option, a bad option value),
/// a file that cannot be read or written, an invalid event file, an unusable
/// configuration, no credentials.
pub const EXIT_USAGE: u8 = 2;
/// compile, run-rule: the rule failed (an exception, a limit, an invalid result) or does
/// not compile.
pub const EXIT_RULE_FAILED: u8 = 3;

/// The smallest guest memory the runtime's own image fits in.
const MIN_MEMORY_BYTES: u64 = 4 * 1024 * 1024;

const RUN_RULE_EXIT_CODES: &str = "Exit status:
  0  a token was issued
  1  the rule denied
  2  usage error: a bad option or value, an unreadable file, an invalid event
  3  the rule failed (exception, limit, invalid result) or does not compile
With --json, an error is one JSON object on stdout: {\"error\": {\"code\", \"message\", ...}}.";

const COMPILE_EXIT_CODES: &str = "Exit status:
  0  compiled
  2  usage error: a bad option or value, a file that cannot be read or written
  3  the rule does not compile";

const LOGS_EXIT_CODES: &str = "Exit status:
  0  the entries were printed
  1  the server could not be reached, refused the token, or ended the stream
  2  usage error: a bad option or value, no credentials
With --json, an error is one JSON object on stdout: {\"error\": {\"code\", \"message\", ...}}.";

const EXPORT_EXIT_CODES: &str = "Exit status:
  0  the configuration was written
  1  the server could not be reached, refused the token, or answered an error
  2  usage error: a bad option or value, a file that cannot be written, no credentials";

const APPLY_EXIT_CODES: &str = "Exit status:
  0  the server matches the file (or, with --dry-run, the plan was printed)
  1  the server could not be reached or refused a change; the file cannot be applied to it
     (nothing changed); or a step failed (the error lists what was applied and what was not)
  2  usage error: a bad option, an unreadable or invalid file, no credentials
  3  a rule in the file does not compile (nothing changed)";

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
    #[command(after_help = LOGS_EXIT_CODES)]
    Logs(logs::LogsArgs),
    /// Write the server's whole configuration (APIs, clients, grants, rules) as YAML or JSON.
    #[command(after_help = EXPORT_EXIT_CODES)]
    Export(export::ExportArgs),
    /// Make the server match a configuration file: print the plan, then apply it.
    #[command(after_help = APPLY_EXIT_CODES)]
    Apply(apply::ApplyArgs),
    /// Bring another platform's configuration to the server (printed as a plan, then applied).
    #[command(subcommand)]
    Import(ImportCommand),
    /// Compile a JS rule into a pre-initialized WebAssembly component.
    #[command(after_help = COMPILE_EXIT_CODES)]
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
    #[command(after_help = RUN_RULE_EXIT_CODES)]
    RunRule {
        /// The rule: a `.js` source or a `.wasm` component.
        rule: PathBuf,
        /// JSON with the rule's arguments: {"client", "scope", "audience", "context"}.
        #[arg(long)]
        event: Option<PathBuf>,
        /// Print the whole report as JSON instead of text, and an error as one JSON object.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        limits: LimitArgs,
    },
    /// Print a shell completion script: `tokenhost completions bash > /etc/bash_completion.d/tokenhost`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Recovery on the server's host, with access to its data directory or database.
    #[command(subcommand)]
    Admin(AdminCommand),
}

#[derive(Debug, Subcommand)]
pub enum ImportCommand {
    /// A Deploy CLI (a0deploy) export of the original platform: its directory or its
    /// tenant.yaml. APIs, machine-to-machine clients (client_id and client_secret kept),
    /// grants, enabled credentials-exchange hooks and bound actions as rules; the rest is
    /// reported as skipped.
    #[command(after_help = APPLY_EXIT_CODES)]
    Auth0(import_auth0::ImportArgs),
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
    #[arg(long, value_parser = at_least::<1>)]
    pub fuel: Option<u64>,
    /// Guest linear memory cap in bytes (at least 4 MiB).
    #[arg(long, value_parser = at_least::<MIN_MEMORY_BYTES>)]
    pub memory_bytes: Option<u64>,
    /// Deadline in milliseconds (1 to 20000).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=MAX_DEADLINE.as_millis() as u64))]
    pub deadline_ms: Option<u64>,
}

/// A whole number of at least `MIN` (clap's own range would print `1..18446744073709551615`).
fn at_least<const MIN: u64>(value: &str) -> Result<u64, String> {
    let number: u64 = value
        .parse()
        .map_err(|e| format!("{e}: a whole number is expected"))?;
    if number < MIN {
        return Err(format!("it must be at least {MIN}"));
    }
    Ok(number)
}

impl LimitArgs {
    fn limits(&self) -> Limits {
        let defaults = Limits::default();
        Limits {
            fuel: self.fuel.unwrap_or(defaults.fuel),
            memory_bytes: self
                .memory_bytes
                .map(|bytes| usize::try_from(bytes).unwrap_or(usize::MAX))
                .unwrap_or(defaults.memory_bytes),
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

/// The binary's entry point: parse the command line (its errors in JSON too when `--json`
/// is among the arguments), then run the command.
pub fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().collect();
    match Cli::try_parse_from(&args) {
        Ok(cli) => run(cli),
        Err(e) if e.use_stderr() && wants_json(&args) => {
            let message = e.render().to_string();
            let first = message.lines().next().unwrap_or_default();
            let first = first.strip_prefix("error: ").unwrap_or(first);
            CliError::usage(first).report(true)
        }
        Err(e) => e.exit(),
    }
}

/// `--json` before any `--`.
fn wants_json(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| arg == "--json")
}

pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Serve { config } => serve::run(config.as_deref()),
        Command::Logs(args) => logs::run(args),
        Command::Export(args) => export::run(args),
        Command::Apply(args) => apply::run(args),
        Command::Import(ImportCommand::Auth0(args)) => import_auth0::run(args),
        Command::Admin(AdminCommand::ResetBootstrap { config }) => {
            serve::reset_bootstrap(config.as_deref())
        }
        Command::Compile {
            input,
            output,
            limits,
        } => with_engine(&limits, false, |engine| {
            compile::run(engine, &input, &output)
        }),
        Command::RunRule {
            rule,
            event,
            json,
            limits,
        } => with_engine(&limits, json, |engine| {
            run_rule::run(engine, &rule, event.as_deref(), json)
        }),
        Command::Completions { shell } => completions(shell),
    }
}

/// The runtime the management API's client runs on: one thread, for one command.
fn runtime() -> Result<tokio::runtime::Runtime, CliError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError::failed("internal", format!("cannot start the async runtime: {e}")))
}

/// Runs `future` to its end on a [`runtime`].
fn block_on<T>(
    future: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    runtime()?.block_on(future)
}

/// The script for `shell`, written whole: a reader that stops early (`| head`) is no error.
fn completions(shell: clap_complete::Shell) -> ExitCode {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "tokenhost", &mut script);
    let _ = std::io::Write::write_all(&mut std::io::stdout(), &script);
    ExitCode::SUCCESS
}

fn with_engine(
    limits: &LimitArgs,
    json: bool,
    f: impl FnOnce(&RuleEngine) -> CliResult,
) -> ExitCode {
    let result = match RuleEngine::new(limits.limits()) {
        Ok(engine) => f(&engine),
        // clap checks each limit; what it cannot (none today) is still a usage error.
        Err(EngineError::Limits(e)) => Err(CliError::usage(e.to_string())),
        Err(e) => Err(CliError::failed(
            "internal",
            format!("cannot start the rule engine: {e}"),
        )),
    };
    result.unwrap_or_else(|error| error.report(json))
}
