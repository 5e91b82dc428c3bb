//! When the driver wakes up, sans-IO: deadlines that may be a little late are moved forward
//! onto a grid of instants shared by every session in the process, so that many sessions wake
//! together, once per grid step, instead of each at its own instants.
//!
//! A wake-up costs far more than the work it does at these rates (a thread is scheduled, the
//! runtime polls its timers and sockets, caches are cold): 50 sessions waking 25 times a second
//! each at their own instants are up to 1,250 wake-ups a second, on the grid at most one per
//! step. What moves:
//!
//! * paced frames and housekeeping (str0m's timers once media flows, TURN refreshes, STUN, the
//!   statistics) may be a little late: their deadlines move forward to the grid instant at or
//!   after them (less than one [`WAKE_STEP`] late; a frame's lateness is like network jitter,
//!   the storage peer orders media by RTP timestamps). Moving frames *back* instead would
//!   shrink the send-ahead window that merges the frames due close together into one
//!   wake-up, and cost more wake-ups than it saves;
//! * what must be on time (ICE and DTLS while connecting, join back-offs: they decide the time
//!   to the first frame) stays where it is.

use std::time::{Duration, Instant};

/// The grid step: how late a flexible deadline may be served.
pub(crate) const WAKE_STEP: Duration = Duration::from_millis(10);

/// The deadlines of one wake-up, by whether they may move (see the module docs).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Deadlines {
    /// Must be kept.
    exact: Option<Instant>,
    /// May be served less than one step late.
    flexible: Option<Instant>,
}

impl Deadlines {
    /// Add a deadline that must be kept.
    pub(crate) fn exact(mut self, at: Option<Instant>) -> Self {
        self.exact = earliest(self.exact, at);
        self
    }

    /// Add a deadline that may be served a little late.
    pub(crate) fn flexible(mut self, at: Option<Instant>) -> Self {
        self.flexible = earliest(self.flexible, at);
        self
    }
}

fn earliest(a: Option<Instant>, b: Option<Instant>) -> Option<Instant> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (x, None) | (None, x) => x,
    }
}

/// Instants `epoch + k * step`; every session of a process uses the same epoch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WakeGrid {
    epoch: Instant,
    step: Duration,
}

impl WakeGrid {
    /// The grid through `epoch` with this `step` (not zero).
    pub(crate) fn new(epoch: Instant, step: Duration) -> Self {
        Self {
            epoch,
            step: step.max(Duration::from_micros(1)),
        }
    }

    /// When to wake for `deadlines` (`None`: nothing to wake for); never before `now`.
    pub(crate) fn wake_at(&self, now: Instant, deadlines: Deadlines) -> Option<Instant> {
        let flexible = deadlines.flexible.map(|at| self.ceil(at));
        earliest(flexible, deadlines.exact).map(|at| at.max(now))
    }

    /// The grid instant at or after `at` (`at` itself before the epoch).
    fn ceil(&self, at: Instant) -> Instant {
        let Some(since) = at.checked_duration_since(self.epoch) else {
            return at;
        };
        let step = self.step.as_nanos();
        let on_grid = since.as_nanos().div_ceil(step) * step;
        self.epoch + Duration::from_nanos(u64::try_from(on_grid).unwrap_or(u64::MAX))
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn flexible_deadlines_move_forward_onto_the_grid_and_exact_ones_stay() {
        let epoch = Instant::now();
        let grid = WakeGrid::new(epoch, 10 * MS);
        let at = epoch + 1237 * MS / 100;
        let flexible = Deadlines::default().flexible(Some(at));
        assert_eq!(grid.wake_at(epoch, flexible), Some(epoch + 20 * MS));
        let exact = Deadlines::default().exact(Some(at));
        assert_eq!(grid.wake_at(epoch, exact), Some(at));
        // On the grid already: nothing moves.
        let on_grid = Deadlines::default().flexible(Some(epoch + 30 * MS));
        assert_eq!(grid.wake_at(epoch, on_grid), Some(epoch + 30 * MS));
    }

    #[test]
    fn the_earliest_deadline_wins_and_none_is_before_now() {
        let epoch = Instant::now();
        let grid = WakeGrid::new(epoch, 10 * MS);
        let now = epoch + 55 * MS;
        let passed = Deadlines::default()
            .flexible(Some(epoch + 41 * MS))
            .exact(Some(epoch + 80 * MS));
        assert_eq!(grid.wake_at(now, passed), Some(now));
        assert_eq!(grid.wake_at(now, Deadlines::default()), None);
        let later = Deadlines::default()
            .flexible(Some(epoch + 61 * MS)) // forward to 70
            .exact(Some(epoch + 65 * MS));
        assert_eq!(grid.wake_at(now, later), Some(epoch + 65 * MS));
        let flexible_first = Deadlines::default()
            .flexible(Some(epoch + 56 * MS)) // forward to 60
            .exact(Some(epoch + 65 * MS));
        assert_eq!(grid.wake_at(now, flexible_first), Some(epoch + 60 * MS));
    }

    /// Two sessions whose frames fall due at unrelated instants wake at the same instants:
    /// what lets one wake-up of the runtime serve both.
    #[test]
    fn sessions_with_unrelated_timing_share_their_wake_ups() {
        let epoch = Instant::now();
        let grid = WakeGrid::new(epoch, 10 * MS);
        let due =
            |offset_us: u64, frame: u64| epoch + Duration::from_micros(offset_us + frame * 40_000);
        let wakes = |offset_us: u64| -> Vec<Instant> {
            (1..=25u64)
                .filter_map(|frame| {
                    let flexible = Deadlines::default().flexible(Some(due(offset_us, frame)));
                    grid.wake_at(epoch, flexible)
                })
                .collect()
        };
        let a = wakes(3_100);
        assert_eq!(a, wakes(7_900), "both on the same grid instants");
        for (frame, wake) in (1..=25u64).zip(&a) {
            let due = due(3_100, frame);
            assert!(
                *wake >= due && *wake - due < 10 * MS,
                "less than a step late"
            );
        }
    }

    #[test]
    fn instants_before_the_epoch_are_kept() {
        let now = Instant::now();
        let grid = WakeGrid::new(now + 100 * MS, 10 * MS);
        let deadlines = Deadlines::default().flexible(Some(now + 5 * MS));
        assert_eq!(grid.wake_at(now, deadlines), Some(now + 5 * MS));
    }
}
