//! The enabled rules, run on this worker (the guest yielding at every epoch tick) under
//! one deadline; every execution recorded in the rule logs.

use std::sync::Arc;
use std::time::Instant;

use super::{Authenticated, Binding, Caller, Refusal};
use crate::rules::{
    ChainRule, ClientAuthenticationInfo, ClientInfo, DenialCode, DpopInfo, Outcome, RequestInfo,
    RuleInput, Token, TokenSoFar,
};
use crate::server::catalog::Catalog;
use crate::server::rule_logs::{self, RequestContext};
use crate::server::state::AppState;
use crate::server::token_request::TokenRequest;
use crate::store::ResourceServer;

/// How the client proved itself, which rules see.
#[derive(Debug, Clone, Copy)]
pub(super) struct Proof<'a> {
    pub authenticated: &'a Authenticated,
    pub binding: Option<&'a Binding>,
}

/// Runs the chain on the token so far (`scope`, no claims yet) and returns the token it
/// shaped, or why it refused.
pub(super) async fn run(
    state: &AppState,
    catalog: &Arc<Catalog>,
    request: &TokenRequest,
    caller: Caller<'_>,
    proof: Proof<'_>,
    api: &ResourceServer,
    scope: Vec<String>,
) -> Result<Token, Refusal> {
    let client = &proof.authenticated.client;
    let input = input(state, request, caller, proof, &api.identifier, scope);
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
    let result = state.engine.execute_chain(&chain, input, deadline).await;
    state.metrics.rules_executed(&result.steps);
    let context = RequestContext {
        request_id: caller.request_id,
        client_id: &client.client_id,
        audience: &api.identifier,
    };
    // Each execution's output, and the outcome below, come redacted from the engine: every
    // text here (the entries, the server's own log lines, a denial's description) is safe.
    let mut failed = None;
    for step in result.steps {
        let entry = rule_logs::entry(context, step);
        tracing::debug!(rule = %entry.rule_id, outcome = %entry.outcome, fuel = entry.fuel_used,
            duration_us = entry.duration_us, logs = ?entry.logs, "rule executed");
        if entry.cause.is_some() {
            failed = Some(format!(
                "rule failed: {}: {}; logs: {:?}",
                entry.rule_id,
                entry.cause.as_deref().unwrap_or(""),
                entry.logs
            ));
        }
        state.logs.record(entry);
    }
    match result.outcome {
        Outcome::Issued { token } => Ok(token),
        Outcome::Denied { denial } => Err(match denial.code {
            DenialCode::AccessDenied => Refusal::AccessDenied(denial.message),
            DenialCode::InvalidScope => Refusal::InvalidScope(denial.message),
            DenialCode::InvalidRequest => Refusal::InvalidRequest(denial.message),
            DenialCode::UnauthorizedClient => Refusal::UnauthorizedClient(denial.message),
            DenialCode::ServerError => Refusal::ServerError(denial.message),
        }),
        // The entry has the failure's cause, and its stack among the logs; a chain that
        // failed after its last step (claims too large together) names no rule.
        Outcome::Failed { failure } => Err(Refusal::Internal {
            cause: failed.unwrap_or_else(|| format!("rule chain failed: {failure}")),
        }),
    }
}

fn input(
    state: &AppState,
    request: &TokenRequest,
    caller: Caller<'_>,
    proof: Proof<'_>,
    audience: &str,
    scope: Vec<String>,
) -> RuleInput {
    let client = &proof.authenticated.client;
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
            ip: caller.ip.to_string(),
            user_agent: request.user_agent.clone(),
            hostname: request.hostname.clone(),
            method: "POST".into(),
            body: request.body.clone(),
        },
        secrets: Default::default(),
        token_so_far: TokenSoFar {
            scope,
            custom_claims: Default::default(),
        },
        client_authentication: ClientAuthenticationInfo {
            method: proof.authenticated.method.as_str().to_owned(),
            credential_id: proof.authenticated.credential_id.clone(),
        },
        dpop: proof.binding.map(|b| DpopInfo { jkt: b.jkt.clone() }),
    }
}
