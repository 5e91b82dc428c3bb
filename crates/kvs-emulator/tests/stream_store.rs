//! The stream store end to end: a device streams the 3 s sample clip (H.264 with a keyframe
//! every second, Opus) through a real storage session, and the channel's Kinesis video stream
//! keeps it as the service does: fragments cut at the keyframes, H.264 + AAC (transcoded from
//! the Opus), each a Matroska file that ffprobe and ffmpeg read alone.
//! (Restart recovery, SIGTERM and `kill -9`, is in `serve_binary.rs`.)

mod support;

use kvs_test_support::store::{assert_sample_fragments, assert_sample_tone, wait_for_fragments};
use kvs_test_support::{run_to_end, IngestSetup};
use kvs_webrtc_ingest::{AudioSource, VideoSource};
use serde_json::Value;
use support::peer::{answer_and_stream, VideoCodec};
use support::{StorageMaster, TestEmulator};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storage_session_is_kept_as_fragments_cut_at_each_keyframe() {
    let emu = TestEmulator::start().await;
    let StorageMaster {
        channel_arn,
        webrtc,
        mut ws,
        ..
    } = emu.storage_master("store-cam").await;
    emu.join_master(&webrtc, &channel_arn).await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let report = answer_and_stream(&mut ws, VideoCodec::H264, 1).await;
    assert!(report.connected);

    // Keyframes at 0, 1 and 2 s: the first two fragments are closed while the session is live
    // (the third stays open until the session ends).
    let stored = wait_for_fragments(&emu, "store-cam-stream", 2).await;
    assert_eq!(stored.len(), 2, "{stored:?}");
    assert_sample_fragments(&stored);
    let first_server = stored[0]["serverTimestampMs"].as_i64().unwrap();
    assert!(
        (before..before + 10_000).contains(&first_server),
        "server timestamps are the arrival time: {first_server} vs {before}"
    );
    let sessions = emu.inspect("sessions").await;
    let store = &sessions[0]["media"]["store"];
    assert_eq!(store["stream"], "store-cam-stream", "{sessions}");
    assert_eq!(store["error"], Value::Null, "{store}");

    let unknown = emu.inspect("streams/no-such-stream/fragments").await;
    assert!(
        unknown["error"]
            .as_str()
            .is_some_and(|e| e.contains("no stream no-such-stream")),
        "{unknown}"
    );
}

/// The real ingestion client sends the sample clip (a 440 Hz tone in Opus); when the session
/// ends, the stream holds its three GOPs as three fragments whose audio, now AAC, still
/// carries the tone; boto3 lists them through GetDataEndpoint and ListFragments and fetches them
/// with GetMediaForFragmentList, each a tagged Matroska document that ffprobe sees as h264 + aac
/// and ffmpeg decodes silently (`tests/python/read_back.py`: pages, ranges, tags, bad input).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingested_opus_is_kept_as_aac_that_carries_the_same_tone() {
    let setup = IngestSetup::start("tone-cam").await;
    let session = setup
        .client()
        .ingest()
        .channel("tone-cam")
        .video(VideoSource::annex_b_file(setup.file("clip.h264")))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")))
        .send()
        .await
        .expect("ingestion starts");
    let stats = run_to_end(session).await;
    assert_eq!(stats.video.keyframes_sent, 3);

    let stored = wait_for_fragments(&setup.emulator, "tone-cam-stream", 3).await;
    assert_eq!(
        stored.len(),
        3,
        "one fragment per keyframe sent: {stored:?}"
    );
    assert_sample_fragments(&stored);
    assert_sample_tone(&stored);
    let sessions = setup.emulator.inspect("sessions").await;
    let store = &sessions[0]["media"]["store"];
    assert_eq!(store["audioCodec"], "aac", "{store}");
    assert_eq!(store["fragments"], 3, "{store}");
    assert_eq!(store["badAudioPackets"], 0, "{store}");

    // boto3 finds and fetches the same fragments.
    let home = tempfile::tempdir().unwrap();
    let mut command = setup.emulator.python_command(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/read_back.py"),
        home.path(),
    );
    command
        .env("KVS_STREAM", "tone-cam-stream")
        .env("KVS_EXPECTED", serde_json::to_string(&stored).unwrap());
    setup
        .emulator
        .run_python(command, "read-back: all checks passed")
        .await;

    // boto3 and the AWS CLI get the same fragments as one fragmented MP4 through GetClip
    // (`tests/python/get_clip.py`: ffprobe, ffmpeg, keyframes, durations, bad input); its
    // audio still carries the tone.
    let mut command = setup.emulator.python_command(
        concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/get_clip.py"),
        home.path(),
    );
    command
        .env("KVS_STREAM", "tone-cam-stream")
        .env("KVS_EXPECTED", serde_json::to_string(&stored).unwrap())
        .env("KVS_CLIP_DIR", home.path());
    setup
        .emulator
        .run_python(command, "get-clip: all checks passed")
        .await;
    for clip in ["clip.mp4", "cli-clip.mp4"] {
        let hz = kvs_test_support::recording::tone_frequency(&home.path().join(clip));
        assert!(
            (hz - 440.0).abs() < 5.0,
            "the 440 Hz tone is in {clip}: {hz} Hz"
        );
    }
}
