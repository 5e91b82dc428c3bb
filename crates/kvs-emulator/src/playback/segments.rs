//! The fMP4 pieces an HLS session serves, from stored fragments read back
//! ([`crate::store::clip::read_fragment`]) and written by [`crate::store::fmp4`]: a track's init
//! fragment and one media fragment per stored fragment and track (CMAF: one track per
//! fragment, as the service's per-track media playlists list them). Without a track number both
//! tracks go in one piece.
//!
//! Decode times are the fragment's producer timestamp (ms since the epoch) in each track's
//! timescale, so every fragment of a stream sits on one timeline whatever playlist lists it,
//! and LIVE fragments fetched across playlist reloads line up.

use crate::store::clip::{self, ReadFragment};
use crate::store::fmp4;
use crate::store::FragmentMeta;

use super::hls::{AUDIO_TRACK, VIDEO_TRACK};

/// Which tracks a piece holds: `None` both, else [`VIDEO_TRACK`] or [`AUDIO_TRACK`].
pub(crate) type Track = Option<u8>;

/// Why a piece cannot be made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SegmentError {
    /// The fragment has no H.264 track with codec private data.
    #[error("the fragment has no H.264 track with codec private data")]
    MissingCodecPrivateData,
    /// The stream has no such track (audio asked of a video-only stream).
    #[error("the stream has no track {0}")]
    NoSuchTrack(u8),
}

/// The init fragment for `track` from the codec private data of `read`.
pub(crate) fn init(read: &ReadFragment, track: Track) -> Result<Vec<u8>, SegmentError> {
    let video = read
        .video
        .as_ref()
        .ok_or(SegmentError::MissingCodecPrivateData)?;
    match track {
        None => Ok(fmp4::init_segment(video, read.audio.as_ref())),
        Some(VIDEO_TRACK) => Ok(fmp4::init_segment_of(Some(video), None)),
        Some(AUDIO_TRACK) => match &read.audio {
            Some(audio) => Ok(fmp4::init_segment_of(None, Some(audio))),
            None => Err(SegmentError::NoSuchTrack(AUDIO_TRACK)),
        },
        Some(other) => Err(SegmentError::NoSuchTrack(other)),
    }
}

/// The media fragment of `track` for the stored fragment `meta`, read back as `read`;
/// `sequence` is its `mfhd` sequence number.
pub(crate) fn media(
    read: &ReadFragment,
    meta: &FragmentMeta,
    track: Track,
    sequence: u32,
) -> Result<Vec<u8>, SegmentError> {
    if read.video.is_none() {
        return Err(SegmentError::MissingCodecPrivateData);
    }
    let start_ms = meta.producer_timestamp_ms;
    let video = || {
        clip::run(
            &read.samples,
            fmp4::VIDEO_TRACK_ID,
            fmp4::VIDEO_TIMESCALE,
            start_ms,
            Some(meta.fragment_length_ms),
        )
    };
    let audio = |rate| clip::run(&read.samples, fmp4::AUDIO_TRACK_ID, rate, start_ms, None);
    Ok(match (track, &read.audio) {
        (None, Some(a)) => fmp4::media_segment(sequence, &[video(), audio(a.sample_rate)]),
        (None, None) | (Some(VIDEO_TRACK), _) => fmp4::media_segment(sequence, &[video()]),
        (Some(AUDIO_TRACK), Some(a)) => {
            // A fragment without audio frames still has its place in the audio playlist: an
            // empty run that starts where the fragment does.
            let mut run = audio(a.sample_rate);
            if run.samples.is_empty() {
                run.base_decode_time =
                    (start_ms.max(0) as u128 * u128::from(a.sample_rate) / 1000) as u64;
            }
            fmp4::media_segment_with_empty_runs(sequence, &[run])
        }
        (Some(other), _) => return Err(SegmentError::NoSuchTrack(other)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::clip::StoredSample;
    use crate::store::fmp4::{AudioTrack, VideoTrack};

    fn read(audio: bool) -> ReadFragment {
        let sample = |track, timestamp_ms, keyframe| StoredSample {
            track,
            timestamp_ms,
            keyframe,
            data: vec![0, 0, 0, 1, 0x65],
        };
        ReadFragment {
            video: Some(VideoTrack {
                width: 320,
                height: 240,
                avcc: vec![1, 0x42, 0xc0, 0x1e, 0xff, 0xe0, 0],
            }),
            audio: audio.then(|| AudioTrack {
                audio_specific_config: vec![0x11, 0x90],
                sample_rate: 48_000,
                channels: 2,
            }),
            samples: vec![sample(1, 0, true), sample(2, 0, true), sample(1, 40, false)],
        }
    }

    /// Whether a box type occurs anywhere in `bytes` (a crude scan; `ftyp` names `avc1` as a
    /// brand, so look for `avcC`).
    fn has(bytes: &[u8], kind: &[u8; 4]) -> bool {
        bytes.windows(4).any(|w| w == kind)
    }

    fn meta() -> FragmentMeta {
        FragmentMeta {
            fragment_number: "1".into(),
            producer_timestamp_ms: 1_780_000_000_000,
            server_timestamp_ms: 1_780_000_000_100,
            fragment_length_ms: 80,
            fragment_size_bytes: 1,
        }
    }

    #[test]
    fn each_track_has_an_init_fragment_of_its_own() {
        let both = read(true);
        let video = init(&both, Some(VIDEO_TRACK)).unwrap();
        assert!(has(&video, b"avcC") && !has(&video, b"mp4a"));
        let audio = init(&both, Some(AUDIO_TRACK)).unwrap();
        assert!(has(&audio, b"mp4a") && !has(&audio, b"avcC"));
        let muxed = init(&both, None).unwrap();
        assert!(has(&muxed, b"mp4a") && has(&muxed, b"avcC"));
        assert_eq!(
            init(&read(false), Some(AUDIO_TRACK)),
            Err(SegmentError::NoSuchTrack(2))
        );
        assert_eq!(init(&both, Some(3)), Err(SegmentError::NoSuchTrack(3)));
        let no_video = ReadFragment {
            video: None,
            ..read(true)
        };
        assert_eq!(
            init(&no_video, None),
            Err(SegmentError::MissingCodecPrivateData)
        );
    }

    #[test]
    fn media_fragments_sit_on_the_producer_timeline() {
        let both = read(true);
        let video = media(&both, &meta(), Some(VIDEO_TRACK), 9).unwrap();
        // One traf, decode time = producer ms * 90 kHz.
        assert_eq!(video.windows(4).filter(|w| w == b"traf").count(), 1);
        let tfdt = 1_780_000_000_000u64 * 90;
        assert!(video.windows(8).any(|w| w == tfdt.to_be_bytes()), "tfdt");
        let audio = media(&both, &meta(), Some(AUDIO_TRACK), 9).unwrap();
        let tfdt = 1_780_000_000_000u64 * 48;
        assert!(audio.windows(8).any(|w| w == tfdt.to_be_bytes()), "tfdt");
        let muxed = media(&both, &meta(), None, 9).unwrap();
        assert_eq!(muxed.windows(4).filter(|w| w == b"traf").count(), 2);
        assert_eq!(
            media(&read(false), &meta(), Some(AUDIO_TRACK), 9).unwrap_err(),
            SegmentError::NoSuchTrack(2)
        );
        // A fragment whose audio track has no frame: an empty run at the fragment's start.
        let mut silent = read(true);
        silent.samples.retain(|s| s.track == 1);
        let empty = media(&silent, &meta(), Some(AUDIO_TRACK), 9).unwrap();
        assert_eq!(empty.windows(4).filter(|w| w == b"traf").count(), 1);
        let tfdt = 1_780_000_000_000u64 * 48;
        assert!(empty.windows(8).any(|w| w == tfdt.to_be_bytes()), "tfdt");
    }
}
