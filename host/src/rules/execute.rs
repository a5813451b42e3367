//! One execution: a fresh store, instantiate, call `execute`, read the outcome.
//!
//! Nothing survives between executions but what the rule puts in its cache (`api.cache`,
//! held by the `CompiledRule`): every call gets its own store and instance from the rule's
//! snapshot. Traps are classified by type, never by message text. What the rule outputs
//! (console lines, notes, a denial's description, a failure's text) comes back redacted
//! with its secrets and bounded (`console.rs`), so no caller handles a raw secret.

use std::time::{Duration, Instant};

use wasmtime::Trap;

use super::bindings::{AccessToken, FailureKind, RuleError};
use super::compile::CompiledRule;
use super::engine::RuleEngine;
use super::input::RuleInput;
use super::limits::Limits;
use super::outcome::{Denial, DenialCode, Execution, Failure, LogLine, Outcome};
use super::store::new_store;
use crate::policy;

impl RuleEngine {
    /// Runs `rule` once with the configured deadline. Blocking: for callers outside an
    /// async runtime (the CLI, tests, benchmarks); async code awaits [`RuleEngine::run`].
    pub fn execute(&self, rule: &CompiledRule, input: &RuleInput) -> Execution {
        let deadline = Instant::now() + self.limits.deadline;
        futures_executor::block_on(self.run(rule, input, deadline))
    }

    /// Runs `rule` once, stopping it at `deadline` (a chain shares one deadline). The
    /// guest runs inside this future's polls and yields at every epoch tick, so awaiting it
    /// on an async worker is fine: a long execution shares the worker with other tasks.
    pub async fn run(
        &self,
        rule: &CompiledRule,
        input: &RuleInput,
        deadline: Instant,
    ) -> Execution {
        let started = Instant::now();
        let limits = &self.limits;
        let failed = |failure| Execution {
            outcome: Outcome::Failed { failure },
            logs: Vec::new(),
            truncated: false,
            fuel_used: 0,
            duration: started.elapsed(),
        };
        let deadline_ms = limits.deadline.as_millis().try_into().unwrap_or(u64::MAX);
        // The semaphore is never closed; waiting for a slot counts against the deadline.
        let Ok(_slot) = self.slots.acquire().await else {
            return failed(Failure::Deadline { deadline_ms });
        };
        if Instant::now() >= deadline {
            return failed(Failure::Deadline { deadline_ms });
        }
        let mut store = match new_store(
            &self.engine,
            limits,
            deadline,
            rule.cache().clone(),
            input,
            &self.slow_lane,
        ) {
            Ok(store) => store,
            Err(e) => {
                return failed(Failure::Trap {
                    message: format!("cannot create a store: {e:#}"),
                })
            }
        };
        let result = match rule.pre.instantiate_async(&mut store).await {
            Ok(instance) => {
                instance
                    .call_execute(
                        &mut store,
                        &input.wit_client(),
                        &input.scope,
                        &input.audience,
                        &input.wit_context(),
                    )
                    .await
            }
            Err(e) => Err(e),
        };
        let fuel_used = limits.fuel.saturating_sub(store.get_fuel().unwrap_or(0));
        let memory_refused = store.data().limiter.memory_refused;
        let captured = &mut store.data_mut().logs;
        let mut outcome = match result {
            Ok(Ok(token)) => {
                let mut notes = Vec::new();
                let outcome = issued(token, limits, &mut notes);
                // Notes name what the rule returned: redacted and capped like its console.
                for note in notes {
                    captured.push(note.level, note.message);
                }
                outcome
            }
            Ok(Err(error)) => decided(error),
            Err(trap) => Outcome::Failed {
                failure: classify_trap(&trap, memory_refused, limits.fuel, limits.deadline),
            },
        };
        // Whatever of the outcome reaches a client or a log is redacted here, once.
        captured.settle(&mut outcome);
        let (logs, truncated) = captured.take();
        drop(store);
        Execution {
            outcome,
            logs,
            truncated,
            fuel_used,
            duration: started.elapsed(),
        }
    }
}

fn issued(token: AccessToken, limits: &Limits, notes: &mut Vec<LogLine>) -> Outcome {
    let claims = token.custom_claims.into_iter().map(|c| (c.name, c.value));
    match policy::rule_token(token.scope, claims, limits.max_claims_bytes, notes) {
        Ok(token) => Outcome::Issued { token },
        Err(failure) => Outcome::Failed { failure },
    }
}

fn decided(error: RuleError) -> Outcome {
    let denial = |code, message| Outcome::Denied {
        denial: Denial { code, message },
    };
    match error {
        RuleError::AccessDenied(m) => denial(DenialCode::AccessDenied, m),
        RuleError::InvalidScope(m) => denial(DenialCode::InvalidScope, m),
        RuleError::InvalidRequest(m) => denial(DenialCode::InvalidRequest, m),
        RuleError::UnauthorizedClient(m) => denial(DenialCode::UnauthorizedClient, m),
        RuleError::ServerError(m) => denial(DenialCode::ServerError, m),
        RuleError::Failure(f) => Outcome::Failed {
            failure: match f.kind {
                FailureKind::OutOfMemory => Failure::MemoryLimit,
                FailureKind::StackOverflow => Failure::StackOverflow,
                FailureKind::NoCallback => Failure::NoCallback,
                FailureKind::InvalidResult => Failure::InvalidResult { message: f.message },
                FailureKind::Exception => Failure::Exception {
                    name: f.name,
                    message: f.message,
                    stack: f.stack,
                },
            },
        },
    }
}

/// A trap as the failure it stands for, reported with the fuel and deadline the trapping
/// store was given (an execution's, or pre-initialization's larger ones).
pub(crate) fn classify_trap(
    error: &wasmtime::Error,
    memory_refused: bool,
    fuel: u64,
    deadline: Duration,
) -> Failure {
    match error.downcast_ref::<Trap>() {
        Some(Trap::OutOfFuel) => Failure::OutOfFuel { limit: fuel },
        Some(Trap::Interrupt) => Failure::Deadline {
            deadline_ms: deadline.as_millis().try_into().unwrap_or(u64::MAX),
        },
        Some(Trap::StackOverflow) => Failure::StackOverflow,
        // A refused memory grow usually surfaces as an abort in the guest's allocator.
        _ if memory_refused => Failure::MemoryLimit,
        Some(trap) => Failure::Trap {
            message: trap.to_string(),
        },
        None => Failure::Trap {
            message: format!("{error:#}"),
        },
    }
}
