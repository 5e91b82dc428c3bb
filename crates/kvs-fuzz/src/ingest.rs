//! The ingestion session core's handling of what the storage peer sends: its SDP offer, its
//! trickled candidates (before and after the offer), datagrams, a rejected answer, time going
//! on. Driven through `kvs_webrtc_ingest::fuzzing::Core`, the sans-IO core as the driver runs it.
//!
//! An offer is usually built from parts (m-lines, codecs with their `fmtp`, ICE credentials, a
//! fingerprint, candidates), each part usually what a storage peer sends and sometimes
//! anything, so that str0m's SDP parser accepts enough of them for the answer to be made;
//! sometimes it is arbitrary text.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use arbitrary::{Arbitrary, Unstructured};
use kvs_webrtc_ingest::fuzzing::Core;

/// A token: usually a short alphanumeric string, sometimes anything.
#[derive(Debug, Arbitrary)]
enum Token {
    Word(u32),
    Any(String),
}

impl Token {
    fn text(&self) -> String {
        match self {
            Token::Word(n) => format!("t{n:x}"),
            Token::Any(s) => s.replace(['\r', '\n'], ""),
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Audio,
    Video,
    Application,
    Other(Token),
}

#[derive(Debug, Arbitrary)]
enum Direction {
    SendRecv,
    RecvOnly,
    SendOnly,
    Inactive,
    None,
}

#[derive(Debug, Arbitrary)]
enum CodecName {
    H264,
    Opus,
    Vp8,
    Rtx,
    Other(Token),
}

#[derive(Debug, Arbitrary)]
struct Fmtp {
    profile_level_id: u32,
    packetization_mode: u8,
    level_asymmetry: bool,
    apt: Option<u8>,
    extra: Option<Token>,
}

#[derive(Debug, Arbitrary)]
struct Codec {
    pt: u8,
    name: CodecName,
    clock: Option<u32>,
    channels: Option<u8>,
    fmtp: Option<Fmtp>,
    feedback: Vec<u8>,
}

#[derive(Debug, Arbitrary)]
struct MLine {
    kind: Kind,
    port: u16,
    secure_proto: bool,
    direction: Direction,
    mid: Option<Token>,
    codecs: Vec<Codec>,
    rtcp_mux: bool,
    rtcp_rsize: bool,
    ssrc: Option<(u32, Token)>,
    extmaps: Vec<(u8, u8)>,
    extra: Vec<(Token, Token)>,
}

#[derive(Debug, Arbitrary)]
enum Address {
    Loopback(u8),
    V4([u8; 4]),
    V6([u8; 16]),
    Name(Token),
}

impl Address {
    fn text(&self) -> String {
        match self {
            Address::Loopback(n) => format!("127.0.0.{n}"),
            Address::V4(o) => Ipv4Addr::from(*o).to_string(),
            Address::V6(o) => Ipv6Addr::from(*o).to_string(),
            Address::Name(t) => t.text(),
        }
    }
}

/// A `candidate:` line, usually well-formed.
#[derive(Debug, Arbitrary)]
enum CandidateLine {
    Built {
        foundation: u32,
        component: u8,
        tcp: bool,
        priority: u32,
        address: Address,
        port: u16,
        kind: u8,
        related: Option<(Address, u16)>,
        extra: Vec<(Token, Token)>,
        with_prefix: bool,
    },
    Text(String),
}

impl CandidateLine {
    fn text(&self) -> String {
        match self {
            CandidateLine::Text(s) => s.clone(),
            CandidateLine::Built {
                foundation,
                component,
                tcp,
                priority,
                address,
                port,
                kind,
                related,
                extra,
                with_prefix,
            } => {
                let kinds = ["host", "srflx", "relay", "prflx", "other"];
                let mut line = format!(
                    "{}candidate:{foundation} {} {} {priority} {} {port} typ {}",
                    if *with_prefix { "a=" } else { "" },
                    1 + component % 2,
                    if *tcp { "tcp" } else { "udp" },
                    address.text(),
                    kinds[usize::from(*kind) % kinds.len()],
                );
                if let Some((addr, port)) = related {
                    let _ = write!(line, " raddr {} rport {port}", addr.text());
                }
                for (k, v) in extra {
                    let _ = write!(line, " {} {}", k.text(), v.text());
                }
                line
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
struct BuiltOffer {
    session_id: u64,
    bundle: bool,
    ice_ufrag: Option<Token>,
    ice_pwd: Option<Token>,
    ice_in_media: bool,
    fingerprint: Option<[u8; 32]>,
    setup: u8,
    trickle: bool,
    media: Vec<MLine>,
    candidates: Vec<CandidateLine>,
    extra: Vec<(Token, Token)>,
}

impl BuiltOffer {
    fn text(&self) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "v=0\r\no=- {} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n",
            self.session_id
        );
        let mids: Vec<String> = self
            .media
            .iter()
            .take(4)
            .enumerate()
            .map(|(i, m)| m.mid.as_ref().map_or_else(|| i.to_string(), Token::text))
            .collect();
        if self.bundle {
            let _ = write!(s, "a=group:BUNDLE {}\r\n", mids.join(" "));
        }
        let mut ice = String::new();
        if let Some(u) = &self.ice_ufrag {
            let _ = write!(ice, "a=ice-ufrag:{}\r\n", u.text());
        }
        if let Some(p) = &self.ice_pwd {
            let _ = write!(ice, "a=ice-pwd:{}\r\n", p.text());
        }
        if self.trickle {
            ice.push_str("a=ice-options:trickle\r\n");
        }
        if let Some(f) = &self.fingerprint {
            let hex: Vec<String> = f.iter().map(|b| format!("{b:02X}")).collect();
            let _ = write!(ice, "a=fingerprint:sha-256 {}\r\n", hex.join(":"));
        }
        let setups = ["actpass", "active", "passive", "holdconn", "x"];
        let _ = write!(
            ice,
            "a=setup:{}\r\n",
            setups[usize::from(self.setup) % setups.len()]
        );
        if !self.ice_in_media {
            s.push_str(&ice);
        }
        for (k, v) in &self.extra {
            let _ = write!(s, "a={}:{}\r\n", k.text(), v.text());
        }
        for (m, mid) in self.media.iter().take(4).zip(&mids) {
            m.write(&mut s, mid, if self.ice_in_media { &ice } else { "" });
        }
        if !self.media.is_empty() {
            for c in self.candidates.iter().take(8) {
                let line = c.text();
                let line = line.trim_start_matches("a=");
                let _ = write!(s, "a={line}\r\n");
            }
        }
        s
    }
}

impl MLine {
    fn write(&self, s: &mut String, mid: &str, ice: &str) {
        let kind = match &self.kind {
            Kind::Audio => "audio".to_owned(),
            Kind::Video => "video".to_owned(),
            Kind::Application => "application".to_owned(),
            Kind::Other(t) => t.text(),
        };
        let proto = if self.secure_proto {
            "UDP/TLS/RTP/SAVPF"
        } else {
            "RTP/AVP"
        };
        let codecs: Vec<&Codec> = self.codecs.iter().take(6).collect();
        let pts: Vec<String> = codecs.iter().map(|c| c.pt.to_string()).collect();
        let _ = write!(
            s,
            "m={kind} {} {proto} {}\r\nc=IN IP4 0.0.0.0\r\n",
            self.port,
            pts.join(" ")
        );
        s.push_str(ice);
        let _ = write!(s, "a=mid:{mid}\r\n");
        match self.direction {
            Direction::SendRecv => s.push_str("a=sendrecv\r\n"),
            Direction::RecvOnly => s.push_str("a=recvonly\r\n"),
            Direction::SendOnly => s.push_str("a=sendonly\r\n"),
            Direction::Inactive => s.push_str("a=inactive\r\n"),
            Direction::None => {}
        }
        if self.rtcp_mux {
            s.push_str("a=rtcp-mux\r\n");
        }
        if self.rtcp_rsize {
            s.push_str("a=rtcp-rsize\r\n");
        }
        let uris = [
            "urn:ietf:params:rtp-hdrext:sdes:mid",
            "urn:ietf:params:rtp-hdrext:ssrc-audio-level",
            "http://www.webrtc.org/experiments/rtp-hdrext/abs-send-time",
            "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01",
            "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id",
            "urn:3gpp:video-orientation",
            "urn:x:unknown",
        ];
        for (id, uri) in self.extmaps.iter().take(6) {
            let _ = write!(
                s,
                "a=extmap:{} {}\r\n",
                id % 16,
                uris[usize::from(*uri) % uris.len()]
            );
        }
        for c in codecs {
            c.write(s);
        }
        if let Some((ssrc, cname)) = &self.ssrc {
            let _ = write!(s, "a=ssrc:{ssrc} cname:{}\r\n", cname.text());
        }
        for (k, v) in self.extra.iter().take(4) {
            let _ = write!(s, "a={}:{}\r\n", k.text(), v.text());
        }
    }
}

impl Codec {
    fn write(&self, s: &mut String) {
        let (name, clock, channels) = match &self.name {
            CodecName::H264 => ("H264".to_owned(), 90_000, None),
            CodecName::Opus => ("opus".to_owned(), 48_000, Some(2)),
            CodecName::Vp8 => ("VP8".to_owned(), 90_000, None),
            CodecName::Rtx => ("rtx".to_owned(), 90_000, None),
            CodecName::Other(t) => (t.text(), 8_000, None),
        };
        let clock = self.clock.unwrap_or(clock);
        let channels = self.channels.map(u32::from).or(channels);
        match channels {
            Some(c) => {
                let _ = write!(s, "a=rtpmap:{} {name}/{clock}/{c}\r\n", self.pt);
            }
            None => {
                let _ = write!(s, "a=rtpmap:{} {name}/{clock}\r\n", self.pt);
            }
        }
        if let Some(f) = &self.fmtp {
            let mut params = vec![
                format!("profile-level-id={:06x}", f.profile_level_id & 0xff_ffff),
                format!("packetization-mode={}", f.packetization_mode % 3),
                format!("level-asymmetry-allowed={}", u8::from(f.level_asymmetry)),
            ];
            if let Some(apt) = f.apt {
                params = vec![format!("apt={apt}")];
            }
            if let Some(extra) = &f.extra {
                params.push(extra.text());
            }
            let _ = write!(s, "a=fmtp:{} {}\r\n", self.pt, params.join(";"));
        }
        let kinds = [
            "nack",
            "nack pli",
            "ccm fir",
            "goog-remb",
            "transport-cc",
            "x",
        ];
        for k in self.feedback.iter().take(4) {
            let _ = write!(
                s,
                "a=rtcp-fb:{} {}\r\n",
                self.pt,
                kinds[usize::from(*k) % kinds.len()]
            );
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Offer {
    Built(BuiltOffer),
    Text(String),
}

impl Offer {
    fn text(&self) -> String {
        match self {
            Offer::Built(b) => b.text(),
            Offer::Text(t) => t.clone(),
        }
    }
}

/// What happens after the core has joined.
#[derive(Debug, Arbitrary)]
enum Step {
    Offer(Offer),
    Candidate(CandidateLine),
    Datagram {
        from: u8,
        stun: bool,
        bytes: Vec<u8>,
    },
    Advance(u16),
    AnswerRejected(String),
}

#[derive(Debug, Arbitrary)]
struct Scenario {
    early_candidates: Vec<CandidateLine>,
    offer: Offer,
    steps: Vec<Step>,
}

/// Steps taken from one input at most.
const MAX_STEPS: usize = 24;

/// Run the core through a scenario built from the bytes; bytes that start with `v=0` are an
/// offer as they are (the seed corpus holds such offers), answered and left to run for a
/// while.
pub fn offer(data: &[u8]) {
    let _ = offer_run(data);
}

/// [`offer`], saying how many offers were answered (`None`: the bytes do not make a
/// scenario). The seed corpus is made of inputs that get answers.
pub fn offer_run(data: &[u8]) -> Option<usize> {
    if data.starts_with(b"v=0") {
        #[allow(clippy::disallowed_methods)]
        let mut core = Core::joined(Instant::now());
        core.offer(&String::from_utf8_lossy(data));
        core.advance(Duration::from_millis(500));
        return Some(core.answers().len());
    }
    let u = Unstructured::new(data);
    let scenario = Scenario::arbitrary_take_rest(u).ok()?;
    // Simulated time from an arbitrary origin: the core never reads a clock.
    #[allow(clippy::disallowed_methods)]
    let t0 = Instant::now();
    let mut core = Core::joined(t0);
    for c in scenario.early_candidates.iter().take(8) {
        core.remote_candidate(&c.text());
    }
    core.offer(&scenario.offer.text());
    for step in scenario.steps.iter().take(MAX_STEPS) {
        match step {
            Step::Offer(o) => core.offer(&o.text()),
            Step::Candidate(c) => core.remote_candidate(&c.text()),
            Step::Datagram { from, stun, bytes } => {
                let source = SocketAddr::new(
                    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
                    40_000 + u16::from(*from % 4),
                );
                let mut datagram = bytes.clone();
                if *stun && datagram.len() >= 8 {
                    // A STUN header: type, length of the rest, magic cookie.
                    datagram[0] &= 0x3f;
                    let len = (datagram.len().saturating_sub(20) as u16).to_be_bytes();
                    datagram[2..4].copy_from_slice(&len);
                    datagram[4..8].copy_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
                }
                core.datagram(source, &datagram);
            }
            Step::Advance(ms) => core.advance(Duration::from_millis(u64::from(*ms) * 4)),
            Step::AnswerRejected(why) => core.answer_rejected(why),
        }
        if core.ended().is_some() {
            break;
        }
    }
    for answer in core.answers() {
        assert!(
            answer.starts_with("v=0"),
            "an answer that is not SDP: {answer:?}"
        );
    }
    Some(core.answers().len())
}

/// The offer the emulator's storage peer sends, in the form [`offer`] builds: a seed.
pub fn seed_offer_text() -> &'static str {
    "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
     a=group:BUNDLE 0 1\r\na=ice-options:trickle\r\n\
     m=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\nc=IN IP4 0.0.0.0\r\n\
     a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
     a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
     a=setup:actpass\r\na=mid:0\r\na=recvonly\r\na=rtcp-mux\r\na=rtcp-rsize\r\n\
     a=rtpmap:96 H264/90000\r\na=rtcp-fb:96 nack\r\na=rtcp-fb:96 nack pli\r\n\
     a=fmtp:96 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n\
     a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP8/90000\r\n\
     m=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\n\
     a=ice-ufrag:abcd\r\na=ice-pwd:abcdefghijklmnopqrstuvwx\r\n\
     a=fingerprint:sha-256 6B:8B:5D:EA:59:04:20:23:29:C8:87:1C:CC:87:32:BE:DD:8C:66:A5:8E:50:55:EA:8C:D3:B6:5C:09:5E:D6:BC\r\n\
     a=setup:actpass\r\na=mid:1\r\na=sendrecv\r\na=rtcp-mux\r\n\
     a=rtpmap:111 opus/48000/2\r\na=fmtp:111 minptime=10;useinbandfec=1\r\n\
     a=candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host\r\n"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_offer_is_answered() {
        #[allow(clippy::disallowed_methods)]
        let mut core = Core::joined(Instant::now());
        core.offer(seed_offer_text());
        assert_eq!(core.answers().len(), 1, "{:?}", core.ended());
        core.remote_candidate("candidate:2 1 udp 2130706431 127.0.0.1 40001 typ host");
        core.advance(Duration::from_secs(1));
        assert!(core.ended().is_none());
    }
}
