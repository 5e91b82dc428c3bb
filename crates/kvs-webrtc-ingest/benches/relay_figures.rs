//! Figures of the TURN relays on this machine, printed:
//!
//! * time to first frame: from `send()` to the storage peer's first video frame, median (and
//!   min/max) of 20 ingestions, direct (host candidates) and relay-only through coturn over
//!   UDP, TCP and TLS;
//! * sender CPU for a 2 Mbit/s H.264 stream (1280×720, 25 fps, made by ffmpeg at the start):
//!   the CPU time of the sending runtime's threads over 10 s of media, as a share of one
//!   core, direct and through each transport; coturn's own CPU beside it.
//!
//! The emulator runs on its own runtime, the sender on another whose threads are named, so
//! the sender's CPU is read per thread from /proc without counting the storage peer.
//!
//! `cargo bench -p kvs-webrtc-ingest --bench relay_figures` (coturn and ffmpeg must be
//! installed; `cargo xtask test --provision-only` installs them).

// End-to-end tests and benches run in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvs_emulator::TurnMode;
use kvs_test_support::{Coturn, SampleClip, TestEmulator};
use kvs_webrtc_ingest::{AudioSource, Client, IceTransportPolicy, Stats, VideoSource};

const RUNS: usize = 20;
const SENDER_THREAD: &str = "kvs-sender";
const CPU_SECONDS: u64 = 10;

#[derive(Clone, Copy, Debug)]
enum Mode {
    Direct,
    Udp,
    Tcp,
    Tls,
}

impl Mode {
    fn name(self) -> &'static str {
        match self {
            Self::Direct => "direct (host)",
            Self::Udp => "TURN/UDP",
            Self::Tcp => "TURN/TCP",
            Self::Tls => "TURN/TLS",
        }
    }
}

fn main() {
    // `RELAY_FIGURES_LOG=is=debug,kvs_webrtc_turn=debug` shows where the time goes.
    if let Ok(filter) = std::env::var("RELAY_FIGURES_LOG") {
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let emulator_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("emulator")
        .enable_all()
        .build()
        .expect("emulator runtime");
    let sender_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SENDER_THREAD)
        .enable_all()
        .build()
        .expect("sender runtime");
    let coturn = Coturn::start();
    let clip = SampleClip::write();
    let big = clip.dir().join("2mbit.h264");
    make_2_mbit_stream(&big);

    println!(
        "relay figures ({} runs per mode for time to first frame)",
        RUNS
    );
    let modes = [Mode::Direct, Mode::Udp, Mode::Tcp, Mode::Tls];
    let mut cpu_rows = Vec::new();
    for mode in modes {
        let emulator = emulator_rt.block_on(emulator_for(mode, &coturn));
        let client = client_for(&emulator, &coturn, mode);
        let mut ttff = Vec::new();
        for run in 0..RUNS {
            let channel = format!("ttff-{run}");
            emulator.create_storage_channel(&channel);
            ttff.push(sender_rt.block_on(time_to_first_frame(&emulator, &client, &channel, &clip)));
        }
        ttff.sort();
        println!(
            "time to first frame, {:<14} median {:>4} ms  (min {} ms, max {} ms)",
            mode.name(),
            ttff[RUNS / 2].as_millis(),
            ttff[0].as_millis(),
            ttff[RUNS - 1].as_millis()
        );
        emulator.create_storage_channel("cpu");
        let row = sender_rt.block_on(sender_cpu(&emulator, &client, &big, &coturn));
        cpu_rows.push((mode, row));
    }
    for (mode, (sender, coturn_cpu, mbit)) in cpu_rows {
        println!(
            "sender CPU at {mbit:.2} Mbit/s, {:<14} {:>5.1} % of a core  (coturn {:>5.1} %)",
            mode.name(),
            sender * 100.0,
            coturn_cpu * 100.0
        );
    }
}

/// An emulator whose GetIceServerConfig returns coturn over the mode's transport (direct: no
/// TURN server at all).
async fn emulator_for(mode: Mode, coturn: &Coturn) -> TestEmulator {
    let turn = match mode {
        Mode::Direct => TurnMode::Placeholder,
        Mode::Udp => external(coturn.udp_uri(), coturn),
        Mode::Tcp => external(coturn.tcp_uri(), coturn),
        Mode::Tls => external(coturn.tls_uri(), coturn),
    };
    TestEmulator::start_with(|b| b.timings(|t| t.offer_delay = Duration::ZERO).turn(turn)).await
}

fn external(uri: String, coturn: &Coturn) -> TurnMode {
    TurnMode::External {
        uris: vec![uri],
        shared_secret: coturn.secret.clone(),
    }
}

fn client_for(emulator: &TestEmulator, coturn: &Coturn, mode: Mode) -> Client {
    let policy = match mode {
        Mode::Direct => IceTransportPolicy::All,
        _ => IceTransportPolicy::Relay,
    };
    kvs_test_support::ingest_client(
        emulator
            .ingest_config()
            .trust_root_certificate_pem(coturn.ca.ca_pem.clone())
            .ice_transport_policy(policy),
    )
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn time_to_first_frame(
    emulator: &TestEmulator,
    client: &Client,
    channel: &str,
    clip: &SampleClip,
) -> Duration {
    let started = unix_ms();
    let session = client
        .ingest()
        .channel(channel)
        .video(VideoSource::annex_b_file(&clip.video))
        .audio(AudioSource::ogg_opus_file(&clip.audio))
        .send()
        .await
        .expect("ingestion starts");
    // The storage peer stamps its first frame itself: how often this polls does not matter.
    let waiting = format!("the first frame on {channel}");
    let first = kvs_test_support::wait_until_within(Duration::from_secs(20), &waiting, || {
        emulator
            .sessions()
            .into_iter()
            .find(|s| s.channel_arn.contains(&format!("/{channel}/")))
            .and_then(|s| s.media.video.first_frame_unix_ms)
            .ok_or("no frame yet")
    })
    .await;
    let _ = session.stop().await;
    Duration::from_millis(first.saturating_sub(started))
}

/// (sender CPU share of a core, coturn's, Mbit/s sent) over 10 s of the 2 Mbit/s stream.
async fn sender_cpu(
    emulator: &TestEmulator,
    client: &Client,
    video: &Path,
    coturn: &Coturn,
) -> (f64, f64, f64) {
    let session = client
        .ingest()
        .channel("cpu")
        .video(VideoSource::annex_b_file(video))
        .audio(AudioSource::ogg_opus_file(kvs_opus_file(video)).looping(true))
        .send()
        .await
        .expect("ingestion starts");
    let mut stats = session.watch_stats();
    stats
        .wait_for(|s: &Stats| s.video.frames_sent > 0)
        .await
        .expect("streaming");
    let (cpu0, coturn0, wall0) = (
        sender_cpu_seconds(),
        process_cpu_seconds(coturn.pid()),
        Instant::now(),
    );
    let bytes0 = stats.borrow().video.bytes_sent;
    tokio::time::sleep(Duration::from_secs(CPU_SECONDS - 1)).await;
    let (cpu1, coturn1, wall) = (
        sender_cpu_seconds(),
        process_cpu_seconds(coturn.pid()),
        wall0.elapsed(),
    );
    let bytes = stats.borrow().video.bytes_sent - bytes0;
    let _ = session.stop().await;
    let received = emulator
        .sessions()
        .into_iter()
        .find(|s| s.channel_arn.contains("/cpu/"))
        .map(|s| s.media.video.frames)
        .unwrap_or(0);
    assert!(received > 0, "the storage peer received the stream");
    let secs = wall.as_secs_f64();
    (
        (cpu1 - cpu0) / secs,
        (coturn1 - coturn0) / secs,
        bytes as f64 * 8.0 / secs / 1e6,
    )
}

/// The Ogg Opus sample beside the video.
fn kvs_opus_file(video: &Path) -> std::path::PathBuf {
    video.with_file_name("clip.opus")
}

/// CPU seconds (user + system) of this process's threads named like the sender's runtime.
fn sender_cpu_seconds() -> f64 {
    let mut total = 0.0;
    for task in std::fs::read_dir("/proc/self/task")
        .expect("/proc")
        .flatten()
    {
        let comm = std::fs::read_to_string(task.path().join("comm")).unwrap_or_default();
        if comm.trim_end().starts_with(SENDER_THREAD) {
            total += stat_cpu_seconds(&task.path().join("stat"));
        }
    }
    total
}

fn process_cpu_seconds(pid: u32) -> f64 {
    stat_cpu_seconds(Path::new(&format!("/proc/{pid}/stat")))
}

/// utime + stime of a /proc stat file, in seconds (clock ticks of 1/100 s).
fn stat_cpu_seconds(path: &Path) -> f64 {
    let stat = std::fs::read_to_string(path).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (ticks(11) + ticks(12)) / 100.0
}

fn make_2_mbit_stream(path: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args([
            "-v",
            "error",
            "-y",
            "-f",
            "lavfi",
            "-i",
            "testsrc2=size=1280x720:rate=25",
        ])
        .args([
            "-t",
            "12",
            "-c:v",
            "libx264",
            "-preset",
            "veryfast",
            "-profile:v",
            "baseline",
        ])
        .args([
            "-bf", "0", "-g", "25", "-b:v", "2M", "-maxrate", "2M", "-bufsize", "500k",
        ])
        .args(["-f", "h264"])
        .arg(path)
        .status()
        .expect("ffmpeg runs (cargo xtask test --provision-only installs it)");
    assert!(status.success(), "ffmpeg made no 2 Mbit/s stream");
}
