//! Per-client token rate limits, per-caller management API limits, and the slowdown of
//! repeated failed client authentication.
//!
//! Token limits are GCRA limiters from `governor`, keyed in its sharded map: a check is one
//! atomic compare-and-swap on the key's cell, so the token path never waits on a lock held
//! by another request. Only authenticated requests count against a client's limit, so
//! nobody can spend a client's allowance without its secret, and its keys are the clients
//! that exist. Failed authentications count per (client_id, address) pair, for every
//! client_id sent (`auth_failures.rs`): an attacker guessing a client's secret from one
//! address is slowed down without locking out the real client at another.
//!
//! The management API is limited per verified management client, and per address for
//! requests without a valid token (`management/gate.rs`). Every check tells what is left as
//! an [`Allowance`], which management responses (and token 429s) carry as the original
//! platform's `x-ratelimit-limit`, `x-ratelimit-remaining` and `x-ratelimit-reset` headers.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::http::{HeaderMap, HeaderName, HeaderValue};
use dashmap::DashMap;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::{StateInformationMiddleware, StateSnapshot};
use governor::{DefaultKeyedRateLimiter, NotUntil, Quota};
use serde::Deserialize;

use super::auth_failures::{subscriber, AuthFailures};
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
/// Management requests per caller: enough for a CLI applying a large configuration or a
/// console polling, far below what would load the store.
pub const DEFAULT_MANAGEMENT_PER_SECOND: NonZeroU32 = non_zero(50);
pub const DEFAULT_MANAGEMENT_BURST: NonZeroU32 = non_zero(200);

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
    /// `TOKENHOST_MANAGEMENT_RATE_LIMIT_PER_SECOND`: management API requests per second of
    /// one management client (or, without a valid token, one address).
    pub management_per_second: NonZeroU32,
    /// `TOKENHOST_MANAGEMENT_RATE_LIMIT_BURST`: how many it may send at once.
    pub management_burst: NonZeroU32,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        RateLimitSettings {
            per_second: DEFAULT_PER_SECOND,
            burst: DEFAULT_BURST,
            auth_failure_burst: DEFAULT_AUTH_FAILURE_BURST,
            auth_failures_per_minute: DEFAULT_AUTH_FAILURES_PER_MINUTE,
            max_auth_failure_pairs: DEFAULT_MAX_AUTH_FAILURE_PAIRS,
            management_per_second: DEFAULT_MANAGEMENT_PER_SECOND,
            management_burst: DEFAULT_MANAGEMENT_BURST,
        }
    }
}

/// Keyed GCRA limiters that tell what is left after each check.
type Limiter<K> = DefaultKeyedRateLimiter<K, StateInformationMiddleware>;

/// What a caller may still send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// How many requests it may send at once (its burst).
    pub limit: u32,
    /// How many it may send now.
    pub remaining: u32,
    /// How long until its allowance is whole again.
    pub whole_in: Duration,
}

/// A request over its limit: when to retry, and the (spent) allowance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exceeded {
    pub retry_after: Duration,
    pub allowance: Allowance,
}

impl Allowance {
    fn after(snapshot: &StateSnapshot) -> Allowance {
        let quota = snapshot.quota();
        let remaining = snapshot.remaining_burst_capacity();
        let spent = quota.burst_size().get().saturating_sub(remaining);
        Allowance {
            limit: quota.burst_size().get(),
            remaining,
            whole_in: quota.replenish_interval().saturating_mul(spent),
        }
    }

    /// Spent: one more request in `retry_after`, all of them `burst - 1` intervals later.
    fn spent(burst: NonZeroU32, interval: Duration, retry_after: Duration) -> Exceeded {
        Exceeded {
            retry_after,
            allowance: Allowance {
                limit: burst.get(),
                remaining: 0,
                whole_in: retry_after + interval.saturating_mul(burst.get() - 1),
            },
        }
    }

    /// `x-ratelimit-limit`, `x-ratelimit-remaining`, and `x-ratelimit-reset`: the Unix time
    /// (in seconds, rounded up) at which the allowance is whole again.
    pub fn write_headers(&self, headers: &mut HeaderMap) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let reset = now + self.whole_in;
        let reset = reset.as_secs() + u64::from(reset.subsec_nanos() > 0);
        for (name, value) in [
            ("x-ratelimit-limit", u64::from(self.limit)),
            ("x-ratelimit-remaining", u64::from(self.remaining)),
            ("x-ratelimit-reset", reset),
        ] {
            headers.insert(HeaderName::from_static(name), HeaderValue::from(value));
        }
    }
}

/// Who a management request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ManagementCaller {
    /// A verified management client.
    Client(String),
    /// A request without a valid token, by its address (an IPv6 one by its /64).
    Address(IpAddr),
}

impl ManagementCaller {
    pub fn address(ip: IpAddr) -> ManagementCaller {
        ManagementCaller::Address(subscriber(ip))
    }
}

/// The limiters' state; one per process, shared through `AppState`.
pub struct RateLimits {
    clock: DefaultClock,
    /// Clients without a limit of their own share this limiter (each its own key).
    default: Limiter<String>,
    /// One limiter per distinct per-client limit in use, keyed by client like `default`.
    custom: DashMap<RateLimit, Arc<Limiter<String>>>,
    /// Management API callers, under `management_limit`'s share.
    management: DashMap<RateLimit, Arc<Limiter<ManagementCaller>>>,
    management_limit: RateLimit,
    failures: AuthFailures,
    failure_burst: NonZeroU32,
    failure_interval: Duration,
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

fn limiter<K: Clone + Eq + std::hash::Hash>(limit: RateLimit) -> Limiter<K> {
    DefaultKeyedRateLimiter::dashmap(Quota::per_second(limit.per_second).allow_burst(limit.burst))
        .with_middleware::<StateInformationMiddleware>()
}

/// The limiter of `limit` in `limiters`, made on first use.
fn limiter_for<K: Clone + Eq + std::hash::Hash>(
    limiters: &DashMap<RateLimit, Arc<Limiter<K>>>,
    limit: RateLimit,
) -> Arc<Limiter<K>> {
    if let Some(limiter) = limiters.get(&limit) {
        return limiter.clone();
    }
    limiters
        .entry(limit)
        .or_insert_with(|| Arc::new(limiter(limit)))
        .clone()
}

/// Forgets the keys whose allowance is whole again, and limiters left with none.
fn retain_recent<K: Clone + Eq + std::hash::Hash>(limiters: &DashMap<RateLimit, Arc<Limiter<K>>>) {
    limiters.retain(|_, limiter| {
        limiter.retain_recent();
        limiter.shrink_to_fit();
        !limiter.is_empty()
    });
}

/// Whole seconds to wait, rounded up and at least 1 (what `Retry-After` carries).
pub fn retry_after_secs(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl RateLimits {
    pub fn new(settings: RateLimitSettings) -> RateLimits {
        let failure_interval = Duration::from_secs(60) / settings.auth_failures_per_minute.get();
        RateLimits {
            clock: DefaultClock::default(),
            default: limiter(RateLimit {
                per_second: settings.per_second,
                burst: settings.burst,
            }),
            custom: DashMap::new(),
            management: DashMap::new(),
            management_limit: RateLimit {
                per_second: settings.management_per_second,
                burst: settings.management_burst,
            },
            server_limit: RateLimit {
                per_second: settings.per_second,
                burst: settings.burst,
            },
            nodes: AtomicUsize::new(1),
            failures: AuthFailures::new(
                settings.auth_failure_burst.get(),
                failure_interval,
                usize::try_from(settings.max_auth_failure_pairs.get()).unwrap_or(usize::MAX),
            ),
            failure_burst: settings.auth_failure_burst,
            failure_interval,
        }
    }

    fn exceeded(&self, not_until: &NotUntil<<DefaultClock as Clock>::Instant>) -> Exceeded {
        let quota = not_until.quota();
        Allowance::spent(
            quota.burst_size(),
            quota.replenish_interval(),
            not_until.wait_time_from(self.clock.now()),
        )
    }

    /// Counts one authenticated token request of `client_id`, under its own limit if it has
    /// one; `Err(wait)` when it is over the limit.
    /// With several live nodes, each enforces its share of the limit (`share`).
    pub fn check_token(
        &self,
        client_id: &String,
        own: Option<RateLimit>,
    ) -> Result<Allowance, Exceeded> {
        let nodes = self.nodes.load(Ordering::Relaxed);
        let outcome = match own {
            None if nodes <= 1 => self.default.check_key(client_id),
            own => {
                let limit = share(own.unwrap_or(self.server_limit), nodes);
                limiter_for(&self.custom, limit).check_key(client_id)
            }
        };
        outcome
            .map(|snapshot| Allowance::after(&snapshot))
            .map_err(|not_until| self.exceeded(&not_until))
    }

    /// Counts one management API request of `caller`, under this node's share of the
    /// management limit.
    pub fn check_management(&self, caller: &ManagementCaller) -> Result<Allowance, Exceeded> {
        let limit = share(self.management_limit, self.nodes.load(Ordering::Relaxed));
        limiter_for(&self.management, limit)
            .check_key(caller)
            .map(|snapshot| Allowance::after(&snapshot))
            .map_err(|not_until| self.exceeded(&not_until))
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
    pub fn auth_blocked(&self, client_id: &str, ip: IpAddr) -> Option<Exceeded> {
        self.failures
            .blocked(client_id, ip)
            .map(|wait| self.failures_spent(wait))
    }

    /// Records a failed authentication of `client_id` from `ip`; `Some(wait)` when the
    /// answer is to slow down rather than to say the authentication failed.
    pub fn auth_failed(&self, client_id: &str, ip: IpAddr) -> Option<Exceeded> {
        self.failures
            .failed(client_id, ip)
            .map(|wait| self.failures_spent(wait))
    }

    fn failures_spent(&self, wait: Duration) -> Exceeded {
        Allowance::spent(self.failure_burst, self.failure_interval, wait)
    }

    /// Forgets keys whose limiter state is back to full and failing pairs since forgiven,
    /// so memory follows recent traffic rather than every client and address ever seen.
    pub fn maintain(&self) {
        self.default.retain_recent();
        self.default.shrink_to_fit();
        retain_recent(&self.custom);
        retain_recent(&self.management);
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
        let exceeded = limits.check_token(&a, Some(limit(1, 3))).unwrap_err();
        assert!(exceeded.retry_after <= Duration::from_secs(1));
        assert_eq!(retry_after_secs(exceeded.retry_after), 1);
        assert_eq!(exceeded.allowance.limit, 3);
        assert_eq!(exceeded.allowance.remaining, 0);
        assert!(exceeded.allowance.whole_in > Duration::from_secs(2));
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
        let wait = limits.auth_failed("c", attacker).unwrap().retry_after;
        assert!(wait > Duration::from_secs(1) && wait <= Duration::from_secs(6));
        assert!(limits.auth_blocked("c", attacker).is_some());
        assert!(limits.auth_blocked("c", owner).is_none());
        assert!(limits.auth_blocked("other", attacker).is_none());
        limits.maintain();
        assert!(limits.auth_blocked("c", attacker).is_some());
    }

    #[test]
    fn management_callers_count_apart_and_learn_what_is_left() {
        let limits = RateLimits::new(RateLimitSettings {
            management_per_second: non_zero(1),
            management_burst: non_zero(3),
            ..RateLimitSettings::default()
        });
        let admin = ManagementCaller::Client("admin".into());
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check_management(&admin).unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        let exceeded = limits.check_management(&admin).unwrap_err();
        assert_eq!(exceeded.allowance.limit, 3);
        assert!(exceeded.retry_after <= Duration::from_secs(1));
        // A stranger's address, an IPv6 one by its /64, has an allowance of its own.
        let a = ManagementCaller::address("2001:db8::1".parse().unwrap());
        let b = ManagementCaller::address("2001:db8::2".parse().unwrap());
        assert_eq!(a, b);
        assert_eq!(limits.check_management(&a).unwrap().remaining, 2);
        assert_eq!(limits.check_management(&b).unwrap().remaining, 1);
    }

    #[test]
    fn the_headers_say_when_the_allowance_is_whole() {
        let mut headers = HeaderMap::new();
        let allowance = Allowance {
            limit: 10,
            remaining: 4,
            whole_in: Duration::from_millis(1500),
        };
        allowance.write_headers(&mut headers);
        assert_eq!(headers["x-ratelimit-limit"], "10");
        assert_eq!(headers["x-ratelimit-remaining"], "4");
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let reset: u64 = headers["x-ratelimit-reset"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((now + 2..=now + 3).contains(&reset), "{reset} vs {now}");
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(6)), 6);
    }
}
