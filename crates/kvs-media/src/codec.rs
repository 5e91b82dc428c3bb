//! The audio codec of WebRTC ingestion, as a named type: what the device sends, how the SDP,
//! RTP, Matroska and the messages spell it, and how long its frames are. Every crate that
//! depends on the codec asks [`AudioCodec`] rather than spelling "Opus" itself, so that a new
//! codec (the AAC that Kinesis Video keeps in the stream, say) has one obvious place.

use std::fmt;
use std::time::Duration;

use crate::opus;

/// An audio codec of the ingestion path.
///
/// ```
/// use kvs_media::AudioCodec;
///
/// let codec = AudioCodec::INGESTED;
/// assert_eq!(codec.sdp_name(), "opus");
/// assert_eq!(codec.clock_rate(), 48_000);
/// assert_eq!(codec.nominal_frame_ticks(), 960);
/// assert_eq!(codec.to_string(), "Opus");
/// ```
///
/// Not `#[non_exhaustive]` on purpose: a new codec is a breaking change of this crate, and the
/// compiler then points at every `match` in the workspace that has to learn it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AudioCodec {
    /// Opus (RFC 6716), at 48 kHz in RTP (RFC 7587), Ogg (RFC 7845) and Matroska.
    Opus,
}

impl AudioCodec {
    /// The codec a device sends to the storage session (the service accepts only Opus).
    pub const INGESTED: Self = Self::Opus;

    /// Its name for people: "Opus".
    pub fn name(self) -> &'static str {
        match self {
            Self::Opus => "Opus",
        }
    }

    /// Its encoding name in SDP (`a=rtpmap:<pt> opus/48000/2`), lower case.
    pub fn sdp_name(self) -> &'static str {
        match self {
            Self::Opus => "opus",
        }
    }

    /// The RTP clock rate (and the sample rate timestamps count in).
    pub fn clock_rate(self) -> u32 {
        match self {
            Self::Opus => opus::SAMPLE_RATE,
        }
    }

    /// The Matroska `CodecID`.
    pub fn matroska_codec_id(self) -> &'static str {
        match self {
            Self::Opus => "A_OPUS",
        }
    }

    /// The frame duration assumed where a packet's own is not read: 20 ms, what encoders
    /// write by default and what the service sends.
    pub fn nominal_frame(self) -> Duration {
        match self {
            Self::Opus => Duration::from_millis(20),
        }
    }

    /// [`AudioCodec::nominal_frame`] in ticks of [`AudioCodec::clock_rate`].
    pub fn nominal_frame_ticks(self) -> u64 {
        let frame = self.nominal_frame();
        u64::from(self.clock_rate()) * frame.as_micros() as u64 / 1_000_000
    }

    /// How long `packet` plays, from its own header, or `None` when it is not a valid packet.
    pub fn packet_duration(self, packet: &[u8]) -> Option<Duration> {
        match self {
            Self::Opus => opus::packet_duration(packet),
        }
    }
}

impl fmt::Display for AudioCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opus_reads_its_packets_like_the_opus_module() {
        let codec = AudioCodec::INGESTED;
        assert_eq!(
            codec.packet_duration(&[0xF8]),
            Some(Duration::from_millis(20))
        );
        assert_eq!(codec.packet_duration(&[]), None);
        assert_eq!(codec.matroska_codec_id(), "A_OPUS");
        assert_eq!(codec.nominal_frame_ticks(), 960);
    }
}
