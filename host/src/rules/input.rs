//! What a rule is called with: the legacy rule's arguments, as an event file spells them.
//!
//! The JSON shape is the one JS sees (`{"client": {...}, "scope": [...], "audience": "...",
//! "context": {...}}`), so a rule author can copy an event from a log into a file and replay
//! it with `tokenhost run-rule`. Missing parts default to a plausible request; an unknown
//! key is an error that names it, so that a typo does not fall back to a default.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::bindings::{self, client_proof};
use super::secrets::RuleSecrets;
use crate::redacted::SecretNames;

/// The client asking for a token.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClientInfo {
    pub id: String,
    pub name: String,
    pub tenant: String,
    pub metadata: BTreeMap<String, String>,
}

impl Default for ClientInfo {
    fn default() -> Self {
        ClientInfo {
            id: "test-client".into(),
            name: "Test client".into(),
            tenant: "default".into(),
            metadata: BTreeMap::new(),
        }
    }
}

/// The HTTP request behind the exchange (`context.request`).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RequestInfo {
    pub ip: String,
    #[serde(alias = "userAgent")]
    pub user_agent: String,
    pub hostname: String,
    pub method: String,
    /// Body fields, client secret already removed.
    #[schema(value_type = Object)]
    pub body: Map<String, Value>,
}

impl Default for RequestInfo {
    fn default() -> Self {
        RequestInfo {
            ip: "127.0.0.1".into(),
            user_agent: "tokenhost-run-rule".into(),
            hostname: "localhost".into(),
            method: "POST".into(),
            body: Map::new(),
        }
    }
}

/// `context.accessToken`: the token as earlier rules of a chain left it.
#[derive(Debug, Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TokenSoFar {
    pub scope: Vec<String>,
    #[serde(alias = "customClaims")]
    #[schema(value_type = Object)]
    pub custom_claims: Map<String, Value>,
}

/// How the client proved itself (`context.clientAuthentication`,
/// `event.client_authentication`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ClientAuthenticationInfo {
    /// `client_secret_basic`, `client_secret_post` or `private_key_jwt`.
    pub method: String,
    /// The public-key credential that verified the client assertion; `None` (JS `null`)
    /// for a client secret.
    pub credential_id: Option<String>,
}

impl Default for ClientAuthenticationInfo {
    fn default() -> Self {
        ClientAuthenticationInfo {
            method: "client_secret_post".into(),
            credential_id: None,
        }
    }
}

/// The DPoP proof that came with the request (`context.dpop`, `event.dpop`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DpopInfo {
    /// The RFC 7638 thumbprint of the proof's key, which the token's `cnf.jkt` carries.
    pub jkt: String,
}

#[derive(Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct Webtask {
    secrets: BTreeMap<String, String>,
}

impl fmt::Debug for Webtask {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Webtask")
            .field("secrets", &SecretNames(&self.secrets))
            .finish()
    }
}

/// `context` as an event file gives it; `ip`, `userAgent` and `hostname` at the top level
/// (the original platform's spelling) fill in `request` where it leaves them out.
#[derive(Clone, Default, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
struct ContextFile {
    ip: Option<String>,
    #[serde(alias = "user_agent")]
    #[serde(rename = "userAgent")]
    user_agent: Option<String>,
    hostname: Option<String>,
    request: Option<RequestInfo>,
    secrets: BTreeMap<String, String>,
    webtask: Webtask,
    #[serde(alias = "access_token", rename = "accessToken")]
    access_token: TokenSoFar,
    #[serde(alias = "client_authentication", rename = "clientAuthentication")]
    client_authentication: ClientAuthenticationInfo,
    dpop: Option<DpopInfo>,
}

impl fmt::Debug for ContextFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ContextFile")
            .field("ip", &self.ip)
            .field("user_agent", &self.user_agent)
            .field("hostname", &self.hostname)
            .field("request", &self.request)
            .field("secrets", &SecretNames(&self.secrets))
            .field("webtask", &self.webtask)
            .field("access_token", &self.access_token)
            .field("client_authentication", &self.client_authentication)
            .field("dpop", &self.dpop)
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(default, deny_unknown_fields)]
/// A rule's arguments as an event file (and the test endpoint) gives them; every part
/// defaults to a plausible request.
pub struct EventFile {
    client: ClientInfo,
    scope: Vec<String>,
    audience: String,
    context: ContextFile,
}

impl Default for EventFile {
    fn default() -> Self {
        EventFile {
            client: ClientInfo::default(),
            scope: Vec::new(),
            audience: "https://api.example.com/".into(),
            context: ContextFile::default(),
        }
    }
}

/// Everything one rule execution is given. Its `Debug` shows secret names, never values.
#[derive(Clone, PartialEq, Deserialize)]
#[serde(from = "EventFile")]
pub struct RuleInput {
    pub client: ClientInfo,
    pub scope: Vec<String>,
    pub audience: String,
    pub request: RequestInfo,
    /// Shared: a chain hands each rule its own from the catalog without copying them.
    pub secrets: Arc<RuleSecrets>,
    pub token_so_far: TokenSoFar,
    /// How the client authenticated.
    pub client_authentication: ClientAuthenticationInfo,
    /// The DPoP proof's key, when one came with the request.
    pub dpop: Option<DpopInfo>,
}

impl fmt::Debug for RuleInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuleInput")
            .field("client", &self.client)
            .field("scope", &self.scope)
            .field("audience", &self.audience)
            .field("request", &self.request)
            .field("secrets", &self.secrets)
            .field("token_so_far", &self.token_so_far)
            .field("client_authentication", &self.client_authentication)
            .field("dpop", &self.dpop)
            .finish()
    }
}

impl Default for RuleInput {
    fn default() -> Self {
        EventFile::default().into()
    }
}

impl From<EventFile> for RuleInput {
    fn from(event: EventFile) -> Self {
        let ctx = event.context;
        let mut request = ctx.request.unwrap_or_default();
        if let Some(ip) = ctx.ip {
            request.ip = ip;
        }
        if let Some(user_agent) = ctx.user_agent {
            request.user_agent = user_agent;
        }
        if let Some(hostname) = ctx.hostname {
            request.hostname = hostname;
        }
        let mut secrets = ctx.webtask.secrets;
        secrets.extend(ctx.secrets);
        RuleInput {
            client: event.client,
            scope: event.scope,
            audience: event.audience,
            request,
            secrets: Arc::new(RuleSecrets::new(secrets)),
            token_so_far: ctx.access_token,
            client_authentication: ctx.client_authentication,
            dpop: ctx.dpop,
        }
    }
}

impl RuleInput {
    /// Parses an event file's JSON.
    pub fn from_json(json: &str) -> serde_json::Result<RuleInput> {
        serde_json::from_str(json)
    }

    pub(crate) fn wit_client(&self) -> bindings::Client {
        bindings::Client {
            id: self.client.id.clone(),
            name: self.client.name.clone(),
            tenant: self.client.tenant.clone(),
            metadata: pairs(&self.client.metadata),
        }
    }

    pub(crate) fn wit_context(&self) -> bindings::Context {
        let request = &self.request;
        bindings::Context {
            request: bindings::RequestInfo {
                ip: request.ip.clone(),
                user_agent: request.user_agent.clone(),
                hostname: request.hostname.clone(),
                method: request.method.clone(),
                body: request
                    .body
                    .iter()
                    .map(|(name, value)| bindings::BodyField {
                        name: name.clone(),
                        value: value.to_string(),
                    })
                    .collect(),
            },
            secrets: pairs(self.secrets.values()),
            access_token: bindings::AccessToken {
                scope: self.token_so_far.scope.clone(),
                custom_claims: self
                    .token_so_far
                    .custom_claims
                    .iter()
                    .map(|(name, value)| bindings::Claim {
                        name: name.clone(),
                        value: value.to_string(),
                    })
                    .collect(),
            },
        }
    }

    /// What the `client-proof` import answers for this execution.
    pub(crate) fn wit_proof(&self) -> client_proof::Proof {
        let authentication = &self.client_authentication;
        client_proof::Proof {
            authentication: client_proof::ClientAuthentication {
                method: authentication.method.clone(),
                credential_id: authentication.credential_id.clone(),
            },
            dpop: self.dpop.as_ref().map(|dpop| client_proof::DpopBinding {
                jkt: dpop.jkt.clone(),
            }),
        }
    }
}

fn pairs(map: &BTreeMap<String, String>) -> Vec<(String, String)> {
    map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_event_gets_sensible_defaults() {
        let input = RuleInput::from_json("{}").expect("parse");
        assert_eq!(input.client.tenant, "default");
        assert_eq!(input.request.method, "POST");
        assert!(input.scope.is_empty());
    }

    #[test]
    fn an_unknown_key_is_refused_by_its_name() {
        for (json, key) in [
            (r#"{"scopes": ["a"]}"#, "scopes"),
            (r#"{"client": {"metdata": {}}}"#, "metdata"),
            (
                r#"{"context": {"request": {"ipaddr": "1.2.3.4"}}}"#,
                "ipaddr",
            ),
            (
                r#"{"context": {"dpop": {"jkt": "a", "alg": "ES256"}}}"#,
                "alg",
            ),
        ] {
            let error = RuleInput::from_json(json).unwrap_err().to_string();
            assert!(
                error.contains(&format!("unknown field `{key}`")),
                "{json}: {error}"
            );
        }
    }

    #[test]
    fn legacy_context_spelling_is_understood() {
        let input = RuleInput::from_json(
            r#"{"context": {"ip": "10.0.0.9", "userAgent": "curl", "webtask": {"secrets": {"k": "v"}},
                "accessToken": {"scope": ["a"], "customClaims": {"https://x/y": 1}}}}"#,
        )
        .expect("parse");
        assert_eq!(input.request.ip, "10.0.0.9");
        assert_eq!(input.request.user_agent, "curl");
        assert_eq!(input.secrets.get("k"), Some("v"));
        assert_eq!(input.token_so_far.scope, vec!["a".to_string()]);
    }

    #[test]
    fn client_authentication_and_dpop_in_either_spelling() {
        let expected = ClientAuthenticationInfo {
            method: "private_key_jwt".into(),
            credential_id: Some("cred_1".into()),
        };
        for key in ["clientAuthentication", "client_authentication"] {
            let input = RuleInput::from_json(&format!(
                r#"{{"context": {{"{key}": {{"method": "private_key_jwt", "credential_id": "cred_1"}},
                    "dpop": {{"jkt": "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I"}}}}}}"#
            ))
            .expect("parse");
            assert_eq!(input.client_authentication, expected, "{key}");
            assert_eq!(
                input.dpop.as_ref().map(|d| d.jkt.as_str()),
                Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I")
            );
        }
        let shown = format!(
            "{:?}",
            RuleInput::from_json(r#"{"context": {"dpop": {"jkt": "abc"}}}"#).expect("parse")
        );
        assert!(
            shown.contains("client_secret_post") && shown.contains("abc"),
            "{shown}"
        );
    }

    #[test]
    fn without_them_a_secret_sent_in_the_body_and_no_dpop() {
        for json in [
            "{}",
            r#"{"context": {"dpop": null, "clientAuthentication": {}}}"#,
        ] {
            let input = RuleInput::from_json(json).expect("parse");
            assert_eq!(input.client_authentication.method, "client_secret_post");
            assert_eq!(input.client_authentication.credential_id, None);
            assert_eq!(input.dpop, None);
        }
    }

    #[test]
    fn debug_shows_secret_names_but_no_values() {
        let json = r#"{"context": {"secrets": {"API_KEY": "sk_live_1"},
            "webtask": {"secrets": {"OLD_KEY": "sk_live_2"}}}}"#;
        let file: EventFile = serde_json::from_str(json).expect("parse");
        let input = RuleInput::from_json(json).expect("parse");
        for shown in [
            format!("{input:?}"),
            format!("{input:#?}"),
            format!("{file:?}"),
            format!("{file:#?}"),
        ] {
            assert!(
                shown.contains("API_KEY") && shown.contains("OLD_KEY"),
                "{shown}"
            );
            assert!(!shown.contains("sk_live"), "{shown}");
        }
    }
}
