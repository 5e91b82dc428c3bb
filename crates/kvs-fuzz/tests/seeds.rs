//! How the committed seed corpora (`fuzz/corpus/<target>/`) were made, from the project's
//! sample clip and fixtures: `cargo test -p kvs-fuzz --test seeds -- --ignored` writes them
//! again. Structure-aware targets get inputs found by a seeded search for bytes that reach
//! their interesting states (an allocation made, an offer answered, a request accepted).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use kvs_fuzz::smoke::Rng;
use serde_json::json;

fn dir(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../fuzz/corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("the corpus directory");
    dir
}

fn write(target: &str, name: &str, bytes: &[u8]) {
    std::fs::write(dir(target).join(name), bytes).expect("a seed file");
}

/// Random inputs of `len` bytes (seeded) until `keep` says yes `count` times, or 20 000 tried
/// (a target without seeds of that kind still has its others, and libFuzzer finds its way).
fn search(count: usize, len: usize, keep: impl Fn(&[u8]) -> bool) -> Vec<Vec<u8>> {
    let found = search_at_most(count, len, 20_000, keep);
    eprintln!("seeds: the search found {} of {count}", found.len());
    found
}

/// Like [`search`], but trying `tries` inputs at most and keeping what it found.
fn search_at_most(
    count: usize,
    len: usize,
    tries: usize,
    keep: impl Fn(&[u8]) -> bool,
) -> Vec<Vec<u8>> {
    let mut rng = Rng::new(25);
    let mut found = Vec::new();
    for _ in 0..tries {
        let bytes: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        if keep(&bytes) {
            found.push(bytes);
            if found.len() == count {
                break;
            }
        }
    }
    found
}

fn b64(value: serde_json::Value) -> String {
    base64::engine::general_purpose::STANDARD.encode(value.to_string())
}

#[test]
#[ignore = "writes fuzz/corpus; run by hand to remake the seeds"]
fn write_seeds() {
    // kvs-media: the sample clip's beginnings, cut where a piece stays small.
    let units = kvs_media::h264::access_units(kvs_media::sample::H264);
    let first = units[0];
    write(
        "annexb_reader",
        "sample-sps-pps-idr-cut",
        &first[..first.len().min(1500)],
    );
    write("annexb_reader", "sample-p-frames", &units[1..4].concat());
    write(
        "annexb_reader",
        "lib-doc-example",
        &[
            0, 0, 0, 1, 0x67, 0x42, 0xe0, 0x1f, 0, 0, 0, 1, 0x68, 0xce, 0, 0, 1, 0x65, 0x88, 0x80,
            0, 0, 1, 0x41, 0x9a, 0x00,
        ],
    );
    for nal in kvs_media::h264::nal_units(first) {
        if kvs_media::h264::nal_type(nal) == kvs_media::h264::NAL_SPS {
            // The target puts the NAL header (0x67) in front itself.
            write("h264_sps", "sample-sps", &nal[1..]);
        }
    }
    write(
        "h264_sps",
        "high-profile-1080p",
        &[
            0x64, 0x00, 0x28, 0xac, 0xd9, 0x40, 0x78, 0x02, 0x27, 0xe5, 0x84, 0x00, 0x00, 0x03,
            0x00, 0x04, 0x00, 0x00, 0x03, 0x00, 0xf0, 0x3c, 0x60, 0xc6, 0x58,
        ],
    );

    // The first pages of the sample's Ogg Opus: OpusHead, OpusTags and a few audio pages.
    let ogg = kvs_media::sample::OPUS;
    let mut at = 0;
    let mut pages = Vec::new();
    while at + 27 <= ogg.len() && pages.len() < 4 {
        let segments = usize::from(ogg[at + 26]);
        let body: usize = ogg[at + 27..at + 27 + segments]
            .iter()
            .map(|&b| usize::from(b))
            .sum();
        let end = at + 27 + segments + body;
        pages.push(end);
        at = end;
    }
    write(
        "ogg_opus_reader",
        "sample-first-pages",
        &ogg[..pages[3].min(3000)],
    );
    write("ogg_opus_reader", "sample-headers-only", &ogg[..pages[1]]);

    // A small Matroska file from kvs-media's own writer: the sample's parameter sets, two
    // pictures and two Opus packets.
    let tmp = std::env::temp_dir().join(format!("kvs-fuzz-seed-{}.mkv", std::process::id()));
    let nals = kvs_media::h264::nal_units(first);
    let sps = nals[0].to_vec();
    let pps = nals[1].to_vec();
    let mut writer = kvs_media::mkv::MkvWriter::create(
        &tmp,
        &kvs_media::mkv::VideoParams {
            width: 320,
            height: 240,
            sps,
            pps,
        },
    )
    .expect("an mkv writer");
    write_frames(&mut writer);
    writer.finish().expect("the mkv finished");
    let mkv = std::fs::read(&tmp).expect("the mkv seed");
    let _ = std::fs::remove_file(&tmp);
    write("mkv_reader", "writer-small", &mkv);
    write(
        "mkv_reader",
        "sample-header-cut",
        &kvs_media::sample::MKV[..2500],
    );

    // Signaling frames as the service sends them.
    let offer = kvs_fuzz::ingest::seed_offer_text();
    let frames = [
        json!({"messageType": "SDP_OFFER", "messagePayload": b64(json!({"type": "offer", "sdp": offer}))}),
        json!({"messageType": "ICE_CANDIDATE", "messagePayload": b64(json!({"candidate": "candidate:1 1 udp 2130706431 127.0.0.1 40000 typ host", "sdpMid": "0", "sdpMLineIndex": 0}))}),
        json!({"messageType": "SDP_ANSWER", "senderClientId": "viewer-1", "messagePayload": b64(json!({"type": "answer", "sdp": "v=0\r\n"}))}),
        json!({"messageType": "STATUS_RESPONSE", "statusResponse": {"correlationId": "c1", "errorType": "InvalidArgumentException", "statusCode": "400", "description": "no", "success": false}}),
        json!({"messageType": "GO_AWAY"}),
        json!({"messageType": "RECONNECT_ICE_SERVER"}),
    ];
    for (i, frame) in frames.iter().enumerate() {
        write(
            "signaling_message",
            &format!("service-frame-{i}"),
            frame.to_string().as_bytes(),
        );
    }

    // The storage peer's offer as text, and built scenarios that get answered (random bytes
    // rarely build an offer str0m answers: what a short search finds).
    write("ingest_offer", "storage-offer", offer.as_bytes());
    write(
        "ingest_offer",
        "storage-offer-video-only",
        &offer.as_bytes()[..offer.find("m=audio").unwrap_or(offer.len())],
    );
    for (i, seed) in search_at_most(3, 600, 5_000, |b| {
        kvs_fuzz::ingest::offer_run(b).is_some_and(|n| n > 0)
    })
    .iter()
    .enumerate()
    {
        write("ingest_offer", &format!("answered-{i}"), seed);
    }

    // TURN: sessions that end up allocated (whichever transport the bytes pick).
    for (i, seed) in search(4, 256, |b| kvs_fuzz::turn::allocation_run(b) == Some(true))
        .iter()
        .enumerate()
    {
        write("turn_allocation", &format!("allocated-{i}"), seed);
    }
    for (i, uri) in [
        "turn:18-236-143-136.t-4f692171.kinesisvideo.us-west-2.amazonaws.com:443?transport=udp",
        "turns:18-236-143-136.t-4f692171.kinesisvideo.us-west-2.amazonaws.com:443?transport=tcp",
        "turns:[::1]:5349?transport=udp",
        "stun:stun.kinesisvideo.us-west-2.amazonaws.com:443",
    ]
    .iter()
    .enumerate()
    {
        write("turn_uri", &format!("uri-{i}"), uri.as_bytes());
    }

    // SigV4: requests the verifier accepts, and raw parts.
    for (i, seed) in search(4, 200, |b| kvs_fuzz::emulator::sigv4_run(b) == Some(true))
        .iter()
        .enumerate()
    {
        write("emulator_sigv4", &format!("accepted-{i}"), seed);
    }
    write("emulator_sigv4", "amz-date", b"20231114T221320Z");
    write(
        "emulator_sigv4",
        "query",
        b"X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20231114%2Fus-west-2%2Fkinesisvideo%2Faws4_request&X-Amz-Date=20231114T221320Z&X-Amz-Expires=299&X-Amz-SignedHeaders=host&X-Amz-Signature=00",
    );

    // Client frames as the SDKs send them.
    let client_frames = [
        json!({"action": "SDP_ANSWER", "messagePayload": b64(json!({"type": "answer", "sdp": "v=0\r\n"})), "correlationId": "1700000000000"}),
        json!({"action": "ICE_CANDIDATE", "recipientClientId": "viewer-1", "messagePayload": b64(json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host"}))}),
        json!({"Action": "SDP_OFFER", "MessagePayload": "e30=", "CorrelationId": "x"}),
    ];
    for (i, frame) in client_frames.iter().enumerate() {
        write(
            "emulator_client_frame",
            &format!("client-frame-{i}"),
            frame.to_string().as_bytes(),
        );
    }

    for (name, bytes) in [
        (
            "body",
            &br#"{"ChannelName":"front-door","ChannelType":"SINGLE_MASTER"}"#[..],
        ),
        ("origin-loopback", b"http://127.0.0.1:8080"),
        ("origin-null", b"null"),
        ("origin-site", b"https://example.com"),
    ] {
        write("emulator_request_parts", name, bytes);
    }

    // Whole requests: built ones that the emulator answers, and a raw one.
    for (i, seed) in search(4, 120, |b| !b.is_empty()).iter().enumerate() {
        write("emulator_http", &format!("request-{i}"), seed);
    }

    // Session requests: some the emulator accepts, a few it refuses.
    for (i, seed) in search(6, 200, |b| kvs_fuzz::media_read::run(b) == Some(true))
        .iter()
        .enumerate()
    {
        write("emulator_media_read", &format!("accepted-{i}"), seed);
    }
    for (i, seed) in search(2, 200, |b| kvs_fuzz::media_read::run(b) == Some(false))
        .iter()
        .enumerate()
    {
        write("emulator_media_read", &format!("refused-{i}"), seed);
    }

    write(
        "iot_credentials",
        "answer",
        json!({"credentials": {"accessKeyId": "ASIA", "secretAccessKey": "s", "sessionToken": "t", "expiration": "2026-11-01T12:00:00Z"}})
            .to_string()
            .as_bytes(),
    );
    write(
        "iot_credentials",
        "endpoint",
        b"https://c1a2b3.credentials.iot.us-west-2.amazonaws.com:443/",
    );
    write(
        "iot_credentials",
        "refusal",
        br#"{"message":"Invalid thing name passed"}"#,
    );
}

fn write_frames(writer: &mut kvs_media::mkv::MkvWriter) {
    let units = kvs_media::h264::access_units(kvs_media::sample::H264);
    let mut packets =
        kvs_media::ogg::OggOpusReader::new(kvs_media::sample::OPUS).expect("the sample's Ogg Opus");
    for (i, unit) in units.iter().skip(1).take(2).enumerate() {
        let t = 40 * i as i64;
        let nals = kvs_media::h264::nal_units(unit);
        let avcc = kvs_media::mkv::annex_b_to_avcc(&nals);
        writer
            .write_frame(
                kvs_media::mkv::VIDEO_TRACK,
                t,
                t + 40,
                i == 0,
                &avcc[..avcc.len().min(300)],
            )
            .expect("a video frame");
        let packet = packets.next_packet().expect("a packet").expect("a packet");
        writer
            .write_frame(kvs_media::mkv::AUDIO_TRACK, t, t + 20, true, &packet.data)
            .expect("an audio frame");
    }
}
