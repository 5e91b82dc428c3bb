//! The sender's cost, printed: N ingestion sessions in this process (the library's public API,
//! one tokio worker thread) against `kvs-emulator serve` in a process of its own, so that the
//! CPU and memory measured are the sender's alone.
//!
//! * for each N (default 1, 10, 50, 200): the sender's CPU as a share of one core, in total and
//!   per session, its CPU time per RTP packet sent, the Mbit/s sent, and the memory (RSS
//!   growth) per session, over a 15 s window after 2 s of warm-up; the emulator's CPU beside it;
//! * `send()` to the first frame at the storage peer: median and p95 of 20 ingestions, with the
//!   emulator's offer delay (200 ms, the service's) reported apart;
//! * unpaced throughput of one session: a push source written as fast as it is taken, in
//!   Mbit/s per core of sender CPU;
//! * beside each row, the **floor** of this machine for the same traffic: the same number of
//!   packets per second, of the same sizes, sent the way the sessions send them (a picture's
//!   packets in one GSO `sendmsg`, each audio packet alone, woken on the same 10 ms grid when
//!   the earliest frame is due and sending every frame due within the default send-ahead) by
//!   a bare loop with no WebRTC at all, to a UDP socket that another process reads. On
//!   loopback the kernel delivers each packet to the receiver on the sender's CPU, so part of
//!   the floor (and of the sessions' cost) is the storage peer's receive path, which a real
//!   network does not charge to the sender.
//!
//! `KVS_BENCH_PARTS` picks what runs (default `paced,ttff,unpaced`).
//!
//! The source is a 1280×720 H.264 stream at about 1.8 Mbit/s (25 fps, made by ffmpeg once and
//! kept under `target/bench-media/`) and 32 kbit/s Opus, both looped.
//!
//! ```sh
//! cargo bench -p kvs-webrtc-ingest --bench sender_figures
//! KVS_BENCH_SESSIONS=1,10 KVS_BENCH_WINDOW_SECS=5 cargo bench -p kvs-webrtc-ingest --bench sender_figures
//! ```
//! Needs ffmpeg (`cargo xtask test --provision-only` installs it); builds `kvs-emulator` in
//! release mode first.

// A benchmark measures in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvs_test_support::Service;
use kvs_webrtc_ingest::{
    AudioPacket, AudioSource, Client, IngestSession, Stats, VideoFrame, VideoSource,
};

const SENDER_THREAD: &str = "kvs-sender";
/// The emulator's default offer delay (the service's, protocol notes §3.4).
const OFFER_DELAY: Duration = Duration::from_millis(200);
const TTFF_RUNS: usize = 20;

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let sessions: Vec<usize> = std::env::var("KVS_BENCH_SESSIONS")
        .unwrap_or_else(|_| "1,10,50,200".into())
        .split(',')
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    let warm_up = Duration::from_secs(env_or("KVS_BENCH_WARMUP_SECS", 2));
    let window = Duration::from_secs(env_or("KVS_BENCH_WINDOW_SECS", 15));
    if std::env::var_os(SINK_ENV).is_some() {
        return udp_sink();
    }
    let parts = std::env::var("KVS_BENCH_PARTS").unwrap_or_else(|_| "paced,ttff,unpaced".into());
    let runs = |part: &str| parts.split(',').any(|p| p.trim() == part);
    let emulator = emulator_binary();
    let media = Media::prepare();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name(SENDER_THREAD)
        .enable_all()
        .build()
        .expect("the sender's runtime");
    println!(
        "sender figures: {} + Opus, one tokio worker, emulator in its own process",
        media.describe()
    );
    if runs("paced") {
        println!(
            "{:>8} {:>10} {:>12} {:>10} {:>12} {:>10} {:>12} {:>10} {:>12}",
            "sessions",
            "CPU %",
            "CPU %/sess",
            "µs/packet",
            "packets/s",
            "Mbit/s",
            "RSS MB/sess",
            "emul. CPU %",
            "floor µs/pkt"
        );
    }
    for n in sessions.iter().copied().filter(|_| runs("paced")) {
        let row = runtime.block_on(paced_sessions(&emulator, &media, n, warm_up, window));
        let floor = runtime.block_on(floor(n, &row, window.min(Duration::from_secs(5))));
        println!(
            "{:>8} {:>10.2} {:>12.3} {:>10.1} {:>12.0} {:>10.2} {:>12.2} {:>10.1} {:>12.1}",
            n,
            row.cpu_share * 100.0,
            row.cpu_share * 100.0 / n as f64,
            row.cpu_per_packet.as_secs_f64() * 1e6,
            row.packets_per_second,
            row.mbit_per_second,
            row.rss_per_session as f64 / 1e6,
            row.emulator_cpu_share * 100.0,
            floor.as_secs_f64() * 1e6
        );
    }
    if !runs("ttff") && !runs("unpaced") {
        return;
    }
    if runs("ttff") {
        let ttff = runtime.block_on(time_to_first_frame(&emulator, &media));
        println!(
            "send() to the first frame at the storage peer, {TTFF_RUNS} runs: median {} ms, p95 {} ms \
             (of which the emulator's offer delay: {} ms; ours: median {} ms)",
            ttff.median.as_millis(),
            ttff.p95.as_millis(),
            OFFER_DELAY.as_millis(),
            ttff.median.saturating_sub(OFFER_DELAY).as_millis()
        );
    }
    if !runs("unpaced") {
        return;
    }
    let unpaced = runtime.block_on(unpaced_session(
        &emulator,
        &media,
        window.min(Duration::from_secs(5)),
    ));
    println!(
        "unpaced, one session (push source as fast as it is taken): {:.1} Mbit/s at {:.1} % of a \
         core: {:.0} Mbit/s per core, {:.1} µs/packet",
        unpaced.mbit_per_second,
        unpaced.cpu_share * 100.0,
        unpaced.mbit_per_second / unpaced.cpu_share.max(1e-9),
        unpaced.cpu_per_packet.as_secs_f64() * 1e6
    );
    let video = &unpaced.stats.video;
    println!(
        "  video frames written {}, sent {}, dropped: not connected {}, waiting for a keyframe {}, \
         late {}; keyframe requests {}, NACKs {}",
        unpaced.written,
        video.frames_sent,
        video.dropped_not_connected,
        video.dropped_waiting_for_keyframe,
        video.dropped_late,
        video.keyframe_requests,
        video.nacks_received
    );
}

/// The release `kvs-emulator` binary next to this bench's (built now, so that it matches).
fn emulator_binary() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = std::process::Command::new(cargo)
        .args([
            "build",
            "--release",
            "--quiet",
            "-p",
            "kvs-emulator",
            "--bin",
            "kvs-emulator",
        ])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building kvs-emulator failed");
    let exe = std::env::current_exe().expect("this bench's path");
    // target/release/deps/sender_figures-<hash> → target/release/kvs-emulator
    let release = exe.parent().and_then(Path::parent).expect("target/release");
    let binary = release.join("kvs-emulator");
    assert!(binary.exists(), "{} was built", binary.display());
    binary
}

/// The source files, made once.
struct Media {
    video: PathBuf,
    audio: PathBuf,
}

impl Media {
    fn prepare() -> Self {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/bench-media");
        std::fs::create_dir_all(&dir).expect("target/bench-media");
        let video = dir.join("720p25-1.8mbit.h264");
        let audio = dir.join("opus-32k.opus");
        if !video.exists() {
            ffmpeg(
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=size=1280x720:rate=25",
                    "-t",
                    "12",
                    "-c:v",
                    "libx264",
                    "-preset",
                    "ultrafast",
                    "-tune",
                    "zerolatency",
                    "-profile:v",
                    "baseline",
                    "-x264-params",
                    "keyint=25:min-keyint=25:scenecut=0:nal-hrd=cbr:force-cfr=1",
                    "-b:v",
                    "1800k",
                    "-minrate",
                    "1800k",
                    "-maxrate",
                    "1800k",
                    "-bufsize",
                    "360k",
                    "-f",
                    "h264",
                ],
                &video,
            );
        }
        if !audio.exists() {
            ffmpeg(
                &[
                    "-f",
                    "lavfi",
                    "-i",
                    "sine=frequency=440:sample_rate=48000",
                    "-t",
                    "12",
                    "-c:a",
                    "libopus",
                    "-b:a",
                    "32k",
                    "-ac",
                    "1",
                    "-f",
                    "ogg",
                ],
                &audio,
            );
        }
        Self { video, audio }
    }

    fn describe(&self) -> String {
        let bytes = std::fs::metadata(&self.video).map(|m| m.len()).unwrap_or(0);
        format!(
            "1280x720 H.264 at {:.2} Mbit/s",
            bytes as f64 * 8.0 / 12.0 / 1e6
        )
    }
}

fn ffmpeg(args: &[&str], out: &Path) {
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-y"])
        .args(args)
        .arg(out)
        .status()
        .expect("ffmpeg runs (cargo xtask test --provision-only installs it)");
    assert!(status.success(), "ffmpeg made {}", out.display());
}

/// `kvs-emulator serve` in a temporary directory: the child and how to reach it.
struct Emulator {
    child: tokio::process::Child,
    service: Service,
    _dir: tempfile::TempDir,
}

impl Emulator {
    async fn start(binary: &Path) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let mut command = tokio::process::Command::new(binary);
        command
            // Beyond the account's quota of 100 storage channels: the bench runs up to 200.
            .args([
                "serve",
                "--no-throttling",
                "--storage-channels",
                "1000",
                "--data-dir",
            ])
            .arg(dir.path())
            .env("RUST_LOG", "kvs_emulator=warn")
            .stderr(Stdio::null());
        let (child, info) = kvs_test_support::serve(command).await;
        Self {
            child,
            service: Service::from_startup_info(&info),
            _dir: dir,
        }
    }

    fn pid(&self) -> u32 {
        self.child.id().expect("running")
    }

    /// An ingest client as a user builds one: the SDK settings, and the emulator's CA trusted
    /// through the one option.
    fn client(&self) -> Client {
        kvs_test_support::ingest_client(
            kvs_webrtc_ingest::Config::builder()
                .sdk_config(self.service.bare_sdk_config())
                .trust_root_certificate_pem(self.service.ca_pem.clone()),
        )
    }

    async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-INT", &pid.to_string()])
                .status();
        }
        let _ = tokio::time::timeout(Duration::from_secs(30), self.child.wait()).await;
    }
}

/// CPU seconds of a process: the sum of its threads' run time from `/proc/<pid>/task/*/schedstat`
/// (nanoseconds; `/proc/<pid>/stat` counts 10 ms ticks, too coarse for a session at 2 %).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0.0;
    };
    tasks
        .filter_map(Result::ok)
        .filter_map(|task| std::fs::read_to_string(task.path().join("schedstat")).ok())
        .filter_map(|line| line.split_whitespace().next()?.parse::<u64>().ok())
        .sum::<u64>() as f64
        / 1e9
}

/// This process's resident memory, in bytes.
fn rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Packets and bytes sent so far, over every session.
fn totals(sessions: &[IngestSession]) -> (u64, u64) {
    sessions
        .iter()
        .map(IngestSession::stats)
        .fold((0, 0), |(p, b), s: Stats| {
            (
                p + s.video.packets_sent + s.audio.packets_sent,
                b + s.video.bytes_sent + s.audio.bytes_sent,
            )
        })
}

/// Video and audio RTP packets sent so far, over every session.
fn packets_by_track(sessions: &[IngestSession]) -> (u64, u64) {
    sessions
        .iter()
        .map(IngestSession::stats)
        .fold((0, 0), |(v, a), s: Stats| {
            (v + s.video.packets_sent, a + s.audio.packets_sent)
        })
}

struct Row {
    /// Video and audio RTP packets sent per second, over every session.
    video_packets_per_second: f64,
    audio_packets_per_second: f64,
    cpu_share: f64,
    cpu_per_packet: Duration,
    packets_per_second: f64,
    mbit_per_second: f64,
    rss_per_session: u64,
    emulator_cpu_share: f64,
}

async fn paced_sessions(
    binary: &Path,
    media: &Media,
    n: usize,
    warm_up: Duration,
    window: Duration,
) -> Row {
    let emulator = Emulator::start(binary).await;
    for i in 0..n {
        emulator.service.storage_channel(&format!("cam-{i}")).await;
    }
    let client = emulator.client();
    let rss_before = rss_bytes();
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let session = client
            .ingest()
            .channel(format!("cam-{i}"))
            .video(VideoSource::annex_b_file(&media.video).looping(true))
            .audio(AudioSource::ogg_opus_file(&media.audio).looping(true))
            .send()
            .await
            .expect("ingestion starts");
        sessions.push(session);
    }
    kvs_test_support::wait_until_within(
        Duration::from_secs(120),
        "every session streaming",
        || {
            let streaming = sessions
                .iter()
                .filter(|s| s.stats().video.frames_sent > 0)
                .count();
            kvs_test_support::check(streaming, |s| *s == n)
        },
    )
    .await;
    tokio::time::sleep(warm_up).await; // the warm-up, not a synchronization
    let pid = std::process::id().to_string();
    let emulator_pid = emulator.pid().to_string();
    let (cpu0, emulator_cpu0) = (cpu_seconds(&pid), cpu_seconds(&emulator_pid));
    let (packets0, bytes0) = totals(&sessions);
    let (video0, audio0) = packets_by_track(&sessions);
    let started = Instant::now();
    tokio::time::sleep(window).await; // the measurement window, not a synchronization
    let elapsed = started.elapsed().as_secs_f64();
    let (packets1, bytes1) = totals(&sessions);
    let (video1, audio1) = packets_by_track(&sessions);
    let (cpu, emulator_cpu) = (
        cpu_seconds(&pid) - cpu0,
        cpu_seconds(&emulator_pid) - emulator_cpu0,
    );
    let rss = rss_bytes().saturating_sub(rss_before);
    for session in sessions {
        let _ = session.stop().await;
    }
    emulator.stop().await;
    let packets = packets1.saturating_sub(packets0).max(1);
    Row {
        video_packets_per_second: video1.saturating_sub(video0) as f64 / elapsed,
        audio_packets_per_second: audio1.saturating_sub(audio0) as f64 / elapsed,
        cpu_share: cpu / elapsed,
        cpu_per_packet: Duration::from_secs_f64(cpu / packets as f64),
        packets_per_second: packets as f64 / elapsed,
        mbit_per_second: bytes1.saturating_sub(bytes0) as f64 * 8.0 / elapsed / 1e6,
        rss_per_session: rss / n as u64,
        emulator_cpu_share: emulator_cpu / elapsed,
    }
}

/// Set in the environment of the child that [`floor`] sends to.
const SINK_ENV: &str = "KVS_BENCH_UDP_SINK";

/// The child's job: read UDP datagrams on 127.0.0.1 (its port on stdout) until killed.
fn udp_sink() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("a UDP socket");
    println!("{}", socket.local_addr().expect("its address").port());
    let mut buf = vec![0; 65536];
    while socket.recv(&mut buf).is_ok() {}
}

/// CPU per packet of the same traffic as `row`, without WebRTC: for each of `n` sessions a
/// socket that sends a picture every 40 ms as one GSO `sendmsg` of 1,200-byte segments and
/// audio packets of 100 bytes alone, to a UDP socket that another process (this bench, started
/// again as a sink) reads. It wakes as the sessions' pacer does: on a shared 10 ms grid when
/// its earliest frame is due, and then sends every frame due within the default send-ahead.
async fn floor(n: usize, row: &Row, window: Duration) -> Duration {
    let mut sink = tokio::process::Command::new(std::env::current_exe().expect("this bench"))
        .env(SINK_ENV, "1")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the sink starts");
    let mut line = String::new();
    tokio::io::AsyncBufReadExt::read_line(
        &mut tokio::io::BufReader::new(sink.stdout.take().expect("piped")),
        &mut line,
    )
    .await
    .expect("the sink's port");
    let sink_addr: std::net::SocketAddr = format!("127.0.0.1:{}", line.trim())
        .parse()
        .expect("a port");
    // The sessions' traffic per 40 ms picture: video packets per picture, audio per picture.
    let pictures_per_second = 25.0 * n as f64;
    let video_per_picture = (row.video_packets_per_second / pictures_per_second).max(1.0);
    let audio_period = Duration::from_secs_f64(n as f64 / row.audio_packets_per_second.max(1.0));
    let send_ahead = kvs_webrtc_ingest::Timings::default().send_ahead;
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sent = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut senders = Vec::with_capacity(n);
    for session in 0..n {
        let socket = tokio::net::UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("a UDP socket");
        let state = quinn_udp::UdpSocketState::new((&socket).into()).expect("GSO state");
        let (stop, sent) = (stop.clone(), sent.clone());
        // Each session's pictures start at its own offset, as real sessions do.
        let offset = Duration::from_micros(40_000 * session as u64 / n as u64);
        senders.push(tokio::spawn(async move {
            let grid = Duration::from_millis(10);
            let video = vec![0x80u8; 1200 * 16];
            let audio = [0x80u8; 100];
            let start = tokio::time::Instant::now() + offset;
            let epoch = start - offset;
            let picture_due = |i: u64| start + Duration::from_millis(40) * i as u32;
            let audio_due = |i: u64| start + audio_period * i as u32;
            let (mut next_picture, mut next_audio) = (0u64, 0u64);
            let mut carry = 0.0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let earliest = picture_due(next_picture).min(audio_due(next_audio));
                let ticks = earliest
                    .duration_since(epoch)
                    .as_nanos()
                    .div_ceil(grid.as_nanos()) as u32;
                let now = epoch + grid * ticks;
                tokio::time::sleep_until(now).await;
                let mut packets = 0;
                while picture_due(next_picture) <= now + send_ahead {
                    next_picture += 1;
                    carry += video_per_picture;
                    let segments = (carry as usize).clamp(1, 16);
                    carry -= segments as f64;
                    let transmit = quinn_udp::Transmit {
                        destination: sink_addr,
                        ecn: None,
                        contents: &video[..1200 * segments],
                        segment_size: (segments > 1).then_some(1200),
                        src_ip: None,
                    };
                    let _ = socket
                        .async_io(tokio::io::Interest::WRITABLE, || {
                            state.try_send((&socket).into(), &transmit)
                        })
                        .await;
                    packets += segments;
                }
                while audio_due(next_audio) <= now + send_ahead {
                    next_audio += 1;
                    let _ = socket.send_to(&audio, sink_addr).await;
                    packets += 1;
                }
                sent.fetch_add(packets as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await; // the warm-up, not a synchronization
    let pid = std::process::id().to_string();
    let cpu0 = cpu_seconds(&pid);
    let sent0 = sent.load(std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(window).await; // the measurement window, not a synchronization
    let cpu = cpu_seconds(&pid) - cpu0;
    let packets = sent.load(std::sync::atomic::Ordering::Relaxed) - sent0;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for sender in senders {
        let _ = sender.await;
    }
    let _ = sink.kill().await;
    Duration::from_secs_f64(cpu / packets.max(1) as f64)
}

struct Ttff {
    median: Duration,
    p95: Duration,
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

async fn time_to_first_frame(binary: &Path, media: &Media) -> Ttff {
    let emulator = Emulator::start(binary).await;
    let client = emulator.client();
    let mut runs = Vec::with_capacity(TTFF_RUNS);
    for run in 0..TTFF_RUNS {
        let channel = format!("ttff-{run}");
        emulator.service.storage_channel(&channel).await;
        let started = unix_ms();
        let session = client
            .ingest()
            .channel(&channel)
            .video(VideoSource::annex_b_file(&media.video))
            .audio(AudioSource::ogg_opus_file(&media.audio))
            .send()
            .await
            .expect("ingestion starts");
        // The storage peer stamps its first frame itself: how often this polls does not matter.
        let sessions = emulator
            .service
            .wait_for_sessions_json("the first frame", |s| {
                s.iter().any(|s| {
                    s["channelArn"]
                        .as_str()
                        .is_some_and(|a| a.contains(&format!("/{channel}/")))
                        && s["media"]["video"]["firstFrameUnixMs"].as_u64().is_some()
                })
            })
            .await;
        let first = sessions
            .iter()
            .find(|s| {
                s["channelArn"]
                    .as_str()
                    .is_some_and(|a| a.contains(&format!("/{channel}/")))
            })
            .and_then(|s| s["media"]["video"]["firstFrameUnixMs"].as_u64())
            .expect("a first frame");
        runs.push(Duration::from_millis(first.saturating_sub(started)));
        let _ = session.stop().await;
    }
    emulator.stop().await;
    runs.sort();
    Ttff {
        median: runs[TTFF_RUNS / 2],
        p95: runs[(TTFF_RUNS * 95).div_ceil(100) - 1],
    }
}

struct Unpaced {
    mbit_per_second: f64,
    cpu_share: f64,
    cpu_per_packet: Duration,
    /// The session's statistics at the end (what was written, sent, dropped and why).
    stats: Stats,
    written: u64,
}

/// One session fed by push sources as fast as the ingestion takes the frames.
async fn unpaced_session(binary: &Path, media: &Media, window: Duration) -> Unpaced {
    let emulator = Emulator::start(binary).await;
    emulator.service.storage_channel("unpaced").await;
    let client = emulator.client();
    let (video, video_writer) = VideoSource::push(64);
    let (audio, audio_writer) = AudioSource::push(64);
    let session = client
        .ingest()
        .channel("unpaced")
        .video(video)
        .audio(audio)
        .send()
        .await
        .expect("ingestion starts");
    let frames: Vec<Vec<u8>> =
        kvs_media::h264::access_units(&std::fs::read(&media.video).expect("the video file"))
            .into_iter()
            .map(<[u8]>::to_vec)
            .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let writer = {
        let stop = stop.clone();
        let written = written.clone();
        tokio::spawn(async move {
            let period = Duration::from_millis(40);
            let mut n: u32 = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let frame = VideoFrame {
                    data: frames[n as usize % frames.len()].clone(),
                    timestamp: period * n,
                };
                if video_writer.write(frame).await.is_err() {
                    break;
                }
                written.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                // Two 20 ms Opus packets per 40 ms picture keep the tracks together.
                for k in 0..2 {
                    let packet = AudioPacket {
                        data: vec![0xF8, 0xFF, 0xFE],
                        timestamp: period * n + Duration::from_millis(20) * k,
                    };
                    if audio_writer.write(packet).await.is_err() {
                        break;
                    }
                }
                n += 1;
            }
        })
    };
    kvs_test_support::wait_until_within(Duration::from_secs(30), "media flowing", || {
        kvs_test_support::check(session.stats().video.frames_sent, |f| *f > 0)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await; // the warm-up, not a synchronization
    let pid = std::process::id().to_string();
    let cpu0 = cpu_seconds(&pid);
    let (packets0, bytes0) = totals(std::slice::from_ref(&session));
    let started = Instant::now();
    tokio::time::sleep(window).await; // the measurement window, not a synchronization
    let elapsed = started.elapsed().as_secs_f64();
    let (packets1, bytes1) = totals(std::slice::from_ref(&session));
    let cpu = cpu_seconds(&pid) - cpu0;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let stats = session.stop().await.unwrap_or_default();
    let _ = writer.await;
    emulator.stop().await;
    let packets = packets1.saturating_sub(packets0).max(1);
    Unpaced {
        mbit_per_second: bytes1.saturating_sub(bytes0) as f64 * 8.0 / elapsed / 1e6,
        cpu_share: cpu / elapsed,
        cpu_per_packet: Duration::from_secs_f64(cpu / packets as f64),
        stats,
        written: written.load(std::sync::atomic::Ordering::Relaxed),
    }
}
