//! Per-client token rate limits, and the slowdown of repeated failed client authentication.
//!
//! Token limits are GCRA limiters from `governor`, keyed in its sharded map: a check is one
//! atomic compare-and-swap on the key's cell, so the token path never waits on a lock held
//! by another request. Only authenticated requests count against a client's limit, so
//! nobody can spend a client's allowance without its secret, and its keys are the clients
//! that exist. Failed authentications count per (client_id, address) pair, for every
//! client_id sent (`auth_failures.rs`): an attacker guessing a client's secret from one
//! address is slowed down without locking out the real client at another.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use serde::Deserialize;

use super::auth_failures::AuthFailures;
use crate::store::RateLimit;

const fn non_zero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => NonZeroU32::MIN,
    }
}

/// CONTRACT.md: 50 token requests a second per client, bursts of 100.
pub const DEFAULT_PER_SECOND: NonZeroU32 = non_zero(50);
pub const DEFAULT_BURST: NonZeroU32 = non_zero(100);
/// Ten failed authentications in a row from one address, then one every six seconds.
pub const DEFAULT_AUTH_FAILURE_BURST: NonZeroU32 = non_zero(10);
pub const DEFAULT_AUTH_FAILURES_PER_MINUTE: NonZeroU32 = non_zero(10);
/// (client_id, address) pairs tracked for failed authentications, at most. A pair is
/// forgiven one interval (6 s) after a single failure, so filling the table takes some
/// 17,000 failed requests a second, kept up; honest traffic has a handful of failing pairs.
/// An entry takes about 100 bytes, so the table stays under 10 MB.
pub const DEFAULT_MAX_AUTH_FAILURE_PAIRS: NonZeroU32 = non_zero(100_000);

/// The server-wide limits (`[rate_limit]` in the configuration file).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// `TOKENHOST_RATE_LIMIT_PER_SECOND`: a client's sustained token requests per second,
    /// unless the client has its own `token_rate_limit`.
    pub per_second: NonZeroU32,
    /// `TOKENHOST_RATE_LIMIT_BURST`: how many a client may send at once.
    pub burst: NonZeroU32,
    /// `TOKENHOST_AUTH_FAILURE_BURST`: failed authentications of one client_id (a client's
    /// or not) from one address before that pair is slowed down.
    pub auth_failure_burst: NonZeroU32,
    /// `TOKENHOST_AUTH_FAILURES_PER_MINUTE`: then, how many more it may try per minute.
    pub auth_failures_per_minute: NonZeroU32,
    /// `TOKENHOST_MAX_AUTH_FAILURE_PAIRS`: pairs tracked at most; at the cap, those closest
    /// to being forgiven are forgotten first.
    pub max_auth_failure_pairs: NonZeroU32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            per_second: DEFAULT_PER_SECOND,
            burst: DEFAULT_BURST,
            auth_failure_burst: DEFAULT_AUTH_FAILURE_BURST,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            max_auth_failure_pairs: DEFAULT_MAX_AUTH_FAILURE_PAIRS,
        }
    }
}

type Limiter<K> = DefaultKeyedRateLimiter<K>;

/// The limiters' state; one per process, shared through `AppState`.
pub struct RateLimits {
    clock: DefaultClock,
    /// Clients without a limit of their own share this limiter (each its own key).
    default: Limiter<String>,
    /// One limiter per distinct per-client limit in use, keyed by client like `default`.
    custom: DashMap<RateLimit, Arc<Limiter<String>>>,
    failures: AuthFailures,
    /// The server-wide limit, which `default` enforces on one node.
    server_limit: RateLimit,
    /// The live nodes sharing the clients' limits (1 without a shared store).
    nodes: AtomicUsize,
}

/// A node's share of `limit` among `nodes`: each allows ⌈limit / nodes⌉ (at least 1), so
/// clients spread evenly over the nodes get their whole limit, and a bit more when it
/// does not divide.
pub fn share(limit: RateLimit, nodes: usize) -> RateLimit {
    let nodes = u32::try_from(nodes.max(1)).unwrap_or(u32::MAX);
    let part = |n: NonZeroU32| non_zero(n.get().div_ceil(nodes));
    RateLimit {
        per_second: part(limit.per_second),
        burst: part(limit.burst),
    }
}

fn token_quota(per_second: NonZeroU32, burst: NonZeroU32) -> Quota {
    Quota::per_second(per_second).allow_burst(burst)
}

/// Whole seconds to wait, rounded up and at least 1 (what `Retry-After` carries).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> RateLimits {
        RateLimits {
            clock: DefaultClock::default(),
            default: Limiter::dashmap(token_quota(settings.per_second, settings.burst)),
            custom: DashMap::new(),
            server_limit: RateLimit {
                per_second: settings.per_second,
                burst: settings.burst,
            },
            nodes: AtomicUsize::new(1),
            failures: AuthFailures::new(
                settings.auth_failure_burst.get(),
                Duration::from_secs(60) / settings.auth_failures_per_minute.get(),
                usize::try_from(settings.max_auth_failure_pairs.get()).unwrap_or(usize::MAX),
            ),
        }
    }

    /// Counts one authenticated token request of `client_id`, under its own limit if it has
    /// one; `Err(wait)` when it is over the limit.
    /// With several live nodes, each enforces its share of the limit (`share`).
    pub fn check_token(&self, client_id: &String, own: Option<RateLimit>) -> Result<(), Duration> {
        let nodes = self.nodes.load(Ordering::Relaxed);
        let outcome = match own {
            None if nodes <= 1 => self.default.check_key(client_id),
            own => {
                let limit = share(own.unwrap_or(self.server_limit), nodes);
                let limiter = match self.custom.get(&limit) {
                    Some(limiter) => limiter.clone(),
                    None => self
                        .custom
                        .entry(limit)
                        .or_insert_with(|| {
                            Arc::new(Limiter::dashmap(token_quota(limit.per_second, limit.burst)))
                        })
                        .clone(),
                };
                limiter.check_key(client_id)
            }
        };
        outcome.map_err(|not_until| not_until.wait_time_from(self.clock.now()))
    }

    /// How many live nodes share the limits now. A client's state starts afresh under a new
    /// share (its limiter is another one), so a change of the node count may let through
    /// one more burst.
    pub fn set_nodes(&self, nodes: usize) {
        let before = self.nodes.swap(nodes.max(1), Ordering::Relaxed);
        if before != nodes.max(1) {
            tracing::info!(
                nodes,
                "live nodes changed: each enforces its share of rate limits"
            );
        }
    }

    /// How long `client_id` at `ip` must still wait after too many failed authentications;
    /// `None` if it may try. Any client_id: whether a client has it is not asked.
    pub fn auth_blocked(&self, client_id: &str, ip: IpAddr) -> Option<Duration> {
        self.failures.blocked(client_id, ip)
    }

    /// Records a failed authentication of `client_id` from `ip`; `Some(wait)` when the
    /// answer is to slow down rather than to say the authentication failed.
    pub fn auth_failed(&self, client_id: &str, ip: IpAddr) -> Option<Duration> {
        self.failures.failed(client_id, ip)
    }

    /// Forgets keys whose limiter state is back to full and failing pairs since forgiven,
    /// so memory follows recent traffic rather than every client and address ever seen.
    pub fn maintain(&self) {
        self.default.retain_recent();
        self.default.shrink_to_fit();
        self.custom.retain(|_, limiter| {
            limiter.retain_recent();
            limiter.shrink_to_fit();
            !limiter.is_empty()
        });
        self.failures.sweep();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limit(per_second: u32, burst: u32) -> RateLimit {
        RateLimit {
            per_second: non_zero(per_second),
            burst: non_zero(burst),
        }
    }

    #[test]
    fn nodes_share_a_limit_rounding_up() {
        assert_eq!(share(limit(50, 100), 1), limit(50, 100));
        assert_eq!(share(limit(50, 100), 3), limit(17, 34));
        assert_eq!(share(limit(2, 2), 5), limit(1, 1));
        assert_eq!(share(limit(50, 100), 0), limit(50, 100));
    }

    #[test]
    fn with_three_nodes_a_client_gets_a_third_of_its_burst() {
        let limits = RateLimits::new(RateLimitSettings {
            burst: non_zero(9),
            ..RateLimitSettings::default()
        });
        let a = "a".to_string();
        limits.set_nodes(3);
        for _ in 0..3 {
            assert!(limits.check_token(&a, None).is_ok());
        }
        assert!(limits.check_token(&a, None).is_err());
        let b = "b".to_string();
        for _ in 0..2 {
            assert!(limits.check_token(&b, Some(limit(1, 6))).is_ok());
        }
        assert!(limits.check_token(&b, Some(limit(1, 6))).is_err());
    }

    #[test]
    fn a_client_gets_its_burst_then_waits() {
        let limits = RateLimits::new(RateLimitSettings::default());
        let a = "a".to_string();
        let b = "b".to_string();
        for _ in 0..3 {
            assert!(limits.check_token(&a, Some(limit(1, 3))).is_ok());
        }
        let wait = limits.check_token(&a, Some(limit(1, 3))).unwrap_err();
        assert!(wait <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(wait), 1);
        // Another client, and the same client under the default, are not affected.
        assert!(limits.check_token(&b, Some(limit(1, 3))).is_ok());
        for _ in 0..100 {
            assert!(limits.check_token(&a, None).is_ok());
        }
        assert!(limits.check_token(&a, None).is_err());
    }

    #[test]
    fn failures_block_one_pair_only() {
        let settings = RateLimitSettings {
            auth_failure_burst: non_zero(2),
            ..RateLimitSettings::default()
        };
        let limits = RateLimits::new(settings);
        let attacker: IpAddr = "203.0.113.1".parse().unwrap();
        let owner: IpAddr = "198.51.100.2".parse().unwrap();
        assert!(limits.auth_blocked("c", attacker).is_none());
        assert!(limits.auth_failed("c", attacker).is_none());
        assert!(limits.auth_failed("c", attacker).is_none());
        let wait = limits.auth_failed("c", attacker).unwrap();
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(6));
        assert!(limits.auth_blocked("c", attacker).is_some());
        assert!(limits.auth_blocked("c", owner).is_none());
        assert!(limits.auth_blocked("other", attacker).is_none());
        limits.maintain();
        assert!(limits.auth_blocked("c", attacker).is_some());
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
    }
}
