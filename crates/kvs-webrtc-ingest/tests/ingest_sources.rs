//! The other sources and roles, end to end against the emulator: pipes (live capture), frames
//! pushed by the application, and a viewer sending audio only.

use std::io::Write as _;
use std::time::Duration;

use kvs_test_support::{opus_packets, IngestSetup as Setup, WAIT};
use kvs_webrtc_ingest::{
    AudioPacket, AudioSource, ErrorKind, IngestEvent, VideoFrame, VideoSource,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipes_are_read_as_they_fill_and_every_frame_arrives() {
    let setup = Setup::start("pipe-cam").await;
    let (video_reader, mut video_writer) = std::io::pipe().unwrap();
    let (audio_reader, mut audio_writer) = std::io::pipe().unwrap();
    // Encoders writing in odd-sized chunks, then closing their end.
    let writers = std::thread::spawn(move || {
        for chunk in kvs_media::sample::H264.chunks(1000) {
            video_writer.write_all(chunk).unwrap();
        }
        drop(video_writer);
        for chunk in kvs_media::sample::OPUS.chunks(333) {
            audio_writer.write_all(chunk).unwrap();
        }
    });
    let session = setup
        .client()
        .ingest()
        .channel("pipe-cam")
        .video(VideoSource::annex_b_reader(video_reader, "the video pipe"))
        .audio(AudioSource::ogg_opus_reader(audio_reader, "the audio pipe"))
        .send()
        .await
        .expect("starts");
    let stats = kvs_test_support::run_to_end(session).await;
    writers.join().unwrap();
    assert_eq!(stats.video.frames_sent, 75);
    assert_eq!(
        stats.audio.frames_sent,
        opus_packets(kvs_media::sample::OPUS)
    );
    setup.emulator.received_all(&stats).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_audio_pipe_that_closes_mid_page_ends_with_a_clear_error() {
    let setup = Setup::start("cut-pipe-cam").await;
    let (audio_reader, mut audio_writer) = std::io::pipe().unwrap();
    let cut = kvs_media::sample::OPUS.len() / 2 + 7;
    let writer = std::thread::spawn(move || {
        let _ = audio_writer.write_all(&kvs_media::sample::OPUS[..cut]);
    });
    let session = setup
        .client()
        .ingest()
        .channel("cut-pipe-cam")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_reader(audio_reader, "the audio pipe"))
        .send()
        .await
        .expect("starts");
    let error = tokio::time::timeout(WAIT, session.wait())
        .await
        .expect("ends")
        .expect_err("the cut is reported");
    writer.join().unwrap();
    assert_eq!(error.kind(), ErrorKind::InvalidInput);
    let message = kvs_test_support::chain(&error);
    assert!(message.contains("the audio pipe"), "{message}");
    assert!(message.contains("ends inside"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_frames_arrive_and_keyframe_requests_reach_the_application() {
    let setup = Setup::start("push-cam").await;
    let (video, video_writer) = VideoSource::push(8);
    let (audio, audio_writer) = AudioSource::push(8);
    let mut keyframe_requests = video_writer.keyframe_requests();
    let mut session = setup
        .client()
        .ingest()
        .channel("push-cam")
        .video(video)
        .audio(audio)
        .send()
        .await
        .expect("starts");
    // Wait until media flows, then play the application: 25 fps video, 50 packets/s audio.
    tokio::time::timeout(WAIT, async {
        while let Some(event) = session.next_event().await {
            if matches!(event, IngestEvent::Connected { .. }) {
                return;
            }
        }
    })
    .await
    .expect("connected");
    let aus = kvs_media::h264::access_units(kvs_media::sample::H264);
    let mut packets = kvs_media::ogg::OggOpusReader::new(kvs_media::sample::OPUS).unwrap();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    for n in 0..150usize {
        tick.tick().await;
        if n % 2 == 0 {
            video_writer
                .write(VideoFrame {
                    data: aus[n / 2].to_vec(),
                    timestamp: Duration::from_millis(20 * n as u64),
                })
                .await
                .unwrap();
        }
        let packet = packets.next_packet().unwrap().unwrap();
        audio_writer
            .write(AudioPacket {
                data: packet.data,
                timestamp: packet.timestamp,
            })
            .await
            .unwrap();
    }
    let sessions = setup
        .emulator
        .wait_for_sessions("the pushed frames", |s| {
            s.first()
                .is_some_and(|s| s.media.video.frames == 75 && s.media.audio.frames == 150)
        })
        .await;
    assert!(sessions[0].media.violations.is_empty());
    // The storage peer asks for a keyframe when it starts; the application hears of it.
    assert!(*keyframe_requests.borrow_and_update() >= 1);
    let stats = session.stop().await.expect("clean stop");
    assert_eq!(stats.video.frames_sent, 75);
    assert!(stats.video.keyframe_requests >= 1);
    assert!(
        video_writer
            .write(VideoFrame {
                data: aus[0].to_vec(),
                timestamp: Duration::ZERO
            })
            .await
            .is_err(),
        "writing after stop fails"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_viewer_joins_as_viewer_and_sends_audio_only() {
    let setup = Setup::start("viewer-cam").await;
    let session = setup
        .client()
        .ingest()
        .channel("viewer-cam")
        .viewer("listener-1")
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("starts");
    let stats = kvs_test_support::run_to_end(session).await;
    assert_eq!(stats.video.frames_sent, 0);
    assert_eq!(
        stats.audio.frames_sent,
        opus_packets(kvs_media::sample::OPUS)
    );
    let sessions = setup.emulator.received_all(&stats).await;
    assert_eq!(sessions[0].role, "VIEWER");
    assert_eq!(sessions[0].client_id.as_deref(), Some("listener-1"));
    assert_eq!(sessions[0].media.video.frames, 0);
    assert_eq!(
        setup
            .emulator
            .handle
            .calls()
            .get("joinStorageSessionAsViewer"),
        Some(&1)
    );
}
