//! `kvs-media`'s readers, fed what a file or an encoder's pipe could hold.
//!
//! Every reader runs twice over the same bytes: once handed them in one read, once in small
//! reads of varying sizes (a pipe from a live encoder). Both must return the same frames and
//! end the same way, so a reader that loses or invents data at a read boundary is caught, not
//! only one that panics.

use std::io::Read;

use kvs_media::annexb::AnnexBReader;
use kvs_media::h264;
use kvs_media::mkv_reader::MkvReader;
use kvs_media::ogg::OggOpusReader;

/// Frames taken from one input at most (a few KB of input cannot hold more real frames).
const MAX_FRAMES: usize = 20_000;
/// The access-unit limit the Annex-B target sets, so that a missing boundary is found within
/// the input instead of after 16 MiB.
const MAX_ACCESS_UNIT: usize = 64 << 10;

/// A `Read` that hands out `data` in reads of 1 to 7 bytes (a cycle seeded by the length), or
/// all at once.
struct Chunked<'a> {
    data: &'a [u8],
    step: usize,
    whole: bool,
}

impl<'a> Chunked<'a> {
    fn new(data: &'a [u8], whole: bool) -> Self {
        Self {
            data,
            step: data.len(),
            whole,
        }
    }
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let want = if self.whole {
            buf.len()
        } else {
            self.step = self.step.wrapping_mul(31).wrapping_add(7);
            1 + self.step % 7
        };
        let n = want.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

/// What a reader made of an input: the frames (as comparable text) and how it ended.
fn outcome<T: std::fmt::Debug, E: std::fmt::Display>(
    mut next: impl FnMut() -> Result<Option<T>, E>,
) -> (Vec<String>, Option<String>) {
    let mut frames = Vec::new();
    while frames.len() < MAX_FRAMES {
        match next() {
            Ok(Some(frame)) => frames.push(format!("{frame:?}")),
            Ok(None) => return (frames, None),
            Err(e) => return (frames, Some(e.to_string())),
        }
    }
    (frames, None)
}

fn same_whole_or_chunked(
    what: &str,
    whole: (Vec<String>, Option<String>),
    chunked: (Vec<String>, Option<String>),
) {
    assert_eq!(
        whole, chunked,
        "{what}: reading in small pieces gave another result than reading at once"
    );
}

/// `AnnexBReader` over the bytes, then `h264::access_units`, `nal_units` and `parse_sps` over
/// them: the access units a pipe yields are those of the whole stream.
pub fn annexb(data: &[u8]) {
    let run = |whole: bool| {
        let mut reader =
            AnnexBReader::new(Chunked::new(data, whole), 25).with_max_access_unit(MAX_ACCESS_UNIT);
        outcome(|| reader.next_access_unit())
    };
    same_whole_or_chunked("Annex-B", run(true), run(false));
    h264_units(data);
}

/// The NAL-unit and access-unit splitters over a byte string, with their invariants.
pub fn h264_units(data: &[u8]) {
    let units = h264::access_units(data);
    let mut end = 0usize;
    for unit in &units {
        // Each unit is a piece of `data`, after the previous one, and they meet.
        let start = unit.as_ptr() as usize - data.as_ptr() as usize;
        assert!(
            start >= end,
            "access units overlap or go backwards at {start}"
        );
        assert!(
            end == 0 || start == end,
            "a gap between access units at {end}..{start}"
        );
        end = start + unit.len();
        let _ = h264::is_keyframe(unit);
        for nal in h264::nal_units(unit) {
            let _ = h264::parse_sps(nal);
        }
    }
    if let Some(last) = units.last() {
        let start = last.as_ptr() as usize - data.as_ptr() as usize;
        assert_eq!(
            start + last.len(),
            data.len(),
            "the last access unit ends early"
        );
    }
    if let Some(end) = h264::first_access_unit_end(data, true) {
        assert!(end <= data.len());
    }
}

/// `parse_sps` on the bytes as an SPS NAL unit (its header byte put in front, so random bytes
/// get past the type check), then as they are.
pub fn sps(data: &[u8]) {
    let mut unit = Vec::with_capacity(data.len() + 1);
    unit.push(0x67);
    unit.extend_from_slice(data);
    if let Some(sps) = h264::parse_sps(&unit) {
        let _ = sps.allowed_profile();
        let _ = h264::profile_name(sps.profile_idc, sps.constraint_flags);
    }
    let _ = h264::parse_sps(data);
}

/// `OggOpusReader` over the bytes, each page's CRC put right first (a page with a wrong CRC is
/// refused at once, so random bytes would never get further).
pub fn ogg(data: &[u8]) {
    let fixed = fix_ogg_crcs(data);
    let run = |whole: bool| match OggOpusReader::new(Chunked::new(&fixed, whole)) {
        Ok(mut reader) => {
            let head = format!("{:?}", reader.head());
            let (mut frames, end) = outcome(|| reader.next_packet());
            frames.insert(0, head);
            (frames, end)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    same_whole_or_chunked("Ogg Opus", run(true), run(false));
    for packet in [data, &fixed] {
        let _ = kvs_media::opus::packet_samples(packet);
    }
}

/// `MkvReader` over the bytes: header, tracks, then every frame.
pub fn mkv(data: &[u8]) {
    let run = |whole: bool| match MkvReader::new(Chunked::new(data, whole)) {
        Ok(mut reader) => {
            let tracks = format!("{:?}", reader.tracks());
            let (mut frames, end) = outcome(|| reader.next_frame());
            frames.insert(0, tracks);
            (frames, end)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    same_whole_or_chunked("Matroska", run(true), run(false));
}

/// A copy of `data` in which every Ogg page found (from the start, page after page) carries the
/// CRC of its bytes.
pub fn fix_ogg_crcs(data: &[u8]) -> Vec<u8> {
    let mut out = data.to_vec();
    let mut at = 0;
    while out.len() >= at + 27 && &out[at..at + 4] == b"OggS" {
        let segments = usize::from(out[at + 26]);
        let table = at + 27;
        if out.len() < table + segments {
            break;
        }
        let body: usize = out[table..table + segments]
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        let end = table + segments + body;
        if out.len() < end {
            break;
        }
        out[at + 22..at + 26].fill(0);
        let crc = ogg_crc(&out[at..end]);
        out[at + 22..at + 26].copy_from_slice(&crc.to_le_bytes());
        at = end;
    }
    out
}

/// Ogg's CRC-32: polynomial 0x04c11db7, no reflection, initial value 0.
fn ogg_crc(bytes: &[u8]) -> u32 {
    let mut crc = 0u32;
    for &b in bytes {
        crc ^= u32::from(b) << 24;
        for _ in 0..8 {
            crc = if crc & 0x8000_0000 != 0 {
                (crc << 1) ^ 0x04c1_1db7
            } else {
                crc << 1
            };
        }
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crc_fixer_leaves_a_real_ogg_file_as_it_is() {
        let sample = kvs_media::sample::OPUS;
        assert_eq!(fix_ogg_crcs(sample), sample);
        let mut broken = sample.to_vec();
        broken[22] ^= 0xff;
        assert_eq!(fix_ogg_crcs(&broken), sample);
    }

    #[test]
    fn the_sample_clip_reads_the_same_in_small_pieces() {
        annexb(&kvs_media::sample::H264[..8000]);
        ogg(&kvs_media::sample::OPUS[..4000]);
        mkv(&kvs_media::sample::MKV[..12000]);
    }
}
