//! Issuing an access token for a client-credentials request, without HTTP: authenticate the
//! client, resolve audience and scopes against its grant, run the enabled rules, apply the
//! scope and claims policy (`crate::policy`), sign. The token endpoint (`token.rs`) turns the
//! result into a response.
//!
//! Nothing here touches storage: the catalog snapshot has it all. Each step is a function
//! of its own, so another way to authenticate or to bind a token adds a step, not a branch
//! through the others.

mod authenticate;
mod dpop;
mod replay;
mod rules;

pub use authenticate::Authenticated;
pub use dpop::Binding;

use std::net::IpAddr;

use serde::Serialize;
use serde_json::{Map, Value};

use super::catalog::Catalog;
use super::rate_limit::Exceeded;
use super::state::{now, AppState};
use super::token_request::TokenRequest;
use crate::credentials;
use crate::policy::GrantedScope;
use crate::rules::Token;
use crate::store::{Client, ResourceServer, SigningAlg};

/// Random bytes in a token's `jti`.
const JTI_BYTES: usize = 16;

/// A signed access token and what the response says of it.
#[derive(Debug)]
pub struct Issued {
    pub access_token: String,
    pub expires_in: u32,
    /// The token's scope, space-delimited, as in the token.
    pub scope: String,
    pub alg: SigningAlg,
    /// `DPoP` for a token bound to a proof's key (RFC 9449 §5), else `Bearer`.
    pub token_type: &'static str,
}

/// Why no token was issued: each is one OAuth error (RFC 6749 §5.2, CONTRACT.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    InvalidRequest(String),
    InvalidClient(String),
    InvalidDpopProof(String),
    UnsupportedGrantType(String),
    InvalidScope(String),
    UnauthorizedClient(String),
    /// A deliberate refusal: unknown audience, no grant, a rule's denial.
    AccessDenied(String),
    /// A rule's own `server_error`: its (redacted) description is for the client.
    ServerError(String),
    /// Over a rate limit: when to retry, and the allowance for the `x-ratelimit-*` headers.
    TooManyRequests {
        exceeded: Exceeded,
        description: &'static str,
    },
    /// A failure inside tokenhost or a rule. The cause is for the server's log, never for
    /// the client.
    Internal {
        cause: String,
    },
}

/// Who is asking, as far as the transport tells.
#[derive(Debug, Clone, Copy)]
pub struct Caller<'a> {
    pub ip: IpAddr,
    pub request_id: &'a str,
}

/// The registered claims of an access token (RFC 9068), with the rule's claims flattened in.
#[derive(Serialize)]
struct Claims<'a> {
    iss: &'a str,
    sub: String,
    aud: &'a str,
    iat: i64,
    exp: i64,
    jti: String,
    client_id: &'a str,
    azp: &'a str,
    gty: &'static str,
    scope: &'a str,
    /// The key the token is bound to (RFC 9449 §6.1).
    #[serde(skip_serializing_if = "Option::is_none")]
    cnf: Option<Confirmation<'a>>,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

#[derive(Serialize)]
struct Confirmation<'a> {
    jkt: &'a str,
}

/// The client-credentials grant, from a parsed request to a signed token.
pub async fn issue(
    state: &AppState,
    request: &TokenRequest,
    caller: Caller<'_>,
) -> Result<Issued, Refusal> {
    if request.grant_type != "client_credentials" {
        return Err(Refusal::UnsupportedGrantType(format!(
            "grant_type {:?} is not supported: this server issues client_credentials tokens",
            request.grant_type
        )));
    }
    let catalog = state.catalog();
    let authenticated = authenticate::client(state, &catalog, request, caller.ip).await?;
    let client = &authenticated.client;
    // Only now, authenticated, does the request count against the client's limit.
    state
        .rate_limits
        .check_token(&client.client_id, client.token_rate_limit)
        .map_err(|exceeded| Refusal::TooManyRequests {
            exceeded,
            description: "too many token requests for this client; retry later",
        })?;
    let binding = dpop::binding(state, request, client).await?;
    let audience = request
        .audience
        .as_deref()
        .or(state.config.default_audience.as_deref())
        .ok_or_else(|| Refusal::InvalidRequest("audience is required".into()))?;
    let api = catalog
        .apis
        .get(audience)
        .ok_or_else(|| Refusal::AccessDenied(format!("Service not found: {audience}")))?;
    let grant = catalog.grant(&client.client_id, audience).ok_or_else(|| {
        Refusal::AccessDenied(format!(
            "Client is not authorized to access \"{audience}\". You need to create a client grant."
        ))
    })?;
    let granted = GrantedScope::new(&grant.scope);
    let scope = granted
        .requested(request.scope.as_deref())
        .map_err(Refusal::InvalidScope)?;
    let mut token = if audience == state.config.management_audience() || catalog.rules.is_empty() {
        Token {
            scope,
            claims: Map::new(),
        }
    } else {
        let proof = rules::Proof {
            authenticated: &authenticated,
            binding: binding.as_ref(),
        };
        rules::run(state, &catalog, request, caller, proof, api, scope).await?
    };
    let dropped = granted.restrict(&mut token, api.allow_rule_added_scopes);
    if !dropped.is_empty() {
        // Rule output in the server's log: any rule of the chain may have added them, so
        // every rule's secrets are hidden.
        let dropped: Vec<String> = dropped
            .into_iter()
            .map(|scope| {
                catalog.rules.iter().fold(scope, |scope, rule| {
                    rule.secrets.redact(&scope).into_owned()
                })
            })
            .collect();
        tracing::info!(request_id = %caller.request_id, ?dropped, audience = %api.identifier,
            "scopes added by rules dropped: the API does not allow rule-added scopes");
    }
    sign(state, &catalog, client, api, &token, binding.as_ref())
}

fn sign(
    state: &AppState,
    catalog: &Catalog,
    client: &Client,
    api: &ResourceServer,
    token: &Token,
    binding: Option<&Binding>,
) -> Result<Issued, Refusal> {
    let iat = now();
    let scope = token.scope.join(" ");
    let claims = Claims {
        iss: &state.config.issuer,
        sub: format!("{}@clients", client.client_id),
        aud: &api.identifier,
        iat,
        exp: iat + i64::from(api.token_lifetime),
        jti: jti()?,
        client_id: &client.client_id,
        azp: &client.client_id,
        gty: "client-credentials",
        scope: &scope,
        cnf: binding.map(|b| Confirmation { jkt: &b.jkt }),
        custom: &token.claims,
    };
    let access_token =
        catalog
            .keys
            .sign(api.signing_alg, &claims)
            .map_err(|e| Refusal::Internal {
                cause: format!("cannot sign the token: {e}"),
            })?;
    Ok(Issued {
        access_token,
        expires_in: api.token_lifetime,
        scope,
        alg: api.signing_alg,
        token_type: if binding.is_some() { "DPoP" } else { "Bearer" },
    })
}

/// 128 random bits: unique per token, so a resource server can refuse a replayed one.
fn jti() -> Result<String, Refusal> {
    credentials::random_b64(JTI_BYTES).map_err(|e| Refusal::Internal {
        cause: e.to_string(),
    })
}
