//! Figures of ingestion through an impaired path (issue #25), printed: the emulator's `IMPAIR`
//! fault on the storage peer's UDP, both directions, for each setting:
//!
//! * 1 %, 5 % and 10 % loss, each with 30 ms ± 20 ms delay: the share of video frames that
//!   reach the storage peer complete (frames received per 40 ms of media time covered), the
//!   longest gap between two frames, time to first frame (from `send()` to the storage peer's
//!   first video frame), NACKs and keyframe requests the sender received;
//! * 5 % loss with 30 ms ± 20 ms relay-only through coturn over UDP (the impairment is on the
//!   storage peer's leg, between coturn's relay and the storage peer);
//! * a bandwidth cap at a third of the clip's bitrate (device to storage peer, 200 ms queue)
//!   for 5 s, then lifted: the process's resident memory before, at the end of and 3 s after
//!   the cap, keyframe requests and frames the sender dropped waiting for a keyframe, and the
//!   time from lifting the cap to the next keyframe at the storage peer.
//!
//! `cargo bench -p kvs-webrtc-ingest --bench impairment_figures` (`KVS_IMPAIR_SECONDS`, default
//! 20, sets how long each loss setting runs; coturn must be installed).

// End-to-end tests and benches run in real time (clippy.toml bans the clock in the sans-IO parts).
#![allow(clippy::disallowed_methods)]

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use kvs_emulator::TurnMode;
use kvs_test_support::{Coturn, IngestSetup as Setup};
use kvs_webrtc_ingest::{IceTransportPolicy, IngestSession};
use serde_json::json;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let seconds: u64 = std::env::var("KVS_IMPAIR_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    runtime.block_on(async {
        println!("| setting | frames complete | longest gap | time to first frame | NACKs | keyframe requests |");
        println!("|---|---|---|---|---|---|");
        for loss in [0.01, 0.05, 0.10] {
            loss_row(loss, seconds, None).await;
        }
        let coturn = Coturn::start();
        loss_row(0.05, seconds, Some(&coturn)).await;
        println!();
        cap_row().await;
    });
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The clip ingested, relay-only through `coturn` if given.
async fn start(setup: &Setup, coturn: Option<&Coturn>) -> IngestSession {
    let mut config = setup.emulator.ingest_config();
    if let Some(coturn) = coturn {
        config = config
            .trust_root_certificate_pem(coturn.ca.ca_pem.clone())
            .ice_transport_policy(IceTransportPolicy::Relay);
    }
    setup.ingest_looping(config).await
}

/// One loss setting, direct (host candidates) or relay-only through coturn over UDP.
async fn loss_row(loss: f64, seconds: u64, coturn: Option<&Coturn>) {
    let name = format!(
        "loss-{}{}",
        (loss * 100.0) as u32,
        if coturn.is_some() { "-turn" } else { "" }
    );
    let setup = match coturn {
        None => Setup::start(&name).await,
        Some(coturn) => {
            let turn = TurnMode::External {
                uris: vec![coturn.udp_uri()],
                shared_secret: coturn.secret.clone(),
            };
            Setup::start_with(&name, move |b| b.turn(turn)).await
        }
    };
    setup.emulator.inject_fault(json!({
        "channel": name, "fault": "IMPAIR",
        "loss": loss, "delayMs": 30, "jitterMs": 20, "seed": 25,
    }));
    let sent_at = unix_ms();
    let session = start(&setup, coturn).await;
    let media_ms = seconds * 1000;
    let info = setup
        .newest_session_when("the run's media time", |s| {
            s.media.video.duration_ms >= media_ms
        })
        .await;
    let stats = session.stop().await.expect("clean stop");
    let video = &info.media.video;
    let share = video.frames as f64 / (video.duration_ms / 40 + 1) as f64;
    let ttff = video.first_frame_unix_ms.map_or("-".to_owned(), |t| {
        format!("{} ms", t.saturating_sub(sent_at))
    });
    println!(
        "| {:.0} % loss, 30 ± 20 ms, {seconds} s{} | {:.1} % | {} ms | {ttff} | {} | {} |",
        loss * 100.0,
        if coturn.is_some() {
            ", through coturn (UDP)"
        } else {
            ""
        },
        share * 100.0,
        video.longest_gap_ms,
        stats.video.nacks_received,
        stats.video.keyframe_requests,
    );
}

/// Resident memory of this process, in KiB (Linux).
fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

async fn cap_row() {
    let setup = Setup::start("cap").await;
    let session = start(&setup, None).await;
    let before = setup
        .newest_session_when("2 s of video", |s| s.media.video.duration_ms >= 2000)
        .await;
    let bitrate_kbps = before.media.video.bytes * 8 / before.media.video.duration_ms.max(1);
    let cap = (bitrate_kbps / 3).max(16);
    let rss_before = rss_kib();
    let stats_before = session.stats();
    setup.emulator.inject_fault(json!({
        "channel": "cap", "fault": "IMPAIR", "direction": "toStoragePeer",
        "bandwidthKbps": cap, "queueMs": 200,
    }));
    let capped_at = Instant::now();
    let mut rss_most = rss_before;
    let during = loop {
        let info = setup.newest_session_when("under the cap", |_| true).await;
        rss_most = rss_most.max(rss_kib());
        if capped_at.elapsed() >= Duration::from_secs(5) {
            break info;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    let rss_capped = rss_kib();
    let lifted_at = Instant::now();
    setup
        .emulator
        .handle
        .clear_impairment("cap")
        .expect("a channel");
    let keyframes = during.media.video.keyframes;
    let recovered = setup
        .newest_session_when("a keyframe after the cap", |s| {
            s.id != during.id || s.media.video.keyframes > keyframes
        })
        .await;
    let recovery = lifted_at.elapsed();
    let frames = recovered.media.video.frames;
    let after = setup
        .newest_session_when("3 s of video after the cap", |s| {
            s.id == recovered.id && s.media.video.frames >= frames + 75
        })
        .await;
    let rss_after = rss_kib();
    let stats = session.stop().await.expect("clean stop");
    println!("Bandwidth cap {cap} kbit/s (the clip's video: {bitrate_kbps} kbit/s), device to storage peer, 200 ms queue, 5 s:");
    println!("| figure | value |");
    println!("|---|---|");
    println!("| resident memory before / most under the cap / end of the cap / 3 s after | {} / {} / {} / {} MiB |",
        rss_before / 1024, rss_most / 1024, rss_capped / 1024, rss_after / 1024);
    println!(
        "| keyframe requests during the cap | {} |",
        stats.video.keyframe_requests - stats_before.video.keyframe_requests
    );
    println!(
        "| video frames dropped waiting for a keyframe | {} |",
        stats.video.dropped_waiting_for_keyframe - stats_before.video.dropped_waiting_for_keyframe
    );
    println!(
        "| video frames dropped late | {} |",
        stats.video.dropped_late - stats_before.video.dropped_late
    );
    println!(
        "| from lifting the cap to a keyframe at the storage peer | {} ms |",
        recovery.as_millis()
    );
    println!("| rejoins | {} |", stats.rejoins);
    println!(
        "| recording violations | {} |",
        after.media.violations.len()
    );
}
