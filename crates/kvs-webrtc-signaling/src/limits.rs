//! The service's per-connection send rates, enforced on our side so nothing is rejected for
//! speed: SDP offers and answers 5 per second, ICE candidates 20 per second.

use std::collections::VecDeque;
use std::time::Duration;

use std::time::Instant;

use crate::message::Action;

/// SendSdpOffer / SendSdpAnswer per connection per second.
pub const SDP_PER_SECOND: u32 = 5;
/// SendIceCandidate per connection per second.
pub const CANDIDATES_PER_SECOND: u32 = 20;

/// At most `limit` sends in any window of [`WINDOW`]: accepted by a service that counts per
/// sliding second and by one that uses a token bucket of the same rate.
#[derive(Debug, Clone)]
pub(crate) struct SlidingWindow {
    limit: usize,
    sent: VecDeque<Instant>,
}

/// A second plus a margin for clock differences between us and the service.
pub(crate) const WINDOW: Duration = Duration::from_millis(1_050);

impl SlidingWindow {
    pub(crate) fn new(limit: u32) -> Self {
        let limit = limit.max(1) as usize;
        Self {
            limit,
            sent: VecDeque::with_capacity(limit),
        }
    }

    /// Record a send at `now` if the window allows it (`None`), else say when it will.
    pub(crate) fn take(&mut self, now: Instant) -> Option<Instant> {
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= WINDOW)
        {
            self.sent.pop_front();
        }
        if self.sent.len() < self.limit {
            self.sent.push_back(now);
            None
        } else {
            self.sent.front().map(|oldest| *oldest + WINDOW)
        }
    }
}

/// One window per rate class.
#[derive(Debug, Clone)]
pub(crate) struct SendRates {
    sdp: SlidingWindow,
    candidates: SlidingWindow,
}

impl SendRates {
    pub(crate) fn new() -> Self {
        Self {
            sdp: SlidingWindow::new(SDP_PER_SECOND),
            candidates: SlidingWindow::new(CANDIDATES_PER_SECOND),
        }
    }

    pub(crate) fn take(&mut self, action: Action, now: Instant) -> Option<Instant> {
        match action {
            Action::SdpOffer | Action::SdpAnswer => self.sdp.take(now),
            Action::IceCandidate => self.candidates.take(now),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_one_second_window_exceeds_the_service_rate() {
        for rate in [SDP_PER_SECOND, CANDIDATES_PER_SECOND] {
            let start = Instant::now();
            let mut window = SlidingWindow::new(rate);
            let mut times = Vec::new();
            let mut now = start;
            while now < start + Duration::from_secs(5) {
                if window.take(now).is_none() {
                    times.push(now);
                }
                now += Duration::from_millis(1);
            }
            for (i, t) in times.iter().enumerate() {
                let in_second = times[i..]
                    .iter()
                    .take_while(|u| **u < *t + Duration::from_secs(1))
                    .count();
                assert!(
                    in_second <= rate as usize,
                    "rate {rate}: {in_second} in 1 s"
                );
            }
            // ... and the whole rate is used: 5 windows of 1.05 s in 5 s.
            assert!(
                times.len() as u32 >= rate * 4,
                "rate {rate}: only {}",
                times.len()
            );
        }
    }

    #[test]
    fn a_refused_take_says_when_to_retry() {
        let start = Instant::now();
        let mut window = SlidingWindow::new(SDP_PER_SECOND);
        for _ in 0..SDP_PER_SECOND {
            assert!(window.take(start).is_none());
        }
        let retry = window.take(start).expect("full");
        assert_eq!(retry, start + WINDOW);
        assert!(window.take(retry - Duration::from_millis(1)).is_some());
        assert!(window.take(retry).is_none());
    }
}
