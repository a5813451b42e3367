//! Prometheus metrics of the token endpoint and the rules, served as text at `GET /metrics`.
//!
//! Every label has a small fixed set of values (a signing algorithm, an OAuth error code,
//! a rule outcome and its kind), never a client, audience or rule id, so the number of
//! series stays bounded however many clients and rules there are. The children the token
//! path touches on every request are resolved once here, so recording is a few atomic
//! adds: no lock and no label hashing per request.

use std::time::Duration;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
    TextEncoder,
};

use super::state::AppState;
use crate::rules::{Failure, Outcome, Step};
use crate::store::SigningAlg;

/// Why the metrics could not be registered (a programming error: names clash or are
/// invalid).
#[derive(Debug, thiserror::Error)]
#[error("cannot register the metrics: {0}")]
pub struct MetricsError(#[from] prometheus::Error);

/// Seconds, from 100 µs (a cached rule-less token) to 10 s (past the longest deadline).
const LATENCY_BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];
/// Seconds: a rule takes tens of microseconds when well, up to the chain's deadline when not.
const RULE_DURATION_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 20.0,
];

/// The seed rule uses about 150 k units; the default limit is 50 M.
fn fuel_buckets() -> Vec<f64> {
    // 10 k, 25 k, 50 k, 100 k, ... 1 G: three per decade.
    let mut buckets = Vec::new();
    let mut decade = 10_000.0;
    while decade <= 1e9 {
        buckets.extend([decade, decade * 2.5, decade * 5.0]);
        decade *= 10.0;
    }
    buckets
}

/// The server's metrics; one per process, shared through `AppState`.
pub struct Metrics {
    registry: Registry,
    issued: [IntCounter; SigningAlg::ALL.len()],
    refused: IntCounterVec,
    rule_executions: IntCounterVec,
    rule_issued: IntCounter,
    latency_issued: Histogram,
    latency_refused: Histogram,
    rule_duration: Histogram,
    rule_fuel: Histogram,
}

impl Metrics {
    pub fn new() -> Result<Metrics, MetricsError> {
        let registry = Registry::new_custom(Some("tokenhost".into()), None)?;
        let issued_vec = IntCounterVec::new(
            Opts::new(
                "tokens_issued_total",
                "Access tokens issued, by signing algorithm.",
            ),
            &["alg"],
        )?;
        let refused = IntCounterVec::new(
            Opts::new(
                "tokens_refused_total",
                "Token requests refused, by the OAuth error code answered.",
            ),
            &["reason"],
        )?;
        let rule_executions = IntCounterVec::new(
            Opts::new(
                "rule_executions_total",
                "Rule executions by outcome (issued, denied, failed) and kind (the denial's \
                 error code or the failure's kind).",
            ),
            &["outcome", "kind"],
        )?;
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "token_request_duration_seconds",
                "Time to answer a token request, by result (issued or refused).",
            )
            .buckets(LATENCY_BUCKETS.to_vec()),
            &["result"],
        )?;
        let rule_duration = Histogram::with_opts(
            HistogramOpts::new(
                "rule_execution_duration_seconds",
                "Wall-clock time of one rule execution.",
            )
            .buckets(RULE_DURATION_BUCKETS.to_vec()),
        )?;
        let rule_fuel = Histogram::with_opts(
            HistogramOpts::new("rule_fuel_used", "Fuel one rule execution used.")
                .buckets(fuel_buckets()),
        )?;
        registry.register(Box::new(issued_vec.clone()))?;
        registry.register(Box::new(refused.clone()))?;
        registry.register(Box::new(rule_executions.clone()))?;
        registry.register(Box::new(latency.clone()))?;
        registry.register(Box::new(rule_duration.clone()))?;
        registry.register(Box::new(rule_fuel.clone()))?;
        Ok(Metrics {
            issued: SigningAlg::ALL.map(|alg| issued_vec.with_label_values(&[alg.as_str()])),
            rule_issued: rule_executions.with_label_values(&["issued", ""]),
            latency_issued: latency.with_label_values(&["issued"]),
            latency_refused: latency.with_label_values(&["refused"]),
            registry,
            refused,
            rule_executions,
            rule_duration,
            rule_fuel,
        })
    }

    /// A token was signed and sent.
    pub fn token_issued(&self, alg: SigningAlg, elapsed: Duration) {
        let index = SigningAlg::ALL
            .iter()
            .position(|a| *a == alg)
            .unwrap_or_default();
        if let Some(counter) = self.issued.get(index) {
            counter.inc();
        }
        self.latency_issued.observe(elapsed.as_secs_f64());
    }

    /// A token request was answered with the OAuth error `code`.
    pub fn token_refused(&self, code: &'static str, elapsed: Duration) {
        self.refused.with_label_values(&[code]).inc();
        self.latency_refused.observe(elapsed.as_secs_f64());
    }

    /// What each rule of a chain did.
    pub fn rules_executed(&self, steps: &[Step]) {
        for step in steps {
            let execution = &step.execution;
            match &execution.outcome {
                Outcome::Issued { .. } => self.rule_issued.inc(),
                Outcome::Denied { denial } => self
                    .rule_executions
                    .with_label_values(&["denied", denial.code.as_str()])
                    .inc(),
                Outcome::Failed { failure } => self
                    .rule_executions
                    .with_label_values(&["failed", failure_kind(failure)])
                    .inc(),
            }
            self.rule_duration.observe(execution.duration.as_secs_f64());
            // f64 holds every fuel count below 2^53 exactly; the limit is far below.
            self.rule_fuel.observe(execution.fuel_used as f64);
        }
    }

    /// The text exposition format (version 0.0.4).
    pub fn render(&self) -> Result<(String, String), prometheus::Error> {
        let encoder = TextEncoder::new();
        let mut buffer = Vec::new();
        encoder.encode(&self.registry.gather(), &mut buffer)?;
        let text = String::from_utf8(buffer)
            .map_err(|e| prometheus::Error::Msg(format!("metrics text is not UTF-8: {e}")))?;
        Ok((encoder.format_type().to_string(), text))
    }
}

/// The failure's kind, as its serialized `kind` tag spells it.
fn failure_kind(failure: &Failure) -> &'static str {
    match failure {
        Failure::OutOfFuel { .. } => "out_of_fuel",
        Failure::MemoryLimit => "memory_limit",
        Failure::Deadline { .. } => "deadline",
        Failure::StackOverflow => "stack_overflow",
        Failure::Trap { .. } => "trap",
        Failure::Exception { .. } => "exception",
        Failure::NoCallback => "no_callback",
        Failure::InvalidResult { .. } => "invalid_result",
        Failure::ClaimsTooLarge { .. } => "claims_too_large",
    }
}

/// `GET /metrics`: unauthenticated, like `/healthz` (nothing in it names a client).
pub async fn metrics(State(state): State<AppState>) -> Response {
    match state.metrics.render() {
        Ok((content_type, text)) => {
            let mut response = text.into_response();
            if let Ok(value) = HeaderValue::from_str(&content_type) {
                response.headers_mut().insert(header::CONTENT_TYPE, value);
            }
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot render the metrics");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "cannot render the metrics",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_and_histograms_show_in_the_text() {
        let metrics = Metrics::new().unwrap();
        metrics.token_issued(SigningAlg::ES256, Duration::from_micros(300));
        metrics.token_refused("too_many_requests", Duration::from_micros(20));
        let (content_type, text) = metrics.render().unwrap();
        assert!(content_type.starts_with("text/plain"));
        assert!(text.contains("tokenhost_tokens_issued_total{alg=\"ES256\"} 1"));
        assert!(text.contains("tokenhost_tokens_refused_total{reason=\"too_many_requests\"} 1"));
        assert!(
            text.contains("tokenhost_token_request_duration_seconds_count{result=\"issued\"} 1")
        );
    }

    #[test]
    fn fuel_buckets_cover_the_default_limit() {
        let buckets = fuel_buckets();
        assert!(buckets.windows(2).all(|w| w[0] < w[1]));
        assert!(buckets.iter().any(|b| *b >= 50_000_000.0));
    }
}
