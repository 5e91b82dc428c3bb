//! The answer to a storage offer: a str0m peer that offers H.264 in the source's profile (from
//! its SPS; before one is seen, every profile the service accepts) with packetization mode 1,
//! and Opus, and the m-lines and payload types media goes out on.

use std::time::{Duration, Instant};

use kvs_media::AudioCodec;
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{Direction, MediaKind, Mid, Pt};
use str0m::rtp::Extension;
use str0m::{Candidate, Rtc, RtcConfig};

use crate::media;

/// Video packets kept for retransmission: about 0.8 s at 2 Mbit/s, 0.4 s at 4 Mbit/s, a few
/// round trips even on a slow path (a NACK comes one round trip after the loss).
const VIDEO_SEND_BUFFER: usize = 160;

/// The longest STUN USERNAME str0m writes (its ICE agent refuses, and panics on, a longer one
/// when it sends a connectivity check; RFC 8489 allows 512 bytes). The USERNAME is the peer's
/// ufrag, a colon and ours.
const STUN_USERNAME_LIMIT: usize = 128;

/// The H.264 profiles the storage session accepts (protocol notes §5.1), as SDP
/// `profile-level-id`s at level 3.1: constrained baseline, baseline, main, high.
const ALLOWED_H264: [u32; 4] = [0x42e01f, 0x42001f, 0x4d001f, 0x64001f];

/// A peer that accepted the offer.
pub(super) struct Answered {
    /// In RTP mode: the session packetizes and numbers packets itself (`packetize.rs`).
    pub(super) rtc: Rtc,
    /// The largest RTP payload for the peer's MTU.
    pub(super) payload_limit: usize,
    /// The video m-line and H.264 payload type we send on.
    pub(super) video: Option<(Mid, Pt)>,
    /// The audio m-line and Opus payload type we send on.
    pub(super) audio: Option<(Mid, Pt)>,
    /// The answer SDP.
    pub(super) sdp: String,
}

/// A str0m peer configured to answer, made before the offer comes: building one takes about a
/// millisecond (dimpl checks its crypto provider with a few key exchanges and signatures for
/// every DTLS instance, and a DTLS certificate is made), longer than the rest of the answer.
pub(super) struct Answerer {
    rtc: Rtc,
    payload_limit: usize,
    /// The H.264 profiles it offers to send: the source's, or every one the service accepts.
    profiles: Vec<u32>,
}

impl Answerer {
    /// A peer that sends H.264 in the profile of `sps` (every allowed one before an SPS is seen).
    pub(super) fn new(now: Instant, sps: Option<&[u8]>) -> Self {
        let profiles = profiles_for(sps);
        let mut config = RtcConfig::new()
            // We hand str0m finished RTP payloads: its frame API would copy and scan each
            // frame again (see `packetize.rs`).
            .set_rtp_mode(true)
            .clear_codecs()
            .set_stats_interval(Some(Duration::from_secs(1)))
            // The packets kept to answer NACKs: a retransmission is asked for within a round
            // trip, so under a second of video is plenty (str0m keeps 1000 packets, about 5 s
            // and most of a session's memory at 2 Mbit/s).
            .set_send_buffer_video(VIDEO_SEND_BUFFER)
            // No transport-wide congestion control or absolute send time: nothing here
            // estimates bandwidth, and a peer that may use transport-cc sends its feedback
            // every few packets (half of what the storage peer sent, each datagram a wake-up).
            .clear_extension_map()
            .set_extension(1, Extension::AudioLevel)
            .set_extension(4, Extension::RtpMid)
            .set_extension(10, Extension::RtpStreamId)
            .set_extension(11, Extension::RepairedRtpStreamId)
            .set_extension(13, Extension::VideoOrientation);
        let codecs = config.codec_config();
        for (i, id) in profiles.iter().enumerate() {
            let pt = 96 + 2 * i as u8;
            codecs.add_h264(pt.into(), Some((pt + 1).into()), true, *id);
        }
        enable_audio(codecs, AudioCodec::INGESTED);
        let payload_limit = crate::packetize::payload_limit(config.mtu());
        Self {
            rtc: config.build(now),
            payload_limit,
            profiles,
        }
    }

    /// Whether it offers what a peer made for `sps` now would.
    pub(super) fn fits(&self, sps: Option<&[u8]>) -> bool {
        self.profiles == profiles_for(sps)
    }

    /// Its ICE username fragment (shown in the answer).
    #[cfg(test)]
    pub(super) fn ufrag(&mut self) -> String {
        self.rtc.direct_api().local_ice_credentials().ufrag
    }

    /// Accept `offer_sdp`; the error says why the offer cannot be answered.
    pub(super) fn answer(
        self,
        offer_sdp: &str,
        local_candidates: &[Candidate],
        sends_video: bool,
        sends_audio: bool,
    ) -> Result<Answered, String> {
        let Self {
            mut rtc,
            payload_limit,
            profiles,
        } = self;
        let offer =
            SdpOffer::from_sdp_string(offer_sdp).map_err(|e| format!("it does not parse ({e})"))?;
        let local_ufrag = rtc.direct_api().local_ice_credentials().ufrag;
        check_ice_ufrags(offer_sdp, local_ufrag.len())?;
        kvs_media::sdp::check_payload_types(offer_sdp)?;
        for candidate in local_candidates {
            rtc.add_local_candidate(candidate.clone());
        }
        let answer = rtc
            .sdp_api()
            .accept_offer(offer)
            .map_err(|e| format!("str0m refused it ({e})"))?;
        let mut video = None;
        let mut audio = None;
        for (mid, kind, direction) in media_lines(&rtc, offer_sdp) {
            let sends = matches!(direction, Direction::SendOnly | Direction::SendRecv);
            let codec = match kind {
                MediaKind::Video => Codec::H264,
                MediaKind::Audio => str0m_audio(AudioCodec::INGESTED),
            };
            // What `rtc.writer(mid).payload_params()` says, which str0m refuses in RTP mode: our
            // payload types that the peer accepted on this m-line.
            let pt = rtc.media(mid).and_then(|media| {
                rtc.codec_config()
                    .params()
                    .iter()
                    .find(|p| p.spec().codec == codec && media.remote_pts().contains(&p.pt()))
                    .map(|p| p.pt())
            });
            match (kind, pt) {
                (MediaKind::Video, Some(pt)) if sends => video = Some((mid, pt)),
                (MediaKind::Audio, Some(pt)) if sends => audio = Some((mid, pt)),
                _ => {}
            }
        }
        if sends_video && video.is_none() {
            return Err(format!(
                "it has no H.264 video we can send in the source's profile (profile-level-id {})",
                profiles
                    .iter()
                    .map(|p| format!("{p:06x}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        if sends_audio && audio.is_none() {
            return Err(format!(
                "it has no {} audio we can send",
                AudioCodec::INGESTED
            ));
        }
        Ok(Answered {
            rtc,
            payload_limit,
            video,
            audio,
            sdp: answer.to_sdp_string(),
        })
    }
}

/// The H.264 profiles to offer for `sps`.
fn profiles_for(sps: Option<&[u8]>) -> Vec<u32> {
    match sps.and_then(media::profile_level_id) {
        Some(id) => vec![id],
        None => ALLOWED_H264.to_vec(),
    }
}

/// Every `a=ice-ufrag` of the offer must be 4 to 256 ICE characters (RFC 8839 §5.4) and short
/// enough that the connectivity checks' USERNAME (`theirs:ours`, `ours_len` bytes of ours) fits
/// str0m's limit: a longer one would make str0m panic when it sends the first check.
fn check_ice_ufrags(offer_sdp: &str, ours_len: usize) -> Result<(), String> {
    let longest = STUN_USERNAME_LIMIT - 1 - ours_len;
    for ufrag in offer_sdp
        .lines()
        .filter_map(|l| l.trim_end_matches('\r').strip_prefix("a=ice-ufrag:"))
    {
        let is_ice_char = |c: char| c.is_ascii_alphanumeric() || c == '+' || c == '/';
        if let Some(bad) = ufrag.chars().find(|c| !is_ice_char(*c)) {
            return Err(format!(
                "its ice-ufrag holds {bad:?}, which is not an ICE character (letters, digits, \
                 '+' and '/', RFC 8839)"
            ));
        }
        if !(4..=256).contains(&ufrag.len()) {
            return Err(format!(
                "its ice-ufrag is {} characters long; RFC 8839 asks for 4 to 256",
                ufrag.len()
            ));
        }
        if ufrag.len() > longest {
            return Err(format!(
                "its ice-ufrag is {} characters long; str0m, the WebRTC stack, writes at most \
                 {STUN_USERNAME_LIMIT} bytes of STUN USERNAME, so the peer's ufrag can have at \
                 most {longest}",
                ufrag.len()
            ));
        }
    }
    Ok(())
}

/// str0m's name of an audio codec.
fn str0m_audio(codec: AudioCodec) -> Codec {
    match codec {
        AudioCodec::Opus => Codec::Opus,
    }
}

/// Offer to receive and send `codec` (str0m's defaults for its parameters).
fn enable_audio(codecs: &mut str0m::format::CodecConfig, codec: AudioCodec) {
    match codec {
        AudioCodec::Opus => codecs.enable_opus(true, false),
    }
}

/// The m-lines of the answer, with the direction we have in each, in the offer's order.
fn media_lines(rtc: &Rtc, offer_sdp: &str) -> Vec<(Mid, MediaKind, Direction)> {
    offer_sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=mid:"))
        .filter_map(|mid| {
            let mid = Mid::from(mid);
            rtc.media(mid).map(|m| (mid, m.kind(), m.direction()))
        })
        .collect()
}
