//! The limits every rule execution runs under, with CONTRACT.md's defaults.

use std::time::Duration;

use serde::Deserialize;

/// Fuel per execution (roughly one unit per wasm instruction).
pub const DEFAULT_FUEL: u64 = 50_000_000;
/// Guest linear memory cap. The guest's QuickJS heap limit (24 MiB) sits below it.
pub const DEFAULT_MEMORY_BYTES: usize = 32 * 1024 * 1024;
/// Wall-clock deadline for a token request's whole rule chain.
pub const DEFAULT_DEADLINE: Duration = Duration::from_secs(2);
/// The deadline may be raised to this and never above (the original platform's limit).
pub const MAX_DEADLINE: Duration = Duration::from_secs(20);
/// Custom claims per token, as JSON.
pub const DEFAULT_MAX_CLAIMS_BYTES: usize = 102_400;
/// Console output kept per execution.
pub const DEFAULT_MAX_LOG_BYTES: usize = 4 * 1024;
/// A rule's source.
pub const DEFAULT_MAX_SCRIPT_BYTES: usize = 100 * 1024;
/// Executions that may hold an instance at once; more wait for a free slot.
pub const DEFAULT_CONCURRENCY: u32 = 32;

/// Limits of the rule sandbox. Each has a default and may be configured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    pub fuel: u64,
    pub memory_bytes: usize,
    #[serde(with = "millis", rename = "deadline_ms")]
    pub deadline: Duration,
    pub max_claims_bytes: usize,
    pub max_log_bytes: usize,
    pub max_script_bytes: usize,
    pub concurrency: u32,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            fuel: DEFAULT_FUEL,
            memory_bytes: DEFAULT_MEMORY_BYTES,
            deadline: DEFAULT_DEADLINE,
            max_claims_bytes: DEFAULT_MAX_CLAIMS_BYTES,
            max_log_bytes: DEFAULT_MAX_LOG_BYTES,
            max_script_bytes: DEFAULT_MAX_SCRIPT_BYTES,
            concurrency: DEFAULT_CONCURRENCY,
        }
    }
}

/// A limit set to a value tokenhost refuses to run with.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitsError {
    #[error("the rule deadline must be between 1 ms and {max:?}, not {got:?}", max = MAX_DEADLINE)]
    Deadline { got: Duration },
    #[error("{name} must be greater than zero")]
    Zero { name: &'static str },
    #[error("memory_bytes must be at least 4 MiB (the runtime's own image needs it), not {got}")]
    Memory { got: usize },
}

impl Limits {
    pub fn validate(&self) -> Result<(), LimitsError> {
        if self.deadline < Duration::from_millis(1) || self.deadline > MAX_DEADLINE {
            return Err(LimitsError::Deadline { got: self.deadline });
        }
        if self.memory_bytes < 4 * 1024 * 1024 {
            return Err(LimitsError::Memory {
                got: self.memory_bytes,
            });
        }
        for (name, value) in [
            ("fuel", self.fuel),
            ("max_claims_bytes", self.max_claims_bytes as u64),
            ("max_log_bytes", self.max_log_bytes as u64),
            ("max_script_bytes", self.max_script_bytes as u64),
            ("concurrency", u64::from(self.concurrency)),
        ] {
            if value == 0 {
                return Err(LimitsError::Zero { name });
            }
        }
        Ok(())
    }
}

mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_match_the_contract() {
        let limits = Limits::default();
        assert_eq!(limits.validate(), Ok(()));
        assert_eq!(limits.fuel, 50_000_000);
        assert_eq!(limits.max_claims_bytes, 102_400);
    }

    #[test]
    fn deadline_above_twenty_seconds_is_refused() {
        let limits = Limits {
            deadline: Duration::from_secs(21),
            ..Limits::default()
        };
        assert!(matches!(
            limits.validate(),
            Err(LimitsError::Deadline { .. })
        ));
    }
}
