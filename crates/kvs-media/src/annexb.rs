//! Access units out of an H.264 Annex-B byte stream (a `.h264` file, or an encoder writing to a
//! pipe), read incrementally, checked, and stamped with times from a fixed frame rate (raw
//! H.264 carries no timestamps; ffmpeg assumes 25 fps as well).

use std::io::Read;
use std::time::Duration;

use crate::error::MediaError;
use crate::h264::{self, NAL_IDR, NAL_SLICE};

const EXPECTED: &str = "an H.264 Annex-B stream (starting with 00 00 01 or 00 00 00 01)";
/// An access unit larger than this is refused: no boundary in sight means the input is not H.264.
pub const MAX_ACCESS_UNIT: usize = 16 << 20;
const READ_CHUNK: usize = 16 << 10;
/// The start is judged on this many bytes (or all of a shorter input), once a byte other than
/// zero came (a start code's leading zeros may run on): what an error names (`describe_start`
/// looks at 8) must not depend on how the input was chunked.
const START_CHECKED_ON: usize = 8;

/// One picture: its NAL units with start codes, as a WebRTC sender takes them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// Annex-B bytes (start codes included).
    pub data: Vec<u8>,
    /// When it is shown, from the first access unit.
    pub timestamp: Duration,
    /// Whether it holds an IDR slice.
    pub keyframe: bool,
    /// Whether it carries a sequence or picture parameter set (which a sender caches).
    pub parameter_sets: bool,
}

/// Reads access units from an Annex-B stream.
#[derive(Debug)]
pub struct AnnexBReader<R> {
    input: R,
    /// Bytes read and not returned yet: `buf[pos..]`.
    buf: Vec<u8>,
    pos: usize,
    /// Where reads land before they join `buf`.
    scratch: Vec<u8>,
    eof: bool,
    checked_start: bool,
    /// Whether a byte other than zero was read: until then the leading zeros of a start code
    /// may still be running, and the start cannot be judged.
    seen_nonzero: bool,
    frame_period: Duration,
    frames: u64,
    /// Bytes of the stream before `buf[0]`, for error positions.
    consumed: u64,
    max_access_unit: usize,
    /// False while no read since the last fruitless scan could have completed a unit: a pipe
    /// delivering a few bytes at a time is not rescanned for every read.
    scan_needed: bool,
}

impl<R: Read> AnnexBReader<R> {
    /// A reader stamping frames `1/fps` apart.
    ///
    /// # Panics
    /// Never; an `fps` of 0 is taken as 1.
    pub fn new(input: R, fps: u32) -> Self {
        Self {
            input,
            buf: Vec::new(),
            pos: 0,
            scratch: vec![0; READ_CHUNK],
            eof: false,
            checked_start: false,
            seen_nonzero: false,
            frame_period: Duration::from_secs(1) / fps.max(1),
            frames: 0,
            consumed: 0,
            max_access_unit: MAX_ACCESS_UNIT,
            scan_needed: true,
        }
    }

    /// Refuse access units larger than `bytes` (default [`MAX_ACCESS_UNIT`]).
    pub fn with_max_access_unit(mut self, bytes: usize) -> Self {
        self.max_access_unit = bytes;
        self
    }

    /// How many access units were returned so far.
    pub fn frames_read(&self) -> u64 {
        self.frames
    }

    /// The next access unit, or `None` at the end of the stream.
    ///
    /// # Errors
    /// [`MediaError::Empty`] for an empty input; [`MediaError::WrongFormat`] when the input is
    /// not H.264 (no start code at the beginning, a forbidden bit set, an H.265 stream);
    /// [`MediaError::Truncated`] when it ends inside a NAL unit header or a slice without data;
    /// [`MediaError::Corrupt`] for an access unit without a slice or larger than the limit
    /// ([`MAX_ACCESS_UNIT`] by default); [`MediaError::Io`] when reading fails.
    pub fn next_access_unit(&mut self) -> Result<Option<AccessUnit>, MediaError> {
        loop {
            if !self.checked_start
                && (self.eof || self.seen_nonzero && self.buf.len() >= START_CHECKED_ON)
            {
                self.check_start()?;
            }
            if self.checked_start && self.scan_needed {
                let pending = &self.buf[self.pos..];
                if let Some(end) = h264::first_access_unit_end(pending, self.eof) {
                    let data = pending[..end].to_vec();
                    self.pos += end;
                    let offset = self.consumed;
                    self.consumed += end as u64;
                    return self.finish_unit(data, offset).map(Some);
                }
                if self.eof {
                    return Ok(None);
                }
                // A boundary needs a start code plus two bytes; until one arrives, don't rescan.
                let tail = self.buf.len().saturating_sub(6).max(self.pos);
                self.scan_needed = self.buf[tail..].windows(3).any(|w| w == [0, 0, 1]);
            }
            if self.buf.len() - self.pos > self.max_access_unit {
                return Err(MediaError::Corrupt {
                    what: format!(
                        "no access unit boundary within {} bytes at byte {}",
                        self.max_access_unit, self.consumed
                    ),
                });
            }
            self.fill()?;
        }
    }

    fn fill(&mut self) -> Result<(), MediaError> {
        // What was returned goes once it is most of the buffer (amortized: no move per unit).
        if self.pos > 0 && self.pos >= self.buf.len() / 2 {
            self.buf.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.buf.len();
        let n = loop {
            match self.input.read(&mut self.scratch) {
                Ok(n) => break n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        };
        self.buf.extend_from_slice(&self.scratch[..n]);
        self.seen_nonzero |= self.scratch[..n].iter().any(|&b| b != 0);
        self.eof |= n == 0;
        let from = old.saturating_sub(3);
        self.scan_needed |= self.eof || self.buf[from..].windows(3).any(|w| w == [0, 0, 1]);
        Ok(())
    }

    fn check_start(&mut self) -> Result<(), MediaError> {
        if self.buf.is_empty() {
            return Err(MediaError::Empty { expected: EXPECTED });
        }
        let zeros = self.buf.iter().take_while(|&&b| b == 0).count();
        let starts_with_code = zeros >= 2 && self.buf.get(zeros) == Some(&1);
        if !starts_with_code {
            return Err(MediaError::WrongFormat {
                expected: EXPECTED,
                found: crate::error::describe_start(&self.buf),
            });
        }
        self.checked_start = true;
        Ok(())
    }

    fn finish_unit(&mut self, data: Vec<u8>, offset: u64) -> Result<AccessUnit, MediaError> {
        let mut has_slice = false;
        let mut keyframe = false;
        let mut parameter_sets = false;
        for unit in h264::nal_units(&data) {
            let header = unit[0];
            if header & 0x80 != 0 {
                return Err(MediaError::WrongFormat {
                    expected: EXPECTED,
                    found: format!(
                        "a NAL unit with the forbidden bit set (header {header:#04x}) in the access unit at byte {offset}"
                    ),
                });
            }
            let kind = header & 0x1f;
            if kind == 0 {
                return Err(MediaError::WrongFormat {
                    expected: EXPECTED,
                    found: if (header >> 1) & 0x3f == 32 || unit.len() > 1 && unit[1] == 1 {
                        format!("an H.265 (HEVC) NAL unit at byte {offset}")
                    } else {
                        format!("a NAL unit of unspecified type 0 at byte {offset}")
                    },
                });
            }
            if kind == NAL_SLICE || kind == NAL_IDR {
                if unit.len() < 2 {
                    return Err(MediaError::Truncated {
                        what: format!(
                            "a slice NAL unit (type {kind}) at byte {offset}: it has no data"
                        ),
                    });
                }
                has_slice = true;
                keyframe |= kind == NAL_IDR;
            } else if (2..=4).contains(&kind) {
                has_slice = true; // data partitions
            } else if kind == h264::NAL_SPS || kind == h264::NAL_PPS {
                parameter_sets = true;
            }
        }
        if !has_slice {
            return Err(if self.eof && self.pos == self.buf.len() {
                MediaError::Truncated {
                    what: format!(
                        "the last access unit (at byte {offset}): it has no picture data"
                    ),
                }
            } else {
                MediaError::Corrupt {
                    what: format!("an access unit without any slice at byte {offset}"),
                }
            });
        }
        let timestamp = self.frame_period * self.frames as u32;
        self.frames += 1;
        Ok(AccessUnit {
            data,
            timestamp,
            keyframe,
            parameter_sets,
        })
    }
}

#[cfg(test)]
mod tests;
