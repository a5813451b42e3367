//! `POST /oauth/token`: the client-credentials grant, end to end.
//!
//! Parse, authenticate the client, resolve audience and scopes against its grant, run the
//! enabled rules (on this worker, the guest yielding at every epoch tick, under one
//! deadline), keep the claims a rule may set, sign, answer. Nothing here touches storage:
//! the catalog snapshot has it all.

use std::collections::HashSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Instant;

use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use axum::body::Body;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::Serialize;
use serde_json::{Map, Value};

use super::catalog::Catalog;
use super::client_ip::client_ip;
use super::oauth_error::OAuthError;
use super::rate_limit::retry_after_secs;
use super::request_id::RequestId;
use super::rule_logs::{self, RequestContext};
use super::state::{now, AppState};
use super::token_request::{self, ScopeBounds, TokenRequest};
use crate::rules::{
    ChainRule, ClientInfo, DenialCode, Outcome, RequestInfo, RuleInput, Token, TokenSoFar,
};
use crate::store::{Client, ResourceServer, SigningAlg};

#[derive(Serialize)]
struct TokenResponse {
    access_token: String,
    token_type: &'static str,
    expires_in: u32,
    scope: String,
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
    scope: String,
    #[serde(flatten)]
    custom: &'a Map<String, Value>,
}

pub async fn token(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Extension(request_id): Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    match issue(&state, peer, &request_id, &headers, body).await {
        Ok((response, alg)) => {
            state.metrics.token_issued(alg, started.elapsed());
            response
        }
        Err(error) => {
            state.metrics.token_refused(error.code, started.elapsed());
            error.into_response()
        }
    }
}

async fn issue(
    state: &AppState,
    peer: SocketAddr,
    request_id: &RequestId,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Response, SigningAlg), OAuthError> {
    let limit = state.config.max_token_body_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|len| len > limit) {
        return Err(OAuthError::payload_too_large(limit));
    }
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| OAuthError::payload_too_large(limit))?;
    let bounds = ScopeBounds {
        max_scopes: state.config.max_request_scopes,
        max_length: state.config.max_scope_length,
    };
    let request = token_request::parse(headers, &bytes, bounds)?;
    if request.grant_type != "client_credentials" {
        return Err(OAuthError::unsupported_grant_type(format!(
            "grant_type {:?} is not supported: this server issues client_credentials tokens",
            request.grant_type
        )));
    }
    let catalog = state.catalog();
    let ip = client_ip(peer, headers, &state.config.trusted_proxies);
    let client = authenticate(state, &catalog, &request, ip)?;
    // Only now, authenticated, does the request count against the client's limit.
    state
        .rate_limits
        .check_token(&client.client_id, client.token_rate_limit)
        .map_err(|wait| {
            OAuthError::too_many_requests(
                retry_after_secs(wait),
                "too many token requests for this client; retry later",
            )
        })?;
    let audience = request
        .audience
        .clone()
        .or_else(|| state.config.default_audience.clone())
        .ok_or_else(|| OAuthError::invalid_request("audience is required"))?;
    let api = catalog
        .apis
        .get(&audience)
        .ok_or_else(|| OAuthError::access_denied(format!("Service not found: {audience}")))?;
    let grant = catalog.grant(&client.client_id, &audience).ok_or_else(|| {
        OAuthError::access_denied(format!(
            "Client is not authorized to access \"{audience}\". You need to create a client grant."
        ))
    })?;
    // A set, so that checking a thousand requested scopes against a large grant is a
    // thousand lookups, not a thousand scans.
    let grant_scope: HashSet<&str> = grant.scope.iter().map(String::as_str).collect();
    let granted = match &request.scope {
        Some(requested) => {
            if let Some(missing) = requested.iter().find(|s| !grant_scope.contains(s.as_str())) {
                return Err(OAuthError::invalid_scope(format!(
                    "scope {missing:?} is not granted to this client"
                )));
            }
            requested.clone()
        }
        None => grant.scope.clone(),
    };
    let token = if audience == state.config.management_audience() || catalog.rules.is_empty() {
        Token {
            scope: granted,
            claims: Map::new(),
        }
    } else {
        let input = rule_input(state, peer, headers, &client, &request, &audience, granted);
        run_rules(state, &catalog, input, request_id, api).await?
    };
    let token = restrict_scopes(api, &grant_scope, token, &catalog, request_id);
    let response = sign(state, &catalog, &client, api, &token)?;
    Ok((response, api.signing_alg))
}

/// Checks the client's secret. A (client_id, address) pair that failed too often is
/// refused with 429 before its secret is looked at. An unknown client_id goes through the
/// same steps as a known one with a wrong secret (counted, slowed down, a keyed hash
/// compared), so no answer, header or delay tells which ids exist.
fn authenticate(
    state: &AppState,
    catalog: &Catalog,
    request: &TokenRequest,
    ip: IpAddr,
) -> Result<Arc<Client>, OAuthError> {
    let slow_down = |wait| {
        OAuthError::too_many_requests(
            retry_after_secs(wait),
            "too many failed authentications for this client from this address; retry later",
        )
    };
    if let Some(wait) = state.rate_limits.auth_blocked(&request.client_id, ip) {
        return Err(slow_down(wait));
    }
    let secret = &request.client_secret;
    match catalog.clients.get(&request.client_id) {
        Some(client) if secret_matches(state, client, secret) => return Ok(client.clone()),
        Some(_) => {}
        // The work a known client's check does, against a hash no secret has; `black_box`
        // so that the compiler cannot drop a computation whose result is unused.
        None => {
            std::hint::black_box(state.hasher.verify(secret, &NO_SECRET_HASH));
        }
    }
    match state.rate_limits.auth_failed(&request.client_id, ip) {
        Some(wait) => Err(slow_down(wait)),
        None => Err(OAuthError::invalid_client("client authentication failed")),
    }
}

/// As long as a stored secret hash (HMAC-SHA256), and matching no secret's.
const NO_SECRET_HASH: [u8; 32] = [0; 32];

fn secret_matches(state: &AppState, client: &Client, secret: &str) -> bool {
    let now = now();
    client
        .secrets
        .iter()
        .filter(|s| s.expires_at.is_none_or(|at| at > now))
        .any(|s| state.hasher.verify(secret, &s.hash))
}

fn rule_input(
    state: &AppState,
    peer: SocketAddr,
    headers: &HeaderMap,
    client: &Client,
    request: &TokenRequest,
    audience: &str,
    scope: Vec<String>,
) -> RuleInput {
    let header = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    RuleInput {
        client: ClientInfo {
            id: client.client_id.clone(),
            name: client.name.clone(),
            tenant: state.config.tenant.clone(),
            metadata: client.client_metadata.clone(),
        },
        scope: scope.clone(),
        audience: audience.to_string(),
        request: RequestInfo {
            ip: client_ip(peer, headers, &state.config.trusted_proxies).to_string(),
            user_agent: header(header::USER_AGENT),
            hostname: header(header::HOST),
            method: "POST".into(),
            body: request.body.clone(),
        },
        secrets: Default::default(),
        token_so_far: TokenSoFar {
            scope,
            custom_claims: Map::new(),
        },
    }
}

async fn run_rules(
    state: &AppState,
    catalog: &std::sync::Arc<Catalog>,
    input: RuleInput,
    request_id: &RequestId,
    api: &ResourceServer,
) -> Result<Token, OAuthError> {
    let client_id = input.client.id.clone();
    let deadline = Instant::now() + state.engine.limits().deadline;
    let chain: Vec<ChainRule<'_>> = catalog
        .rules
        .iter()
        .map(|r| ChainRule {
            id: &r.id,
            name: &r.name,
            rule: &r.compiled,
            secrets: &r.secrets,
        })
        .collect();
    // On this worker: the guest yields at every epoch tick, so a slow rule shares it.
    let result = state.engine.execute_chain(&chain, input, deadline).await;
    state.metrics.rules_executed(&result.steps);
    let request = RequestContext {
        request_id: &request_id.0,
        client_id: &client_id,
        audience: &api.identifier,
    };
    let mut last_entry = None;
    // Each execution's output, and the outcome below, come redacted from the engine: every
    // text here (the entries, the server's own log lines, a denial's description) is safe.
    for step in result.steps {
        let entry = rule_logs::entry(request, step);
        tracing::debug!(rule = %entry.rule_id, outcome = %entry.outcome, fuel = entry.fuel_used,
            duration_us = entry.duration_us, logs = ?entry.logs, "rule executed");
        state.logs.record(entry.clone());
        last_entry = Some(entry);
    }
    match result.outcome {
        Outcome::Issued { token } => Ok(token),
        Outcome::Denied { denial } => Err(match denial.code {
            DenialCode::AccessDenied => OAuthError::access_denied(denial.message),
            DenialCode::InvalidScope => OAuthError::invalid_scope(denial.message),
            DenialCode::InvalidRequest => OAuthError::invalid_request(denial.message),
            DenialCode::UnauthorizedClient => OAuthError::unauthorized_client(denial.message),
            DenialCode::ServerError => OAuthError::server_error(denial.message),
        }),
        Outcome::Failed { .. } => {
            // The entry: the failure's cause, and its stack among the logs.
            if let Some(entry) = last_entry {
                tracing::error!(request_id = %request_id.0, rule = %entry.rule_id, audience = %api.identifier,
                    cause = entry.cause.as_deref().unwrap_or(""), logs = ?entry.logs, "rule failed");
            }
            Err(OAuthError::internal())
        }
    }
}

/// With `allow_rule_added_scopes = false`, scopes beyond the grant are dropped (and said).
fn restrict_scopes(
    api: &ResourceServer,
    grant_scope: &HashSet<&str>,
    mut token: Token,
    catalog: &Catalog,
    request_id: &RequestId,
) -> Token {
    if !api.allow_rule_added_scopes {
        let (kept, dropped): (Vec<String>, Vec<String>) = token
            .scope
            .into_iter()
            .partition(|s| grant_scope.contains(s.as_str()));
        if !dropped.is_empty() {
            // Rule output in the server's log: any rule of the chain may have added them,
            // so every rule's secrets are hidden.
            let dropped: Vec<String> = dropped
                .into_iter()
                .map(|scope| {
                    catalog.rules.iter().fold(scope, |scope, rule| {
                        rule.secrets.redact(&scope).into_owned()
                    })
                })
                .collect();
            tracing::info!(request_id = %request_id.0, ?dropped, audience = %api.identifier,
                "scopes added by rules dropped: the API does not allow rule-added scopes");
        }
        token.scope = kept;
    }
    token
}

fn sign(
    state: &AppState,
    catalog: &Catalog,
    client: &Client,
    api: &ResourceServer,
    token: &Token,
) -> Result<Response, OAuthError> {
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
        scope: scope.clone(),
        custom: &token.claims,
    };
    let access_token = catalog.keys.sign(api.signing_alg, &claims).map_err(|e| {
        tracing::error!(error = %e, "cannot sign the token");
        OAuthError::internal()
    })?;
    let body = TokenResponse {
        access_token,
        token_type: "Bearer",
        expires_in: api.token_lifetime,
        scope,
    };
    let mut response = Json(body).into_response();
    let headers = response.headers_mut();
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    Ok(response)
}

fn jti() -> Result<String, OAuthError> {
    let mut bytes = [0u8; 16];
    SystemRandom::new().fill(&mut bytes).map_err(|_| {
        tracing::error!("the system random source failed");
        OAuthError::internal()
    })?;
    Ok(URL_SAFE_NO_PAD.encode(bytes))
}
