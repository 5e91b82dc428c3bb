//! The media pieces that both sides of Kinesis Video Streams WebRTC ingestion need: the device
//! side (our ingestion helper reads H.264 and hands it to WebRTC) and the service side (the
//! emulator's storage peer checks and records what it receives).
//!
//! * [`h264`]: NAL units of Annex-B data, access-unit boundaries in a stream, and what a sequence
//!   parameter set says (profile, level, resolution), with the profiles the service accepts.
//! * [`annexb`]: access units read incrementally from an Annex-B file or pipe, checked and
//!   stamped from a frame rate.
//! * [`ogg`] and [`opus`]: Opus packets read incrementally from an Ogg Opus file or pipe, with
//!   their durations from the TOC byte.
//! * [`mkv`]: a Matroska writer for one H.264 track and one Opus track; [`mkv_reader`]: H.264
//!   and Opus frames read incrementally from a Matroska/WebM file or pipe.
//! * [`sample`]: the project's 3 s sample clip (H.264, Ogg Opus, Matroska).
//! * [`sdp`]: rules an SDP from the network must keep before str0m reads it (one configuration
//!   per payload type).
//! * [`AudioCodec`]: the audio codec as a named type (SDP and Matroska names, clock rate,
//!   frame durations), asked by every crate instead of spelling "Opus" itself.
//!
//! # Why this is hand-written
//! The subset needed is small and sits on hot paths of both crates. The Ogg reader is ours
//! because the `ogg` crate's packet reader needs `Seek`, which a pipe from a live encoder does
//! not have. `h264-reader` parses far
//! more of H.264 than needed (and would be the choice if slice headers or SEI had to be read);
//! no well-kept Rust crate muxes H.264 + Opus into Matroska (`webm` wraps libwebm and is
//! limited to WebM's codecs, the pure-Rust Matroska crates are readers or unfinished).
//!
//! ```
//! use kvs_media::h264;
//! // Two access units: SPS + PPS + IDR slice, then a non-IDR slice.
//! let stream = [
//!     0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, // SPS
//!     0, 0, 0, 1, 0x68, 0xce,             // PPS
//!     0, 0, 1, 0x65, 0x88, 0x80,          // IDR slice, first_mb_in_slice = 0
//!     0, 0, 1, 0x41, 0x9a, 0x00,          // non-IDR slice, first_mb_in_slice = 0
//! ];
//! let units = h264::access_units(&stream);
//! assert_eq!(units.len(), 2);
//! assert!(h264::is_keyframe(units[0]));
//! assert!(!h264::is_keyframe(units[1]));
//! ```

pub mod annexb;
mod codec;
mod error;
pub mod h264;
pub mod mkv;
pub mod mkv_reader;
pub mod ogg;
pub mod opus;
pub mod sample;
pub mod sdp;

pub use codec::AudioCodec;
pub use error::MediaError;
