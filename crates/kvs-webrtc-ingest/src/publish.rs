//! When the statistics are published to the application's watchers, sans-IO: at once when the
//! state changes, otherwise at most every [`PUBLISH_INTERVAL`] while they change, so that a
//! status line is not redrawn (and every watcher woken) for each datagram. Publishing never
//! wakes the driver by itself while something else does (media flows): a change waits for the
//! next wake-up after the interval, and for [`PUBLISH_DEADLINE`] at most. The final
//! statistics are what `stop()` and `wait()` return.

use std::time::{Duration, Instant};

use crate::event::Stats;

/// The shortest time between two publications of the same state.
pub(crate) const PUBLISH_INTERVAL: Duration = Duration::from_millis(250);

/// The longest a change waits to be published when nothing else wakes the driver.
pub(crate) const PUBLISH_DEADLINE: Duration = Duration::from_secs(1);

/// See the module docs.
#[derive(Debug, Default)]
pub(crate) struct StatsPublisher {
    /// The last publication: when, and what.
    published: Option<(Instant, Stats)>,
}

impl StatsPublisher {
    /// Whether `stats` should be published now (it is then taken as published).
    pub(crate) fn poll_publish(&mut self, now: Instant, stats: &Stats) -> bool {
        let due = match &self.published {
            None => true,
            Some((_, last)) if last.state != stats.state => true,
            Some((at, last)) => now >= *at + PUBLISH_INTERVAL && last != stats,
        };
        if due {
            self.published = Some((now, stats.clone()));
        }
        due
    }

    /// The latest a change not yet published must go out (it goes out at any wake-up after
    /// [`PUBLISH_INTERVAL`]).
    pub(crate) fn poll_timeout(&self, stats: &Stats) -> Option<Instant> {
        match &self.published {
            None => None,
            Some((at, last)) => (last != stats).then_some(*at + PUBLISH_DEADLINE),
        }
    }
}

#[cfg(test)]
#[allow(clippy::disallowed_methods)] // tests take their start time from the clock
mod tests {
    use super::*;
    use crate::event::IngestState;

    #[test]
    fn changes_are_published_at_most_every_interval_and_state_changes_at_once() {
        let t0 = Instant::now();
        let mut publisher = StatsPublisher::default();
        let mut stats = Stats::default();
        assert!(publisher.poll_publish(t0, &stats), "the first is published");
        assert_eq!(publisher.poll_timeout(&stats), None, "nothing new");
        // A thousand datagrams' worth of counters within one interval: one publication.
        let mut published = 0;
        for i in 1..=1000u64 {
            stats.video.packets_sent = i;
            let now = t0 + Duration::from_micros(i * 200);
            published += u64::from(publisher.poll_publish(now, &stats));
        }
        assert_eq!(published, 0, "within 200 ms of the first");
        // It does not wake the driver for it before the deadline; a wake-up after the
        // interval publishes it.
        assert_eq!(publisher.poll_timeout(&stats), Some(t0 + PUBLISH_DEADLINE));
        assert!(publisher.poll_publish(t0 + PUBLISH_INTERVAL, &stats));
        assert_eq!(publisher.poll_timeout(&stats), None);
        // A state change goes out at once.
        stats.state = IngestState::Streaming;
        assert!(publisher.poll_publish(t0 + PUBLISH_INTERVAL + Duration::from_millis(1), &stats));
    }

    #[test]
    fn unchanged_statistics_are_not_published_again() {
        let t0 = Instant::now();
        let mut publisher = StatsPublisher::default();
        let stats = Stats::default();
        assert!(publisher.poll_publish(t0, &stats));
        assert!(!publisher.poll_publish(t0 + Duration::from_secs(10), &stats));
    }
}
