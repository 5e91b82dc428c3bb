//! Master ingestion of files into the emulator, end to end: discovery, presigned signaling,
//! JoinStorageSession through the generated client, the storage peer's offer, our str0m answer,
//! DTLS-SRTP over real UDP sockets, and the storage peer's recording.

use std::time::Duration;

use kvs_test_support::recording::{decode_errors, probe};
use kvs_test_support::{opus_packets, IngestSetup as Setup, WAIT};
use kvs_webrtc_ingest::{AudioSource, IngestEvent, IngestState, Track, VideoSource};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_arrive_frame_for_frame_and_the_recording_decodes() {
    let setup = Setup::start("file-cam").await;
    let mut session = setup
        .client()
        .ingest()
        .channel("file-cam")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("ingestion starts");
    assert_eq!(session.channel_arn(), setup.channel_arn);

    let mut events = Vec::new();
    let stats = tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            let stopped = matches!(event, IngestEvent::Stopped { .. });
            events.push(event);
            if stopped {
                break;
            }
        }
        session.wait().await
    })
    .await
    .expect("the files end within the wait")
    .expect("ends cleanly when the sources end");

    // Sent: every frame of the files, video starting at the first keyframe.
    assert_eq!(stats.video.frames_sent, 75, "{stats:#?}");
    assert_eq!(stats.video.keyframes_sent, 3);
    assert_eq!(
        stats.audio.frames_sent,
        opus_packets(kvs_media::sample::OPUS)
    );
    assert_eq!(
        stats.video.dropped_not_connected + stats.video.dropped_late,
        0
    );
    assert_eq!(stats.joins, 1);
    assert_eq!(stats.state, IngestState::Stopped);
    // The emulator's TURN server (from GetIceServerConfig) answered our STUN Binding request;
    // on loopback the mapped address is the host one, so no server-reflexive candidate. The
    // same server granted a TURN allocation: one relayed candidate, offered next to the host
    // one (policy `all`).
    assert!(stats.stun_answers >= 1, "{stats:#?}");
    assert_eq!(
        (stats.relay_allocations, stats.relay_failures),
        (1, 0),
        "{stats:#?}"
    );
    assert_eq!(stats.gathered_candidates, 1, "the relayed candidate only");
    assert!(
        events.iter().any(
            |e| matches!(e, IngestEvent::RelayAllocated { transport, .. } if transport == "udp")
        ),
        "{events:#?}"
    );
    assert!(
        events.contains(&IngestEvent::FirstFrameSent(Track::Video)),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, IngestEvent::Connected { .. })));
    assert!(events.contains(&IngestEvent::SourceEnded(Track::Video)));

    eprintln!("sent: {stats:#?}");
    // Received by the storage peer: the same counts, H.264 in an accepted profile.
    let sessions = setup
        .emulator
        .wait_for_sessions("every frame received", |s| {
            s.first().is_some_and(|s| {
                s.media.video.frames == stats.video.frames_sent
                    && s.media.audio.frames == stats.audio.frames_sent
            })
        })
        .await;
    let media = &sessions[0].media;
    assert_eq!(media.video.keyframes, 3);
    assert_eq!(media.profile.as_deref(), Some("constrained-baseline"));
    assert!(media.violations.is_empty(), "{:?}", media.violations);
    assert!(media.time_to_first_keyframe_ms.is_some());

    let stopped = setup.emulator.handle.shutdown().await;
    let dir = stopped.recordings_dir().join("file-cam");
    let recording = std::fs::read_dir(&dir)
        .expect("a recordings directory")
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "mkv"))
        .expect("a recording");
    assert_eq!(probe(&recording).codecs, ["h264", "opus"]);
    assert_eq!(
        decode_errors(&recording),
        "",
        "the recording decodes cleanly"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_cut_inside_a_nal_unit_ends_the_session_with_a_clear_error_after_its_good_part() {
    let setup = Setup::start("cut-cam").await;
    // Two seconds of the clip, then a slice NAL unit cut right after its header byte.
    let mut cut = kvs_media::h264::access_units(kvs_media::sample::H264)[..50].concat();
    cut.extend_from_slice(&[0, 0, 0, 1, 0x41]);
    std::fs::write(setup.file("cut.h264"), &cut).unwrap();
    let session = setup
        .client()
        .ingest()
        .channel("cut-cam")
        .video(VideoSource::annex_b_file(setup.file("cut.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("the start of the file is fine");
    let error = tokio::time::timeout(WAIT, session.wait())
        .await
        .expect("ends within the wait")
        .expect_err("the cut is an error");
    assert_eq!(error.kind(), kvs_webrtc_ingest::ErrorKind::InvalidInput);
    // What a user reads: the message and its cause (the media error), each once.
    let message = kvs_test_support::chain(&error);
    assert!(message.contains("cut.h264"), "{message}");
    assert!(
        message.contains("ends inside a slice NAL unit"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_before_connecting() {
    let setup = Setup::start("bad-cam").await;
    std::fs::write(setup.file("empty"), b"").unwrap();
    let client = setup.client();
    let cases = [
        (
            setup.file("clip.opus"),
            setup.file("clip.opus"),
            "found an Ogg file",
        ),
        (
            setup.file("empty"),
            setup.file("clip.opus"),
            "the input is empty",
        ),
        (
            setup.file("clip.h264"),
            setup.file("clip.h264"),
            "expected an Ogg Opus stream",
        ),
        (
            setup.file("clip.h264"),
            setup.file("missing.opus"),
            "cannot open",
        ),
    ];
    for (video, audio, expected) in cases {
        let error = client
            .ingest()
            .channel("bad-cam")
            .video(VideoSource::annex_b_file(&video))
            .audio(AudioSource::ogg_opus_file(&audio))
            .send()
            .await
            .expect_err("refused");
        assert_eq!(
            error.kind(),
            kvs_webrtc_ingest::ErrorKind::InvalidInput,
            "{error}"
        );
        let message = kvs_test_support::chain(&error);
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // A master needs both tracks; a viewer sends no video.
    let error = client
        .ingest()
        .channel("bad-cam")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .send()
        .await
        .expect_err("no audio");
    assert!(error.to_string().contains("needs both tracks"), "{error}");
    let error = client
        .ingest()
        .channel("bad-cam")
        .viewer("v1")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .send()
        .await
        .expect_err("viewer with video");
    assert!(error.to_string().contains("sends no video"), "{error}");
    // Nothing was joined.
    assert_eq!(
        setup.emulator.handle.calls().get("joinStorageSession"),
        None
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_channel_and_a_channel_without_storage_are_not_usable() {
    let setup = Setup::start("known-cam").await;
    let client = setup.client();
    let error = client
        .ingest()
        .channel("no-such-channel")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect_err("unknown channel");
    assert_eq!(
        error.kind(),
        kvs_webrtc_ingest::ErrorKind::ChannelNotUsable,
        "{error}"
    );
    let error = client
        .ingest()
        .channel("arn:aws:kinesisvideo:us-west-2:1:bogus")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect_err("malformed ARN");
    assert_eq!(
        error.kind(),
        kvs_webrtc_ingest::ErrorKind::InvalidInput,
        "{error}"
    );
    let _ = Duration::ZERO;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_matroska_file_with_both_tracks_is_ingested() {
    let setup = Setup::start("mkv-cam").await;
    std::fs::write(setup.file("clip.mkv"), kvs_media::sample::MKV).unwrap();
    let session = setup
        .client()
        .ingest()
        .channel("mkv-cam")
        .media(kvs_webrtc_ingest::ContainerSource::matroska_file(
            setup.file("clip.mkv"),
        ))
        .send()
        .await
        .expect("starts");
    let stats = kvs_test_support::run_to_end(session).await;
    assert_eq!(stats.video.frames_sent, 75);
    assert_eq!(
        stats.audio.frames_sent,
        opus_packets(kvs_media::sample::OPUS)
    );
    let sessions = setup.emulator.received_all(&stats).await;
    assert!(sessions[0].media.violations.is_empty());
    // A container without the tracks ingestion needs is refused, naming what it holds.
    std::fs::write(setup.file("video-only.mkv"), video_only_mkv()).unwrap();
    let error = setup
        .client()
        .ingest()
        .channel("mkv-cam")
        .media(kvs_webrtc_ingest::ContainerSource::matroska_file(
            setup.file("video-only.mkv"),
        ))
        .send()
        .await
        .expect_err("no audio");
    assert_eq!(error.kind(), kvs_webrtc_ingest::ErrorKind::InvalidInput);
    assert!(
        error
            .to_string()
            .contains("has no Opus audio track (its tracks: V_MPEG4/ISO/AVC"),
        "{error}"
    );
    std::fs::write(
        setup.file("audio-only.mkv"),
        remux_alone("in.opus", kvs_media::sample::OPUS),
    )
    .unwrap();
    let error = setup
        .client()
        .ingest()
        .channel("mkv-cam")
        .media(kvs_webrtc_ingest::ContainerSource::matroska_file(
            setup.file("audio-only.mkv"),
        ))
        .send()
        .await
        .expect_err("no video for a master");
    assert!(
        error
            .to_string()
            .contains("has no H.264 video track (its tracks: A_OPUS"),
        "{error}"
    );
}

/// The sample's video alone, remuxed by ffmpeg.
fn video_only_mkv() -> Vec<u8> {
    remux_alone("in.h264", kvs_media::sample::H264)
}

/// One of the sample's files alone in Matroska, remuxed by ffmpeg.
fn remux_alone(name: &str, data: &[u8]) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join(name);
    let output = dir.path().join("out.mkv");
    std::fs::write(&input, data).unwrap();
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-i"])
        .arg(&input)
        .args(["-c", "copy"])
        .arg(&output)
        .status()
        .expect("ffmpeg runs");
    assert!(status.success());
    std::fs::read(output).unwrap()
}
