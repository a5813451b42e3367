//! `tokenhost apply -f FILE [--dry-run] [--prune] [--keyword-mappings FILE]`: makes a server
//! match a configuration file. It reads the server, prints the plan (`plan.rs`), compiles
//! every rule script it would upload, and only then changes anything, one step at a time;
//! a step that fails stops it, and the report says which steps were applied.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use reqwest::Method;
use serde_json::{json, Value};

use super::config_file::{self, ConfigFile, Mappings};
use super::error::{CliError, CliResult};
use super::management::{Api, ApiArgs};
use super::plan::{self, Action, ClientRef, Step};
use super::progress::Spinner;
use super::server_state::ServerState;
use crate::rules::{Limits, RuleEngine};

/// Every scope applying a file may take, for the advice on a refusal.
pub const APPLY_SCOPES: &str = "read:, create:, update: and delete: of resource_servers, \
     clients, client_grants and rules";

#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// The configuration: YAML, or JSON when it ends in .json (as `tokenhost export` writes).
    #[arg(short, long)]
    pub file: PathBuf,
    /// Print the plan (and check the rules compile) but change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also delete what the server has and the file does not (APIs, clients, grants,
    /// rules, rule secrets).
    #[arg(long)]
    pub prune: bool,
    /// A JSON object of the values `##KEY##` and `@@KEY@@` in the file stand for.
    #[arg(long)]
    pub keyword_mappings: Option<PathBuf>,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub(super) fn run(args: ApplyArgs) -> ExitCode {
    apply(&args).unwrap_or_else(|error| error.report(false))
}

fn apply(args: &ApplyArgs) -> CliResult {
    let mappings = Mappings::read(args.keyword_mappings.as_deref())?;
    let file = config_file::read(&args.file, &mappings)?;
    let how = How {
        dry_run: args.dry_run,
        prune: args.prune,
    };
    apply_config(&args.api, &args.file, &file, how)
}

/// What `apply` (and `import`) may do.
#[derive(Debug, Clone, Copy)]
pub(super) struct How {
    pub dry_run: bool,
    pub prune: bool,
}

/// Makes the server `api` names match `file`, read from `source`: the plan, the compiles,
/// then (unless a dry run) the steps.
pub(super) fn apply_config(api: &ApiArgs, source: &Path, file: &ConfigFile, how: How) -> CliResult {
    let runtime = super::runtime()?;
    let (api, steps) = runtime.block_on(connect_and_plan(api, source, file, how.prune))?;
    if steps.is_empty() {
        println!("No changes.");
        return Ok(ExitCode::SUCCESS);
    }
    for step in &steps {
        println!("{step}");
    }
    compile_scripts(source, &steps)?;
    if how.dry_run {
        println!(
            "Dry run: nothing was changed ({} to do).",
            count(steps.len())
        );
        return Ok(ExitCode::SUCCESS);
    }
    runtime.block_on(execute(&api, file, &steps))?;
    println!("Applied {}.", count(steps.len()));
    Ok(ExitCode::SUCCESS)
}

fn count(steps: usize) -> String {
    match steps {
        1 => "1 change".into(),
        n => format!("{n} changes"),
    }
}

async fn connect_and_plan(
    args: &ApiArgs,
    source: &Path,
    file: &ConfigFile,
    prune: bool,
) -> Result<(Api, Vec<Step>), CliError> {
    let api = Api::connect(args, APPLY_SCOPES).await?;
    let state = ServerState::read(&api).await?;
    let steps = plan::plan(file, &state, prune).map_err(|e| {
        CliError::failed(
            "cannot_plan",
            format!("{}: {e}; nothing was changed", source.display()),
        )
    })?;
    Ok((api, steps))
}

/// Compiles every script the plan uploads, as the server will: a rule that does not
/// compile stops the apply before anything changes.
fn compile_scripts(file: &Path, steps: &[Step]) -> Result<(), CliError> {
    let scripts: Vec<(&Step, &String)> = steps
        .iter()
        .filter_map(|step| step.script.as_ref().map(|script| (step, script)))
        .collect();
    if scripts.is_empty() {
        return Ok(());
    }
    let limits = Limits {
        concurrency: 2,
        ..Limits::default()
    };
    let engine = RuleEngine::new(limits)
        .map_err(|e| CliError::failed("internal", format!("cannot start the rule engine: {e}")))?;
    for (step, script) in scripts {
        let _spinner = Spinner::start(format!("compiling {}", step.what));
        if let Err(e) = engine.compile_js(script) {
            let place = PathBuf::from(format!("{} ({})", file.display(), step.what));
            let mut error = CliError::compile(&place, &e);
            error.message.push_str("; nothing was changed");
            return Err(error);
        }
    }
    Ok(())
}

/// Runs the steps in order; the first failure stops it, with what was applied and what
/// was not.
async fn execute(api: &Api, file: &ConfigFile, steps: &[Step]) -> Result<(), CliError> {
    let mut created: BTreeMap<usize, String> = BTreeMap::new();
    for (at, step) in steps.iter().enumerate() {
        if let Err(failure) = run_step(api, file, step, &mut created).await {
            return Err(stopped(steps, at, failure));
        }
    }
    Ok(())
}

/// Why a step failed; `partly` when it made a change before failing.
struct StepFailure {
    error: CliError,
    partly: Option<&'static str>,
}

impl From<CliError> for StepFailure {
    fn from(error: CliError) -> Self {
        StepFailure {
            error,
            partly: None,
        }
    }
}

async fn run_step(
    api: &Api,
    file: &ConfigFile,
    step: &Step,
    created: &mut BTreeMap<usize, String>,
) -> Result<(), StepFailure> {
    match &step.action {
        Action::CreateApi(body) => {
            api.call(Method::POST, "/resource-servers", Some(body))
                .await?;
        }
        Action::UpdateApi { id, body } => {
            api.call(
                Method::PATCH,
                &format!("/resource-servers/{id}"),
                Some(body),
            )
            .await?;
        }
        Action::DeleteApi { id } => {
            api.call(Method::DELETE, &format!("/resource-servers/{id}"), None)
                .await?;
        }
        Action::CreateClient { index, body } => {
            let answer = api.call(Method::POST, "/clients", Some(body)).await?;
            let id = answer["client_id"].as_str().unwrap_or_default().to_string();
            // A secret the file gave is not echoed; a generated one is shown this once.
            if let Some(secret) = answer["client_secret"].as_str() {
                let name = &file.clients[*index].name;
                println!("  client {name:?} is {id}; its client_secret, shown this once: {secret}");
            }
            created.insert(*index, id);
        }
        Action::UpdateClient { client_id, body } => {
            api.call(Method::PATCH, &format!("/clients/{client_id}"), Some(body))
                .await?;
        }
        Action::DeleteClient { client_id } => {
            api.call(Method::DELETE, &format!("/clients/{client_id}"), None)
                .await?;
        }
        Action::CreateGrant {
            client,
            audience,
            scope,
        } => {
            let client_id = match client {
                ClientRef::Id(id) => id.clone(),
                ClientRef::New(index) => created.get(index).cloned().unwrap_or_default(),
            };
            let body = json!({"client_id": client_id, "audience": audience, "scope": scope});
            api.call(Method::POST, "/client-grants", Some(&body))
                .await?;
        }
        Action::UpdateGrant { id, scope } => {
            let body = json!({ "scope": scope });
            api.call(Method::PATCH, &format!("/client-grants/{id}"), Some(&body))
                .await?;
        }
        Action::DeleteGrant { id } => {
            api.call(Method::DELETE, &format!("/client-grants/{id}"), None)
                .await?;
        }
        Action::CreateRule { body, secrets } => {
            let answer = api.call(Method::POST, "/rules", Some(body)).await?;
            let id = answer["id"].as_str().unwrap_or_default();
            set_secrets(api, id, secrets)
                .await
                .map_err(|error| StepFailure {
                    error,
                    partly: Some("the rule was created, its secrets were not set"),
                })?;
        }
        Action::UpdateRule { id, body, secrets } => {
            if let Some(body) = body {
                api.call(Method::PATCH, &format!("/rules/{id}"), Some(body))
                    .await?;
            }
            if let Some(secrets) = secrets {
                let partly = body
                    .is_some()
                    .then_some("the rule was changed, its secrets were not");
                set_secrets(api, id, secrets)
                    .await
                    .map_err(|error| StepFailure { error, partly })?;
            }
        }
        Action::DeleteRule { id } => {
            api.call(Method::DELETE, &format!("/rules/{id}"), None)
                .await?;
        }
    }
    Ok(())
}

async fn set_secrets(api: &Api, rule_id: &str, secrets: &Value) -> Result<(), CliError> {
    if secrets.as_object().is_none_or(|s| s.is_empty()) {
        return Ok(());
    }
    let path = format!("/rules/{rule_id}/secrets");
    api.call(Method::PATCH, &path, Some(secrets)).await?;
    Ok(())
}

/// The error of the step at `at`, with the steps before it (applied) and after it (not).
fn stopped(steps: &[Step], at: usize, failure: StepFailure) -> CliError {
    let StepFailure { mut error, partly } = failure;
    let mut message = format!("{} failed: {}", steps[at], error.message);
    if let Some(partly) = partly {
        message.push_str(&format!(" ({partly})"));
    }
    message.push_str(&format!("\napplied ({} of {}):", at, steps.len()));
    if at == 0 {
        message.push_str(" none");
    }
    for step in &steps[..at] {
        message.push_str(&format!("\n  {step}"));
    }
    message.push_str(&format!("\nnot applied ({}):", steps.len() - at));
    for step in &steps[at..] {
        message.push_str(&format!("\n  {step}"));
    }
    error.message = message;
    error.with("applied", at).with("steps", steps.len())
}
