//! H.264 and Opus frames out of a Matroska or WebM file (as ffmpeg and GStreamer write them),
//! read incrementally so that it works on a pipe too (`ffmpeg ... -f matroska -`).
//!
//! The reader descends into the Segment and its Clusters whatever their size (a live muxer
//! writes them with unknown size), reads Info for the timestamp scale and Tracks for the codecs,
//! and returns the blocks of the first H.264 and the first Opus track as they come. Video is
//! turned from AVCC (length-prefixed) into Annex-B, with the parameter sets of `CodecPrivate`
//! in front of every keyframe that lacks them. Other tracks are skipped.

use std::io::Read;
use std::time::Duration;

use crate::error::MediaError;
use crate::h264;
use crate::AudioCodec;

const EXPECTED: &str = "a Matroska/WebM file";
/// Elements other than Segment and Cluster are read whole; larger ones are refused.
const MAX_ELEMENT: u64 = 64 << 20;

const EBML: u32 = 0x1A45_DFA3;
const DOC_TYPE: u32 = 0x4282;
const SEGMENT: u32 = 0x1853_8067;
const CLUSTER: u32 = 0x1F43_B675;
const INFO: u32 = 0x1549_A966;
const TIMESTAMP_SCALE: u32 = 0x2A_D7B1;
const TRACKS: u32 = 0x1654_AE6B;
const TRACK_ENTRY: u32 = 0xAE;
const TRACK_NUMBER: u32 = 0xD7;
const CODEC_ID: u32 = 0x86;
const CODEC_PRIVATE: u32 = 0x63A2;
const CLUSTER_TIMESTAMP: u32 = 0xE7;
const SIMPLE_BLOCK: u32 = 0xA3;
const BLOCK_GROUP: u32 = 0xA0;
const BLOCK: u32 = 0xA1;
const REFERENCE_BLOCK: u32 = 0xFB;

/// What a frame is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrameKind {
    /// An H.264 access unit, Annex-B.
    Video,
    /// An Opus packet.
    Audio,
}

/// One frame of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// Video or audio.
    pub kind: FrameKind,
    /// Annex-B access unit (video) or Opus packet (audio).
    pub data: Vec<u8>,
    /// Presentation time from the file's origin (negative times are clamped to 0).
    pub timestamp: Duration,
    /// Whether the block is marked as a keyframe (video).
    pub keyframe: bool,
}

/// The tracks found in the file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tracks {
    /// The H.264 track's number, if there is one.
    pub video: Option<u64>,
    /// The Opus track's number, if there is one.
    pub audio: Option<u64>,
    /// Every track's codec id, by track number (for messages).
    pub codecs: Vec<(u64, String)>,
}

/// Reads frames from a Matroska/WebM stream.
#[derive(Debug)]
pub struct MkvReader<R> {
    input: R,
    offset: u64,
    scale_ns: u64,
    tracks: Tracks,
    /// AVCC NAL length size and the parameter sets (Annex-B, with start codes).
    nal_length: usize,
    parameter_sets: Vec<u8>,
    cluster_time: i64,
    pending: std::collections::VecDeque<Frame>,
}

impl<R: Read> MkvReader<R> {
    /// Read up to the first Cluster: the EBML header, Info and Tracks.
    ///
    /// # Errors
    /// [`MediaError::Empty`], [`MediaError::WrongFormat`] (not EBML, another DocType, no H.264
    /// or Opus track: the message lists the codecs found), [`MediaError::Truncated`],
    /// [`MediaError::Corrupt`].
    pub fn new(input: R) -> Result<Self, MediaError> {
        let mut reader = Self {
            input,
            offset: 0,
            scale_ns: 1_000_000,
            tracks: Tracks::default(),
            nal_length: 4,
            parameter_sets: Vec::new(),
            cluster_time: 0,
            pending: Default::default(),
        };
        let mut magic = [0u8; 4];
        match reader.read_up_to(&mut magic)? {
            0 => return Err(MediaError::Empty { expected: EXPECTED }),
            4 if u32::from_be_bytes(magic) == EBML => {}
            n => {
                return Err(MediaError::WrongFormat {
                    expected: EXPECTED,
                    found: crate::error::describe_start(&magic[..n]),
                })
            }
        }
        let size = reader.size()?;
        let header = reader.payload(EBML, size)?;
        let doc_type = children(&header)?
            .into_iter()
            .find(|(id, _)| *id == DOC_TYPE)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default();
        if doc_type != "matroska" && doc_type != "webm" {
            return Err(MediaError::WrongFormat {
                expected: EXPECTED,
                found: format!("an EBML file of DocType {doc_type:?}"),
            });
        }
        // Up to the Tracks element; frames before it (none in practice) would be lost.
        loop {
            let Some((id, size)) = reader.header()? else {
                return Err(MediaError::Truncated {
                    what: "the Matroska header (no Tracks element)".into(),
                });
            };
            match id {
                SEGMENT => {} // descend
                INFO => {
                    let info = reader.payload(id, size)?;
                    if let Some((_, v)) = children(&info)?
                        .into_iter()
                        .find(|(id, _)| *id == TIMESTAMP_SCALE)
                    {
                        reader.scale_ns = uint(v).max(1);
                    }
                }
                TRACKS => {
                    let tracks = reader.payload(id, size)?;
                    reader.read_tracks(&tracks)?;
                    return Ok(reader);
                }
                CLUSTER => {
                    return Err(MediaError::Corrupt {
                        what: "a Cluster before the Tracks element".into(),
                    })
                }
                _ => reader.skip(id, size)?,
            }
        }
    }

    /// The tracks found.
    pub fn tracks(&self) -> &Tracks {
        &self.tracks
    }

    /// The next frame of the H.264 or the Opus track, or `None` at the end of the file.
    ///
    /// # Errors
    /// [`MediaError::Truncated`] when the input ends inside an element, [`MediaError::Corrupt`]
    /// for a bad block, [`MediaError::Io`].
    pub fn next_frame(&mut self) -> Result<Option<Frame>, MediaError> {
        loop {
            if let Some(frame) = self.pending.pop_front() {
                return Ok(Some(frame));
            }
            let Some((id, size)) = self.header()? else {
                return Ok(None);
            };
            match id {
                SEGMENT | CLUSTER => {} // descend, whatever the size
                CLUSTER_TIMESTAMP => {
                    let v = self.payload(id, size)?;
                    self.cluster_time = uint(&v) as i64;
                }
                SIMPLE_BLOCK => {
                    let block = self.payload(id, size)?;
                    self.block(&block, None)?;
                }
                BLOCK_GROUP => {
                    let group = self.payload(id, size)?;
                    let parts = children(&group)?;
                    let referenced = parts.iter().any(|(id, _)| *id == REFERENCE_BLOCK);
                    for (id, v) in parts {
                        if id == BLOCK {
                            let v = v.to_vec();
                            self.block(&v, Some(!referenced))?;
                        }
                    }
                }
                _ => self.skip(id, size)?,
            }
        }
    }

    fn read_tracks(&mut self, tracks: &[u8]) -> Result<(), MediaError> {
        for (id, entry) in children(tracks)? {
            if id != TRACK_ENTRY {
                continue;
            }
            let fields = children(entry)?;
            let field = |want: u32| fields.iter().find(|(id, _)| *id == want).map(|(_, v)| *v);
            let number = field(TRACK_NUMBER).map(uint).unwrap_or(0);
            let codec = field(CODEC_ID)
                .map(|v| String::from_utf8_lossy(v).trim_end_matches('\0').to_owned())
                .unwrap_or_default();
            match codec.as_str() {
                "V_MPEG4/ISO/AVC" if self.tracks.video.is_none() => {
                    let private = field(CODEC_PRIVATE).ok_or_else(|| MediaError::Corrupt {
                        what: "the H.264 track has no CodecPrivate (avcC)".into(),
                    })?;
                    self.read_avcc(private)?;
                    self.tracks.video = Some(number);
                }
                id if id == AudioCodec::Opus.matroska_codec_id() && self.tracks.audio.is_none() => {
                    self.tracks.audio = Some(number)
                }
                _ => {}
            }
            self.tracks.codecs.push((number, codec));
        }
        if self.tracks.video.is_none() && self.tracks.audio.is_none() {
            let found: Vec<&str> = self.tracks.codecs.iter().map(|(_, c)| c.as_str()).collect();
            return Err(MediaError::WrongFormat {
                expected: "a Matroska/WebM file with H.264 (V_MPEG4/ISO/AVC) or Opus (A_OPUS)",
                found: if found.is_empty() {
                    "no tracks".into()
                } else {
                    format!("tracks of {}", found.join(", "))
                },
            });
        }
        Ok(())
    }

    fn read_avcc(&mut self, avcc: &[u8]) -> Result<(), MediaError> {
        let bad = || MediaError::Corrupt {
            what: "the H.264 track's avcC (CodecPrivate) is malformed".into(),
        };
        if avcc.len() < 7 || avcc[0] != 1 {
            return Err(bad());
        }
        self.nal_length = usize::from(avcc[4] & 3) + 1;
        let mut at = 5;
        for mask in [0x1f, 0xff] {
            let count = usize::from(*avcc.get(at).ok_or_else(bad)? & mask);
            at += 1;
            for _ in 0..count {
                let len = usize::from(u16::from_be_bytes([
                    *avcc.get(at).ok_or_else(bad)?,
                    *avcc.get(at + 1).ok_or_else(bad)?,
                ]));
                let unit = avcc.get(at + 2..at + 2 + len).ok_or_else(bad)?;
                self.parameter_sets.extend_from_slice(&[0, 0, 0, 1]);
                self.parameter_sets.extend_from_slice(unit);
                at += 2 + len;
            }
        }
        Ok(())
    }

    fn block(&mut self, block: &[u8], keyframe_hint: Option<bool>) -> Result<(), MediaError> {
        let (track, track_len) = vint(block).ok_or_else(|| MediaError::Corrupt {
            what: "a block without a track number".into(),
        })?;
        let kind = if Some(track) == self.tracks.video {
            FrameKind::Video
        } else if Some(track) == self.tracks.audio {
            FrameKind::Audio
        } else {
            return Ok(());
        };
        let header = block
            .get(track_len..track_len + 3)
            .ok_or_else(|| MediaError::Corrupt {
                what: "a block shorter than its header".into(),
            })?;
        let relative = i64::from(i16::from_be_bytes([header[0], header[1]]));
        let flags = header[2];
        let keyframe = keyframe_hint.unwrap_or(flags & 0x80 != 0);
        let ticks = (self.cluster_time + relative).max(0) as u64;
        let timestamp = Duration::from_nanos(ticks.saturating_mul(self.scale_ns));
        let payload = &block[track_len + 3..];
        let frames = match (flags >> 1) & 3 {
            0 => vec![payload.to_vec()],
            1 => xiph_laced(payload)?,
            3 => fixed_laced(payload)?,
            _ => {
                return Err(MediaError::Corrupt {
                    what: "EBML lacing is not supported; remux without lacing (ffmpeg -c copy)"
                        .into(),
                })
            }
        };
        for data in frames {
            let data = match kind {
                FrameKind::Video => self.to_annex_b(&data)?,
                FrameKind::Audio => data,
            };
            self.pending.push_back(Frame {
                kind,
                data,
                timestamp,
                keyframe: keyframe && kind == FrameKind::Video,
            });
        }
        Ok(())
    }

    fn to_annex_b(&self, avcc: &[u8]) -> Result<Vec<u8>, MediaError> {
        let mut units = Vec::with_capacity(avcc.len() + 32);
        let mut at = 0;
        let mut has_parameter_sets = false;
        let mut has_idr = false;
        while at < avcc.len() {
            let len_bytes =
                avcc.get(at..at + self.nal_length)
                    .ok_or_else(|| MediaError::Corrupt {
                        what: "a video block ends inside a NAL length".into(),
                    })?;
            let len = len_bytes
                .iter()
                .fold(0usize, |a, &b| a << 8 | usize::from(b));
            let unit = avcc
                .get(at + self.nal_length..at + self.nal_length + len)
                .ok_or_else(|| MediaError::Corrupt {
                    what: "a video block's NAL unit is longer than the block".into(),
                })?;
            match h264::nal_type(unit) {
                h264::NAL_SPS | h264::NAL_PPS => has_parameter_sets = true,
                h264::NAL_IDR => has_idr = true,
                _ => {}
            }
            units.extend_from_slice(&[0, 0, 0, 1]);
            units.extend_from_slice(unit);
            at += self.nal_length + len;
        }
        if has_idr && !has_parameter_sets {
            let mut with = self.parameter_sets.clone();
            with.extend_from_slice(&units);
            return Ok(with);
        }
        Ok(units)
    }

    /// The next element's id and size (`None` for unknown), or `None` at a clean end.
    fn header(&mut self) -> Result<Option<(u32, Option<u64>)>, MediaError> {
        let mut first = [0u8; 1];
        if self.read_up_to(&mut first)? == 0 {
            return Ok(None);
        }
        let id_len = first[0].leading_zeros() as usize + 1;
        if id_len > 4 {
            return Err(MediaError::Corrupt {
                what: format!("an invalid element id at byte {}", self.offset - 1),
            });
        }
        let mut id = u32::from(first[0]);
        let mut rest = [0u8; 3];
        self.read_exact(&mut rest[..id_len - 1], "an element id")?;
        for &b in &rest[..id_len - 1] {
            id = id << 8 | u32::from(b);
        }
        self.size().map(|size| Some((id, size)))
    }

    /// An element size (`None` for unknown).
    fn size(&mut self) -> Result<Option<u64>, MediaError> {
        let mut first = [0u8; 1];
        self.read_exact(&mut first, "an element size")?;
        let size_len = first[0].leading_zeros() as usize + 1;
        if size_len > 8 {
            return Err(MediaError::Corrupt {
                what: format!("an invalid element size at byte {}", self.offset - 1),
            });
        }
        let mask = 0xffu64 >> size_len;
        let mut size = u64::from(first[0]) & mask;
        let mut all_ones = size == mask;
        let mut more = [0u8; 7];
        self.read_exact(&mut more[..size_len - 1], "an element size")?;
        for &b in &more[..size_len - 1] {
            size = size << 8 | u64::from(b);
            all_ones &= b == 0xff;
        }
        Ok((!all_ones).then_some(size))
    }

    fn payload(&mut self, id: u32, size: Option<u64>) -> Result<Vec<u8>, MediaError> {
        let size = size.ok_or_else(|| MediaError::Corrupt {
            what: format!("element {id:#x} has an unknown size"),
        })?;
        if size > MAX_ELEMENT {
            return Err(MediaError::Corrupt {
                what: format!("element {id:#x} claims {size} bytes"),
            });
        }
        let mut buf = vec![0u8; size as usize];
        self.read_exact(&mut buf, &format!("element {id:#x}"))?;
        Ok(buf)
    }

    fn skip(&mut self, id: u32, size: Option<u64>) -> Result<(), MediaError> {
        let size = size.ok_or_else(|| MediaError::Corrupt {
            what: format!("element {id:#x} has an unknown size"),
        })?;
        let copied = std::io::copy(&mut (&mut self.input).take(size), &mut std::io::sink())?;
        self.offset += copied;
        if copied < size {
            return Err(MediaError::Truncated {
                what: format!("element {id:#x}"),
            });
        }
        Ok(())
    }

    fn read_up_to(&mut self, buf: &mut [u8]) -> Result<usize, MediaError> {
        let filled = crate::error::read_up_to(&mut self.input, buf)?;
        self.offset += filled as u64;
        Ok(filled)
    }

    fn read_exact(&mut self, buf: &mut [u8], what: &str) -> Result<(), MediaError> {
        if self.read_up_to(buf)? < buf.len() {
            return Err(MediaError::Truncated { what: what.into() });
        }
        Ok(())
    }
}

/// The children of a master element's payload: (id, payload).
fn children(data: &[u8]) -> Result<Vec<(u32, &[u8])>, MediaError> {
    let mut out = Vec::new();
    let mut at = 0;
    let corrupt = || MediaError::Corrupt {
        what: "a malformed element inside a header element".into(),
    };
    while at < data.len() {
        let id_len = data[at].leading_zeros() as usize + 1;
        if id_len > 4 {
            return Err(corrupt());
        }
        let id = data
            .get(at..at + id_len)
            .ok_or_else(corrupt)?
            .iter()
            .fold(0u32, |a, &b| a << 8 | u32::from(b));
        at += id_len;
        let (size, size_len) = vint(data.get(at..).ok_or_else(corrupt)?).ok_or_else(corrupt)?;
        at += size_len;
        let end = at
            .checked_add(size as usize)
            .filter(|&e| e <= data.len())
            .ok_or_else(corrupt)?;
        out.push((id, &data[at..end]));
        at = end;
    }
    Ok(out)
}

/// A variable-size integer (marker removed) and its length.
fn vint(data: &[u8]) -> Option<(u64, usize)> {
    let first = *data.first()?;
    let len = first.leading_zeros() as usize + 1;
    if len > 8 || data.len() < len {
        return None;
    }
    let mut value = u64::from(first) & (0xffu64 >> len);
    for &b in &data[1..len] {
        value = value << 8 | u64::from(b);
    }
    Some((value, len))
}

fn uint(data: &[u8]) -> u64 {
    data.iter()
        .take(8)
        .fold(0u64, |a, &b| a << 8 | u64::from(b))
}

fn xiph_laced(payload: &[u8]) -> Result<Vec<Vec<u8>>, MediaError> {
    let corrupt = || MediaError::Corrupt {
        what: "a Xiph-laced block is malformed".into(),
    };
    let count = usize::from(*payload.first().ok_or_else(corrupt)?) + 1;
    let mut at = 1;
    let mut sizes = Vec::with_capacity(count);
    for _ in 0..count - 1 {
        let mut size = 0usize;
        loop {
            let b = *payload.get(at).ok_or_else(corrupt)?;
            at += 1;
            size += usize::from(b);
            if b != 255 {
                break;
            }
        }
        sizes.push(size);
    }
    let used: usize = sizes.iter().sum();
    let last = payload.len().checked_sub(at + used).ok_or_else(corrupt)?;
    sizes.push(last);
    let mut out = Vec::with_capacity(count);
    for size in sizes {
        out.push(payload.get(at..at + size).ok_or_else(corrupt)?.to_vec());
        at += size;
    }
    Ok(out)
}

fn fixed_laced(payload: &[u8]) -> Result<Vec<Vec<u8>>, MediaError> {
    let corrupt = || MediaError::Corrupt {
        what: "a fixed-size-laced block is malformed".into(),
    };
    let count = usize::from(*payload.first().ok_or_else(corrupt)?) + 1;
    let data = &payload[1..];
    if !data.len().is_multiple_of(count) {
        return Err(corrupt());
    }
    Ok(data
        .chunks(data.len() / count)
        .map(<[u8]>::to_vec)
        .collect())
}

#[cfg(test)]
mod tests;
