//! Rules an SDP offer or answer from the network must keep before it reaches str0m, which
//! assumes them: both sides of the ingestion (the device's answer to the storage peer's offer,
//! the emulator's storage peer reading a client's answer) check them first, so that a
//! malformed SDP is refused with the rule it breaks instead of making str0m panic.

use std::collections::HashMap;

/// One payload type's configuration in one m-line: its `rtpmap` and `fmtp` values.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PayloadConfig<'a> {
    rtpmap: Option<&'a str>,
    fmtp: Option<&'a str>,
}

/// Each RTP payload type of `sdp` must name one configuration: mapped once per m-line, and
/// the same `rtpmap` and `fmtp` wherever bundled m-lines share it (RFC 8843 §7.5). str0m locks
/// each of its codecs to the peer's payload type and panics ("Pt locked multiple times") when
/// one type is locked twice, which an SDP that maps one type to two configurations does.
///
/// # Errors
/// The rule broken, naming the payload type and the m-lines (counted from 1).
pub fn check_payload_types(sdp: &str) -> Result<(), String> {
    // Per m-line, per payload type: its configuration.
    let mut lines: Vec<HashMap<&str, PayloadConfig<'_>>> = Vec::new();
    for line in sdp.lines().map(|l| l.trim_end_matches('\r')) {
        if line.starts_with("m=") {
            lines.push(HashMap::new());
            continue;
        }
        let Some(current) = lines.last_mut() else {
            continue;
        };
        let (attribute, rest) = if let Some(rest) = line.strip_prefix("a=rtpmap:") {
            ("rtpmap", rest)
        } else if let Some(rest) = line.strip_prefix("a=fmtp:") {
            ("fmtp", rest)
        } else {
            continue;
        };
        let (pt, value) = rest.split_once(' ').unwrap_or((rest, ""));
        let config = current.entry(pt).or_default();
        let slot = if attribute == "rtpmap" {
            &mut config.rtpmap
        } else {
            &mut config.fmtp
        };
        if slot.is_some() {
            return Err(format!(
                "m-line {} has two a={attribute} lines for payload type {pt}",
                lines.len()
            ));
        }
        *slot = Some(value.trim());
    }
    let mut first_seen: HashMap<&str, (usize, &PayloadConfig<'_>)> = HashMap::new();
    for (index, configs) in lines.iter().enumerate() {
        let mut pts: Vec<&&str> = configs.keys().collect();
        pts.sort();
        for pt in pts {
            let config = &configs[*pt];
            match first_seen.get(*pt) {
                Some((first, seen)) if *seen != config => {
                    return Err(format!(
                        "payload type {pt} is {} in m-line {} and {} in m-line {}; bundled \
                         m-lines may share a payload type only for the same configuration \
                         (RFC 8843 §7.5)",
                        describe(seen),
                        first + 1,
                        describe(config),
                        index + 1
                    ))
                }
                Some(_) => {}
                None => {
                    first_seen.insert(pt, (index, config));
                }
            }
        }
    }
    Ok(())
}

fn describe(config: &PayloadConfig<'_>) -> String {
    format!(
        "{} ({})",
        config.rtpmap.unwrap_or("without rtpmap"),
        config
            .fmtp
            .map_or("no fmtp".to_owned(), |f| format!("fmtp {f}"))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const VIDEO: &str = "m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\n\
        a=rtpmap:96 H264/90000\r\n\
        a=fmtp:96 packetization-mode=1;profile-level-id=42e01f\r\n\
        a=rtpmap:97 rtx/90000\r\n\
        a=fmtp:97 apt=96\r\n";
    const AUDIO: &str = "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\n\
        a=rtpmap:111 opus/48000/2\r\n\
        a=fmtp:111 minptime=10;useinbandfec=1\r\n";

    fn sdp(media: &[&str]) -> String {
        format!(
            "v=0\r\ns=-\r\nt=0 0\r\na=group:BUNDLE 0 1\r\n{}",
            media.concat()
        )
    }

    #[test]
    fn distinct_payload_types_and_one_shared_the_same_way_pass() {
        assert_eq!(check_payload_types(&sdp(&[VIDEO, AUDIO])), Ok(()));
        // Two video m-lines with the same configuration under the same numbers.
        assert_eq!(check_payload_types(&sdp(&[VIDEO, VIDEO, AUDIO])), Ok(()));
        // Session-level lines before the first m-line are not a payload's.
        assert_eq!(
            check_payload_types(&format!("a=rtpmap:96 VP8/90000\r\n{}", sdp(&[VIDEO]))),
            Ok(())
        );
    }

    #[test]
    fn one_payload_type_with_two_configurations_is_refused_with_the_rule() {
        // As the fuzzer's offer: the audio m-line maps 96 to H.264 with other parameters.
        let other = "m=audio 0 UDP/TLS/RTP/SAVPF 111\r\n\
            a=rtpmap:96 H264/90000\r\n\
            a=fmtp:96 packetization-mode=1;profile-level-id=42e01f;level-asymmetry-allowed=1\r\n\
            a=rtpmap:111 opus/48000/2\r\n";
        let err = check_payload_types(&sdp(&[VIDEO, other])).unwrap_err();
        assert!(err.contains("payload type 96"), "{err}");
        assert!(
            err.contains("m-line 1") && err.contains("m-line 2"),
            "{err}"
        );
        assert!(err.contains("RFC 8843"), "{err}");
        let twice = VIDEO.replace("a=rtpmap:97 rtx/90000", "a=rtpmap:96 VP8/90000");
        let err = check_payload_types(&sdp(&[&twice])).unwrap_err();
        assert_eq!(err, "m-line 1 has two a=rtpmap lines for payload type 96");
        let fmtp_twice = format!("{VIDEO}a=fmtp:97 apt=98\r\n");
        assert!(check_payload_types(&sdp(&[&fmtp_twice]))
            .unwrap_err()
            .contains("two a=fmtp lines for payload type 97"));
        // The same type once with an fmtp, once without.
        let bare = "m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=rtpmap:96 H264/90000\r\n";
        assert!(check_payload_types(&sdp(&[VIDEO, bare])).is_err());
    }
}
