//! Sharing the server's workers between rules.
//!
//! Guests run on the async workers that serve HTTP, inside the request's own task (no
//! thread handoff per token). Two rules keep that safe when a rule is slow or loops:
//! - at every epoch tick a running guest yields, through Tokio's `yield_now`, which resumes
//!   it only after the worker has polled its sockets;
//! - a guest that has run longer than [`FAST_LANE`] must hold a slow-lane permit for each
//!   further tick, and there are fewer permits than workers. Long runners take turns, one
//!   tick each, on at most that many workers, so the rest always serve other requests.
//!
//! Outside Tokio (the CLI, tests, benchmarks) both still work: `yield_now` is then a plain
//! yield and the semaphore needs no runtime.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// How long a guest runs as an ordinary request before it counts as a long runner.
pub(crate) const FAST_LANE: Duration = Duration::from_millis(2);

/// The slow lane's permits, shared by every execution of an engine.
#[derive(Debug, Clone)]
pub(crate) struct SlowLane(Arc<Semaphore>);

impl SlowLane {
    /// One permit fewer than this machine has cores (the server's worker count), at least
    /// one.
    pub(crate) fn for_this_machine() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        SlowLane(Arc::new(Semaphore::new(cores.saturating_sub(1).max(1))))
    }
}

/// What a yielding guest waits on before it runs again.
pub(crate) type Resume = Pin<Box<dyn Future<Output = ()> + Send>>;

/// One execution's place in the lanes: when it started, and the slow-lane permit it holds
/// while it runs as a long runner (released with the store, or at its next tick).
pub(crate) struct Turn {
    started: Instant,
    lane: SlowLane,
    permit: Arc<Mutex<Option<OwnedSemaphorePermit>>>,
}

impl Turn {
    pub(crate) fn new(lane: &SlowLane) -> Self {
        Turn {
            started: Instant::now(),
            lane: lane.clone(),
            permit: Arc::new(Mutex::new(None)),
        }
    }

    /// The wait at an epoch tick: let the worker poll I/O; past the fast lane, also give
    /// the permit back and queue for it again (the semaphore is fair, so long runners
    /// alternate).
    pub(crate) fn at_tick(&self) -> Resume {
        if self.started.elapsed() < FAST_LANE {
            return Box::pin(tokio::task::yield_now());
        }
        drop(self.slot().take());
        let semaphore = self.lane.0.clone();
        let permit = self.permit.clone();
        Box::pin(async move {
            tokio::task::yield_now().await;
            // The semaphore is never closed, so acquiring only ever waits.
            if let Ok(granted) = semaphore.acquire_owned().await {
                *permit.lock().unwrap_or_else(|p| p.into_inner()) = Some(granted);
            }
        })
    }

    fn slot(&self) -> std::sync::MutexGuard<'_, Option<OwnedSemaphorePermit>> {
        self.permit.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_runners_take_turns_on_the_slow_lane() {
        let lane = SlowLane(Arc::new(Semaphore::new(1)));
        let old = Instant::now() - FAST_LANE * 2;
        let first = Turn {
            started: old,
            ..Turn::new(&lane)
        };
        let second = Turn {
            started: old,
            ..Turn::new(&lane)
        };
        futures_executor::block_on(first.at_tick());
        assert!(
            first.slot().is_some(),
            "the first long runner holds the lane"
        );
        assert_eq!(lane.0.available_permits(), 0);
        // The second waits until the first yields at its next tick.
        let mut waiting = second.at_tick();
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        assert!(waiting.as_mut().poll(&mut cx).is_pending());
        let next = first.at_tick();
        assert!(waiting.as_mut().poll(&mut cx).is_ready());
        assert!(second.slot().is_some());
        drop((next, waiting, second));
        assert_eq!(
            lane.0.available_permits(),
            1,
            "a dropped turn frees the lane"
        );
    }

    #[test]
    fn a_young_execution_only_yields() {
        let lane = SlowLane(Arc::new(Semaphore::new(1)));
        let turn = Turn::new(&lane);
        futures_executor::block_on(turn.at_tick());
        assert!(turn.slot().is_none());
        assert_eq!(lane.0.available_permits(), 1);
    }
}
