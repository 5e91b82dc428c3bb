//! A run of stored fragments as one fragmented MP4 ([`super::fmp4`]), as GetClip returns it:
//! the init segment from the first fragment's tracks, then one media segment per fragment.
//!
//! The fragments are read back from the Matroska files the store wrote
//! ([`kvs_media::mkv::MkvWriter`]: finished Segment, Tracks with `V_MPEG4/ISO/AVC` + avcC and
//! `A_AAC` + AudioSpecificConfig, clusters of SimpleBlocks, 1 ms timestamps relative to the
//! fragment's producer start). Decode times count from the first fragment's producer
//! timestamp; a sample lasts until the next one of its track in the fragment, the last video
//! sample until the fragment's end, the last audio sample as long as the one before it (1024
//! samples when alone).

use super::fmp4::{self, AudioTrack, Sample, TrackRun, VideoTrack};
use super::FragmentMeta;

/// Why a fragment file could not be read back.
#[derive(Debug, thiserror::Error)]
#[error("the fragment file cannot be read back as the store wrote it ({0})")]
pub(crate) struct Unreadable(&'static str);

/// One frame of a stored fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StoredSample {
    /// Matroska track number (1 video, 2 audio).
    pub track: u64,
    /// ms from the fragment's start.
    pub timestamp_ms: i64,
    /// Keyframe flag of its block.
    pub keyframe: bool,
    /// The block's payload.
    pub data: Vec<u8>,
}

/// A stored fragment read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReadFragment {
    /// The video track, if the file has one with codec private data.
    pub video: Option<VideoTrack>,
    /// The AAC track, if any.
    pub audio: Option<AudioTrack>,
    /// Every frame, in file order.
    pub samples: Vec<StoredSample>,
}

const UNKNOWN_SIZE: u64 = (1 << 56) - 1;

/// An element at `at`: (id with marker, payload range).
fn element(bytes: &[u8], at: usize) -> Result<(u32, std::ops::Range<usize>), Unreadable> {
    let first = *bytes.get(at).ok_or(Unreadable("truncated"))?;
    let id_len = first.leading_zeros() as usize + 1;
    if id_len > 4 {
        return Err(Unreadable("bad element id"));
    }
    let id_bytes = bytes
        .get(at..at + id_len)
        .ok_or(Unreadable("truncated id"))?;
    let id = id_bytes.iter().fold(0u32, |v, b| (v << 8) | u32::from(*b));
    let size_at = at + id_len;
    let first = *bytes.get(size_at).ok_or(Unreadable("truncated size"))?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 {
        return Err(Unreadable("bad element size"));
    }
    let mut size = u64::from(first) & (0xff >> len);
    for i in 1..len {
        size = (size << 8) | u64::from(*bytes.get(size_at + i).ok_or(Unreadable("truncated"))?);
    }
    let start = size_at + len;
    let end = if size == (1 << (7 * len)) - 1 || size == UNKNOWN_SIZE {
        bytes.len()
    } else {
        start
            .checked_add(size as usize)
            .filter(|&e| e <= bytes.len())
            .ok_or(Unreadable("an element runs past the end"))?
    };
    Ok((id, start..end))
}

/// The children of a master element's payload.
fn children(bytes: &[u8]) -> Result<Vec<(u32, &[u8])>, Unreadable> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let (id, range) = element(bytes, at)?;
        at = range.end;
        out.push((id, &bytes[range]));
    }
    Ok(out)
}

fn uint(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0, |v, b| (v << 8) | u64::from(*b))
}

const SEGMENT: u32 = 0x1853_8067;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const CLUSTER: u32 = 0x1F43_B675;

/// Read a fragment file's tracks and frames.
pub(crate) fn read_fragment(file: &[u8]) -> Result<ReadFragment, Unreadable> {
    let (header, header_range) = element(file, 0)?;
    if header != 0x1A45_DFA3 {
        return Err(Unreadable("no EBML header"));
    }
    let (segment, segment_range) = element(file, header_range.end)?;
    if segment != SEGMENT {
        return Err(Unreadable("no Segment"));
    }
    let mut out = ReadFragment::default();
    for (id, payload) in children(&file[segment_range])? {
        match id {
            TRACKS => {
                for (id, entry) in children(payload)? {
                    if id == TRACK_ENTRY {
                        read_track(entry, &mut out)?;
                    }
                }
            }
            CLUSTER => {
                let mut cluster_ms = 0;
                for (id, v) in children(payload)? {
                    match id {
                        0xE7 => cluster_ms = uint(v) as i64,
                        0xA3 => {
                            if v.len() < 4 || v[0] & 0x80 == 0 {
                                return Err(Unreadable("a SimpleBlock the store did not write"));
                            }
                            out.samples.push(StoredSample {
                                track: u64::from(v[0] & 0x7f),
                                timestamp_ms: cluster_ms
                                    + i64::from(i16::from_be_bytes([v[1], v[2]])),
                                keyframe: v[3] & 0x80 != 0,
                                data: v[4..].to_vec(),
                            });
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

fn read_track(entry: &[u8], out: &mut ReadFragment) -> Result<(), Unreadable> {
    let fields = children(entry)?;
    let field = |id: u32| fields.iter().find(|(i, _)| *i == id).map(|(_, v)| *v);
    let codec = field(0x86).map(String::from_utf8_lossy).unwrap_or_default();
    let private = field(0x63A2).unwrap_or_default().to_vec();
    match codec.as_ref() {
        "V_MPEG4/ISO/AVC" if !private.is_empty() => {
            let video = children(field(0xE0).unwrap_or_default())?;
            let dim = |id| {
                video
                    .iter()
                    .find(|(i, _)| *i == id)
                    .map_or(0, |(_, v)| uint(v))
            };
            out.video = Some(VideoTrack {
                width: dim(0xB0) as u32,
                height: dim(0xBA) as u32,
                avcc: private,
            });
        }
        "A_AAC" if !private.is_empty() => {
            let audio = children(field(0xE1).unwrap_or_default())?;
            let channels = audio
                .iter()
                .find(|(i, _)| *i == 0x9F)
                .map_or(2, |(_, v)| uint(v) as u16);
            let sample_rate =
                fmp4::aac_sample_rate(&private).ok_or(Unreadable("an AAC config without rate"))?;
            out.audio = Some(AudioTrack {
                audio_specific_config: private,
                sample_rate,
                channels,
            });
        }
        _ => {}
    }
    Ok(())
}

/// Why a set of fragments cannot be one clip.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ClipError {
    /// A fragment has no H.264 track with codec private data.
    #[error("fragment {0} has no H.264 track with codec private data")]
    MissingCodecPrivateData(String),
    /// A fragment file is not what the store wrote.
    #[error("fragment {0} cannot be read back ({1})")]
    Unreadable(String, &'static str),
}

/// The newest fragments `stream` keeps under `streams_dir`, as many as one GetClip answer
/// holds (200, 100 MB), as one fragmented MP4; `None` when the stream kept none. For a stopped
/// emulator ([`crate::Stopped::clip`]); a running one serves GetClip.
pub(crate) fn newest_clip(
    streams_dir: &std::path::Path,
    stream: &str,
) -> std::io::Result<Option<Vec<u8>>> {
    let stores = super::StreamStores::new(streams_dir.to_path_buf(), u64::MAX);
    if !stores.has_data(stream) {
        return Ok(None);
    }
    let stored = stores.fragments(stream)?;
    let mut bytes = 0;
    let newest: Vec<_> = stored
        .iter()
        .rev()
        .take(crate::archived_media::MAX_CLIP_FRAGMENTS)
        .take_while(|f| {
            bytes += f.meta.fragment_size_bytes;
            bytes <= crate::archived_media::MAX_MEDIA_BYTES
        })
        .collect();
    if newest.is_empty() {
        return Ok(None);
    }
    let mut files = Vec::with_capacity(newest.len());
    for fragment in newest.into_iter().rev() {
        files.push((fragment.meta.clone(), std::fs::read(&fragment.file)?));
    }
    clip(&files).map(Some).map_err(std::io::Error::other)
}

/// The fragments (their metadata and file bytes, oldest first) as one fragmented MP4.
pub(crate) fn clip(fragments: &[(FragmentMeta, Vec<u8>)]) -> Result<Vec<u8>, ClipError> {
    let Some((first, _)) = fragments.first() else {
        return Ok(Vec::new());
    };
    let origin_ms = first.producer_timestamp_ms;
    let mut init = None;
    let mut segments = Vec::new();
    for (sequence, (meta, file)) in fragments.iter().enumerate() {
        let read = read_fragment(file)
            .map_err(|e| ClipError::Unreadable(meta.fragment_number.clone(), e.0))?;
        let Some(video) = read.video.clone() else {
            return Err(ClipError::MissingCodecPrivateData(
                meta.fragment_number.clone(),
            ));
        };
        let (_, audio) = init
            .get_or_insert_with(|| (video, read.audio.clone()))
            .clone();
        let start_ms = meta.producer_timestamp_ms - origin_ms;
        let end_ms = meta.fragment_length_ms;
        let mut runs = vec![run(
            &read.samples,
            fmp4::VIDEO_TRACK_ID,
            fmp4::VIDEO_TIMESCALE,
            start_ms,
            Some(end_ms),
        )];
        if let Some(audio) = &audio {
            runs.push(run(
                &read.samples,
                fmp4::AUDIO_TRACK_ID,
                audio.sample_rate,
                start_ms,
                None,
            ));
        }
        segments.push(fmp4::media_segment(sequence as u32 + 1, &runs));
    }
    let (video, audio) = init.expect("set by the first fragment");
    let mut out = fmp4::init_segment(&video, audio.as_ref());
    for segment in segments {
        out.extend_from_slice(&segment);
    }
    Ok(out)
}

/// ms to ticks of `timescale`, rounded.
fn ticks(ms: i64, timescale: u32) -> u64 {
    ((ms.max(0) as u128 * u128::from(timescale) + 500) / 1000) as u64
}

/// The samples of `track` in a fragment starting `start_ms` after the clip's origin; the last
/// one ends at `end_ms` (from the fragment's start) if given.
pub(crate) fn run(
    samples: &[StoredSample],
    track: u32,
    timescale: u32,
    start_ms: i64,
    end_ms: Option<i64>,
) -> TrackRun {
    let own: Vec<&StoredSample> = samples
        .iter()
        .filter(|s| s.track == u64::from(track))
        .collect();
    let times: Vec<u64> = own
        .iter()
        .map(|s| ticks(start_ms + s.timestamp_ms, timescale))
        .collect();
    let mut out = Vec::with_capacity(own.len());
    for (i, sample) in own.iter().enumerate() {
        let duration = match (times.get(i + 1), end_ms) {
            (Some(next), _) => next.saturating_sub(times[i]),
            (None, Some(end)) => ticks(start_ms + end, timescale).saturating_sub(times[i]),
            (None, None) if i > 0 => times[i] - times[i - 1],
            (None, None) => 1024,
        };
        out.push(Sample {
            duration: duration.max(1) as u32,
            sync: track == fmp4::AUDIO_TRACK_ID || sample.keyframe,
            data: sample.data.clone(),
        });
    }
    TrackRun {
        track_id: track,
        base_decode_time: times.first().copied().unwrap_or(0),
        samples: out,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(track: u64, timestamp_ms: i64, keyframe: bool) -> StoredSample {
        StoredSample {
            track,
            timestamp_ms,
            keyframe,
            data: vec![1],
        }
    }

    #[test]
    fn durations_come_from_timestamps_in_each_tracks_timescale() {
        let samples = vec![
            sample(1, 0, true),
            sample(2, 0, true),
            sample(1, 40, false),
            sample(2, 21, true),
            sample(1, 80, false),
        ];
        let video = run(&samples, 1, 90_000, 1000, Some(120));
        assert_eq!(video.base_decode_time, 90_000);
        let durations: Vec<u32> = video.samples.iter().map(|s| s.duration).collect();
        assert_eq!(
            durations,
            [3600, 3600, 3600],
            "the last lasts to the fragment's end"
        );
        let sync: Vec<bool> = video.samples.iter().map(|s| s.sync).collect();
        assert_eq!(sync, [true, false, false]);
        let audio = run(&samples, 2, 48_000, 1000, None);
        assert_eq!(audio.base_decode_time, 48_000);
        let durations: Vec<u32> = audio.samples.iter().map(|s| s.duration).collect();
        assert_eq!(durations, [1008, 1008]);
        assert!(audio.samples.iter().all(|s| s.sync));
    }

    #[test]
    fn a_fragment_the_store_wrote_reads_back_with_its_tracks_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.mkv");
        let params = crate::store::fragmenter::test_params();
        let aac = kvs_media::mkv::AacParams {
            audio_specific_config: vec![0x11, 0x90],
            sample_rate: 48_000,
            channels: 2,
        };
        let mut writer = kvs_media::mkv::MkvWriter::create_with_aac(&path, &params, &aac).unwrap();
        writer
            .write_frame(1, 0, 1000, true, &[0, 0, 0, 2, 0x65, 0x88])
            .unwrap();
        writer.write_frame(2, 5, 1000, true, &[0x21, 0x10]).unwrap();
        writer
            .write_frame(1, 40, 1000, false, &[0, 0, 0, 2, 0x41, 0x9a])
            .unwrap();
        writer.finish().unwrap();
        let read = read_fragment(&std::fs::read(&path).unwrap()).unwrap();
        let video = read.video.unwrap();
        assert_eq!((video.width, video.height), (params.width, params.height));
        assert!(video
            .avcc
            .windows(params.sps.len())
            .any(|w| w == params.sps));
        assert_eq!(
            read.audio,
            Some(AudioTrack {
                audio_specific_config: vec![0x11, 0x90],
                sample_rate: 48_000,
                channels: 2
            })
        );
        let got: Vec<(u64, i64, bool)> = read
            .samples
            .iter()
            .map(|s| (s.track, s.timestamp_ms, s.keyframe))
            .collect();
        assert_eq!(got, [(1, 0, true), (2, 5, true), (1, 40, false)]);
        assert_eq!(read.samples[1].data, [0x21, 0x10]);
    }

    #[test]
    fn a_file_the_store_did_not_write_is_refused() {
        for junk in [
            &b""[..],
            b"\x1a\x45\xdf\xa3\x80",
            b"ftyp",
            b"\x1a\x45\xdf\xa3\x80\x1f\x43\xb6\x75\x80",
        ] {
            assert!(read_fragment(junk).is_err(), "{junk:?}");
        }
    }
}
