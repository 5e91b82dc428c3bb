//! Network impairment of a storage peer's path (issue #25), sans-IO: a seeded, deterministic
//! model of one direction of a link that loses, delays (with jitter), reorders and duplicates
//! datagrams and caps the bandwidth behind a bounded queue, as `netem` with a `tbf` would (the
//! kernels this runs on often have neither). The storage peer's driver pushes every datagram it
//! sends or receives through one [`Link`] per direction and delivers what [`Link::poll`] gives
//! back when it is due; nothing here reads a clock or touches a socket.
//!
//! Armed per channel through the fault API (`IMPAIR`, `CLEAR_IMPAIRMENT`) or
//! [`EmulatorHandle::impair`](crate::EmulatorHandle::impair); it holds until cleared.

use std::collections::BinaryHeap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// What one direction of the path does to datagrams. The default impairs nothing.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct Impairment {
    /// Share of datagrams lost, 0.0 to 1.0.
    pub loss: f64,
    /// Delay added to every datagram, in milliseconds.
    pub delay_ms: u64,
    /// Each datagram's delay varies uniformly by up to this much either way, in milliseconds
    /// (datagrams may then arrive out of order, as on a real path).
    pub jitter_ms: u64,
    /// Share of datagrams held back one more `delayMs + jitterMs` (at least 10 ms), so that
    /// those sent after them arrive first.
    pub reorder: f64,
    /// Share of datagrams delivered twice.
    pub duplicate: f64,
    /// The path's capacity in kilobits per second (`None`: no cap). Datagrams wait in a queue
    /// behind it; what would wait longer than `queueMs` is dropped (a router's tail drop).
    pub bandwidth_kbps: Option<u64>,
    /// The longest a datagram waits behind the bandwidth cap, in milliseconds.
    pub queue_ms: u64,
}

impl Default for Impairment {
    fn default() -> Self {
        Self {
            loss: 0.0,
            delay_ms: 0,
            jitter_ms: 0,
            reorder: 0.0,
            duplicate: 0.0,
            bandwidth_kbps: None,
            queue_ms: 200,
        }
    }
}

/// Why an impairment was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ImpairmentError {
    /// A share outside 0.0 to 1.0.
    #[error("`{0}` must be a share between 0.0 and 1.0")]
    Share(&'static str),
    /// A bandwidth of zero.
    #[error("`bandwidthKbps` must be at least 1")]
    Bandwidth,
    /// A delay beyond a minute.
    #[error("`{0}` must be at most 60000 ms")]
    TooLong(&'static str),
}

impl Impairment {
    /// Checks the values: shares in 0.0..=1.0, a bandwidth of at least 1 kbit/s, times of at
    /// most a minute.
    ///
    /// # Errors
    /// The first value out of range.
    pub fn validate(&self) -> Result<(), ImpairmentError> {
        for (name, share) in [
            ("loss", self.loss),
            ("reorder", self.reorder),
            ("duplicate", self.duplicate),
        ] {
            if !(0.0..=1.0).contains(&share) {
                return Err(ImpairmentError::Share(name));
            }
        }
        if self.bandwidth_kbps == Some(0) {
            return Err(ImpairmentError::Bandwidth);
        }
        for (name, ms) in [
            ("delayMs", self.delay_ms),
            ("jitterMs", self.jitter_ms),
            ("queueMs", self.queue_ms),
        ] {
            if ms > 60_000 {
                return Err(ImpairmentError::TooLong(name));
            }
        }
        Ok(())
    }
}

/// Which way an impairment applies, seen from the device (the ingesting client).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Direction {
    /// Both ways.
    #[default]
    Both,
    /// What the device sends to the storage peer (its media).
    ToStoragePeer,
    /// What the storage peer sends to the device (RTCP feedback, NACKs, STUN answers).
    FromStoragePeer,
}

/// An impairment armed on a channel: what, which way, and the seed of its randomness.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ArmedImpairment {
    /// What the path does.
    pub impairment: Impairment,
    /// Which way.
    pub direction: Direction,
    /// The seed: the same seed and traffic give the same losses.
    pub seed: u64,
}

/// A datagram in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Datagram {
    /// The other end: where it goes (sent) or where it came from (received).
    pub peer: SocketAddr,
    /// Its bytes.
    pub bytes: Vec<u8>,
}

#[derive(Debug, PartialEq, Eq)]
struct InFlight {
    due: Instant,
    /// Order of arrival, to break ties in sending order.
    seq: u64,
    datagram: Datagram,
}

impl Ord for InFlight {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        // A min-heap on (due, seq).
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
}

impl PartialOrd for InFlight {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

/// What one direction of an impaired path did so far (logged when a session on it ends).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LinkCounters {
    /// Datagrams pushed in.
    pub offered: u64,
    /// Lost at random.
    pub lost: u64,
    /// Dropped because the queue behind the bandwidth cap was full.
    pub queue_dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Held back to be reordered.
    pub reordered: u64,
    /// Delivered (sent on, or handed to the storage peer).
    pub delivered: u64,
}

/// One direction of an impaired path.
#[derive(Debug)]
pub(crate) struct Link {
    impairment: Impairment,
    rng: u64,
    in_flight: BinaryHeap<InFlight>,
    seq: u64,
    /// When the bandwidth cap's queue has sent everything pushed so far.
    busy_until: Option<Instant>,
    counters: LinkCounters,
}

/// Datagrams in flight at most: beyond this, the oldest rule (drop what arrives) applies even
/// without a bandwidth cap, so a link never holds memory without bound.
const MAX_IN_FLIGHT: usize = 4096;

impl Link {
    /// A link doing `impairment`, its randomness seeded with `seed`.
    pub(crate) fn new(impairment: Impairment, seed: u64) -> Self {
        Self {
            impairment,
            rng: seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1,
            in_flight: BinaryHeap::new(),
            seq: 0,
            busy_until: None,
            counters: LinkCounters::default(),
        }
    }

    /// A uniform number in 0.0..1.0 (xorshift64*).
    fn uniform(&mut self) -> f64 {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        (self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 11) as f64 / (1u64 << 53) as f64
    }

    fn chance(&mut self, share: f64) -> bool {
        share > 0.0 && self.uniform() < share
    }

    /// A datagram enters the link at `now`.
    pub(crate) fn push(&mut self, now: Instant, datagram: Datagram) {
        self.counters.offered += 1;
        if self.chance(self.impairment.loss) {
            self.counters.lost += 1;
            return;
        }
        // Behind the bandwidth cap: it leaves once those before it have, if the queue allows.
        let mut leaves = now;
        if let Some(kbps) = self.impairment.bandwidth_kbps {
            let start = self.busy_until.map_or(now, |b| b.max(now));
            if start.saturating_duration_since(now)
                > Duration::from_millis(self.impairment.queue_ms)
            {
                self.counters.queue_dropped += 1;
                return;
            }
            let bits = datagram.bytes.len() as u64 * 8;
            let serialization = Duration::from_micros(bits * 1000 / kbps.max(1));
            leaves = start + serialization;
            self.busy_until = Some(leaves);
        }
        if self.in_flight.len() >= MAX_IN_FLIGHT {
            self.counters.queue_dropped += 1;
            return;
        }
        let copies = if self.chance(self.impairment.duplicate) {
            self.counters.duplicated += 1;
            2
        } else {
            1
        };
        for _ in 0..copies {
            let mut due = leaves + self.delay();
            if self.chance(self.impairment.reorder) {
                self.counters.reordered += 1;
                let hold = (self.impairment.delay_ms + self.impairment.jitter_ms).max(10);
                due += Duration::from_millis(hold);
            }
            self.seq += 1;
            self.in_flight.push(InFlight {
                due,
                seq: self.seq,
                datagram: datagram.clone(),
            });
        }
    }

    /// The delay of one datagram: `delayMs` plus a uniform jitter in `-jitterMs..=jitterMs`,
    /// never below zero.
    fn delay(&mut self) -> Duration {
        let base = self.impairment.delay_ms as f64;
        let jitter = self.impairment.jitter_ms as f64;
        let ms = if jitter > 0.0 {
            base + (self.uniform() * 2.0 - 1.0) * jitter
        } else {
            base
        };
        Duration::from_micros((ms.max(0.0) * 1000.0) as u64)
    }

    /// Draw the randomness from `seed` from now on.
    pub(crate) fn reseed(&mut self, seed: u64) {
        self.rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    }

    /// Impair from now on as `impairment` says (the default: not at all); datagrams already in
    /// flight keep their times.
    pub(crate) fn set(&mut self, impairment: Impairment) {
        self.impairment = impairment;
        if impairment.bandwidth_kbps.is_none() {
            self.busy_until = None;
        }
    }

    /// The next datagram due at `now`, if any.
    pub(crate) fn poll(&mut self, now: Instant) -> Option<Datagram> {
        if self.in_flight.peek().is_some_and(|f| f.due <= now) {
            self.counters.delivered += 1;
            return self.in_flight.pop().map(|f| f.datagram);
        }
        None
    }

    /// When the next datagram is due, if any is in flight.
    pub(crate) fn next_due(&self) -> Option<Instant> {
        self.in_flight.peek().map(|f| f.due)
    }

    /// Datagrams in flight now.
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// What the link did so far.
    pub(crate) fn counters(&self) -> LinkCounters {
        self.counters
    }
}

#[cfg(test)]
mod tests;
