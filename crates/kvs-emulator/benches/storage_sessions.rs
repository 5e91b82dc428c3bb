//! Load figure for the emulator: N channels (default 100), each with one storage session that
//! receives H.264 + Opus in real time. The emulator runs as a separate `kvs-emulator serve`
//! process so that its CPU time and RSS are measured alone; the device peers run here.
//!
//! ```sh
//! cargo bench -p kvs-emulator --bench storage_sessions            # 100 sessions
//! KVS_BENCH_SESSIONS=10 cargo bench -p kvs-emulator --bench storage_sessions
//! ```
//!
//! Prints the emulator's CPU (% of one core) and RSS, in total and per session.

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use aws_sdk_kinesisvideo::types::ChannelRole;
use support::peer::{answer_and_stream, VideoCodec};
use support::Service;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// (CPU seconds, RSS bytes) of a process.
fn usage(pid: u32, ticks_per_second: f64) -> (f64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("/proc stat");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let rss_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    (ticks / ticks_per_second, rss_kb * 1024)
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100.0)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run());
}

async fn run() {
    let sessions = env_usize("KVS_BENCH_SESSIONS", 100);
    let loops = env_usize("KVS_BENCH_LOOPS", 4);
    let window = Duration::from_secs(env_usize("KVS_BENCH_WINDOW_SECS", 5) as u64);
    let dir = tempfile::tempdir().unwrap();
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_kvs-emulator"));
    command
        // The setup creates and maps 100 channels at once, over the account's published
        // UpdateMediaStorageConfiguration quota (10/s); the bench measures sessions, not that.
        .args(["serve", "--no-throttling", "--data-dir"])
        .arg(dir.path())
        .env("RUST_LOG", "kvs_emulator=warn")
        .stderr(Stdio::inherit());
    let (mut child, info) = kvs_test_support::serve(command).await;
    let pid = child.id().expect("running");
    let hz = clock_ticks();
    let service = Service::from_startup_info(&info);
    let (_, rss_idle) = usage(pid, hz);

    let started = Instant::now();
    let mut peers = Vec::new();
    for i in 0..sessions {
        let (arn, _) = service.storage_channel(&format!("load-{i}")).await;
        let (wss, _, webrtc) = service.endpoints(&arn, ChannelRole::Master).await;
        let mut ws = service
            .connect(&wss, &arn, None)
            .await
            .expect("signaling connect");
        service
            .storage(&webrtc)
            .join_storage_session()
            .channel_arn(&arn)
            .send()
            .await
            .expect("join");
        peers.push(tokio::spawn(async move {
            answer_and_stream(&mut ws, VideoCodec::H264, loops).await
        }));
    }
    let all_connected = service
        .wait_for_sessions_json("every session connected", |s| {
            s.iter().filter(|s| s["state"] == "CONNECTED").count() == sessions
        })
        .await;
    let setup = started.elapsed();
    assert_eq!(all_connected.len(), sessions);

    // Steady state: every session is receiving media. Sample over a fixed window.
    let (cpu0, _) = usage(pid, hz);
    let t0 = Instant::now();
    let mut rss_peak = 0;
    while t0.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(250)).await;
        rss_peak = rss_peak.max(usage(pid, hz).1);
    }
    let (cpu1, _) = usage(pid, hz);
    let cpu_percent = (cpu1 - cpu0) / t0.elapsed().as_secs_f64() * 100.0;

    let reports: Vec<_> = futures_util::future::join_all(peers)
        .await
        .into_iter()
        .map(|r| r.expect("peer task"))
        .collect();
    let sent: usize = reports.iter().map(|r| r.video_frames_sent).sum();
    let final_sessions = service.inspect("sessions").await;
    let received: u64 = final_sessions
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["media"]["video"]["frames"].as_u64())
        .sum();
    let violations: usize = final_sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["media"]["violations"].as_array().map_or(0, Vec::len))
        .sum();

    let _ = Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let exit = child.wait().await.expect("emulator exits");
    let recordings = std::fs::read_dir(dir.path().join("recordings"))
        .map(|d| d.count())
        .unwrap_or(0);

    let mb = |b: u64| b as f64 / (1024.0 * 1024.0);
    println!("storage_sessions: {sessions} channels, one storage session each, H.264 320x240@25 + Opus 50 pps");
    println!(
        "  setup (create, map, connect, join, connect ICE/DTLS): {:.1} s",
        setup.as_secs_f64()
    );
    println!("  emulator CPU over {:.1} s steady state: {cpu_percent:.1}% of one core ({:.2}% per session)", t0.elapsed().as_secs_f64(), cpu_percent / sessions as f64);
    println!(
        "  emulator RSS: idle {:.1} MiB, with sessions {:.1} MiB ({:.2} MiB per session)",
        mb(rss_idle),
        mb(rss_peak),
        mb(rss_peak.saturating_sub(rss_idle)) / sessions as f64
    );
    println!("  video frames sent {sent}, counted by the emulator {received}; media violations {violations}");
    println!("  clean shutdown: {exit}; recording directories: {recordings}");
    assert!(exit.success(), "the emulator exits cleanly on SIGINT");
}
