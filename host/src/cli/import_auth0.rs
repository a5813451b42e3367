//! `tokenhost import auth0 DIR|tenant.yaml`: a Deploy CLI (a0deploy) export of the original
//! platform turned into tokenhost's configuration file and applied as `tokenhost apply`
//! does. APIs, machine-to-machine clients (their client_id and client_secret kept), their
//! grants, enabled credentials-exchange hooks (legacy-style rules, first) and the actions
//! bound to the credentials-exchange trigger (Actions-style rules, after them, in the
//! trigger's order). Everything else is reported as skipped, with why.
//!
//! The directory format: `resource-servers/*.json`, `clients/*.json`, `grants/*.json` (or
//! `client-grants/`), `hooks/*.json` with their scripts beside them, `actions/*.json` with
//! their code under the directory, `triggers/triggers.json`. The YAML format: one
//! `tenant.yaml` with `resourceServers`, `clients`, `clientGrants`, `hooks`, `actions` and
//! `triggers`, scripts relative to it. Keywords are replaced in every file, as a0deploy does.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use serde_json::Value;

use super::apply::{apply_config, How};
use super::config_file::{bad_file, ApiDef, ClientDef, ConfigFile, GrantDef, Mappings, RuleDef};
use super::error::{CliError, CliResult};
use super::management::ApiArgs;
use crate::store::{ScopeDef, SecretMethod, SigningAlg};

/// The trigger tokenhost's rules run on.
const TRIGGER: &str = "credentials-exchange";
/// Where `with_script` notes the file a script came from, for reports by line.
const SCRIPT_FILE: &str = "tokenhost:script_file";
/// What a0deploy writes for a secret value it cannot read.
const HIDDEN_SECRET: &str = "_VALUE_NOT_SHOWN_";

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The a0deploy export: its directory, or its tenant.yaml.
    pub source: PathBuf,
    /// A JSON object of the values `##KEY##` and `@@KEY@@` stand for (a0deploy's
    /// AUTH0_KEYWORD_REPLACE_MAPPINGS).
    #[arg(long)]
    pub keyword_mappings: Option<PathBuf>,
    /// Print the plan (and check the rules compile) but change nothing.
    #[arg(long)]
    pub dry_run: bool,
    #[command(flatten)]
    pub api: ApiArgs,
}

pub(super) fn run(args: ImportArgs) -> ExitCode {
    import(&args).unwrap_or_else(|error| error.report(false))
}

fn import(args: &ImportArgs) -> CliResult {
    let mappings = Mappings::read(args.keyword_mappings.as_deref())?;
    let tenant = Tenant::read(&args.source, &mappings)?;
    let (mut file, skipped) = convert(&tenant);
    // The placeholders `convert` wrote for hidden secrets, filled as the files' own were.
    for rule in &mut file.rules {
        for value in rule.secrets.values_mut() {
            *value = mappings.replace(value);
        }
    }
    for item in &skipped {
        println!("skipped {item}");
    }
    let how = How {
        dry_run: args.dry_run,
        prune: false,
    };
    apply_config(&args.api, &args.source, &file, how)
}

/// An export as a0deploy laid it out, scripts loaded.
#[derive(Debug, Default)]
pub struct Tenant {
    pub resource_servers: Vec<Value>,
    pub clients: Vec<Value>,
    pub grants: Vec<Value>,
    /// Each hook with its `script` replaced by the script's text.
    pub hooks: Vec<Value>,
    /// Each action with its `code` replaced by the code's text.
    pub actions: Vec<Value>,
    pub triggers: Value,
}

impl Tenant {
    pub fn read(source: &Path, mappings: &Mappings) -> Result<Tenant, CliError> {
        let meta = std::fs::metadata(source).map_err(|e| CliError::unreadable(source, &e))?;
        if meta.is_dir() {
            read_directory(source, mappings)
        } else {
            read_yaml(source, mappings)
        }
    }
}

fn read_text(path: &Path, mappings: &Mappings) -> Result<String, CliError> {
    let text = std::fs::read_to_string(path).map_err(|e| CliError::unreadable(path, &e))?;
    Ok(mappings.replace(&text))
}

fn read_json(path: &Path, mappings: &Mappings) -> Result<Value, CliError> {
    let text = read_text(path, mappings)?;
    serde_json::from_str(&text).map_err(|e| bad_file(path, &format!("not JSON: {e}")))
}

/// The `.json` files of `dir`, by name; none when it does not exist.
fn json_files(dir: &Path, mappings: &Mappings) -> Result<Vec<Value>, CliError> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(Vec::new());
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths.iter().map(|path| read_json(path, mappings)).collect()
}

/// A script a file names, relative to `base`; never outside `root`.
fn load_script(
    root: &Path,
    base: &Path,
    named: &str,
    mappings: &Mappings,
) -> Result<String, CliError> {
    let path = base.join(named.replace('\\', "/"));
    let outside = || {
        bad_file(
            &path,
            &format!("the script is outside {}, and is not read", root.display()),
        )
    };
    let root = root
        .canonicalize()
        .map_err(|e| CliError::unreadable(root, &e))?;
    let resolved = path
        .canonicalize()
        .map_err(|e| CliError::unreadable(&path, &e))?;
    if !resolved.starts_with(&root) {
        return Err(outside());
    }
    read_text(&resolved, mappings)
}

/// Replaces the path in `item[field]` by the text of the file it names, and notes the file
/// under [`SCRIPT_FILE`].
fn with_script(
    mut item: Value,
    field: &str,
    root: &Path,
    base: &Path,
    mappings: &Mappings,
) -> Result<Value, CliError> {
    if let Some(named) = item[field].as_str().map(str::to_string) {
        item[field] = Value::String(load_script(root, base, &named, mappings)?);
        let file = base.join(named.trim_start_matches("./"));
        item[SCRIPT_FILE] = Value::String(file.display().to_string());
    }
    Ok(item)
}

fn read_directory(root: &Path, mappings: &Mappings) -> Result<Tenant, CliError> {
    let mut grants = json_files(&root.join("grants"), mappings)?;
    grants.extend(json_files(&root.join("client-grants"), mappings)?);
    let hooks_dir = root.join("hooks");
    let hooks = json_files(&hooks_dir, mappings)?
        .into_iter()
        .map(|hook| with_script(hook, "script", root, &hooks_dir, mappings))
        .collect::<Result<_, _>>()?;
    let actions = json_files(&root.join("actions"), mappings)?
        .into_iter()
        .map(|action| with_script(action, "code", root, root, mappings))
        .collect::<Result<_, _>>()?;
    let triggers = json_files(&root.join("triggers"), mappings)?
        .into_iter()
        .next()
        .unwrap_or(Value::Null);
    Ok(Tenant {
        resource_servers: json_files(&root.join("resource-servers"), mappings)?,
        clients: json_files(&root.join("clients"), mappings)?,
        grants,
        hooks,
        actions,
        triggers,
    })
}

fn read_yaml(path: &Path, mappings: &Mappings) -> Result<Tenant, CliError> {
    let text = read_text(path, mappings)?;
    let tenant: Value =
        serde_norway::from_str(&text).map_err(|e| bad_file(path, &format!("not YAML: {e}")))?;
    let root = path.parent().unwrap_or(Path::new("."));
    let root = if root.as_os_str().is_empty() {
        Path::new(".")
    } else {
        root
    };
    let list = |key: &str| tenant[key].as_array().cloned().unwrap_or_default();
    let hooks = list("hooks")
        .into_iter()
        .map(|hook| with_script(hook, "script", root, root, mappings))
        .collect::<Result<_, _>>()?;
    let actions = list("actions")
        .into_iter()
        .map(|action| with_script(action, "code", root, root, mappings))
        .collect::<Result<_, _>>()?;
    Ok(Tenant {
        resource_servers: list("resourceServers"),
        clients: list("clients"),
        grants: list("clientGrants"),
        hooks,
        actions,
        triggers: tenant["triggers"].clone(),
    })
}

/// The configuration the export describes, and what it leaves out and why.
pub fn convert(tenant: &Tenant) -> (ConfigFile, Vec<String>) {
    let mut skipped = Vec::new();
    let mut file = ConfigFile::default();
    for api in &tenant.resource_servers {
        if let Some(def) = resource_server(api, &mut skipped) {
            file.resource_servers.push(def);
        }
    }
    for client in &tenant.clients {
        if let Some(def) = client_def(client, &mut skipped) {
            file.clients.push(def);
        }
    }
    for grant in &tenant.grants {
        let client = str_of(grant, "client_id");
        let audience = str_of(grant, "audience");
        let known = file
            .clients
            .iter()
            .any(|c| c.name == client || c.client_id.as_deref() == Some(&client));
        if !known {
            skipped.push(format!(
                "grant {client:?} -> {audience:?}: its client is not imported"
            ));
        } else if !file
            .resource_servers
            .iter()
            .any(|a| a.identifier == audience)
        {
            skipped.push(format!(
                "grant {client:?} -> {audience:?}: its API is not imported"
            ));
        } else {
            let scope = grant["scope"]
                .as_array()
                .map(|s| {
                    s.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            file.client_grants.push(GrantDef {
                client,
                audience,
                scope,
            });
        }
    }
    let mut order = 0;
    for hook in &tenant.hooks {
        let name = str_of(hook, "name");
        let trigger = str_of(hook, "triggerId");
        if trigger != TRIGGER {
            skipped.push(format!(
                "hook {name:?}: its trigger is {trigger:?}, not {TRIGGER}"
            ));
        } else if hook["enabled"].as_bool() != Some(true) {
            skipped.push(format!("hook {name:?}: it is not enabled"));
        } else {
            order += 1;
            note_dependencies(hook, "hook", &name, &mut skipped);
            note_unused_fields(hook, &format!("hook {name:?}"), HOOK_FIELDS, &mut skipped);
            note_code_that_will_not_run(hook, "script", &format!("hook {name:?}"), &mut skipped);
            let secrets = hook["secrets"]
                .as_object()
                .map(|map| {
                    map.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                        .collect()
                })
                .unwrap_or_default();
            file.rules
                .push(rule(&name, str_of(hook, "script"), order, secrets));
        }
    }
    let bound: Vec<String> = tenant.triggers[TRIGGER]
        .as_array()
        .map(|list| list.iter().map(|b| str_of(b, "action_name")).collect())
        .unwrap_or_default();
    let mut actions: Vec<(usize, &Value)> = Vec::new();
    for action in &tenant.actions {
        let name = str_of(action, "name");
        let supports = action["supported_triggers"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t["id"] == TRIGGER));
        match bound.iter().position(|b| b == &name) {
            _ if !supports => skipped.push(format!(
                "action {name:?}: it does not support the {TRIGGER} trigger"
            )),
            None => skipped.push(format!(
                "action {name:?}: it is not bound to the {TRIGGER} trigger (triggers.json)"
            )),
            Some(at) => actions.push((at, action)),
        }
    }
    actions.sort_by_key(|(at, _)| *at);
    for (_, action) in actions {
        let name = str_of(action, "name");
        order += 1;
        note_dependencies(action, "action", &name, &mut skipped);
        let what = format!("action {name:?}");
        note_unused_fields(action, &what, ACTION_FIELDS, &mut skipped);
        note_code_that_will_not_run(action, "code", &what, &mut skipped);
        let secrets = action["secrets"]
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|s| (str_of(s, "name"), str_of(s, "value")))
                    .collect()
            })
            .unwrap_or_default();
        file.rules
            .push(rule(&name, str_of(action, "code"), order, secrets));
    }
    (file, skipped)
}

fn str_of(item: &Value, key: &str) -> String {
    item[key].as_str().unwrap_or_default().to_string()
}

/// Modules a script required are not there: no `require` in the sandbox.
fn note_dependencies(item: &Value, kind: &str, name: &str, skipped: &mut Vec<String>) {
    let names: Vec<String> = match &item["dependencies"] {
        Value::Object(map) => map.keys().cloned().collect(),
        Value::Array(list) => list.iter().map(|d| str_of(d, "name")).collect(),
        _ => Vec::new(),
    };
    if !names.is_empty() {
        skipped.push(format!(
            "{kind} {name:?}'s dependencies ({}): rules have no require; the rule is imported \
             and fails where it uses them",
            names.join(", ")
        ));
    }
}

/// The fields of each object that the import reads (or that say nothing tokenhost would
/// need: an action's Node.js runtime and its deployment state, an object's id on the
/// original platform); any other field is reported as not imported.
const API_FIELDS: &[&str] = &[
    "id",
    "name",
    "identifier",
    "scopes",
    "signing_alg",
    "token_lifetime",
];
const CLIENT_FIELDS: &[&str] = &[
    "name",
    "app_type",
    "client_id",
    "client_secret",
    "client_metadata",
    "token_endpoint_auth_method",
];
const HOOK_FIELDS: &[&str] = &[
    "id",
    "name",
    "enabled",
    "script",
    "triggerId",
    "secrets",
    "dependencies",
];
const ACTION_FIELDS: &[&str] = &[
    "id",
    "name",
    "code",
    "supported_triggers",
    "secrets",
    "dependencies",
    "runtime",
    "deployed",
    "status",
];

/// Fields of `item` that tokenhost has no place for, named in one line.
fn note_unused_fields(item: &Value, what: &str, known: &[&str], skipped: &mut Vec<String>) {
    let Some(fields) = item.as_object() else {
        return;
    };
    let unused: Vec<&str> = fields
        .keys()
        .map(String::as_str)
        .filter(|field| *field != SCRIPT_FILE && !known.contains(field))
        .collect();
    if !unused.is_empty() {
        skipped.push(format!(
            "{what}'s fields {}: tokenhost does not have them; not imported",
            unused.join(", ")
        ));
    }
}

/// What a script calls that does not exist in a rule's sandbox, and why.
const WILL_NOT_RUN: &[(&str, &str)] = &[
    (
        "require(",
        "npm modules are not there (rules have no require)",
    ),
    ("fetch(", "rules have no network"),
    ("XMLHttpRequest", "rules have no network"),
    ("WebSocket", "rules have no network"),
];

/// Each use in `item[field]` of what [`WILL_NOT_RUN`] names, with its file and line. The
/// rule is still imported (the use may sit on a path never taken); it fails where it runs
/// one. Lines that are wholly comments are passed over.
fn note_code_that_will_not_run(item: &Value, field: &str, what: &str, skipped: &mut Vec<String>) {
    let file = item[SCRIPT_FILE].as_str().unwrap_or("its script");
    let script = item[field].as_str().unwrap_or_default();
    for (number, line) in script.lines().enumerate() {
        let code = line.trim_start();
        if code.starts_with("//") || code.starts_with('*') || code.starts_with("/*") {
            continue;
        }
        for (call, why) in WILL_NOT_RUN {
            let used = line.match_indices(call).any(|(at, _)| {
                // A whole name: `prefetch(` or `my_require(` is something else.
                !line[..at]
                    .chars()
                    .next_back()
                    .is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$')
            });
            if used {
                let name = call.trim_end_matches('(');
                skipped.push(format!(
                    "{what}: {file}:{}: {}: uses {name}, which will not run here: {why}",
                    number + 1,
                    code.trim_end()
                ));
            }
        }
    }
}

/// A rule from a hook or an action: its name made a rule name, each secret a value or,
/// where the export hides it, a `##NAME##` placeholder for the keyword mappings.
fn rule(name: &str, script: String, order: i64, secrets: BTreeMap<String, String>) -> RuleDef {
    let name: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, ' ' | '_' | '-') {
                c
            } else {
                '-'
            }
        })
        .take(128)
        .collect();
    let secrets = secrets
        .into_iter()
        .map(|(key, value)| {
            let value = if value.is_empty() || value == HIDDEN_SECRET {
                format!("##{key}##")
            } else {
                value
            };
            (key, value)
        })
        .collect();
    RuleDef {
        name,
        script,
        enabled: Some(true),
        order: Some(order),
        secrets,
    }
}

fn resource_server(api: &Value, skipped: &mut Vec<String>) -> Option<ApiDef> {
    let identifier = str_of(api, "identifier");
    if identifier.ends_with("/api/v2/") {
        skipped.push(format!(
            "api {identifier:?}: it is the original platform's management API (tokenhost has \
             its own, <issuer>api/v2/)"
        ));
        return None;
    }
    let signing_alg = match api["signing_alg"].as_str() {
        None => None,
        Some(alg) => match SigningAlg::parse(alg) {
            Some(alg) => Some(alg),
            None => {
                skipped.push(format!(
                    "api {identifier:?}'s signing_alg {alg}: tokenhost signs with RS256, ES256 or \
                     EdDSA; it gets RS256"
                ));
                Some(SigningAlg::RS256)
            }
        },
    };
    let scopes = api["scopes"].as_array().map(|list| {
        list.iter()
            .map(|s| ScopeDef {
                value: str_of(s, "value"),
                description: str_of(s, "description"),
            })
            .collect()
    });
    note_unused_fields(api, &format!("api {identifier:?}"), API_FIELDS, skipped);
    Some(ApiDef {
        name: api["name"].as_str().map(str::to_string),
        scopes,
        token_lifetime: api["token_lifetime"]
            .as_u64()
            .and_then(|t| u32::try_from(t).ok()),
        signing_alg,
        allow_rule_added_scopes: None,
        identifier,
    })
}

fn client_def(client: &Value, skipped: &mut Vec<String>) -> Option<ClientDef> {
    let name = str_of(client, "name");
    let app_type = client["app_type"].as_str().unwrap_or("none given");
    if app_type != "non_interactive" {
        skipped.push(format!(
            "client {name:?}: its app_type is {app_type}; tokenhost serves machine-to-machine \
             (non_interactive) clients only"
        ));
        return None;
    }
    let method = match client["token_endpoint_auth_method"].as_str() {
        None => None,
        Some("client_secret_post") => Some(Some(SecretMethod::ClientSecretPost)),
        Some("client_secret_basic") => Some(Some(SecretMethod::ClientSecretBasic)),
        Some(other) => {
            skipped.push(format!(
                "client {name:?}'s token_endpoint_auth_method {other}: it gets \
                 client_secret_post (add private_key_jwt credentials through the API)"
            ));
            None
        }
    };
    let metadata = client["client_metadata"].as_object().map(|map| {
        map.iter()
            .map(|(k, v)| {
                (
                    k.clone(),
                    v.as_str()
                        .map(str::to_string)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect()
    });
    note_unused_fields(client, &format!("client {name:?}"), CLIENT_FIELDS, skipped);
    Some(ClientDef {
        name,
        client_id: client["client_id"].as_str().map(str::to_string),
        client_secret: client["client_secret"].as_str().map(str::to_string),
        client_metadata: metadata,
        token_endpoint_auth_method: method,
        dpop_bound_access_tokens: None,
        token_rate_limit: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TENANT: &str = r#"
resourceServers:
  - name: Billing
    identifier: https://billing.example.com/
    scopes: [{value: read, description: Read}]
    signing_alg: HS256
  - name: Auth0 Management API
    identifier: https://tenant.auth0.com/api/v2/
clients:
  - name: Worker
    app_type: non_interactive
    client_id: worker-id
    client_secret: '##WORKER_SECRET##'
    client_metadata: {tier: gold}
  - name: Dashboard
    app_type: spa
clientGrants:
  - client_id: Worker
    audience: https://billing.example.com/
    scope: [read]
  - client_id: Dashboard
    audience: https://billing.example.com/
    scope: [read]
hooks:
  - name: add-claim
    triggerId: credentials-exchange
    enabled: true
    script: ./hooks/add-claim.js
    secrets: {KEY: _VALUE_NOT_SHOWN_}
  - name: old
    triggerId: credentials-exchange
    enabled: false
    script: ./hooks/add-claim.js
actions:
  - name: second
    code: ./actions/second/code.js
    supported_triggers: [{id: credentials-exchange, version: v2}]
  - name: first
    code: ./actions/first/code.js
    supported_triggers: [{id: credentials-exchange, version: v2}]
    secrets: [{name: TOKEN, value: t0k}]
  - name: login
    code: ./actions/login/code.js
    supported_triggers: [{id: post-login, version: v3}]
triggers:
  credentials-exchange:
    - {action_name: first, display_name: first}
    - {action_name: second, display_name: second}
"#;

    fn tenant() -> Tenant {
        let dir = std::env::temp_dir().join(format!("tokenhost-a0-{}", std::process::id()));
        for (path, text) in [
            (
                "hooks/add-claim.js",
                "module.exports = function (c, s, a, x, cb) { cb(null, {}); };",
            ),
            (
                "actions/first/code.js",
                "exports.onExecuteCredentialsExchange = async () => {};",
            ),
            (
                "actions/second/code.js",
                "exports.onExecuteCredentialsExchange = async () => {};",
            ),
            (
                "actions/login/code.js",
                "exports.onExecutePostLogin = async () => {};",
            ),
            ("tenant.yaml", TENANT),
        ] {
            let path = dir.join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Tenant::read(&dir.join("tenant.yaml"), &Mappings::default()).unwrap()
    }

    #[test]
    fn a_tenant_yaml_becomes_apis_m2m_clients_grants_and_rules_in_chain_order() {
        let (file, skipped) = convert(&tenant());
        let apis: Vec<&str> = file
            .resource_servers
            .iter()
            .map(|a| a.identifier.as_str())
            .collect();
        assert_eq!(apis, ["https://billing.example.com/"]);
        assert_eq!(
            file.resource_servers[0].signing_alg,
            Some(SigningAlg::RS256)
        );
        assert_eq!(file.clients.len(), 1);
        assert_eq!(file.clients[0].client_id.as_deref(), Some("worker-id"));
        assert_eq!(
            file.clients[0].client_secret.as_deref(),
            Some("##WORKER_SECRET##")
        );
        assert_eq!(file.client_grants.len(), 1);
        let rules: Vec<(&str, Option<i64>)> = file
            .rules
            .iter()
            .map(|r| (r.name.as_str(), r.order))
            .collect();
        assert_eq!(
            rules,
            [
                ("add-claim", Some(1)),
                ("first", Some(2)),
                ("second", Some(3))
            ]
        );
        assert!(file.rules[0].script.contains("module.exports"));
        assert_eq!(
            file.rules[0].secrets["KEY"], "##KEY##",
            "a hidden value is a placeholder"
        );
        assert_eq!(file.rules[1].secrets["TOKEN"], "t0k");
        let skipped = skipped.join("\n");
        for why in [
            "management API",
            "HS256",
            "client \"Dashboard\": its app_type is spa",
            "grant \"Dashboard\"",
            "hook \"old\": it is not enabled",
            "action \"login\": it does not support",
        ] {
            assert!(skipped.contains(why), "{why} in {skipped}");
        }
    }
}
