//! The rule engine: JS (or any language's component) compiled to a sandboxed component,
//! executed once per token request under fuel, memory and deadline limits.

mod artifact;
mod bindings;
mod cache;
mod chain;
mod compile;
mod console;
mod engine;
mod execute;
mod inline_wasi;
mod input;
mod lanes;
mod limits;
mod outcome;
mod secrets;
mod snapshot;
mod store;

pub use artifact::{ArtifactError, ArtifactKey};
pub use cache::{
    CacheError, CachedValue, RuleCache, CACHE_DEFAULT_TTL, CACHE_MAX_ENTRIES, CACHE_MAX_KEY_BYTES,
    CACHE_MAX_TTL, CACHE_MAX_VALUE_BYTES,
};
pub use chain::{ChainResult, ChainRule, Step};
pub use compile::{CompileError, CompiledRule};
pub use console::{
    max_kept_output_bytes, max_logs_bytes, rebound, LINE_OVERHEAD, MAX_CAUSE_BYTES,
    MAX_FAILURE_MESSAGE_BYTES, MAX_FAILURE_NAME_BYTES, MAX_STACK_BYTES,
};
pub use engine::{
    EngineError, RuleEngine, CORE_INSTANCES_PER_RULE, MEMORIES_PER_RULE, TABLES_PER_RULE,
};
pub use input::{
    ClientAuthenticationInfo, ClientInfo, DpopInfo, EventFile, RequestInfo, RuleInput, TokenSoFar,
};
pub use limits::*;
pub use outcome::{Denial, DenialCode, Execution, Failure, Level, LogLine, Outcome, Token};
pub use secrets::{RuleSecrets, REDACTED};
pub use snapshot::RULE_RUNTIME;
