//! What can be wrong with media input.

use std::fmt;
use std::io;

/// Why media could not be read. Every variant's message says what was found and what was
/// expected, so that it can be shown to a user as is.
#[derive(Debug)]
#[non_exhaustive]
pub enum MediaError {
    /// Reading the input failed.
    Io(io::Error),
    /// The input has no data at all.
    Empty {
        /// What was expected (e.g. "an H.264 Annex-B stream").
        expected: &'static str,
    },
    /// The input is not in the expected format.
    WrongFormat {
        /// What was expected.
        expected: &'static str,
        /// What was found instead.
        found: String,
    },
    /// The input ends in the middle of a unit (a NAL unit, an Ogg page, a packet).
    Truncated {
        /// What was cut off.
        what: String,
    },
    /// The input is in the right format but a structure in it is invalid.
    Corrupt {
        /// What is wrong, and where.
        what: String,
    },
}

impl fmt::Display for MediaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(_) => f.write_str("reading the media failed"),
            Self::Empty { expected } => write!(f, "the input is empty; expected {expected}"),
            Self::WrongFormat { expected, found } => {
                write!(f, "expected {expected}, found {found}")
            }
            Self::Truncated { what } => write!(f, "the input ends inside {what}"),
            Self::Corrupt { what } => write!(f, "corrupt media: {what}"),
        }
    }
}

impl std::error::Error for MediaError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for MediaError {
    fn from(e: io::Error) -> Self {
        Self::Io(e)
    }
}

/// Names what a byte stream looks like from its first bytes, for "expected X, found Y" messages.
pub(crate) fn describe_start(bytes: &[u8]) -> String {
    let known: [(&[u8], &str); 7] = [
        (&[0x1a, 0x45, 0xdf, 0xa3], "a Matroska/WebM file"),
        (b"OggS", "an Ogg file"),
        (b"RIFF", "a RIFF (WAV/AVI) file"),
        (b"ID3", "an MP3 file"),
        (b"fLaC", "a FLAC file"),
        (&[0, 0, 0, 1], "an H.264 Annex-B stream"),
        (&[0, 0, 1], "an H.264 Annex-B stream"),
    ];
    if bytes.len() >= 8 && &bytes[4..8] == b"ftyp" {
        return "an MP4/QuickTime file".into();
    }
    known
        .iter()
        .find(|(magic, _)| bytes.starts_with(magic))
        .map(|(_, name)| (*name).to_owned())
        .unwrap_or_else(|| format!("data starting with {:02x?}", &bytes[..bytes.len().min(8)]))
}

/// Fill `buf` as far as the input allows; returns how many bytes were read (less than
/// `buf.len()` only at the end of input).
pub(crate) fn read_up_to(
    input: &mut impl std::io::Read,
    buf: &mut [u8],
) -> Result<usize, MediaError> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(filled)
}
