//! The storage session's check of an SDP answer (protocol notes §5.1, §8.6): H.264 with an
//! accepted profile on video and Opus on audio, in the directions the role allows.

use kvs_media::h264::profile_name;
use kvs_media::AudioCodec;

/// Whose answer it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Answerer {
    /// The master must send both video and audio.
    Master,
    /// A viewer must not send video.
    Viewer,
}

struct Section {
    kind: String,
    port: String,
    payload_types: Vec<String>,
    rtpmap: Vec<(String, String)>,
    fmtp: Vec<(String, String)>,
    direction: &'static str,
}

fn sections(sdp: &str) -> Vec<Section> {
    let mut out: Vec<Section> = Vec::new();
    let mut session_direction = "sendrecv";
    for line in sdp.lines().map(str::trim_end) {
        if let Some(m) = line.strip_prefix("m=") {
            let mut parts = m.split_whitespace();
            let kind = parts.next().unwrap_or("").to_owned();
            let port = parts.next().unwrap_or("0").to_owned();
            let _proto = parts.next();
            out.push(Section {
                kind,
                port,
                payload_types: parts.map(str::to_owned).collect(),
                rtpmap: Vec::new(),
                fmtp: Vec::new(),
                direction: session_direction,
            });
            continue;
        }
        let direction = match line {
            "a=sendrecv" => Some("sendrecv"),
            "a=sendonly" => Some("sendonly"),
            "a=recvonly" => Some("recvonly"),
            "a=inactive" => Some("inactive"),
            _ => None,
        };
        match (out.last_mut(), direction) {
            (Some(section), Some(d)) => section.direction = d,
            (None, Some(d)) => session_direction = d,
            (Some(section), None) => {
                if let Some(rest) = line.strip_prefix("a=rtpmap:") {
                    if let Some((pt, codec)) = rest.split_once(' ') {
                        section.rtpmap.push((pt.to_owned(), codec.to_owned()));
                    }
                } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
                    if let Some((pt, params)) = rest.split_once(' ') {
                        section.fmtp.push((pt.to_owned(), params.to_owned()));
                    }
                }
            }
            (None, None) => {}
        }
    }
    out
}

impl Section {
    fn codec_of(&self, pt: &str) -> Option<String> {
        self.rtpmap
            .iter()
            .find(|(p, _)| p == pt)
            .map(|(_, c)| c.split('/').next().unwrap_or("").to_ascii_lowercase())
    }

    /// The codec the answer selected: the first payload type that is not a repair format.
    fn selected(&self) -> Option<(String, String)> {
        self.payload_types.iter().find_map(|pt| {
            let codec = self.codec_of(pt)?;
            (!matches!(codec.as_str(), "rtx" | "red" | "ulpfec" | "flexfec-03"))
                .then(|| (pt.clone(), codec))
        })
    }

    fn sends(&self) -> bool {
        matches!(self.direction, "sendrecv" | "sendonly")
    }

    fn rejected(&self) -> bool {
        self.port == "0"
    }
}

/// Check an answer. The error text goes into STATUS_RESPONSE's description.
pub(crate) fn check(sdp: &str, answerer: Answerer) -> Result<(), String> {
    let sections = sections(sdp);
    let video = sections.iter().find(|s| s.kind == "video");
    let audio = sections.iter().find(|s| s.kind == "audio");

    match answerer {
        Answerer::Master => {
            let video = video
                .filter(|v| !v.rejected())
                .ok_or("The answer has no video; H.264 video is required.")?;
            let (pt, codec) = video
                .selected()
                .ok_or("The answer selects no video codec.")?;
            if codec != "h264" {
                return Err(format!(
                    "The answer selects {codec} video; only H.264 is accepted."
                ));
            }
            let profile_level_id = video
                .fmtp
                .iter()
                .find(|(p, _)| *p == pt)
                .and_then(|(_, params)| {
                    params.split(';').find_map(|kv| {
                        let (k, v) = kv.trim().split_once('=')?;
                        k.eq_ignore_ascii_case("profile-level-id")
                            .then(|| v.to_owned())
                    })
                })
                .unwrap_or_else(|| "42000a".to_owned());
            let profile = u32::from_str_radix(&profile_level_id, 16)
                .ok()
                .filter(|_| profile_level_id.len() == 6)
                .and_then(|v| profile_name((v >> 16) as u8, (v >> 8) as u8))
                .ok_or_else(|| {
                    format!("H.264 profile-level-id {profile_level_id} is not an accepted profile.")
                })?;
            if !video.sends() {
                return Err("The master's answer does not send video.".into());
            }
            tracing::debug!(profile, "answer selects H.264");
        }
        Answerer::Viewer => {
            if let Some(video) = video {
                if !video.rejected() && video.sends() {
                    return Err("A viewer must not send video.".into());
                }
            }
        }
    }
    let accepted = AudioCodec::INGESTED;
    let audio = audio
        .filter(|a| !a.rejected())
        .ok_or_else(|| format!("The answer has no audio; {accepted} audio is required."))?;
    let (_, codec) = audio
        .selected()
        .ok_or("The answer selects no audio codec.")?;
    if codec != accepted.sdp_name() {
        return Err(format!(
            "The answer selects {codec} audio; only {accepted} is accepted."
        ));
    }
    if answerer == Answerer::Master && !audio.sends() {
        return Err("The master's answer does not send audio.".into());
    }
    Ok(())
}

/// The longest STUN USERNAME (`client-ufrag:our-ufrag`) str0m writes in a connectivity check;
/// it panics on a longer one (RFC 8489 allows 512 bytes).
const STUN_USERNAME_LIMIT: usize = 128;

/// The answer's `a=ice-ufrag`s: ICE characters only (RFC 8839 §5.4), 4 to 256 of them, and
/// short enough beside ours (`ours_len` bytes) for str0m to sign the connectivity checks.
pub(crate) fn check_ice_ufrags(sdp: &str, ours_len: usize) -> Result<(), String> {
    let longest = STUN_USERNAME_LIMIT - 1 - ours_len;
    let ufrags = sdp
        .lines()
        .filter_map(|l| l.trim_end().strip_prefix("a=ice-ufrag:"));
    for ufrag in ufrags {
        let ice_char = |c: &char| c.is_ascii_alphanumeric() || matches!(c, '+' | '/');
        if let Some(c) = ufrag.chars().find(|c| !ice_char(c)) {
            return Err(format!(
                "The answer's ice-ufrag holds {c:?}, which is not an ICE character."
            ));
        }
        let len = ufrag.len();
        if !(4..=longest.min(256)).contains(&len) {
            return Err(format!(
                "The answer's ice-ufrag is {len} characters; it must have 4 to {longest}."
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(
        video_pts: &str,
        video_rtpmap: &str,
        fmtp: &str,
        video_dir: &str,
        audio_rtpmap: &str,
    ) -> String {
        format!(
            "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
             m=video 9 UDP/TLS/RTP/SAVPF {video_pts}\r\na=mid:0\r\na={video_dir}\r\n{video_rtpmap}{fmtp}\
             m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:1\r\na=sendrecv\r\n{audio_rtpmap}"
        )
    }

    #[test]
    fn accepts_h264_and_opus() {
        let sdp = answer(
            "102 103",
            "a=rtpmap:102 H264/90000\r\na=rtpmap:103 rtx/90000\r\n",
            "a=fmtp:102 level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f\r\n",
            "sendonly",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        check(&sdp, Answerer::Master).unwrap();
    }

    #[test]
    fn refuses_vp8_as_in_the_troubleshooting_guide() {
        let sdp = answer(
            "120",
            "a=rtpmap:120 VP8/90000\r\n",
            "",
            "sendonly",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert!(check(&sdp, Answerer::Master).unwrap_err().contains("vp8"));
    }

    #[test]
    fn refuses_unaccepted_profiles_and_missing_sending() {
        let high10 = answer(
            "102",
            "a=rtpmap:102 H264/90000\r\n",
            "a=fmtp:102 profile-level-id=6e001f\r\n",
            "sendonly",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert!(check(&high10, Answerer::Master)
            .unwrap_err()
            .contains("6e001f"));
        let inactive = answer(
            "102",
            "a=rtpmap:102 H264/90000\r\n",
            "",
            "inactive",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert!(check(&inactive, Answerer::Master)
            .unwrap_err()
            .contains("does not send video"));
        let pcmu = answer(
            "102",
            "a=rtpmap:102 H264/90000\r\n",
            "",
            "sendonly",
            "a=rtpmap:111 PCMU/8000\r\n",
        );
        assert!(check(&pcmu, Answerer::Master).unwrap_err().contains("pcmu"));
    }

    #[test]
    fn viewers_must_not_send_video() {
        let sending = answer(
            "102",
            "a=rtpmap:102 H264/90000\r\n",
            "",
            "sendrecv",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        assert!(check(&sending, Answerer::Viewer).is_err());
        let receiving = answer(
            "102",
            "a=rtpmap:102 H264/90000\r\n",
            "",
            "recvonly",
            "a=rtpmap:111 opus/48000/2\r\n",
        );
        check(&receiving, Answerer::Viewer).unwrap();
    }
}
