//! `tokenhost export [-o FILE] [--format yaml|json]`: the whole configuration of a server
//! as a file that `tokenhost apply` takes back: its APIs, clients (never a secret or its
//! hash), grants and rules, each rule's secrets as `##NAME##` placeholders.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use super::config_file::{self, Format};
use super::error::{CliError, CliResult};
use super::management::{Api, ApiArgs};
use super::server_state::{ServerState, READ_SCOPES};
use super::EXIT_USAGE;

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Write the configuration here (default: standard output).
    #[arg(short, long)]
    pub output: Option<PathBuf>,
    /// yaml or json (default: json for a `-o` ending in .json, else yaml).
    #[arg(long, value_enum)]
    pub format: Option<Format>,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub(super) fn run(args: ExportArgs) -> ExitCode {
    super::block_on(export(&args)).unwrap_or_else(|error| error.report(false))
}

async fn export(args: &ExportArgs) -> CliResult {
    let format = args.format.unwrap_or_else(|| match &args.output {
        Some(path) => Format::of(path),
        None => Format::Yaml,
    });
    let api = Api::connect(&args.api, READ_SCOPES).await?;
    let state = ServerState::read(&api).await?;
    let (file, skipped) = state.to_file();
    let text = config_file::write(&file, format)?;
    for item in &skipped {
        eprintln!("skipped {item}");
    }
    match &args.output {
        Some(path) => std::fs::write(path, text).map_err(|e| {
            CliError::new(
                EXIT_USAGE,
                "unwritable_file",
                format!("cannot write {}: {e}", path.display()),
            )
            .with("file", path.display().to_string())
        })?,
        // A reader that stops early (`| head`) is no error.
        None => {
            let _ = std::io::Write::write_all(&mut std::io::stdout(), text.as_bytes());
        }
    }
    Ok(ExitCode::SUCCESS)
}
