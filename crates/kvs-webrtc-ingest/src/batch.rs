//! Datagrams gathered into GSO sends, sans-IO: a video frame leaves str0m as a run of RTP
//! packets of one size (the last may be shorter) from one socket to one destination, which the
//! kernel can take in one `sendmsg` with a `UDP_SEGMENT` size (generic segmentation offload)
//! instead of one system call, one trip through the network stack and one wake-up of the
//! receiver per packet.
//!
//! The driver pushes each datagram, sends the batches this hands out, and calls
//! [`Batcher::finish`] before it waits for anything, so that nothing is held back.

use std::collections::VecDeque;
use std::net::SocketAddr;

/// Datagrams for one GSO send: `contents` is `segments` datagrams of `segment_size` bytes, the
/// last possibly shorter.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Batch {
    pub(crate) source: SocketAddr,
    pub(crate) destination: SocketAddr,
    pub(crate) segment_size: usize,
    pub(crate) segments: usize,
    pub(crate) contents: Vec<u8>,
}

impl Batch {
    fn can_take(
        &self,
        source: SocketAddr,
        destination: SocketAddr,
        len: usize,
        max: usize,
    ) -> bool {
        self.source == source
            && self.destination == destination
            && self.segments < max
            // Only the last segment may be shorter: a batch that has one is closed.
            && self.contents.len() == self.segments * self.segment_size
            && len <= self.segment_size
            && len > 0
    }

    /// The datagrams one by one (for a socket that cannot segment after all).
    pub(crate) fn datagrams(&self) -> impl Iterator<Item = &[u8]> {
        self.contents.chunks(self.segment_size.max(1))
    }
}

/// See the module docs.
#[derive(Debug)]
pub(crate) struct Batcher {
    max_segments: usize,
    open: Option<Batch>,
    ready: VecDeque<Batch>,
}

impl Batcher {
    /// Batches of at most `max_segments` datagrams (1: every datagram alone, for a socket
    /// without GSO).
    pub(crate) fn new(max_segments: usize) -> Self {
        Self {
            max_segments: max_segments.max(1),
            open: None,
            ready: VecDeque::new(),
        }
    }

    /// One datagram to send, after those pushed before it.
    pub(crate) fn push(&mut self, source: SocketAddr, destination: SocketAddr, datagram: &[u8]) {
        if let Some(open) = &mut self.open {
            if open.can_take(source, destination, datagram.len(), self.max_segments) {
                open.contents.extend_from_slice(datagram);
                open.segments += 1;
                return;
            }
        }
        self.finish();
        self.open = Some(Batch {
            source,
            destination,
            segment_size: datagram.len(),
            segments: 1,
            contents: datagram.to_vec(),
        });
    }

    /// Nothing more comes for now: the open batch is ready too.
    pub(crate) fn finish(&mut self) {
        if let Some(open) = self.open.take() {
            self.ready.push_back(open);
        }
    }

    /// The next batch to send.
    pub(crate) fn poll_batch(&mut self) -> Option<Batch> {
        self.ready.pop_front()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn drain(b: &mut Batcher) -> Vec<(u16, usize, usize, usize)> {
        b.finish();
        std::iter::from_fn(|| b.poll_batch())
            .map(|batch| {
                (
                    batch.destination.port(),
                    batch.segment_size,
                    batch.segments,
                    batch.contents.len(),
                )
            })
            .collect()
    }

    #[test]
    fn a_frames_packets_leave_in_one_batch_with_a_shorter_last_one() {
        let mut b = Batcher::new(64);
        for _ in 0..6 {
            b.push(addr(1), addr(9), &[7; 1200]);
        }
        b.push(addr(1), addr(9), &[7; 300]);
        assert_eq!(drain(&mut b), [(9, 1200, 7, 7500)]);
    }

    #[test]
    fn a_batch_ends_at_another_destination_size_source_or_the_limit() {
        let mut b = Batcher::new(3);
        b.push(addr(1), addr(9), &[1; 100]);
        b.push(addr(1), addr(9), &[1; 100]);
        b.push(addr(1), addr(8), &[2; 100]); // another destination
        b.push(addr(1), addr(8), &[2; 120]); // larger: a new batch
        b.push(addr(2), addr(8), &[3; 120]); // another socket
        for _ in 0..4 {
            b.push(addr(2), addr(8), &[3; 120]); // the limit of 3
        }
        b.push(addr(2), addr(8), &[3; 50]); // shorter: closes it
        b.push(addr(2), addr(8), &[3; 50]); // nothing after a short one
        assert_eq!(
            drain(&mut b),
            [
                (9, 100, 2, 200),
                (8, 100, 1, 100),
                (8, 120, 1, 120),
                (8, 120, 3, 360),
                (8, 120, 3, 290),
                (8, 50, 1, 50)
            ]
        );
    }

    #[test]
    fn the_datagrams_of_a_batch_come_back_as_they_were() {
        let mut b = Batcher::new(64);
        let sizes = [900, 900, 900, 17];
        for (i, size) in sizes.iter().enumerate() {
            b.push(addr(1), addr(9), &vec![i as u8; *size]);
        }
        b.finish();
        let batch = b.poll_batch().expect("one batch");
        let back: Vec<Vec<u8>> = batch.datagrams().map(<[u8]>::to_vec).collect();
        let expected: Vec<Vec<u8>> = sizes
            .iter()
            .enumerate()
            .map(|(i, size)| vec![i as u8; *size])
            .collect();
        assert_eq!(back, expected);
    }

    #[test]
    fn without_gso_every_datagram_is_alone() {
        let mut b = Batcher::new(1);
        b.push(addr(1), addr(9), &[1; 100]);
        b.push(addr(1), addr(9), &[1; 100]);
        assert_eq!(drain(&mut b), [(9, 100, 1, 100), (9, 100, 1, 100)]);
    }
}
