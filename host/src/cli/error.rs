//! How a command fails: one exit status per class, a code for scripts, a message that says
//! what to do; as a line on stderr, or with `--json` as one JSON object on stdout.

use std::path::Path;
use std::process::ExitCode;

use serde_json::{json, Map, Value};

use super::{EXIT_FAILED, EXIT_RULE_FAILED, EXIT_USAGE};
use crate::rules::CompileError;

/// A command's failure, reported once by [`CliError::report`].
#[derive(Debug)]
pub struct CliError {
    /// The process's exit status.
    pub exit: u8,
    /// A stable name for scripts: `usage`, `unreadable_file`, `invalid_event`, ...
    pub code: &'static str,
    /// What went wrong and, where the user can do something about it, what to do.
    pub message: String,
    /// More for scripts: `file`, `line`, `column`, `status`, `server` (the server's error
    /// body), `logs`.
    pub details: Map<String, Value>,
}

impl CliError {
    pub fn new(exit: u8, code: &'static str, message: impl Into<String>) -> Self {
        CliError {
            exit,
            code,
            message: message.into(),
            details: Map::new(),
        }
    }

    /// Exit 2: the command line asked for something that cannot be done.
    pub fn usage(message: impl Into<String>) -> Self {
        CliError::new(EXIT_USAGE, "usage", message)
    }

    /// Exit 1: the command could not do its work (server unreachable, API error, ...).
    pub fn failed(code: &'static str, message: impl Into<String>) -> Self {
        CliError::new(EXIT_FAILED, code, message)
    }

    /// Exit 2: a file the user named cannot be read.
    pub fn unreadable(path: &Path, error: &std::io::Error) -> Self {
        CliError::new(
            EXIT_USAGE,
            "unreadable_file",
            format!("cannot read {}: {error}", path.display()),
        )
        .with("file", path.display().to_string())
    }

    /// A rule that does not compile (exit 3), with its line and column where known, and
    /// its console output; tokenhost's own failure to compile is exit 1.
    pub fn compile(path: &Path, error: &CompileError) -> Self {
        let file = path.display();
        let mut reported = match error {
            // Line 0: the script ran but set no handler; no place in it to point at.
            CompileError::Script {
                message,
                line,
                column,
                ..
            } if *line > 0 => CliError::new(
                EXIT_RULE_FAILED,
                "compile_error",
                format!("{file}:{line}:{column}: {message}"),
            )
            .with("line", *line)
            .with("column", *column),
            CompileError::Runtime(_) => CliError::failed("internal", format!("{file}: {error}")),
            CompileError::Script { message, .. } => CliError::new(
                EXIT_RULE_FAILED,
                "compile_error",
                format!("{file}: {message}"),
            ),
            _ => CliError::new(
                EXIT_RULE_FAILED,
                "compile_error",
                format!("{file}: {error}"),
            ),
        };
        reported = reported.with("file", file.to_string());
        if !error.logs().is_empty() {
            let logs = serde_json::to_value(error.logs()).unwrap_or_default();
            reported = reported.with("logs", logs);
        }
        reported
    }

    pub fn with(mut self, key: &str, value: impl Into<Value>) -> Self {
        self.details.insert(key.to_string(), value.into());
        self
    }

    /// The object `--json` prints: `{"error": {"code", "message", ...details}}`.
    pub fn to_json(&self) -> Value {
        let mut error = Map::new();
        error.insert("code".into(), self.code.into());
        error.insert("message".into(), self.message.clone().into());
        error.extend(self.details.clone());
        json!({ "error": error })
    }

    /// Prints the error (JSON on stdout with `json`, else text on stderr) and gives the
    /// exit status.
    pub fn report(&self, json: bool) -> ExitCode {
        if json {
            println!("{}", self.to_json());
        } else {
            if let Some(Value::Array(logs)) = self.details.get("logs") {
                for line in logs {
                    let level = line["level"].as_str().unwrap_or("log");
                    let message = line["message"].as_str().unwrap_or_default();
                    eprintln!("[{level}] {message}");
                }
            }
            eprintln!("error: {}", self.message);
        }
        ExitCode::from(self.exit)
    }
}

/// What a command gives back: success, or an error to report.
pub type CliResult = Result<ExitCode, CliError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_json_shape_holds_the_code_the_message_and_the_details() {
        let error = CliError::new(EXIT_USAGE, "invalid_event", "event.json: bad").with("file", "e");
        assert_eq!(
            error.to_json(),
            json!({"error": {"code": "invalid_event", "message": "event.json: bad", "file": "e"}})
        );
    }

    #[test]
    fn a_script_error_keeps_its_place_and_a_runtime_error_is_not_the_rules() {
        let script = CompileError::Script {
            message: "SyntaxError: unexpected token".into(),
            line: 3,
            column: 7,
            logs: Vec::new(),
        };
        let error = CliError::compile(Path::new("r.js"), &script);
        assert_eq!(error.exit, EXIT_RULE_FAILED);
        assert_eq!(error.message, "r.js:3:7: SyntaxError: unexpected token");
        assert_eq!(error.details["line"], 3);
        let runtime = CliError::compile(Path::new("r.js"), &CompileError::Runtime("x".into()));
        assert_eq!(runtime.exit, EXIT_FAILED);
    }
}
