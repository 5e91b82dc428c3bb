//! The fragments a stream is assembling, as GetMedia streams them before they are stored: each
//! one a Matroska document written as its frames arrive. The document is the one a live
//! Matroska producer writes: an EBML header, a Segment and a Cluster of unknown size (the
//! Matroska way to stream), Info, Tracks (H.264 with avcC, AAC with its AudioSpecificConfig),
//! a SimpleBlock per frame as it arrives, and, once the fragment is stored, a Tags element with
//! its number, timestamps and continuation token ([`super::tagged`]).

use std::collections::VecDeque;

use bytes::Bytes;
use kvs_media::mkv::{AacParams, VideoParams, AUDIO_TRACK, VIDEO_TRACK};

use super::fragmenter::{Fragment, StoredFrame};
use super::FragmentMeta;

/// Stored fragments kept in the live view after they were stored, so that a reader streaming
/// one can finish it.
const KEEP_STORED: usize = 4;

/// A frame of a fragment being assembled.
#[derive(Debug, Clone)]
pub(crate) struct LiveFrame {
    /// `VIDEO_TRACK` or `AUDIO_TRACK`.
    pub track: u64,
    /// Producer timestamp, ms since the epoch.
    pub timestamp_ms: i64,
    /// A keyframe (always for audio).
    pub keyframe: bool,
    /// The payload.
    pub data: Bytes,
}

/// A fragment as it is assembled (then stored).
#[derive(Debug, Clone)]
pub(crate) struct LiveFragment {
    /// Producer timestamp of its keyframe.
    pub producer_start_ms: i64,
    /// Its video parameters.
    pub video: VideoParams,
    /// The AAC track's parameters.
    pub aac: AacParams,
    /// Its frames so far, in the order the fragment keeps them.
    pub frames: Vec<LiveFrame>,
    /// Set once the fragment is stored (its frames are then complete).
    pub stored: Option<FragmentMeta>,
}

/// A stream's fragments in assembly, oldest first, and the last few stored.
#[derive(Debug, Default)]
pub(crate) struct LiveView {
    fragments: VecDeque<LiveFragment>,
}

fn live_frame(frame: &StoredFrame) -> LiveFrame {
    LiveFrame {
        track: frame.track,
        timestamp_ms: frame.timestamp_ms,
        keyframe: frame.keyframe,
        data: Bytes::copy_from_slice(&frame.data),
    }
}

impl LiveView {
    /// The fragments, oldest first.
    pub(crate) fn fragments(&self) -> &VecDeque<LiveFragment> {
        &self.fragments
    }

    /// `fragment` (open or closing) has the frames it has: add those not seen yet. Frames are
    /// only ever appended to a fragment, so what was published is a prefix. Whether any were
    /// new.
    pub(crate) fn publish(&mut self, fragment: &Fragment, aac: &AacParams) -> bool {
        let at = self
            .fragments
            .iter()
            .position(|f| f.producer_start_ms == fragment.producer_start_ms);
        let entry = match at {
            Some(at) => &mut self.fragments[at],
            None => {
                self.fragments.push_back(LiveFragment {
                    producer_start_ms: fragment.producer_start_ms,
                    video: fragment.video.clone(),
                    aac: aac.clone(),
                    frames: Vec::new(),
                    stored: None,
                });
                self.fragments.back_mut().expect("just pushed")
            }
        };
        if entry.stored.is_some() || entry.frames.len() >= fragment.frames.len() {
            return false;
        }
        let new = fragment.frames[entry.frames.len()..].iter().map(live_frame);
        entry.frames.extend(new);
        true
    }

    /// `fragment` was stored as `meta`: its live entry is complete.
    pub(crate) fn stored(&mut self, fragment: &Fragment, meta: &FragmentMeta) {
        if let Some(entry) = self
            .fragments
            .iter_mut()
            .find(|f| f.producer_start_ms == fragment.producer_start_ms && f.stored.is_none())
        {
            if entry.frames.len() < fragment.frames.len() {
                let new = fragment.frames[entry.frames.len()..].iter().map(live_frame);
                entry.frames.extend(new);
            }
            entry.stored = Some(meta.clone());
        }
        while self.fragments.iter().filter(|f| f.stored.is_some()).count() > KEEP_STORED {
            let oldest = self.fragments.iter().position(|f| f.stored.is_some());
            if let Some(oldest) = oldest {
                self.fragments.remove(oldest);
            }
        }
    }
}

fn vint_size(n: u64) -> Vec<u8> {
    // An 8-byte size: simple, and always valid.
    let mut out = vec![0x01];
    out.extend_from_slice(&n.to_be_bytes()[1..]);
    out
}

fn element(id: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut out = id.to_vec();
    out.extend(vint_size(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn uint(id: &[u8], v: u64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

/// The unknown-size marker of an 8-byte EBML size.
const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF];

fn avc_decoder_configuration(sps: &[u8], pps: &[u8]) -> Vec<u8> {
    let mut out = vec![
        1,
        sps.get(1).copied().unwrap_or(66),
        sps.get(2).copied().unwrap_or(0),
        sps.get(3).copied().unwrap_or(30),
        0xff, // 4-byte NAL lengths
        0xe1, // one SPS
    ];
    out.extend((sps.len() as u16).to_be_bytes());
    out.extend_from_slice(sps);
    out.push(1);
    out.extend((pps.len() as u16).to_be_bytes());
    out.extend_from_slice(pps);
    out
}

/// The start of a live fragment's document: EBML header, Segment (unknown size), Info,
/// Tracks, and its Cluster (unknown size) with timecode 0.
pub(crate) fn document_start(fragment: &LiveFragment) -> Vec<u8> {
    let ebml = element(
        &[0x1A, 0x45, 0xDF, 0xA3],
        &[
            uint(&[0x42, 0x86], 1),
            uint(&[0x42, 0xF7], 1),
            uint(&[0x42, 0xF2], 4),
            uint(&[0x42, 0xF3], 8),
            element(&[0x42, 0x82], b"matroska"),
            uint(&[0x42, 0x87], 4),
            uint(&[0x42, 0x85], 2),
        ]
        .concat(),
    );
    let info = element(
        &[0x15, 0x49, 0xA9, 0x66],
        &[
            uint(&[0x2A, 0xD7, 0xB1], 1_000_000),
            element(&[0x4D, 0x80], b"kvs-emulator"),
            element(&[0x57, 0x41], b"kvs-emulator"),
        ]
        .concat(),
    );
    let video = element(
        &[0xAE],
        &[
            uint(&[0xD7], VIDEO_TRACK),
            uint(&[0x73, 0xC5], VIDEO_TRACK),
            uint(&[0x83], 1),
            uint(&[0x9C], 0),
            element(&[0x86], b"V_MPEG4/ISO/AVC"),
            element(
                &[0x63, 0xA2],
                &avc_decoder_configuration(&fragment.video.sps, &fragment.video.pps),
            ),
            element(
                &[0xE0],
                &[
                    uint(&[0xB0], u64::from(fragment.video.width)),
                    uint(&[0xBA], u64::from(fragment.video.height)),
                ]
                .concat(),
            ),
        ]
        .concat(),
    );
    let audio = element(
        &[0xAE],
        &[
            uint(&[0xD7], AUDIO_TRACK),
            uint(&[0x73, 0xC5], AUDIO_TRACK),
            uint(&[0x83], 2),
            uint(&[0x9C], 0),
            element(&[0x86], b"A_AAC"),
            element(&[0x63, 0xA2], &fragment.aac.audio_specific_config),
            element(
                &[0xE1],
                &[
                    element(&[0xB5], &f64::from(fragment.aac.sample_rate).to_be_bytes()),
                    uint(&[0x9F], u64::from(fragment.aac.channels)),
                ]
                .concat(),
            ),
        ]
        .concat(),
    );
    let tracks = element(&[0x16, 0x54, 0xAE, 0x6B], &[video, audio].concat());
    [
        ebml,
        [0x18, 0x53, 0x80, 0x67].to_vec(),
        UNKNOWN_SIZE.to_vec(),
        info,
        tracks,
        [0x1F, 0x43, 0xB6, 0x75].to_vec(),
        UNKNOWN_SIZE.to_vec(),
        uint(&[0xE7], 0),
    ]
    .concat()
}

/// A SimpleBlock of `frame`, timed from the fragment's start (`start_ms`).
pub(crate) fn simple_block(frame: &LiveFrame, start_ms: i64) -> Vec<u8> {
    let relative = (frame.timestamp_ms - start_ms).clamp(i64::from(i16::MIN), i64::from(i16::MAX));
    let mut payload = Vec::with_capacity(frame.data.len() + 4);
    payload.push(0x80 | frame.track as u8);
    payload.extend((relative as i16).to_be_bytes());
    payload.push(if frame.keyframe { 0x80 } else { 0 });
    payload.extend_from_slice(&frame.data);
    element(&[0xA3], &payload)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::fragmenter::test_params;

    fn fragment(start: i64, frames: usize) -> Fragment {
        Fragment {
            producer_start_ms: start,
            server_start_ms: start + 5,
            duration_ms: 0,
            video: test_params(),
            frames: (0..frames)
                .map(|i| StoredFrame {
                    track: VIDEO_TRACK,
                    timestamp_ms: start + 40 * i as i64,
                    keyframe: i == 0,
                    data: vec![i as u8; 3],
                })
                .collect(),
            bytes: 0,
        }
    }

    fn aac() -> AacParams {
        AacParams {
            audio_specific_config: vec![0x11, 0x90],
            sample_rate: 48_000,
            channels: 2,
        }
    }

    fn meta(number: &str) -> FragmentMeta {
        FragmentMeta {
            fragment_number: number.into(),
            producer_timestamp_ms: 0,
            server_timestamp_ms: 0,
            fragment_length_ms: 0,
            fragment_size_bytes: 0,
        }
    }

    #[test]
    fn frames_are_published_once_and_completed_when_stored() {
        let mut view = LiveView::default();
        assert!(view.publish(&fragment(1000, 2), &aac()));
        assert!(!view.publish(&fragment(1000, 2), &aac()), "nothing new");
        assert!(view.publish(&fragment(1000, 5), &aac()));
        assert!(view.publish(&fragment(2000, 1), &aac()));
        assert_eq!(view.fragments().len(), 2);
        assert_eq!(view.fragments()[0].frames.len(), 5);
        view.stored(&fragment(1000, 7), &meta("1"));
        assert_eq!(
            view.fragments()[0].frames.len(),
            7,
            "late frames complete it"
        );
        let number = view.fragments()[0]
            .stored
            .as_ref()
            .map(|m| m.fragment_number.clone());
        assert_eq!(number.as_deref(), Some("1"));
        assert!(
            !view.publish(&fragment(1000, 9), &aac()),
            "a stored one is final"
        );
        for i in 0..KEEP_STORED + 2 {
            let start = 3000 + 1000 * i as i64;
            view.publish(&fragment(start, 1), &aac());
            view.stored(&fragment(start, 1), &meta("n"));
        }
        let stored = view
            .fragments()
            .iter()
            .filter(|f| f.stored.is_some())
            .count();
        assert_eq!(stored, KEEP_STORED, "the oldest stored ones go");
        assert!(view
            .fragments()
            .iter()
            .any(|f| f.producer_start_ms == 2000 && f.stored.is_none()));
    }

    #[test]
    fn a_block_is_timed_from_the_fragment_start() {
        let frame = LiveFrame {
            track: AUDIO_TRACK,
            timestamp_ms: 960,
            keyframe: true,
            data: Bytes::from_static(b"aac"),
        };
        let block = simple_block(&frame, 1000);
        assert_eq!(block[0], 0xA3);
        assert_eq!(
            &block[9..],
            &[0x82, 0xFF, 0xD8, 0x80, b'a', b'a', b'c'],
            "-40 ms"
        );
        let start = document_start(&LiveFragment {
            producer_start_ms: 0,
            video: test_params(),
            aac: aac(),
            frames: Vec::new(),
            stored: None,
        });
        assert_eq!(&start[..4], &[0x1A, 0x45, 0xDF, 0xA3]);
        assert!(start.ends_with(&[0xE7, 0x01, 0, 0, 0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 0, 0, 0]));
    }
}
