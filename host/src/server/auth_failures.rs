//! The slowdown of repeated failed client authentication, per (client_id, address), in
//! memory that strangers cannot grow past a hard cap.
//!
//! Every client_id counts, whether a client has it or not: answering an unknown id other
//! than a known one would tell strangers which ids exist. So strangers choose the keys, and
//! the table is bounded twice: an entry's size does not depend on what was sent (the
//! client_id is kept as a keyed hash), and the number of entries is capped. At the cap the
//! pairs that would soon be forgiven anyway go first, so flooding the table to wipe one's
//! own slowdown costs as many failures per flooded pair as the wiped pair had.
//!
//! Each pair is a GCRA cell: the instant its allowance is whole again (its "theoretical
//! arrival time"). A failure moves it one interval later; a pair whose next failure would
//! put it more than `burst` intervals ahead is refused before its secret is looked at.

use std::hash::{BuildHasher, RandomState};
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use dashmap::DashMap;

/// The client_id's hash, and the address (an IPv6 one by its /64). The hash key is random
/// per process, so nobody can aim two ids at one entry; 64 bits make an accidental
/// collision among the capped entries a one-in-a-trillion event, and its effect only a
/// shared slowdown.
type Pair = (u64, IpAddr);

/// The failed-authentication cells of every (client_id, address) pair that failed lately.
pub struct AuthFailures {
    /// Time between failures once the burst is spent.
    interval: Duration,
    /// How far ahead of now a pair's cell may run: `burst` intervals.
    tolerance: Duration,
    cap: usize,
    ids: RandomState,
    /// Per pair, when its allowance is whole again; a cell at or before now is as good as
    /// absent, and swept.
    cells: DashMap<Pair, Instant>,
    /// Held to add a pair, so that racing additions cannot pass the cap together.
    adding: Mutex<()>,
}

impl AuthFailures {
    /// `burst` failures in a row, then one more per `interval`; at most `cap` pairs.
    pub fn new(burst: u32, interval: Duration, cap: usize) -> AuthFailures {
        AuthFailures {
            interval,
            tolerance: interval.saturating_mul(burst),
            cap: cap.max(1),
            ids: RandomState::new(),
            cells: DashMap::new(),
            adding: Mutex::new(()),
        }
    }

    fn pair(&self, client_id: &str, ip: IpAddr) -> Pair {
        (self.ids.hash_one(client_id), subscriber(ip))
    }

    /// How long the pair must still wait before its secret is looked at; `None` if it may
    /// try.
    pub fn blocked(&self, client_id: &str, ip: IpAddr) -> Option<Duration> {
        self.blocked_at(self.pair(client_id, ip), Instant::now())
    }

    /// Records a failed authentication of the pair; `Some(wait)` when the pair had no
    /// failure left to spend (two of its requests raced past [`AuthFailures::blocked`]) or
    /// the table could not make room for it, so the answer is to slow down.
    pub fn failed(&self, client_id: &str, ip: IpAddr) -> Option<Duration> {
        self.failed_at(self.pair(client_id, ip), Instant::now())
    }

    /// Forgets the pairs whose allowance is whole again, so memory follows recent failures.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.cells.retain(|_, cell| *cell > now);
        self.cells.shrink_to_fit();
    }

    /// The wait before a failure of a pair whose cell is `cell` would be allowed.
    fn wait(&self, cell: Instant, now: Instant) -> Option<Duration> {
        let ahead = cell.max(now).saturating_duration_since(now) + self.interval;
        ahead
            .checked_sub(self.tolerance)
            .filter(|wait| !wait.is_zero())
    }

    fn charge(&self, cell: &mut Instant, now: Instant) -> Option<Duration> {
        if let Some(wait) = self.wait(*cell, now) {
            return Some(wait);
        }
        *cell = (*cell).max(now) + self.interval;
        None
    }

    fn blocked_at(&self, pair: Pair, now: Instant) -> Option<Duration> {
        let cell = *self.cells.get(&pair)?;
        self.wait(cell, now)
    }

    fn failed_at(&self, pair: Pair, now: Instant) -> Option<Duration> {
        if let Some(mut cell) = self.cells.get_mut(&pair) {
            return self.charge(&mut cell, now);
        }
        let _adding = self.adding.lock().unwrap_or_else(PoisonError::into_inner);
        if self.cells.len() >= self.cap {
            self.make_room(now);
        }
        if self.cells.len() >= self.cap {
            // Only failures racing this one's room-making kept the table full: answer as the
            // cap would if it had room, slowed down, rather than go over it.
            return Some(self.interval);
        }
        let mut cell = self.cells.entry(pair).or_insert(now);
        self.charge(&mut cell, now)
    }

    /// Makes room for an eighth of the cap at once, so the cost of a pass over the table is
    /// spread over that many additions: first the pairs already forgiven, then those
    /// closest to being forgiven (the fewest recent failures).
    fn make_room(&self, now: Instant) {
        self.cells.retain(|_, cell| *cell > now);
        let keep = self.cap - (self.cap / 8).max(1);
        let mut cells: Vec<Instant> = self.cells.iter().map(|entry| *entry.value()).collect();
        let Some(excess) = cells.len().checked_sub(keep).filter(|n| *n > 0) else {
            return;
        };
        let (_, threshold, _) = cells.select_nth_unstable(excess - 1);
        let threshold = *threshold;
        self.cells.retain(|_, cell| *cell > threshold);
    }
}

/// An IPv6 address counts by its /64, the block one subscriber is given: otherwise stepping
/// through the addresses of one's own block would start a fresh count at every guess.
pub(super) fn subscriber(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => IpAddr::V6(Ipv6Addr::from(u128::from(v6) & (u128::MAX << 64))),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SIX_SECONDS: Duration = Duration::from_secs(6);

    fn addr(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn a_pair_gets_its_burst_then_one_failure_per_interval() {
        let failures = AuthFailures::new(3, SIX_SECONDS, 100);
        let pair = failures.pair("c", addr(1));
        let t0 = Instant::now();
        for _ in 0..3 {
            assert_eq!(failures.blocked_at(pair, t0), None);
            assert_eq!(failures.failed_at(pair, t0), None);
        }
        assert_eq!(failures.blocked_at(pair, t0), Some(SIX_SECONDS));
        assert_eq!(failures.failed_at(pair, t0), Some(SIX_SECONDS));
        let later = t0 + Duration::from_secs(4);
        assert_eq!(
            failures.blocked_at(pair, later),
            Some(Duration::from_secs(2))
        );
        let then = t0 + SIX_SECONDS;
        assert_eq!(failures.blocked_at(pair, then), None);
        assert_eq!(failures.failed_at(pair, then), None);
        assert_eq!(failures.blocked_at(pair, then), Some(SIX_SECONDS));
        // Other ids at that address, and that id at other addresses, are not affected.
        assert_eq!(failures.blocked_at(failures.pair("d", addr(1)), t0), None);
        assert_eq!(failures.blocked_at(failures.pair("c", addr(2)), t0), None);
    }

    #[test]
    fn an_ipv6_block_counts_as_one_address() {
        let failures = AuthFailures::new(1, SIX_SECONDS, 100);
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let t0 = Instant::now();
        assert_eq!(
            failures.failed_at(failures.pair("c", ip("2001:db8:1:2::1")), t0),
            None
        );
        let same_block = failures.pair("c", ip("2001:db8:1:2:ffff:ffff:ffff:ffff"));
        assert!(failures.blocked_at(same_block, t0).is_some());
        let next_block = failures.pair("c", ip("2001:db8:1:3::1"));
        assert_eq!(failures.blocked_at(next_block, t0), None);
    }

    #[test]
    fn the_table_never_passes_its_cap_and_a_flood_wipes_the_idlest_pairs_first() {
        let cap = 1_000;
        let failures = AuthFailures::new(10, SIX_SECONDS, cap);
        let t0 = Instant::now();
        // The guesser's pair spends its burst: blocked.
        let guesser = failures.pair("real-client", addr(7));
        for _ in 0..10 {
            assert_eq!(failures.failed_at(guesser, t0), None);
        }
        assert!(failures.blocked_at(guesser, t0).is_some());
        // Then floods the table with many more distinct ids than it holds, one failure each
        // (what a stranger sending random client_ids does).
        for n in 0..20 * cap {
            let id = format!("unknown-{n}");
            let at = t0 + Duration::from_micros(n as u64);
            assert_eq!(failures.failed_at(failures.pair(&id, addr(7)), at), None);
            assert!(
                failures.cells.len() <= cap,
                "{} pairs after {n}",
                failures.cells.len()
            );
        }
        // The cap held, recent flood pairs are tracked, and the guesser is still blocked.
        assert!(failures.cells.len() > cap / 2);
        assert!(failures.blocked_at(guesser, t0).is_some());
        let last = failures.pair(&format!("unknown-{}", 20 * cap - 1), addr(7));
        assert!(failures.cells.contains_key(&last));
    }

    #[test]
    fn at_the_cap_forgiven_pairs_go_first_and_a_sweep_forgets_them() {
        let failures = AuthFailures::new(1, SIX_SECONDS, 8);
        let t0 = Instant::now();
        for n in 0..8 {
            assert_eq!(failures.failed_at(failures.pair("x", addr(n)), t0), None);
        }
        assert_eq!(failures.cells.len(), 8);
        // Once forgiven (one interval later), they all make room for the next pair.
        let later = t0 + SIX_SECONDS;
        assert_eq!(
            failures.failed_at(failures.pair("x", addr(99)), later),
            None
        );
        assert_eq!(failures.cells.len(), 1);
        failures.sweep();
        assert_eq!(failures.cells.len(), 1);
    }
}
