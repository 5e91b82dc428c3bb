//! Real players play what the emulator serves (issue #23): headless Chromium with hls.js and
//! with dash.js (the npm packages `cargo xtask test` installs in `player/node_modules`, served
//! by the emulator's player page) plays a LIVE session while the real ingestion client streams
//! the sample clip, then ON_DEMAND sessions once it stopped. Each must advance the video
//! element's `currentTime` by 3 s (LIVE: 8 s, past its first playlist or manifest) with the
//! source's size, decoded audio (the stream keeps AAC) and no error event of the player
//! library or the video element (hls.js's recovered buffer stalls aside). The page is checked
//! the way a person sees it: two screenshots a second apart show a video area that is neither
//! blank nor frozen, and its fragment list and GetImages thumbnails are filled.

mod support;

use std::time::{Duration, Instant};

use kvs_emulator::{PlayerScripts, SessionState};
use kvs_test_support::store::wait_for_fragments;
use kvs_test_support::{IngestSetup, PageBrowser};
use serde_json::Value;

/// The sample clip's size.
const WIDTH: u64 = 320;
const HEIGHT: u64 = 240;

/// LIVE plays this long: longer than what the first playlist or manifest holds (about 3 s
/// behind the live edge), so the player must follow refreshed ones.
const LIVE_SECONDS: f64 = 8.0;

/// How long a player may take to start, then to play.
const PLAY_BOUND: Duration = Duration::from_secs(45);

/// An ingestion setup whose player page serves hls.js and dash.js from the installed packages.
async fn setup(channel: &str) -> IngestSetup {
    let node_modules = concat!(env!("CARGO_MANIFEST_DIR"), "/player/node_modules");
    IngestSetup::start_with(channel, |b| {
        b.player_scripts(PlayerScripts::Directory(node_modules.into()))
    })
    .await
}

/// The page's path for `query`.
fn page(query: &str) -> String {
    format!("{}/player.html?{query}", kvs_emulator::inspect::PREFIX)
}

/// What the page's video element and player saw.
async fn playback(browser: &mut PageBrowser) -> Value {
    browser
        .evaluate(
            "(() => { const v = document.getElementById('video');
                if (!v || !window.kvsPlayer) { return null; } // the page is still loading
                return {
                time: v.currentTime, width: v.videoWidth, height: v.videoHeight,
                audioBytes: v.webkitAudioDecodedByteCount, videoBytes: v.webkitVideoDecodedByteCount,
                errors: window.kvsPlayer.errors, fatal: window.kvsPlayer.fatalErrors,
                buffered: [...Array(v.buffered.length).keys()].map(i => [v.buffered.start(i), v.buffered.end(i)]),
                ready: v.readyState, paused: v.paused,
                library: window.kvsPlayer.library || null }; })()",
        )
        .await
}

/// Poll the page (every 200 ms, within [`PLAY_BOUND`]) until `done` holds; the last state.
async fn poll_until(browser: &mut PageBrowser, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PLAY_BOUND;
    loop {
        let state = playback(browser).await;
        let fatal = state["fatal"].as_array().map_or(0, Vec::len);
        assert_eq!(fatal, 0, "{what}: playback stopped on an error: {state}");
        // hls.js reports a stall (its buffer ran dry, e.g. on a loaded machine) as a non-fatal
        // error event and recovers; any other error event fails the test.
        let unexpected: Vec<&Value> = state["errors"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| {
                !e.as_str().is_some_and(|e| {
                    [
                        "bufferStalledError",
                        "bufferNudgeOnStall",
                        "bufferSeekOverHole",
                    ]
                    .iter()
                    .any(|stall| e.contains(stall))
                })
            })
            .collect();
        assert!(
            unexpected.is_empty(),
            "{what}: the player reported errors: {state}"
        );
        if done(&state) {
            return state;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: not within {PLAY_BOUND:?}; last seen {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await; // the poll interval
    }
}

/// The page at `path` plays `seconds` of the source's video with audio decoded and no error.
async fn plays(setup: &IngestSetup, what: &str, path: &str, seconds: f64) {
    let mut browser = PageBrowser::open(&setup.emulator.handle, path).await;
    let started = poll_until(&mut browser, &format!("{what}: playback starts"), |s| {
        s["time"].as_f64().unwrap_or(0.0) > 0.0
    })
    .await;
    let t0 = started["time"].as_f64().unwrap();
    let state = poll_until(&mut browser, &format!("{what}: {seconds} s played"), |s| {
        s["time"].as_f64().unwrap_or(0.0) >= t0 + seconds
    })
    .await;
    assert_eq!(state["width"], WIDTH, "{what}: {state}");
    assert_eq!(state["height"], HEIGHT, "{what}: {state}");
    assert!(
        state["audioBytes"].as_u64().unwrap_or(0) > 0,
        "{what}: no audio decoded: {state}"
    );
    println!("{what}: {state}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hls_js_and_dash_js_play_live_then_on_demand() {
    let setup = setup("player-cam").await;
    let stream = "player-cam-stream";
    let session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    wait_for_fragments(&setup.emulator, stream, 3).await;

    let live = format!(r#"{{"StreamName":"{stream}","PlaybackMode":"LIVE"}}"#);
    for (operation, protocol) in [
        ("getHLSStreamingSessionURL", "HLS"),
        ("getDASHStreamingSessionURL", "DASH"),
    ] {
        let url = support::streaming_session_url(&setup.emulator, operation, &live).await;
        let query = format!(
            "protocol={protocol}&url={}",
            kvs_test_support::raw::urlencode(&url)
        );
        plays(
            &setup,
            &format!("{protocol} LIVE"),
            &page(&query),
            LIVE_SECONDS,
        )
        .await;
    }

    session.stop().await.expect("a clean stop");
    setup
        .newest_session_when("the storage session ended", |s| {
            s.state == SessionState::Ended
        })
        .await;
    // ON_DEMAND through the page's own session helper (the stored range of the stream).
    for protocol in ["HLS", "DASH"] {
        let query = format!("stream={stream}&protocol={protocol}&mode=ON_DEMAND");
        plays(&setup, &format!("{protocol} ON_DEMAND"), &page(&query), 3.0).await;
    }
}

/// The video area of a screenshot: its pixels' luma.
fn video_luma(png: &[u8], rect: &Value) -> Vec<f64> {
    let image = image::load_from_memory(png).expect("a PNG").to_luma8();
    let at = |k: &str| rect[k].as_f64().unwrap().round() as u32;
    let (x, y, w, h) = (at("x"), at("y"), at("width"), at("height"));
    assert!(
        w > 0 && h > 0 && x + w <= image.width() && y + h <= image.height(),
        "{rect}"
    );
    image::imageops::crop_imm(&image, x, y, w, h)
        .to_image()
        .pixels()
        .map(|p| f64::from(p.0[0]))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_player_page_shows_a_moving_picture_its_fragments_and_thumbnails() {
    let setup = setup("page-cam").await;
    let stream = "page-cam-stream";
    let _session = setup.ingest_looping(setup.emulator.ingest_config()).await;
    wait_for_fragments(&setup.emulator, stream, 3).await;

    let mut browser =
        PageBrowser::open(&setup.emulator.handle, &page(&format!("stream={stream}"))).await;
    poll_until(&mut browser, "the page plays", |s| {
        s["time"].as_f64().unwrap_or(0.0) > 1.0
    })
    .await;
    let deadline = Instant::now() + PLAY_BOUND;
    let lists = loop {
        let lists = browser
            .evaluate(
                "({ status: document.getElementById('status').textContent,
                    fragments: document.querySelectorAll('#fragments tr').length,
                    thumbnails: [...document.querySelectorAll('#images img')]
                        .filter(i => i.complete).map(i => [i.naturalWidth, i.naturalHeight]) })",
            )
            .await;
        let filled = lists["fragments"].as_u64().unwrap_or(0) > 0
            && !lists["thumbnails"].as_array().is_none_or(Vec::is_empty);
        if filled {
            break lists;
        }
        assert!(Instant::now() < deadline, "the lists stay empty: {lists}");
        tokio::time::sleep(Duration::from_millis(200)).await; // the poll interval
    };
    for size in lists["thumbnails"].as_array().unwrap() {
        // 90 pixels high, as the page asks; the width keeps the source's 4:3.
        assert_eq!(size, &serde_json::json!([120, 90]), "{lists}");
    }

    let rect = browser
        .evaluate(
            "(() => { const r = document.getElementById('video').getBoundingClientRect();
                return { x: r.x, y: r.y, width: r.width, height: r.height }; })()",
        )
        .await;
    // A picture within the bound: on a loaded machine the element may still be black for a
    // moment (a stall, a seek over a hole) when the first screenshot is taken.
    let spread_of = |luma: &[f64]| {
        let mean = luma.iter().sum::<f64>() / luma.len() as f64;
        let spread =
            (luma.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / luma.len() as f64).sqrt();
        (mean, spread)
    };
    let deadline = Instant::now() + PLAY_BOUND;
    let (first, mean, spread) = loop {
        let first = video_luma(&browser.screenshot().await, &rect);
        let (mean, spread) = spread_of(&first);
        if spread > 20.0 || Instant::now() >= deadline {
            break (first, mean, spread);
        }
        tokio::time::sleep(Duration::from_millis(200)).await; // the poll interval
    };
    assert!(
        spread > 20.0,
        "the video area stays blank (luma mean {mean:.1}, spread {spread:.1})"
    );
    tokio::time::sleep(Duration::from_secs(1)).await; // the interval under test
    let second = video_luma(&browser.screenshot().await, &rect);
    let moved = first
        .iter()
        .zip(&second)
        .map(|(a, b)| (a - b).abs())
        .sum::<f64>()
        / first.len() as f64;
    println!("video area: luma mean {mean:.1}, spread {spread:.1}; mean change in 1 s {moved:.2}");
    assert!(
        moved > 1.0,
        "the picture froze (mean change {moved:.2} in 1 s)"
    );
}

#[tokio::test]
async fn the_player_helpers_answer_bad_requests_with_the_service_s_errors() {
    let setup = setup("quiet-cam").await;
    let emulator = &setup.emulator;
    let base = format!(
        "{}{}/player",
        emulator.endpoint,
        kvs_emulator::inspect::PREFIX
    );
    let get = |path: &str| {
        let url = format!("{base}/{path}");
        async move { emulator.http_raw("GET", &url, b"").await }
    };
    // A stream that exists but never had media: nothing to play or to sample.
    for path in [
        "session?stream=quiet-cam-stream",
        "session?stream=quiet-cam-stream&mode=ON_DEMAND",
        "images?stream=quiet-cam-stream",
    ] {
        let (status, body) = get(path).await;
        assert_eq!(status, 404, "{path}: {body}");
        assert!(body.contains("ResourceNotFoundException"), "{path}: {body}");
    }
    // Names are checked before any store is touched: no path gets through.
    for path in [
        "images?stream=../quiet-cam-stream",
        "session?stream=/tmp&mode=ON_DEMAND",
    ] {
        let (status, body) = get(path).await;
        assert_eq!(status, 400, "{path}: {body}");
        assert!(body.contains("InvalidArgumentException"), "{path}: {body}");
    }
    let (status, body) = get("images?stream=no-such-stream").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = get("session?stream=quiet-cam-stream&protocol=RTSP").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("RTSP"), "{body}");
    let (status, body) = get("session").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("?stream=NAME"), "{body}");
    let (status, body) = get("nothing.js").await;
    assert_eq!(status, 404, "{body}");
    // The libraries come from the installed packages, byte for byte.
    let (status, body) = get("hls.js").await;
    assert_eq!(status, 200);
    let installed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/player/node_modules/hls.js/dist/hls.min.js"
    ))
    .unwrap();
    assert!(
        body == installed,
        "hls.js differs from the installed package"
    );

    // The page plays only HLS and DASH session URLs given as ?url=, never a javascript: link.
    let mut browser = PageBrowser::open(
        &setup.emulator.handle,
        &page("url=javascript:alert(document.domain)//hls/v1/"),
    )
    .await;
    let deadline = Instant::now() + PLAY_BOUND;
    let state = loop {
        let state = browser
            .evaluate(
                "window.kvsPlayer ? { fatal: window.kvsPlayer.fatalErrors,
                    links: document.querySelectorAll('#links a').length } : null",
            )
            .await;
        if state["fatal"].as_array().is_some_and(|f| !f.is_empty()) {
            break state;
        }
        assert!(Instant::now() < deadline, "the page took the URL: {state}");
        tokio::time::sleep(Duration::from_millis(100)).await; // the poll interval
    };
    assert!(
        state["fatal"][0].as_str().unwrap().contains("url="),
        "{state}"
    );
    assert_eq!(state["links"], 0, "{state}");
}
