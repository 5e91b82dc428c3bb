//! Playback figures (issue #23), measured end to end: the real ingestion client streams a 720p
//! H.264 clip with 2-second GOPs (so 2-second fragments, as cameras commonly send to Kinesis
//! Video Streams; made by ffmpeg with libx264 when the bench starts) plus the sample Opus tone
//! into an emulator in this process, and a client reads what a player reads:
//!
//! - LIVE latency: from a frame's producer timestamp (when the device sent it) to the moment
//!   the LIVE HLS media playlist first lists its fragment, polled every 10 ms. A fragment is
//!   listed once it is stored, so its first frame waits about a fragment longer than its last:
//!   both are printed.
//! - The time to serve a 2-second fragment: `getMP4MediaFragment.mp4` of the video and of the
//!   audio track over a kept-alive HTTPS connection, each stored fragment 10 times.
//! - GetImages per second at 1280x720 (JPEG at 80, one image every 200 ms of a 10 s range),
//!   through the SigV4 API. The 320x240 figure is the `stream_store` bench's.
//!
//! ```sh
//! cargo bench -p kvs-emulator --bench playback      # needs ffmpeg (cargo xtask test installs it)
//! ```

use std::time::{Duration, Instant, SystemTime};

use kvs_test_support::IngestSetup;
use kvs_webrtc_ingest::{AudioSource, VideoSource};
use serde_json::Value;

/// How long the LIVE playlist is watched.
const WATCH: Duration = Duration::from_secs(30);
/// How often it is polled.
const POLL: Duration = Duration::from_millis(10);
/// Requests per stored fragment and track when timing fragment serving.
const REPEATS: usize = 10;

fn main() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let video = dir.path().join("720p-gop2s.h264");
    let status = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-f", "lavfi", "-i"])
        .arg("testsrc2=size=1280x720:rate=25")
        .args([
            "-t",
            "6",
            "-c:v",
            "libx264",
            "-profile:v",
            "baseline",
            "-preset",
            "veryfast",
        ])
        .args([
            "-b:v",
            "1800k",
            "-g",
            "50",
            "-keyint_min",
            "50",
            "-sc_threshold",
            "0",
            "-bf",
            "0",
        ])
        .args(["-f", "h264", "-y"])
        .arg(&video)
        .status()
        .expect("ffmpeg runs (cargo xtask test installs it)");
    assert!(status.success(), "ffmpeg made no clip");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    runtime.block_on(run(&video));
}

async fn run(video: &std::path::Path) {
    let setup = IngestSetup::start("playback-bench").await;
    let stream = "playback-bench-stream";
    let session = kvs_test_support::ingest_client(setup.emulator.ingest_config())
        .ingest()
        .channel(&setup.channel)
        .video(VideoSource::annex_b_file(video).fps(25).looping(true))
        .audio(AudioSource::ogg_opus_file(setup.file("clip.opus")).looping(true))
        .send()
        .await
        .expect("the ingestion starts");
    kvs_test_support::store::wait_for_fragments(&setup.emulator, stream, 2).await;

    let endpoint = setup.emulator.endpoint.clone();
    let key = setup.emulator.key();
    let region = setup.emulator.region.clone();
    let ca = setup.emulator.ca_pem.clone().into_bytes();
    let figures = tokio::task::spawn_blocking(move || {
        let agent = agent(&ca);
        let live = live_latency(&agent, &endpoint, stream);
        let serving = fragment_serving(&agent, &endpoint, stream);
        let images = images_per_second(&agent, &endpoint, stream, &key, &region);
        (live, serving, images)
    })
    .await
    .expect("the measurements ran");
    let stats = session.stop().await.expect("a clean stop");
    let (live, serving, images) = figures;

    println!(
        "playback: 1280x720 H.264 at 25 fps, 1.8 Mbit/s, 2-s GOPs + Opus (stored as AAC); {} video frames sent",
        stats.video.frames_sent
    );
    println!(
        "  LIVE latency, frame sent -> its fragment in the HLS media playlist ({} fragments): newest frame median {} ms (max {}), oldest frame median {} ms (max {}); fragments {} ms long",
        live.newest.len(),
        median(&live.newest),
        max(&live.newest),
        median(&live.oldest),
        max(&live.oldest),
        median(&live.lengths),
    );
    println!(
        "  serve a 2-s fragment (getMP4MediaFragment, kept-alive HTTPS, {} requests per track): video ({} KiB) median {:.2} ms, p95 {:.2} ms; audio median {:.2} ms",
        serving.video.len(),
        serving.video_bytes / 1024,
        quantile(&serving.video, 0.5),
        quantile(&serving.video, 0.95),
        quantile(&serving.audio, 0.5),
    );
    println!(
        "  GetImages at 1280x720 (JPEG 80, SigV4 API): {:.0} images/s, {:.1} ms per image ({} images)",
        images.count as f64 / images.time.as_secs_f64(),
        images.time.as_secs_f64() * 1e3 / images.count as f64,
        images.count
    );
}

/// An HTTPS agent that trusts the emulator's CA and keeps connections alive.
fn agent(ca_pem: &[u8]) -> ureq::Agent {
    let ca = ureq::tls::Certificate::from_pem(ca_pem).expect("the CA parses");
    let config = ureq::Agent::config_builder()
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    ca,
                ])))
                .build(),
        )
        .http_status_as_error(false)
        .build();
    ureq::Agent::new_with_config(config)
}

fn get(agent: &ureq::Agent, url: &str) -> Vec<u8> {
    let mut response = agent.get(url).call().expect("the emulator answers");
    let status = response.status();
    let body = response
        .body_mut()
        .with_config()
        .limit(64 << 20)
        .read_to_vec()
        .expect("a body");
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        String::from_utf8_lossy(&body)
    );
    body
}

fn get_json(agent: &ureq::Agent, url: &str) -> Value {
    serde_json::from_slice(&get(agent, url)).expect("JSON")
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

struct Live {
    newest: Vec<i64>,
    oldest: Vec<i64>,
    lengths: Vec<i64>,
}

/// Watch the LIVE video media playlist and time each new fragment's first listing.
fn live_latency(agent: &ureq::Agent, endpoint: &str, stream: &str) -> Live {
    let player = format!("{endpoint}{}/player", kvs_emulator::inspect::PREFIX);
    let session = get_json(agent, &format!("{player}/session?stream={stream}"));
    let master_url = session["url"].as_str().expect("a session URL");
    let master = String::from_utf8(get(agent, master_url)).expect("a playlist");
    let variant = master
        .lines()
        .find(|l| !l.starts_with('#') && !l.is_empty())
        .expect("a variant");
    let media_url = format!("{endpoint}/hls/v1/{variant}");
    let fragments_url = format!(
        "{endpoint}{}/streams/{stream}/fragments",
        kvs_emulator::inspect::PREFIX
    );
    let mut seen: Vec<String> = Vec::new();
    let mut live = Live {
        newest: Vec::new(),
        oldest: Vec::new(),
        lengths: Vec::new(),
    };
    let end = Instant::now() + WATCH;
    let mut first_poll = true;
    while Instant::now() < end {
        let playlist = String::from_utf8(get(agent, &media_url)).expect("a playlist");
        let listed_at = now_ms();
        let numbers: Vec<String> = playlist
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split("FragmentNumber=").nth(1))
            .map(|n| n.split('&').next().unwrap_or(n).to_owned())
            .collect();
        let new: Vec<String> = numbers.into_iter().filter(|n| !seen.contains(n)).collect();
        if !new.is_empty() {
            // Fragments listed at the first poll were stored before it: not timed.
            if !first_poll {
                let stored = get_json(agent, &fragments_url);
                for number in &new {
                    let meta = stored["fragments"]
                        .as_array()
                        .and_then(|f| f.iter().find(|f| f["fragmentNumber"] == number.as_str()))
                        .expect("the listed fragment is stored");
                    let start = meta["producerTimestampMs"].as_i64().unwrap();
                    let length = meta["fragmentLengthMs"].as_i64().unwrap();
                    live.oldest.push(listed_at - start);
                    live.newest.push(listed_at - (start + length));
                    live.lengths.push(length);
                }
            }
            seen.extend(new);
        }
        first_poll = false;
        std::thread::sleep(POLL); // the poll interval
    }
    live
}

struct Serving {
    video: Vec<f64>,
    audio: Vec<f64>,
    video_bytes: usize,
}

/// Time `getMP4MediaFragment.mp4` for each fragment in the ON_DEMAND session of what is
/// stored, video and audio, [`REPEATS`] times each.
fn fragment_serving(agent: &ureq::Agent, endpoint: &str, stream: &str) -> Serving {
    let player = format!("{endpoint}{}/player", kvs_emulator::inspect::PREFIX);
    let session = get_json(
        agent,
        &format!("{player}/session?stream={stream}&mode=ON_DEMAND"),
    );
    let master_url = session["url"].as_str().expect("a session URL");
    let token = master_url
        .split("SessionToken=")
        .nth(1)
        .expect("a token")
        .to_owned();
    let stored = get_json(
        agent,
        &format!(
            "{endpoint}{}/streams/{stream}/fragments",
            kvs_emulator::inspect::PREFIX
        ),
    );
    let mut serving = Serving {
        video: Vec::new(),
        audio: Vec::new(),
        video_bytes: 0,
    };
    // Whole 2-s fragments only (the session's last one may be cut short).
    for fragment in stored["fragments"].as_array().expect("fragments") {
        if fragment["fragmentLengthMs"].as_i64() != Some(2000) {
            continue;
        }
        let number = fragment["fragmentNumber"].as_str().unwrap();
        for (track, times) in [(1, &mut serving.video), (2, &mut serving.audio)] {
            let url = format!(
                "{endpoint}/hls/v1/getMP4MediaFragment.mp4?SessionToken={token}&TrackNumber={track}&FragmentNumber={number}"
            );
            for _ in 0..REPEATS {
                let started = Instant::now();
                let body = get(agent, &url);
                times.push(started.elapsed().as_secs_f64() * 1e3);
                if track == 1 {
                    serving.video_bytes = body.len();
                }
            }
        }
    }
    assert!(
        !serving.video.is_empty(),
        "no 2-s fragment was stored: {stored}"
    );
    serving
}

struct Images {
    count: usize,
    time: Duration,
}

/// GetImages at the source's size over 10 s of stored media, one image per 200 ms.
fn images_per_second(
    agent: &ureq::Agent,
    endpoint: &str,
    stream: &str,
    key: &kvs_emulator::AccessKey,
    region: &str,
) -> Images {
    let stored = get_json(
        agent,
        &format!(
            "{endpoint}{}/streams/{stream}/fragments",
            kvs_emulator::inspect::PREFIX
        ),
    );
    let fragments = stored["fragments"].as_array().expect("fragments");
    let start = fragments[0]["serverTimestampMs"].as_i64().unwrap();
    let url = format!("{endpoint}/getImages");
    let mut images = Images {
        count: 0,
        time: Duration::ZERO,
    };
    let mut next_token: Option<String> = None;
    loop {
        let mut body = serde_json::json!({
            "StreamName": stream,
            "ImageSelectorType": "SERVER_TIMESTAMP",
            "StartTimestamp": start as f64 / 1000.0,
            "EndTimestamp": (start + 10_000) as f64 / 1000.0,
            "SamplingInterval": 200,
            "Format": "JPEG",
            "MaxResults": 50,
        });
        if let Some(token) = &next_token {
            body["NextToken"] = Value::from(token.clone());
        }
        let body = body.to_string();
        let headers = kvs_test_support::raw::signed_headers(&url, body.as_bytes(), key, region);
        let mut request = agent.post(&url).content_type("application/json");
        for (name, value) in &headers {
            if name != "host" && name != "content-type" {
                request = request.header(name, value);
            }
        }
        let started = Instant::now();
        let mut response = request.send(body.as_bytes()).expect("GetImages answers");
        let text = response.body_mut().read_to_string().expect("a body");
        images.time += started.elapsed();
        let answer: Value = serde_json::from_str(&text).expect("JSON");
        let page = answer["Images"]
            .as_array()
            .unwrap_or_else(|| panic!("GetImages: {text}"));
        images.count += page
            .iter()
            .filter(|i| i["ImageContent"].is_string())
            .count();
        match answer["NextToken"].as_str() {
            Some(token) => next_token = Some(token.to_owned()),
            None => break,
        }
    }
    assert!(images.count > 0, "no image was made");
    images
}

fn median(values: &[i64]) -> i64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or(0)
}

fn max(values: &[i64]) -> i64 {
    values.iter().copied().max().unwrap_or(0)
}

fn quantile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted
        .get(((sorted.len() as f64 - 1.0) * q).round() as usize)
        .copied()
        .unwrap_or(0.0)
}
