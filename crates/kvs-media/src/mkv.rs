//! A small Matroska writer for one H.264 track and one audio track: Opus (the recordings), or
//! AAC (the fragments of the emulator's stream store, as Kinesis Video keeps them).
//!
//! Written here because no well-kept Rust crate muxes H.264 into Matroska: `webm` wraps libwebm and
//! is limited to WebM's codecs (VP8/VP9/AV1), and the pure-Rust Matroska crates are readers or
//! unfinished. The subset needed is small: an EBML header, a Segment, Info, Tracks and Clusters of
//! SimpleBlocks.
//!
//! Each cluster (one group of pictures, at most 30 s) is assembled in memory and written whole,
//! with its real size, when the next one starts; the file is flushed then. The Segment's size
//! stays "unknown" until [`MkvWriter::finish`], so a file cut short by a crash or `kill -9` is
//! playable up to its last complete cluster. `finish` writes the last cluster, Cues (for
//! seeking), a SeekHead pointing at Info, Tracks and Cues (into space reserved at the start),
//! and patches the Segment size and the Duration in place: the finished file has no
//! unknown-sized element. A writer's memory does not grow with the recording's length: Cues
//! point at every cluster up to [`MAX_CUE_POINTS`] clusters, then at every 2nd, 4th, …, evenly
//! spread (`CuePoints`), so a recording of hours holds 4 KiB of them.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

use crate::AudioCodec;

const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
/// Milliseconds per block timestamp unit (TimestampScale = 1 ms).
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// Opus pre-skip the OpusHead announces (the libopus default at 48 kHz).
const OPUS_PRE_SKIP: u16 = 312;
/// A new cluster starts at each keyframe, or once the block offset would leave this range.
const MAX_CLUSTER_SPAN_MS: i64 = 30_000;
/// The most cue points a recording keeps (16 bytes each): at one cluster per second, every
/// cluster of the first 4 minutes has one.
pub const MAX_CUE_POINTS: usize = 256;

/// Where clusters start (time, offset), for Cues, in bounded memory: every cluster gets a
/// point until [`MAX_CUE_POINTS`] are kept; then every other point is dropped and only every
/// 2nd cluster gets one from then on, and so on. The points stay evenly spread over the
/// recording, one per `stride` clusters.
#[derive(Debug)]
struct CuePoints {
    points: Vec<(u64, u64)>,
    /// Clusters per point.
    stride: u64,
    /// Clusters written so far.
    clusters: u64,
}

impl CuePoints {
    fn new() -> Self {
        Self {
            points: Vec::with_capacity(MAX_CUE_POINTS),
            stride: 1,
            clusters: 0,
        }
    }

    /// A cluster starting at `time` (ms) was written at `offset`.
    fn cluster_written(&mut self, time: u64, offset: u64) {
        if self.clusters.is_multiple_of(self.stride) {
            if self.points.len() == MAX_CUE_POINTS {
                let mut index = 0;
                self.points.retain(|_| {
                    index += 1;
                    index % 2 == 1
                });
                self.stride *= 2;
            }
            // Kept points are multiples of the stride, and so is this cluster (MAX_CUE_POINTS
            // is even).
            self.points.push((time, offset));
        }
        self.clusters += 1;
    }
}

/// Track number of the H.264 track.
pub const VIDEO_TRACK: u64 = 1;
/// Track number of the Opus track.
pub const AUDIO_TRACK: u64 = 2;

/// What the Tracks element needs about the video.
#[derive(Debug, Clone)]
pub struct VideoParams {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The sequence parameter set (without start code), for the codec private data.
    pub sps: Vec<u8>,
    /// The picture parameter set (without start code).
    pub pps: Vec<u8>,
}

/// What the Tracks element needs about an AAC audio track (the audio Kinesis Video keeps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AacParams {
    /// The AudioSpecificConfig (ISO/IEC 14496-3), the track's codec private data.
    pub audio_specific_config: Vec<u8>,
    /// Sampling frequency in Hz.
    pub sample_rate: u32,
    /// Channels.
    pub channels: u8,
}

/// Bytes reserved after the Segment header for the SeekHead (three entries fit in 60).
const SEEK_HEAD_SPACE: usize = 80;

/// Writes one recording.
#[derive(Debug)]
pub struct MkvWriter {
    out: BufWriter<File>,
    segment_data_start: u64,
    duration_pos: u64,
    /// Info and Tracks, relative to the segment data.
    info_offset: u64,
    tracks_offset: u64,
    cluster_start_ms: Option<i64>,
    /// The open cluster's children (its Timestamp and blocks), written when it closes.
    cluster: Vec<u8>,
    /// Where the open cluster will be written, relative to the segment data.
    cluster_offset: u64,
    /// (time, cluster offset) of written clusters, for Cues.
    cues: CuePoints,
    last_end_ms: i64,
}

fn vint_size(n: u64) -> Vec<u8> {
    // Smallest length whose all-ones value is reserved for "unknown".
    for len in 1..=8u32 {
        let max = (1u64 << (7 * len)) - 1;
        if n < max {
            let marker = 1u64 << (7 * len);
            let v = n | marker;
            return v.to_be_bytes()[(8 - len as usize)..].to_vec();
        }
    }
    UNKNOWN_SIZE.to_vec()
}

fn id_bytes(id: u32) -> Vec<u8> {
    let bytes = id.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count();
    bytes[skip..].to_vec()
}

fn element(id: u32, payload: &[u8]) -> Vec<u8> {
    let mut out = id_bytes(id);
    out.extend(vint_size(payload.len() as u64));
    out.extend_from_slice(payload);
    out
}

fn uint(id: u32, v: u64) -> Vec<u8> {
    let bytes = v.to_be_bytes();
    let skip = bytes.iter().take_while(|b| **b == 0).count().min(7);
    element(id, &bytes[skip..])
}

fn float(id: u32, v: f64) -> Vec<u8> {
    element(id, &v.to_be_bytes())
}

fn string(id: u32, v: &str) -> Vec<u8> {
    element(id, v.as_bytes())
}

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

fn opus_head() -> Vec<u8> {
    let mut out = b"OpusHead".to_vec();
    out.push(1); // version
    out.push(2); // channels
    out.extend(OPUS_PRE_SKIP.to_le_bytes());
    out.extend(48_000u32.to_le_bytes());
    out.extend(0i16.to_le_bytes());
    out.push(0); // mapping family
    out
}

impl MkvWriter {
    /// Create the file and write everything before the first cluster.
    ///
    /// # Errors
    /// I/O errors; `AlreadyExists` when `path` exists (a recording is never overwritten).
    pub fn create(path: &Path, video: &VideoParams) -> io::Result<Self> {
        Self::create_with_audio(path, video, &opus_track_entry())
    }

    /// [`MkvWriter::create`] with an AAC audio track (`A_AAC`, its AudioSpecificConfig as
    /// codec private data) instead of Opus; its frames are raw AAC access units.
    ///
    /// # Errors
    /// As [`MkvWriter::create`].
    pub fn create_with_aac(path: &Path, video: &VideoParams, aac: &AacParams) -> io::Result<Self> {
        let audio_entry = audio_track_entry(
            "A_AAC",
            &aac.audio_specific_config,
            &[],
            aac.sample_rate,
            aac.channels,
        );
        Self::create_with_audio(path, video, &audio_entry)
    }

    fn create_with_audio(path: &Path, video: &VideoParams, audio_entry: &[u8]) -> io::Result<Self> {
        // Never overwrite: an existing file is an earlier recording (io::ErrorKind::AlreadyExists).
        let mut out = BufWriter::new(OpenOptions::new().write(true).create_new(true).open(path)?);
        let header = [
            uint(0x4286, 1),
            uint(0x42F7, 1),
            uint(0x42F2, 4),
            uint(0x42F3, 8),
            string(0x4282, "matroska"),
            uint(0x4287, 4),
            uint(0x4285, 2),
        ]
        .concat();
        out.write_all(&element(0x1A45_DFA3, &header))?;
        out.write_all(&id_bytes(0x1853_8067))?;
        out.write_all(&UNKNOWN_SIZE)?;
        let segment_data_start = out.stream_position()?;
        out.write_all(&void(SEEK_HEAD_SPACE))?;

        let info_prefix = [
            uint(0x2A_D7B1, TIMESTAMP_SCALE_NS),
            string(0x4D80, "kvs-emulator"),
            string(0x5741, "kvs-emulator storage peer"),
        ]
        .concat();
        let duration = float(0x4489, 0.0);
        let info = [info_prefix.clone(), duration.clone()].concat();
        let info_element = element(0x1549_A966, &info);
        let info_header_len = info_element.len() - info.len();
        let info_pos = out.stream_position()?;
        let info_offset = info_pos - segment_data_start;
        out.write_all(&info_element)?;
        // Position of the 8 float bytes of Duration.
        let duration_pos =
            info_pos + (info_header_len + info_prefix.len() + duration.len() - 8) as u64;

        let video_entry = element(
            0xAE,
            &[
                uint(0xD7, VIDEO_TRACK),
                uint(0x73C5, VIDEO_TRACK),
                uint(0x83, 1),
                uint(0x9C, 0),
                string(0x86, "V_MPEG4/ISO/AVC"),
                element(0x63A2, &avc_decoder_configuration(&video.sps, &video.pps)),
                element(
                    0xE0,
                    &[
                        uint(0xB0, u64::from(video.width)),
                        uint(0xBA, u64::from(video.height)),
                    ]
                    .concat(),
                ),
            ]
            .concat(),
        );
        let tracks_offset = out.stream_position()? - segment_data_start;
        out.write_all(&element(0x1654_AE6B, &[&video_entry, audio_entry].concat()))?;
        out.flush()?;
        let cluster_offset = out.stream_position()? - segment_data_start;
        Ok(Self {
            out,
            segment_data_start,
            duration_pos,
            info_offset,
            tracks_offset,
            cluster_start_ms: None,
            cluster: Vec::new(),
            cluster_offset,
            cues: CuePoints::new(),
            last_end_ms: 0,
        })
    }

    /// Append one frame. Video frames are AVCC (4-byte length prefixes); `end_ms` is when the frame
    /// stops playing, used for the duration.
    pub fn write_frame(
        &mut self,
        track: u64,
        timestamp_ms: i64,
        end_ms: i64,
        keyframe: bool,
        data: &[u8],
    ) -> io::Result<()> {
        let needs_cluster = match self.cluster_start_ms {
            None => true,
            Some(start) => {
                (keyframe && track == VIDEO_TRACK)
                    || !(-MAX_CLUSTER_SPAN_MS..MAX_CLUSTER_SPAN_MS)
                        .contains(&(timestamp_ms - start))
            }
        };
        if needs_cluster {
            self.close_cluster()?;
            let start = timestamp_ms.max(0);
            self.cluster.extend(uint(0xE7, start as u64));
            self.cluster_start_ms = Some(start);
        }
        let relative = (timestamp_ms - self.cluster_start_ms.unwrap_or(0)) as i16;
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | track as u8);
        block.extend(relative.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(data);
        self.cluster.extend(element(0xA3, &block));
        self.last_end_ms = self.last_end_ms.max(end_ms);
        Ok(())
    }

    /// Write the open cluster with its size, remember it for Cues, and flush.
    fn close_cluster(&mut self) -> io::Result<()> {
        let Some(start) = self.cluster_start_ms else {
            return Ok(());
        };
        let cluster = element(0x1F43_B675, &self.cluster);
        self.out.write_all(&cluster)?;
        self.out.flush()?;
        self.cues.cluster_written(start as u64, self.cluster_offset);
        self.cluster_offset += cluster.len() as u64;
        self.cluster.clear();
        self.cluster_start_ms = None;
        Ok(())
    }

    /// Write the last cluster, Cues and the SeekHead, patch Duration and the Segment size,
    /// flush and sync. Returns the duration in ms.
    pub fn finish(mut self) -> io::Result<i64> {
        self.close_cluster()?;
        let cues_offset = self.cluster_offset;
        let points: Vec<u8> = self
            .cues
            .points
            .iter()
            .flat_map(|&(time, offset)| {
                element(
                    0xBB,
                    &[
                        uint(0xB3, time),
                        element(
                            0xB7,
                            &[uint(0xF7, VIDEO_TRACK), uint(0xF1, offset)].concat(),
                        ),
                    ]
                    .concat(),
                )
            })
            .collect();
        let mut seeks = vec![
            seek_entry(0x1549_A966, self.info_offset),
            seek_entry(0x1654_AE6B, self.tracks_offset),
        ];
        if !points.is_empty() {
            self.out.write_all(&element(0x1C53_BB6B, &points))?;
            seeks.push(seek_entry(0x1C53_BB6B, cues_offset));
        }
        self.out.flush()?;
        let end = self.out.stream_position()?;
        let mut seek_head = element(0x114D_9B74, &seeks.concat());
        seek_head.extend(void(SEEK_HEAD_SPACE - seek_head.len()));
        let duration = self.last_end_ms.max(0);
        let file = self.out.get_mut();
        file.seek(SeekFrom::Start(self.segment_data_start))?;
        file.write_all(&seek_head)?;
        file.seek(SeekFrom::Start(self.duration_pos))?;
        file.write_all(&(duration as f64).to_be_bytes())?;
        let segment_size = end - self.segment_data_start;
        let mut size = [0u8; 8];
        size[0] = 0x01;
        size[1..].copy_from_slice(&segment_size.to_be_bytes()[1..]);
        file.seek(SeekFrom::Start(self.segment_data_start - 8))?;
        file.write_all(&size)?;
        file.seek(SeekFrom::Start(end))?;
        file.sync_all()?;
        Ok(duration)
    }
}

/// The Tracks entry of the Opus track (48 kHz stereo, OpusHead as codec private data, its
/// pre-skip as CodecDelay, 80 ms SeekPreRoll).
fn opus_track_entry() -> Vec<u8> {
    let delays = [
        uint(
            0x56AA,
            u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / u64::from(AudioCodec::Opus.clock_rate()),
        ),
        uint(0x56BB, 80_000_000),
    ]
    .concat();
    audio_track_entry(
        AudioCodec::Opus.matroska_codec_id(),
        &opus_head(),
        &delays,
        AudioCodec::Opus.clock_rate(),
        2,
    )
}

/// The Tracks entry of the audio track: codec, codec private data, further elements (`extra`),
/// sampling frequency and channels.
fn audio_track_entry(
    codec_id: &str,
    private: &[u8],
    extra: &[u8],
    sample_rate: u32,
    channels: u8,
) -> Vec<u8> {
    element(
        0xAE,
        &[
            uint(0xD7, AUDIO_TRACK),
            uint(0x73C5, AUDIO_TRACK),
            uint(0x83, 2),
            uint(0x9C, 0),
            string(0x86, codec_id),
            element(0x63A2, private),
            extra.to_vec(),
            element(
                0xE1,
                &[
                    float(0xB5, f64::from(sample_rate)),
                    uint(0x9F, u64::from(channels)),
                ]
                .concat(),
            ),
        ]
        .concat(),
    )
}

/// A Void element of exactly `total` bytes (at least 2), filling reserved space.
fn void(total: usize) -> Vec<u8> {
    // ID (1 byte) + an 8-byte size, so the payload length is simply total - 9.
    let payload = total.saturating_sub(9);
    let mut out = vec![0xEC, 0x01];
    out.extend_from_slice(&(payload as u64).to_be_bytes()[1..]);
    out.resize(9 + payload, 0);
    out
}

/// A SeekHead entry: element `id` at `offset` from the segment data.
fn seek_entry(id: u32, offset: u64) -> Vec<u8> {
    element(
        0x4DBB,
        &[element(0x53AB, &id_bytes(id)), uint(0x53AC, offset)].concat(),
    )
}

/// Annex-B access unit → AVCC (each NAL unit prefixed with its 4-byte length).
pub fn annex_b_to_avcc(units: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::with_capacity(units.iter().map(|u| u.len() + 4).sum());
    for unit in units {
        out.extend((unit.len() as u32).to_be_bytes());
        out.extend_from_slice(unit);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_existing_file_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("session-1-master.mkv");
        std::fs::write(&path, b"an earlier recording").unwrap();
        let video = VideoParams {
            width: 320,
            height: 240,
            sps: vec![0x67, 0x42, 0xe0, 0x1f],
            pps: vec![0x68, 0xce],
        };
        let err = MkvWriter::create(&path, &video).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&path).unwrap(), b"an earlier recording");
    }

    #[test]
    fn sizes_use_the_shortest_vint() {
        assert_eq!(vint_size(0), vec![0x80]);
        assert_eq!(vint_size(126), vec![0xFE]);
        assert_eq!(vint_size(127), vec![0x40, 0x7F]);
        assert_eq!(vint_size(300), vec![0x41, 0x2C]);
    }

    #[test]
    fn uints_are_minimal_big_endian() {
        assert_eq!(uint(0xD7, 1), vec![0xD7, 0x81, 0x01]);
        assert_eq!(
            uint(0x2AD7B1, 1_000_000),
            vec![0x2A, 0xD7, 0xB1, 0x83, 0x0F, 0x42, 0x40]
        );
        assert_eq!(uint(0x9C, 0), vec![0x9C, 0x81, 0x00]);
    }

    /// (id, payload start, payload size or None for unknown) of each element in `data`.
    fn children(data: &[u8]) -> Vec<(u32, usize, Option<usize>)> {
        let mut out = Vec::new();
        let mut i = 0;
        while i < data.len() {
            let id_len = data[i].leading_zeros() as usize + 1;
            let id = data[i..i + id_len]
                .iter()
                .fold(0u32, |a, &b| a << 8 | u32::from(b));
            i += id_len;
            let size_len = data[i].leading_zeros() as usize + 1;
            let mask = 0xffu64 >> size_len;
            let mut size = u64::from(data[i]) & mask;
            let mut all_ones = size == mask;
            for &b in &data[i + 1..i + size_len] {
                size = size << 8 | u64::from(b);
                all_ones &= b == 0xff;
            }
            i += size_len;
            let size = (!all_ones).then_some(size as usize);
            out.push((id, i, size));
            match size {
                Some(n) => i += n,
                None => break,
            }
        }
        out
    }

    fn sample_recording(dir: &Path, finish: bool) -> Vec<u8> {
        let path = dir.join("r.mkv");
        let aus = crate::h264::access_units(crate::sample::H264);
        let units = crate::h264::nal_units(aus[0]);
        let video = VideoParams {
            width: 320,
            height: 240,
            sps: units[0].to_vec(),
            pps: units[1].to_vec(),
        };
        let mut writer = MkvWriter::create(&path, &video).unwrap();
        for (i, au) in aus.iter().enumerate() {
            let ts = 40 * i as i64;
            let avcc = annex_b_to_avcc(&crate::h264::nal_units(au));
            writer
                .write_frame(
                    VIDEO_TRACK,
                    ts,
                    ts + 40,
                    crate::h264::is_keyframe(au),
                    &avcc,
                )
                .unwrap();
            writer
                .write_frame(AUDIO_TRACK, ts, ts + 20, true, &[0xF8, 0xFF, 0xFE])
                .unwrap();
        }
        if finish {
            writer.finish().unwrap();
        } else {
            drop(writer); // as after kill -9: no finish
        }
        std::fs::read(&path).unwrap()
    }

    #[test]
    fn a_finished_file_has_sizes_everywhere_and_cues_the_seek_head_points_to() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample_recording(dir.path(), true);
        let top = children(&data);
        assert_eq!(top.len(), 2, "EBML header and Segment");
        let (id, start, size) = top[1];
        assert_eq!(id, 0x1853_8067);
        let segment = &data[start..start + size.expect("the Segment has a size")];
        let parts = children(segment);
        let ids: Vec<u32> = parts.iter().map(|p| p.0).collect();
        assert!(
            parts.iter().all(|p| p.2.is_some()),
            "no unknown sizes: {parts:x?}"
        );
        assert_eq!(
            ids.iter().filter(|&&i| i == 0x1F43_B675).count(),
            3,
            "one cluster per GOP"
        );
        let cues_at = parts.iter().find(|p| p.0 == 0x1C53_BB6B).expect("Cues").1;
        // The SeekHead is the first child; its Cues entry points at the Cues element.
        assert_eq!(ids[0], 0x114D_9B74);
        let seek_head = &segment[parts[0].1..parts[0].1 + parts[0].2.unwrap()];
        let value = |data: &[u8], (_, s, n): (u32, usize, Option<usize>)| {
            data[s..s + n.unwrap()]
                .iter()
                .fold(0usize, |a, &b| a << 8 | usize::from(b))
        };
        let position = children(seek_head)
            .into_iter()
            .map(|(_, s, n)| &seek_head[s..s + n.unwrap()])
            .find_map(|entry| {
                let fields = children(entry);
                (value(entry, fields[0]) == 0x1C53_BB6B).then(|| value(entry, fields[1]))
            })
            .expect("a Cues entry");
        let id_len = 4;
        let size_len = segment[position + id_len].leading_zeros() as usize + 1;
        assert_eq!(position + id_len + size_len, cues_at);
    }

    #[test]
    fn cue_points_stay_bounded_and_evenly_spread_over_a_long_recording() {
        let mut cues = CuePoints::new();
        // Every cluster of a short recording has a point.
        for i in 0..10u64 {
            cues.cluster_written(i * 1000, i * 100);
        }
        assert_eq!(cues.points.len(), 10);
        // Ten hours at one cluster per second.
        for i in 10..36_000u64 {
            cues.cluster_written(i * 1000, i * 100);
            assert!(cues.points.len() <= MAX_CUE_POINTS, "at cluster {i}");
        }
        assert_eq!(cues.points.capacity(), MAX_CUE_POINTS, "never reallocated");
        assert!(
            cues.points.len() > MAX_CUE_POINTS / 2,
            "{}",
            cues.points.len()
        );
        assert_eq!(cues.points[0], (0, 0));
        let step = cues.points[1].0 - cues.points[0].0;
        assert!(
            cues.points.windows(2).all(|w| w[1].0 - w[0].0 == step),
            "evenly spread"
        );
        assert_eq!(step, cues.stride * 1000);
        let last = cues.points.last().unwrap().0;
        assert!(
            36_000_000 - last <= step,
            "the last point is near the end: {last}"
        );
    }

    #[test]
    fn an_unfinished_file_holds_every_complete_cluster() {
        let dir = tempfile::tempdir().unwrap();
        let data = sample_recording(dir.path(), false);
        let top = children(&data);
        let (_, start, size) = top[1];
        assert_eq!(size, None, "the Segment size is unknown until finish");
        let clusters = children(&data[start..])
            .into_iter()
            .filter(|p| p.0 == 0x1F43_B675)
            .count();
        assert_eq!(
            clusters, 2,
            "the first two GOPs are on disk; the open one is lost"
        );
    }
}
