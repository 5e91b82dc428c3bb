//! The archived-media quotas, end to end over real HTTP (issue #23): the per-stream
//! fragment-metadata and fragment-media points that every archived-media API of a stream shares,
//! and the session-level request rates of the playback paths.

mod support;

use std::time::{Duration, Instant};

use kvs_emulator::{FragmentQuotas, Throttling};
use kvs_test_support::store::wait_for_fragments;
use kvs_test_support::IngestSetup;
use support::TestEmulator;

/// The media quota the first test runs with (the service's is 500/s): low enough that one
/// GetMediaForFragmentList of 1,000 fragments leaves the stream 4 s in debt, a window no slow
/// machine closes before the test has looked.
const MEDIA_POINTS_PER_SECOND: u32 = 200;

/// A GET under a session's URL: status, the error type header (if any) and the body.
async fn get(emulator: &TestEmulator, url: &str) -> (u16, Option<String>, String) {
    let (status, headers, body) = emulator.http_raw_with("GET", url, &[], b"").await;
    let error_type = headers
        .into_iter()
        .find(|(k, _)| k == "x-amzn-errortype")
        .map(|(_, v)| v);
    (status, error_type, body)
}

/// Whether an archived-media answer is the throttling refusal (ClientLimitExceededException's
/// message).
fn throttled(status: u16, text: &str) -> bool {
    status == 400 && text.contains("throttled")
}

/// The URL of the first media fragment a session's video media playlist lists.
async fn first_fragment_url(emulator: &TestEmulator, master_url: &str) -> String {
    let playlist_url = master_url.replace("getHLSMasterPlaylist.m3u8", "getHLSMediaPlaylist.m3u8")
        + "&TrackNumber=1";
    let (status, _, playlist) = get(emulator, &playlist_url).await;
    assert_eq!(status, 200, "{playlist}");
    let relative = playlist
        .lines()
        .find(|l| l.starts_with("getMP4MediaFragment.mp4"))
        .unwrap_or_else(|| panic!("no media fragment in {playlist}"));
    let base = &master_url[..master_url.rfind('/').expect("a path") + 1];
    format!("{base}{relative}")
}

/// One GetMediaForFragmentList of 1,000 fragments takes 1,000 media points: a full bucket admits
/// it and is left in debt, so until the debt is paid every API that takes media points from the
/// stream (a session's media fragments, GetClip, GetImages, another GetMediaForFragmentList) is
/// refused with ClientLimitExceededException, while ListFragments (metadata points only) and
/// other streams are not. Paying takes at least the debt over the rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn media_points_are_shared_by_every_api_of_a_stream_and_a_debt_is_paid_in_time() {
    let mut throttling = Throttling::aws_defaults();
    throttling.set_fragment_quotas(FragmentQuotas {
        metadata_per_second: Some(10_000),
        media_per_second: Some(MEDIA_POINTS_PER_SECOND),
    });
    let setup = IngestSetup::start_with("quota-cam", |b| b.throttling(throttling)).await;
    let emu = &setup.emulator;
    emu.create_storage_channel("quiet-cam");
    let session = setup.ingest_looping(emu.ingest_config()).await;
    wait_for_fragments(emu, "quota-cam-stream", 2).await;
    let master = support::streaming_session_url(
        emu,
        "getHLSStreamingSessionURL",
        r#"{"StreamName":"quota-cam-stream","PlaybackMode":"LIVE"}"#,
    )
    .await;
    let fragment_url = first_fragment_url(emu, &master).await;
    let (status, _, body) = get(emu, &fragment_url).await;
    assert_eq!(status, 200, "before the debt: {body}");

    let thousand: Vec<String> = (0..1000).map(|i| format!("\"{}\"", 91_000 + i)).collect();
    let debt = format!(
        r#"{{"StreamName":"quota-cam-stream","Fragments":[{}]}}"#,
        thousand.join(",")
    );
    // A cost above the bucket's size is admitted only by a full bucket: the fragment just served
    // took a point, which comes back within 5 ms, so the first try may still be refused.
    // Admitted, the request is then refused on its own terms: those fragments do not exist.
    let debt_made = kvs_test_support::wait_for_within(
        Duration::from_secs(5),
        "a full media bucket to admit 1,000 points",
        || async {
            let asked = Instant::now();
            let (status, text) =
                support::archived_media_call(emu, "getMediaForFragmentList", &debt).await;
            assert!(status == 404 || throttled(status, &text), "{status} {text}");
            kvs_test_support::check((status, asked), |(status, _)| *status == 404)
        },
    )
    .await
    .1;

    let (status, error_type, body) = get(emu, &fragment_url).await;
    assert_eq!(status, 400, "a media fragment in debt: {body}");
    assert_eq!(
        error_type
            .as_deref()
            .map(|t| t.split(':').next().unwrap_or(t)),
        Some("ClientLimitExceededException"),
        "{body}"
    );
    let range = r#"{"FragmentSelectorType":"SERVER_TIMESTAMP","TimestampRange":{"StartTimestamp":0,"EndTimestamp":4102444800}}"#;
    let (status, text) = support::archived_media_call(
        emu,
        "getClip",
        &format!(r#"{{"StreamName":"quota-cam-stream","ClipFragmentSelector":{range}}}"#),
    )
    .await;
    assert!(throttled(status, &text), "GetClip in debt: {status} {text}");
    let (status, text) = support::archived_media_call(
        emu,
        "getImages",
        r#"{"StreamName":"quota-cam-stream","ImageSelectorType":"SERVER_TIMESTAMP","StartTimestamp":0,"EndTimestamp":10,"SamplingInterval":3000,"Format":"JPEG"}"#,
    )
    .await;
    assert!(
        throttled(status, &text),
        "GetImages in debt: {status} {text}"
    );
    let (status, text) = support::archived_media_call(
        emu,
        "getMediaForFragmentList",
        r#"{"StreamName":"quota-cam-stream","Fragments":["1"]}"#,
    )
    .await;
    assert!(
        throttled(status, &text),
        "GetMediaForFragmentList in debt: {status} {text}"
    );
    // Metadata points are another quota, and other streams have their own.
    let (status, text) = support::archived_media_call(
        emu,
        "listFragments",
        r#"{"StreamName":"quota-cam-stream","MaxResults":1000}"#,
    )
    .await;
    assert_eq!(status, 200, "ListFragments takes no media points: {text}");
    let (status, text) = support::archived_media_call(
        emu,
        "getMediaForFragmentList",
        r#"{"StreamName":"quiet-cam-stream","Fragments":["1"]}"#,
    )
    .await;
    assert_eq!(status, 404, "another stream is not in debt: {text}");
    let refusals_seen = debt_made.elapsed();
    let debt_lasts = Duration::from_secs_f64(
        f64::from(1000 - MEDIA_POINTS_PER_SECOND) / f64::from(MEDIA_POINTS_PER_SECOND),
    );
    assert!(
        refusals_seen < debt_lasts,
        "the checks took {refusals_seen:?}, longer than the debt lasts ({debt_lasts:?}): \
         the refusals above prove nothing"
    );

    // Polled (bounded) until the debt is paid: never sooner than it can be.
    kvs_test_support::wait_for_within(
        debt_lasts + Duration::from_secs(10),
        "the stream's media debt to be paid",
        || async {
            let (status, _, body) = get(emu, &fragment_url).await;
            kvs_test_support::check((status, body), |(status, _)| *status == 200)
        },
    )
    .await;
    let paid = debt_made.elapsed();
    assert!(
        paid >= debt_lasts,
        "a media fragment was served {paid:?} after a debt that lasts {debt_lasts:?}"
    );
    session.stop().await.expect("a clean stop");
}

/// A session's master playlist is served at most 5 times a second (the service's session-level
/// quota): of 20 requests at once, 5 pass plus what the bucket refills while they run, the rest
/// are ClientLimitExceededException; another session of the same stream has its own rate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_master_playlist_is_served_5_times_a_second() {
    let setup = IngestSetup::start("rate-cam").await;
    let emu = &setup.emulator;
    let session = setup.ingest_looping(emu.ingest_config()).await;
    wait_for_fragments(emu, "rate-cam-stream", 1).await;
    let body = r#"{"StreamName":"rate-cam-stream","PlaybackMode":"LIVE"}"#;
    let first = support::streaming_session_url(emu, "getHLSStreamingSessionURL", body).await;
    let second = support::streaming_session_url(emu, "getHLSStreamingSessionURL", body).await;
    let started = Instant::now();
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(get(emu, &first).await);
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = answers.iter().filter(|(status, ..)| *status == 200).count();
    let refused = answers
        .iter()
        .filter(|(status, error_type, _)| {
            *status == 400
                && error_type
                    .as_deref()
                    .is_some_and(|t| t.starts_with("ClientLimitExceededException"))
        })
        .count();
    assert_eq!(admitted + refused, 20, "{answers:?}");
    assert!(admitted >= 5, "{admitted} admitted: {answers:?}");
    let most = 5 + (5.0 * elapsed).ceil() as usize;
    assert!(
        admitted <= most,
        "{admitted} admitted in {elapsed:.2} s, at most {most} may be"
    );
    let (status, _, playlist) = get(emu, &second).await;
    assert_eq!(status, 200, "another session has its own rate: {playlist}");
    session.stop().await.expect("a clean stop");
}
