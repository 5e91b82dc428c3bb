//! The emulator built without its `aac` feature (as `cargo run -p kvs-ingest -- demo` builds
//! it, so that a fresh machine needs nothing but Rust): no Opus to AAC transcoder, and streams
//! keep the Opus they receive (`A_OPUS`), which the store records as their audio codec.
//! Build with the feature (the default of `kvs-emulator`; `--features aac` for `kvs-ingest`;
//! it needs `cmake`) to keep AAC as the service does.

use kvs_media::mkv::AacParams;

/// Why there is no transcoder.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TranscodeError {
    /// The feature is off.
    #[error(
        "this kvs-emulator was built without its `aac` feature (it needs cmake), so streams keep Opus"
    )]
    Disabled,
}

/// One AAC access unit and its producer timestamp (never made here).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AacFrame {
    /// Producer timestamp in ms since the epoch.
    pub timestamp_ms: i64,
    /// The access unit.
    pub data: Vec<u8>,
}

/// Never constructed: [`OpusToAac::new`] always says why.
#[derive(Debug)]
pub(crate) enum OpusToAac {}

impl OpusToAac {
    /// Always [`TranscodeError::Disabled`].
    pub(crate) fn new() -> Result<Self, TranscodeError> {
        Err(TranscodeError::Disabled)
    }

    /// Unreachable: no value exists.
    pub(crate) fn push(&mut self, _timestamp_ms: i64, _packet: &[u8], _out: &mut Vec<AacFrame>) {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub(crate) fn params(&self) -> &AacParams {
        match *self {}
    }

    /// Unreachable: no value exists.
    pub(crate) fn bad_packets(&self) -> u64 {
        match *self {}
    }
}
