//! Real pipelines into `kvswebrtcstoragesink` against an emulator on 127.0.0.1: `x264enc` and
//! `opusenc` from test sources, through `gst-launch-1.0` with the built plugin on
//! `GST_PLUGIN_PATH` and in-process with `gst::parse::launch`. What the storage peer received is
//! read from the emulator's inspection API, the recording with ffprobe and ffmpeg.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use common::{is_element_message, BusLog, Rig};
use gst::prelude::*;
use kvs_emulator::SessionInfo;
use kvs_test_support::recording::{decode_errors, probe};
use kvs_test_support::WAIT;

/// Pictures every test pipeline encodes (5 s at 30 fps).
const PICTURES: u64 = 150;

/// The video branch: `key-int-max` pictures between IDRs.
fn video_branch(key_int_max: u32) -> String {
    format!(
        "videotestsrc num-buffers={PICTURES} ! video/x-raw,width=320,height=240,framerate=30/1 \
         ! x264enc tune=zerolatency key-int-max={key_int_max} ! h264parse ! kvs.video"
    )
}

/// The audio branch: 5 s of a sine as Opus.
const AUDIO_BRANCH: &str = "audiotestsrc num-buffers=250 samplesperbuffer=960 \
     ! audio/x-raw,rate=48000,channels=2 ! opusenc ! kvs.audio";

/// The pipeline of `rig`'s channel as `gst::parse::launch` takes it, with its bus.
fn pipeline(rig: &Rig, key_int_max: u32) -> (gst::Pipeline, gst::Element, BusLog) {
    let description = format!(
        "kvswebrtcstoragesink name=kvs {} {} {AUDIO_BRANCH}",
        rig.launch_properties(),
        video_branch(key_int_max)
    );
    let pipeline = gst::parse::launch(&description)
        .expect("the pipeline parses")
        .downcast::<gst::Pipeline>()
        .expect("a pipeline");
    let sink = pipeline.by_name("kvs").expect("the sink");
    let bus = BusLog::new(pipeline.bus().expect("a pipeline has a bus"));
    (pipeline, sink, bus)
}

/// Run `pipeline` to its EOS (within [`WAIT`]; an error fails the test), then stop it.
fn run_to_eos(pipeline: &gst::Pipeline, bus: &mut BusLog) {
    pipeline
        .set_state(gst::State::Playing)
        .expect("the pipeline starts");
    bus.until("EOS", |m| matches!(m.view(), gst::MessageView::Eos(_)));
    pipeline
        .set_state(gst::State::Null)
        .expect("the pipeline stops");
}

/// The stream's recordings of `channel` once the emulator has stopped (finalized files), and
/// the stopped emulator, which holds their temporary directory.
fn recordings(rig: Rig, channel: &str) -> (kvs_emulator::Stopped, Vec<PathBuf>) {
    let Rig { setup, runtime, .. } = rig;
    let stopped = runtime.block_on(setup.emulator.handle.shutdown());
    let dir = stopped.recordings_dir().join(channel);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("the recordings of {}: {e}", dir.display()))
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "mkv"))
        .collect();
    files.sort();
    (stopped, files)
}

/// A directory holding only the plugin this test binary was built with (cargo builds the
/// cdylib next to it, in `target/<profile>/deps`), for `GST_PLUGIN_PATH`.
fn plugin_dir(scratch: &Path) -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let built = exe
        .parent()
        .expect("target/<profile>/deps")
        .join("libgstkvswebrtcstorage.so");
    assert!(built.exists(), "the plugin library {}", built.display());
    let dir = scratch.join("plugins");
    std::fs::create_dir_all(&dir).expect("a plugin directory");
    std::os::unix::fs::symlink(&built, dir.join("libgstkvswebrtcstorage.so"))
        .expect("the plugin linked in");
    dir
}

/// Run `description` through `gst-launch-1.0` with the plugin this test binary was built with
/// (bounded), with no AWS credentials in its environment: the element gets what it needs from
/// its properties. It must succeed.
fn gst_launch(description: &str, scratch: &Path) {
    let plugins = plugin_dir(scratch);
    // gst-launch-1.0 splits its arguments itself; one argument per token, as a shell would.
    let mut command = Command::new("gst-launch-1.0");
    command
        .arg("-q")
        .args(shell_words(description))
        .env("GST_PLUGIN_PATH", &plugins)
        // A registry of its own, so the user's cache neither hides nor keeps the plugin.
        .env("GST_REGISTRY", scratch.join("registry.bin"));
    for credentials in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
    ] {
        command.env_remove(credentials);
    }
    let output = run_bounded(command, WAIT * 2);
    assert!(
        output.status.success(),
        "gst-launch-1.0 failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The test pipeline into `rig`'s channel with the sink's `properties`, through
/// `gst-launch-1.0`, then the storage sessions once every picture (and some audio) arrived.
fn launch_until_every_picture(rig: &Rig, properties: &str, scratch: &Path) -> Vec<SessionInfo> {
    let description = format!(
        "kvswebrtcstoragesink name=kvs {properties} {} {AUDIO_BRANCH}",
        video_branch(30)
    );
    gst_launch(&description, scratch);
    rig.wait_for_sessions("every picture received", |s| {
        s.first()
            .is_some_and(|s| s.media.video.frames == PICTURES && s.media.audio.frames > 0)
    })
}

#[test]
fn gst_launch_ingests_every_picture_and_the_recording_decodes_silently() {
    let channel = "launch-cam";
    let rig = Rig::start(channel);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let sessions = launch_until_every_picture(&rig, &rig.launch_properties(), scratch.path());
    assert_eq!(sessions.len(), 1, "one storage session");
    let media = &sessions[0].media;
    assert!(media.violations.is_empty(), "{:?}", media.violations);
    // 150 pictures, an IDR every 30: at least 5 keyframes.
    assert!(media.video.keyframes >= 5, "{media:?}");
    // 5 s of audio in 20 ms Opus packets.
    assert!((240..=252).contains(&media.audio.frames), "{media:?}");

    let (_stopped, files) = recordings(rig, channel);
    let [recording] = files.as_slice() else {
        panic!("one recording: {files:?}");
    };
    let found = probe(recording);
    assert_eq!(found.codecs, ["h264", "opus"]);
    assert!((4.5..=5.5).contains(&found.duration), "{found:?}");
    assert_eq!(decode_errors(recording), "", "ffmpeg -v error says nothing");
}

#[test]
fn a_pipeline_ingests_every_buffer_and_posts_the_sessions_milestones() {
    let channel = "pipeline-cam";
    let rig = Rig::start(channel);
    let (pipeline, sink, mut bus) = pipeline(&rig, 30);
    run_to_eos(&pipeline, &mut bus);

    let stats = sink.property::<gst::Structure>("stats");
    let count = |field: &str| {
        stats
            .get::<u64>(field)
            .unwrap_or_else(|e| panic!("{field} in {stats}: {e}"))
    };
    assert_eq!(count("video-buffers"), PICTURES, "{stats}");
    assert_eq!(count("video-frames-sent"), PICTURES, "{stats}");
    assert_eq!(
        count("audio-frames-sent"),
        count("audio-buffers"),
        "{stats}"
    );
    let sessions = rig.wait_for_sessions("every frame received", |s| {
        s.first().is_some_and(|s| {
            s.media.video.frames == PICTURES && s.media.audio.frames == count("audio-buffers")
        })
    });
    assert!(sessions[0].media.violations.is_empty());

    let states: Vec<String> = bus
        .element_messages("state")
        .iter()
        .filter_map(|s| s.get::<String>("state").ok())
        .collect();
    assert!(states.contains(&"streaming".to_owned()), "{states:?}");
    assert_eq!(
        bus.element_messages("connected").len(),
        1,
        "{:#?}",
        bus.summary()
    );
    let first_frames: Vec<String> = bus
        .element_messages("first-frame")
        .iter()
        .filter_map(|s| s.get::<String>("track").ok())
        .collect();
    assert!(
        first_frames.contains(&"video".to_owned()),
        "{first_frames:?}"
    );
    assert!(
        first_frames.contains(&"audio".to_owned()),
        "{first_frames:?}"
    );
    assert!(bus.errors().is_empty(), "{:#?}", bus.errors());
}

#[test]
fn a_keyframe_request_makes_x264enc_emit_an_idr() {
    let channel = "idr-cam";
    let rig = Rig::start(channel);
    // One IDR at the start and none after on its own: any other comes from a request (the
    // new storage session's, and the storage peer's PLI once connected).
    let (pipeline, sink, mut bus) = pipeline(&rig, 100_000);
    run_to_eos(&pipeline, &mut bus);

    let stats = sink.property::<gst::Structure>("stats");
    let forced = stats.get::<u64>("force-key-unit-sent").unwrap_or(0);
    let keyframes = stats.get::<u64>("video-buffer-keyframes").unwrap_or(0);
    assert!(forced >= 1, "{stats}");
    assert!(
        keyframes >= 2,
        "x264enc made IDRs for the requests: {stats}"
    );
    let sessions = rig.wait_for_sessions("every picture received", |s| {
        s.first().is_some_and(|s| s.media.video.frames == PICTURES)
    });
    let media = &sessions[0].media;
    assert!(media.keyframe_requests >= 1, "the peer asked: {media:?}");
    assert_eq!(media.video.keyframes, keyframes, "{media:?}");
}

#[test]
fn a_go_away_mid_pipeline_rejoins_without_an_error() {
    let channel = "go-away-pipeline-cam";
    let rig = Rig::start(channel);
    // No periodic IDRs: the second session can start only at one x264enc makes on request.
    let (pipeline, sink, mut bus) = pipeline(&rig, 100_000);
    pipeline
        .set_state(gst::State::Playing)
        .expect("the pipeline starts");
    bus.until("the first video frame", |m| {
        is_element_message(m, "first-frame")
            && m.structure()
                .and_then(|s| s.get::<String>("track").ok())
                .is_some_and(|t| t == "video")
    });
    rig.inject_fault(serde_json::json!({ "channel": channel, "fault": "GO_AWAY" }));
    let rejoin = bus.until("the re-join", |m| {
        is_element_message(m, "joining")
            && m.structure()
                .and_then(|s| s.get::<bool>("rejoin").ok())
                .unwrap_or(false)
    });
    let reason = rejoin
        .structure()
        .and_then(|s| s.get::<String>("reason").ok());
    assert_eq!(reason.as_deref(), Some("GO_AWAY"));
    bus.until("EOS", |m| matches!(m.view(), gst::MessageView::Eos(_)));
    pipeline
        .set_state(gst::State::Null)
        .expect("the pipeline stops");

    let stats = sink.property::<gst::Structure>("stats");
    assert_eq!(stats.get::<u64>("rejoins"), Ok(1), "{stats}");
    assert!(bus.errors().is_empty(), "{:#?}", bus.errors());
    let sessions = rig.wait_for_sessions("two sessions, the second with media", |s| {
        s.len() == 2 && s[1].media.video.frames > 0
    });
    assert!(
        sessions[1].media.video.keyframes >= 1,
        "{:?}",
        sessions[1].media
    );
    assert!(
        stats.get::<u64>("force-key-unit-sent").unwrap_or(0) >= 2,
        "{stats}"
    );
    // What the sessions received is what the element sent, but for the pictures in flight
    // when the first session closed: one or two on an idle machine, a few more on a loaded
    // one (the bound is a third of a second at 30 fps).
    let received: u64 = sessions.iter().map(|s| s.media.video.frames).sum();
    let sent = stats.get::<u64>("video-frames-sent").unwrap_or(0);
    assert!(
        received <= sent && sent - received <= 10,
        "{received} of {sent} received: {stats}"
    );
}

#[test]
fn an_unknown_channel_is_an_element_error_naming_it() {
    let rig = Rig::start("some-cam");
    let (pipeline, sink, mut bus) = pipeline(&rig, 30);
    sink.set_property("channel-name", "no-such-cam");
    let (error, source) = first_error(&pipeline, &mut bus);
    let text = error.to_string();
    assert!(text.contains("no-such-cam"), "{text}");
    assert!(error.matches(gst::ResourceError::NotFound), "{error:?}");
    assert_eq!(source, "kvs");
    stop_within(&pipeline, Duration::from_secs(10));
}

#[test]
fn wrong_credentials_are_an_element_error_saying_access_was_denied() {
    let rig = Rig::start("key-cam");
    let (pipeline, sink, mut bus) = pipeline(&rig, 30);
    sink.set_property("secret-key", "not-the-secret");
    let text = not_authorized_error(&pipeline, &mut bus);
    assert!(
        !text.contains("not-the-secret"),
        "no secret in messages: {text}"
    );
    stop_within(&pipeline, Duration::from_secs(10));
}

/// The emulator's default role alias (`KvsCameraIoTRoleAlias`, as the KVS samples name it).
const ROLE_ALIAS: &str = "KvsCameraIoTRoleAlias";

/// An `iot-certificate` value (kvssink's fields) for a device certificate that `rig`'s emulator
/// issued for the thing named like its channel, written to files in `scratch`.
fn iot_certificate(rig: &Rig, scratch: &Path, role_alias: &str) -> String {
    let handle = &rig.setup.emulator.handle;
    let (cert, key) = handle
        .issue_device_certificate(&rig.setup.channel)
        .expect("a device certificate from the emulator's CA");
    let cert_path = scratch.join("device.cert.pem");
    let key_path = scratch.join("device.private.key");
    std::fs::write(&cert_path, cert).expect("the certificate written");
    std::fs::write(&key_path, key).expect("the key written");
    let endpoint = handle
        .endpoints()
        .iot_credentials
        .clone()
        .expect("the emulator's IoT credentials endpoint");
    format!(
        "iot-certificate,endpoint={endpoint},cert-path={},key-path={},role-aliases={role_alias}",
        cert_path.display(),
        key_path.display()
    )
}

/// `rig`'s launch properties without the key.
fn launch_properties_without_a_key(rig: &Rig) -> String {
    rig.properties()
        .iter()
        .filter(|(name, _)| !matches!(*name, "access-key" | "secret-key"))
        .map(|(name, value)| format!("{name}=\"{value}\""))
        .collect::<Vec<_>>()
        .join(" ")
}

#[test]
fn a_device_certificate_ingests_through_gst_launch_without_a_key() {
    let channel = "iot-launch-cam";
    let rig = Rig::start(channel);
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let properties = format!(
        "{} iot-certificate=\"{}\"",
        launch_properties_without_a_key(&rig),
        iot_certificate(&rig, scratch.path(), ROLE_ALIAS),
    );
    let sessions = launch_until_every_picture(&rig, &properties, scratch.path());
    assert!(sessions[0].media.violations.is_empty());
    let calls = rig.setup.emulator.handle.calls();
    assert!(
        calls
            .get("AssumeRoleWithCertificate")
            .is_some_and(|n| *n >= 1),
        "credentials came from the IoT endpoint: {calls:?}"
    );
    assert!(
        calls.get("joinStorageSession").is_some_and(|n| *n >= 1),
        "signed with them: {calls:?}"
    );
}

#[test]
fn an_unknown_role_alias_is_an_element_error_naming_it() {
    let rig = Rig::start("iot-alias-cam");
    let scratch = tempfile::tempdir().expect("a temporary directory");
    let (pipeline, sink, mut bus) = pipeline(&rig, 30);
    sink.set_property("access-key", None::<String>);
    sink.set_property("secret-key", None::<String>);
    let value = iot_certificate(&rig, scratch.path(), "NoSuchRoleAlias");
    let structure: gst::Structure = value.parse().expect("an iot-certificate structure");
    sink.set_property("iot-certificate", &structure);
    assert_eq!(
        sink.property::<Option<gst::Structure>>("iot-certificate"),
        Some(structure),
        "readable back"
    );
    let text = not_authorized_error(&pipeline, &mut bus);
    assert!(text.contains("NoSuchRoleAlias"), "{text}");
    assert!(text.contains("IoT credentials endpoint"), "{text}");
    stop_within(&pipeline, Duration::from_secs(10));
}

#[test]
fn a_pipeline_set_to_null_while_joining_stops_at_once() {
    let channel = "null-while-joining-cam";
    let rig = Rig::start(channel);
    // The offer comes 20 s late: the session stays in its join for the whole test.
    rig.inject_fault(serde_json::json!({
        "channel": channel, "fault": "DELAY_NEXT_OFFER", "delayMs": 20_000
    }));
    let (pipeline, _sink, mut bus) = pipeline(&rig, 30);
    let _ = pipeline.set_state(gst::State::Playing);
    bus.until("the join", |m| is_element_message(m, "joining"));
    stop_within(&pipeline, Duration::from_secs(10));
    assert!(bus.errors().is_empty(), "{:#?}", bus.errors());
    rig.wait_for_sessions("the session closed", |s| {
        s.first().is_some_and(|s| s.end_reason.is_some())
    });
}

/// Start `pipeline` and wait (bounded) for its first error, which must be the sink's
/// `RESOURCE/NOT_AUTHORIZED`: its message.
fn not_authorized_error(pipeline: &gst::Pipeline, bus: &mut BusLog) -> String {
    let (error, source) = first_error(pipeline, bus);
    assert!(
        error.matches(gst::ResourceError::NotAuthorized),
        "{error:?}"
    );
    assert_eq!(source, "kvs");
    error.to_string()
}

/// Start `pipeline` and wait (bounded) for its first error: the error and its source's name.
fn first_error(pipeline: &gst::Pipeline, bus: &mut BusLog) -> (gst::glib::Error, String) {
    let _ = pipeline.set_state(gst::State::Playing);
    let message = bus.until("the error", |m| {
        matches!(m.view(), gst::MessageView::Error(_))
    });
    let gst::MessageView::Error(error) = message.view() else {
        unreachable!("matched above");
    };
    let source = error
        .src()
        .map(|s| s.name().to_string())
        .unwrap_or_default();
    (error.error(), source)
}

/// Set `pipeline` to NULL from another thread and require it done within `limit`.
fn stop_within(pipeline: &gst::Pipeline, limit: Duration) {
    let (done, stopped) = mpsc::channel();
    let stopping = pipeline.clone();
    std::thread::spawn(move || {
        let result = stopping.set_state(gst::State::Null);
        let _ = done.send(result);
    });
    let result = stopped
        .recv_timeout(limit)
        .unwrap_or_else(|_| panic!("the pipeline did not reach NULL within {limit:?}"));
    assert_eq!(result, Ok(gst::StateChangeSuccess::Success));
}

/// Run `command` to its end within `limit` (killed past it), with its output.
fn run_bounded(mut command: Command, limit: Duration) -> std::process::Output {
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("gst-launch-1.0 runs (cargo xtask test installs gstreamer1.0-tools)");
    let pid = child.id();
    let (done, output) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    match output.recv_timeout(limit) {
        Ok(output) => output.expect("gst-launch-1.0's output"),
        Err(_) => {
            // Our own child, by its id.
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
            panic!("gst-launch-1.0 did not end within {limit:?}");
        }
    }
}

/// Split a pipeline description as a shell would for `gst-launch-1.0`: on spaces, with
/// double-quoted values kept whole (their quotes removed).
fn shell_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => quoted = !quoted,
            ' ' if !quoted => {
                if !word.is_empty() {
                    words.push(std::mem::take(&mut word));
                }
            }
            c => word.push(c),
        }
    }
    if !word.is_empty() {
        words.push(word);
    }
    words
}
