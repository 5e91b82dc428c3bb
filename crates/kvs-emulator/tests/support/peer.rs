//! A device-side WebRTC peer for tests: answers the storage offer with str0m and streams the
//! fixture H.264 file plus Opus silence in real time.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{json, Value};
use str0m::change::SdpOffer;
use str0m::format::Codec;
use str0m::media::{MediaKind, MediaTime, Mid};
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, Input, Output, Rtc, RtcConfig};
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use super::{decode_payload, encode_payload, send_json, Ws, WAIT};

/// A 20 ms Opus frame of silence (TOC 0xF8: CELT fullband 20 ms, mono).
const OPUS_SILENCE: [u8; 3] = [0xF8, 0xFF, 0xFE];

/// The fixture's access units (Annex-B), one per frame at 25 fps.
pub(crate) fn fixture_access_units() -> Vec<Vec<u8>> {
    kvs_media::h264::access_units(kvs_media::sample::H264)
        .into_iter()
        .map(<[u8]>::to_vec)
        .collect()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum VideoCodec {
    H264,
    Vp8,
}

/// What the test peer does once connected.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    pub codec: VideoCodec,
    /// How many times the 3 s fixture plays (0: return once connected or refused).
    pub loops: usize,
    /// Send the fixture's video (a master) or only audio (a viewer).
    pub send_video: bool,
    /// Send audio (Opus silence); without it a master's stream has no audio frames.
    pub send_audio: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Report {
    pub offer_sdp: String,
    pub candidates_before_offer: usize,
    pub connected: bool,
    pub video_frames_sent: usize,
    pub audio_frames_sent: usize,
    pub keyframe_requests: usize,
    pub status_responses: Vec<Value>,
    pub video_frames_received: usize,
    /// Received access units holding an IDR slice.
    pub keyframes_received: usize,
    pub audio_frames_received: usize,
}

/// Wait for the storage offer on `ws`, answer it and, if it connects, stream the 3 s fixture
/// `loops` times in real time (0: send nothing, return once connected or refused).
pub(crate) async fn answer_and_stream(ws: &mut Ws, codec: VideoCodec, loops: usize) -> Report {
    answer_and_run(
        ws,
        Plan {
            codec,
            loops,
            send_video: true,
            send_audio: true,
        },
    )
    .await
}

/// [`answer_and_stream`] with H.264 and no audio at all.
pub(crate) async fn answer_and_stream_video_only(ws: &mut Ws, loops: usize) -> Report {
    answer_and_run(
        ws,
        Plan {
            codec: VideoCodec::H264,
            loops,
            send_video: true,
            send_audio: false,
        },
    )
    .await
}

/// How the test peer's packets travel.
pub(crate) enum Transport {
    /// A UDP socket on 127.0.0.1 (a host candidate).
    Direct,
    /// Only through a TURN allocation (a relayed candidate): relay-only ICE.
    Turn {
        client: turn::client::Client,
        relay: Box<dyn webrtc_util::Conn + Send + Sync>,
        /// The local socket the allocation was made from.
        local: SocketAddr,
    },
}

impl Transport {
    /// Allocate a relay on the TURN server at `uri` (`turn:host:port?transport=udp`).
    pub(crate) async fn turn(
        uri: &str,
        username: &str,
        password: &str,
    ) -> Result<Self, turn::Error> {
        let server = uri
            .trim_start_matches("turn:")
            .split('?')
            .next()
            .unwrap()
            .to_owned();
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("UDP socket");
        let local = socket.local_addr().expect("local addr");
        let client = turn::client::Client::new(turn::client::ClientConfig {
            stun_serv_addr: server.clone(),
            turn_serv_addr: server,
            username: username.to_owned(),
            password: password.to_owned(),
            realm: String::new(),
            software: String::new(),
            rto_in_ms: 0,
            conn: std::sync::Arc::new(socket),
            vnet: None,
        })
        .await?;
        client.listen().await?;
        let relay = client.allocate().await?;
        Ok(Self::Turn {
            client,
            relay: Box::new(relay),
            local,
        })
    }
}

enum Io {
    Udp(UdpSocket),
    Relay(Box<dyn webrtc_util::Conn + Send + Sync>),
}

impl Io {
    async fn send_to(&self, data: &[u8], to: SocketAddr) {
        match self {
            Io::Udp(s) => {
                let _ = s.send_to(data, to).await;
            }
            Io::Relay(r) => {
                let _ = r.send_to(data, to).await;
            }
        }
    }

    async fn recv_from(&self, buf: &mut [u8]) -> (usize, SocketAddr) {
        match self {
            Io::Udp(s) => s.recv_from(buf).await.expect("UDP receive"),
            Io::Relay(r) => r.recv_from(buf).await.expect("relay receive"),
        }
    }
}

/// Wait for the storage offer on `ws`, answer it and, once connected, follow `plan`, counting
/// the media that arrives meanwhile.
pub(crate) async fn answer_and_run(ws: &mut Ws, plan: Plan) -> Report {
    answer_and_run_over(ws, plan, Transport::Direct).await
}

/// [`answer_and_run`] with the peer's packets going over `transport`.
pub(crate) async fn answer_and_run_over(ws: &mut Ws, plan: Plan, transport: Transport) -> Report {
    let Plan {
        codec,
        loops,
        send_video,
        send_audio,
    } = plan;
    let send_media = loops > 0;
    let mut report = Report::default();
    let mut early = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    let offer = loop {
        let frame = tokio::time::timeout_at(deadline, ws.next())
            .await
            .expect("offer arrives in time");
        let Some(Ok(Message::Text(text))) = frame else {
            continue;
        };
        let event: Value = serde_json::from_str(&text).expect("JSON event");
        assert!(
            event.get("senderClientId").is_none(),
            "storage messages carry no senderClientId: {event}"
        );
        match event["messageType"].as_str() {
            Some("SDP_OFFER") => break decode_payload(&event),
            Some("ICE_CANDIDATE") => early.push(decode_payload(&event)),
            _ => {}
        }
    };
    report.candidates_before_offer = early.len();
    report.offer_sdp = offer["sdp"].as_str().expect("offer sdp").to_owned();

    let mut config = RtcConfig::new().clear_codecs();
    match codec {
        VideoCodec::H264 => config = config.enable_h264(true),
        VideoCodec::Vp8 => config = config.enable_vp8(true),
    }
    let mut rtc: Rtc = config.enable_opus(true, false).build(Instant::now());
    let (io, local, candidate, turn_client) = match transport {
        Transport::Direct => {
            let socket = UdpSocket::bind("127.0.0.1:0").await.expect("UDP socket");
            let local = socket.local_addr().expect("local addr");
            let candidate = Candidate::host(local, "udp").expect("host candidate");
            (Io::Udp(socket), local, candidate, None)
        }
        Transport::Turn {
            client,
            relay,
            local,
        } => {
            let relayed = relay.local_addr().expect("relay address");
            let candidate = Candidate::relayed(relayed, local, "udp").expect("relayed candidate");
            (Io::Relay(relay), relayed, candidate, Some(client))
        }
    };
    let candidate_line = candidate.to_sdp_string();
    rtc.add_local_candidate(candidate);
    let offer = SdpOffer::from_sdp_string(&report.offer_sdp).expect("offer parses");
    let answer = rtc.sdp_api().accept_offer(offer).expect("offer accepted");
    let correlation = format!(
        "{}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    send_json(ws, &json!({
        "action": "SDP_ANSWER",
        "messagePayload": encode_payload(&json!({"type": "answer", "sdp": answer.to_sdp_string()})),
        "correlationId": correlation,
    }))
    .await;
    send_json(ws, &json!({
        "action": "ICE_CANDIDATE",
        "messagePayload": encode_payload(&json!({"candidate": candidate_line, "sdpMid": "0", "sdpMLineIndex": 0})),
    }))
    .await;
    for c in early {
        if let Some(Ok(c)) = c["candidate"].as_str().map(Candidate::from_sdp_string) {
            rtc.add_remote_candidate(c);
        }
    }

    let one_pass = fixture_access_units();
    let aus: Vec<Vec<u8>> = (0..loops.max(1))
        .flat_map(|_| one_pass.iter().cloned())
        .collect();
    let mut mids: (Option<Mid>, Option<Mid>) = (None, None);
    let mut started: Option<Instant> = None;
    let mut next_video = 0usize;
    let mut next_audio = 0usize;
    let mut buf = vec![0u8; 2048];
    let overall = tokio::time::Instant::now() + WAIT + Duration::from_secs(3 * loops as u64);
    loop {
        let timeout = loop {
            match rtc.poll_output().expect("poll") {
                Output::Timeout(t) => break t,
                Output::Transmit(t) => {
                    io.send_to(&t.contents, t.destination).await;
                }
                Output::Event(Event::Connected) => {
                    report.connected = true;
                    started.get_or_insert_with(Instant::now);
                }
                Output::Event(Event::MediaAdded(m)) => match m.kind {
                    MediaKind::Video => mids.0 = Some(m.mid),
                    MediaKind::Audio => mids.1 = Some(m.mid),
                },
                Output::Event(Event::KeyframeRequest(_)) => report.keyframe_requests += 1,
                Output::Event(Event::MediaData(data)) => {
                    if Some(data.mid) == mids.0 {
                        report.video_frames_received += 1;
                        report.keyframes_received +=
                            usize::from(kvs_media::h264::is_keyframe(&data.data));
                    } else if Some(data.mid) == mids.1 {
                        report.audio_frames_received += 1;
                    }
                }
                Output::Event(_) => {}
            }
        };
        // Write whatever media is due (25 fps video, 50 fps audio), one frame per pass.
        if let (true, Some(t0)) = (send_media, started) {
            let elapsed = t0.elapsed();
            if next_video < aus.len() && elapsed >= Duration::from_millis(40 * next_video as u64) {
                if let Some(mid) = mids.0.filter(|_| send_video) {
                    if let Some(writer) = rtc.writer(mid) {
                        let pt = writer
                            .payload_params()
                            .find(|p| p.spec().codec == Codec::H264)
                            .map(|p| p.pt());
                        if let Some(pt) = pt {
                            let time = MediaTime::from_90khz(3600 * next_video as u64);
                            writer
                                .write(pt, Instant::now(), time, aus[next_video].clone())
                                .expect("video write");
                            report.video_frames_sent += 1;
                        }
                    }
                }
                next_video += 1;
                continue;
            }
            if next_audio < aus.len() * 2
                && elapsed >= Duration::from_millis(20 * next_audio as u64)
            {
                if let Some(mid) = mids.1.filter(|_| send_audio) {
                    if let Some(writer) = rtc.writer(mid) {
                        let pt = writer
                            .payload_params()
                            .find(|p| p.spec().codec == Codec::Opus)
                            .map(|p| p.pt());
                        if let Some(pt) = pt {
                            let time = MediaTime::new(
                                960 * next_audio as u64,
                                str0m::media::Frequency::FORTY_EIGHT_KHZ,
                            );
                            writer
                                .write(pt, Instant::now(), time, OPUS_SILENCE.to_vec())
                                .expect("audio write");
                            report.audio_frames_sent += 1;
                        }
                    }
                }
                next_audio += 1;
                continue;
            }
            if next_video >= aus.len() && next_audio >= aus.len() * 2 {
                break;
            }
        } else if report.connected || !report.status_responses.is_empty() {
            break;
        }
        let media_tick = tokio::time::Instant::now() + Duration::from_millis(5);
        let wake = tokio::time::Instant::from_std(timeout.max(Instant::now())).min(media_tick);
        let input = tokio::select! {
            _ = tokio::time::sleep_until(overall) => break,
            _ = tokio::time::sleep_until(wake) => Input::Timeout(Instant::now()),
            (n, source) = io.recv_from(&mut buf) => {
                let Ok(contents) = buf[..n].try_into() else { continue };
                Input::Receive(Instant::now(), Receive { proto: Protocol::Udp, source, destination: local, contents })
            }
            frame = ws.next() => {
                match frame {
                    Some(Ok(Message::Text(text))) => {
                        let event: Value = serde_json::from_str(&text).expect("JSON event");
                        match event["messageType"].as_str() {
                            Some("ICE_CANDIDATE") => {
                                let c = decode_payload(&event);
                                if let Some(Ok(c)) = c["candidate"].as_str().map(Candidate::from_sdp_string) {
                                    rtc.add_remote_candidate(c);
                                }
                            }
                            Some("STATUS_RESPONSE") => report.status_responses.push(event),
                            _ => {}
                        }
                    }
                    Some(Ok(_)) => {}
                    None | Some(Err(_)) => break,
                }
                continue;
            }
        };
        rtc.handle_input(input).expect("input");
    }
    rtc.disconnect();
    if let Some(client) = turn_client {
        let _ = client.close().await;
    }
    report
}
