//! Malformed SDP for the tests of the checks both sides run before str0m reads an SDP.

/// `sdp` (an offer or answer with an H.264 video m-line and an audio m-line) with the video's
/// H.264 payload type mapped a second time in the audio m-line, to another H.264 profile: one
/// payload type with two configurations, which RFC 8843 §7.5 forbids and which made str0m
/// panic on the device's side ("Pt locked multiple times").
///
/// # Panics
/// When `sdp` has no H.264 `rtpmap`, no audio m-line or no `a=mid` in it.
pub fn with_the_video_payload_type_reused_in_audio(sdp: &str) -> String {
    let pt = sdp
        .lines()
        .find_map(|l| {
            l.trim_end()
                .strip_prefix("a=rtpmap:")?
                .strip_suffix(" H264/90000")
        })
        .expect("an H.264 payload type");
    let (head, audio) = sdp.split_once("m=audio").expect("an audio m-line");
    let mid = audio.find("a=mid:").expect("the audio m-line's mid");
    let (before_mid, from_mid) = audio.split_at(mid);
    let (mid_line, rest) = from_mid.split_once("\r\n").expect("a line");
    format!(
        "{head}m=audio{before_mid}{mid_line}\r\na=rtpmap:{pt} H264/90000\r\n\
         a=fmtp:{pt} level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=640032\r\n{rest}"
    )
}
