//! What one rule execution produced: a token, a decision not to issue one, or a failure.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Console output level, as the rule's `console.*` call chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// One line of a rule's console output (or a note tokenhost adds for the rule's author).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LogLine {
    pub level: Level,
    pub message: String,
}

/// The token as a rule shaped it: scopes and custom claims (values as JSON).
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct Token {
    pub scope: Vec<String>,
    /// The custom claims the token would carry.
    #[schema(value_type = Object)]
    pub claims: serde_json::Map<String, serde_json::Value>,
}

/// The OAuth error a rule's decision maps to (CONTRACT.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DenialCode {
    /// `cb(new Error(..))` or a thrown string: 403.
    AccessDenied,
    /// `InvalidScopeError`: 400.
    InvalidScope,
    /// `InvalidRequestError`: 400.
    InvalidRequest,
    /// `UnauthorizedClientError`: 400.
    UnauthorizedClient,
    /// `ServerError`: 500, the rule's message passed on.
    ServerError,
}

impl DenialCode {
    /// The RFC 6749 `error` value.
    pub fn as_str(self) -> &'static str {
        match self {
            DenialCode::AccessDenied => "access_denied",
            DenialCode::InvalidScope => "invalid_scope",
            DenialCode::InvalidRequest => "invalid_request",
            DenialCode::UnauthorizedClient => "unauthorized_client",
            DenialCode::ServerError => "server_error",
        }
    }
}

/// A rule's deliberate refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Denial {
    pub code: DenialCode,
    pub message: String,
}

/// A rule failure: a bug or a limit, never a decision. The server answers 500 with a
/// generic description; the details are for the rule's logs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    #[error("the rule ran out of fuel ({limit} units)")]
    OutOfFuel { limit: u64 },
    #[error("the rule went over its memory limit")]
    MemoryLimit,
    #[error("the rule ran past its deadline of {deadline_ms} ms")]
    Deadline { deadline_ms: u64 },
    #[error("the rule overflowed its stack (runaway recursion?)")]
    StackOverflow,
    #[error("the rule trapped: {message}")]
    Trap { message: String },
    #[error("the rule threw {name}: {message}")]
    Exception {
        name: String,
        message: String,
        stack: Option<String>,
    },
    #[error("rule finished without calling cb")]
    NoCallback,
    #[error("the rule's result is not a valid token: {message}")]
    InvalidResult { message: String },
    #[error("the rule's custom claims take {size} bytes of JSON, over the limit of {limit}")]
    ClaimsTooLarge { size: usize, limit: usize },
}

/// How an execution ended.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Issued { token: Token },
    Denied { denial: Denial },
    Failed { failure: Failure },
}

impl Outcome {
    pub fn token(&self) -> Option<&Token> {
        match self {
            Outcome::Issued { token } => Some(token),
            _ => None,
        }
    }
}

/// One execution's report: outcome, console output, and what it cost.
#[derive(Debug, Clone, Serialize)]
pub struct Execution {
    #[serde(flatten)]
    pub outcome: Outcome,
    pub logs: Vec<LogLine>,
    /// Some of the rule's output was cut to its bounds (the console cap, a failure's
    /// allowances).
    pub truncated: bool,
    pub fuel_used: u64,
    #[serde(rename = "duration_us", serialize_with = "micros")]
    pub duration: Duration,
}

fn micros<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(d.as_micros().try_into().unwrap_or(u64::MAX))
}
