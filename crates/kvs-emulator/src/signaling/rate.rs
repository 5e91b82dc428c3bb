//! Per-socket message rates (SendSdp* 5 TPS, SendIceCandidate 20 TPS): a token bucket with time as
//! input.

use std::time::Instant;

/// A token bucket holding at most `rate` tokens, refilled at `rate` per second.
#[derive(Debug, Clone)]
pub(crate) struct TokenBucket {
    rate: f64,
    tokens: f64,
    last: Option<Instant>,
}

impl TokenBucket {
    pub(crate) fn per_second(rate: u32) -> Self {
        Self {
            rate: f64::from(rate.max(1)),
            tokens: f64::from(rate.max(1)),
            last: None,
        }
    }

    /// Take one token at `now`; false when the rate is exceeded.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        if let Some(last) = self.last {
            let elapsed = now.saturating_duration_since(last).as_secs_f64();
            self.tokens = (self.tokens + elapsed * self.rate).min(self.rate);
        }
        self.last = Some(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn allows_a_burst_of_rate_then_refills() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::per_second(5);
        let taken = (0..8).filter(|_| bucket.try_take(t0)).count();
        assert_eq!(taken, 5);
        assert!(!bucket.try_take(t0 + Duration::from_millis(100)));
        assert!(bucket.try_take(t0 + Duration::from_millis(250)));
        let later = t0 + Duration::from_secs(10);
        assert_eq!((0..8).filter(|_| bucket.try_take(later)).count(), 5);
    }
}
