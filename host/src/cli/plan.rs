//! What `tokenhost apply` has to do to make a server match a file: each object of the file
//! matched to the server's by its natural key (an API by identifier, a client by
//! `client_id` when the file gives one or else by name, a grant by client and audience, a
//! rule by name), and one step per object that differs. Pure: no I/O, so every case is a
//! unit test.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::{json, Map, Value};

use super::config_file::{placeholder, ClientDef, ConfigFile, RuleDef};
use super::server_state::{CurrentClient, ServerState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
}

/// A client a step refers to: one the server has, or one an earlier step creates (the
/// index of its `CreateClient` among the file's clients).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientRef {
    Id(String),
    New(usize),
}

/// The management API calls a step makes.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    CreateApi(Value),
    UpdateApi {
        id: String,
        body: Value,
    },
    DeleteApi {
        id: String,
    },
    CreateClient {
        index: usize,
        body: Value,
    },
    UpdateClient {
        client_id: String,
        body: Value,
    },
    DeleteClient {
        client_id: String,
    },
    CreateGrant {
        client: ClientRef,
        audience: String,
        scope: Vec<String>,
    },
    UpdateGrant {
        id: String,
        scope: Vec<String>,
    },
    DeleteGrant {
        id: String,
    },
    /// The rule, then its secrets (if any) once it has an id.
    CreateRule {
        body: Value,
        secrets: Value,
    },
    UpdateRule {
        id: String,
        body: Option<Value>,
        secrets: Option<Value>,
    },
    DeleteRule {
        id: String,
    },
}

/// One line of the plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub op: Op,
    /// `client "Billing worker"`.
    pub what: String,
    /// For an update, the fields that change.
    pub fields: Vec<String>,
    pub action: Action,
    /// The rule script this step uploads, to compile before anything changes.
    pub script: Option<String>,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.op {
            Op::Create => write!(f, "+ create {}", self.what),
            Op::Update => write!(f, "~ update {}: {}", self.what, self.fields.join(", ")),
            Op::Delete => write!(f, "- delete {}", self.what),
        }
    }
}

/// Why a file cannot be applied to a server, found before anything changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PlanError(pub String);

fn refuse<T>(message: String) -> Result<T, PlanError> {
    Err(PlanError(message))
}

/// The steps, in the order they must run: APIs, clients, grants and rules created or
/// changed, then (only with `prune`) grants, rules, clients and APIs deleted.
pub fn plan(file: &ConfigFile, server: &ServerState, prune: bool) -> Result<Vec<Step>, PlanError> {
    let mut steps = Vec::new();
    let mut deletions = Vec::new();
    apis(file, server, prune, &mut steps, &mut deletions)?;
    let clients = clients(file, server, prune, &mut steps, &mut deletions)?;
    grants(file, server, &clients, prune, &mut steps, &mut deletions)?;
    rules(file, server, prune, &mut steps, &mut deletions)?;
    // Grants before their clients and APIs (a client's own grants go with it anyway);
    // rules need nothing else.
    deletions.sort_by_key(|step| match step.action {
        Action::DeleteGrant { .. } => 0,
        Action::DeleteRule { .. } => 1,
        Action::DeleteClient { .. } => 2,
        _ => 3,
    });
    steps.extend(deletions);
    Ok(steps)
}

fn apis(
    file: &ConfigFile,
    server: &ServerState,
    prune: bool,
    steps: &mut Vec<Step>,
    deletions: &mut Vec<Step>,
) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    for def in &file.resource_servers {
        if !seen.insert(def.identifier.as_str()) {
            return refuse(format!("the file lists the API {:?} twice", def.identifier));
        }
        let what = format!("api {:?}", def.identifier);
        let Some(current) = server.apis.iter().find(|a| a.identifier == def.identifier) else {
            steps.push(step(
                Op::Create,
                what,
                Vec::new(),
                Action::CreateApi(json!(def)),
            ));
            continue;
        };
        let mut body = Map::new();
        changed(&mut body, "name", &def.name, &current.name);
        changed(&mut body, "scopes", &def.scopes, &current.scopes);
        changed(
            &mut body,
            "token_lifetime",
            &def.token_lifetime,
            &current.token_lifetime,
        );
        changed(
            &mut body,
            "signing_alg",
            &def.signing_alg,
            &current.signing_alg,
        );
        changed(
            &mut body,
            "allow_rule_added_scopes",
            &def.allow_rule_added_scopes,
            &current.allow_rule_added_scopes,
        );
        if !body.is_empty() {
            let fields = body.keys().cloned().collect();
            let id = current.id.clone();
            let action = Action::UpdateApi {
                id,
                body: Value::Object(body),
            };
            steps.push(step(Op::Update, what, fields, action));
        }
    }
    if prune {
        for current in server
            .apis
            .iter()
            .filter(|a| !seen.contains(a.identifier.as_str()))
        {
            let what = format!("api {:?}", current.identifier);
            let id = current.id.clone();
            deletions.push(step(Op::Delete, what, Vec::new(), Action::DeleteApi { id }));
        }
    }
    Ok(())
}

/// Each of the file's clients, matched: the server's `client_id`, or `None` for one the
/// plan creates.
type Matched = Vec<Option<String>>;

fn clients(
    file: &ConfigFile,
    server: &ServerState,
    prune: bool,
    steps: &mut Vec<Step>,
    deletions: &mut Vec<Step>,
) -> Result<Matched, PlanError> {
    let mut matched: Matched = Vec::new();
    for (index, def) in file.clients.iter().enumerate() {
        let what = client_what(def);
        let current = match_client(def, server)?;
        if let Some(current) = current {
            if matched.iter().flatten().any(|id| id == &current.client_id) {
                return refuse(format!(
                    "two of the file's clients are the server's client {}: give each its \
                     client_id",
                    current.client_id
                ));
            }
        }
        matched.push(current.map(|c| c.client_id.clone()));
        let Some(current) = current else {
            if let Some(key) = def.client_secret.as_deref().and_then(placeholder) {
                return refuse(format!(
                    "{what} has the client_secret ##{key}##, which no keyword mapping \
                     replaced: give {key} in --keyword-mappings"
                ));
            }
            let body = client_body(def);
            steps.push(step(
                Op::Create,
                what,
                Vec::new(),
                Action::CreateClient { index, body },
            ));
            continue;
        };
        let mut body = Map::new();
        if def.client_id.is_some() && def.name != current.name {
            body.insert("name".into(), json!(def.name));
        }
        if let Some(metadata) = &def.client_metadata {
            // The API merges metadata key by key: a key to go is sent as null.
            if metadata != &current.client_metadata {
                let mut patch: Map<String, Value> = current
                    .client_metadata
                    .keys()
                    .filter(|k| !metadata.contains_key(*k))
                    .map(|k| (k.clone(), Value::Null))
                    .collect();
                for (k, v) in metadata {
                    if current.client_metadata.get(k) != Some(v) {
                        patch.insert(k.clone(), json!(v));
                    }
                }
                body.insert("client_metadata".into(), Value::Object(patch));
            }
        }
        changed(
            &mut body,
            "token_endpoint_auth_method",
            &def.token_endpoint_auth_method,
            &current.token_endpoint_auth_method,
        );
        changed(
            &mut body,
            "dpop_bound_access_tokens",
            &def.dpop_bound_access_tokens,
            &current.dpop_bound_access_tokens,
        );
        changed(
            &mut body,
            "token_rate_limit",
            &def.token_rate_limit,
            &current.token_rate_limit,
        );
        if !body.is_empty() {
            let fields = body.keys().cloned().collect();
            let client_id = current.client_id.clone();
            let action = Action::UpdateClient {
                client_id,
                body: Value::Object(body),
            };
            steps.push(step(Op::Update, what, fields, action));
        }
    }
    if prune {
        for current in &server.clients {
            if matched.iter().flatten().any(|id| id == &current.client_id) {
                continue;
            }
            let what = format!("client {:?} ({})", current.name, current.client_id);
            let client_id = current.client_id.clone();
            deletions.push(step(
                Op::Delete,
                what,
                Vec::new(),
                Action::DeleteClient { client_id },
            ));
        }
    }
    Ok(matched)
}

fn client_what(def: &ClientDef) -> String {
    match &def.client_id {
        Some(id) => format!("client {:?} ({id})", def.name),
        None => format!("client {:?}", def.name),
    }
}

/// The server's client `def` is: by `client_id` when given, else the one of its name.
fn match_client<'s>(
    def: &ClientDef,
    server: &'s ServerState,
) -> Result<Option<&'s CurrentClient>, PlanError> {
    if let Some(id) = &def.client_id {
        return Ok(server.clients.iter().find(|c| &c.client_id == id));
    }
    let mut namesakes = server.clients.iter().filter(|c| c.name == def.name);
    match (namesakes.next(), namesakes.next()) {
        (Some(_), Some(_)) => refuse(format!(
            "the server has several clients named {:?}: give the file's client its client_id",
            def.name
        )),
        (one, _) => Ok(one),
    }
}

fn client_body(def: &ClientDef) -> Value {
    let mut body = Map::new();
    body.insert("name".into(), json!(def.name));
    let optional = [
        ("client_id", def.client_id.as_ref().map(|v| json!(v))),
        (
            "client_secret",
            def.client_secret.as_ref().map(|v| json!(v)),
        ),
        (
            "client_metadata",
            def.client_metadata.as_ref().map(|v| json!(v)),
        ),
        (
            "token_endpoint_auth_method",
            def.token_endpoint_auth_method.map(|v| json!(v)),
        ),
        (
            "dpop_bound_access_tokens",
            def.dpop_bound_access_tokens.map(|v| json!(v)),
        ),
        // `null` here is the default limit, which a creation gets by leaving it out.
        (
            "token_rate_limit",
            def.token_rate_limit.flatten().map(|v| json!(v)),
        ),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            body.insert(key.into(), value);
        }
    }
    Value::Object(body)
}

/// Which client a grant's `client` names: one of the file's (by `client_id`, then by a
/// name only one of them has), else one of the server's.
fn grant_client(
    key: &str,
    file: &ConfigFile,
    server: &ServerState,
    matched: &Matched,
) -> Result<ClientRef, PlanError> {
    let of_file = |at: usize| match &matched[at] {
        Some(id) => ClientRef::Id(id.clone()),
        None => ClientRef::New(at),
    };
    if let Some(at) = file
        .clients
        .iter()
        .position(|c| c.client_id.as_deref() == Some(key))
    {
        return Ok(of_file(at));
    }
    let named: Vec<usize> = (0..file.clients.len())
        .filter(|at| file.clients[*at].name == key)
        .collect();
    match named[..] {
        [at] => return Ok(of_file(at)),
        [] => {}
        _ => {
            return refuse(format!(
                "a grant names the client {key:?}, and several of the file's clients have \
                 that name: name it by client_id"
            ))
        }
    }
    if server.clients.iter().any(|c| c.client_id == key) {
        return Ok(ClientRef::Id(key.to_string()));
    }
    let mut namesakes = server.clients.iter().filter(|c| c.name == key);
    match (namesakes.next(), namesakes.next()) {
        (Some(one), None) => Ok(ClientRef::Id(one.client_id.clone())),
        (Some(_), Some(_)) => refuse(format!(
            "a grant names the client {key:?}, and several of the server's clients have that \
             name: name it by client_id"
        )),
        (None, _) => refuse(format!(
            "a grant names the client {key:?}, which neither the file nor the server has"
        )),
    }
}

fn grants(
    file: &ConfigFile,
    server: &ServerState,
    matched: &Matched,
    prune: bool,
    steps: &mut Vec<Step>,
    deletions: &mut Vec<Step>,
) -> Result<(), PlanError> {
    let mut seen: BTreeSet<(ClientKey, String)> = BTreeSet::new();
    let mut kept = BTreeSet::new();
    for def in &file.client_grants {
        let client = grant_client(&def.client, file, server, matched)?;
        let key = (ClientKey::from(&client), def.audience.clone());
        if !seen.insert(key) {
            return refuse(format!(
                "the file grants the client {:?} on {:?} twice",
                def.client, def.audience
            ));
        }
        let what = format!("grant {:?} -> {:?}", def.client, def.audience);
        let current = match &client {
            ClientRef::Id(id) => server
                .grants
                .iter()
                .find(|g| &g.client_id == id && g.audience == def.audience),
            ClientRef::New(_) => None,
        };
        let Some(current) = current else {
            let action = Action::CreateGrant {
                client,
                audience: def.audience.clone(),
                scope: def.scope.clone(),
            };
            steps.push(step(Op::Create, what, Vec::new(), action));
            continue;
        };
        kept.insert(current.id.clone());
        let wanted: BTreeSet<&String> = def.scope.iter().collect();
        if wanted != current.scope.iter().collect() {
            let action = Action::UpdateGrant {
                id: current.id.clone(),
                scope: def.scope.clone(),
            };
            steps.push(step(Op::Update, what, vec!["scope".into()], action));
        }
    }
    if prune {
        for current in server.grants.iter().filter(|g| !kept.contains(&g.id)) {
            let what = format!(
                "grant {:?} -> {:?}",
                server.client_key(&current.client_id),
                current.audience
            );
            let id = current.id.clone();
            deletions.push(step(
                Op::Delete,
                what,
                Vec::new(),
                Action::DeleteGrant { id },
            ));
        }
    }
    Ok(())
}

/// A [`ClientRef`] as a set key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum ClientKey {
    Id(String),
    New(usize),
}

impl From<&ClientRef> for ClientKey {
    fn from(client: &ClientRef) -> Self {
        match client {
            ClientRef::Id(id) => ClientKey::Id(id.clone()),
            ClientRef::New(at) => ClientKey::New(*at),
        }
    }
}

fn rules(
    file: &ConfigFile,
    server: &ServerState,
    prune: bool,
    steps: &mut Vec<Step>,
    deletions: &mut Vec<Step>,
) -> Result<(), PlanError> {
    let mut seen = BTreeSet::new();
    let mut defs: Vec<&RuleDef> = file.rules.iter().collect();
    // Created in chain order, so that rules left without an order keep the file's.
    defs.sort_by_key(|r| r.order.unwrap_or(i64::MAX));
    for def in defs {
        if !seen.insert(def.name.as_str()) {
            return refuse(format!("the file lists the rule {:?} twice", def.name));
        }
        let what = format!("rule {:?}", def.name);
        let mut namesakes = server.rules.iter().filter(|r| r.name == def.name);
        let current = match (namesakes.next(), namesakes.next()) {
            (Some(_), Some(_)) => {
                return refuse(format!(
                    "the server has several rules named {:?}: rename all but one first",
                    def.name
                ))
            }
            (one, _) => one,
        };
        let have: &[String] = current.map(|r| &r.secret_names[..]).unwrap_or(&[]);
        // A secret the rule has is left as it is: its value cannot be read to compare.
        let mut secrets = Map::new();
        for (name, value) in &def.secrets {
            if have.contains(name) {
                continue;
            }
            if let Some(key) = placeholder(value) {
                return refuse(format!(
                    "the rule {:?} needs its secret {name}, whose value is ##{key}##, which \
                     no keyword mapping replaced: give {key} in --keyword-mappings",
                    def.name
                ));
            }
            secrets.insert(name.clone(), json!(value));
        }
        let Some(current) = current else {
            let mut body = Map::new();
            body.insert("name".into(), json!(def.name));
            body.insert("script".into(), json!(def.script));
            if let Some(enabled) = def.enabled {
                body.insert("enabled".into(), json!(enabled));
            }
            if let Some(order) = def.order {
                body.insert("order".into(), json!(order));
            }
            let action = Action::CreateRule {
                body: Value::Object(body),
                secrets: Value::Object(secrets),
            };
            let mut create = step(Op::Create, what, Vec::new(), action);
            create.script = Some(def.script.clone());
            steps.push(create);
            continue;
        };
        let mut fields: Vec<String> = Vec::new();
        let mut body = Map::new();
        if current.script.as_deref() != Some(&def.script) {
            body.insert("script".into(), json!(def.script));
        }
        changed(&mut body, "enabled", &def.enabled, &current.enabled);
        changed(&mut body, "order", &def.order, &current.order);
        fields.extend(body.keys().cloned());
        let gone: Vec<&String> = have
            .iter()
            .filter(|n| !def.secrets.contains_key(*n))
            .collect();
        if prune {
            for name in &gone {
                secrets.insert((*name).clone(), Value::Null);
            }
        }
        let mut names: Vec<String> = secrets
            .iter()
            .map(|(name, value)| match value {
                Value::Null => format!("-{name}"),
                _ => format!("+{name}"),
            })
            .collect();
        if !names.is_empty() {
            names.sort();
            fields.push(format!("secrets {}", names.join(" ")));
        }
        if fields.is_empty() {
            continue;
        }
        let script = body.contains_key("script").then(|| def.script.clone());
        let action = Action::UpdateRule {
            id: current.id.clone(),
            body: (!body.is_empty()).then_some(Value::Object(body)),
            secrets: (!secrets.is_empty()).then_some(Value::Object(secrets)),
        };
        let mut update = step(Op::Update, what, fields, action);
        update.script = script;
        steps.push(update);
    }
    if prune {
        for current in server
            .rules
            .iter()
            .filter(|r| !seen.contains(r.name.as_str()))
        {
            let what = format!("rule {:?}", current.name);
            let id = current.id.clone();
            deletions.push(step(
                Op::Delete,
                what,
                Vec::new(),
                Action::DeleteRule { id },
            ));
        }
    }
    Ok(())
}

fn step(op: Op, what: String, fields: Vec<String>, action: Action) -> Step {
    Step {
        op,
        what,
        fields,
        action,
        script: None,
    }
}

/// Puts `key: wanted` in `body` when the file gives a value that differs from the
/// server's.
fn changed<T: serde::Serialize + PartialEq>(
    body: &mut Map<String, Value>,
    key: &str,
    wanted: &Option<T>,
    current: &T,
) {
    if let Some(wanted) = wanted {
        if wanted != current {
            body.insert(key.into(), serde_json::to_value(wanted).unwrap_or_default());
        }
    }
}

#[cfg(test)]
mod tests;
