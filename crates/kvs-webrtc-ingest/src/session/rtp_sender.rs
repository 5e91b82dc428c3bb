//! One outgoing track in str0m's RTP mode: its m-line, payload type and sequence numbers.
//!
//! str0m numbers packets itself only in its frame mode; in RTP mode the sender does, and str0m
//! takes the extended sequence number as the SRTP packet index (its high bits are the rollover
//! counter), so it counts up in 64 bits from a random start in the lower half of the 16-bit
//! range, as RFC 3550 asks and as str0m's frame mode starts: the peer's SRTP context begins with
//! a rollover counter of zero.

use std::sync::Arc;
use std::time::Instant;

use str0m::media::{Mid, Pt};
use str0m::rtp::{RtpWrite, SeqNo};
use str0m::Rtc;

/// Where one track's packets go, and the number of the next one.
#[derive(Debug)]
pub(crate) struct RtpSender {
    mid: Mid,
    pt: Pt,
    next_seq_no: u64,
    /// Video: the marker bit ends each frame and packets are kept to answer NACKs. Opus (as
    /// str0m's frame mode sends it): no marker (no DTX here, RFC 7587 §4.1) and no
    /// retransmission, a late audio packet being worth nothing.
    is_video: bool,
}

impl RtpSender {
    /// The video track on `mid` with payload type `pt`, numbering from `first_seq_no` (use
    /// [`random_first_seq_no`]).
    pub(crate) fn video(mid: Mid, pt: Pt, first_seq_no: u16) -> Self {
        Self {
            mid,
            pt,
            next_seq_no: u64::from(first_seq_no),
            is_video: true,
        }
    }

    /// The audio track on `mid` with payload type `pt`, numbering from `first_seq_no`.
    pub(crate) fn audio(mid: Mid, pt: Pt, first_seq_no: u16) -> Self {
        Self {
            is_video: false,
            ..Self::video(mid, pt, first_seq_no)
        }
    }

    /// The m-line.
    pub(crate) fn mid(&self) -> Mid {
        self.mid
    }

    /// Queue `payloads` (drained) as one frame at RTP time `rtp_time`, a video frame's last
    /// with the marker bit. False (nothing queued, `payloads` kept) when the m-line has no send stream.
    pub(crate) fn send_frame(
        &mut self,
        rtc: &mut Rtc,
        wallclock: Instant,
        rtp_time: u32,
        payloads: &mut Vec<Arc<[u8]>>,
    ) -> bool {
        let mut api = rtc.direct_api();
        let Some(stream) = api.stream_tx_by_mid(self.mid, None) else {
            return false;
        };
        let last = payloads.len().saturating_sub(1);
        for (i, payload) in payloads.drain(..).enumerate() {
            let seq_no = SeqNo::from(self.next_seq_no);
            self.next_seq_no += 1;
            stream.write_rtp(
                RtpWrite::new(self.pt, seq_no, rtp_time, wallclock, payload)
                    .marker(self.is_video && i == last)
                    .nackable(self.is_video),
            );
        }
        true
    }
}

/// A first sequence number as str0m picks one: random, not 0, below 2^15.
pub(crate) fn random_first_seq_no() -> u16 {
    rand::random_range(1..0x8000)
}
