//! `kvs-soak`: N ingestion sessions against `kvs-emulator serve` (a process of its own) for M
//! minutes, with one fault of the matrix (GO_AWAY, a dropped socket, a frozen socket,
//! RECONNECT_ICE_SERVER, a rejected answer, throttled joins, a 10 s burst of 5 % loss with
//! 30 ms ± 20 ms of delay each way) injected every interval into the
//! next session in turn, memory and descriptors of both processes sampled every 10 s. It
//! prints:
//!
//! * sessions lost (goal 0): ingestions that ended by themselves;
//! * faults recovered (goal all): media at the storage peer never stopped for more than 5 s,
//!   and the client joined again where the fault asks it to;
//! * the live heap's slope of the sender and of the emulator after the warm-up (goal flat:
//!   under 1 % per 10 minutes; meaningful from about 10 minutes on): both count their
//!   allocations (the `cap` crate wrapping the system allocator; the emulator built with its
//!   `live-heap` feature reports it at `/_emulator/v1/process`), so a leak grows it, and memory
//!   freed but kept by the C allocator (its arenas and free lists) does not. Each sample is
//!   the mean of the readings of the last 10 s, taken every 50 ms
//!   ([`kvs_emulator::heap_window`]); one reading every 10 s aliased the heap's per-fragment
//!   sawtooth into a false trend of 1-3 % per 10 minutes. The resident
//!   memory (RSS) and its slope are reported beside it;
//! * descriptors at the end against the start (goal: no growth beyond
//!   [`DESCRIPTOR_SLACK`]: the soak's own pooled HTTP connections to the emulator, for the
//!   fault and inspection APIs, come and go on both sides; a leak of one per fault or per
//!   re-join shows far above it);
//! * the recordings' total decoded duration against the wall time the sessions ran.
//!
//! `--samples FILE` also writes every memory sample as CSV, to see the shape of a trend (a
//! cache filling up and stopping, or steady growth) and not only its slope.
//!
//! The exit code is 0 when every goal is met, 1 otherwise. `cargo xtask soak --minutes M
//! --sessions N` builds and runs it; the test command runs a 2-minute form.

mod heap;
mod plan;
mod proc;
mod trend;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use kvs_emulator::heap_window::HeapWindow;
use kvs_test_support::Service;
use kvs_webrtc_ingest::{AudioSource, IngestSession, IngestState, VideoSource};
use serde_json::{json, Value};

use crate::plan::Fault;

/// How often memory and descriptors are sampled.
const SAMPLE_EVERY: Duration = Duration::from_secs(10);
/// The longest media gap at the storage peer that still counts as recovered.
const RECOVERED_WITHIN: Duration = Duration::from_secs(5);
/// Descriptors the soak's own HTTP clients may hold open at one sample and not at another.
const DESCRIPTOR_SLACK: usize = 2;
/// How long a fault is watched at most.
const WATCH_AT_MOST: Duration = Duration::from_secs(40);

/// Soak the ingestion against the emulator; see the crate docs.
#[derive(Debug, Parser)]
#[command(name = "kvs-soak", version)]
struct Args {
    /// How long to run (after the warm-up).
    #[arg(long, default_value_t = 30.0)]
    minutes: f64,
    /// How many sessions ingest at once.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=500))]
    sessions: u32,
    /// Seconds between two faults.
    #[arg(long, default_value_t = 60)]
    fault_every: u64,
    /// Seconds every session streams before faults and the memory trend start.
    #[arg(long, default_value_t = 30)]
    warm_up: u64,
    /// The signaling keep-alive, in seconds: the ping interval and the silence after a ping
    /// that counts as a dead socket (default: the library's, 10 s and 10 s). A frozen socket
    /// is noticed after both, so `--fault-every` must leave room for them.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=60))]
    keep_alive: Option<u64>,
    /// The `kvs-emulator` binary (default: next to this one).
    #[arg(long)]
    emulator: Option<PathBuf>,
    /// Print the report as one JSON object.
    #[arg(long)]
    json: bool,
    /// Also write every memory sample to this CSV file (seconds since the
    /// warm-up ended; both processes' live heap and RSS in bytes), to see the
    /// shape of a trend and not only its slope.
    #[arg(long)]
    samples: Option<PathBuf>,
}

/// One fault and what it did.
#[derive(Debug)]
struct FaultResult {
    fault: Fault,
    session: usize,
    /// The longest time the channel's storage peer received no video, from the fault on.
    longest_gap: Duration,
    /// When the client's next storage session had media, if it joined again.
    rejoined_after: Option<Duration>,
}

impl FaultResult {
    fn recovered(&self) -> bool {
        self.longest_gap <= RECOVERED_WITHIN
            && (self.rejoined_after.is_some() || !self.fault.needs_a_new_session())
    }
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime");
    match runtime.block_on(soak(&args)) {
        Ok(report) => {
            if args.json {
                println!("{report}");
            } else {
                print_report(&report);
            }
            if report["goalsMet"] == true {
                std::process::ExitCode::SUCCESS
            } else {
                std::process::ExitCode::FAILURE
            }
        }
        Err(message) => {
            eprintln!("kvs-soak: {message}");
            std::process::ExitCode::from(2)
        }
    }
}

async fn soak(args: &Args) -> Result<Value, String> {
    // Read from now on, so that the window is whole when the samples start.
    let sender_heap = HeapWindow::start(heap::live_bytes)
        .map_err(|e| format!("cannot start the heap reader: {e}"))?;
    let samples_file = match &args.samples {
        Some(path) => Some((path, create_samples_file(path)?)),
        None => None,
    };
    let emulator_binary = match &args.emulator {
        Some(path) => path.clone(),
        None => sibling("kvs-emulator")?,
    };
    let dir = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    let mut command = tokio::process::Command::new(&emulator_binary);
    command
        // A small store per stream: its index grows by a line per fragment until the cap
        // removes the oldest, so with 1 MiB (about a minute of the sample clip) the store is
        // in its steady state early and the emulator's memory trend shows leaks, not a store
        // filling up (at the 1 GiB default that takes about 16 hours).
        .args(["serve", "--storage-channels", "1000"])
        .args(["--stream-store-mib", "1"])
        .arg("--data-dir")
        .arg(dir.path())
        .env("RUST_LOG", "kvs_emulator=warn")
        .stderr(Stdio::null());
    let (mut emulator, info) = kvs_test_support::serve(command).await;
    let emulator_pid = emulator.id().ok_or("the emulator exited at once")?;
    let service = Service::from_startup_info(&info);
    let clip = kvs_media::sample::write_files(&dir.path().join("clip"))
        .map_err(|e| format!("cannot write the sample clip: {e}"))?;
    let mut config = kvs_webrtc_ingest::Config::builder()
        .sdk_config(service.bare_sdk_config())
        .trust_root_certificate_pem(service.ca_pem.clone());
    if let Some(seconds) = args.keep_alive {
        let period = Duration::from_secs(seconds);
        config = config.signaling_keep_alive(period, period);
    }
    let client = kvs_test_support::ingest_client(config);

    let n = args.sessions as usize;
    let mut sessions = Vec::with_capacity(n);
    for i in 0..n {
        let channel = channel_name(i);
        service.storage_channel(&channel).await;
        let session = client
            .ingest()
            .channel(&channel)
            .video(VideoSource::annex_b_file(&clip.video).looping(true))
            .audio(AudioSource::ogg_opus_file(&clip.audio).looping(true))
            .send()
            .await
            .map_err(|e| {
                format!(
                    "session {i} did not start: {}",
                    kvs_webrtc_ingest::ErrorChain(&e)
                )
            })?;
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
    let streaming_since = Instant::now();
    tokio::time::sleep(Duration::from_secs(args.warm_up)).await; // the warm-up

    let started = Instant::now();
    let end = started + Duration::from_secs_f64(args.minutes * 60.0);
    let every = Duration::from_secs(args.fault_every.max(5));
    let sampler = tokio::spawn(sample_until(
        sender_heap,
        std::process::id(),
        emulator_pid,
        service.clone(),
        started,
        end,
    ));
    let mut results = Vec::new();
    let mut lost = std::collections::BTreeSet::new();
    let mut n_fault = 0;
    loop {
        let next = started + plan::at(n_fault, every);
        if next + WATCH_AT_MOST.min(every) > end {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
        note_lost(&sessions, &mut lost);
        let (fault, session) = plan::nth(n_fault, n);
        results.push(inject_and_watch(&service, fault, session, every).await);
        n_fault += 1;
    }
    tokio::time::sleep_until(end.into()).await;
    note_lost(&sessions, &mut lost);
    let samples = sampler
        .await
        .map_err(|e| format!("the sampler failed: {e}"))?;
    let ran = streaming_since.elapsed();
    stop_all(sessions).await;
    // SIGINT: the emulator finalizes every recording before it exits.
    let _ = std::process::Command::new("kill")
        .args(["-INT", &emulator_pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(30), emulator.wait()).await;
    let recorded = recorded_seconds(&dir.path().join("recordings"));
    let report = report(args, &results, &lost, &samples, recorded, ran);
    if let Some((path, file)) = samples_file {
        // The report matters more than the samples: a failed write is said, not fatal.
        if let Err(e) = write_samples(file, &samples) {
            eprintln!(
                "kvs-soak: warning: cannot write the samples to {}: {e}",
                path.display()
            );
        }
    }
    Ok(report)
}

/// Create the `--samples` file before the soak starts, so that a bad path fails at once and
/// not after the run.
fn create_samples_file(path: &Path) -> Result<std::fs::File, String> {
    std::fs::File::create(path).map_err(|e| {
        format!(
            "cannot create the samples file {}: {e} (is its directory there and writable?)",
            path.display()
        )
    })
}

fn write_samples(mut file: std::fs::File, samples: &Samples) -> std::io::Result<()> {
    use std::io::Write as _;
    file.write_all(samples.to_csv().as_bytes())?;
    file.sync_all()
}

/// The soak's channels.
fn channel_name(i: usize) -> String {
    format!("soak-{i}")
}

/// `name` in the directory of this executable (cargo puts the workspace's binaries together).
fn sibling(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| format!("no path of this program: {e}"))?;
    let dir = exe.parent().ok_or("this program has no directory")?;
    // target/<profile>/kvs-soak, or target/<profile>/deps/<test binary>.
    let candidates = [dir.join(name), dir.join("..").join(name)];
    candidates.into_iter().find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "no {name} next to {} (cargo build -p kvs-emulator, or pass --emulator)",
            exe.display()
        )
    })
}

/// Sessions that ended by themselves.
fn note_lost(sessions: &[IngestSession], lost: &mut std::collections::BTreeSet<usize>) {
    for (i, session) in sessions.iter().enumerate() {
        if session.stats().state == IngestState::Stopped {
            lost.insert(i);
        }
    }
}

async fn stop_all(sessions: Vec<IngestSession>) {
    for session in sessions {
        let _ = session.stop().await;
    }
}

/// The channel's storage sessions, from the inspection API.
async fn channel_sessions(service: &Service, channel: &str) -> Vec<Value> {
    let needle = format!(":channel/{channel}/");
    service
        .inspect("sessions")
        .await
        .as_array()
        .map(|all| {
            all.iter()
                .filter(|s| {
                    s["channelArn"]
                        .as_str()
                        .is_some_and(|a| a.contains(&needle))
                })
                .cloned()
                .collect()
        })
        .unwrap_or_default()
}

/// Video frames the channel's storage peer received over all its sessions, and its newest
/// session with media.
fn frames_and_newest(sessions: &[Value]) -> (u64, Option<u64>) {
    let frames = sessions
        .iter()
        .filter_map(|s| s["media"]["video"]["frames"].as_u64())
        .sum();
    let newest = sessions
        .iter()
        .filter(|s| s["media"]["video"]["frames"].as_u64().unwrap_or(0) > 0)
        .filter_map(|s| s["id"].as_u64())
        .max();
    (frames, newest)
}

/// Inject `fault` into session `session`'s channel and watch it: the longest time without new
/// video at the storage peer, and when a newer storage session had media.
async fn inject_and_watch(
    service: &Service,
    fault: Fault,
    session: usize,
    every: Duration,
) -> FaultResult {
    let channel = channel_name(session);
    let (mut frames, before) = frames_and_newest(&channel_sessions(service, &channel).await);
    let injected = Instant::now();
    for request in fault.requests(&channel) {
        service.fault(request).await;
    }
    let mut clearing = fault.clearing(&channel);
    let mut cleared_at = None;
    let mut last_new_frame = injected;
    let mut longest_gap = Duration::ZERO;
    let mut rejoined_after = None;
    let watch = WATCH_AT_MOST.min(every.saturating_sub(Duration::from_secs(1)));
    while injected.elapsed() < watch {
        if let Some((after, requests)) = clearing.take_if(|(after, _)| injected.elapsed() >= *after)
        {
            for request in requests {
                service.fault(request).await;
            }
            cleared_at = Some(injected + after);
        }
        tokio::time::sleep(Duration::from_millis(100)).await; // the polling period
        let (now_frames, newest) = frames_and_newest(&channel_sessions(service, &channel).await);
        if now_frames > frames {
            frames = now_frames;
            last_new_frame = Instant::now();
        }
        longest_gap = longest_gap.max(last_new_frame.elapsed());
        if rejoined_after.is_none() && newest > before {
            rejoined_after = Some(injected.elapsed());
        }
        // Once it joined again (or the fault was cleared) and media has flowed for a second
        // since, the fault is behind it.
        let behind_since = if fault.needs_a_new_session() {
            rejoined_after.map(|after| injected + after)
        } else {
            cleared_at
        };
        if let Some(since) = behind_since {
            if last_new_frame.elapsed() < Duration::from_millis(200)
                && since.elapsed() > Duration::from_secs(1)
            {
                break;
            }
        }
    }
    // A fault watched for less than its length still ends.
    for request in clearing.map(|(_, requests)| requests).unwrap_or_default() {
        service.fault(request).await;
    }
    FaultResult {
        fault,
        session,
        longest_gap,
        rejoined_after,
    }
}

/// Memory and descriptor samples of both processes.
#[derive(Debug, Default)]
struct Samples {
    sender_rss: Vec<(Duration, f64)>,
    sender_heap: Vec<(Duration, f64)>,
    emulator_rss: Vec<(Duration, f64)>,
    emulator_heap: Vec<(Duration, f64)>,
    sender_fds: Vec<usize>,
    emulator_fds: Vec<usize>,
    /// Descriptors by kind at the first and the last sample: what grew, when they did.
    sender_kinds: [BTreeMap<String, usize>; 2],
    emulator_kinds: [BTreeMap<String, usize>; 2],
}

impl Samples {
    /// One line per sample time; a value missing at that time is left empty.
    fn to_csv(&self) -> String {
        let mut times: Vec<Duration> = self
            .sender_heap
            .iter()
            .chain(&self.emulator_heap)
            .chain(&self.emulator_rss)
            .map(|(t, _)| *t)
            .collect();
        times.sort();
        times.dedup();
        let at = |series: &[(Duration, f64)], t: Duration| {
            series
                .iter()
                .find(|(s, _)| *s == t)
                .map(|(_, v)| format!("{v:.0}"))
                .unwrap_or_default()
        };
        let mut out = String::from(
            "seconds,sender_heap_bytes,sender_rss_bytes,emulator_heap_bytes,emulator_rss_bytes\n",
        );
        for t in times {
            out.push_str(&format!(
                "{:.1},{},{},{},{}\n",
                t.as_secs_f64(),
                at(&self.sender_heap, t),
                at(&self.sender_rss, t),
                at(&self.emulator_heap, t),
                at(&self.emulator_rss, t),
            ));
        }
        out
    }
}

/// Sample both processes every [`SAMPLE_EVERY`] on a fixed grid from `started` until `end`.
/// The live heaps are their means over the last 10 s ([`kvs_emulator::heap_window`]: a single
/// reading lands on a drifting point of the heap's per-fragment sawtooth, and the drift reads
/// as a trend).
async fn sample_until(
    sender_heap: Arc<HeapWindow>,
    sender: u32,
    emulator: u32,
    service: Service,
    started: Instant,
    end: Instant,
) -> Samples {
    let mut samples = Samples::default();
    let mut taken: u32 = 0;
    loop {
        let at = started.elapsed();
        taken += 1;
        if let (Some(rss), Some(fds)) = (proc::rss_bytes(sender), proc::descriptors(sender)) {
            samples.sender_rss.push((at, rss as f64));
            if let Some(mean) = sender_heap.mean() {
                samples.sender_heap.push((at, mean as f64));
            }
            samples.sender_fds.push(fds);
        }
        if let (Some(rss), Some(fds)) = (proc::rss_bytes(emulator), proc::descriptors(emulator)) {
            samples.emulator_rss.push((at, rss as f64));
            samples.emulator_fds.push(fds);
        }
        if let Some(heap) = service.inspect("process").await["liveHeapMeanBytes"].as_f64() {
            samples.emulator_heap.push((at, heap));
        }
        // On the grid, not after this sample's own time: that would drift.
        let next = started + SAMPLE_EVERY * taken;
        let last = next > end;
        let first = samples.sender_fds.len() == 1;
        if first || last {
            let slot = usize::from(last);
            samples.sender_kinds[slot] = proc::descriptor_kinds(sender);
            samples.emulator_kinds[slot] = proc::descriptor_kinds(emulator);
        }
        if last {
            break;
        }
        tokio::time::sleep_until(next.into()).await;
    }
    samples
}

/// Seconds of media in the finalized recordings under `dir` (ffprobe's duration of each).
fn recorded_seconds(dir: &Path) -> f64 {
    let mut total = 0.0;
    let Ok(channels) = std::fs::read_dir(dir) else {
        return 0.0;
    };
    for channel in channels.flatten() {
        let Ok(files) = std::fs::read_dir(channel.path()) else {
            continue;
        };
        for file in files.flatten() {
            let path = file.path();
            if path.extension().is_some_and(|e| e == "mkv") {
                total += duration_of(&path).unwrap_or(0.0);
            }
        }
    }
    total
}

fn duration_of(file: &Path) -> Option<f64> {
    let out = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-show_entries",
            "format=duration",
            "-of",
            "default=noprint_wrappers=1:nokey=1",
        ])
        .arg(file)
        .output()
        .ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

fn report(
    args: &Args,
    results: &[FaultResult],
    lost: &std::collections::BTreeSet<usize>,
    samples: &Samples,
    recorded: f64,
    ran: Duration,
) -> Value {
    let recovered = results.iter().filter(|r| r.recovered()).count();
    let sender_slope = trend::percent_per_10_minutes(&samples.sender_rss);
    let sender_heap_slope = trend::percent_per_10_minutes(&samples.sender_heap);
    let emulator_slope = trend::percent_per_10_minutes(&samples.emulator_rss);
    let emulator_heap_slope = trend::percent_per_10_minutes(&samples.emulator_heap);
    let fds = |v: &[usize]| (v.first().copied(), v.last().copied());
    let (sender_fds_start, sender_fds_end) = fds(&samples.sender_fds);
    let (emulator_fds_start, emulator_fds_end) = fds(&samples.emulator_fds);
    let wall = ran.as_secs_f64() * f64::from(args.sessions);
    // The memory goal is judged on runs long enough for a trend (10 minutes and more).
    let long_enough = args.minutes >= 10.0;
    // Both processes' live heaps: what a leak grows. RSS also moves with what the C allocator
    // keeps for reuse, and is reported beside them.
    let flat = |slope: Option<f64>| slope.is_some_and(|s| s < 1.0);
    let memory_flat = !long_enough || (flat(sender_heap_slope) && flat(emulator_heap_slope));
    let goals_met = lost.is_empty()
        && recovered == results.len()
        && memory_flat
        && no_growth(sender_fds_start, sender_fds_end)
        && no_growth(emulator_fds_start, emulator_fds_end)
        && recorded >= 0.9 * wall;
    json!({
        "minutes": args.minutes,
        "sessions": args.sessions,
        "sessionsLost": lost.len(),
        "faults": results.len(),
        "faultsRecovered": recovered,
        "faultResults": results.iter().map(|r| json!({
            "fault": r.fault.name(),
            "session": r.session,
            "longestGapMs": r.longest_gap.as_millis() as u64,
            "rejoinedAfterMs": r.rejoined_after.map(|d| d.as_millis() as u64),
            "recovered": r.recovered(),
        })).collect::<Vec<_>>(),
        "senderMemoryMb": samples.sender_rss.last().map(|(_, v)| v / 1e6),
        "senderMemorySlopePercentPer10Min": sender_slope,
        "senderHeapMb": samples.sender_heap.last().map(|(_, v)| v / 1e6),
        "senderHeapSlopePercentPer10Min": sender_heap_slope,
        "emulatorMemoryMb": samples.emulator_rss.last().map(|(_, v)| v / 1e6),
        "emulatorHeapMb": samples.emulator_heap.last().map(|(_, v)| v / 1e6),
        "emulatorHeapSlopePercentPer10Min": emulator_heap_slope,
        "emulatorMemorySlopePercentPer10Min": emulator_slope,
        "senderDescriptors": [sender_fds_start, sender_fds_end],
        "emulatorDescriptors": [emulator_fds_start, emulator_fds_end],
        "senderDescriptorChanges": proc::kind_changes(&samples.sender_kinds[0], &samples.sender_kinds[1]),
        "emulatorDescriptorChanges": proc::kind_changes(&samples.emulator_kinds[0], &samples.emulator_kinds[1]),
        "recordedSeconds": recorded,
        "wallSecondsTimesSessions": wall,
        "recordedShare": if wall > 0.0 { recorded / wall } else { 0.0 },
        "memoryJudged": long_enough,
        "goalsMet": goals_met,
    })
}

/// Whether descriptors at the end are within [`DESCRIPTOR_SLACK`] of the start.
fn no_growth(start: Option<usize>, end: Option<usize>) -> bool {
    matches!((start, end), (Some(start), Some(end)) if end <= start + DESCRIPTOR_SLACK)
}

fn print_report(report: &Value) {
    println!(
        "kvs-soak: {} sessions for {} minutes",
        report["sessions"], report["minutes"]
    );
    println!("  sessions lost: {} (goal 0)", report["sessionsLost"]);
    println!(
        "  faults recovered within {} s: {} of {} (goal all)",
        RECOVERED_WITHIN.as_secs(),
        report["faultsRecovered"],
        report["faults"]
    );
    for r in report["faultResults"].as_array().into_iter().flatten() {
        println!(
            "    {:<22} session {:>3}: longest gap {:>5} ms, {}{}",
            r["fault"].as_str().unwrap_or(""),
            r["session"],
            r["longestGapMs"],
            match r["rejoinedAfterMs"].as_u64() {
                Some(ms) => format!("joined again after {ms} ms"),
                None => "did not join again".to_owned(),
            },
            if r["recovered"] == true {
                ""
            } else {
                "  NOT RECOVERED"
            }
        );
    }
    let judged = if report["memoryJudged"] == true {
        ""
    } else {
        "; judged from 10 minutes on"
    };
    println!(
        "  live heap: sender {:.1} MB, slope {} % per 10 min; emulator {:.1} MB, slope {} % per 10 min (goal under 1 %{judged})",
        report["senderHeapMb"].as_f64().unwrap_or(0.0),
        fmt_slope(&report["senderHeapSlopePercentPer10Min"]),
        report["emulatorHeapMb"].as_f64().unwrap_or(0.0),
        fmt_slope(&report["emulatorHeapSlopePercentPer10Min"]),
    );
    println!(
        "  memory (RSS, with what the C allocator keeps): sender {:.1} MB, slope {} % per 10 min; emulator {:.1} MB, slope {} % per 10 min",
        report["senderMemoryMb"].as_f64().unwrap_or(0.0),
        fmt_slope(&report["senderMemorySlopePercentPer10Min"]),
        report["emulatorMemoryMb"].as_f64().unwrap_or(0.0),
        fmt_slope(&report["emulatorMemorySlopePercentPer10Min"]),
    );
    println!(
        "  descriptors: sender {} -> {}, emulator {} -> {} (goal: no growth beyond {})",
        report["senderDescriptors"][0],
        report["senderDescriptors"][1],
        report["emulatorDescriptors"][0],
        report["emulatorDescriptors"][1],
        DESCRIPTOR_SLACK
    );
    for side in ["sender", "emulator"] {
        let changes = report[format!("{side}DescriptorChanges")]
            .as_array()
            .map(|c| {
                c.iter()
                    .filter_map(Value::as_str)
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default();
        if !changes.is_empty() {
            println!("    {side} descriptors by kind: {changes}");
        }
    }
    println!(
        "  recordings: {:.0} s decoded of {:.0} s streamed ({:.1} %)",
        report["recordedSeconds"].as_f64().unwrap_or(0.0),
        report["wallSecondsTimesSessions"].as_f64().unwrap_or(0.0),
        report["recordedShare"].as_f64().unwrap_or(0.0) * 100.0
    );
    println!(
        "  goals {}",
        if report["goalsMet"] == true {
            "met"
        } else {
            "NOT met"
        }
    );
}

fn fmt_slope(value: &Value) -> String {
    value
        .as_f64()
        .map_or_else(|| "n/a".to_owned(), |s| format!("{s:+.2}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_samples_path_in_a_missing_directory_fails_before_the_soak_with_the_path_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("no-such-directory").join("soak.csv");
        let error = create_samples_file(&path).unwrap_err();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains("directory"), "{error}");
    }

    #[test]
    fn the_samples_file_created_at_the_start_holds_the_csv_at_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("soak.csv");
        let file = create_samples_file(&path).unwrap();
        let samples = Samples {
            sender_heap: vec![(Duration::from_secs(0), 1.0)],
            ..Samples::default()
        };
        write_samples(file, &samples).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), samples.to_csv());
    }

    #[test]
    fn samples_are_written_one_line_per_time_with_gaps_left_empty() {
        let s = |secs: u64| Duration::from_secs(secs);
        let samples = Samples {
            sender_heap: vec![(s(0), 100.0), (s(10), 110.0)],
            sender_rss: vec![(s(0), 1000.0), (s(10), 1010.0)],
            // The emulator's inspection API did not answer at 10 s.
            emulator_heap: vec![(s(0), 200.0)],
            emulator_rss: vec![(s(0), 2000.0), (s(10), 2020.0)],
            ..Samples::default()
        };
        assert_eq!(
            samples.to_csv(),
            "seconds,sender_heap_bytes,sender_rss_bytes,emulator_heap_bytes,emulator_rss_bytes\n\
             0.0,100,1000,200,2000\n\
             10.0,110,1010,,2020\n"
        );
    }
}
