//! A small Matroska writer for one H.264 track and one Opus track.
//!
//! Written here because no well-kept Rust crate muxes H.264 into Matroska: `webm` wraps libwebm and
//! is limited to WebM's codecs (VP8/VP9/AV1), and the pure-Rust Matroska crates are readers or
//! unfinished. The subset needed is small: an EBML header, a Segment, Info, Tracks and Clusters of
//! SimpleBlocks.
//!
//! Clusters are written with "unknown size", so a file cut short by a crash is still playable.
//! [`MkvWriter::finish`] then patches the Segment size and the Duration in place.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::path::Path;

const UNKNOWN_SIZE: [u8; 8] = [0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
/// Milliseconds per block timestamp unit (TimestampScale = 1 ms).
const TIMESTAMP_SCALE_NS: u64 = 1_000_000;
/// Opus pre-skip the OpusHead announces (the libopus default at 48 kHz).
const OPUS_PRE_SKIP: u16 = 312;
/// A new cluster starts at each keyframe, or once the block offset would leave this range.
const MAX_CLUSTER_SPAN_MS: i64 = 30_000;

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

/// Writes one recording.
#[derive(Debug)]
pub struct MkvWriter {
    out: BufWriter<File>,
    segment_data_start: u64,
    duration_pos: u64,
    cluster_start_ms: Option<i64>,
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
        let audio_entry = element(
            0xAE,
            &[
                uint(0xD7, AUDIO_TRACK),
                uint(0x73C5, AUDIO_TRACK),
                uint(0x83, 2),
                uint(0x9C, 0),
                string(0x86, "A_OPUS"),
                element(0x63A2, &opus_head()),
                uint(0x56AA, u64::from(OPUS_PRE_SKIP) * 1_000_000_000 / 48_000),
                uint(0x56BB, 80_000_000),
                element(0xE1, &[float(0xB5, 48_000.0), uint(0x9F, 2)].concat()),
            ]
            .concat(),
        );
        out.write_all(&element(0x1654_AE6B, &[video_entry, audio_entry].concat()))?;
        Ok(Self {
            out,
            segment_data_start,
            duration_pos,
            cluster_start_ms: None,
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
            let start = timestamp_ms.max(0);
            self.out.write_all(&id_bytes(0x1F43_B675))?;
            self.out.write_all(&UNKNOWN_SIZE)?;
            self.out.write_all(&uint(0xE7, start as u64))?;
            self.cluster_start_ms = Some(start);
        }
        let relative = (timestamp_ms - self.cluster_start_ms.unwrap_or(0)) as i16;
        let mut block = Vec::with_capacity(data.len() + 4);
        block.push(0x80 | track as u8);
        block.extend(relative.to_be_bytes());
        block.push(if keyframe { 0x80 } else { 0x00 });
        block.extend_from_slice(data);
        self.out.write_all(&element(0xA3, &block))?;
        self.last_end_ms = self.last_end_ms.max(end_ms);
        Ok(())
    }

    /// Patch Duration and the Segment size, flush and sync. Returns the duration in ms.
    pub fn finish(mut self) -> io::Result<i64> {
        self.out.flush()?;
        let end = self.out.stream_position()?;
        let duration = self.last_end_ms.max(0);
        let file = self.out.get_mut();
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
}
