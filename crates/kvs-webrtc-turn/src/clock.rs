//! turn-client-proto counts time as nanoseconds from an arbitrary origin; this crate's callers
//! pass `std::time::Instant`s (as str0m's do). One origin per allocation converts both ways.

use std::time::{Duration, Instant};

use turn_client_proto::stun::Instant as ProtoInstant;

/// Converts between the caller's instants and the protocol crate's.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    origin: Instant,
}

impl Clock {
    pub(crate) fn new(origin: Instant) -> Self {
        Self { origin }
    }

    pub(crate) fn to_proto(self, at: Instant) -> ProtoInstant {
        let nanos = at.saturating_duration_since(self.origin).as_nanos();
        ProtoInstant::from_nanos(i64::try_from(nanos).unwrap_or(i64::MAX))
    }

    pub(crate) fn to_std(self, at: ProtoInstant) -> Instant {
        self.origin + Duration::from_nanos(u64::try_from(at.as_nanos()).unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instants_round_trip() {
        let origin = Instant::now();
        let clock = Clock::new(origin);
        let later = origin + Duration::from_millis(1234);
        assert_eq!(clock.to_std(clock.to_proto(later)), later);
        assert_eq!(clock.to_proto(origin).as_nanos(), 0);
    }
}
