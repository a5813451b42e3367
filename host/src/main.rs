//! The `tokenhost` binary: parse the command line, hand over to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    tokenhost::cli::run(tokenhost::cli::Cli::parse())
}
