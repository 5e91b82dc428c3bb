//! H.264 access units into RTP payloads (RFC 6184, packetization mode 1), sans-IO: what str0m's
//! own packetizer makes, byte for byte, without its costs.
//!
//! str0m runs in RTP mode here (`answer.rs`): the session hands it finished payloads with their
//! sequence numbers (`session/rtp_sender.rs`). Its frame API would packetize for us, but it copies
//! every access unit into an `Arc`, scans it again byte by byte for start codes, copies each
//! packet into a `Vec` and that `Vec` into an `Arc` again: at 50 sessions its packetizing alone
//! took 10.6 % of the sender's CPU samples, its byte scan 8.4 %. Here the NAL units are found with `memchr` ([`kvs_media::h264::NalUnits`]) and
//! each payload is built in its final `Arc` with one copy of its bytes.
//!
//! The rules, as str0m 0.25 applies them (the tests compare against its packetizer):
//! - access unit delimiters are dropped;
//! - an SPS and a PPS are held back and sent together as one STAP-A in front of the next other
//!   NAL unit (if the STAP-A fits; both are forgotten once sent);
//! - a NAL unit that fits the payload limit is sent alone, a longer one in FU-A fragments of the
//!   limit less the two FU bytes, the last one shorter.

use std::sync::Arc;

use kvs_media::h264::{self, NalUnits, NAL_AUD, NAL_PPS, NAL_SPS};

/// The FU-A NAL unit type (RFC 6184 §5.8).
const FU_A: u8 = 28;
/// The FU indicator and FU header in front of each fragment.
const FU_HEADER_LEN: usize = 2;
/// The STAP-A header byte str0m writes: NRI 3 (as for parameter sets), type 24.
const STAP_A_HEADER: u8 = 0x78;
/// The SRTP authentication tag str0m appends (AES-GCM's 16 bytes, its largest).
const SRTP_TAG_LEN: usize = 16;
/// str0m aligns RTP sizes to the AES block.
const SRTP_BLOCK_LEN: usize = 16;

/// The largest RTP payload str0m's packetizer makes for a datagram MTU (`RtcConfig::mtu`): the
/// MTU less the SRTP tag, rounded down to the AES block (1,120 bytes for its default 1,150).
pub(crate) fn payload_limit(mtu: usize) -> usize {
    let rtp = mtu.saturating_sub(SRTP_TAG_LEN);
    rtp - rtp % SRTP_BLOCK_LEN
}

/// Turns access units into RTP payloads; it holds the parameter sets between them.
#[derive(Debug)]
pub(crate) struct H264Packetizer {
    limit: usize,
    /// The SPS waiting for the next other NAL unit (empty: none).
    sps: Vec<u8>,
    /// The PPS waiting for the next other NAL unit (empty: none).
    pps: Vec<u8>,
}

impl H264Packetizer {
    /// Payloads of at most `limit` bytes (see [`payload_limit`]).
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit: limit.max(FU_HEADER_LEN + 1),
            sps: Vec::new(),
            pps: Vec::new(),
        }
    }

    /// Append the payloads of one Annex-B access unit to `out`, in sending order.
    pub(crate) fn packetize(&mut self, access_unit: &[u8], out: &mut Vec<Arc<[u8]>>) {
        for unit in NalUnits::new(access_unit) {
            self.nal_unit(unit, out);
        }
    }

    fn nal_unit(&mut self, unit: &[u8], out: &mut Vec<Arc<[u8]>>) {
        match h264::nal_type(unit) {
            NAL_AUD => return,
            NAL_SPS => return replace(&mut self.sps, unit),
            NAL_PPS => return replace(&mut self.pps, unit),
            _ => {}
        }
        if !self.sps.is_empty() && !self.pps.is_empty() {
            let stap_a_len = 1 + 2 + self.sps.len() + 2 + self.pps.len();
            if stap_a_len <= self.limit {
                out.push(payload(&[
                    &[STAP_A_HEADER],
                    &length_of(&self.sps),
                    &self.sps,
                    &length_of(&self.pps),
                    &self.pps,
                ]));
            }
            self.sps.clear();
            self.pps.clear();
        }
        if unit.len() <= self.limit {
            out.push(Arc::from(unit));
            return;
        }
        let (header, body) = (unit[0], &unit[1..]);
        let indicator = FU_A | (header & 0x60);
        let kind = header & 0x1f;
        let fragments = body.chunks(self.limit - FU_HEADER_LEN);
        let last = fragments.len() - 1;
        for (i, fragment) in fragments.enumerate() {
            let start = if i == 0 { 0x80 } else { 0 };
            let end = if i == last { 0x40 } else { 0 };
            out.push(payload(&[&[indicator, kind | start | end], fragment]));
        }
    }
}

/// A parameter set's 16-bit length in a STAP-A (a longer one is truncated, as str0m does; no
/// SPS or PPS comes near 64 KiB).
fn length_of(set: &[u8]) -> [u8; 2] {
    (set.len() as u16).to_be_bytes()
}

/// Keep a copy of `unit` in `held`, reusing its buffer.
fn replace(held: &mut Vec<u8>, unit: &[u8]) {
    held.clear();
    held.extend_from_slice(unit);
}

/// One payload made of `parts`, allocated once at its final size.
fn payload(parts: &[&[u8]]) -> Arc<[u8]> {
    let len = parts.iter().map(|part| part.len()).sum();
    let mut payload: Arc<[u8]> = std::iter::repeat_n(0, len).collect();
    let bytes = Arc::get_mut(&mut payload).expect("a new Arc has no other owner");
    let mut at = 0;
    for part in parts {
        bytes[at..at + part.len()].copy_from_slice(part);
        at += part.len();
    }
    payload
}

#[cfg(test)]
mod tests {
    use str0m::unversioned::{H264Packetizer as Str0mPacketizer, Packetizer};

    use super::*;

    /// str0m's default datagram MTU.
    const MTU: usize = 1150;

    /// What str0m's packetizer makes of the same access units, in order.
    fn str0m_payloads(access_units: &[&[u8]], mtu_limit: usize) -> Vec<Vec<u8>> {
        let mut theirs = Str0mPacketizer::default();
        access_units
            .iter()
            .flat_map(|au| theirs.packetize(mtu_limit, au).expect("str0m packetizes"))
            .collect()
    }

    fn our_payloads(access_units: &[&[u8]], limit: usize) -> Vec<Vec<u8>> {
        let mut ours = H264Packetizer::new(limit);
        let mut out = Vec::new();
        for au in access_units {
            ours.packetize(au, &mut out);
        }
        out.iter().map(|p| p.to_vec()).collect()
    }

    fn annex_b(units: &[&[u8]]) -> Vec<u8> {
        units
            .iter()
            .flat_map(|u| [0, 0, 0, 1].iter().chain(u.iter()).copied())
            .collect()
    }

    #[test]
    fn the_limit_is_str0ms_for_its_default_mtu() {
        assert_eq!(payload_limit(MTU), 1120);
        assert_eq!(payload_limit(1280), 1264);
        assert_eq!(payload_limit(10), 0);
    }

    #[test]
    fn a_whole_stream_packetizes_as_str0m_does_byte_for_byte() {
        let aus = h264::access_units(kvs_media::sample::H264);
        assert!(aus.len() > 50, "the sample has {} access units", aus.len());
        for limit in [payload_limit(MTU), 200, 37] {
            let theirs = str0m_payloads(&aus, limit);
            let ours = our_payloads(&aus, limit);
            assert!(theirs.len() > aus.len(), "some units are fragmented");
            assert_eq!(ours.len(), theirs.len(), "payloads at limit {limit}");
            for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
                assert_eq!(a, b, "payload {i} at limit {limit}");
            }
        }
    }

    #[test]
    fn fragments_carry_start_and_end_bits_and_rebuild_the_unit() {
        let idr: Vec<u8> = [0x65]
            .into_iter()
            .chain((0..3000).map(|i| i as u8))
            .collect();
        let au = annex_b(&[&idr]);
        let ours = our_payloads(&[&au], 1120);
        assert_eq!(ours.len(), 3, "3000 bytes in fragments of 1118");
        assert_eq!(ours, str0m_payloads(&[&au], 1120));
        let mut rebuilt = vec![(ours[0][0] & 0xe0) | (ours[0][1] & 0x1f)];
        for (i, fragment) in ours.iter().enumerate() {
            assert_eq!(fragment[0], 0x60 | FU_A, "indicator keeps the NRI");
            assert_eq!(fragment[1] & 0x80 != 0, i == 0, "S bit of {i}");
            assert_eq!(fragment[1] & 0x40 != 0, i == 2, "E bit of {i}");
            assert!(fragment.len() <= 1120);
            rebuilt.extend_from_slice(&fragment[2..]);
        }
        assert_eq!(rebuilt, idr);
    }

    #[test]
    fn parameter_sets_go_as_one_stap_a_before_the_next_unit_even_across_access_units() {
        let (sps, pps) = ([0x67, 1, 2, 3].as_slice(), [0x68, 4, 5].as_slice());
        let delimiter = [0x09, 0xf0].as_slice();
        let idr = [0x65, 9, 9].as_slice();
        let first = annex_b(&[delimiter, sps, pps]);
        let second = annex_b(&[delimiter, idr, idr]);
        let ours = our_payloads(&[&first, &second], 1120);
        assert_eq!(
            ours,
            vec![
                vec![0x78, 0, 4, 0x67, 1, 2, 3, 0, 3, 0x68, 4, 5],
                idr.to_vec(),
                idr.to_vec()
            ]
        );
        assert_eq!(ours, str0m_payloads(&[&first, &second], 1120));
    }

    #[test]
    fn a_stap_a_too_long_for_the_limit_is_dropped_as_str0m_drops_it() {
        let sps: Vec<u8> = [0x67].into_iter().chain([7; 40]).collect();
        let au = annex_b(&[&sps, &[0x68, 1], &[0x65, 2]]);
        let ours = our_payloads(&[&au], 40);
        assert_eq!(ours, vec![vec![0x65, 2]]);
        assert_eq!(ours, str0m_payloads(&[&au], 40));
    }

    #[test]
    fn odd_input_matches_str0m_too() {
        let cases: Vec<Vec<u8>> = vec![
            vec![],
            vec![0x41, 1, 2], // no start code: one bare unit
            vec![7, 7, 0, 0, 1, 0x41, 5, 0, 0, 0, 0, 1, 0x41], // junk in front, trailing zeros
            vec![0, 0, 1, 0, 0, 1, 0x41], // an empty unit
        ];
        for au in &cases {
            assert_eq!(
                our_payloads(&[au], 1120),
                str0m_payloads(&[au], 1120),
                "{au:?}"
            );
        }
    }
}
