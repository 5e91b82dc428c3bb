//! When the cached credentials are renewed, sans-IO (time is an input):
//!
//! * credentials are used until their **refresh time**: a margin before they expire (a quarter
//!   of their lifetime, at most 5 minutes) and a random jitter on top (a tenth of the lifetime,
//!   at most a minute), so that a fleet of devices does not come back at the same instant;
//! * between the refresh time and the expiry, a failed refresh keeps the old credentials in
//!   use (the endpoint may be down for a moment) and the next attempt waits a little
//!   ([`RETRY_AFTER_FAILURE`], or less when expiry is closer);
//! * after the expiry only fresh credentials will do: a failed refresh is an error.

use std::time::{Duration, SystemTime};

/// The longest margin kept before the expiry.
pub(crate) const MAX_MARGIN: Duration = Duration::from_secs(300);
/// The longest jitter added to the margin.
pub(crate) const MAX_JITTER: Duration = Duration::from_secs(60);
/// How long after a failed refresh the next one is tried (while the old credentials last).
pub(crate) const RETRY_AFTER_FAILURE: Duration = Duration::from_secs(10);

/// What to do when credentials are asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Hand out the cached credentials.
    UseCached,
    /// Fetch new ones; `fallback`: when that fails, the cached ones are still good.
    Refresh { fallback: bool },
}

/// The cache's timing: see the module docs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Schedule {
    expiry: SystemTime,
    /// No refresh is tried before this.
    next_attempt: SystemTime,
}

impl Schedule {
    /// The schedule of credentials fetched at `fetched` that expire at `expiry`; `jitter` is a
    /// random fraction in `[0, 1)`.
    pub(crate) fn new(fetched: SystemTime, expiry: SystemTime, jitter: f64) -> Self {
        let lifetime = expiry.duration_since(fetched).unwrap_or_default();
        let margin = (lifetime / 4).min(MAX_MARGIN);
        let jitter = (lifetime / 10)
            .min(MAX_JITTER)
            .mul_f64(jitter.clamp(0.0, 1.0));
        let next_attempt = expiry
            .checked_sub(margin + jitter)
            .unwrap_or(fetched)
            .max(fetched);
        Self {
            expiry,
            next_attempt,
        }
    }

    /// What to do at `now`.
    pub(crate) fn decide(&self, now: SystemTime) -> Decision {
        if now < self.next_attempt {
            Decision::UseCached
        } else {
            Decision::Refresh {
                fallback: now < self.expiry,
            }
        }
    }

    /// A refresh failed at `now`: the next one waits (the cached credentials serve meanwhile).
    pub(crate) fn refresh_failed(&mut self, now: SystemTime) {
        let left = self.expiry.duration_since(now).unwrap_or_default();
        self.next_attempt = now + RETRY_AFTER_FAILURE.min(left / 2);
    }

    /// When the next refresh is tried.
    #[cfg(test)]
    pub(crate) fn next_attempt(&self) -> SystemTime {
        self.next_attempt
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    fn t(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + secs)
    }

    #[test]
    fn an_hour_is_refreshed_five_minutes_plus_jitter_before_it_ends() {
        let no_jitter = Schedule::new(t(0), t(3600), 0.0);
        assert_eq!(no_jitter.next_attempt(), t(3300));
        let full_jitter = Schedule::new(t(0), t(3600), 0.999_999);
        let attempt = full_jitter.next_attempt();
        assert!(attempt >= t(3240) && attempt < t(3241), "{attempt:?}");
        assert_eq!(no_jitter.decide(t(3299)), Decision::UseCached);
        assert_eq!(
            no_jitter.decide(t(3300)),
            Decision::Refresh { fallback: true }
        );
        assert_eq!(
            no_jitter.decide(t(3600)),
            Decision::Refresh { fallback: false }
        );
    }

    #[test]
    fn short_lived_credentials_keep_a_quarter_of_their_life() {
        let schedule = Schedule::new(t(0), t(8), 0.0);
        assert_eq!(schedule.next_attempt(), t(6));
        let jittered = Schedule::new(t(0), t(8), 0.5);
        assert!(jittered.next_attempt() < t(6) && jittered.next_attempt() > t(5));
    }

    #[test]
    fn a_failed_refresh_keeps_the_old_credentials_and_waits_before_trying_again() {
        let mut schedule = Schedule::new(t(0), t(3600), 0.0);
        schedule.refresh_failed(t(3300));
        assert_eq!(schedule.decide(t(3305)), Decision::UseCached);
        assert_eq!(
            schedule.decide(t(3310)),
            Decision::Refresh { fallback: true }
        );
        // Close to the expiry the wait shrinks, so the last chances are not slept through.
        schedule.refresh_failed(t(3596));
        assert_eq!(schedule.next_attempt(), t(3598));
        assert_eq!(
            schedule.decide(t(3600) + S),
            Decision::Refresh { fallback: false }
        );
    }

    #[test]
    fn credentials_that_arrive_expired_are_refreshed_at_once() {
        let schedule = Schedule::new(t(10), t(5), 0.3);
        assert_eq!(
            schedule.decide(t(10)),
            Decision::Refresh { fallback: false }
        );
    }
}
