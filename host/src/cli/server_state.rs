//! What a server holds, read through the management API, for `export` to write and
//! `apply` to compare a file with: every API, client, grant and rule, and the names (never
//! the values) of each rule's secrets.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::Value;

use super::config_file::{ApiDef, ClientDef, ConfigFile, GrantDef, RuleDef};
use super::error::CliError;
use super::management::Api;
use crate::store::{RateLimit, ScopeDef, SecretMethod, SigningAlg};

/// The scopes reading a server's configuration takes, for the advice on a refusal.
pub const READ_SCOPES: &str =
    "read:resource_servers, read:clients, read:client_grants and read:rules";

#[derive(Debug, Deserialize)]
pub struct CurrentApi {
    pub id: String,
    pub identifier: String,
    pub name: String,
    pub scopes: Vec<ScopeDef>,
    pub token_lifetime: u32,
    pub signing_alg: SigningAlg,
    pub allow_rule_added_scopes: bool,
}

#[derive(Debug, Deserialize)]
pub struct CurrentClient {
    pub client_id: String,
    pub name: String,
    pub client_metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub token_rate_limit: Option<RateLimit>,
    pub token_endpoint_auth_method: Option<SecretMethod>,
    pub dpop_bound_access_tokens: bool,
}

#[derive(Debug, Deserialize)]
pub struct CurrentGrant {
    pub id: String,
    pub client_id: String,
    pub audience: String,
    pub scope: Vec<String>,
}

#[derive(Debug, Deserialize)]
pub struct CurrentRule {
    pub id: String,
    pub name: String,
    /// Absent for a rule uploaded as a component.
    #[serde(default)]
    pub script: Option<String>,
    pub enabled: bool,
    pub order: i64,
    /// Filled from `/rules/{id}/secrets`.
    #[serde(skip)]
    pub secret_names: Vec<String>,
}

#[derive(Debug, Deserialize)]
struct SecretName {
    name: String,
}

/// A server's configuration as the management API lists it.
#[derive(Debug)]
pub struct ServerState {
    pub apis: Vec<CurrentApi>,
    pub clients: Vec<CurrentClient>,
    pub grants: Vec<CurrentGrant>,
    pub rules: Vec<CurrentRule>,
}

impl ServerState {
    pub async fn read(api: &Api) -> Result<ServerState, CliError> {
        let mut rules: Vec<CurrentRule> = list(api, "/rules").await?;
        for rule in &mut rules {
            let path = format!("/rules/{}/secrets", rule.id);
            let names: Vec<SecretName> = parse(
                api,
                &path,
                api.call(reqwest::Method::GET, &path, None).await?,
            )?;
            rule.secret_names = names.into_iter().map(|s| s.name).collect();
            rule.secret_names.sort();
        }
        Ok(ServerState {
            apis: list(api, "/resource-servers").await?,
            clients: list(api, "/clients").await?,
            grants: list(api, "/client-grants").await?,
            rules,
        })
    }

    /// How a grant names `client_id` in a file: by the client's name when no other client
    /// has it, else by its id.
    pub fn client_key(&self, client_id: &str) -> String {
        let Some(client) = self.clients.iter().find(|c| c.client_id == client_id) else {
            return client_id.to_string();
        };
        let namesakes = self
            .clients
            .iter()
            .filter(|c| c.name == client.name)
            .count();
        if namesakes == 1 {
            client.name.clone()
        } else {
            client_id.to_string()
        }
    }

    /// The configuration file that describes this server, every list in a stable order so
    /// that two exports differ only where the server does; and what it had to leave out.
    pub fn to_file(&self) -> (ConfigFile, Vec<String>) {
        let mut skipped = Vec::new();
        let mut resource_servers: Vec<ApiDef> = self.apis.iter().map(CurrentApi::to_def).collect();
        resource_servers.sort_by(|a, b| a.identifier.cmp(&b.identifier));
        let mut clients: Vec<ClientDef> = self.clients.iter().map(CurrentClient::to_def).collect();
        clients.sort_by(|a, b| (&a.name, &a.client_id).cmp(&(&b.name, &b.client_id)));
        let mut client_grants: Vec<GrantDef> = self
            .grants
            .iter()
            .map(|g| GrantDef {
                client: self.client_key(&g.client_id),
                audience: g.audience.clone(),
                scope: g.scope.clone(),
            })
            .collect();
        client_grants.sort_by(|a, b| (&a.client, &a.audience).cmp(&(&b.client, &b.audience)));
        let mut rules = Vec::new();
        for rule in &self.rules {
            match rule.to_def() {
                Some(def) => rules.push(def),
                None => skipped.push(format!(
                    "rule {:?}: it was uploaded as a WebAssembly component, whose bytes the \
                     API does not give back",
                    rule.name
                )),
            }
        }
        rules.sort_by(|a, b| (a.order, &a.name).cmp(&(b.order, &b.name)));
        let file = ConfigFile {
            resource_servers,
            clients,
            client_grants,
            rules,
        };
        (file, skipped)
    }
}

impl CurrentApi {
    fn to_def(&self) -> ApiDef {
        ApiDef {
            identifier: self.identifier.clone(),
            name: Some(self.name.clone()),
            scopes: Some(self.scopes.clone()),
            token_lifetime: Some(self.token_lifetime),
            signing_alg: Some(self.signing_alg),
            allow_rule_added_scopes: Some(self.allow_rule_added_scopes),
        }
    }
}

impl CurrentClient {
    fn to_def(&self) -> ClientDef {
        ClientDef {
            name: self.name.clone(),
            client_id: Some(self.client_id.clone()),
            client_secret: None,
            client_metadata: Some(self.client_metadata.clone()),
            token_endpoint_auth_method: Some(self.token_endpoint_auth_method),
            dpop_bound_access_tokens: Some(self.dpop_bound_access_tokens),
            token_rate_limit: self.token_rate_limit.map(Some),
        }
    }
}

impl CurrentRule {
    /// The rule with a `##NAME##` placeholder for each secret; none for a component.
    fn to_def(&self) -> Option<RuleDef> {
        Some(RuleDef {
            name: self.name.clone(),
            script: self.script.clone()?,
            enabled: Some(self.enabled),
            order: Some(self.order),
            secrets: self
                .secret_names
                .iter()
                .map(|name| (name.clone(), format!("##{name}##")))
                .collect(),
        })
    }
}

async fn list<T: DeserializeOwned>(api: &Api, path: &str) -> Result<Vec<T>, CliError> {
    let items = api.list_all(path).await?;
    parse(api, path, Value::Array(items))
}

fn parse<T: DeserializeOwned>(api: &Api, path: &str, value: Value) -> Result<T, CliError> {
    serde_json::from_value(value).map_err(|e| {
        CliError::failed(
            "bad_response",
            format!(
                "{}/api/v2{path} answered what tokenhost cannot read: {e}",
                api.base
            ),
        )
    })
}
