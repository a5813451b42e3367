//! Several rules in order (CONTRACT.md): each sees the scope and claims the earlier ones
//! left, later claims win, a denial or failure stops the chain, one deadline covers it all.

use std::sync::Arc;
use std::time::Instant;

use super::compile::CompiledRule;
use super::engine::RuleEngine;
use super::input::{RuleInput, TokenSoFar};
use super::outcome::{Execution, Outcome, Token};
use super::secrets::RuleSecrets;
use crate::policy;

/// One rule of a chain, as the caller knows it. Its `Debug` shows secret names only.
#[derive(Clone, Copy)]
pub struct ChainRule<'a> {
    pub id: &'a str,
    pub name: &'a str,
    pub rule: &'a CompiledRule,
    /// This rule's secrets: set as its input's secrets, so no rule sees another's, and
    /// its output is redacted with its own.
    pub secrets: &'a Arc<RuleSecrets>,
}

impl std::fmt::Debug for ChainRule<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainRule")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("rule", &self.rule)
            .field("secrets", &self.secrets)
            .finish()
    }
}

/// What one rule of the chain did.
#[derive(Debug, Clone)]
pub struct Step {
    pub rule_id: String,
    pub rule_name: String,
    pub execution: Execution,
}

/// The chain's outcome and every step taken (the last one decided, if it was not a token).
#[derive(Debug, Clone)]
pub struct ChainResult {
    pub outcome: Outcome,
    pub steps: Vec<Step>,
}

impl RuleEngine {
    /// Runs `rules` in order on `input` (see [`RuleEngine::run`] on running it on a worker).
    pub async fn execute_chain(
        &self,
        rules: &[ChainRule<'_>],
        mut input: RuleInput,
        deadline: Instant,
    ) -> ChainResult {
        let mut token = Token {
            scope: input.scope.clone(),
            claims: input.token_so_far.custom_claims.clone(),
        };
        let mut steps = Vec::with_capacity(rules.len());
        for chain_rule in rules {
            input.scope = token.scope.clone();
            input.token_so_far = TokenSoFar {
                scope: token.scope.clone(),
                custom_claims: token.claims.clone(),
            };
            input.secrets = chain_rule.secrets.clone();
            let execution = self.run(chain_rule.rule, &input, deadline).await;
            let next = match &execution.outcome {
                Outcome::Issued { token: issued } => Some(issued.clone()),
                _ => None,
            };
            let stop = next.is_none().then(|| execution.outcome.clone());
            steps.push(Step {
                rule_id: chain_rule.id.to_string(),
                rule_name: chain_rule.name.to_string(),
                execution,
            });
            if let Some(outcome) = stop {
                return ChainResult { outcome, steps };
            }
            if let Some(issued) = next {
                token.scope = issued.scope;
                token.claims.extend(issued.claims);
            }
        }
        if let Err(failure) = policy::claims_fit(&token.claims, self.limits.max_claims_bytes) {
            return ChainResult {
                outcome: Outcome::Failed { failure },
                steps,
            };
        }
        ChainResult {
            outcome: Outcome::Issued { token },
            steps,
        }
    }
}
